/* adamw.c - the optimizer and gradient clipping over the one parameter
 * array, with torch.optim.AdamW's arithmetic in its order (denominator
 * sqrt(v) / sqrt(1 - beta2^t) + eps, step lr / (1 - beta1^t)). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/artifacts.h>

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
        return model_fail(err, n, -EINVAL, "model: an optimizer step before any backward");
    }
    if (!m->adam_m) {
        m->adam_m = calloc(m->n_params, sizeof(float));
        m->adam_v = calloc(m->n_params, sizeof(float));
        if (!m->adam_m || !m->adam_v) {
            free(m->adam_m);
            free(m->adam_v);
            m->adam_m = m->adam_v = NULL;
            return model_fail(err, n, -ENOMEM,
                              "model: out of memory for the optimizer's %zu x 2 moments",
                              m->n_params);
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

int model_save_optimizer(const model *m, const char *path, char *err, size_t n) {
    if (!m->adam_m)
        return model_fail(err, n, -EINVAL, "%s: no optimizer state before the first step", path);
    sl_tensors_writer *w = NULL;
    uint64_t count = m->n_params, one = 1;
    float step = (float)m->adam_steps;
    int rc = sl_tensors_writer_new(&w, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.m", m->adam_m, 1, &count, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.v", m->adam_v, 1, &count, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.step", &step, 1, &one, err, n);
    if (rc == 0)
        rc = sl_tensors_save(w, path, err, n);
    sl_tensors_writer_free(w);
    return rc;
}

int model_load_optimizer(model *m, const char *path, char *err, size_t n) {
    sl_tensors *t = NULL;
    int rc = sl_tensors_open(path, &t, err, n);
    if (rc < 0)
        return rc;
    const sl_tensor *mm = sl_tensors_find(t, "adam.m"), *vv = sl_tensors_find(t, "adam.v");
    const sl_tensor *st = sl_tensors_find(t, "adam.step");
    float step = 0;
    float *a = NULL, *b = NULL;
    if (!mm || !vv || !st || sl_tensor_count(st) != 1)
        rc = model_fail(err, n, -EINVAL, "%s: not an optimizer state (adam.m, adam.v, adam.step)",
                        path);
    else if (sl_tensor_count(mm) != m->n_params || sl_tensor_count(vv) != m->n_params)
        rc =
            model_fail(err, n, -EINVAL, "%s: optimizer state of %llu parameters, the model has %zu",
                       path, (unsigned long long)sl_tensor_count(mm), m->n_params);
    else if (!(a = malloc(m->n_params * sizeof(float))) ||
             !(b = malloc(m->n_params * sizeof(float))))
        rc = model_fail(err, n, -ENOMEM, "model: out of memory for the optimizer's moments");
    if (rc == 0)
        rc = sl_tensor_to_f32(mm, a, m->n_params, err, n);
    if (rc == 0)
        rc = sl_tensor_to_f32(vv, b, m->n_params, err, n);
    if (rc == 0)
        rc = sl_tensor_to_f32(st, &step, 1, err, n);
    if (rc == 0 && !(step >= 1 && step == floorf(step)))
        rc = model_fail(err, n, -EINVAL, "%s: adam.step %g is not a step count", path, step);
    sl_tensors_close(t);
    if (rc < 0) {
        free(a);
        free(b);
        return rc;
    }
    free(m->adam_m);
    free(m->adam_v);
    m->adam_m = a;
    m->adam_v = b;
    m->adam_steps = (long)step;
    return 0;
}
