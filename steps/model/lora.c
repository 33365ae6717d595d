/* lora.c - LoRA adapters (as PEFT's LoraLayer): y = x W^T + b + scale *
 * (x A^T) B^T with scale = alpha / r, A (r, in) Kaiming-uniform, B (out, r)
 * zero, the base weights frozen. The adapters' tensors are kept apart from
 * the base parameters (model_lora in model_internal.h). */
#include <cblas.h>
#include <bson/bson.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/artifacts.h>

#include "model_internal.h"

static const char *const gpt2_targets[] = {"c_attn", "c_proj", "c_fc", NULL};
static const char *const llama_targets[] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                                            "gate_proj", "up_proj", "down_proj", NULL};

/* The module a linear belongs to, named as Hugging Face names it: its
 * weight's name without ".weight". */
static const char *linear_name(const model *m, const model_linear *l, char *buf, size_t n) {
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->t[i].offset == l->w) {
            size_t len = strlen(m->t[i].name);
            if (len >= n)
                return NULL;
            memcpy(buf, m->t[i].name, len + 1);
            char *dot = strrchr(buf, '.');
            if (dot)
                *dot = '\0';
            return buf;
        }
    return NULL;
}

/* PEFT matches a target by the last component of the module's name. */
static int name_matches(const char *module, const char *target) {
    const char *last = strrchr(module, '.');
    return strcmp(last ? last + 1 : module, target) == 0;
}

static void each_linear(model *m, void (*fn)(model *, model_linear *, void *), void *ctx) {
    for (int i = 0; i < m->c.n_layers; i++) {
        model_layer *L = &m->layers[i];
        for (int j = 0; j < L->n_qkv; j++)
            fn(m, &L->qkv[j], ctx);
        fn(m, &L->o, ctx);
        for (int j = 0; j < L->n_up; j++)
            fn(m, &L->up[j], ctx);
        fn(m, &L->down, ctx);
    }
}

typedef struct add_ctx {
    const char *const *targets;
    int n_targets;
    int r;
    int pass; /* 0 counts, 1 places */
    size_t n_tensors, n_params;
} add_ctx;

static void add_one(model *m, model_linear *l, void *vctx) {
    add_ctx *x = vctx;
    char name[100]; /* module names are short; leaves room for ".lora_A.weight" */
    if (!linear_name(m, l, name, sizeof(name)))
        return;
    int hit = 0;
    for (int k = 0; k < x->n_targets && !hit; k++)
        hit = name_matches(name, x->targets[k]);
    if (!hit)
        return;
    size_t a = x->n_params, b = a + (size_t)x->r * l->in;
    if (x->pass) {
        model_tensor *ta = &m->lora.t[x->n_tensors], *tb = ta + 1;
        snprintf(ta->name, sizeof(ta->name), "%s.lora_A.weight", name);
        ta->ndim = 2, ta->shape[0] = (uint64_t)x->r, ta->shape[1] = (uint64_t)l->in;
        ta->offset = a, ta->count = (size_t)x->r * l->in;
        snprintf(tb->name, sizeof(tb->name), "%s.lora_B.weight", name);
        tb->ndim = 2, tb->shape[0] = (uint64_t)l->out, tb->shape[1] = (uint64_t)x->r;
        tb->offset = b, tb->count = (size_t)l->out * x->r;
        l->la = a, l->lb = b;
    }
    x->n_tensors += 2;
    x->n_params = b + (size_t)l->out * x->r;
    if (l->in > m->lora.max_in)
        m->lora.max_in = l->in;
}

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

const char *const *model_lora_modules(const model *m) {
    return m->c.arch == MODEL_GPT2 ? gpt2_targets : llama_targets;
}

int model_lora_add(model *m, int r, float alpha, const char *const *targets, int n_targets,
                   uint64_t seed, char *err, size_t n) {
    if (m->lora.r)
        return model_fail(err, n, -EINVAL, "lora: the model already has adapters");
    if (r <= 0)
        return model_fail(err, n, -EINVAL, "lora: r must be positive, not %d", r);
    if (n_targets <= 0 || n_targets > 8)
        return model_fail(err, n, -EINVAL, "lora: %d target_modules (1 to 8)", n_targets);
    const char *const *known = model_lora_modules(m);
    for (int k = 0; k < n_targets; k++) {
        int ok = 0;
        for (int j = 0; known[j] && !ok; j++)
            ok = strcmp(known[j], targets[k]) == 0;
        if (!ok) {
            char list[160] = "";
            for (int j = 0; known[j]; j++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", j ? ", " : "",
                         known[j]);
            return model_fail(err, n, -EINVAL,
                              "lora: unknown target module \"%s\" for a %s model (known: %s)",
                              targets[k], m->c.model_type, list);
        }
    }
    add_ctx x = {targets, n_targets, r, 0, 0, 0};
    each_linear(m, add_one, &x);
    model_lora *lo = &m->lora;
    lo->t = calloc(x.n_tensors, sizeof(*lo->t));
    lo->params = calloc(x.n_params, sizeof(float));
    lo->scratch_floats = 2 * (size_t)r;
    lo->scratch = malloc(lo->scratch_floats * sizeof(float));
    if (!lo->t || !lo->params || !lo->scratch) {
        model_lora_release(m);
        return model_fail(err, n, -ENOMEM, "lora: out of memory for %zu adapter parameters",
                          x.n_params);
    }
    x.pass = 1, x.n_tensors = 0, x.n_params = 0;
    lo->training = 1;
    each_linear(m, add_one, &x);
    lo->n_tensors = x.n_tensors, lo->n_params = x.n_params;
    lo->r = r, lo->alpha = alpha, lo->scale = alpha / (float)r;
    for (int k = 0; k < n_targets && k < 8; k++) {
        snprintf(lo->targets[k], sizeof(lo->targets[k]), "%s", targets[k]);
        lo->n_targets = k + 1;
    }
    /* A as torch's kaiming_uniform_(a=sqrt(5)): bound = 1 / sqrt(in); B 0. */
    uint64_t s = seed;
    for (size_t i = 0; i < lo->n_tensors; i += 2) {
        const model_tensor *ta = &lo->t[i];
        float bound = 1.0f / sqrtf((float)ta->shape[1]);
        for (size_t k = 0; k < ta->count; k++) {
            double u = (double)(next_u64(&s) >> 11) * (1.0 / 9007199254740992.0);
            lo->params[ta->offset + k] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    /* The frozen base keeps neither gradients nor moments: the adapters'
     * gradients come with the first backward, their moments with the
     * first step. */
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    m->grads = m->adam_m = m->adam_v = NULL;
    m->adam_steps = 0;
    return 0;
}

static void clear_one(model *m, model_linear *l, void *ctx) {
    (void)m, (void)ctx;
    l->la = l->lb = MODEL_NONE;
}

void model_lora_release(model *m) {
    model_lora *lo = &m->lora;
    int had = lo->n_tensors > 0;
    free(lo->t);
    free(lo->params);
    free(lo->grads);
    free(lo->adam_m);
    free(lo->adam_v);
    free(lo->scratch);
    free(lo->xd);
    memset(lo, 0, sizeof(*lo));
    if (had && m->layers)
        each_linear(m, clear_one, NULL);
}

/* h and dh of one adapter; with dropout also the dropped input */
static size_t hidden_floats(const model *m, int rows) { return 2 * (size_t)rows * m->lora.r; }

static size_t dropped_floats(const model *m, int rows) {
    return m->lora.dropout > 0 ? (size_t)rows * m->lora.max_in : 0;
}

size_t model_lora_scratch_floats(const model *m, int rows) {
    return m->lora.r ? hidden_floats(m, rows) + dropped_floats(m, rows) : 0;
}

static int lora_fit_xd(model *m, int rows, char *err, size_t n) {
    model_lora *lo = &m->lora;
    size_t need = dropped_floats(m, rows);
    if (need <= lo->xd_floats)
        return 0;
    float *p = realloc(lo->xd, need * sizeof(float));
    if (!p)
        return model_fail(err, n, -ENOMEM, "lora: out of memory for %d rows", rows);
    lo->xd = p, lo->xd_floats = need;
    return 0;
}

int model_lora_dropout(model *m, float p, uint64_t seed, char *err, size_t n) {
    model_lora *lo = &m->lora;
    if (!lo->r)
        return model_fail(err, n, -EINVAL, "lora: dropout before any adapter");
    if (!(p >= 0 && p < 1))
        return model_fail(err, n, -EINVAL, "lora: dropout %g is not in [0, 1)", p);
    lo->dropout = p, lo->drop_seed = seed;
    lo->xd_floats = 0;
    free(lo->xd);
    lo->xd = NULL;
    /* one row for decoding; model_forward grows it to its batch */
    return lora_fit_xd(m, 1, err, n);
}

void model_lora_train(model *m, int on) { m->lora.training = on; }

static int dropping(const model *m) { return m->lora.dropout > 0 && m->lora.training; }

/* Whether element i of layer l's input is kept at this optimizer step. */
static int kept(const model *m, const model_linear *l, size_t i) {
    uint64_t s = m->lora.drop_seed ^ ((uint64_t)m->adam_steps * 0xd1b54a32d192ed03ULL) ^
                 ((uint64_t)l->la * 0x8cb92ba72f3d8dd7ULL) ^ (i * 0x9e3779b97f4a7c15ULL);
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0) >= m->lora.dropout;
}

/* The adapter's input: x itself, or its dropped copy (kept / (1 - p), as
 * torch's Dropout) in lo->xd. */
static const float *adapter_input(const model *m, const model_linear *l, const float *x, int rows) {
    if (!dropping(m))
        return x;
    float *xd = m->lora.xd, k = 1.0f / (1.0f - m->lora.dropout);
    size_t cnt = (size_t)rows * l->in;
    for (size_t i = 0; i < cnt; i++)
        xd[i] = kept(m, l, i) ? x[i] * k : 0.0f;
    return xd;
}

int model_lora_fit(model *m, int rows, char *err, size_t n) {
    model_lora *lo = &m->lora;
    size_t need = hidden_floats(m, rows);
    if (!lo->r)
        return 0;
    if (need > lo->scratch_floats) {
        float *p = realloc(lo->scratch, need * sizeof(float));
        if (!p)
            return model_fail(err, n, -ENOMEM, "lora: out of memory for %d rows", rows);
        lo->scratch = p, lo->scratch_floats = need;
    }
    return lora_fit_xd(m, rows, err, n);
}

/* y += scale * (x A^T) B^T */
void model_lora_forward(const model *m, const model_linear *l, float *y, int ldy, const float *x,
                        int rows) {
    const model_lora *lo = &m->lora;
    const float *A = lo->params + l->la, *B = lo->params + l->lb;
    float *h = lo->scratch;
    x = adapter_input(m, l, x, rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, lo->r, l->in, 1.0f, x, l->in, A,
                l->in, 0.0f, h, lo->r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, lo->r, lo->scale, h, lo->r,
                B, lo->r, 1.0f, y, ldy);
}

/* h = x A^T is recomputed (rows x in x r, small beside the base product);
 * dB += scale dy^T h, dh = scale dy B, dA += dh^T x, dx += dh A. dx already
 * holds the base path's dy W. */
void model_lora_backward(model *m, const model_linear *l, float *dx, const float *dy, int ldy,
                         const float *x, int rows) {
    model_lora *lo = &m->lora;
    const float *A = lo->params + l->la, *B = lo->params + l->lb;
    float *dA = lo->grads + l->la, *dB = lo->grads + l->lb;
    float *h = lo->scratch, *dh = lo->scratch + (size_t)rows * lo->r;
    int r = lo->r;
    x = adapter_input(m, l, x, rows);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r, l->in, 1.0f, x, l->in, A, l->in,
                0.0f, h, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, r, rows, lo->scale, dy, ldy, h, r,
                1.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, r, l->out, lo->scale, dy, ldy, B,
                r, 0.0f, dh, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, l->in, rows, 1.0f, dh, r, x, l->in,
                1.0f, dA, l->in);
    if (!dx)
        return;
    if (!dropping(m)) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->in, r, 1.0f, dh, r, A,
                    l->in, 1.0f, dx, l->in);
        return;
    }
    /* through the dropout: the kept elements' share, scaled as forward */
    float *t = lo->xd, k = 1.0f / (1.0f - lo->dropout);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->in, r, 1.0f, dh, r, A, l->in,
                0.0f, t, l->in);
    size_t cnt = (size_t)rows * l->in;
    for (size_t i = 0; i < cnt; i++)
        if (kept(m, l, i))
            dx[i] += t[i] * k;
}

static void merge_one(model *m, model_linear *l, void *ctx) {
    (void)ctx;
    if (l->la == MODEL_NONE)
        return;
    model_lora *lo = &m->lora;
    const float *A = lo->params + l->la, *B = lo->params + l->lb;
    float *W = m->params + l->w;
    if (l->in_out) /* W (in, out) += scale A^T B^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, l->in, l->out, lo->r, lo->scale, A,
                    l->in, B, lo->r, 1.0f, W, l->out);
    else /* W (out, in) += scale B A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->out, l->in, lo->r, lo->scale, B,
                    lo->r, A, l->in, 1.0f, W, l->in);
}

int model_lora_merge(model *m, char *err, size_t n) {
    if (!m->lora.r)
        return model_fail(err, n, -EINVAL, "lora: the model has no adapters to merge");
    each_linear(m, merge_one, NULL);
    model_lora_release(m);
    return 0;
}

int model_lora_r(const model *m) { return m->lora.r; }
size_t model_lora_tensor_count(const model *m) { return m->lora.n_tensors; }
const char *model_lora_tensor_name(const model *m, size_t i) {
    return i < m->lora.n_tensors ? m->lora.t[i].name : NULL;
}
int model_lora_tensor_shape(const model *m, size_t i, uint64_t shape[2]) {
    if (i >= m->lora.n_tensors)
        return -EINVAL;
    shape[0] = m->lora.t[i].shape[0], shape[1] = m->lora.t[i].shape[1];
    return 2;
}
float *model_lora_tensor_data(model *m, size_t i, size_t *count) {
    if (i >= m->lora.n_tensors)
        return NULL;
    *count = m->lora.t[i].count;
    return m->lora.params + m->lora.t[i].offset;
}
const float *model_lora_tensor_grad(const model *m, size_t i, size_t *count) {
    if (i >= m->lora.n_tensors || !m->lora.grads)
        return NULL;
    *count = m->lora.t[i].count;
    return m->lora.grads + m->lora.t[i].offset;
}

/* PEFT's keys: "base_model.model." + the module's name in the
 * *ForCausalLM model, whose GPT-2 body is "transformer." (this library
 * names GPT-2's tensors as the bare GPT2Model does). */
static const char *peft_prefix(const model *m) {
    return m->c.arch == MODEL_GPT2 ? "base_model.model.transformer." : "base_model.model.";
}

int model_lora_save(const model *m, const char *dir, const char *base_model, char *err, size_t n) {
    const model_lora *lo = &m->lora;
    if (!lo->r)
        return model_fail(err, n, -EINVAL, "lora: the model has no adapters to save");
    char path[4096], key[256];
    bson_t doc, arr;
    bson_init(&doc);
    BSON_APPEND_UTF8(&doc, "peft_type", "LORA");
    BSON_APPEND_UTF8(&doc, "task_type", "CAUSAL_LM");
    BSON_APPEND_UTF8(&doc, "base_model_name_or_path", base_model ? base_model : "");
    BSON_APPEND_INT32(&doc, "r", lo->r);
    BSON_APPEND_DOUBLE(&doc, "lora_alpha", lo->alpha);
    BSON_APPEND_DOUBLE(&doc, "lora_dropout", lo->dropout);
    BSON_APPEND_BOOL(&doc, "fan_in_fan_out", m->c.arch == MODEL_GPT2);
    BSON_APPEND_UTF8(&doc, "bias", "none");
    BSON_APPEND_BOOL(&doc, "inference_mode", true);
    bson_append_array_begin(&doc, "target_modules", -1, &arr);
    for (int k = 0; k < lo->n_targets; k++) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", k);
        bson_append_utf8(&arr, idx, -1, lo->targets[k], -1);
    }
    bson_append_array_end(&doc, &arr);
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    int rc = sl_json_write(path, &doc, err, n);
    bson_destroy(&doc);
    if (rc < 0)
        return rc;
    sl_tensors_writer *w = NULL;
    rc = sl_tensors_writer_new(&w, err, n);
    for (size_t i = 0; rc == 0 && i < lo->n_tensors; i++) {
        const model_tensor *t = &lo->t[i];
        snprintf(key, sizeof(key), "%s%s", peft_prefix(m), t->name);
        rc = sl_tensors_add_f32(w, key, lo->params + t->offset, 2, t->shape, err, n);
    }
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    if (rc == 0)
        rc = sl_tensors_save(w, path, err, n);
    sl_tensors_writer_free(w);
    return rc;
}

static int read_config(const char *path, int *r, double *alpha, char targets[8][16], int *nt,
                       char *err, size_t n) {
    bson_t *doc = NULL;
    int rc = sl_json_read(path, &doc, err, n);
    if (rc < 0)
        return rc;
    bson_iter_t it, sub;
    *r = 0, *alpha = 0, *nt = 0;
    const char *type = NULL;
    if (bson_iter_init_find(&it, doc, "peft_type") && BSON_ITER_HOLDS_UTF8(&it))
        type = bson_iter_utf8(&it, NULL);
    if (!type || strcmp(type, "LORA")) {
        rc = model_fail(err, n, -EINVAL, "%s: peft_type is %s, not LORA", path,
                        type ? type : "missing");
        goto out;
    }
    if (bson_iter_init_find(&it, doc, "r") && BSON_ITER_HOLDS_NUMBER(&it))
        *r = (int)bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, doc, "lora_alpha") && BSON_ITER_HOLDS_NUMBER(&it))
        *alpha = bson_iter_as_double(&it);
    if (bson_iter_init_find(&it, doc, "target_modules")) {
        if (BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(targets[0], 16, "%s", bson_iter_utf8(&it, NULL));
            *nt = 1;
        } else if (BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub)) {
            while (bson_iter_next(&sub) && BSON_ITER_HOLDS_UTF8(&sub)) {
                if (*nt == 8) {
                    rc = model_fail(err, n, -EINVAL, "%s: more than 8 target_modules", path);
                    goto out;
                }
                const char *s = bson_iter_utf8(&sub, NULL);
                if (strlen(s) >= 16) {
                    rc = model_fail(err, n, -EINVAL, "%s: unknown target module \"%s\"", path, s);
                    goto out;
                }
                snprintf(targets[(*nt)++], 16, "%s", s);
            }
        }
    }
    if (*nt == 0)
        rc = model_fail(err, n, -EINVAL, "%s: no target_modules", path);
out:
    bson_destroy(doc);
    return rc;
}

int model_lora_load(model *m, const char *dir, char *err, size_t n) {
    char path[4096], key[256];
    char targets[8][16];
    const char *tp[8];
    int r, nt;
    double alpha;
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    int rc = read_config(path, &r, &alpha, targets, &nt, err, n);
    if (rc < 0)
        return rc;
    for (int k = 0; k < nt; k++)
        tp[k] = targets[k];
    char sub[256];
    rc = model_lora_add(m, r, (float)alpha, tp, nt, 0, sub, sizeof(sub));
    if (rc < 0)
        return model_fail(err, n, rc, "%s: %s", path, sub);
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    sl_tensors *ts = NULL;
    rc = sl_tensors_open(path, &ts, err, n);
    model_lora *lo = &m->lora;
    for (size_t i = 0; rc == 0 && i < lo->n_tensors; i++) {
        const model_tensor *t = &lo->t[i];
        snprintf(key, sizeof(key), "%s%s", peft_prefix(m), t->name);
        const sl_tensor *x = sl_tensors_find(ts, key);
        if (!x)
            rc = model_fail(err, n, -EINVAL, "%s: no tensor %s", path, key);
        else if (sl_tensor_ndim(x) != 2 || sl_tensor_dim(x, 0) != t->shape[0] ||
                 sl_tensor_dim(x, 1) != t->shape[1])
            rc = model_fail(err, n, -EINVAL,
                            "%s: %s does not fit the base model: expected shape (%llu, %llu)", path,
                            key, (unsigned long long)t->shape[0], (unsigned long long)t->shape[1]);
        else
            rc = sl_tensor_to_f32(x, lo->params + t->offset, t->count, err, n);
    }
    if (ts && rc == 0 && sl_tensors_count(ts) != lo->n_tensors)
        rc = model_fail(err, n, -EINVAL,
                        "%s: %zu tensors, the target modules give %zu on this base model", path,
                        (size_t)sl_tensors_count(ts), lo->n_tensors);
    if (ts)
        sl_tensors_close(ts);
    if (rc < 0)
        model_lora_release(m);
    return rc;
}

int model_open_adapted(const char *dir, model **m, int *lora_r, char *err, size_t n) {
    if (lora_r)
        *lora_r = 0;
    int rc = model_open(dir, m, err, n);
    if (rc != 0)
        return rc;
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    if (stat(path, &st) != 0)
        return 0;
    char why[512];
    rc = model_lora_load(*m, dir, why, sizeof(why));
    if (rc == 0 && lora_r)
        *lora_r = model_lora_r(*m);
    if (rc == 0)
        rc = model_lora_merge(*m, why, sizeof(why));
    if (rc != 0) {
        model_free(*m);
        *m = NULL;
        return model_fail(err, n, rc, "the LoRA adapter in %s: %s", dir, why);
    }
    return 0;
}
