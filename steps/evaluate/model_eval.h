/* model_eval.h - the evaluate step's model mode: a model the train step
 * made, on the test split (or train) of an instruction dataset
 * (docs/evaluate.md).
 *
 * For each test example (up to max_examples, in the split's order) the
 * model mode fills one eval_example: the answer's perplexity in the SFT
 * template (the train step's examples builder, answer tokens and EOS), the
 * answer the model generates for the instruction, and that answer's scores
 * against the reference; then, each in its own pass over the array, the
 * LLM judge's grades of the answer (judge.h) and the rank at which the
 * index retrieves the example's extract (rag.h). Then each example becomes
 * one line of the report and the aggregates become the figures. */
#ifndef SLUICE_MODEL_EVAL_H
#define SLUICE_MODEL_EVAL_H

#include <sluice/plugin.h>
#include <bson/bson.h>
#include <stddef.h>

#include "judge.h"
#include "retriever.h"
#include "text_scores.h"

/* The metrics of the model mode, as `metrics:` names them. */
typedef enum eval_metric {
    EVAL_PERPLEXITY,
    EVAL_ROUGE_L,
    EVAL_BLEU,
    EVAL_EXACT_MATCH,
    EVAL_LENGTH,
    EVAL_JUDGE, /* the LLM judge's accuracy and style (judge.h) */
    EVAL_RAG,   /* retrieval of each example's extract (rag.h) */
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
    /* the LLM judge: instruction and answer in, its verdict out */
    judge_item judge;
    /* rag: where the example was made from (borrowed from the dataset; NULL
     * when it does not say), whether the index holds it, and the rank at
     * which retrieval for the instruction found it (0: not within depth) */
    const char *extract_id, *document_id;
    int rag_known;
    size_t rag_rank;
} eval_example;

/* The cut-offs and search of the step's retrieval parameters, which the
 * rag metric uses. */
typedef struct eval_retrieval {
    const size_t *ks;
    size_t n_ks, depth;
    retrieve_mode search;
} eval_retrieval;

/* Runs the model mode on the step's inputs (model, dataset) and
 * parameters, writes the report output, and appends the aggregate figures
 * to figures (the caller writes them and checks the thresholds). */
int model_eval_run(sl_ctx *ctx, const eval_retrieval *retrieval, bson_t *figures);

/* A number of a JSON setting: a number, or a string holding one (what
 * ${params.x} substitutes). 1, or 0 when it is neither. */
int eval_number(const bson_iter_t *it, double *out);

/* The report line of one example: the fields of the metrics in want. */
void eval_example_write(const eval_example *e, const int *want, bson_t *line);

#endif
