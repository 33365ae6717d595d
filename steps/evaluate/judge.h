/* judge.h - the evaluate step's LLM judge: each (instruction, answer) pair
 * is sent to an OpenAI-compatible endpoint (llm_client.h) with the LLM
 * Engineer's Handbook's two criteria, accuracy and style, each scored 1 to
 * 3 with an analysis; the answer must be one JSON object of that shape
 * (response_format json_schema where the server supports it) and is read
 * strictly. An answer that does not read is counted as unparsable, never
 * dropped; the scored ones give the means and their 95% confidence
 * intervals (Student's t). docs/steps.md, "evaluate", is the user's side. */
#ifndef SLUICE_STEPS_JUDGE_H
#define SLUICE_STEPS_JUDGE_H

#include <stddef.h>

#include "llm_client.h"

typedef enum judge_format {
    JUDGE_FORMAT_SCHEMA, /* response_format json_schema (strict), the default */
    JUDGE_FORMAT_OBJECT, /* response_format json_object, for servers without json_schema */
    JUDGE_FORMAT_NONE,   /* no response_format: the prompt alone asks for the JSON */
} judge_format;

/* "json_schema", "json_object" or "none" into *f; -EINVAL otherwise. */
int judge_format_parse(const char *name, judge_format *f);

enum {
    JUDGE_SCORED = 0,     /* the answer read: scores and analyses are set */
    JUDGE_UNPARSABLE = 1, /* answered, but not the JSON asked for: raw and error say */
    JUDGE_FAILED = 2,     /* no answer: the request failed after its retries, was over a
                           * budget, or was cancelled (error says) */
};

typedef struct judge_item {
    const char *instruction, *answer; /* in: borrowed for the call */
    /* out, owned by the item until judge_items_free(): */
    int status;                               /* JUDGE_SCORED, JUDGE_UNPARSABLE, JUDGE_FAILED */
    int accuracy, style;                      /* 1 to 3 when scored, else 0 */
    char *accuracy_analysis, *style_analysis; /* when scored */
    char *raw;                                /* the judge's answer when unparsable */
    char error[256];                          /* why unparsable or failed */
    int from_cache;                           /* the answer came from the cache */
} judge_item;

/* The mean of n scores and its two-sided 95% confidence interval, mean +-
 * t(0.975, n - 1) * s / sqrt(n) with s the sample standard deviation
 * (n - 1 in the denominator). With n < 2 there is no interval: low and
 * high are the mean and has_ci is 0. */
typedef struct judge_stat {
    size_t n;
    double mean, sd, low, high;
    int has_ci;
} judge_stat;

typedef struct judge_summary {
    size_t items, scored, unparsable, failed;
    judge_stat accuracy, style; /* over the scored items */
    llm_totals llm;             /* the requests the judging sent (llm_run's) */
} judge_summary;

/* The messages sent for one item (judge_user_prompt's result is malloc'ed,
 * the caller frees it; NULL when out of memory). */
const char *judge_system_prompt(void);
char *judge_user_prompt(const char *instruction, const char *answer);
/* The JSON Schema an answer must follow (static text). */
const char *judge_schema(void);

/* Reads one answer strictly into it: the whole content is one JSON object
 * with exactly the keys accuracy and style, each an object with exactly a
 * non-empty string analysis and an integer score from 1 to 3. 0 and
 * it->status JUDGE_SCORED; -1 (it->status JUDGE_UNPARSABLE, it->error says
 * what is wrong); -ENOMEM. Never keeps content. */
int judge_parse(const char *content, judge_item *it);

/* The p-quantile of Student's t with df degrees of freedom (df > 0,
 * 0 < p < 1), to about 1e-12. */
double judge_t_quantile(double p, double df);
/* x[0, n) summed up as judge_stat says. */
void judge_stat_of(const double *x, size_t n, judge_stat *out);

/* Judges items[0, n): one chat completion each through llm_run under o
 * (endpoint, model, key, concurrency, retries, budgets, cache as given;
 * the response format, json_schema and client are set here from format),
 * every answer read with judge_parse, then the summary. cancelled as
 * llm_run takes it (may be NULL). Returns 0 when the run went to its end
 * (each item says how it went), or negative with err filled when it could
 * not start (bad options, no memory). */
int judge_run(const llm_options *o, judge_format format, judge_item *items, size_t n,
              judge_summary *summary, int (*cancelled)(void *arg), void *arg, char *err,
              size_t err_size);

/* Frees what judge_run put in items[0, n) (not the array). */
void judge_items_free(judge_item *items, size_t n);

#endif
