/* model.h - decoder-only transformers in C on OpenBLAS: GPT-2 and the Llama
 * family (llama, qwen2, mistral), read from and written to a Hugging Face
 * folder, with forward, backward, a masked cross-entropy loss, AdamW and
 * gradient clipping, for the train step, the evaluate step and serve.
 *
 * Everything is computed in F32; weights on disk may be F32, F16 or BF16
 * and are always written back as F32. A model is one handle: its
 * parameters, their gradients and AdamW moments are each one contiguous
 * array (the tensors of model_tensor_name in order), its activations one
 * arena sized for the largest batch seen. Gradients and moments exist only
 * for what trains: with LoRA adapters, for the adapters alone. A handle is not shared between
 * threads; different handles may be used on different threads at once.
 *
 * Determinism: matrix products go through OpenBLAS (its thread count is
 * the caller's: openblas_set_num_threads); every other loop runs on the
 * calling thread in a fixed order, so the same inputs, seed and thread count
 * give bit-identical results.
 *
 * Errors: functions return 0 or a negative errno and write a message naming
 * the file, tensor and expected shape into err (err_size bytes). */
#ifndef SLUICE_MODEL_H
#define SLUICE_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum model_arch { MODEL_GPT2, MODEL_LLAMA } model_arch;

/* The architecture, as config.json gives it. For GPT-2, n_kv_heads equals
 * n_heads, d_ff is 4 * d_model, head_dim d_model / n_heads, and the rope
 * fields are unused. */
typedef struct model_config {
    model_arch arch;
    char model_type[16]; /* "gpt2", "llama", "qwen2" or "mistral" */
    int d_model, n_layers, n_heads, n_kv_heads, head_dim, d_ff, context, vocab;
    float norm_eps;
    float rope_theta;
    /* rope_scaling of Llama 3 ({"rope_type": "llama3", ...}); 0 when absent. */
    int rope_llama3;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_context;
    int tied;                       /* the output head is the token embedding */
    int qkv_bias;                   /* q, k, v projections have biases (qwen2, attention_bias) */
    int o_bias;                     /* the output projection too (llama's attention_bias) */
    int bos_token_id, eos_token_id; /* -1 when config.json has none */
} model_config;

typedef struct model model;

/* A config for a fresh model: type is "gpt2" or "llama" (any of the Llama
 * family's names); n_kv_heads 0 means n_heads, d_ff 0 means 4 * d_model for
 * GPT-2 and a SwiGLU-sized multiple of 64 for Llama. Checks the shape
 * (d_model divisible by n_heads, n_heads by n_kv_heads, positive sizes).
 * Llama's head is tied, rope_theta 10000, norm_eps 1e-5, no biases; these
 * fields may be changed before model_new, which checks the config again. */
int model_config_init(model_config *c, const char *type, int d_model, int n_layers, int n_heads,
                      int n_kv_heads, int d_ff, int context, int vocab, char *err, size_t err_size);

/* Reads the Hugging Face folder dir: config.json, then model.safetensors or
 * the shards of model.safetensors.index.json. Refuses another model_type,
 * quantized or integer weights, a missing tensor or one of another shape,
 * naming the file, the tensor and the shape expected. *m is the caller's,
 * ended by model_free. */
int model_open(const char *dir, model **m, char *err, size_t err_size);

/* A fresh model of config c (copied), initialized as GPT-2 is (normal with
 * std 0.02, residual projections scaled by 1/sqrt(2 * n_layers), biases 0,
 * norms 1) from seed: the same seed gives the same weights. *m is the
 * caller's, ended by model_free. */
int model_new(const model_config *c, uint64_t seed, model **m, char *err, size_t err_size);

/* Writes config.json and model.safetensors (F32, Hugging Face's names and
 * layouts) into the existing folder dir, each replaced only once complete. */
int model_save(const model *m, const char *dir, char *err, size_t err_size);

void model_free(model *m);

/* Borrowed until model_free. */
const model_config *model_get_config(const model *m);

/* The parameters: count, and each tensor's Hugging Face name, shape, values
 * and gradient (NULL before the first backward, and while the model has
 * LoRA adapters: the frozen base has no gradient array). Pointers are
 * borrowed until model_free; a tensor's values may be changed in place. */
size_t model_param_count(const model *m);
size_t model_tensor_count(const model *m);
const char *model_tensor_name(const model *m, size_t i);
int model_tensor_shape(const model *m, size_t i, uint64_t shape[2]); /* returns ndim */
float *model_tensor_data(model *m, size_t i, size_t *count);
const float *model_tensor_grad(const model *m, size_t i, size_t *count);

/* Runs the B sequences of T tokens (tokens: B * T ids, borrowed for the
 * call; T at most the context). With targets (B * T ids or -1), *loss is
 * the mean cross-entropy over the positions whose target is not -1 and,
 * when mask is given, whose mask is not 0 (NaN when none counts); without
 * targets *loss is NaN and no backward may follow. Grows the arena when
 * B * T exceeds what it was sized for. */
int model_forward(model *m, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                  int B, int T, float *loss, char *err, size_t err_size);

/* The (B, T, vocab) logits of the last forward; borrowed until the next
 * model_forward or model_backward (which overwrites them). */
const float *model_logits(const model *m);

/* Adds to the gradients those of scale * loss of the last forward (scale 1
 * for one batch, 1/k for each of k accumulated batches). Gradients start at
 * zero and are cleared by model_zero_grad. -EINVAL without targets; the
 * next backward needs another forward. */
int model_backward(model *m, float scale, char *err, size_t err_size);
/* The same with a weight per position instead of the mean: adds the
 * gradients of scale * sum_i weights[i] * -log p(target_i) over the counted
 * positions (weights: B * T floats, borrowed for the call). This is what
 * losses over whole sequences need (DPO: a coefficient per sequence on its
 * response tokens). */
int model_backward_weighted(model *m, const float *weights, float scale, char *err,
                            size_t err_size);
/* log p(target) at each of the B * T positions of the last forward with
 * targets (0 where not counted); NULL otherwise. Borrowed until the next
 * forward or backward. */
const float *model_logprobs(const model *m);
void model_zero_grad(model *m);

/* The global L2 norm of all gradients. */
float model_grad_norm(const model *m);
/* Clips as torch.nn.utils.clip_grad_norm_ does (scales by
 * max_norm / (norm + 1e-6) when that is below 1); returns the norm before. */
float model_clip_grad(model *m, float max_norm);

/* AdamW with PyTorch's semantics: bias-corrected moments, weight decay
 * decoupled (p *= 1 - lr * weight_decay) and applied to the matrices and
 * embeddings only (tensors of two dimensions), as nanoGPT and llm.c group
 * them. The step count lives in the model. */
typedef struct model_adamw {
    float lr, beta1, beta2, eps, weight_decay;
} model_adamw;
int model_adamw_step(model *m, const model_adamw *opt, char *err, size_t err_size);

/* AdamW's state for a checkpoint: model_save_optimizer writes both moments
 * and the step count to path (safetensors: "adam.m" and "adam.v" over all
 * parameters in the tensors' order, "adam.step"), replacing it once
 * complete; -EINVAL before the first step. model_load_optimizer reads such
 * a file back into m, refusing one of another parameter count, so that
 * training resumes bit-identically. */
int model_save_optimizer(const model *m, const char *path, char *err, size_t err_size);
int model_load_optimizer(model *m, const char *path, char *err, size_t err_size);

/* What a model of config c needs, in bytes: *param_bytes for its weights,
 * *train_bytes for training all of them on batches of B x T tokens
 * (weights, gradients, AdamW's moments and the activations), so a caller
 * can refuse before allocating. Allocates nothing but a table. */
int model_estimate(const model_config *c, int B, int T, size_t *param_bytes, size_t *train_bytes,
                   char *err, size_t err_size);
/* The same for m as it stands, counting what forward, backward and AdamW
 * will allocate: with LoRA adapters (and their dropout) the base's weights,
 * the adapters with their gradients and moments, the activations and the
 * adapters' scratch; no gradient nor moment for the frozen base. */
int model_train_estimate(const model *m, int B, int T, size_t *train_bytes, char *err,
                         size_t err_size);

/* Generation with a KV cache: model_decode_reset empties the cache and
 * sizes it for max_len positions (at most the context), then each
 * model_decode runs one more token at the next position, attending to the
 * cached keys and values of the earlier ones, and returns its vocab logits
 * (borrowed until the next model_decode or model_decode_reset). -ENOSPC
 * past max_len. The cache is separate from the training arena. */
int model_decode_reset(model *m, int max_len, char *err, size_t err_size);
int model_decode(model *m, int32_t token, const float **logits, char *err, size_t err_size);

/* The same cache as a handle of its own, for several generations at once
 * over one model (serve's slots): a decoder reads m's weights and writes
 * only its own cache and scratch, so decoders of one m may run on
 * different threads at once while nothing changes m (no forward, backward,
 * AdamW or LoRA call). m must have no LoRA adapters (merge them first:
 * their forward shares scratch space). model_decoder_new sizes the cache
 * for max_len positions (at most the context); model_decoder_reset empties
 * it for max_len positions (growing it when needed); model_decoder_step is
 * model_decode. *d is the caller's, ended by model_decoder_free before
 * model_free(m). */
typedef struct model_decoder model_decoder;
int model_decoder_new(const model *m, int max_len, model_decoder **d, char *err, size_t err_size);
int model_decoder_reset(model_decoder *d, int max_len, char *err, size_t err_size);
int model_decoder_step(model_decoder *d, int32_t token, const float **logits, char *err,
                       size_t err_size);
void model_decoder_free(model_decoder *d);
/* A prompt's n tokens at the next positions, as n model_decoder_steps
 * would, and the logits after the last one (borrowed as model_decoder_step's):
 * each linear layer as one matrix product over up to 64 tokens, so every
 * weight is read once for many of them. The logits agree with the steps'
 * to float rounding (a product's sums in another order), not bit for bit.
 * logits NULL: no logits are made (a part of a prompt, the rest to come;
 * the output head is not run). -ENOSPC when they do not fit in the cache,
 * -EINVAL for a token outside the vocabulary (nothing is run then). */
int model_decoder_prefill(model_decoder *d, const int32_t *tokens, int n, const float **logits,
                          char *err, size_t err_size);

/* Rows one matrix product puts through the layers at once (a prefill's
 * chunk, a batched step's decoders): enough that each weight read serves
 * many tokens, few enough that the activations stay small (64 rows of
 * GPT-2 small: 2.6 MiB). */
#define MODEL_BATCH_MAX 64
/* One step of B decoders at once (1 to MODEL_BATCH_MAX, distinct, of one
 * model; each at its own position): tokens[b] into d[b], as B
 * model_decoder_steps would, with each linear layer (QKV, output
 * projection, MLP, head) one matrix product over the B rows, so every
 * weight is read once for all of them; attention runs for each decoder
 * against its own cache. logits[b] is d[b]'s, borrowed as its step's. For
 * B = 1 this is model_decoder_step, bit for bit; for more the logits
 * agree with the single steps' to float rounding (matrix-matrix instead
 * of matrix-vector products sum in another order). The batch's scratch
 * is d[0]'s, so two batches led by the same decoder may not run at once.
 * -EINVAL (a token outside the vocabulary, B out of range, a decoder twice
 * or of another model) or -ENOSPC (a full cache) before anything is run. */
int model_decoder_step_batch(model_decoder *const *d, const int32_t *tokens, int B,
                             const float **logits, char *err, size_t err_size);

/* LoRA adapters, as PEFT's LoraModel: each linear layer whose Hugging Face
 * module name ends in one of targets (GPT-2: c_attn, c_proj, c_fc; Llama:
 * q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) gets
 * y += (alpha / r) * (x A^T) B^T, A (r, in) Kaiming-uniform from seed and B
 * (out, r) zero (GPT-2's Conv1D layout is PEFT's fan_in_fan_out). From then
 * on the base is frozen: the backward computes no base weight gradient
 * (nor the input gradients that would only feed one), the base's gradient
 * array and moments are released, and AdamW, the gradient norm, clipping
 * and the optimizer state cover the adapters only. Refuses r <= 0, an
 * unknown target module, a model that already has adapters. */
int model_lora_add(model *m, int r, float alpha, const char *const *targets, int n_targets,
                   uint64_t seed, char *err, size_t err_size);
/* The target modules m's architecture has, as above, NULL-terminated;
 * static. */
const char *const *model_lora_modules(const model *m);
/* Dropout p in [0, 1) on each adapter's input, as PEFT's lora_dropout
 * (kept elements scaled by 1 / (1 - p)); its mask is a function of seed,
 * the optimizer's step count, the layer and the element, so a step is
 * reproducible and a backward sees its forward's mask. p 0 is exactly the
 * path without dropout. model_lora_train(m, 0) turns dropout off (for
 * evaluation and generation), 1 back on (the default). */
int model_lora_dropout(model *m, float p, uint64_t seed, char *err, size_t err_size);
void model_lora_train(model *m, int on);
/* Folds the adapters into the base weights (W += (alpha / r) B A, as its
 * transpose for Conv1D) and removes them; model_save then writes the merged
 * model as a normal folder. */
int model_lora_merge(model *m, char *err, size_t err_size);
/* PEFT's files in the existing folder dir: adapter_config.json (peft_type
 * LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules,
 * fan_in_fan_out true for GPT-2's Conv1D, bias "none",
 * base_model_name_or_path) and adapter_model.safetensors with PEFT's keys
 * (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight (r, in),
 * ...lora_B.weight (out, r); GPT-2: base_model.model.transformer.h.0...). */
int model_lora_save(const model *m, const char *dir, const char *base_model, char *err,
                    size_t err_size);
/* Adds the adapters of PEFT's folder dir onto the base model m, refusing
 * another peft_type, r <= 0, an unknown target module, a missing tensor or
 * one whose shape does not fit the base (naming it and the shape expected);
 * on failure m is left without adapters. */
int model_lora_load(model *m, const char *dir, char *err, size_t err_size);
/* model_open, and when dir also holds PEFT's adapter_config.json (the train
 * step's LoRA output without merge: the base plus its adapter) the adapter
 * loaded and merged into the weights, so that the model is the fine-tuned
 * one; *lora_r (when not NULL) is its r, 0 without one. A bad adapter fails
 * naming dir, and *m is then NULL. */
int model_open_adapted(const char *dir, model **m, int *lora_r, char *err, size_t err_size);
/* r, 0 without adapters. */
int model_lora_r(const model *m);
/* The adapters' tensors, A then B for each adapted layer in the model's
 * order, named by their module (e.g. "h.0.attn.c_attn.lora_A.weight");
 * borrowed until model_free or model_lora_merge, as model_tensor_*. */
size_t model_lora_tensor_count(const model *m);
const char *model_lora_tensor_name(const model *m, size_t i);
int model_lora_tensor_shape(const model *m, size_t i, uint64_t shape[2]);
float *model_lora_tensor_data(model *m, size_t i, size_t *count);
const float *model_lora_tensor_grad(const model *m, size_t i, size_t *count);

#endif
