/* examples.h - dataset examples as token sequences with a loss mask: the
 * Handbook's Alpaca template, a tokenizer supplied by the caller, length
 * limits counted.
 *
 * The template is the one the Handbook's fine-tuning code uses
 * (llm_engineering/model/finetuning/finetune.py, `alpaca_template`):
 *
 *   "Below is an instruction that describes a task. Write a response that
 *   appropriately completes the request.\n\n### Instruction:\n{instruction}
 *   \n\n### Response:\n{answer}" + EOS
 *
 * (no line break inside the first sentence; exactly TRAIN_ALPACA_PROMPT
 * below). Conventions and where they come from:
 *   - SFT: the prompt (template up to and including "### Response:\n") and
 *     the answer are encoded separately and concatenated, then EOS's id is
 *     appended (the Handbook appends tokenizer.eos_token to the text, which
 *     encodes to that id); a BOS id, when the tokenizer has one, starts the
 *     sequence (add_special_tokens=True for Llama-family tokenizers).
 *     Encoding the parts separately puts the mask boundary exactly at the
 *     response, as TRL's prompt-completion tokenization does.
 *   - The loss mask covers the answer and its EOS (response_only, the
 *     issue's requirement and TRL's completion-only loss). The Handbook's
 *     SFTTrainer itself trains on every token; response_only = 0 does that.
 *   - DPO: the prompt is the template with an empty answer, chosen and
 *     rejected each get EOS (the Handbook's format_samples_dpo), encoded
 *     separately (TRL's DPOTrainer.tokenize_row), BOS before the prompt.
 *     Too long pairs are cut as TRL did (0.8 to 0.11): when prompt + the
 *     longer answer exceed max_seq_len, the prompt keeps its last
 *     max_prompt_len tokens (truncation_mode "keep_end"); if still too long,
 *     both answers keep their first max_seq_len - max_prompt_len. The
 *     Handbook passes max_length = max_prompt_length = max_seq_length / 2.
 *   - Pretraining text: BOS (if any) + the text + EOS, every token a target.
 *
 * A sequence's mask[i] is 1 when token i is a loss target, i.e. predicted
 * from the tokens before it (HF's labels before the shift; mask[0] is
 * never a target).
 *
 * Over-long examples (more than max_seq_len tokens, SFT and text) are cut
 * to their first max_seq_len tokens (TRAIN_TRUNCATE, HF's truncation) or
 * left out (TRAIN_SKIP); either is counted. An example left with no target
 * (a prompt that fills the whole length) is left out and counted as
 * skipped in both modes. max_seq_len 0: no limit (packing cuts rows). */
#ifndef SLUICE_TRAIN_EXAMPLES_H
#define SLUICE_TRAIN_EXAMPLES_H

#include "dataset.h"

#include <stddef.h>
#include <stdint.h>

#define TRAIN_ALPACA_PROMPT                                                                        \
    "Below is an instruction that describes a task. Write a response that appropriately "          \
    "completes the request.\n\n### Instruction:\n%s\n\n### Response:\n"

/* The tokenizer, supplied by the caller (the tokenizer library in the
 * step, a byte-level one in tests). */
typedef struct train_tokenizer {
    void *ctx;
    /* Encodes text[0..len) without special tokens into *ids (malloc'd, the
     * caller frees it) and *n_ids; returns 0 or a negative error with a
     * message in err. */
    int (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n_ids, char *err,
                  size_t err_size);
    int32_t bos_id; /* < 0: none */
    int32_t eos_id; /* >= 0 */
} train_tokenizer;

typedef enum train_overlong { TRAIN_TRUNCATE, TRAIN_SKIP } train_overlong;

typedef struct train_format {
    size_t max_seq_len;    /* tokens per sequence; 0: no limit */
    size_t max_prompt_len; /* DPO; 0: max_seq_len / 2 as the Handbook */
    train_overlong overlong;
    int response_only; /* SFT: loss on the response only (default 1) */
} train_format;

typedef struct train_seq {
    const int32_t *ids;  /* into the examples' storage */
    const uint8_t *mask; /* 1: a loss target */
    size_t len;
    size_t prompt_len; /* tokens before the response (0 for text) */
} train_seq;

typedef struct train_examples {
    size_t n;                  /* examples kept */
    size_t n_seq;              /* sequences per example: 1, or 2 for DPO (chosen, rejected) */
    train_seq *seq;            /* n * n_seq, example i's sequence s at i * n_seq + s */
    size_t *source;            /* dataset index of each kept example */
    size_t truncated, skipped; /* over-long examples cut, and left out */
    uint64_t tokens, targets;  /* over all kept sequences */
    int32_t *ids_store;
    uint8_t *mask_store;
} train_examples;

/* Builds the sequences of every example of d: SFT for an instruction
 * dataset, DPO pairs for a preference one, text for text. *out is the
 * caller's, freed with train_examples_free. Fails when no example is left,
 * naming the count left out. */
int train_examples_build(const dataset *d, const train_tokenizer *tok, const train_format *fmt,
                         train_examples **out, char *err, size_t err_size);
void train_examples_free(train_examples *e);

/* The prompt of instruction (the template up to the response), malloc'd. */
char *train_alpaca_prompt(const char *instruction);

#endif
