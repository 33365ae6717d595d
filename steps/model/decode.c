/* decode.c - one token at a time with a KV cache: the same layers as
 * pass.c's forward for a single row, the keys and values of earlier
 * positions read from the cache instead of recomputed. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* The floats of the rows' scratch for R rows: x, ln, tmp (R x C each),
 * stats (2R), qkv, atty, fc, act (R rows each), cos and sin (R x hd / 2
 * each). */
static size_t rows_floats(const model *m, size_t R) {
    const model_config *c = &m->c;
    return R *
           (3 * (size_t)c->d_model + 2 + (size_t)m->qkv_width + (size_t)c->n_heads * c->head_dim +
            (size_t)m->up_width + (size_t)c->d_ff + (size_t)c->head_dim);
}

/* A decoder's scratch, in floats: one row's (the step's), then the
 * attention scores (len) and the logits (V). */
static size_t scratch_floats(const model *m, size_t len) {
    return rows_floats(m, 1) + len + (size_t)m->c.vocab;
}

/* A KV cache and the scratch of one generation over a model whose weights
 * it only reads. */
struct model_decoder {
    const model *m;
    float *kcache, *vcache, *scratch; /* (n_layers, cap, kv width) each */
    size_t cap;                       /* positions the cache holds */
    int len, pos;
    float *rows;   /* the scratch of MODEL_BATCH_MAX rows (prefill, batched steps) */
    float *logits; /* a batched step's (MODEL_BATCH_MAX, V) logits, when this leads one */
};

static float *scores_of(const model_decoder *d) { return d->scratch + rows_floats(d->m, 1); }
static float *logits_of(const model_decoder *d) { return scores_of(d) + d->cap; }

int model_decoder_reset(model_decoder *d, int max_len, char *err, size_t n) {
    const model_config *c = &d->m->c;
    if (max_len <= 0 || max_len > c->context) {
        return model_fail(err, n, -EINVAL, "model: a KV cache of %d positions (context %d)",
                          max_len, c->context);
    }
    size_t kvw = (size_t)c->n_kv_heads * c->head_dim;
    if ((size_t)max_len > d->cap) {
        free(d->kcache);
        free(d->vcache);
        free(d->scratch);
        size_t cache = (size_t)c->n_layers * max_len * kvw;
        d->kcache = malloc(cache * sizeof(float));
        d->vcache = malloc(cache * sizeof(float));
        d->scratch = malloc(scratch_floats(d->m, (size_t)max_len) * sizeof(float));
        if (!d->kcache || !d->vcache || !d->scratch) {
            free(d->kcache);
            free(d->vcache);
            free(d->scratch);
            d->kcache = d->vcache = d->scratch = NULL;
            d->cap = 0;
            return model_fail(err, n, -ENOMEM,
                              "model: out of memory for a KV cache of %d positions (%zu MiB)",
                              max_len, 2 * cache * sizeof(float) >> 20);
        }
        d->cap = (size_t)max_len;
    }
    d->len = max_len;
    d->pos = 0;
    return 0;
}

int model_decoder_new(const model *m, int max_len, model_decoder **out, char *err, size_t n) {
    *out = NULL;
    if (m->lora.r)
        return model_fail(err, n, -EINVAL,
                          "model: a decoder of its own needs a model without LoRA adapters "
                          "(merge them first)");
    model_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return model_fail(err, n, -ENOMEM, "model: out of memory");
    d->m = m;
    int rc = model_decoder_reset(d, max_len, err, n);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void model_decoder_free(model_decoder *d) {
    if (!d)
        return;
    free(d->kcache);
    free(d->vcache);
    free(d->scratch);
    free(d->rows);
    free(d->logits);
    free(d);
}

/* The model's own decoder, kept across resets; with LoRA adapters too (one
 * thread, the model's). */
int model_decode_reset(model *m, int max_len, char *err, size_t n) {
    if (!m->dec) {
        if (!(m->dec = calloc(1, sizeof(*m->dec))))
            return model_fail(err, n, -ENOMEM, "model: out of memory");
        m->dec->m = m;
    }
    return model_decoder_reset(m->dec, max_len, err, n);
}

int model_decode(model *m, int32_t token, const float **logits, char *err, size_t n) {
    if (!m->dec || !m->dec->kcache)
        return model_fail(err, n, -EINVAL, "model: decode before model_decode_reset");
    return model_decoder_step(m->dec, token, logits, err, n);
}

/* Rows through every layer: row r is token tokens[r] at position pos[r]
 * of decoder dec[r], its keys and values written into that decoder's
 * cache, attending to its positions up to its own (earlier rows of the same
 * decoder included: their keys are in the cache by then). Each linear
 * layer is one product over the R rows (a matrix-vector product for one);
 * attention runs row by row against each row's own cache. The final
 * norm's output is left in the rows' ln (R x C) for a head. This is the
 * one layer loop of the single step, the batched step and the prefill. */
/* The rows the products of R rows run over: OpenBLAS 0.3.21 takes
 * another path for a product of 2 or 3 rows, slower than for 4 (measured
 * with bench_serve: a batched step of 2 decoders cost more than 2 single
 * steps, one of 4 about 2), so 2 or 3 rows are padded to
 * 4 with rows of zeros whose outputs nobody reads (each output row of a
 * product depends on its input row alone). One row stays one: the
 * matrix-vector products of the single step. */
static int padded_rows(int R) { return R > 1 && R < 4 ? 4 : R; }

static void forward_rows(const model *m, model_decoder *const *dec, const int *pos,
                         const int32_t *tokens, int R, float *buf) {
    const model_config *c = &m->c;
    int C = c->d_model, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim;
    int group = H / KV, Hhd = H * hd, kvw = KV * hd, half = hd / 2;
    int W = m->qkv_width, U = m->up_width, F = c->d_ff, P = padded_rows(R);
    float *x = buf, *ln = x + (size_t)P * C, *tmp = ln + (size_t)P * C;
    float *stats = tmp + (size_t)P * C, *qkv = stats + 2 * (size_t)P;
    float *atty = qkv + (size_t)P * W, *fc = atty + (size_t)P * Hhd, *act = fc + (size_t)P * U;
    float *cs = act + (size_t)P * F, *sn = cs + (size_t)P * half;
    if (P > R) {
        memset(x + (size_t)R * C, 0, (size_t)(P - R) * C * sizeof(float));
        memset(atty + (size_t)R * Hhd, 0, (size_t)(P - R) * Hhd * sizeof(float));
    }
    for (int r = 0; r < R; r++) {
        const float *e = m->params + m->wte + (size_t)tokens[r] * C;
        const float *p = m->wpe != MODEL_NONE ? m->params + m->wpe + (size_t)pos[r] * C : NULL;
        for (int i = 0; i < C; i++)
            x[(size_t)r * C + i] = e[i] + (p ? p[i] : 0.0f);
        if (c->arch == MODEL_LLAMA)
            model_rope_angles(c, pos[r], cs + (size_t)r * half, sn + (size_t)r * half);
    }
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &m->layers[l];
        model_norm_forward(m, &L->ln1, ln, stats, x, P);
        int off = 0;
        for (int j = 0; j < L->n_qkv; j++) {
            model_linear_forward(m, &L->qkv[j], qkv + off, W, ln, P);
            off += L->qkv[j].out;
        }
        for (int r = 0; r < R; r++) {
            const model_decoder *d = dec[r];
            float *row = qkv + (size_t)r * W;
            if (c->arch == MODEL_LLAMA)
                for (int h = 0; h < H + KV; h++)
                    model_rope_apply(row + (size_t)h * hd, hd, cs + (size_t)r * half,
                                     sn + (size_t)r * half);
            float *kc = d->kcache + (size_t)l * d->cap * kvw;
            float *vc = d->vcache + (size_t)l * d->cap * kvw;
            memcpy(kc + (size_t)pos[r] * kvw, row + Hhd, (size_t)kvw * sizeof(float));
            memcpy(vc + (size_t)pos[r] * kvw, row + Hhd + kvw, (size_t)kvw * sizeof(float));
        }
        for (int r = 0; r < R; r++) {
            const model_decoder *d = dec[r];
            const float *kc = d->kcache + (size_t)l * d->cap * kvw;
            const float *vc = d->vcache + (size_t)l * d->cap * kvw;
            float *scores = scores_of(d);
            int n = pos[r] + 1;
            for (int h = 0; h < H; h++) {
                int g = h / group;
                const float *q = qkv + (size_t)r * W + (size_t)h * hd;
                cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hd, scale, kc + (size_t)g * hd, kvw, q,
                            1, 0.0f, scores, 1);
                model_softmax(scores, n);
                cblas_sgemv(CblasRowMajor, CblasTrans, n, hd, 1.0f, vc + (size_t)g * hd, kvw,
                            scores, 1, 0.0f, atty + (size_t)r * Hhd + (size_t)h * hd, 1);
            }
        }
        model_linear_forward(m, &L->o, tmp, C, atty, P);
        for (size_t i = 0; i < (size_t)P * C; i++)
            x[i] += tmp[i];
        model_norm_forward(m, &L->ln2, ln, stats, x, P);
        off = 0;
        for (int j = 0; j < L->n_up; j++) {
            model_linear_forward(m, &L->up[j], fc + off, U, ln, P);
            off += L->up[j].out;
        }
        model_act_forward(m, act, fc, P);
        model_linear_forward(m, &L->down, tmp, C, act, P);
        for (size_t i = 0; i < (size_t)P * C; i++)
            x[i] += tmp[i];
    }
    model_norm_forward(m, &m->lnf, ln, stats, x, P);
}

/* The final norm's output of forward_rows (in buf) of R rows. */
static const float *rows_ln(const model *m, const float *buf, int R) {
    return buf + (size_t)padded_rows(R) * m->c.d_model;
}

static int check_token(const model *m, int32_t token, char *err, size_t n) {
    if (token < 0 || token >= m->c.vocab)
        return model_fail(err, n, -EINVAL, "model: token %d is outside the vocabulary (%d)", token,
                          m->c.vocab);
    return 0;
}

int model_decoder_step(model_decoder *d, int32_t token, const float **logits, char *err, size_t n) {
    const model *m = d->m;
    if (d->pos >= d->len) {
        return model_fail(err, n, -ENOSPC, "model: the KV cache is full (%d positions)", d->len);
    }
    int rc = check_token(m, token, err, n);
    if (rc)
        return rc;
    int pos = d->pos;
    forward_rows(m, &d, &pos, &token, 1, d->scratch);
    float *out = logits_of(d);
    model_linear_forward(m, &m->head, out, m->c.vocab, rows_ln(m, d->scratch, 1), 1);
    d->pos++;
    *logits = out;
    return 0;
}

/* The rows' scratch of d, made on first use. */
static int ensure_rows(model_decoder *d, char *err, size_t n) {
    if (!d->rows && !(d->rows = malloc(rows_floats(d->m, MODEL_BATCH_MAX) * sizeof(float))))
        return model_fail(err, n, -ENOMEM, "model: out of memory for %d rows", MODEL_BATCH_MAX);
    return 0;
}

int model_decoder_step_batch(model_decoder *const *d, const int32_t *tokens, int B,
                             const float **logits, char *err, size_t n) {
    if (B <= 0 || B > MODEL_BATCH_MAX)
        return model_fail(err, n, -EINVAL, "model: a batched step of %d decoders (1 to %d)", B,
                          MODEL_BATCH_MAX);
    const model *m = d[0]->m;
    int pos[MODEL_BATCH_MAX];
    for (int b = 0; b < B; b++) {
        if (d[b]->m != m)
            return model_fail(err, n, -EINVAL,
                              "model: a batched step over decoders of different models");
        for (int k = 0; k < b; k++)
            if (d[k] == d[b])
                return model_fail(err, n, -EINVAL,
                                  "model: decoder %d is also decoder %d of the batch", b, k);
        if (d[b]->pos >= d[b]->len)
            return model_fail(err, n, -ENOSPC,
                              "model: the KV cache of decoder %d is full (%d positions)", b,
                              d[b]->len);
        int rc = check_token(m, tokens[b], err, n);
        if (rc)
            return rc;
        pos[b] = d[b]->pos;
    }
    if (B == 1) /* the single step's products, bit for bit */
        return model_decoder_step(d[0], tokens[0], &logits[0], err, n);
    model_decoder *lead = d[0];
    int rc = ensure_rows(lead, err, n);
    if (rc)
        return rc;
    size_t V = (size_t)m->c.vocab;
    if (!lead->logits && !(lead->logits = malloc(MODEL_BATCH_MAX * V * sizeof(float))))
        return model_fail(err, n, -ENOMEM, "model: out of memory for a batch's logits");
    forward_rows(m, d, pos, tokens, B, lead->rows);
    model_linear_forward(m, &m->head, lead->logits, (int)V, rows_ln(m, lead->rows, B),
                         padded_rows(B));
    /* each decoder's logits in its own scratch, borrowed as its step's */
    for (int b = 0; b < B; b++) {
        float *out = logits_of(d[b]);
        memcpy(out, lead->logits + (size_t)b * V, V * sizeof(float));
        d[b]->pos++;
        logits[b] = out;
    }
    return 0;
}

int model_decoder_prefill(model_decoder *d, const int32_t *tokens, int n, const float **logits,
                          char *err, size_t size) {
    const model *m = d->m;
    if (n <= 0)
        return model_fail(err, size, -EINVAL, "model: a prefill of %d tokens", n);
    if (n > d->len - d->pos)
        return model_fail(err, size, -ENOSPC,
                          "model: %d tokens do not fit in the KV cache (%d of %d positions left)",
                          n, d->len - d->pos, d->len);
    for (int i = 0; i < n; i++) {
        int rc = check_token(m, tokens[i], err, size);
        if (rc)
            return rc;
    }
    int rc = ensure_rows(d, err, size);
    if (rc)
        return rc;
    /* All but the last token in chunks; the last by model_decoder_step,
     * which makes the logits (the head's product is for it alone). Without
     * logits wanted, the last goes with the others. */
    int rows_n = logits ? n - 1 : n;
    model_decoder *dec[MODEL_BATCH_MAX];
    int pos[MODEL_BATCH_MAX];
    for (int r = 0; r < MODEL_BATCH_MAX; r++)
        dec[r] = d;
    for (int done = 0; done < rows_n;) {
        int R = rows_n - done < MODEL_BATCH_MAX ? rows_n - done : MODEL_BATCH_MAX;
        for (int r = 0; r < R; r++)
            pos[r] = d->pos + r;
        forward_rows(m, dec, pos, tokens + done, R, d->rows);
        d->pos += R;
        done += R;
    }
    return logits ? model_decoder_step(d, tokens[n - 1], logits, err, size) : 0;
}
