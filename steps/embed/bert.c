/* bert.c - the BERT encoder of bert.h: loading a Hugging Face folder and the
 * forward pass, every projection one cblas_sgemm over a whole batch. */
#include "bert.h"

#include <bson/bson.h>
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

typedef struct bert_layer {
    float *wq, *bq, *wk, *bk, *wv, *bv; /* [H, H], [H] */
    float *wo, *bo, *ln1_g, *ln1_b;     /* attention output dense, its LayerNorm */
    float *wi, *bi;                     /* [inter, H], [inter] */
    float *wf, *bf, *ln2_g, *ln2_b;     /* [H, inter], [H]; output LayerNorm */
} bert_layer;

struct bert_model {
    bert_config cfg;
    float *word, *pos, *type, *ln_g, *ln_b; /* embeddings */
    bert_layer *layers;
    wordpiece *wp;
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(char *err, size_t size, int rc, const char *fmt, ...) {
    if (err && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- config.json ---------------------------------------------------------- */

static int read_file(const char *path, char **data, size_t *len, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return fail(err, err_size, -e, "%s: %s", path, strerror(e));
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *grown = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
        } else {
            buf = grown;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return fail(err, err_size, -ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return fail(err, err_size, -EIO, "%s: read error", path);
    }
    *data = buf;
    *len = n;
    return 0;
}

static int config_size(const bson_t *doc, const char *key, size_t min, size_t *out,
                       const char *path, char *err, size_t err_size) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key))
        return fail(err, err_size, -EINVAL, "%s: missing %s", path, key);
    if (!BSON_ITER_HOLDS_INT32(&it) && !BSON_ITER_HOLDS_INT64(&it))
        return fail(err, err_size, -EINVAL, "%s: %s is not an integer", path, key);
    int64_t v = bson_iter_as_int64(&it);
    if (v < (int64_t)min || v > (1 << 24))
        return fail(err, err_size, -EINVAL, "%s: %s is %lld, outside [%zu, %d]", path, key,
                    (long long)v, min, 1 << 24);
    *out = (size_t)v;
    return 0;
}

static int read_config(const char *dir, bert_config *c, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, err, err_size);
    if (rc)
        return rc;
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, (ssize_t)len, &e);
    free(text);
    if (!doc)
        return fail(err, err_size, -EINVAL, "%s: not a JSON object: %s", path, e.message);
    bson_iter_t it;
    if ((rc = config_size(doc, "hidden_size", 1, &c->hidden_size, path, err, err_size)) ||
        (rc = config_size(doc, "num_hidden_layers", 1, &c->num_hidden_layers, path, err,
                          err_size)) ||
        (rc = config_size(doc, "num_attention_heads", 1, &c->num_attention_heads, path, err,
                          err_size)) ||
        (rc = config_size(doc, "intermediate_size", 1, &c->intermediate_size, path, err,
                          err_size)) ||
        (rc = config_size(doc, "max_position_embeddings", 2, &c->max_position_embeddings, path,
                          err, err_size)) ||
        (rc = config_size(doc, "type_vocab_size", 1, &c->type_vocab_size, path, err, err_size)) ||
        (rc = config_size(doc, "vocab_size", 1, &c->vocab_size, path, err, err_size)))
        goto out;
    if (c->hidden_size % c->num_attention_heads) {
        rc = fail(err, err_size, -EINVAL,
                  "%s: hidden_size %zu is not a multiple of num_attention_heads %zu", path,
                  c->hidden_size, c->num_attention_heads);
        goto out;
    }
    if (!bson_iter_init_find(&it, doc, "layer_norm_eps") || !BSON_ITER_HOLDS_NUMBER(&it) ||
        !(bson_iter_as_double(&it) > 0) || !(bson_iter_as_double(&it) < 1)) {
        rc = fail(err, err_size, -EINVAL, "%s: layer_norm_eps is missing or not in (0, 1)", path);
        goto out;
    }
    c->layer_norm_eps = bson_iter_as_double(&it);
    if (!bson_iter_init_find(&it, doc, "hidden_act") || !BSON_ITER_HOLDS_UTF8(&it)) {
        rc = fail(err, err_size, -EINVAL, "%s: hidden_act is missing or not a string", path);
        goto out;
    }
    const char *act = bson_iter_utf8(&it, NULL);
    if (strcmp(act, "gelu") != 0) {
        rc = fail(err, err_size, -EINVAL, "%s: hidden_act is '%s'; only 'gelu' is supported",
                  path, act);
        goto out;
    }
out:
    bson_destroy(doc);
    return rc;
}

/* ---- model.safetensors ---------------------------------------------------- */

typedef struct loader {
    const safetensors *st;
    const char *path;
    char *err;
    size_t err_size;
} loader;

static void show_shape(char *out, size_t size, const uint64_t *shape, size_t ndim) {
    size_t k = (size_t)snprintf(out, size, "[");
    for (size_t i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    if (k < size)
        snprintf(out + k, size - k, "]");
}

/* Copies the F32 tensor name (or bert.name) of shape [d0] (d1 == 0) or
 * [d0, d1] into a new array *dst. */
static int take(const loader *l, const char *name, size_t d0, size_t d1, float **dst) {
    char prefixed[256];
    snprintf(prefixed, sizeof(prefixed), "bert.%s", name);
    const st_tensor *t = safetensors_find(l->st, name);
    if (!t)
        t = safetensors_find(l->st, prefixed);
    if (!t)
        return fail(l->err, l->err_size, -EINVAL, "%s: missing tensor '%s' (or '%s')", l->path,
                    name, prefixed);
    if (t->dtype != ST_F32)
        return fail(l->err, l->err_size, -EINVAL, "%s: tensor '%s' is %s; only F32 is supported",
                    l->path, t->name, st_dtype_name(t->dtype));
    uint64_t want[2] = {d0, d1};
    size_t ndim = d1 ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1])) {
        char got[128], exp[64];
        show_shape(got, sizeof(got), t->shape, t->ndim);
        show_shape(exp, sizeof(exp), want, ndim);
        return fail(l->err, l->err_size, -EINVAL, "%s: tensor '%s' has shape %s, expected %s",
                    l->path, t->name, got, exp);
    }
    size_t count = d0 * (d1 ? d1 : 1);
    float *p = malloc(count * sizeof(float));
    if (!p)
        return fail(l->err, l->err_size, -ENOMEM, "%s: out of memory", l->path);
    memcpy(p, t->data, count * sizeof(float)); /* the mapping need not be aligned */
    *dst = p;
    return 0;
}

static void free_layer(bert_layer *y) {
    float *all[] = {y->wq, y->bq, y->wk, y->bk, y->wv, y->bv, y->wo, y->bo,
                    y->ln1_g, y->ln1_b, y->wi, y->bi, y->wf, y->bf, y->ln2_g, y->ln2_b};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]);
}

void bert_free(bert_model *m) {
    if (!m)
        return;
    free(m->word);
    free(m->pos);
    free(m->type);
    free(m->ln_g);
    free(m->ln_b);
    if (m->layers)
        for (size_t i = 0; i < m->cfg.num_hidden_layers; i++)
            free_layer(&m->layers[i]);
    free(m->layers);
    wordpiece_free(m->wp);
    free(m);
}

static int load_weights(bert_model *m, const loader *l) {
    const bert_config *c = &m->cfg;
    size_t H = c->hidden_size, inter = c->intermediate_size;
    int rc;
    if ((rc = take(l, "embeddings.word_embeddings.weight", c->vocab_size, H, &m->word)) ||
        (rc = take(l, "embeddings.position_embeddings.weight", c->max_position_embeddings, H,
                   &m->pos)) ||
        (rc = take(l, "embeddings.token_type_embeddings.weight", c->type_vocab_size, H,
                   &m->type)) ||
        (rc = take(l, "embeddings.LayerNorm.weight", H, 0, &m->ln_g)) ||
        (rc = take(l, "embeddings.LayerNorm.bias", H, 0, &m->ln_b)))
        return rc;
    for (size_t i = 0; i < c->num_hidden_layers; i++) {
        bert_layer *y = &m->layers[i];
        const struct {
            const char *suffix;
            size_t d0, d1;
            float **dst;
        } parts[] = {
            {"attention.self.query.weight", H, H, &y->wq},
            {"attention.self.query.bias", H, 0, &y->bq},
            {"attention.self.key.weight", H, H, &y->wk},
            {"attention.self.key.bias", H, 0, &y->bk},
            {"attention.self.value.weight", H, H, &y->wv},
            {"attention.self.value.bias", H, 0, &y->bv},
            {"attention.output.dense.weight", H, H, &y->wo},
            {"attention.output.dense.bias", H, 0, &y->bo},
            {"attention.output.LayerNorm.weight", H, 0, &y->ln1_g},
            {"attention.output.LayerNorm.bias", H, 0, &y->ln1_b},
            {"intermediate.dense.weight", inter, H, &y->wi},
            {"intermediate.dense.bias", inter, 0, &y->bi},
            {"output.dense.weight", H, inter, &y->wf},
            {"output.dense.bias", H, 0, &y->bf},
            {"output.LayerNorm.weight", H, 0, &y->ln2_g},
            {"output.LayerNorm.bias", H, 0, &y->ln2_b},
        };
        for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
            char name[200];
            snprintf(name, sizeof(name), "encoder.layer.%zu.%s", i, parts[k].suffix);
            if ((rc = take(l, name, parts[k].d0, parts[k].d1, parts[k].dst)))
                return rc;
        }
    }
    return 0;
}

int bert_load(const char *dir, bert_model **out, char *err, size_t err_size) {
    *out = NULL;
    if (err && err_size)
        err[0] = '\0';
    bert_model *m = calloc(1, sizeof(*m));
    if (!m)
        return fail(err, err_size, -ENOMEM, "%s: out of memory", dir);
    int rc = read_config(dir, &m->cfg, err, err_size);
    if (rc) {
        free(m);
        return rc;
    }
    m->layers = calloc(m->cfg.num_hidden_layers, sizeof(*m->layers));
    if (!m->layers) {
        bert_free(m);
        return fail(err, err_size, -ENOMEM, "%s: out of memory", dir);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    safetensors st;
    if ((rc = safetensors_open(&st, path, err, err_size))) {
        bert_free(m);
        return rc;
    }
    loader l = {&st, path, err, err_size};
    rc = load_weights(m, &l);
    safetensors_close(&st);
    if (!rc)
        rc = wordpiece_new(dir, &m->wp, err, err_size);
    if (!rc && wordpiece_vocab_size(m->wp) > m->cfg.vocab_size)
        rc = fail(err, err_size, -EINVAL,
                  "%s/vocab.txt: %zu tokens, more than the model's vocab_size %zu", dir,
                  wordpiece_vocab_size(m->wp), m->cfg.vocab_size);
    if (rc) {
        bert_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const bert_config *bert_model_config(const bert_model *m) { return &m->cfg; }
const wordpiece *bert_model_tokenizer(const bert_model *m) { return m->wp; }

/* ---- the forward pass ----------------------------------------------------- */

/* y[N, out] = x[N, in] W^T + b, W [out, in] row-major. */
static void linear(const float *x, size_t N, size_t in, const float *W, const float *b, size_t out,
                   float *y) {
    for (size_t t = 0; t < N; t++)
        memcpy(y + t * out, b, out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)out, (int)in, 1.0f, x,
                (int)in, W, (int)in, 1.0f, y, (int)out);
}

/* x = LayerNorm(x + r) per row (r may be NULL). */
static void layer_norm(float *x, const float *r, size_t N, size_t H, const float *g,
                       const float *b, double eps) {
    for (size_t t = 0; t < N; t++) {
        float *row = x + t * H;
        if (r)
            for (size_t j = 0; j < H; j++)
                row[j] += r[t * H + j];
        double mean = 0, var = 0;
        for (size_t j = 0; j < H; j++)
            mean += row[j];
        mean /= (double)H;
        for (size_t j = 0; j < H; j++) {
            double d = row[j] - mean;
            var += d * d;
        }
        var /= (double)H;
        double inv = 1.0 / sqrt(var + eps);
        for (size_t j = 0; j < H; j++)
            row[j] = (float)((row[j] - mean) * inv) * g[j] + b[j];
    }
}

/* The scratch space of one batch of rows x width tokens. */
typedef struct scratch {
    float *x, *q, *k, *v, *ctx, *tmp, *ffn, *scores;
    double *acc; /* one row's pooling sums */
} scratch;

static void scratch_free(scratch *s) {
    free(s->x);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->ctx);
    free(s->tmp);
    free(s->ffn);
    free(s->scores);
    free(s->acc);
}

static int scratch_alloc(scratch *s, size_t N, size_t T, const bert_config *c) {
    memset(s, 0, sizeof(*s));
    size_t H = c->hidden_size, inter = c->intermediate_size;
    if (N > SIZE_MAX / sizeof(float) / (inter > H ? inter : H) || T > SIZE_MAX / sizeof(float) / T)
        return -ENOMEM;
    size_t nh = N * H * sizeof(float);
    s->x = malloc(nh);
    s->q = malloc(nh);
    s->k = malloc(nh);
    s->v = malloc(nh);
    s->ctx = malloc(nh);
    s->tmp = malloc(nh);
    s->ffn = malloc(N * inter * sizeof(float));
    s->scores = malloc(T * T * sizeof(float));
    s->acc = malloc(H * sizeof(double));
    if (!s->x || !s->q || !s->k || !s->v || !s->ctx || !s->tmp || !s->ffn || !s->scores ||
        !s->acc) {
        scratch_free(s);
        return -ENOMEM;
    }
    return 0;
}

/* Masked keys: the value transformers' extended attention mask adds
 * (torch.finfo(float32).min); after the max is subtracted its exp is 0. */
#define MASKED (-FLT_MAX)

static void attention(const bert_model *m, const wordpiece_batch *b, scratch *s) {
    const bert_config *c = &m->cfg;
    size_t H = c->hidden_size, nh = c->num_attention_heads, dh = H / nh, T = b->width;
    float scale = (float)(1.0 / sqrt((double)dh));
    for (size_t r = 0; r < b->rows; r++) {
        const int64_t *mask = b->attention_mask + r * T;
        size_t base = r * T * H;
        for (size_t h = 0; h < nh; h++) {
            const float *Q = s->q + base + h * dh, *K = s->k + base + h * dh,
                        *V = s->v + base + h * dh;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)dh, scale, Q,
                        (int)H, K, (int)H, 0.0f, s->scores, (int)T);
            for (size_t i = 0; i < T; i++) {
                float *row = s->scores + i * T;
                float max = MASKED;
                for (size_t j = 0; j < T; j++) {
                    if (!mask[j])
                        row[j] = MASKED;
                    else if (row[j] > max)
                        max = row[j];
                }
                double sum = 0;
                for (size_t j = 0; j < T; j++) {
                    row[j] = mask[j] ? expf(row[j] - max) : 0.0f;
                    sum += row[j];
                }
                /* All keys masked (an empty row): no weight anywhere. */
                float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f;
                for (size_t j = 0; j < T; j++)
                    row[j] *= inv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)dh, (int)T, 1.0f,
                        s->scores, (int)T, V, (int)H, 0.0f, s->ctx + base + h * dh, (int)H);
        }
    }
}

static void encode(const bert_model *m, const wordpiece_batch *b, scratch *s) {
    const bert_config *c = &m->cfg;
    size_t H = c->hidden_size, inter = c->intermediate_size, T = b->width, N = b->rows * T;
    for (size_t t = 0; t < N; t++) {
        const float *w = m->word + (size_t)b->input_ids[t] * H;
        const float *p = m->pos + (t % T) * H;
        const float *y = m->type + (size_t)b->token_type_ids[t] * H;
        float *x = s->x + t * H;
        for (size_t j = 0; j < H; j++)
            x[j] = w[j] + p[j] + y[j];
    }
    layer_norm(s->x, NULL, N, H, m->ln_g, m->ln_b, c->layer_norm_eps);
    for (size_t l = 0; l < c->num_hidden_layers; l++) {
        const bert_layer *y = &m->layers[l];
        linear(s->x, N, H, y->wq, y->bq, H, s->q);
        linear(s->x, N, H, y->wk, y->bk, H, s->k);
        linear(s->x, N, H, y->wv, y->bv, H, s->v);
        attention(m, b, s);
        linear(s->ctx, N, H, y->wo, y->bo, H, s->tmp);
        layer_norm(s->tmp, s->x, N, H, y->ln1_g, y->ln1_b, c->layer_norm_eps);
        /* tmp now holds the attention block's output: x for the FFN. */
        linear(s->tmp, N, H, y->wi, y->bi, inter, s->ffn);
        for (size_t k = 0; k < N * inter; k++) {
            float v = s->ffn[k];
            s->ffn[k] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
        }
        linear(s->ffn, N, inter, y->wf, y->bf, H, s->x);
        layer_norm(s->x, s->tmp, N, H, y->ln2_g, y->ln2_b, c->layer_norm_eps);
    }
}

static void pool(const bert_model *m, const wordpiece_batch *b, const scratch *s, float *out) {
    size_t H = m->cfg.hidden_size, T = b->width;
    for (size_t r = 0; r < b->rows; r++) {
        float *o = out + r * H;
        double *acc = s->acc;
        const float *x = s->x;
        memset(acc, 0, H * sizeof(double));
        size_t count = 0;
        for (size_t t = 0; t < T; t++) {
            if (!b->attention_mask[r * T + t])
                continue;
            const float *row = x + (r * T + t) * H;
            for (size_t j = 0; j < H; j++)
                acc[j] += row[j];
            count++;
        }
        double norm = 0;
        for (size_t j = 0; j < H; j++) {
            acc[j] /= count ? (double)count : 1.0;
            acc[j] = (float)acc[j]; /* sentence-transformers pools in float32 */
            norm += acc[j] * acc[j];
        }
        norm = sqrt(norm);
        if (norm < 1e-12)
            norm = 1e-12;
        for (size_t j = 0; j < H; j++)
            o[j] = (float)(acc[j] / norm);
    }
}

int bert_forward(const bert_model *m, const wordpiece_batch *b, float *out, char *err,
                 size_t err_size) {
    const bert_config *c = &m->cfg;
    if (b->rows == 0)
        return 0;
    if (b->width == 0 || b->width > c->max_position_embeddings)
        return fail(err, err_size, -EINVAL, "a batch %zu tokens wide; the model takes 1 to %zu",
                    b->width, c->max_position_embeddings);
    if (b->rows > (size_t)INT32_MAX / b->width || b->width > 46340)
        return fail(err, err_size, -EINVAL, "a batch of %zu x %zu tokens is too large", b->rows,
                    b->width);
    for (size_t t = 0; t < b->rows * b->width; t++)
        if (b->input_ids[t] < 0 || (uint64_t)b->input_ids[t] >= c->vocab_size ||
            b->token_type_ids[t] < 0 || (uint64_t)b->token_type_ids[t] >= c->type_vocab_size)
            return fail(err, err_size, -EINVAL,
                        "token %zu of row %zu: id %lld or type %lld is out of range", t % b->width,
                        t / b->width, (long long)b->input_ids[t], (long long)b->token_type_ids[t]);
    scratch s;
    if (scratch_alloc(&s, b->rows * b->width, b->width, c))
        return fail(err, err_size, -ENOMEM, "out of memory for a batch of %zu x %zu tokens",
                    b->rows, b->width);
    encode(m, b, &s);
    pool(m, b, &s, out);
    scratch_free(&s);
    return 0;
}

int bert_embed(const bert_model *m, const char *const *texts, const size_t *lens, size_t n,
               size_t max_length, float *out, char *err, size_t err_size) {
    const bert_config *c = &m->cfg;
    if (max_length == 0)
        max_length = c->max_position_embeddings;
    if (max_length < 2 || max_length > c->max_position_embeddings)
        return fail(err, err_size, -EINVAL, "max_length %zu is outside [2, %zu]", max_length,
                    c->max_position_embeddings);
    wordpiece_encode_opts opts = {max_length, 0};
    for (size_t i = 0; i < n; i += BERT_BATCH) {
        size_t k = n - i < BERT_BATCH ? n - i : BERT_BATCH;
        wordpiece_batch *b = NULL;
        int rc = wordpiece_batch_new(m->wp, texts + i, lens + i, k, &opts, &b);
        if (rc)
            return fail(err, err_size, rc, "tokenizing texts %zu to %zu: %s", i, i + k - 1,
                        strerror(-rc));
        rc = bert_forward(m, b, out + i * c->hidden_size, err, err_size);
        wordpiece_batch_free(b);
        if (rc)
            return rc;
    }
    return 0;
}
