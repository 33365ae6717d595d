/* dataset_gen - the LLM twin's dataset step: instruction or preference
 * samples from article extracts (the chunk step's chunks), as the LLM
 * Engineer's Handbook's generate_datasets pipeline makes them, split into
 * train and test per category and written in the Handbook's JSON layout
 * (docs/dataset_gen.md). With an endpoint, an OpenAI-compatible model
 * writes them; without one, the documented offline method does
 * (dsgen_offline.h). */
#include <sluice/plugin.h>
#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsgen.h"
#include "dsgen_offline.h"
#include "dsgen_prompt.h"
#include "llm_client.h"
#include "records.h"

typedef struct gen_params {
    dsgen_kind kind;
    double test_size;
    int64_t seed, pairs;
    const char *endpoint, *model, *api_key;
    double temperature, timeout, backoff;
    int64_t max_tokens, concurrency, max_requests, max_tokens_total, max_retries;
    int json_mode;
    int64_t min_instruction, min_answer;
} gen_params;

/* Reads and checks the parameters; SL_OK or an SL_E* code after sl_fail. */
static int read_params(sl_ctx *ctx, gen_params *p) {
    const char *kind = sl_param_str(ctx, "kind");
    if (kind && strcmp(kind, "instruction") == 0)
        p->kind = DSGEN_INSTRUCTION;
    else if (kind && strcmp(kind, "preference") == 0)
        p->kind = DSGEN_PREFERENCE;
    else
        return sl_fail(ctx, "kind is '%s': it must be instruction or preference",
                       kind ? kind : "null");
    p->test_size = sl_param_f64(ctx, "test_split_size");
    p->seed = sl_param_int(ctx, "seed");
    p->pairs = sl_param_int(ctx, "pairs_per_extract");
    const char *e = sl_param_str(ctx, "endpoint");
    p->endpoint = e && *e ? e : NULL;
    p->model = sl_param_str(ctx, "model");
    p->api_key = sl_param_str(ctx, "api_key");
    p->temperature = sl_param_f64(ctx, "temperature");
    p->timeout = sl_param_f64(ctx, "timeout");
    p->backoff = sl_param_f64(ctx, "backoff");
    p->max_tokens = sl_param_int(ctx, "max_tokens");
    p->concurrency = sl_param_int(ctx, "concurrency");
    p->max_requests = sl_param_int(ctx, "max_requests");
    p->max_tokens_total = sl_param_int(ctx, "max_tokens_total");
    p->max_retries = sl_param_int(ctx, "max_retries");
    p->json_mode = sl_param_bool(ctx, "json_mode");
    p->min_instruction = sl_param_int(ctx, "min_instruction_length");
    p->min_answer = sl_param_int(ctx, "min_answer_length");
    if (!(p->test_size >= 0 && p->test_size < 1))
        return sl_fail(ctx,
                       "test_split_size is %g: it must be a fraction from 0 (no test split) "
                       "up to, not including, 1",
                       p->test_size);
    if (p->seed < 0)
        return sl_fail(ctx, "seed is %lld: it must be 0 or more", (long long)p->seed);
    if (p->pairs < 1 || p->pairs > 100)
        return sl_fail(ctx, "pairs_per_extract is %lld: it must be from 1 to 100",
                       (long long)p->pairs);
    if (p->min_instruction < 1 || p->min_answer < 1 || p->min_instruction > 100000 ||
        p->min_answer > 100000)
        return sl_fail(ctx,
                       "min_instruction_length %lld and min_answer_length %lld: each must be "
                       "from 1 to 100000 (code points)",
                       (long long)p->min_instruction, (long long)p->min_answer);
    if (!p->endpoint)
        return SL_OK; /* the API's parameters are not used offline */
    if (strncmp(p->endpoint, "http://", 7) != 0 && strncmp(p->endpoint, "https://", 8) != 0)
        return sl_fail(ctx,
                       "endpoint is '%s': it must be an http:// or https:// base URL such as "
                       "https://api.openai.com/v1 (empty: generate offline)",
                       p->endpoint);
    if (!p->model || !*p->model)
        return sl_fail(ctx, "model is empty: an endpoint needs the model to ask");
    if (!(p->temperature >= 0 && p->temperature <= 2))
        return sl_fail(ctx, "temperature is %g: it must be from 0 to 2", p->temperature);
    if (p->max_tokens < 0)
        return sl_fail(ctx, "max_tokens is %lld: it must be 0 (not sent) or more",
                       (long long)p->max_tokens);
    if (p->concurrency < 1 || p->concurrency > 1024)
        return sl_fail(ctx, "concurrency is %lld: it must be from 1 to 1024",
                       (long long)p->concurrency);
    if (p->max_requests < 0 || p->max_tokens_total < 0)
        return sl_fail(ctx,
                       "max_requests %lld and max_tokens_total %lld: budgets must be 0 (no "
                       "limit) or more",
                       (long long)p->max_requests, (long long)p->max_tokens_total);
    if (!(p->timeout > 0 && p->timeout <= 86400))
        return sl_fail(ctx, "timeout is %g: it must be from more than 0 to 86400 (seconds)",
                       p->timeout);
    if (!(p->backoff >= 0 && p->backoff <= 3600))
        return sl_fail(ctx, "backoff is %g: it must be from 0 to 3600 (seconds)", p->backoff);
    if (p->max_retries < 0 || p->max_retries > 100)
        return sl_fail(ctx, "max_retries is %lld: it must be from 0 to 100",
                       (long long)p->max_retries);
    return SL_OK;
}

/* The chunks as extracts; category "articles" where a chunk has none (the
 * chunk step's own default). The strings are t's. */
static int extracts_of(sl_ctx *ctx, const chunk_table *t, dsgen_extract **out) {
    *out = calloc(t->n ? t->n : 1, sizeof(**out));
    if (!*out)
        return sl_fail(ctx, "out of memory reading %zu extracts", t->n);
    for (size_t i = 0; i < t->n; i++)
        (*out)[i] = (dsgen_extract){t->content[i], t->content_len[i], t->id[i],
                                    *t->category[i] ? t->category[i] : "articles"};
    return SL_OK;
}

/* Rows per split and category, lengths and drops, as metrics. */
static void report(sl_ctx *ctx, const dsgen_set *set, const unsigned char *is_test) {
    size_t train = 0, test = 0;
    for (uint32_t c = 0; c < (uint32_t)set->categories.n; c++) {
        size_t n[2] = {0, 0};
        for (size_t i = 0; i < set->n; i++)
            if (set->s[i].category == c)
                n[is_test[i] ? 1 : 0]++;
        char key[128];
        snprintf(key, sizeof(key), "rows_train_%s", set->categories.s[c]);
        sl_metric(ctx, key, (double)n[0], -1);
        snprintf(key, sizeof(key), "rows_test_%s", set->categories.s[c]);
        sl_metric(ctx, key, (double)n[1], -1);
        train += n[0];
        test += n[1];
    }
    sl_metric(ctx, "rows_train", (double)train, -1);
    sl_metric(ctx, "rows_test", (double)test, -1);
    const char *fields[] = {"instruction", set->kind == DSGEN_PREFERENCE ? "chosen" : "answer",
                            "rejected"};
    const double qs[] = {0.1, 0.5, 0.9};
    for (int f = 0; f < (set->kind == DSGEN_PREFERENCE ? 3 : 2); f++)
        for (size_t q = 0; q < 3; q++) {
            char key[64];
            snprintf(key, sizeof(key), "%s_chars_p%d", fields[f], (int)(qs[q] * 100 + 0.5));
            sl_metric(ctx, key, dsgen_length_quantile(set, f, qs[q]), -1);
        }
    long dropped = 0;
    for (int d = 0; d < DSGEN_N_DROPS; d++) {
        char key[64];
        snprintf(key, sizeof(key), "dropped_%s", dsgen_drop_name((dsgen_drop)d));
        sl_metric(ctx, key, (double)set->dropped[d], -1);
        dropped += set->dropped[d];
    }
    sl_log(ctx, SL_LOG_INFO, "%zu %s samples: %zu train, %zu test; %ld dropped", set->n,
           set->kind == DSGEN_PREFERENCE ? "preference" : "instruction", train, test, dropped);
    for (int d = 0; d < DSGEN_N_DROPS; d++)
        if (set->dropped[d])
            sl_log(ctx, SL_LOG_INFO, "dropped %ld: %s", set->dropped[d],
                   dsgen_drop_name((dsgen_drop)d));
}

static int offline(sl_ctx *ctx, const gen_params *p, const dsgen_extract *ex, size_t n,
                   dsgen_set *set) {
    dsgen_offline_stats st = {0, 0, 0, 0, 0};
    if (dsgen_offline(set, ex, n, (size_t)p->pairs, (uint64_t)p->seed, &st) != 0)
        return sl_fail(ctx, "out of memory generating samples from %zu extracts", n);
    sl_metric(ctx, "instructions_from_questions", (double)st.from_question, -1);
    sl_metric(ctx, "instructions_from_topics", (double)st.from_topic, -1);
    if (p->kind == DSGEN_PREFERENCE) {
        sl_metric(ctx, "rejected_other_extract", (double)st.rejected_other, -1);
        sl_metric(ctx, "rejected_truncated", (double)st.rejected_truncated, -1);
        sl_metric(ctx, "rejected_shuffled", (double)st.rejected_shuffled, -1);
    }
    return SL_OK;
}

static int api_cancelled(void *arg) { return sl_cancelled(arg); }

/* STORE/cache/llm, made if missing: where answers outlive a killed run. */
static int cache_dir(sl_ctx *ctx, char *out, size_t size) {
    const char *store = sl_store_dir(ctx);
    if (!store)
        return sl_fail(ctx, "this sluice gives steps no store folder (ABI 1.1): cannot cache "
                            "the API's answers");
    int rc = llm_store_cache_dir(store, out, size);
    return rc ? sl_fail(ctx, "%s: %s", out, strerror(-rc)) : SL_OK;
}

/* One request per extract, all through llm_run (at most concurrency in
 * flight, each answer cached before it counts), then the answers read in
 * extract order, so that the dataset does not depend on which came first. */
static int api(sl_ctx *ctx, const gen_params *p, const dsgen_extract *ex, size_t n,
               dsgen_set *set) {
    char dir[4096], err[512];
    int rc = cache_dir(ctx, dir, sizeof(dir));
    if (rc != SL_OK || n == 0)
        return rc;
    llm_options o = {p->endpoint,
                     p->model,
                     p->api_key && *p->api_key ? p->api_key : NULL,
                     p->temperature,
                     (long)p->max_tokens,
                     (long)p->seed,
                     p->json_mode,
                     (int)p->concurrency,
                     (long)p->max_requests,
                     (long)p->max_tokens_total,
                     p->timeout,
                     (int)p->max_retries,
                     p->backoff,
                     dir,
                     NULL,
                     NULL,
                     "dataset_gen"};
    llm_call *calls = calloc(n, sizeof(*calls));
    if (!calls)
        return sl_fail(ctx, "out of memory preparing %zu requests", n);
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        calls[i].system = dsgen_system_prompt(p->kind);
        if (!(calls[i].user = dsgen_user_prompt(p->kind, (size_t)p->pairs, ex[i].text)))
            rc = sl_fail(ctx, "out of memory preparing %zu requests", n);
    }
    llm_totals tot;
    memset(&tot, 0, sizeof(tot));
    if (rc == SL_OK) {
        sl_log(ctx, SL_LOG_INFO, "%zu requests to %s (model %s), %lld in flight at most", n,
               p->endpoint, p->model, (long long)p->concurrency);
        if (llm_run(&o, calls, n, &tot, NULL, api_cancelled, ctx, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "endpoint: %s", err);
    }
    long failed = 0, not_verbatim = 0;
    const char *first_error = NULL;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        llm_call *c = &calls[i];
        if (c->status == LLM_ECANCELLED) {
            rc = SL_ECANCELLED;
        } else if (c->status == LLM_EBUDGET) {
            set->dropped[DSGEN_DROP_OVER_BUDGET]++;
        } else if (c->status != 0) {
            set->dropped[DSGEN_DROP_FAILED_REQUEST]++;
            if (!failed++)
                first_error = c->error;
            sl_log(ctx, SL_LOG_WARN, "extract %zu: %s", i + 1, c->error);
        } else {
            dsgen_parsed r;
            if (dsgen_parse_response(set, i, ex[i].category, c->content, ex[i].text, &r) != 0)
                rc = sl_fail(ctx, "out of memory reading the answer to extract %zu", i + 1);
            not_verbatim += r.not_verbatim;
        }
    }
    sl_metric(ctx, "requests", (double)tot.requests, -1);
    sl_metric(ctx, "retries", (double)tot.retries, -1);
    sl_metric(ctx, "cached", (double)tot.cached, -1);
    sl_metric(ctx, "failed", (double)tot.failed, -1);
    sl_metric(ctx, "prompt_tokens", (double)tot.prompt_tokens, -1);
    sl_metric(ctx, "completion_tokens", (double)tot.completion_tokens, -1);
    if (p->kind == DSGEN_PREFERENCE)
        sl_metric(ctx, "chosen_not_verbatim", (double)not_verbatim, -1);
    if (set->dropped[DSGEN_DROP_OVER_BUDGET])
        sl_log(ctx, SL_LOG_WARN,
               "%ld of %zu extracts not sent: the request or token budget is spent",
               set->dropped[DSGEN_DROP_OVER_BUDGET], n);
    /* A failed request fails the step: its answers so far are cached, so
     * the retry or a rerun sends only the requests that did not finish. */
    if (rc == SL_OK && failed)
        rc = sl_fail(ctx,
                     "%ld of %zu requests failed after their retries (the first: %s); the %zu "
                     "answered are cached and a rerun sends only the others",
                     failed, n, first_error,
                     n - (size_t)failed - (size_t)set->dropped[DSGEN_DROP_OVER_BUDGET]);
    for (size_t i = 0; i < n; i++)
        free((char *)calls[i].user);
    llm_calls_free(calls, n);
    free(calls);
    return rc;
}

static int run(sl_ctx *ctx) {
    gen_params p = {0};
    int rc = read_params(ctx, &p);
    if (rc != SL_OK)
        return rc;
    chunk_table t;
    rc = chunk_table_read(ctx, sl_input_path(ctx, "chunks"), "input 'chunks'", 1, &t);
    dsgen_extract *ex = NULL;
    if (rc == SL_OK)
        rc = extracts_of(ctx, &t, &ex);
    dsgen_set set;
    dsgen_set_init(&set, p.kind, (size_t)p.min_instruction, (size_t)p.min_answer);
    if (rc == SL_OK && t.n == 0)
        sl_log(ctx, SL_LOG_WARN, "input 'chunks' has no extracts: the dataset is empty");
    if (rc == SL_OK)
        rc = p.endpoint ? api(ctx, &p, ex, t.n, &set) : offline(ctx, &p, ex, t.n, &set);
    if (rc == SL_OK && sl_cancelled(ctx))
        rc = SL_ECANCELLED;
    unsigned char *is_test = NULL;
    if (rc == SL_OK && (!(is_test = malloc(set.n ? set.n : 1)) ||
                        dsgen_split(&set, p.test_size, (uint64_t)p.seed, is_test) != 0))
        rc = sl_fail(ctx, "out of memory splitting %zu samples", set.n);
    /* Each sample names its extract's chunk and document, for evaluate's rag metric. */
    dsgen_source *sources = NULL;
    if (rc == SL_OK && !(sources = calloc(t.n ? t.n : 1, sizeof(*sources))))
        rc = sl_fail(ctx, "out of memory");
    for (size_t i = 0; rc == SL_OK && i < t.n; i++)
        sources[i] = (dsgen_source){t.id[i], t.document_id[i]};
    char err[512];
    if (rc == SL_OK && dsgen_write(&set, is_test, p.test_size, sources,
                                   sl_output_path(ctx, "dataset"), err, sizeof(err)))
        rc = sl_fail(ctx, "output 'dataset': %s", err);
    free(sources);
    if (rc == SL_OK)
        report(ctx, &set, is_test);
    free(is_test);
    dsgen_set_free(&set);
    free(ex);
    chunk_table_free(&t);
    return rc;
}

static const sl_port inputs[] = {
    {"chunks", "chunks", "article extracts: the chunk step's output (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"dataset", "dataset",
     "the samples split into train and test per category, in the LLM Engineer's Handbook's JSON "
     "layout (docs/dataset_gen.md)",
     0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"kind", SL_PARAM_STRING, "instruction",
     "instruction ({instruction, answer}) or preference ({instruction, rejected, chosen})", 0},
    {"test_split_size", SL_PARAM_FLOAT, "0.1", "the fraction of each category's samples in test",
     0},
    {"seed", SL_PARAM_INT, "42", "seeds every choice (split, templates, degraded answers)", 0},
    {"pairs_per_extract", SL_PARAM_INT, "5", "samples asked for (made) per extract", 0},
    {"endpoint", SL_PARAM_STRING, "\"\"",
     "an OpenAI-compatible base URL (https://api.openai.com/v1); empty: the offline method", 0},
    {"model", SL_PARAM_STRING, "gpt-4o-mini", "the model the endpoint is asked for", 0},
    {"api_key", SL_PARAM_STRING, "\"\"",
     "the endpoint's key, as ${secret.NAME}; never logged or stored", 0},
    {"temperature", SL_PARAM_FLOAT, "0.7", "sampling temperature (the Handbook's 0.7)", 0},
    {"max_tokens", SL_PARAM_INT, "2000", "completion tokens per request; 0: not sent", 0},
    {"concurrency", SL_PARAM_INT, "8", "requests in flight at most", 0},
    {"max_requests", SL_PARAM_INT, "0", "budget: HTTP requests, retries included; 0: no limit", 0},
    {"max_tokens_total", SL_PARAM_INT, "0", "budget: total tokens of all responses; 0: no limit",
     0},
    {"timeout", SL_PARAM_FLOAT, "120", "seconds per HTTP request", 0},
    {"max_retries", SL_PARAM_INT, "5", "retries per request on 429, 5xx, timeouts", 0},
    {"backoff", SL_PARAM_FLOAT, "1",
     "seconds before the first retry, doubled each time, with jitter (Retry-After wins)", 0},
    {"json_mode", SL_PARAM_BOOL, "false",
     "ask for response_format json_object (the list then comes inside an object)", 0},
    {"min_instruction_length", SL_PARAM_INT, "10", "shorter instructions are dropped (code points)",
     0},
    {"min_answer_length", SL_PARAM_INT, "100",
     "shorter answers (chosen) are dropped (code points; the Handbook's 100)", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"dataset_gen", "1.0",
     "instruction or preference datasets from article extracts, through an OpenAI-compatible "
     "API or by a documented offline method, split into train and test",
     inputs, outputs, params, run},
};

SL_PLUGIN_DEFINE("dataset_gen", "1.0", steps, NULL, NULL)
