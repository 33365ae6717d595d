/* model_internal.h - the model handle's layout, shared by the files of
 * steps/model (model.c: folders and parameters; pass.c: forward and
 * backward; adamw.c; decode.c). Not for the library's users. */
#ifndef SLUICE_MODEL_INTERNAL_H
#define SLUICE_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define MODEL_NONE ((size_t)-1)

/* One parameter tensor: its Hugging Face name and shape, and where it
 * starts in the parameter (and gradient, moment) arrays. */
typedef struct model_tensor {
    char name[128];
    int ndim;
    uint64_t shape[2];
    size_t offset, count;
} model_tensor;

/* A linear layer y = x W^T + b. W is kept in the file's layout: (out, in)
 * for a torch Linear, (in, out) for GPT-2's Conv1D (in_out), so a model is
 * saved as it was read; the matrix product absorbs the transpose. Offsets
 * index the parameter array (and the gradient array alike); b is MODEL_NONE
 * without a bias. Every projection of the model goes through
 * model_linear_forward/backward, the one place adapters will hook into. */
typedef struct model_linear {
    size_t w, b;
    int in, out;
    int in_out;
    /* A LoRA adapter (lora.c): offsets of A (r, in) and B (out, r) in the
     * adapter's own arrays (m->lora), MODEL_NONE without one. */
    size_t la, lb;
} model_linear;

/* The LoRA adapters of a model (lora.c): their tensors live apart from the
 * base parameters, so model_save writes the base model unchanged and the
 * optimizer, the gradient norm and clipping see only these once r > 0. */
typedef struct model_lora {
    int r; /* 0: no adapters, the base model is trained */
    float alpha, scale;
    char targets[8][16]; /* target_modules as given, for adapter_config.json */
    int n_targets;
    model_tensor *t;
    size_t n_tensors, n_params;
    float *params, *grads, *adam_m, *adam_v;
    float *scratch; /* (rows, r) x 2 for the adapter's hidden values */
    size_t scratch_floats;
    /* dropout on the adapter's input (0: none), its mask a hash of seed,
     * the optimizer step, the layer and the element, so the backward
     * regenerates it; training 0 turns it off (evaluation) */
    float dropout;
    uint64_t drop_seed;
    int training, max_in;
    float *xd; /* (rows, max_in): the dropped input */
    size_t xd_floats;
} model_lora;

typedef struct model_norm {
    size_t w, b; /* b is MODEL_NONE for RMSNorm */
} model_norm;

typedef struct model_layer {
    model_norm ln1, ln2;
    /* GPT-2: qkv[0] is c_attn (3 * d_model outputs). Llama: q, k, v. */
    model_linear qkv[3];
    int n_qkv;
    model_linear o;
    /* GPT-2: up[0] is c_fc. Llama: gate, up. */
    model_linear up[2];
    int n_up;
    model_linear down;
} model_layer;

/* Activations of one forward for B x T tokens (BT rows), kept for the
 * backward; every array lives in the one arena. */
typedef struct model_acts {
    float **res;         /* n_layers + 1 residual streams, (BT, C) */
    float **ln1, **ln1s; /* normed input, (mean, rstd) per row */
    float **qkv;         /* (BT, qkv_width): q heads, k heads, v heads */
    float **att;         /* softmax probabilities, (B, H, T, T) */
    float **atty;        /* attention output, (BT, H * hd) */
    float **res2;        /* after attention */
    float **ln2, **ln2s;
    float **fc;  /* (BT, up_width): GPT-2 pre-GELU; Llama gate | up */
    float **act; /* (BT, d_ff) */
    float *lnf, *lnfs;
    float *logits;              /* (BT, V); gradients after the backward */
    float *rope_cos, *rope_sin; /* (T, hd / 2) */
    /* backward scratch */
    float *dres, *dln, *dqkv, *datty, *dfc, *dact, *dp;
    int32_t *tokens, *targets;
    float *logprobs; /* log p(target) per position, 0 where not counted */
} model_acts;

struct model {
    model_config c;
    model_tensor *t;
    size_t n_tensors;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v;
    long adam_steps;
    size_t wte, wpe; /* wpe: GPT-2 only */
    model_norm lnf;
    model_linear head;
    model_layer *layers;
    int qkv_width, up_width;
    model_lora lora;

    /* the arena */
    float *arena;
    size_t arena_floats;
    model_acts a;
    int B, T;
    int have_targets;
    float loss;
    double count;

    /* model_decode_reset/model_decode's KV cache (decode.c); NULL before */
    model_decoder *dec;
};

/* y (rows, out; row stride ldy) = x (rows, in) W^T + b. */
void model_linear_forward(const model *m, const model_linear *l, float *y, int ldy, const float *x,
                          int rows);
/* dx (rows, in) = dy W (added to dx when accumulate), dW += dy^T x,
 * db += column sums of dy. */
void model_linear_backward(model *m, const model_linear *l, float *dx, int accumulate,
                           const float *dy, int ldy, const float *x, int rows);

/* Makes the adapter scratch hold rows rows (lora.c). */
int model_lora_fit(model *m, int rows, char *err, size_t n);
/* The floats model_lora_fit holds for rows rows: 0 without adapters. */
size_t model_lora_scratch_floats(const model *m, int rows);
void model_lora_release(model *m);
void model_lora_forward(const model *m, const model_linear *l, float *y, int ldy, const float *x,
                        int rows);
void model_lora_backward(model *m, const model_linear *l, float *dx, const float *dy, int ldy,
                         const float *x, int rows);

/* RoPE's angles for position pos into cos and sin (hd / 2 each), with
 * Llama 3's frequency scaling when the config asks for it. */
void model_rope_angles(const model_config *c, int pos, float *cos_out, float *sin_out);
void model_rope_apply(float *x, int hd, const float *cs, const float *sn);

/* Writes the message into err (if any) and returns code. */
int model_fail(char *err, size_t n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The floats of the activation arena for B x T (pass.c). */
size_t model_arena_floats(const model *m, int B, int T);

/* Softmax of row[0..n) in place (sums in double). */
void model_softmax(float *row, int n);

void model_norm_forward(const model *m, const model_norm *n, float *out, float *stats,
                        const float *x, int rows);
void model_act_forward(const model *m, float *act, const float *fc, int rows);

#endif
