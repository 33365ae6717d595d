/* pass.c - the forward and backward passes over a batch of B x T tokens,
 * layer by layer as llm.c's train_gpt2.c lays them out (every activation
 * the backward needs is kept in the arena), for GPT-2 and the Llama family.
 * Matrix products are cblas_sgemm calls; the other loops are plain and
 * sequential, which is what makes a run bit-identical for a given OpenBLAS
 * thread count. Row reductions accumulate in double. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define fail model_fail

/* The largest of z[0..n) and the sum of exp(z - max), in double. */
static double sum_exp(const float *z, int n, float *max) {
    float mx = z[0];
    for (int j = 1; j < n; j++)
        mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    for (int j = 0; j < n; j++)
        s += expf(z[j] - mx);
    *max = mx;
    return s;
}

void model_softmax(float *row, int n) {
    float mx;
    float inv = (float)(1.0 / sum_exp(row, n, &mx));
    for (int j = 0; j < n; j++)
        row[j] = expf(row[j] - mx) * inv;
}

/* ---- linear ---- */

void model_linear_forward(const model *m, const model_linear *l, float *y, int ldy, const float *x,
                          int rows) {
    const float *w = m->params + l->w;
    float beta = 0.0f;
    if (l->b != MODEL_NONE) {
        const float *b = m->params + l->b;
        for (int r = 0; r < rows; r++)
            memcpy(y + (size_t)r * ldy, b, (size_t)l->out * sizeof(float));
        beta = 1.0f;
    }
    if (rows == 1) /* decoding: a matrix-vector product, bound by reading W */
        cblas_sgemv(CblasRowMajor, l->in_out ? CblasTrans : CblasNoTrans,
                    l->in_out ? l->in : l->out, l->in_out ? l->out : l->in, 1.0f, w,
                    l->in_out ? l->out : l->in, x, 1, beta, y, 1);
    else if (l->in_out)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->out, l->in, 1.0f, x, l->in,
                    w, l->out, beta, y, ldy);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, x, l->in, w,
                    l->in, beta, y, ldy);
    if (l->la != MODEL_NONE)
        model_lora_forward(m, l, y, ldy, x, rows);
}

void model_linear_backward(model *m, const model_linear *l, float *dx, int accumulate,
                           const float *dy, int ldy, const float *x, int rows) {
    const float *w = m->params + l->w;
    if (dx) {
        if (l->in_out)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->in, l->out, 1.0f, dy, ldy,
                        w, l->out, accumulate ? 1.0f : 0.0f, dx, l->in);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l->in, l->out, 1.0f, dy,
                        ldy, w, l->in, accumulate ? 1.0f : 0.0f, dx, l->in);
    }
    if (l->la != MODEL_NONE)
        model_lora_backward(m, l, dx, dy, ldy, x, rows);
    /* With adapters the base weights are frozen: their gradient, the
     * costliest product of the backward, is not computed at all. */
    if (m->lora.r)
        return;
    float *dw = m->grads + l->w;
    if (l->in_out)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->in, l->out, rows, 1.0f, x, l->in,
                    dy, ldy, 1.0f, dw, l->out);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, rows, 1.0f, dy, ldy, x,
                    l->in, 1.0f, dw, l->in);
    if (l->b != MODEL_NONE) {
        float *db = m->grads + l->b;
        for (int r = 0; r < rows; r++) {
            const float *d = dy + (size_t)r * ldy;
            for (int j = 0; j < l->out; j++)
                db[j] += d[j];
        }
    }
}

/* ---- norms: LayerNorm with a bias, RMSNorm without ---- */

void model_norm_forward(const model *m, const model_norm *nm, float *out, float *stats,
                        const float *x, int rows) {
    int C = m->c.d_model;
    const float *w = m->params + nm->w;
    const float *b = nm->b != MODEL_NONE ? m->params + nm->b : NULL;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * C;
        float *o = out + (size_t)r * C;
        double mean = 0, var = 0;
        if (b) {
            for (int i = 0; i < C; i++)
                mean += xr[i];
            mean /= C;
        }
        for (int i = 0; i < C; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= C;
        float mu = (float)mean, rstd = (float)(1.0 / sqrt(var + m->c.norm_eps));
        for (int i = 0; i < C; i++)
            o[i] = ((xr[i] - mu) * rstd) * w[i] + (b ? b[i] : 0.0f);
        stats[2 * r] = mu;
        stats[2 * r + 1] = rstd;
    }
}

/* dx += the input gradient of dout; dw, db += the weights'. */
static void norm_backward(model *m, const model_norm *nm, float *dx, const float *dout,
                          const float *x, const float *stats, int rows) {
    int C = m->c.d_model;
    const float *w = m->params + nm->w;
    /* frozen under adapters: no weight gradient (and no array to hold one) */
    float *dw = m->lora.r ? NULL : m->grads + nm->w;
    float *db = dw && nm->b != MODEL_NONE ? m->grads + nm->b : NULL;
    int rms = nm->b == MODEL_NONE;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * C, *d = dout + (size_t)r * C;
        float *dxr = dx + (size_t)r * C;
        float mu = stats[2 * r], rstd = stats[2 * r + 1];
        double dmean = 0, dnorm_mean = 0;
        for (int i = 0; i < C; i++) {
            float norm = (xr[i] - mu) * rstd, dn = w[i] * d[i];
            dmean += dn;
            dnorm_mean += (double)dn * norm;
        }
        dmean /= C;
        dnorm_mean /= C;
        if (rms)
            dmean = 0; /* RMSNorm subtracts no mean */
        for (int i = 0; i < C; i++) {
            float norm = (xr[i] - mu) * rstd, dn = w[i] * d[i];
            dxr[i] += (float)((dn - dmean - norm * dnorm_mean) * rstd);
        }
        if (!dw)
            continue;
        for (int i = 0; i < C; i++) {
            dw[i] += (xr[i] - mu) * rstd * d[i];
            if (db)
                db[i] += d[i];
        }
    }
}

/* ---- activations: GELU (tanh) for GPT-2, SwiGLU for Llama ---- */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */

/* GELU's tanh form through a sigmoid: 0.5 (1 + tanh(u)) = 1 / (1 + e^-2u),
 * so one expf replaces libm's tanhf, which measured 15% of a small model's
 * training step; the results agree with PyTorch's tanh within rounding. */
static inline float gelu_sigmoid(float v) {
    return 1.0f / (1.0f + expf(-2.0f * GELU_K * (v + 0.044715f * v * v * v)));
}

void model_act_forward(const model *m, float *act, const float *fc, int rows) {
    int F = m->c.d_ff;
    for (int r = 0; r < rows; r++) {
        float *a = act + (size_t)r * F;
        if (m->c.arch == MODEL_GPT2) {
            const float *x = fc + (size_t)r * F;
            for (int i = 0; i < F; i++) {
                float v = x[i];
                a[i] = v * gelu_sigmoid(v);
            }
        } else {
            const float *g = fc + (size_t)r * 2 * F, *u = g + F;
            for (int i = 0; i < F; i++)
                a[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
    }
}

static void act_backward(const model *m, float *dfc, const float *dact, const float *fc, int rows) {
    int F = m->c.d_ff;
    for (int r = 0; r < rows; r++) {
        const float *da = dact + (size_t)r * F;
        if (m->c.arch == MODEL_GPT2) {
            const float *x = fc + (size_t)r * F;
            float *d = dfc + (size_t)r * F;
            for (int i = 0; i < F; i++) {
                /* d/dv of v s(v): 0.5 (1 - tanh^2) = 2 s (1 - s) */
                float v = x[i], sg = gelu_sigmoid(v);
                float local =
                    sg + v * 2.0f * sg * (1.0f - sg) * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
                d[i] = local * da[i];
            }
        } else {
            const float *g = fc + (size_t)r * 2 * F, *u = g + F;
            float *dg = dfc + (size_t)r * 2 * F, *du = dg + F;
            for (int i = 0; i < F; i++) {
                float s = 1.0f / (1.0f + expf(-g[i]));
                du[i] = da[i] * g[i] * s;
                dg[i] = da[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
            }
        }
    }
}

/* ---- RoPE (Hugging Face's rotate_half: pairs i and i + hd/2) ---- */

void model_rope_angles(const model_config *c, int pos, float *cs, float *sn) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* As transformers computes it, in float. */
        float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_llama3) {
            float lo_wl = (float)c->rope_original_context / c->rope_low_freq_factor;
            float hi_wl = (float)c->rope_original_context / c->rope_high_freq_factor;
            float wl = 2.0f * (float)M_PI / inv;
            float scaled = wl > lo_wl ? inv / c->rope_factor : inv;
            if (!(wl < hi_wl) && !(wl > lo_wl)) {
                float smooth = ((float)c->rope_original_context / wl - c->rope_low_freq_factor) /
                               (c->rope_high_freq_factor - c->rope_low_freq_factor);
                scaled = (1.0f - smooth) * scaled / c->rope_factor + smooth * scaled;
            }
            inv = scaled;
        }
        float a = (float)pos * inv;
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
}

void model_rope_apply(float *x, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cs[i] - x2 * sn[i];
        x[i + half] = x2 * cs[i] + x1 * sn[i];
    }
}

/* The transpose of the rotation. */
static void rope_unapply(float *d, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float d1 = d[i], d2 = d[i + half];
        d[i] = d1 * cs[i] + d2 * sn[i];
        d[i + half] = d2 * cs[i] - d1 * sn[i];
    }
}

/* Rotates (or, with back, unrotates) the q and k heads of every row. */
static void rope_rows(const model *m, float *qkv, int B, int T, int back) {
    const model_config *c = &m->c;
    int hd = c->head_dim, half = hd / 2, heads = c->n_heads + c->n_kv_heads;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = qkv + ((size_t)b * T + t) * m->qkv_width;
            const float *cs = m->a.rope_cos + (size_t)t * half,
                        *sn = m->a.rope_sin + (size_t)t * half;
            for (int h = 0; h < heads; h++) {
                if (back)
                    rope_unapply(row + (size_t)h * hd, hd, cs, sn);
                else
                    model_rope_apply(row + (size_t)h * hd, hd, cs, sn);
            }
        }
}

/* ---- causal attention, one sgemm per (sequence, head) ---- */

static void attention_forward(const model *m, float *atty, float *att, const float *qkv, int B,
                              int T) {
    const model_config *c = &m->c;
    int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, W = m->qkv_width;
    int group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * W + (size_t)h * hd;
            const float *k = qkv + (size_t)b * T * W + (size_t)(H + h / group) * hd;
            const float *v = qkv + (size_t)b * T * W + (size_t)(H + KV + h / group) * hd;
            float *p = att + ((size_t)b * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, W, k, W, 0.0f,
                        p, T);
            for (int t = 0; t < T; t++) {
                float *row = p + (size_t)t * T;
                model_softmax(row, t + 1);
                for (int j = t + 1; j < T; j++)
                    row[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, W, 0.0f,
                        atty + (size_t)b * T * H * hd + (size_t)h * hd, H * hd);
        }
}

/* dqkv = the gradient of q, k, v from datty (dqkv is overwritten). */
static void attention_backward(model *m, float *dqkv, const float *datty, const float *att,
                               const float *qkv, int B, int T) {
    const model_config *c = &m->c;
    int H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, W = m->qkv_width;
    int group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
    float *dp = m->a.dp;
    memset(dqkv, 0, (size_t)B * T * W * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            size_t base = (size_t)b * T * W;
            size_t qo = (size_t)h * hd, ko = (size_t)(H + h / group) * hd,
                   vo = (size_t)(H + KV + h / group) * hd;
            const float *p = att + ((size_t)b * H + h) * T * T;
            const float *dy = datty + (size_t)b * T * H * hd + (size_t)h * hd;
            /* dP = dY V^T; dV += P^T dY */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dy, H * hd,
                        qkv + base + vo, W, 0.0f, dp, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dy, H * hd,
                        1.0f, dqkv + base + vo, W);
            /* softmax: dS = P (dP - sum_j P dP) */
            for (int t = 0; t < T; t++) {
                const float *pr = p + (size_t)t * T;
                float *dr = dp + (size_t)t * T;
                double dot = 0;
                for (int j = 0; j <= t; j++)
                    dot += (double)pr[j] * dr[j];
                for (int j = 0; j <= t; j++)
                    dr[j] = pr[j] * (dr[j] - (float)dot);
                for (int j = t + 1; j < T; j++)
                    dr[j] = 0.0f;
            }
            /* dQ = scale dS K; dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dp, T,
                        qkv + base + ko, W, 1.0f, dqkv + base + qo, W);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dp, T,
                        qkv + base + qo, W, 1.0f, dqkv + base + ko, W);
        }
}

/* ---- the arena ---- */

typedef struct carve {
    float *base;
    size_t used;
} carve;

static float *take(carve *cv, size_t n) {
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (n + 15) & ~(size_t)15; /* 64-byte aligned pieces */
    return p;
}

/* Lays the arena out for B x T (base NULL only counts); returns floats. */
static size_t layout(model *m, float *base, int B, int T) {
    const model_config *c = &m->c;
    size_t BT = (size_t)B * T, C = (size_t)c->d_model, L = (size_t)c->n_layers;
    size_t Hhd = (size_t)c->n_heads * c->head_dim, F = (size_t)c->d_ff;
    size_t att = (size_t)B * c->n_heads * T * T;
    carve cv = {base, 0};
    model_acts *a = &m->a;
    for (size_t l = 0; l <= L; l++) {
        float *p = take(&cv, BT * C);
        if (base)
            a->res[l] = p;
    }
    for (size_t l = 0; l < L; l++) {
        float *ps[10] = {take(&cv, BT * C), take(&cv, BT * 2),   take(&cv, BT * m->qkv_width),
                         take(&cv, att),    take(&cv, BT * Hhd), take(&cv, BT * C),
                         take(&cv, BT * C), take(&cv, BT * 2),   take(&cv, BT * m->up_width),
                         take(&cv, BT * F)};
        if (base) {
            a->ln1[l] = ps[0], a->ln1s[l] = ps[1], a->qkv[l] = ps[2], a->att[l] = ps[3];
            a->atty[l] = ps[4], a->res2[l] = ps[5], a->ln2[l] = ps[6], a->ln2s[l] = ps[7];
            a->fc[l] = ps[8], a->act[l] = ps[9];
        }
    }
    float *ps[14] = {take(&cv, BT * C),
                     take(&cv, BT * 2),
                     take(&cv, BT * (size_t)c->vocab),
                     take(&cv, (size_t)T * c->head_dim / 2),
                     take(&cv, (size_t)T * c->head_dim / 2),
                     take(&cv, BT * C),
                     take(&cv, BT * C),
                     take(&cv, BT * m->qkv_width),
                     take(&cv, BT * Hhd),
                     take(&cv, BT * m->up_width),
                     take(&cv, BT * F),
                     take(&cv, (size_t)T * T),
                     take(&cv, BT * 2),
                     take(&cv, BT)};
    if (base) {
        a->lnf = ps[0], a->lnfs = ps[1], a->logits = ps[2], a->rope_cos = ps[3];
        a->rope_sin = ps[4], a->dres = ps[5], a->dln = ps[6], a->dqkv = ps[7];
        a->datty = ps[8], a->dfc = ps[9], a->dact = ps[10], a->dp = ps[11];
        a->tokens = (int32_t *)ps[12];
        a->targets = a->tokens + BT;
        a->logprobs = ps[13];
    }
    return cv.used;
}

/* layout writes into m only when given an arena */
size_t model_arena_floats(const model *m, int B, int T) { return layout((model *)m, NULL, B, T); }

static int arena_fit(model *m, int B, int T, char *err, size_t n) {
    size_t L = (size_t)m->c.n_layers;
    model_acts *a = &m->a;
    if (!a->res) {
        float **ptrs = calloc(11 * L + 1, sizeof(float *));
        if (!ptrs)
            return fail(err, n, -ENOMEM, "model: out of memory");
        a->res = ptrs;
        a->ln1 = ptrs + L + 1, a->ln1s = a->ln1 + L, a->qkv = a->ln1s + L, a->att = a->qkv + L;
        a->atty = a->att + L, a->res2 = a->atty + L, a->ln2 = a->res2 + L, a->ln2s = a->ln2 + L;
        a->fc = a->ln2s + L, a->act = a->fc + L;
    }
    size_t floats = layout(m, NULL, B, T);
    if (floats > m->arena_floats) {
        free(m->arena);
        m->arena_floats = 0;
        m->arena = aligned_alloc(64, floats * sizeof(float));
        if (!m->arena)
            return fail(err, n, -ENOMEM,
                        "model: out of memory for the activations of %d x %d tokens "
                        "(%zu MiB)",
                        B, T, floats * sizeof(float) >> 20);
        m->arena_floats = floats;
    }
    layout(m, m->arena, B, T);
    return model_lora_fit(m, B * T, err, n);
}

/* ---- forward ---- */

int model_forward(model *m, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                  int B, int T, float *loss, char *err, size_t n) {
    const model_config *c = &m->c;
    *loss = NAN;
    m->have_targets = 0;
    if (B <= 0 || T <= 0 || T > c->context)
        return fail(err, n, -EINVAL, "model: a batch of %d x %d tokens (context %d)", B, T,
                    c->context);
    int rc = arena_fit(m, B, T, err, n);
    if (rc < 0)
        return rc;
    model_acts *a = &m->a;
    int C = c->d_model, V = c->vocab, BT = B * T;
    for (int i = 0; i < BT; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return fail(err, n, -EINVAL, "model: token %d at %d is outside the vocabulary (%d)",
                        tokens[i], i, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return fail(err, n, -EINVAL, "model: target %d at %d is outside the vocabulary (%d)",
                        targets[i], i, V);
        a->tokens[i] = tokens[i];
        a->targets[i] = targets ? (mask && !mask[i] ? -1 : targets[i]) : -1;
    }
    m->B = B;
    m->T = T;
    /* embeddings */
    const float *wte = m->params + m->wte;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *x = a->res[0] + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)tokens[b * T + t] * C;
            if (m->wpe != MODEL_NONE) {
                const float *p = m->params + m->wpe + (size_t)t * C;
                for (int i = 0; i < C; i++)
                    x[i] = e[i] + p[i];
            } else {
                memcpy(x, e, (size_t)C * sizeof(float));
            }
        }
    if (c->arch == MODEL_LLAMA)
        for (int t = 0; t < T; t++)
            model_rope_angles(c, t, a->rope_cos + (size_t)t * (c->head_dim / 2),
                              a->rope_sin + (size_t)t * (c->head_dim / 2));
    int Hhd = c->n_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &m->layers[l];
        model_norm_forward(m, &L->ln1, a->ln1[l], a->ln1s[l], a->res[l], BT);
        int off = 0;
        for (int j = 0; j < L->n_qkv; j++) {
            model_linear_forward(m, &L->qkv[j], a->qkv[l] + off, m->qkv_width, a->ln1[l], BT);
            off += L->qkv[j].out;
        }
        if (c->arch == MODEL_LLAMA)
            rope_rows(m, a->qkv[l], B, T, 0);
        attention_forward(m, a->atty[l], a->att[l], a->qkv[l], B, T);
        model_linear_forward(m, &L->o, a->res2[l], C, a->atty[l], BT);
        for (size_t i = 0; i < (size_t)BT * C; i++)
            a->res2[l][i] += a->res[l][i];
        model_norm_forward(m, &L->ln2, a->ln2[l], a->ln2s[l], a->res2[l], BT);
        off = 0;
        for (int j = 0; j < L->n_up; j++) {
            model_linear_forward(m, &L->up[j], a->fc[l] + off, m->up_width, a->ln2[l], BT);
            off += L->up[j].out;
        }
        model_act_forward(m, a->act[l], a->fc[l], BT);
        model_linear_forward(m, &L->down, a->res[l + 1], C, a->act[l], BT);
        for (size_t i = 0; i < (size_t)BT * C; i++)
            a->res[l + 1][i] += a->res2[l][i];
    }
    (void)Hhd;
    model_norm_forward(m, &m->lnf, a->lnf, a->lnfs, a->res[c->n_layers], BT);
    model_linear_forward(m, &m->head, a->logits, V, a->lnf, BT);
    if (!targets)
        return 0;
    /* cross-entropy over the counted positions */
    double sum = 0;
    long count = 0;
    for (int i = 0; i < BT; i++) {
        a->logprobs[i] = 0.0f;
        if (a->targets[i] < 0)
            continue;
        const float *z = a->logits + (size_t)i * V;
        float mx;
        double s = sum_exp(z, V, &mx);
        double nll = log(s) + mx - z[a->targets[i]];
        a->logprobs[i] = (float)-nll;
        sum += nll;
        count++;
    }
    m->have_targets = 1;
    m->count = (double)count;
    m->loss = count ? (float)(sum / (double)count) : NAN;
    *loss = m->loss;
    return 0;
}

const float *model_logits(const model *m) { return m->a.logits; }

const float *model_logprobs(const model *m) { return m->have_targets ? m->a.logprobs : NULL; }

/* ---- backward ---- */

void model_zero_grad(model *m) {
    if (m->grads)
        memset(m->grads, 0, m->n_params * sizeof(float));
    if (m->lora.grads)
        memset(m->lora.grads, 0, m->lora.n_params * sizeof(float));
}

/* How far down layer l the backward has to go, in the backward's order of
 * its modules: past the last one that has something to train. Training the
 * base, or above layer 0, that is the layer's input (the residual stream
 * below). Under adapters nothing below layer 0 trains (the embeddings and
 * norms are frozen), so layer 0 stops at its lowest adapted module: the
 * input gradients that would only flow into frozen weights (at least the
 * q, k, v projections' matrix product and ln_1's) are not computed. */
enum { DEPTH_DOWN, DEPTH_UP, DEPTH_O, DEPTH_QKV, DEPTH_INPUT };

static int adapted(const model_linear *l, int n) {
    for (int j = 0; j < n; j++)
        if (l[j].la != MODEL_NONE)
            return 1;
    return 0;
}

static int backward_depth(const model *m, int l) {
    const model_layer *L = &m->layers[l];
    if (!m->lora.r || l > 0)
        return DEPTH_INPUT;
    return adapted(L->qkv, L->n_qkv) ? DEPTH_QKV
           : adapted(&L->o, 1)       ? DEPTH_O
           : adapted(L->up, L->n_up) ? DEPTH_UP
                                     : DEPTH_DOWN;
}

int model_backward(model *m, float scale, char *err, size_t n) {
    return model_backward_weighted(m, NULL, scale, err, n);
}

int model_backward_weighted(model *m, const float *weights, float scale, char *err, size_t n) {
    const model_config *c = &m->c;
    if (!m->have_targets)
        return fail(err, n, -EINVAL, "model: backward without a forward with targets");
    /* Gradients only for what trains: with adapters theirs alone, the
     * frozen base has no gradient array at all. */
    float **grads = m->lora.r ? &m->lora.grads : &m->grads;
    size_t count = m->lora.r ? m->lora.n_params : m->n_params;
    if (!*grads) {
        *grads = calloc(count, sizeof(float));
        if (!*grads)
            return fail(err, n, -ENOMEM, "model: out of memory for %zu gradients", count);
    }
    m->have_targets = 0; /* the logits become their gradient */
    model_acts *a = &m->a;
    int B = m->B, T = m->T, BT = B * T, C = c->d_model, V = c->vocab;
    float mean = m->count > 0 ? (float)(scale / m->count) : 0.0f;
    for (int i = 0; i < BT; i++) {
        float *z = a->logits + (size_t)i * V;
        int y = a->targets[i];
        float k = weights ? scale * weights[i] : mean;
        if (y < 0 || k == 0.0f) {
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        model_softmax(z, V);
        for (int j = 0; j < V; j++)
            z[j] *= k;
        z[y] -= k;
    }
    /* head, final norm */
    model_linear_backward(m, &m->head, a->dln, 0, a->logits, V, a->lnf, BT);
    memset(a->dres, 0, (size_t)BT * C * sizeof(float));
    norm_backward(m, &m->lnf, a->dres, a->dln, a->res[c->n_layers], a->lnfs, BT);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const model_layer *L = &m->layers[l];
        int depth = backward_depth(m, l);
        /* MLP: dres is d(res[l+1]) and becomes d(res2) */
        model_linear_backward(m, &L->down, depth > DEPTH_DOWN ? a->dact : NULL, 0, a->dres, C,
                              a->act[l], BT);
        if (depth == DEPTH_DOWN)
            break;
        act_backward(m, a->dfc, a->dact, a->fc[l], BT);
        int off = 0;
        for (int j = 0; j < L->n_up; j++) {
            model_linear_backward(m, &L->up[j], depth > DEPTH_UP ? a->dln : NULL, j > 0,
                                  a->dfc + off, m->up_width, a->ln2[l], BT);
            off += L->up[j].out;
        }
        if (depth == DEPTH_UP)
            break;
        norm_backward(m, &L->ln2, a->dres, a->dln, a->res2[l], a->ln2s[l], BT);
        /* attention: dres becomes d(res[l]) */
        model_linear_backward(m, &L->o, depth > DEPTH_O ? a->datty : NULL, 0, a->dres, C,
                              a->atty[l], BT);
        if (depth == DEPTH_O)
            break;
        attention_backward(m, a->dqkv, a->datty, a->att[l], a->qkv[l], B, T);
        if (c->arch == MODEL_LLAMA)
            rope_rows(m, a->dqkv, B, T, 1);
        off = 0;
        for (int j = 0; j < L->n_qkv; j++) {
            model_linear_backward(m, &L->qkv[j], depth > DEPTH_QKV ? a->dln : NULL, j > 0,
                                  a->dqkv + off, m->qkv_width, a->ln1[l], BT);
            off += L->qkv[j].out;
        }
        if (depth == DEPTH_QKV)
            break;
        norm_backward(m, &L->ln1, a->dres, a->dln, a->res[l], a->ln1s[l], BT);
    }
    if (m->lora.r) /* the base is frozen under adapters */
        return 0;
    /* embeddings, in token order so a repeated token sums deterministically */
    float *dwte = m->grads + m->wte;
    for (int i = 0; i < BT; i++) {
        const float *d = a->dres + (size_t)i * C;
        float *e = dwte + (size_t)a->tokens[i] * C;
        for (int j = 0; j < C; j++)
            e[j] += d[j];
        if (m->wpe != MODEL_NONE) {
            float *p = m->grads + m->wpe + (size_t)(i % T) * C;
            for (int j = 0; j < C; j++)
                p[j] += d[j];
        }
    }
    return 0;
}
