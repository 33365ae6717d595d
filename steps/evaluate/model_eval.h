/* model_eval.h - the evaluate step's model mode: a model the train step
 * made, on the test split (or train) of an instruction dataset
 * (docs/evaluate.md).
 *
 * For each test example (up to max_examples, in the split's order) the
 * model mode fills one eval_example: the answer's perplexity in the SFT
 * template (the train step's examples builder, answer tokens and EOS), the
 * answer the model generates for the instruction, and that answer's scores
 * against the reference. Then each example becomes one line of the report
 * and the aggregates become the figures. A scorer added later (an LLM
 * judge) puts its per-example fields in eval_example, fills them in its own
 * pass over the array, writes them in eval_example_write and adds its
 * aggregates in model_eval_run. */
#ifndef SLUICE_MODEL_EVAL_H
#define SLUICE_MODEL_EVAL_H

#include <sluice/plugin.h>
#include <bson/bson.h>
#include <stddef.h>

#include "text_scores.h"

/* The metrics of the model mode, as `metrics:` names them. */
typedef enum eval_metric {
    EVAL_PERPLEXITY,
    EVAL_ROUGE_L,
    EVAL_BLEU,
    EVAL_EXACT_MATCH,
    EVAL_LENGTH,
    EVAL_N_METRICS
} eval_metric;

/* One example and what was measured on it. */
typedef struct eval_example {
    size_t index;                        /* in the split, from 0 */
    const char *instruction, *reference; /* borrowed from the dataset */
    /* perplexity */
    int scored;        /* the template left answer tokens to score */
    double nll;        /* summed negative log-likelihood of those tokens */
    size_t nll_tokens; /* their number (the answer's tokens and EOS) */
    int truncated;     /* cut to the model's context */
    /* generation */
    char *answer;         /* malloc'd, valid UTF-8; NULL when not generated */
    size_t answer_tokens; /* generated, EOS not counted */
    int eos;              /* the model ended it (else max_new_tokens or the context) */
    /* scores of the answer against the reference */
    textscore_rouge rouge;
    double bleu; /* sacrebleu.sentence_bleu's figure for this pair */
    int exact_match;
    size_t answer_words, reference_words;
} eval_example;

/* Runs the model mode on the step's inputs (model, dataset) and
 * parameters, writes the report output, and appends the aggregate figures
 * to figures (the caller writes them and checks the thresholds). */
int model_eval_run(sl_ctx *ctx, bson_t *figures);

/* The report line of one example: the fields of the metrics in want. */
void eval_example_write(const eval_example *e, const int *want, bson_t *line);

#endif
