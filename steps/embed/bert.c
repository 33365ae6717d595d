/* bert.c - the BERT encoder of bert.h: loading a Hugging Face folder and the
 * forward pass, every projection one cblas_sgemm over a whole batch. */
#include "bert.h"

#include <sluice/artifacts.h>
#include <bson/bson.h>
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

typedef struct bert_layer {
    float *wqkv, *bqkv;             /* query, key, value stacked: [3H, H], [3H] */
    float *wo, *bo, *ln1_g, *ln1_b; /* attention output dense, its LayerNorm */
    float *wi, *bi;                 /* [inter, H], [inter] */
    float *wf, *bf, *ln2_g, *ln2_b; /* [H, inter], [H]; output LayerNorm */
} bert_layer;

struct bert_model {
    bert_config cfg;
    float *word, *pos, *type, *ln_g, *ln_b; /* embeddings */
    bert_layer *layers;
    wordpiece *wp;
};

/* ---- config.json ---------------------------------------------------------- */

static int config_size(const bson_t *doc, const char *key, size_t min, size_t *out,
                       const char *path, char *err, size_t err_size) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key))
        return errbuf_set(err, err_size, -EINVAL, "%s: missing %s", path, key);
    if (!BSON_ITER_HOLDS_INT32(&it) && !BSON_ITER_HOLDS_INT64(&it))
        return errbuf_set(err, err_size, -EINVAL, "%s: %s is not an integer", path, key);
    int64_t v = bson_iter_as_int64(&it);
    if (v < (int64_t)min || v > (1 << 24))
        return errbuf_set(err, err_size, -EINVAL, "%s: %s is %lld, outside [%zu, %d]", path, key,
                          (long long)v, min, 1 << 24);
    *out = (size_t)v;
    return 0;
}

static int read_config(const char *dir, bert_config *c, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t *doc;
    int rc = sl_json_read(path, &doc, err, err_size);
    if (rc)
        return rc;
    bson_iter_t it;
    if ((rc = config_size(doc, "hidden_size", 1, &c->hidden_size, path, err, err_size)) ||
        (rc = config_size(doc, "num_hidden_layers", 1, &c->num_hidden_layers, path, err,
                          err_size)) ||
        (rc = config_size(doc, "num_attention_heads", 1, &c->num_attention_heads, path, err,
                          err_size)) ||
        (rc = config_size(doc, "intermediate_size", 1, &c->intermediate_size, path, err,
                          err_size)) ||
        (rc = config_size(doc, "max_position_embeddings", 2, &c->max_position_embeddings, path, err,
                          err_size)) ||
        (rc = config_size(doc, "type_vocab_size", 1, &c->type_vocab_size, path, err, err_size)) ||
        (rc = config_size(doc, "vocab_size", 1, &c->vocab_size, path, err, err_size)))
        goto out;
    if (c->hidden_size % c->num_attention_heads) {
        rc = errbuf_set(err, err_size, -EINVAL,
                        "%s: hidden_size %zu is not a multiple of num_attention_heads %zu", path,
                        c->hidden_size, c->num_attention_heads);
        goto out;
    }
    if (!bson_iter_init_find(&it, doc, "layer_norm_eps") || !BSON_ITER_HOLDS_NUMBER(&it) ||
        !(bson_iter_as_double(&it) > 0) || !(bson_iter_as_double(&it) < 1)) {
        rc = errbuf_set(err, err_size, -EINVAL, "%s: layer_norm_eps is missing or not in (0, 1)",
                        path);
        goto out;
    }
    c->layer_norm_eps = bson_iter_as_double(&it);
    if (!bson_iter_init_find(&it, doc, "hidden_act") || !BSON_ITER_HOLDS_UTF8(&it)) {
        rc = errbuf_set(err, err_size, -EINVAL, "%s: hidden_act is missing or not a string", path);
        goto out;
    }
    const char *act = bson_iter_utf8(&it, NULL);
    if (strcmp(act, "gelu") != 0) {
        rc = errbuf_set(err, err_size, -EINVAL, "%s: hidden_act is '%s'; only 'gelu' is supported",
                        path, act);
        goto out;
    }
out:
    bson_destroy(doc);
    return rc;
}

/* ---- model.safetensors ---------------------------------------------------- */

typedef struct loader {
    const sl_tensors *st;
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

/* Finds the F32 tensor name (or bert.name) of shape [d0] (d1 == 0) or
 * [d0, d1]. */
static int find(const loader *l, const char *name, size_t d0, size_t d1, const sl_tensor **out) {
    char prefixed[256];
    snprintf(prefixed, sizeof(prefixed), "bert.%s", name);
    const sl_tensor *t = sl_tensors_find(l->st, name);
    if (!t)
        t = sl_tensors_find(l->st, prefixed);
    if (!t)
        return errbuf_set(l->err, l->err_size, -EINVAL, "%s: missing tensor '%s' (or '%s')",
                          l->path, name, prefixed);
    if (sl_tensor_dtype(t) != SL_DTYPE_F32)
        return errbuf_set(l->err, l->err_size, -EINVAL,
                          "%s: tensor '%s' is %s; only F32 is supported", l->path,
                          sl_tensor_name(t), sl_dtype_name(sl_tensor_dtype(t)));
    uint64_t want[2] = {d0, d1};
    size_t ndim = d1 ? 2 : 1;
    if (sl_tensor_ndim(t) != ndim || sl_tensor_dim(t, 0) != want[0] ||
        (ndim == 2 && sl_tensor_dim(t, 1) != want[1])) {
        uint64_t shape[8]; /* safetensors' most */
        size_t got_ndim = sl_tensor_ndim(t) < 8 ? sl_tensor_ndim(t) : 8;
        for (size_t i = 0; i < got_ndim; i++)
            shape[i] = sl_tensor_dim(t, i);
        char got[128], exp[64];
        show_shape(got, sizeof(got), shape, got_ndim);
        show_shape(exp, sizeof(exp), want, ndim);
        return errbuf_set(l->err, l->err_size, -EINVAL, "%s: tensor '%s' has shape %s, expected %s",
                          l->path, sl_tensor_name(t), got, exp);
    }
    *out = t;
    return 0;
}

/* Copies the tensors names[0 .. n) of find's shape [d0] or [d0, d1] one
 * after another into a new array *dst. */
static int take_stacked(const loader *l, const char *const *names, size_t n, size_t d0, size_t d1,
                        float **dst) {
    size_t count = d0 * (d1 ? d1 : 1);
    float *p = malloc(n * count * sizeof(float));
    if (!p)
        return errbuf_set(l->err, l->err_size, -ENOMEM, "%s: out of memory", l->path);
    for (size_t i = 0; i < n; i++) {
        const sl_tensor *t = NULL;
        int rc = find(l, names[i], d0, d1, &t);
        if (rc) {
            free(p);
            return rc;
        }
        /* the mapping need not be aligned */
        memcpy(p + i * count, sl_tensor_data(t), count * sizeof(float));
        /* A NaN or infinity spreads through every vector it touches. */
        for (size_t k = 0; k < count; k++)
            if (!isfinite(p[i * count + k])) {
                size_t row = d1 ? k / d1 : k, col = d1 ? k % d1 : 0;
                char at[64];
                if (d1)
                    snprintf(at, sizeof(at), "[%zu, %zu]", row, col);
                else
                    snprintf(at, sizeof(at), "[%zu]", row);
                rc = errbuf_set(l->err, l->err_size, -EINVAL,
                                "%s: tensor '%s' holds a non-finite value (%g) at %s", l->path,
                                sl_tensor_name(t), (double)p[i * count + k], at);
                free(p);
                return rc;
            }
    }
    *dst = p;
    return 0;
}

static int take(const loader *l, const char *name, size_t d0, size_t d1, float **dst) {
    return take_stacked(l, &name, 1, d0, d1, dst);
}

static void free_layer(bert_layer *y) {
    float *all[] = {y->wqkv, y->bqkv, y->wo, y->bo, y->ln1_g, y->ln1_b,
                    y->wi,   y->bi,   y->wf, y->bf, y->ln2_g, y->ln2_b};
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
        (rc =
             take(l, "embeddings.token_type_embeddings.weight", c->type_vocab_size, H, &m->type)) ||
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
        /* Stacked, the three projections of x are one sgemm. */
        char w[3][200], b[3][200];
        const char *qkv[] = {"query", "key", "value"}, *wn[3], *bn[3];
        for (size_t k = 0; k < 3; k++) {
            snprintf(w[k], sizeof(w[k]), "encoder.layer.%zu.attention.self.%s.weight", i, qkv[k]);
            snprintf(b[k], sizeof(b[k]), "encoder.layer.%zu.attention.self.%s.bias", i, qkv[k]);
            wn[k] = w[k];
            bn[k] = b[k];
        }
        if ((rc = take_stacked(l, wn, 3, H, H, &y->wqkv)) ||
            (rc = take_stacked(l, bn, 3, H, 0, &y->bqkv)))
            return rc;
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
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", dir);
    int rc = read_config(dir, &m->cfg, err, err_size);
    if (rc) {
        free(m);
        return rc;
    }
    m->layers = calloc(m->cfg.num_hidden_layers, sizeof(*m->layers));
    if (!m->layers) {
        bert_free(m);
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", dir);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    sl_tensors *st;
    if ((rc = sl_tensors_open(path, &st, err, err_size))) {
        bert_free(m);
        return rc;
    }
    loader l = {st, path, err, err_size};
    rc = load_weights(m, &l);
    sl_tensors_close(st);
    if (!rc)
        rc = wordpiece_new(dir, &m->wp, err, err_size);
    if (!rc && wordpiece_vocab_size(m->wp) > m->cfg.vocab_size)
        rc = errbuf_set(err, err_size, -EINVAL,
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

/* y[N, out] = x[N, in] W^T + b, W [out, in] row-major: the bias is the
 * sgemm's C, so adding it costs no pass of its own. */
static void linear(const float *x, size_t N, size_t in, const float *W, const float *b, size_t out,
                   float *y) {
    for (size_t t = 0; t < N; t++)
        memcpy(y + t * out, b, out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)out, (int)in, 1.0f, x,
                (int)in, W, (int)in, 1.0f, y, (int)out);
}

/* Between two sgemm calls OpenBLAS's threads are idle, so the work there
 * (attention's small products and softmax, GELU, LayerNorm) is shared by
 * threads of ours, the caller's included. Idle is not asleep: OpenBLAS's
 * workers spin (sched_yield) for a while after each sgemm and keep a share
 * of the cores. With as many threads as OpenBLAS's, two on two cores were no
 * faster than one; one thread more than OpenBLAS's, taking small pieces from
 * a counter so that none waits for a slower one, came within a few percent
 * of what two threads do when OpenBLAS's stop spinning at once
 * (OPENBLAS_THREAD_TIMEOUT=4); two more were no better, four more slower. */
#define MAX_PARTS 16

typedef void (*part_fn)(void *ctx, size_t part, size_t begin, size_t end);

typedef struct part_pool {
    part_fn fn;
    void *ctx;
    size_t n, grain;
    atomic_size_t next;
} part_pool;

typedef struct part_thread {
    part_pool *pool;
    size_t part;
} part_thread;

static void *run_parts(void *arg) {
    const part_thread *t = arg;
    part_pool *pool = t->pool;
    for (;;) {
        size_t begin = atomic_fetch_add(&pool->next, pool->grain);
        if (begin >= pool->n)
            return NULL;
        size_t end = pool->n - begin < pool->grain ? pool->n : begin + pool->grain;
        pool->fn(pool->ctx, t->part, begin, end);
    }
}

/* Runs fn over [0, n) in pieces of grain items on up to `parts` threads,
 * the caller's one of them; fn's part (< parts) tells the threads apart.
 * A thread that cannot be started only leaves more pieces to the others. */
static void split(size_t n, size_t grain, size_t parts, part_fn fn, void *ctx) {
    part_pool pool = {fn, ctx, n, grain ? grain : 1, 0};
    part_thread threads[MAX_PARTS];
    pthread_t ids[MAX_PARTS];
    bool started[MAX_PARTS] = {false};
    if (parts > (n + pool.grain - 1) / pool.grain)
        parts = n ? (n + pool.grain - 1) / pool.grain : 1;
    for (size_t p = 0; p < parts; p++)
        threads[p] = (part_thread){&pool, p};
    for (size_t p = 1; p < parts; p++)
        started[p] = pthread_create(&ids[p], NULL, run_parts, &threads[p]) == 0;
    run_parts(&threads[0]);
    for (size_t p = 1; p < parts; p++)
        if (started[p])
            pthread_join(ids[p], NULL);
}

/* The elementwise kernels below are branch-free loops of plain float
 * arithmetic so that the compiler vectorizes them (CMakeLists.txt's
 * -ftree-vectorize -fno-trapping-math for this file); libm's scalar expf and
 * erff were a third of the forward pass.
 *
 * On x86-64 the functions that run them are compiled twice, for the
 * baseline's 4-float SSE vectors and for AVX2's 8, the CPU picking one at
 * load time. The results are the same bit for bit: every lane does the same
 * IEEE operations (the AVX2 clone's have no FMA to fuse a * b + c), and sums
 * keep their 8 lanes whatever the vector width.
 *
 * Not under ThreadSanitizer: a program linking this file (sluice-search)
 * resolves the clones during relocation, before the TSan runtime is up, and
 * the instrumented resolver crashes there. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* x[i] = exp(x[i]) within 2 ulp for x >= -87 (Cephes' expf: 2^k times a
 * degree 7 polynomial on [-ln2/2, ln2/2]); below that about 1e-38 instead
 * of less, which no sum of exponentials here notices. */
static inline void exp_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        /* Written so that NaN (every comparison false) becomes -87: the
         * conversion of k to an integer below is defined for every float,
         * and NaN is given back as it came (below) for the caller to see. */
        float in = v;
        v = v > -87.0f ? v : -87.0f;
        v = v < 88.0f ? v : 88.0f;
        /* k = round(v / ln2): adding 1.5 * 2^23 rounds to an integer. */
        float k = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = v - k * 0.693359375f; /* ln2 in two parts, exact k * hi */
        r = r + k * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        int32_t bits = ((int32_t)k + 127) << 23; /* 2^k, k in [-126, 127] */
        float scale;
        memcpy(&scale, &bits, sizeof(scale));
        x[i] = in == in ? p * scale : in;
    }
}

/* x[i] = GELU(x[i]) = x/2 (1 + erf(x / sqrt 2)), erf as a rational
 * function on [-4, 4] (Eigen's and XLA's float erf; beyond 4 erf is 1 in
 * float): within 2.6e-7 * max(|x|, 1) of the exact value on [-8, 8], where
 * libm's erff gives 1.1e-7. */
VECTOR_CLONES static void gelu_inplace(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float z = v * 0.70710678118654752f;
        z = z < -4.0f ? -4.0f : z;
        z = z > 4.0f ? 4.0f : z;
        float z2 = z * z;
        float p = -2.72614225801306e-10f;
        p = p * z2 + 2.77068142495902e-08f;
        p = p * z2 - 2.10102402082508e-06f;
        p = p * z2 - 5.69250639462346e-05f;
        p = p * z2 - 7.34990630326855e-04f;
        p = p * z2 - 2.95459980854025e-03f;
        p = p * z2 - 1.60960333262415e-02f;
        float q = -1.45660718464996e-05f;
        q = q * z2 - 2.13374055278905e-04f;
        q = q * z2 - 1.68282697438203e-03f;
        q = q * z2 - 7.37332916720468e-03f;
        q = q * z2 - 1.42647390514189e-02f;
        x[i] = 0.5f * v * (1.0f + z * p / q);
    }
}

/* Sums in 8 interleaved lanes, which vectorize where one running sum (an
 * order the compiler must keep) does not. */
#define LANES 8

static inline float sum(const float *x, size_t n) {
    float lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++)
            lane[k] += x[j + k];
    float s = 0;
    for (; j < n; j++)
        s += x[j];
    for (size_t k = 0; k < LANES; k++)
        s += lane[k];
    return s;
}

/* The largest x[j] whose keep[j] is not 0; -FLT_MAX if none is. */
static inline float max_kept(const float *x, const float *keep, size_t n) {
    float lane[LANES];
    for (size_t k = 0; k < LANES; k++)
        lane[k] = -FLT_MAX;
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++) {
            float v = keep[j + k] != 0 ? x[j + k] : -FLT_MAX;
            lane[k] = v > lane[k] ? v : lane[k];
        }
    float m = -FLT_MAX;
    for (; j < n; j++)
        if (keep[j] != 0 && x[j] > m)
            m = x[j];
    for (size_t k = 0; k < LANES; k++)
        m = lane[k] > m ? lane[k] : m;
    return m;
}

/* The sum of (x[j] - mean)^2: LayerNorm's variance in a second pass, which
 * does not cancel as E[x^2] - mean^2 would. */
static inline float sum_sq_dev(const float *x, size_t n, float mean) {
    float lane[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t k = 0; k < LANES; k++) {
            float d = x[j + k] - mean;
            lane[k] += d * d;
        }
    float s = 0;
    for (; j < n; j++)
        s += (x[j] - mean) * (x[j] - mean);
    for (size_t k = 0; k < LANES; k++)
        s += lane[k];
    return s;
}

typedef struct norm_job {
    float *x;
    const float *r, *g, *b;
    size_t H;
    float eps;
} norm_job;

/* Rows [begin, end) of x = LayerNorm(x + r) (r may be NULL). In float, not
 * double as before: a row's sums then round at about 1e-7 relative, far
 * inside the reference test's 1e-4 (its measured error stayed ~1e-7), and
 * float vectors are twice as wide. */
VECTOR_CLONES static void layer_norm_part(void *ctx, size_t part, size_t begin, size_t end) {
    const norm_job *j = ctx;
    size_t H = j->H;
    (void)part;
    for (size_t t = begin; t < end; t++) {
        float *row = j->x + t * H;
        if (j->r)
            for (size_t i = 0; i < H; i++)
                row[i] += j->r[t * H + i];
        float mean = sum(row, H) / (float)H;
        float var = sum_sq_dev(row, H, mean) / (float)H;
        float inv = 1.0f / sqrtf(var + j->eps);
        for (size_t i = 0; i < H; i++)
            row[i] = (row[i] - mean) * inv * j->g[i] + j->b[i];
    }
}

/* The scratch space of one batch of rows x width tokens. */
typedef struct scratch {
    size_t parts;    /* threads the work between sgemm calls is split over */
    size_t ffn_rows; /* tokens per block of the feed-forward network */
    float *x, *qkv, *ctx, *tmp, *ffn;
    float *scores; /* parts x width x width, attention weights */
    float *keep;   /* parts x width, 1 for a key the mask keeps, else 0 */
    double *acc;   /* one row's pooling sums */
} scratch;

static void scratch_free(scratch *s) {
    free(s->x);
    free(s->qkv);
    free(s->ctx);
    free(s->tmp);
    free(s->ffn);
    free(s->scores);
    free(s->keep);
    free(s->acc);
}

/* The feed-forward network runs in blocks of this many tokens, so that its
 * intermediate activations (block x intermediate) stay in cache from the
 * first sgemm through GELU to the second; at 512 tokens an sgemm is as fast
 * per FLOP as at 4096 (measured, MiniLM shapes). */
#define FFN_BLOCK 512

static int scratch_alloc(scratch *s, size_t N, size_t T, const bert_config *c) {
    memset(s, 0, sizeof(*s));
    size_t H = c->hidden_size, inter = c->intermediate_size;
    int threads = openblas_get_num_threads();
    s->parts = threads <= 1 ? 1 : threads >= MAX_PARTS ? MAX_PARTS : (size_t)threads + 1;
    s->ffn_rows = N < FFN_BLOCK ? N : FFN_BLOCK;
    if (N > SIZE_MAX / sizeof(float) / 3 / (inter > H ? inter : H) ||
        T > SIZE_MAX / sizeof(float) / MAX_PARTS / T)
        return -ENOMEM;
    size_t nh = N * H * sizeof(float);
    s->x = malloc(nh);
    s->qkv = malloc(3 * nh);
    s->ctx = malloc(nh);
    s->tmp = malloc(nh);
    s->ffn = malloc(s->ffn_rows * inter * sizeof(float));
    s->scores = malloc(s->parts * T * T * sizeof(float));
    s->keep = malloc(s->parts * T * sizeof(float));
    s->acc = malloc(H * sizeof(double));
    if (!s->x || !s->qkv || !s->ctx || !s->tmp || !s->ffn || !s->scores || !s->keep || !s->acc) {
        scratch_free(s);
        return -ENOMEM;
    }
    return 0;
}

/* OpenBLAS (0.3.21) runs an sgemm of m * n * k <= 65536 * 4 on the calling
 * thread alone and hands bigger ones to its thread pool, which two of our
 * threads would then queue for: attention's products are cut to this size
 * (measured: 180 GFLOP/s from two threads at 64 x 128 x 32, 70 at 128). */
#define SMALL_GEMM (65536 * 4)

typedef struct attn_job {
    const wordpiece_batch *b;
    scratch *s;
    size_t H, heads, dh;
    float scale;
} attn_job;

/* row = softmax(row) over the keys keep marks (1 or 0); with no key kept,
 * all 0 (such a row is all padding, which pooling skips). */
VECTOR_CLONES static void softmax(float *row, const float *keep, size_t n) {
    float max = max_kept(row, keep, n);
    for (size_t j = 0; j < n; j++)
        row[j] -= max;
    exp_inplace(row, n);
    for (size_t j = 0; j < n; j++)
        row[j] *= keep[j];
    float total = sum(row, n);
    float inv = total > 0 ? 1.0f / total : 0.0f;
    for (size_t j = 0; j < n; j++)
        row[j] *= inv;
}

/* Pairs [begin, end) of (batch row, head): ctx = softmax(Q K^T / sqrt(dh)) V.
 * Only tokens up to a row's last unmasked one are computed: the padding
 * after it is no key, and as queries it only feeds padding, which pooling
 * skips, so its context is left 0. */
static void attention_part(void *ctx, size_t part, size_t begin, size_t end) {
    const attn_job *j = ctx;
    size_t H = j->H, dh = j->dh, T = j->b->width, ld = 3 * H;
    float *scores = j->s->scores + part * T * T, *keep = j->s->keep + part * T;
    for (size_t pair = begin; pair < end; pair++) {
        size_t r = pair / j->heads, h = pair % j->heads;
        const int64_t *mask = j->b->attention_mask + r * T;
        size_t L = T;
        while (L > 0 && !mask[L - 1])
            L--;
        const float *Q = j->s->qkv + r * T * ld + h * dh, *K = Q + H, *V = Q + 2 * H;
        float *C = j->s->ctx + r * T * H + h * dh;
        for (size_t i = L; i < T; i++)
            memset(C + i * H, 0, dh * sizeof(float));
        if (L == 0)
            continue;
        for (size_t i = 0; i < L; i++)
            keep[i] = mask[i] ? 1.0f : 0.0f;
        size_t chunk = SMALL_GEMM / (L * dh);
        if (chunk == 0)
            chunk = 1;
        for (size_t i0 = 0; i0 < L; i0 += chunk) {
            size_t rows = L - i0 < chunk ? L - i0 : chunk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)L, (int)dh,
                        j->scale, Q + i0 * ld, (int)ld, K, (int)ld, 0.0f, scores, (int)L);
            for (size_t i = 0; i < rows; i++)
                softmax(scores + i * L, keep, L);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)dh, (int)L, 1.0f,
                        scores, (int)L, V, (int)ld, 0.0f, C + i0 * H, (int)H);
        }
    }
}

typedef struct gelu_job {
    float *x;
} gelu_job;

static void gelu_part(void *ctx, size_t part, size_t begin, size_t end) {
    const gelu_job *j = ctx;
    (void)part;
    gelu_inplace(j->x + begin, end - begin);
}

static void layer_norm(scratch *s, float *x, const float *r, size_t N, size_t H, const float *g,
                       const float *b, double eps) {
    norm_job j = {x, r, g, b, H, (float)eps};
    split(N, 16, s->parts, layer_norm_part, &j);
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
    layer_norm(s, s->x, NULL, N, H, m->ln_g, m->ln_b, c->layer_norm_eps);
    size_t heads = c->num_attention_heads, dh = H / heads;
    attn_job aj = {b, s, H, heads, dh, (float)(1.0 / sqrt((double)dh))};
    for (size_t l = 0; l < c->num_hidden_layers; l++) {
        const bert_layer *y = &m->layers[l];
        linear(s->x, N, H, y->wqkv, y->bqkv, 3 * H, s->qkv);
        split(b->rows * heads, 1, s->parts, attention_part, &aj);
        linear(s->ctx, N, H, y->wo, y->bo, H, s->tmp);
        layer_norm(s, s->tmp, s->x, N, H, y->ln1_g, y->ln1_b, c->layer_norm_eps);
        /* tmp now holds the attention block's output: x for the FFN. */
        for (size_t t0 = 0; t0 < N; t0 += s->ffn_rows) {
            size_t rows = N - t0 < s->ffn_rows ? N - t0 : s->ffn_rows;
            linear(s->tmp + t0 * H, rows, H, y->wi, y->bi, inter, s->ffn);
            gelu_job gj = {s->ffn};
            split(rows * inter, 16384, s->parts, gelu_part, &gj);
            linear(s->ffn, rows, inter, y->wf, y->bf, H, s->x + t0 * H);
        }
        layer_norm(s, s->x, s->tmp, N, H, y->ln2_g, y->ln2_b, c->layer_norm_eps);
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
        return errbuf_set(err, err_size, -EINVAL,
                          "a batch %zu tokens wide; the model takes 1 to %zu", b->width,
                          c->max_position_embeddings);
    if (b->rows > (size_t)INT32_MAX / b->width || b->width > 46340)
        return errbuf_set(err, err_size, -EINVAL, "a batch of %zu x %zu tokens is too large",
                          b->rows, b->width);
    for (size_t t = 0; t < b->rows * b->width; t++)
        if (b->input_ids[t] < 0 || (uint64_t)b->input_ids[t] >= c->vocab_size ||
            b->token_type_ids[t] < 0 || (uint64_t)b->token_type_ids[t] >= c->type_vocab_size)
            return errbuf_set(err, err_size, -EINVAL,
                              "token %zu of row %zu: id %lld or type %lld is out of range",
                              t % b->width, t / b->width, (long long)b->input_ids[t],
                              (long long)b->token_type_ids[t]);
    scratch s;
    if (scratch_alloc(&s, b->rows * b->width, b->width, c))
        return errbuf_set(err, err_size, -ENOMEM, "out of memory for a batch of %zu x %zu tokens",
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
        return errbuf_set(err, err_size, -EINVAL, "max_length %zu is outside [2, %zu]", max_length,
                          c->max_position_embeddings);
    wordpiece_encode_opts opts = {max_length, 0};
    for (size_t i = 0; i < n; i += BERT_BATCH) {
        size_t k = n - i < BERT_BATCH ? n - i : BERT_BATCH;
        wordpiece_batch *b = NULL;
        int rc = wordpiece_batch_new(m->wp, texts + i, lens + i, k, &opts, &b);
        if (rc)
            return errbuf_set(err, err_size, rc, "tokenizing texts %zu to %zu: %s", i, i + k - 1,
                              strerror(-rc));
        rc = bert_forward(m, b, out + i * c->hidden_size, err, err_size);
        wordpiece_batch_free(b);
        if (rc)
            return rc;
    }
    /* Finite weights can still overflow float on the way (scores past
     * 3.4e38 become infinities, and their difference NaN): such a vector
     * is refused rather than stored. */
    for (size_t k = 0; k < n * c->hidden_size; k++)
        if (!isfinite(out[k]))
            return errbuf_set(err, err_size, -ERANGE,
                              "text %zu: the model's output is not finite (its weights overflow "
                              "float arithmetic)",
                              k / c->hidden_size);
    return 0;
}
