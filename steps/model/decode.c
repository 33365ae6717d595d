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

/* Scratch, in floats: x, ln, tmp (C each), stats (2), qkv, atty, fc, act,
 * scores (max_len), logits (V), cos and sin (hd / 2 each). */
static size_t scratch_floats(const model *m, size_t len) {
    const model_config *c = &m->c;
    return 3 * (size_t)c->d_model + 2 + (size_t)m->qkv_width + (size_t)c->n_heads * c->head_dim +
           (size_t)m->up_width + (size_t)c->d_ff + len + (size_t)c->vocab + (size_t)c->head_dim;
}

/* A KV cache and the scratch of one generation over a model whose weights
 * it only reads. */
struct model_decoder {
    const model *m;
    float *kcache, *vcache, *scratch; /* (n_layers, cap, kv width) each */
    size_t cap;                       /* positions the cache holds */
    int len, pos;
    float *rows; /* model_decoder_prefill's scratch, for PREFILL_ROWS rows */
};

/* Prompt tokens a prefill puts through the layers at once: enough rows that
 * each weight read serves many tokens, few enough that the activations stay
 * small (64 rows of GPT-2 small: 2.6 MiB). */
#define PREFILL_ROWS 64

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

int model_decoder_step(model_decoder *d, int32_t token, const float **logits, char *err, size_t n) {
    const model *m = d->m;
    const model_config *c = &m->c;
    if (d->pos >= d->len) {
        return model_fail(err, n, -ENOSPC, "model: the KV cache is full (%d positions)", d->len);
    }
    if (token < 0 || token >= c->vocab) {
        return model_fail(err, n, -EINVAL, "model: token %d is outside the vocabulary (%d)", token,
                          c->vocab);
    }
    int C = c->d_model, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, pos = d->pos;
    int group = H / KV, Hhd = H * hd, kvw = KV * hd, half = hd / 2;
    float *x = d->scratch, *ln = x + C, *tmp = ln + C, *stats = tmp + C, *qkv = stats + 2;
    float *atty = qkv + m->qkv_width, *fc = atty + Hhd, *act = fc + m->up_width;
    float *scores = act + c->d_ff, *out = scores + d->len, *cs = out + c->vocab, *sn = cs + half;
    const float *e = m->params + m->wte + (size_t)token * C;
    for (int i = 0; i < C; i++)
        x[i] = e[i] + (m->wpe != MODEL_NONE ? m->params[m->wpe + (size_t)pos * C + i] : 0.0f);
    if (c->arch == MODEL_LLAMA)
        model_rope_angles(c, pos, cs, sn);
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &m->layers[l];
        model_norm_forward(m, &L->ln1, ln, stats, x, 1);
        int off = 0;
        for (int j = 0; j < L->n_qkv; j++) {
            model_linear_forward(m, &L->qkv[j], qkv + off, m->qkv_width, ln, 1);
            off += L->qkv[j].out;
        }
        if (c->arch == MODEL_LLAMA)
            for (int h = 0; h < H + KV; h++)
                model_rope_apply(qkv + (size_t)h * hd, hd, cs, sn);
        float *kc = d->kcache + (size_t)l * d->cap * kvw;
        float *vc = d->vcache + (size_t)l * d->cap * kvw;
        memcpy(kc + (size_t)pos * kvw, qkv + Hhd, (size_t)kvw * sizeof(float));
        memcpy(vc + (size_t)pos * kvw, qkv + Hhd + kvw, (size_t)kvw * sizeof(float));
        for (int h = 0; h < H; h++) {
            int g = h / group;
            const float *q = qkv + (size_t)h * hd;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, pos + 1, hd, scale, kc + (size_t)g * hd, kvw,
                        q, 1, 0.0f, scores, 1);
            model_softmax(scores, pos + 1);
            cblas_sgemv(CblasRowMajor, CblasTrans, pos + 1, hd, 1.0f, vc + (size_t)g * hd, kvw,
                        scores, 1, 0.0f, atty + (size_t)h * hd, 1);
        }
        model_linear_forward(m, &L->o, tmp, C, atty, 1);
        for (int i = 0; i < C; i++)
            x[i] += tmp[i];
        model_norm_forward(m, &L->ln2, ln, stats, x, 1);
        off = 0;
        for (int j = 0; j < L->n_up; j++) {
            model_linear_forward(m, &L->up[j], fc + off, m->up_width, ln, 1);
            off += L->up[j].out;
        }
        model_act_forward(m, act, fc, 1);
        model_linear_forward(m, &L->down, tmp, C, act, 1);
        for (int i = 0; i < C; i++)
            x[i] += tmp[i];
    }
    model_norm_forward(m, &m->lnf, ln, stats, x, 1);
    model_linear_forward(m, &m->head, out, c->vocab, ln, 1);
    d->pos++;
    *logits = out;
    return 0;
}

/* The floats of the prefill scratch for R rows: x, ln, tmp (R x C each),
 * stats (2R), qkv, atty, fc, act (R rows each), cos and sin (hd / 2 each). */
static size_t rows_floats(const model *m, size_t R) {
    const model_config *c = &m->c;
    return R * (3 * (size_t)c->d_model + 2 + (size_t)m->qkv_width +
                (size_t)c->n_heads * c->head_dim + (size_t)m->up_width + (size_t)c->d_ff) +
           (size_t)c->head_dim;
}

/* Rows [pos, pos + R) of tokens through every layer into the cache: the
 * same arithmetic as model_decoder_step, each linear layer one matrix
 * product over the R rows instead of R matrix-vector products. */
static void prefill_rows(model_decoder *d, const int32_t *tokens, int R) {
    const model *m = d->m;
    const model_config *c = &m->c;
    int C = c->d_model, H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, pos = d->pos;
    int group = H / KV, Hhd = H * hd, kvw = KV * hd, half = hd / 2;
    int W = m->qkv_width, U = m->up_width, F = c->d_ff;
    float *x = d->rows, *ln = x + (size_t)R * C, *tmp = ln + (size_t)R * C;
    float *stats = tmp + (size_t)R * C, *qkv = stats + 2 * (size_t)R;
    float *atty = qkv + (size_t)R * W, *fc = atty + (size_t)R * Hhd, *act = fc + (size_t)R * U;
    float *cs = act + (size_t)R * F, *sn = cs + half, *scores = d->scratch;
    for (int r = 0; r < R; r++) {
        const float *e = m->params + m->wte + (size_t)tokens[r] * C;
        const float *p = m->wpe != MODEL_NONE ? m->params + m->wpe + (size_t)(pos + r) * C : NULL;
        for (int i = 0; i < C; i++)
            x[(size_t)r * C + i] = e[i] + (p ? p[i] : 0.0f);
    }
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &m->layers[l];
        model_norm_forward(m, &L->ln1, ln, stats, x, R);
        int off = 0;
        for (int j = 0; j < L->n_qkv; j++) {
            model_linear_forward(m, &L->qkv[j], qkv + off, W, ln, R);
            off += L->qkv[j].out;
        }
        float *kc = d->kcache + (size_t)l * d->cap * kvw;
        float *vc = d->vcache + (size_t)l * d->cap * kvw;
        for (int r = 0; r < R; r++) {
            float *row = qkv + (size_t)r * W;
            if (c->arch == MODEL_LLAMA) {
                model_rope_angles(c, pos + r, cs, sn);
                for (int h = 0; h < H + KV; h++)
                    model_rope_apply(row + (size_t)h * hd, hd, cs, sn);
            }
            memcpy(kc + (size_t)(pos + r) * kvw, row + Hhd, (size_t)kvw * sizeof(float));
            memcpy(vc + (size_t)(pos + r) * kvw, row + Hhd + kvw, (size_t)kvw * sizeof(float));
        }
        /* Row r attends to the positions up to its own, those of this
         * chunk included (their keys are in the cache now). */
        for (int r = 0; r < R; r++)
            for (int h = 0; h < H; h++) {
                int g = h / group, n = pos + r + 1;
                const float *q = qkv + (size_t)r * W + (size_t)h * hd;
                cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hd, scale, kc + (size_t)g * hd, kvw, q,
                            1, 0.0f, scores, 1);
                model_softmax(scores, n);
                cblas_sgemv(CblasRowMajor, CblasTrans, n, hd, 1.0f, vc + (size_t)g * hd, kvw,
                            scores, 1, 0.0f, atty + (size_t)r * Hhd + (size_t)h * hd, 1);
            }
        model_linear_forward(m, &L->o, tmp, C, atty, R);
        for (size_t i = 0; i < (size_t)R * C; i++)
            x[i] += tmp[i];
        model_norm_forward(m, &L->ln2, ln, stats, x, R);
        off = 0;
        for (int j = 0; j < L->n_up; j++) {
            model_linear_forward(m, &L->up[j], fc + off, U, ln, R);
            off += L->up[j].out;
        }
        model_act_forward(m, act, fc, R);
        model_linear_forward(m, &L->down, tmp, C, act, R);
        for (size_t i = 0; i < (size_t)R * C; i++)
            x[i] += tmp[i];
    }
    d->pos += R;
}

int model_decoder_prefill(model_decoder *d, const int32_t *tokens, int n, const float **logits,
                          char *err, size_t size) {
    const model *m = d->m;
    const model_config *c = &m->c;
    if (n <= 0)
        return model_fail(err, size, -EINVAL, "model: a prefill of %d tokens", n);
    if (n > d->len - d->pos)
        return model_fail(err, size, -ENOSPC,
                          "model: %d tokens do not fit in the KV cache (%d of %d positions left)",
                          n, d->len - d->pos, d->len);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return model_fail(err, size, -EINVAL, "model: token %d is outside the vocabulary (%d)",
                              tokens[i], c->vocab);
    if (!d->rows && !(d->rows = malloc(rows_floats(m, PREFILL_ROWS) * sizeof(float))))
        return model_fail(err, size, -ENOMEM, "model: out of memory for a prefill");
    /* All but the last token in chunks; the last by model_decoder_step,
     * which makes the logits (the head's product is for it alone). */
    for (int done = 0; done < n - 1;) {
        int R = n - 1 - done < PREFILL_ROWS ? n - 1 - done : PREFILL_ROWS;
        prefill_rows(d, tokens + done, R);
        done += R;
    }
    return model_decoder_step(d, tokens[n - 1], logits, err, size);
}
