/* adamw.c - the optimizer and gradient clipping over the one parameter
 * array, with torch.optim.AdamW's arithmetic in its order (denominator
 * sqrt(v) / sqrt(1 - beta2^t) + eps, step lr / (1 - beta1^t)). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

float model_grad_norm(const model *m) {
    if (!m->grads)
        return 0.0f;
    double s = 0;
    for (size_t i = 0; i < m->n_params; i++)
        s += (double)m->grads[i] * m->grads[i];
    return (float)sqrt(s);
}

float model_clip_grad(model *m, float max_norm) {
    float norm = model_grad_norm(m);
    float coef = max_norm / (norm + 1e-6f);
    if (m->grads && coef < 1.0f)
        for (size_t i = 0; i < m->n_params; i++)
            m->grads[i] *= coef;
    return norm;
}

int model_adamw_step(model *m, const model_adamw *o, char *err, size_t n) {
    if (!m->grads) {
        snprintf(err, n, "model: an optimizer step before any backward");
        return -EINVAL;
    }
    if (!m->adam_m) {
        m->adam_m = calloc(m->n_params, sizeof(float));
        m->adam_v = calloc(m->n_params, sizeof(float));
        if (!m->adam_m || !m->adam_v) {
            free(m->adam_m);
            free(m->adam_v);
            m->adam_m = m->adam_v = NULL;
            snprintf(err, n, "model: out of memory for the optimizer's %zu x 2 moments",
                     m->n_params);
            return -ENOMEM;
        }
    }
    m->adam_steps++;
    double bc1 = 1.0 - pow(o->beta1, (double)m->adam_steps);
    double bc2 = 1.0 - pow(o->beta2, (double)m->adam_steps);
    float step = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (size_t t = 0; t < m->n_tensors; t++) {
        const model_tensor *x = &m->t[t];
        float decay = x->ndim == 2 ? 1.0f - o->lr * o->weight_decay : 1.0f;
        float *p = m->params + x->offset, *g = m->grads + x->offset;
        float *mm = m->adam_m + x->offset, *vv = m->adam_v + x->offset;
        for (size_t i = 0; i < x->count; i++) {
            p[i] *= decay;
            mm[i] = o->beta1 * mm[i] + (1.0f - o->beta1) * g[i];
            vv[i] = o->beta2 * vv[i] + (1.0f - o->beta2) * g[i] * g[i];
            p[i] -= step * mm[i] / (sqrtf(vv[i]) / bc2_sqrt + o->eps);
        }
    }
    return 0;
}
