/* model_folder.h - a model folder as the programs that run a trained model
 * use it (`sluice model`, the evaluate step): the model with its LoRA
 * adapter applied, the tokenizer beside it, its end and start tokens, the
 * tokenizer in the form the train step's examples builder takes (so that
 * evaluation tokenizes the Alpaca template exactly as SFT did), and greedy
 * or sampled generation on the KV cache. */
#ifndef SLUICE_MODEL_FOLDER_H
#define SLUICE_MODEL_FOLDER_H

#include <stddef.h>
#include <stdint.h>

#include "examples.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

typedef struct model_folder {
    model *m;
    tok_tokenizer *tok; /* NULL when the folder has none and none was needed */
    char tok_path[4200];
    int lora_r;     /* the rank of the LoRA adapter applied, 0: none */
    int32_t eos_id; /* -1: none known */
    int32_t bos_id; /* what starts a sequence (Llama-family models), -1: nothing */
} model_folder;

/* Opens dir's model (model_open_adapted) and dir/tokenizer.json; without a
 * tokenizer, fails only when need_tok. *f is the caller's, ended by
 * model_folder_close (also after a failure). */
int model_folder_open(const char *dir, int need_tok, model_folder *f, char *err, size_t err_size);
void model_folder_close(model_folder *f);

/* The EOS id of a model of config c (NULL: none yet) with tokenizer t: the
 * config's eos_token_id, else the first of the usual end tokens the
 * tokenizer has ("<|endoftext|>", "</s>", "<|end_of_text|>", "<|im_end|>",
 * "<eos>"); -1 when none. */
int32_t model_folder_find_eos(const tok_tokenizer *t, const model_config *c);

/* A train_tokenizer::encode over a tok_tokenizer (ctx), without special
 * tokens. */
int model_folder_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                        char *err, size_t err_size);

/* The folder's tokenizer as train_examples_build takes it (BOS for the
 * Llama family, EOS as above); -EINVAL without a tokenizer or EOS. */
int model_folder_train_tokenizer(const model_folder *f, train_tokenizer *out, char *err,
                                 size_t err_size);

/* Called with each generated token's text as it comes (bytes of one
 * token, not necessarily whole characters); non-zero stops generation. */
typedef int (*model_folder_piece_fn)(void *arg, const char *text, size_t len);

/* What model_folder_generate did. text is malloc'd (the caller frees it):
 * the generated tokens decoded together, special tokens skipped, without
 * the EOS that ended it. */
typedef struct model_generation {
    char *text;
    size_t len;
    size_t prompt_tokens; /* the prompt's tokens given to the model */
    size_t prompt_cut;    /* tokens cut from the prompt's start to fit the context */
    size_t new_tokens;    /* generated, EOS not counted */
    int eos;              /* ended by EOS */
    int context_ended;    /* ended by the model's context before max_new */
} model_generation;

/* Generates from prompt (with chat: wrapped in the train step's Alpaca
 * template, BOS first where the model has one) until EOS, max_new tokens
 * or the context: a prompt longer than the context keeps its end with room
 * for one token. sp chooses each token (temperature <= 0: greedy); the
 * sampler starts from sp->seed at each call, so a call is reproducible.
 * on_piece may be NULL. */
int model_folder_generate(model_folder *f, const char *prompt, int chat, size_t max_new,
                          const sample_params *sp, model_folder_piece_fn on_piece, void *arg,
                          model_generation *out, char *err, size_t err_size);

#endif
