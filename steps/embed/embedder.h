/* embedder.h - one face for the two embedders of the embed step: a BERT
 * model from a Hugging Face folder (bert.h) or the built-in TF-IDF + SVD
 * model fitted on the corpus (tfidf.h). Whatever embedded the chunks must
 * embed the queries, so a model is always saved beside what it made, as a
 * folder that embedder_load() reads back.
 *
 * An embedder is immutable once made; threads may share one. */
#ifndef SLUICE_STEPS_EMBEDDER_H
#define SLUICE_STEPS_EMBEDDER_H

#include <stddef.h>

#include "tfidf.h"

typedef struct embedder embedder;

/* Loads the model folder dir: the built-in model when its config.json says
 * "model_type": "sluice_tfidf_svd", else a BERT model (bert_load). *out is
 * the caller's: free with embedder_free(). Errors name the file at fault. */
int embedder_load(const char *dir, embedder **out, char *err, size_t err_size);

/* Fits the built-in model on n texts (tfidf_fit). */
int embedder_fit(const char *const *texts, const size_t *lens, size_t n, const tfidf_params *p,
                 embedder **out, char *err, size_t err_size);

void embedder_free(embedder *e);

size_t embedder_dim(const embedder *e);
/* The longest input a BERT model takes, in tokens ([CLS] and [SEP]
 * included); 0 for the built-in model, which has no limit. */
size_t embedder_max_tokens(const embedder *e);
/* "bert" or TFIDF_MODEL_TYPE. */
const char *embedder_kind(const embedder *e);
/* The built-in model, or NULL for a BERT one (borrowed). */
const tfidf_model *embedder_tfidf(const embedder *e);

/* Embeds n texts into out (n rows of embedder_dim() floats, unit length or
 * zero). max_tokens bounds a BERT model's input, [CLS] and [SEP] included
 * (0: the model's own limit); the built-in model reads every term. */
int embedder_embed(const embedder *e, const char *const *texts, const size_t *lens, size_t n,
                   size_t max_tokens, float *out, char *err, size_t err_size);

/* How many tokens of text[0..len) the model reads when it embeds it with
 * max_tokens 0: a BERT model's WordPiece tokens with [CLS] and [SEP], at
 * most its limit; the built-in model's terms (text_each_term). For an
 * API's usage counts. 0 or -ENOMEM. */
int embedder_count_tokens(const embedder *e, const char *text, size_t len, size_t *n);

/* Writes the model into the existing folder dir so that embedder_load(dir)
 * gives the same embedder: the built-in model's files, or a BERT model's
 * config.json, model.safetensors, vocab.txt and tokenizer_config.json
 * (copies). */
int embedder_save(const embedder *e, const char *dir, char *err, size_t err_size);

#endif
