/* model_eval.c - the evaluate step's model mode (model_eval.h). */
#include "model_eval.h"

#include <sluice/artifacts.h>
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "examples.h"
#include "model_folder.h"
#include "rag.h"
#include "text.h"

static const char *const metric_names[EVAL_N_METRICS] = {
    "perplexity", "rouge_l", "bleu", "exact_match", "length", "judge", "rag"};

typedef struct eval_settings {
    int want[EVAL_N_METRICS];
    size_t max_examples; /* 0: all */
    size_t max_new_tokens;
    const char *split; /* "test", or "train" to see what the model learnt */
    sample_params sampling;
    /* the judge: its options (strings borrowed from judge_doc) */
    bson_t *judge_doc;
    llm_options judge;
    judge_format judge_format;
    int judge_cache;
    rag_match rag_match;
} eval_settings;

int eval_number(const bson_iter_t *it, double *out) {
    if (BSON_ITER_HOLDS_NUMBER(it)) {
        *out = bson_iter_as_double(it);
        return 1;
    }
    if (BSON_ITER_HOLDS_UTF8(it)) {
        char *end;
        const char *s = bson_iter_utf8(it, NULL);
        *out = strtod(s, &end);
        return end != s && !*end;
    }
    return 0;
}

/* The judge's settings, from `judge: {...}` (docs/evaluate.md, "judge"). A
 * number may come as a string (what ${params.x} gives). */
static int read_judge(sl_ctx *ctx, eval_settings *s) {
    static const struct {
        const char *key;
        double def, min, max;
    } nums[] = {
        {"max_in_flight", 8, 1, 1024},    {"temperature", 0, 0, 2},
        {"max_tokens", 1000, 0, 1e7},     {"seed", 0, 0, 9e15},
        {"timeout", 60, 1e-3, 86400},     {"max_retries", 5, 0, 100},
        {"backoff", 1, 0, 3600},          {"max_requests", 0, 0, 1e15},
        {"max_tokens_total", 0, 0, 1e15},
    };
    double v[sizeof(nums) / sizeof(nums[0])];
    for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
        v[k] = nums[k].def;
    const char *endpoint = NULL, *name_of_model = NULL, *key = NULL, *key_env = NULL,
               *format = NULL;
    s->judge_cache = 1;
    bson_iter_t it;
    if (!bson_iter_init(&it, s->judge_doc))
        return sl_fail(ctx, "judge: not a mapping");
    while (bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);
        const char **str = strcmp(name, "endpoint") == 0          ? &endpoint
                           : strcmp(name, "model") == 0           ? &name_of_model
                           : strcmp(name, "api_key") == 0         ? &key
                           : strcmp(name, "api_key_env") == 0     ? &key_env
                           : strcmp(name, "response_format") == 0 ? &format
                                                                  : NULL;
        if (str) {
            if (!BSON_ITER_HOLDS_UTF8(&it))
                return sl_fail(ctx, "judge: %s must be a string", name);
            *str = bson_iter_utf8(&it, NULL);
            continue;
        }
        if (strcmp(name, "cache") == 0) {
            if (!BSON_ITER_HOLDS_BOOL(&it))
                return sl_fail(ctx, "judge: cache must be true or false");
            s->judge_cache = bson_iter_bool(&it);
            continue;
        }
        size_t k = 0;
        while (k < sizeof(nums) / sizeof(nums[0]) && strcmp(nums[k].key, name) != 0)
            k++;
        if (k == sizeof(nums) / sizeof(nums[0]))
            return sl_fail(ctx,
                           "judge: '%s' is not a setting (endpoint, model, api_key, api_key_env, "
                           "response_format, max_in_flight, temperature, max_tokens, seed, "
                           "timeout, max_retries, backoff, max_requests, max_tokens_total, cache)",
                           name);
        if (!eval_number(&it, &v[k]) || !(v[k] >= nums[k].min && v[k] <= nums[k].max))
            return sl_fail(ctx, "judge: %s must be a number from %g to %g", name, nums[k].min,
                           nums[k].max);
    }
    if (!endpoint ||
        (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0))
        return sl_fail(ctx, "judge: endpoint must be an http:// or https:// base URL such as "
                            "https://api.openai.com/v1");
    if (!name_of_model || !*name_of_model)
        return sl_fail(ctx, "judge: model names the judge's model (the Handbook's: gpt-4o-mini)");
    if (key && key_env)
        return sl_fail(ctx, "judge: give api_key or api_key_env, not both");
    if (key_env && !(key = getenv(key_env)))
        return sl_fail(ctx, "judge: api_key_env names %s, which is not set", key_env);
    if (judge_format_parse(format ? format : "json_schema", &s->judge_format) != 0)
        return sl_fail(ctx, "judge: response_format is '%s': use json_schema, json_object or none",
                       format);
    s->judge = (llm_options){.endpoint = endpoint,
                             .model = name_of_model,
                             .api_key = key && *key ? key : NULL,
                             .concurrency = (int)v[0],
                             .temperature = v[1],
                             .max_tokens = (long)v[2],
                             .seed = (long)v[3],
                             .timeout_s = v[4],
                             .max_retries = (int)v[5],
                             .backoff_s = v[6],
                             .max_requests = (long)v[7],
                             .max_tokens_total = (long)v[8]};
    return SL_OK;
}

static int read_settings(sl_ctx *ctx, eval_settings *s) {
    memset(s, 0, sizeof(*s));
    /* No settings, or an empty endpoint (what ${env.X:-} gives when X is unset), is no judge. */
    const char *judge = sl_param_json(ctx, "judge");
    int have_judge = 0;
    if (judge && strcmp(judge, "null") != 0) {
        bson_error_t e;
        bson_iter_t it;
        if (!(s->judge_doc = bson_new_from_json((const uint8_t *)judge, -1, &e)))
            return sl_fail(ctx, "judge: not a mapping: %s", e.message);
        have_judge = bson_count_keys(s->judge_doc) &&
                     !(bson_iter_init_find(&it, s->judge_doc, "endpoint") &&
                       BSON_ITER_HOLDS_UTF8(&it) && !*bson_iter_utf8(&it, NULL));
        int rc = have_judge ? read_judge(ctx, s) : SL_OK;
        if (rc != SL_OK)
            return rc;
    }
    const char *match = sl_param_str(ctx, "rag_match");
    if (rag_match_parse(match ? match : "", &s->rag_match) != 0)
        return sl_fail(ctx, "rag_match is '%s': use chunk or document", match ? match : "");
    int have_index = sl_input_path(ctx, "index") != NULL;
    size_t nm = sl_param_list_len(ctx, "metrics");
    for (size_t i = 0; i < nm; i++) {
        const char *m = sl_param_list_item(ctx, "metrics", i);
        size_t j = 0;
        while (j < EVAL_N_METRICS && strcmp(m, metric_names[j]) != 0)
            j++;
        if (j == EVAL_N_METRICS)
            return sl_fail(ctx,
                           "metrics: '%s' is not a model metric (perplexity, rouge_l, bleu, "
                           "exact_match, length, judge, rag)",
                           m);
        s->want[j] = 1;
    }
    for (size_t j = 0; nm == 0 && j < EVAL_N_METRICS; j++)
        s->want[j] = j == EVAL_JUDGE ? have_judge : j == EVAL_RAG ? have_index : 1;
    if (s->want[EVAL_JUDGE] && !have_judge)
        return sl_fail(ctx, "metrics: judge needs the judge's endpoint and model (judge: "
                            "{endpoint: ..., model: ...})");
    if (s->want[EVAL_RAG] && !have_index)
        return sl_fail(ctx, "metrics: rag needs the input 'index' (an index step's output)");
    int64_t max_examples = sl_param_int(ctx, "max_examples"),
            max_new = sl_param_int(ctx, "max_new_tokens"), threads = sl_param_int(ctx, "threads");
    double temperature = sl_param_f64(ctx, "temperature");
    if (max_examples < 0)
        return sl_fail(ctx, "max_examples is %lld: give 0 (all) or more", (long long)max_examples);
    if (max_new < 1 || max_new > 1 << 20)
        return sl_fail(ctx, "max_new_tokens is %lld: give 1 to 1048576", (long long)max_new);
    if (threads < 1 || threads > 256)
        return sl_fail(ctx, "threads is %lld: give 1 to 256", (long long)threads);
    if (!(temperature >= 0 && temperature <= 100))
        return sl_fail(ctx, "temperature is %g: give 0 (greedy) to 100", temperature);
    s->split = sl_param_str(ctx, "split");
    if (!s->split || (strcmp(s->split, "test") != 0 && strcmp(s->split, "train") != 0))
        return sl_fail(ctx, "split is '%s': use test or train", s->split ? s->split : "");
    s->max_examples = (size_t)max_examples;
    s->max_new_tokens = (size_t)max_new;
    s->sampling = sample_params_default();
    s->sampling.temperature = (float)temperature;
    s->sampling.seed = (uint64_t)sl_param_int(ctx, "seed");
    openblas_set_num_threads((int)threads);
    return SL_OK;
}

/* Perplexity: each example in the SFT template (train_examples_build: the
 * prompt, the answer and EOS, the loss mask on the answer and EOS), one
 * forward each, the negative log-probabilities of the masked tokens
 * summed. */
static int score_perplexity(sl_ctx *ctx, model_folder *f, const dataset *d, eval_example *ex,
                            size_t *truncated) {
    char err[1024];
    train_tokenizer tk;
    if (model_folder_train_tokenizer(f, &tk, err, sizeof(err)) != 0)
        return sl_fail(ctx, "model: %s", err);
    const model_config *c = model_get_config(f->m);
    train_format fmt = {(size_t)c->context, 0, TRAIN_TRUNCATE, 1};
    train_examples *te = NULL;
    if (train_examples_build(d, &tk, &fmt, &te, err, sizeof(err)) != 0)
        return sl_fail(ctx, "input 'dataset': %s", err);
    *truncated = te->truncated;
    int32_t *targets = malloc((size_t)c->context * sizeof(int32_t));
    int rc = targets ? SL_OK : sl_fail(ctx, "out of memory");
    for (size_t k = 0; rc == SL_OK && k < te->n; k++) {
        const train_seq *q = &te->seq[k];
        for (size_t i = 0; i < q->len; i++)
            targets[i] = i + 1 < q->len && q->mask[i + 1] ? q->ids[i + 1] : -1;
        float loss;
        if (model_forward(f->m, q->ids, targets, NULL, 1, (int)q->len, &loss, err, sizeof(err)) !=
            0) {
            rc = sl_fail(ctx, "model: %s", err);
            break;
        }
        const float *lp = model_logprobs(f->m);
        eval_example *e = &ex[te->source[k]];
        for (size_t i = 0; i < q->len; i++)
            if (targets[i] >= 0) {
                e->nll -= (double)lp[i];
                e->nll_tokens++;
            }
        e->scored = e->nll_tokens > 0;
        /* a cut sequence fills the context exactly and its EOS is gone */
        e->truncated = q->len == (size_t)c->context && q->ids[q->len - 1] != tk.eos_id;
        if (sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    free(targets);
    train_examples_free(te);
    return rc;
}

/* The answer to one instruction, and its scores against the reference. */
static int generate_one(sl_ctx *ctx, model_folder *f, const eval_settings *s, eval_example *e,
                        textscore_bleu *corpus) {
    char err[1024];
    model_generation g;
    if (model_folder_generate(f, e->instruction, 1, s->max_new_tokens, &s->sampling, NULL, NULL, &g,
                              err, sizeof(err)) != 0)
        return sl_fail(ctx, "model: example %zu: %s", e->index + 1, err);
    /* the bytes may end inside a character (the last token's): the report
     * holds valid UTF-8, as a Hugging Face decode would give */
    size_t len;
    int rc = text_utf8_dup(g.text ? g.text : "", g.len, &e->answer, &len);
    free(g.text);
    if (rc != 0)
        return sl_fail(ctx, "out of memory");
    e->answer_tokens = g.new_tokens;
    e->eos = g.eos;
    textscore_bleu one = {0};
    if (textscore_rouge_l(e->answer, e->reference, &e->rouge) != 0 ||
        textscore_bleu_add(&one, e->answer, e->reference) != 0 ||
        textscore_bleu_add(corpus, e->answer, e->reference) != 0)
        return sl_fail(ctx, "out of memory");
    e->bleu = textscore_bleu_score(&one, 1);
    e->exact_match = textscore_exact_match(e->answer, e->reference);
    e->answer_words = textscore_words(e->answer);
    e->reference_words = textscore_words(e->reference);
    return SL_OK;
}

static void figure(sl_ctx *ctx, bson_t *figures, const char *key, double v);

static int cancelled_cb(void *ctx) { return sl_cancelled(ctx); }

/* The judge's verdict on every generated answer: one request each, at most
 * max_in_flight at once, each answer kept in STORE/cache/llm before it
 * counts. A request that fails after its retries (or is not sent, a budget
 * spent) fails the step: a mean over the examples that happened to get
 * through would not be the model's. */
static int judge_pass(sl_ctx *ctx, const eval_settings *s, eval_example *ex, size_t n,
                      judge_summary *sum) {
    char dir[4096], err[1024];
    llm_options o = s->judge;
    const char *store = sl_store_dir(ctx);
    if (s->judge_cache && store) {
        int rc = llm_store_cache_dir(store, dir, sizeof(dir));
        if (rc != 0)
            return sl_fail(ctx, "judge: %s: %s", dir, strerror(-rc));
        o.cache_dir = dir;
    }
    judge_item *items = calloc(n ? n : 1, sizeof(*items));
    if (!items)
        return sl_fail(ctx, "out of memory");
    for (size_t i = 0; i < n; i++)
        items[i] = (judge_item){.instruction = ex[i].instruction, .answer = ex[i].answer};
    int rc = judge_run(&o, s->judge_format, items, n, sum, cancelled_cb, ctx, err, sizeof(err));
    for (size_t i = 0; rc == 0 && i < n; i++)
        ex[i].judge = items[i]; /* what the items own moves to the examples */
    if (rc != 0)
        judge_items_free(items, n);
    free(items);
    if (rc != 0)
        return sl_fail(ctx, "judge: %s", err);
    if (sl_cancelled(ctx))
        return SL_ECANCELLED;
    sl_log(ctx, SL_LOG_INFO,
           "judge: %zu answers scored, %zu unparsable, %zu failed; %ld requests (%ld retries), "
           "%ld from the cache",
           sum->scored, sum->unparsable, sum->failed, sum->llm.requests, sum->llm.retries,
           sum->llm.cached);
    for (size_t i = 0; i < n; i++)
        if (ex[i].judge.status == JUDGE_FAILED)
            return sl_fail(ctx,
                           "judge: %zu of %zu requests failed (the first, test example %zu: %s); "
                           "the answers received are cached, so a rerun sends only the others",
                           sum->failed, n, i + 1, ex[i].judge.error);
    for (size_t i = 0; i < n && sum->unparsable; i++)
        if (ex[i].judge.status == JUDGE_UNPARSABLE) {
            sl_log(ctx, SL_LOG_WARN,
                   "judge: %zu of %zu answers are not the JSON asked for (the first, test "
                   "example %zu: %s); counted in judge_unparsable, left out of the means",
                   sum->unparsable, n, i + 1, ex[i].judge.error);
            break;
        }
    if (sum->scored == 0)
        return sl_fail(ctx, "judge: none of the %zu answers could be read: no mean to report", n);
    return SL_OK;
}

/* Each instruction run against the index: the rank at which its extract
 * comes back. */
static int rag_pass(sl_ctx *ctx, const eval_settings *s, const eval_retrieval *rt, eval_example *ex,
                    size_t n, size_t *known) {
    char err[1024];
    retriever *r;
    if (retriever_open(sl_input_path(ctx, "index"), &r, err, sizeof(err)) != 0)
        return sl_fail(ctx, "input 'index': %s", err);
    rag_map m;
    int rc = SL_OK;
    size_t with_source = 0;
    *known = 0;
    if (rag_map_build(r, &m) != 0)
        rc = sl_fail(ctx, "input 'index': its rows cannot be read (out of memory?)");
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        with_source +=
            (s->rag_match == RAG_MATCH_CHUNK ? ex[i].extract_id : ex[i].document_id) != NULL;
        int got = rag_rank(r, &m, ex[i].instruction, rt->search, s->rag_match, ex[i].extract_id,
                           ex[i].document_id, rt->depth, &ex[i].rag_rank, err, sizeof(err));
        if (got < 0)
            rc = sl_fail(ctx, "rag: test example %zu: %s", i + 1, err);
        ex[i].rag_known = got == 0;
        *known += got == 0;
        if (rc == SL_OK && sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    rag_map_free(&m);
    retriever_close(r);
    const char *what = s->rag_match == RAG_MATCH_CHUNK ? "chunk" : "document";
    if (rc == SL_OK && *known == 0)
        return sl_fail(ctx,
                       "rag: no test example's %s is in the index (%zu of %zu examples say which "
                       "extract they were made from: dataset_gen's extract_id and document_id); "
                       "%s",
                       what, with_source, n,
                       s->rag_match == RAG_MATCH_CHUNK
                           ? "build the index from the chunks dataset_gen read, or set "
                             "rag_match: document"
                           : "build the index from the documents the dataset was made from");
    if (rc == SL_OK && *known < n)
        sl_log(ctx, SL_LOG_WARN,
               "rag: %zu of %zu test examples have no %s in the index; counted in rag_unmatched, "
               "left out of rag_recall@k and rag_mrr@k",
               n - *known, n, what);
    return rc;
}

void eval_example_write(const eval_example *e, const int *want, bson_t *line) {
    BSON_APPEND_INT64(line, "index", (int64_t)e->index);
    BSON_APPEND_UTF8(line, "instruction", e->instruction);
    BSON_APPEND_UTF8(line, "reference", e->reference);
    if (e->answer) {
        BSON_APPEND_UTF8(line, "answer", e->answer);
        BSON_APPEND_INT64(line, "answer_tokens", (int64_t)e->answer_tokens);
        BSON_APPEND_BOOL(line, "eos", e->eos);
    }
    if (want[EVAL_RAG]) {
        if (e->extract_id)
            BSON_APPEND_UTF8(line, "extract_id", e->extract_id);
        if (e->rag_known)
            BSON_APPEND_INT64(line, "rag_rank", (int64_t)e->rag_rank);
        else
            BSON_APPEND_BOOL(line, "rag_unmatched", true);
    }
    if (want[EVAL_PERPLEXITY] && e->scored) {
        BSON_APPEND_DOUBLE(line, "nll", e->nll);
        BSON_APPEND_INT64(line, "tokens", (int64_t)e->nll_tokens);
        BSON_APPEND_DOUBLE(line, "perplexity", exp(e->nll / (double)e->nll_tokens));
        BSON_APPEND_BOOL(line, "truncated", e->truncated);
    }
    if (!e->answer)
        return;
    if (want[EVAL_ROUGE_L]) {
        BSON_APPEND_DOUBLE(line, "rouge_l", e->rouge.f1);
        BSON_APPEND_DOUBLE(line, "rouge_l_precision", e->rouge.precision);
        BSON_APPEND_DOUBLE(line, "rouge_l_recall", e->rouge.recall);
    }
    if (want[EVAL_BLEU])
        BSON_APPEND_DOUBLE(line, "bleu", e->bleu);
    if (want[EVAL_EXACT_MATCH])
        BSON_APPEND_BOOL(line, "exact_match", e->exact_match);
    if (want[EVAL_LENGTH]) {
        BSON_APPEND_INT64(line, "answer_words", (int64_t)e->answer_words);
        BSON_APPEND_INT64(line, "reference_words", (int64_t)e->reference_words);
    }
    if (want[EVAL_JUDGE] && e->judge.status == JUDGE_SCORED) {
        BSON_APPEND_INT32(line, "judge_accuracy", e->judge.accuracy);
        BSON_APPEND_UTF8(line, "judge_accuracy_analysis", e->judge.accuracy_analysis);
        BSON_APPEND_INT32(line, "judge_style", e->judge.style);
        BSON_APPEND_UTF8(line, "judge_style_analysis", e->judge.style_analysis);
    } else if (want[EVAL_JUDGE]) {
        BSON_APPEND_BOOL(line, "judge_unparsable", e->judge.status == JUDGE_UNPARSABLE);
        BSON_APPEND_UTF8(line, "judge_error", e->judge.error);
        if (e->judge.raw)
            BSON_APPEND_UTF8(line, "judge_raw", e->judge.raw);
    }
}

/* The judge's figures: the means with their 95% intervals (Student's t,
 * judge.h), and the counts. */
static void judge_figures(sl_ctx *ctx, const judge_summary *sum, bson_t *figures) {
    const judge_stat *st[2] = {&sum->accuracy, &sum->style};
    static const char *const names[2] = {"judge_accuracy", "judge_style"};
    for (int k = 0; k < 2; k++) {
        char key[64];
        figure(ctx, figures, names[k], st[k]->mean);
        if (!st[k]->has_ci)
            continue; /* one score: no interval */
        snprintf(key, sizeof(key), "%s_ci95_low", names[k]);
        figure(ctx, figures, key, st[k]->low);
        snprintf(key, sizeof(key), "%s_ci95_high", names[k]);
        figure(ctx, figures, key, st[k]->high);
    }
    figure(ctx, figures, "judge_scored", (double)sum->scored);
    figure(ctx, figures, "judge_unparsable", (double)sum->unparsable);
    figure(ctx, figures, "judge_requests", (double)sum->llm.requests);
    figure(ctx, figures, "judge_cached", (double)sum->llm.cached);
    sl_log(ctx, SL_LOG_INFO,
           "judge: accuracy %.3f [%.3f, %.3f], style %.3f [%.3f, %.3f] over %zu answers (95%% "
           "t intervals)",
           sum->accuracy.mean, sum->accuracy.low, sum->accuracy.high, sum->style.mean,
           sum->style.low, sum->style.high, sum->scored);
}

/* rag_recall@k and rag_mrr@k over the examples whose extract the index holds. */
static void rag_figures(sl_ctx *ctx, const eval_retrieval *rt, const eval_example *ex, size_t n,
                        size_t known, bson_t *figures) {
    for (size_t ki = 0; ki < rt->n_ks; ki++) {
        double recall = 0, rr = 0;
        for (size_t i = 0; i < n; i++) {
            double a, b;
            if (!ex[i].rag_known)
                continue;
            rag_scores(ex[i].rag_rank, rt->ks[ki], &a, &b);
            recall += a;
            rr += b;
        }
        char key[64];
        snprintf(key, sizeof(key), "rag_recall@%zu", rt->ks[ki]);
        figure(ctx, figures, key, recall / (double)known);
        snprintf(key, sizeof(key), "rag_mrr@%zu", rt->ks[ki]);
        figure(ctx, figures, key, rr / (double)known);
        sl_log(ctx, SL_LOG_INFO, "rag: recall@%zu %.4f, mrr@%zu %.4f over %zu examples", rt->ks[ki],
               recall / (double)known, rt->ks[ki], rr / (double)known, known);
    }
    figure(ctx, figures, "rag_examples", (double)known);
    figure(ctx, figures, "rag_unmatched", (double)(n - known));
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The mean and median (the mean of the middle two for an even count) of
 * the field at offset in each example. */
static int words_stats(const eval_example *ex, size_t n, size_t offset, double *mean,
                       double *median) {
    size_t *v = malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(&v[i], (const char *)&ex[i] + offset, sizeof(size_t));
        sum += (double)v[i];
    }
    qsort(v, n, sizeof(*v), cmp_size);
    *mean = sum / (double)n;
    *median = n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
    free(v);
    return 0;
}

static void figure(sl_ctx *ctx, bson_t *figures, const char *key, double v) {
    BSON_APPEND_DOUBLE(figures, key, v);
    sl_metric(ctx, key, v, -1);
}

/* The aggregates of the n examples. */
static int aggregate(sl_ctx *ctx, const eval_settings *s, const eval_example *ex, size_t n,
                     const textscore_bleu *corpus, size_t truncated, bson_t *figures) {
    BSON_APPEND_UTF8(figures, "split", s->split);
    BSON_APPEND_INT64(figures, "examples", (int64_t)n);
    sl_metric(ctx, "examples", (double)n, -1);
    if (s->want[EVAL_PERPLEXITY]) {
        double nll = 0;
        size_t tokens = 0, scored = 0;
        for (size_t i = 0; i < n; i++) {
            nll += ex[i].nll;
            tokens += ex[i].nll_tokens;
            scored += ex[i].scored;
        }
        if (tokens == 0)
            return sl_fail(ctx, "perplexity: no example has an answer token within the "
                                "model's context");
        figure(ctx, figures, "perplexity", exp(nll / (double)tokens));
        figure(ctx, figures, "loss", nll / (double)tokens);
        figure(ctx, figures, "perplexity_tokens", (double)tokens);
        BSON_APPEND_INT64(figures, "perplexity_examples", (int64_t)scored);
        BSON_APPEND_INT64(figures, "perplexity_truncated", (int64_t)truncated);
        sl_log(ctx, SL_LOG_INFO, "perplexity = %.4f over %zu answer tokens of %zu examples",
               exp(nll / (double)tokens), tokens, scored);
        if (truncated || scored < n)
            sl_log(ctx, SL_LOG_WARN,
                   "perplexity: %zu examples cut to the model's context, %zu left out (no "
                   "answer token within it)",
                   truncated, n - scored);
    }
    int generated = s->want[EVAL_ROUGE_L] || s->want[EVAL_BLEU] || s->want[EVAL_EXACT_MATCH] ||
                    s->want[EVAL_LENGTH];
    if (!generated)
        return SL_OK;
    double rouge = 0, exact = 0, tokens = 0, eos = 0;
    for (size_t i = 0; i < n; i++) {
        rouge += ex[i].rouge.f1;
        exact += ex[i].exact_match;
        tokens += (double)ex[i].answer_tokens;
        eos += ex[i].eos;
    }
    if (s->want[EVAL_ROUGE_L])
        figure(ctx, figures, "rouge_l", rouge / (double)n);
    if (s->want[EVAL_BLEU])
        figure(ctx, figures, "bleu", textscore_bleu_score(corpus, 0));
    if (s->want[EVAL_EXACT_MATCH])
        figure(ctx, figures, "exact_match", exact / (double)n);
    if (s->want[EVAL_LENGTH]) {
        double am, amed, rm, rmed;
        if (words_stats(ex, n, offsetof(eval_example, answer_words), &am, &amed) != 0 ||
            words_stats(ex, n, offsetof(eval_example, reference_words), &rm, &rmed) != 0)
            return sl_fail(ctx, "out of memory");
        figure(ctx, figures, "answer_words_mean", am);
        figure(ctx, figures, "answer_words_median", amed);
        figure(ctx, figures, "reference_words_mean", rm);
        figure(ctx, figures, "reference_words_median", rmed);
        figure(ctx, figures, "length_ratio", rm > 0 ? am / rm : 0);
        figure(ctx, figures, "answer_tokens_mean", tokens / (double)n);
        figure(ctx, figures, "eos_rate", eos / (double)n);
    }
    sl_log(ctx, SL_LOG_INFO, "generated %zu answers: rouge_l %.4f, bleu %.2f, exact_match %.4f", n,
           rouge / (double)n, textscore_bleu_score(corpus, 0), exact / (double)n);
    return SL_OK;
}

static int write_report(sl_ctx *ctx, const eval_settings *s, const eval_example *ex, size_t n) {
    char err[1024];
    sl_records_writer *w = NULL;
    if (sl_records_create(sl_output_path(ctx, "report"), &w, err, sizeof(err)) != 0)
        return sl_fail(ctx, "report: %s", err);
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        bson_t line = BSON_INITIALIZER;
        eval_example_write(&ex[i], s->want, &line);
        if (sl_records_write(w, &line, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "report: %s", err);
        bson_destroy(&line);
    }
    if (sl_records_close(w, err, sizeof(err)) != 0 && rc == SL_OK)
        rc = sl_fail(ctx, "report: %s", err);
    return rc;
}

int model_eval_run(sl_ctx *ctx, const eval_retrieval *retrieval, bson_t *figures) {
    const char *model_dir = sl_input_path(ctx, "model"), *data = sl_input_path(ctx, "dataset");
    if (!model_dir || !data)
        return sl_fail(ctx, "model evaluation needs the inputs 'model' (a train step's model) and "
                            "'dataset' (an instruction dataset with a test split)");
    eval_settings s;
    int rc = read_settings(ctx, &s);
    char err[1024];
    dataset *d = NULL;
    if (rc == SL_OK && dataset_load(data, DATASET_INSTRUCTION, s.split, &d, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "input 'dataset': %s", err);
    if (rc != SL_OK) {
        if (s.judge_doc) /* the judge's settings are read first */
            bson_destroy(s.judge_doc);
        return rc;
    }
    dataset view = *d; /* the examples evaluated: the split's first max_examples */
    if (s.max_examples && s.max_examples < view.n)
        view.n = s.max_examples;
    size_t n = view.n;
    model_folder f;
    eval_example *ex = calloc(n, sizeof(*ex));
    textscore_bleu corpus = {0};
    size_t truncated = 0;
    judge_summary judged = {0};
    size_t rag_known = 0;
    if (!ex) {
        dataset_free(d);
        if (s.judge_doc)
            bson_destroy(s.judge_doc);
        return sl_fail(ctx, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        ex[i].index = i;
        ex[i].instruction = d->ex[i].a;
        ex[i].reference = d->ex[i].b;
        ex[i].extract_id = d->ex[i].extract_id;
        ex[i].document_id = d->ex[i].document_id;
    }
    if (model_folder_open(model_dir, 1, &f, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "input 'model': %s", err);
    else
        sl_log(ctx, SL_LOG_INFO, "%s model, %zu parameters%s; %zu %s examples of %zu",
               model_get_config(f.m)->model_type, model_param_count(f.m),
               f.lora_r ? ", LoRA adapter merged" : "", n, s.split, d->n);
    if (rc == SL_OK && s.want[EVAL_PERPLEXITY])
        rc = score_perplexity(ctx, &f, &view, ex, &truncated);
    int generate = s.want[EVAL_ROUGE_L] || s.want[EVAL_BLEU] || s.want[EVAL_EXACT_MATCH] ||
                   s.want[EVAL_LENGTH] || s.want[EVAL_JUDGE];
    for (size_t i = 0; generate && rc == SL_OK && i < n; i++) {
        rc = generate_one(ctx, &f, &s, &ex[i], &corpus);
        if (rc == SL_OK && (i + 1) % 10 == 0 && i + 1 < n) /* a real model is slow */
            sl_log(ctx, SL_LOG_INFO, "answered %zu of %zu", i + 1, n);
        if (rc == SL_OK && sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    if (rc == SL_OK && s.want[EVAL_JUDGE])
        rc = judge_pass(ctx, &s, ex, n, &judged);
    if (rc == SL_OK && s.want[EVAL_RAG])
        rc = rag_pass(ctx, &s, retrieval, ex, n, &rag_known);
    if (rc == SL_OK)
        rc = write_report(ctx, &s, ex, n);
    if (rc == SL_OK)
        rc = aggregate(ctx, &s, ex, n, &corpus, truncated, figures);
    if (rc == SL_OK && s.want[EVAL_JUDGE])
        judge_figures(ctx, &judged, figures);
    if (rc == SL_OK && s.want[EVAL_RAG])
        rag_figures(ctx, retrieval, ex, n, rag_known, figures);
    for (size_t i = 0; i < n; i++) {
        free(ex[i].answer);
        judge_items_free(&ex[i].judge, 1);
    }
    if (s.judge_doc)
        bson_destroy(s.judge_doc);
    free(ex);
    model_folder_close(&f);
    dataset_free(d);
    return rc;
}
