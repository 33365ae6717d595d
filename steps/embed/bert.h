/* bert.h - a BERT encoder's forward pass on OpenBLAS, with the mean pooling
 * and L2 normalisation that sentence-transformers puts after it for
 * all-MiniLM-L6-v2 (and every model of that family): one unit-length vector
 * of hidden_size floats per text.
 *
 * The model is a Hugging Face folder:
 *   config.json        hidden_size, num_hidden_layers, num_attention_heads,
 *                      intermediate_size, max_position_embeddings,
 *                      type_vocab_size, vocab_size, layer_norm_eps and
 *                      hidden_act, which must be "gelu" (the exact, erf form);
 *   model.safetensors  the weights under BertModel's names, with or without
 *                      a "bert." prefix (embeddings.word_embeddings.weight,
 *                      encoder.layer.N.attention.self.query.weight, ...),
 *                      all F32, every shape as the config implies;
 *   vocab.txt and tokenizer_config.json, read by wordpiece_new (wordpiece.h).
 *
 * The forward pass, as transformers' BertModel in eval mode computes it:
 * word + position + token type 0 embeddings, LayerNorm; per layer, Q/K/V
 * projections, scaled dot-product attention per head where padding keys
 * get no weight, output projection + residual + LayerNorm, then
 * intermediate projection, GELU, output projection + residual + LayerNorm.
 * Every projection is a cblas_sgemm over the tokens of a batch (weights
 * are stored [out, in] as torch.nn.Linear keeps them: y = x W^T + b): Q, K
 * and V stacked into one, the feed-forward in blocks of 512 tokens so that
 * GELU works on what is still in cache. Attention, softmax, GELU and
 * LayerNorm run on threads of their own beside OpenBLAS's, with exp and erf
 * written to vectorize (within a few ulp of libm's).
 * Pooling averages the last hidden states of the tokens whose attention
 * mask is 1 ([CLS] and [SEP] included, as sentence-transformers does), then
 * divides by the L2 norm (at least 1e-12, as torch.nn.functional.normalize).
 *
 * A bert_model is immutable once loaded: threads may share one (each call
 * allocates its own scratch space). */
#ifndef SLUICE_STEPS_BERT_H
#define SLUICE_STEPS_BERT_H

#include <stddef.h>

#include "wordpiece.h"

typedef struct bert_config {
    size_t hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
    size_t max_position_embeddings, type_vocab_size, vocab_size;
    double layer_norm_eps;
} bert_config;

typedef struct bert_model bert_model;

/* Texts per forward pass in bert_embed: bounds the scratch memory to about
 * BERT_BATCH * max_length * (4 * hidden + intermediate) floats. */
#define BERT_BATCH 32

/* Loads dir/config.json, dir/model.safetensors and the tokenizer of dir.
 * The weights are copied out of the file (which is closed again), so the
 * model does not depend on the file's alignment or lifetime.
 * On success *out is a new model the caller frees with bert_free().
 * On failure returns a negative code (-errno of a failed read, -EINVAL for
 * bad content, -ENOMEM) and writes into err (err_size bytes, NUL-terminated
 * when err_size > 0; err may be NULL) a message naming the file and what is
 * wrong, e.g. "m/model.safetensors: tensor 'encoder.layer.0.output.dense.
 * weight' has shape [32, 63], expected [32, 64]", "m/model.safetensors:
 * tensor '...' is F16; only F32 is supported", "m/config.json: hidden_act is
 * 'relu'; only 'gelu' is supported". */
int bert_load(const char *dir, bert_model **out, char *err, size_t err_size);
void bert_free(bert_model *m);

/* Borrowed from the model, valid until bert_free(). */
const bert_config *bert_model_config(const bert_model *m);
const wordpiece *bert_model_tokenizer(const bert_model *m);

/* Embeds n texts (texts[i] of lens[i] bytes; a text may be NULL when its
 * length is 0) into out, n rows of hidden_size floats, row-major. Each text
 * is tokenized as wordpiece_batch_new does with max_length (0 means the
 * model's max_position_embeddings, which max_length may not exceed; at
 * least 2) and padded to the longest text of its batch of BERT_BATCH.
 * Returns 0 (n == 0 included), -EINVAL with a message for a bad max_length,
 * -ERANGE when an output is not finite (weights so large that the forward
 * pass overflows), or -ENOMEM; out is then undefined. */
int bert_embed(const bert_model *m, const char *const *texts, const size_t *lens, size_t n,
               size_t max_length, float *out, char *err, size_t err_size);

/* The forward pass and pooling alone, on an encoded batch (wordpiece.h):
 * out gets b->rows rows of hidden_size floats. The ids are checked against
 * the vocabulary and type_vocab_size, the width against
 * max_position_embeddings (-EINVAL with a message); a row whose mask is all
 * 0 pools to the zero vector. Scratch space is allocated for the call. */
int bert_forward(const bert_model *m, const wordpiece_batch *b, float *out, char *err,
                 size_t err_size);

#endif
