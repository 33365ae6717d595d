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

/* What the optimizer, the gradient norm and clipping work on: the base
 * parameters, or only the adapters' once the model has LoRA adapters (the
 * base is frozen then). */
typedef struct trainable {
    const model_tensor *t;
    size_t n_tensors, n_params;
    float *params, *grads;
    float **adam_m, **adam_v;
} trainable;

static trainable trainable_of(model *m) {
    if (m->lora.r)
        return (trainable){m->lora.t,     m->lora.n_tensors, m->lora.n_params, m->lora.params,
                           m->lora.grads, &m->lora.adam_m,   &m->lora.adam_v};
    return (trainable){m->t,     m->n_tensors, m->n_params, m->params,
                       m->grads, &m->adam_m,   &m->adam_v};
}

float model_grad_norm(const model *m) {
    trainable tr = trainable_of((model *)m);
    if (!tr.grads)
        return 0.0f;
    double s = 0;
    for (size_t i = 0; i < tr.n_params; i++)
        s += (double)tr.grads[i] * tr.grads[i];
    return (float)sqrt(s);
}

float model_clip_grad(model *m, float max_norm) {
    trainable tr = trainable_of(m);
    float norm = model_grad_norm(m);
    float coef = max_norm / (norm + 1e-6f);
    if (tr.grads && coef < 1.0f)
        for (size_t i = 0; i < tr.n_params; i++)
            tr.grads[i] *= coef;
    return norm;
}

int model_adamw_step(model *m, const model_adamw *o, char *err, size_t n) {
    trainable tr = trainable_of(m);
    if (!tr.grads)
        return model_fail(err, n, -EINVAL, "model: an optimizer step before any backward");
    if (!*tr.adam_m) {
        *tr.adam_m = calloc(tr.n_params, sizeof(float));
        *tr.adam_v = calloc(tr.n_params, sizeof(float));
        if (!*tr.adam_m || !*tr.adam_v) {
            free(*tr.adam_m);
            free(*tr.adam_v);
            *tr.adam_m = *tr.adam_v = NULL;
            return model_fail(err, n, -ENOMEM,
                              "model: out of memory for the optimizer's %zu x 2 moments",
                              tr.n_params);
        }
    }
    m->adam_steps++;
    double bc1 = 1.0 - pow(o->beta1, (double)m->adam_steps);
    double bc2 = 1.0 - pow(o->beta2, (double)m->adam_steps);
    float step = (float)(o->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (size_t t = 0; t < tr.n_tensors; t++) {
        const model_tensor *x = &tr.t[t];
        float decay = x->ndim == 2 ? 1.0f - o->lr * o->weight_decay : 1.0f;
        float *p = tr.params + x->offset, *g = tr.grads + x->offset;
        float *mm = *tr.adam_m + x->offset, *vv = *tr.adam_v + x->offset;
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
    trainable tr = trainable_of((model *)m);
    if (!*tr.adam_m)
        return model_fail(err, n, -EINVAL, "%s: no optimizer state before the first step", path);
    sl_tensors_writer *w = NULL;
    uint64_t count = tr.n_params, one = 1;
    float step = (float)m->adam_steps;
    int rc = sl_tensors_writer_new(&w, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.m", *tr.adam_m, 1, &count, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.v", *tr.adam_v, 1, &count, err, n);
    if (rc == 0)
        rc = sl_tensors_add_f32(w, "adam.step", &step, 1, &one, err, n);
    if (rc == 0)
        rc = sl_tensors_save(w, path, err, n);
    sl_tensors_writer_free(w);
    return rc;
}

int model_load_optimizer(model *m, const char *path, char *err, size_t n) {
    trainable tr = trainable_of(m);
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
    else if (sl_tensor_count(mm) != tr.n_params || sl_tensor_count(vv) != tr.n_params)
        rc =
            model_fail(err, n, -EINVAL, "%s: optimizer state of %llu parameters, the model has %zu",
                       path, (unsigned long long)sl_tensor_count(mm), tr.n_params);
    else if (!(a = malloc(tr.n_params * sizeof(float))) ||
             !(b = malloc(tr.n_params * sizeof(float))))
        rc = model_fail(err, n, -ENOMEM, "model: out of memory for the optimizer's moments");
    if (rc == 0)
        rc = sl_tensor_to_f32(mm, a, tr.n_params, err, n);
    if (rc == 0)
        rc = sl_tensor_to_f32(vv, b, tr.n_params, err, n);
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
    free(*tr.adam_m);
    free(*tr.adam_v);
    *tr.adam_m = a;
    *tr.adam_v = b;
    m->adam_steps = (long)step;
    return 0;
}
