/* evaluate - the LLM twin's evaluate step, in two modes, each with
 * thresholds that fail the step when a figure is out of bounds (a
 * continuous-training gate). Model mode (model_eval.h) scores a trained
 * model on an instruction dataset's test split: perplexity, ROUGE-L, BLEU,
 * exact match and lengths of its generated answers, an LLM judge's grades
 * of them, and the retrieval of each example's extract. Retrieval mode,
 * below: a query set with relevance judgements is run against an index the
 * index step built, and recall@k, MRR@k and nDCG@k (ranking.h) become
 * metrics of the run.
 *
 * Queries: JSON Lines, one object per query:
 *   {"query": "...", "relevant": ["ID", ...], "filter": {"author": "...", "category": "..."}}
 * Each relevant entry names one relevant document: its document id, its
 * link, the path of its link ("/articles/x.html", whatever the host), or
 * the id of one of its chunks. Evaluation is by document: the ranked
 * chunks are read as the ranked list of the documents they belong to,
 * each document at the rank of its first chunk. */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <bson/bson.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_eval.h"
#include "ranking.h"
#include "retriever.h"
#include "strtab.h"

#define MAX_KS 16

static const char *const metric_names[] = {"recall", "mrr", "ndcg"};
#define N_METRICS 3

typedef struct settings {
    size_t ks[MAX_KS], n_ks, max_k, depth;
    int want[N_METRICS];
    retrieve_mode search;
} settings;

/* Running sums over the queries, per k and metric. */
typedef struct totals {
    double sum[MAX_KS][N_METRICS];
    size_t queries;
} totals;

/* "/path?query" of a link "scheme://host/path?query", or NULL. */
static const char *link_path(const char *link) {
    const char *p = strstr(link, "://");
    return p ? strchr(p + 3, '/') : NULL;
}

/* Every name a judgement may give a document (its id, its link, its link's
 * path, the id of one of its chunks) mapped to the document, and each row
 * of the index to its document: built once, so that a query's judgements
 * and ranking are lookups. Documents are numbered in the order first met;
 * a row without a document id is a document of its own. */
typedef struct judge_map {
    strtab names, docs;
    uint32_t *name_doc; /* per name: its document */
    uint32_t *row_doc;  /* per index row: its document */
    uint32_t *seen;     /* per document: the query that last ranked it, + 1 */
} judge_map;

static void judge_map_free(judge_map *j) {
    strtab_free(&j->names);
    strtab_free(&j->docs);
    free(j->name_doc);
    free(j->row_doc);
    free(j->seen);
}

/* Names s (when new: the first document named wins). */
static int name_doc(judge_map *j, const char *s, uint32_t doc, size_t *cap) {
    if (!s || !*s)
        return 0;
    uint32_t before = (uint32_t)j->names.n, id;
    if (strtab_intern(&j->names, s, strlen(s), &id) != 0)
        return -ENOMEM;
    if (id < before)
        return 0;
    if (j->names.n > *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        uint32_t *grown = realloc(j->name_doc, nc * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        j->name_doc = grown;
        *cap = nc;
    }
    j->name_doc[id] = doc;
    return 0;
}

static int judge_map_build(const retriever *r, judge_map *j) {
    memset(j, 0, sizeof(*j));
    size_t n = index_size(retriever_index(r)), cap = 0;
    if (!(j->row_doc = malloc((n ? n : 1) * sizeof(*j->row_doc))))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        retrieved_row row;
        if (retriever_row(r, (uint32_t)i, &row) != 0)
            return -EINVAL;
        const char *key = *row.row.document_id ? row.row.document_id : row.chunk_id;
        uint32_t doc;
        if (strtab_intern(&j->docs, key, strlen(key), &doc) != 0 || name_doc(j, key, doc, &cap) ||
            name_doc(j, row.chunk_id, doc, &cap) || name_doc(j, row.link, doc, &cap) ||
            name_doc(j, link_path(row.link), doc, &cap))
            return -ENOMEM;
        j->row_doc[i] = doc;
    }
    return (j->seen = calloc(j->docs.n ? j->docs.n : 1, sizeof(*j->seen))) ? 0 : -ENOMEM;
}

/* The cut-offs and search (both modes: the model mode's rag metric uses
 * them) and, in retrieval mode, the metrics. */
static int read_settings(sl_ctx *ctx, settings *s, int model) {
    memset(s, 0, sizeof(*s));
    size_t n = sl_param_list_len(ctx, "k");
    if (n == 0 || n > MAX_KS)
        return sl_fail(ctx, "k lists %zu cut-offs: give 1 to %d", n, MAX_KS);
    for (size_t i = 0; i < n; i++) {
        const char *v = sl_param_list_item(ctx, "k", i);
        char *end;
        long k = strtol(v, &end, 10);
        if (*end || end == v || k < 1 || k > 1000)
            return sl_fail(ctx, "k: '%s' is not a cut-off from 1 to 1000", v);
        s->ks[s->n_ks++] = (size_t)k;
        if ((size_t)k > s->max_k)
            s->max_k = (size_t)k;
    }
    /* Documents come from chunks: look deep enough that k distinct
     * documents are there even when each has several chunks. */
    s->depth = s->max_k * 10 > 100 ? s->max_k * 10 : 100;
    const char *search = sl_param_str(ctx, "search");
    if (retrieve_mode_parse(search ? search : "", &s->search) != 0)
        return sl_fail(ctx, "search is '%s': use hybrid, dense or bm25", search ? search : "");
    size_t nm = model ? 0 : sl_param_list_len(ctx, "metrics");
    for (size_t i = 0; i < nm; i++) {
        const char *m = sl_param_list_item(ctx, "metrics", i);
        size_t j = 0;
        while (j < N_METRICS && strcmp(m, metric_names[j]) != 0)
            j++;
        if (j == N_METRICS)
            return sl_fail(ctx, "metrics: '%s' is not a retrieval metric (recall, mrr, ndcg)", m);
        s->want[j] = 1;
    }
    for (size_t j = 0; nm == 0 && j < N_METRICS; j++)
        s->want[j] = 1;
    return SL_OK;
}

/* The thresholds parameter ({"recall@5": {"min": 0.8}, ...}), or NULL. */
static int read_thresholds(sl_ctx *ctx, bson_t **out) {
    *out = NULL;
    const char *json = sl_param_json(ctx, "thresholds");
    if (json && strcmp(json, "null") != 0) {
        bson_error_t e;
        *out = bson_new_from_json((const uint8_t *)json, -1, &e);
        if (!*out)
            return sl_fail(ctx, "thresholds: not a mapping: %s", e.message);
    }
    return SL_OK;
}

/* One query: its ranked documents' hits, scored at every k. */
static int score_query(sl_ctx *ctx, const retriever *r, judge_map *j, const settings *s,
                       const bson_t *q, size_t line, totals *t, sl_records_writer *report) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, q, "query") || !BSON_ITER_HOLDS_UTF8(&it))
        return sl_fail(ctx, "queries: record %zu has no string 'query'", line);
    const char *text = bson_iter_utf8(&it, NULL);
    /* The relevant documents, each once however many entries name it; an
     * entry naming no document of the index is a relevant document that
     * cannot be found. */
    uint32_t relevant[256];
    const char *unknown[256];
    size_t n_rel = 0, n_unknown = 0;
    if (!bson_iter_init_find(&it, q, "relevant") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &sub))
        return sl_fail(ctx, "queries: record %zu has no 'relevant' list", line);
    while (bson_iter_next(&sub)) {
        if (!BSON_ITER_HOLDS_UTF8(&sub) || n_rel + n_unknown == 256)
            return sl_fail(ctx, "queries: record %zu: 'relevant' must list 1 to 256 strings", line);
        uint32_t len;
        const char *entry = bson_iter_utf8(&sub, &len);
        uint32_t name = strtab_find(&j->names, entry, len);
        size_t k = 0;
        if (name != STRTAB_NONE) {
            while (k < n_rel && relevant[k] != j->name_doc[name])
                k++;
            if (k == n_rel)
                relevant[n_rel++] = j->name_doc[name];
        } else {
            while (k < n_unknown && strcmp(unknown[k], entry) != 0)
                k++;
            if (k == n_unknown)
                unknown[n_unknown++] = entry;
        }
    }
    if (n_rel + n_unknown == 0)
        return sl_fail(ctx, "queries: record %zu: 'relevant' is empty", line);
    if (n_unknown)
        sl_log(ctx, SL_LOG_WARN, "queries: record %zu: '%s' names no document of the index", line,
               unknown[0]);
    index_filter filter = {0};
    if (bson_iter_init_find(&it, q, "filter") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub)) {
            const char *key = bson_iter_key(&sub);
            if (!BSON_ITER_HOLDS_UTF8(&sub) ||
                (strcmp(key, "author") != 0 && strcmp(key, "category") != 0))
                return sl_fail(ctx, "queries: record %zu: filter '%s': use author or category",
                               line, key);
            *(strcmp(key, "author") == 0 ? &filter.author : &filter.category) =
                bson_iter_utf8(&sub, NULL);
        }
    uint32_t *ids = malloc(s->depth * sizeof(*ids));
    float *scores = malloc(s->depth * sizeof(*scores));
    unsigned char *hits = malloc(s->depth);
    size_t count = 0, n_docs = 0;
    char err[512];
    int rc = SL_OK;
    if (!ids || !scores || !hits)
        rc = sl_fail(ctx, "out of memory");
    else if (retriever_search(r, text, s->search, s->depth, &filter, ids, scores, &count, err,
                              sizeof(err)) != 0)
        rc = sl_fail(ctx, "queries: record %zu: %s", line, err);
    /* The ranked documents, each at the rank of its first chunk, written
     * over ids: the n_docs-th document comes from ids[i] with i >= n_docs,
     * read before it is overwritten. */
    uint32_t stamp = (uint32_t)line;
    int first = 0;
    for (size_t i = 0; rc == SL_OK && i < count; i++) {
        uint32_t doc = j->row_doc[ids[i]];
        if (j->seen[doc] == stamp)
            continue;
        j->seen[doc] = stamp;
        size_t k = 0;
        while (k < n_rel && relevant[k] != doc)
            k++;
        if (k < n_rel && !first)
            first = (int)n_docs + 1;
        hits[n_docs] = k < n_rel;
        ids[n_docs++] = doc;
    }
    n_rel += n_unknown;
    bson_t line_doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&line_doc, "query", text);
    BSON_APPEND_INT32(&line_doc, "first_relevant_rank", first);
    /* What was found, for reading a miss: the first max k documents. */
    bson_t ranked;
    BSON_APPEND_ARRAY_BEGIN(&line_doc, "ranked", &ranked);
    for (size_t d = 0; d < n_docs && d < s->max_k; d++) {
        char key[16];
        const char *kp;
        bson_uint32_to_string((uint32_t)d, &kp, key, sizeof(key));
        bson_append_utf8(&ranked, kp, -1, j->docs.s[ids[d]], (int)j->docs.len[ids[d]]);
    }
    bson_append_array_end(&line_doc, &ranked);
    for (size_t ki = 0; rc == SL_OK && ki < s->n_ks; ki++) {
        ranking_scores sc;
        if (ranking_score(hits, n_docs, n_rel, s->ks[ki], &sc) != 0) {
            rc = sl_fail(ctx, "queries: record %zu cannot be scored", line);
            break;
        }
        double v[N_METRICS] = {sc.recall, sc.reciprocal_rank, sc.ndcg};
        for (size_t m = 0; m < N_METRICS; m++) {
            t->sum[ki][m] += v[m];
            char key[32];
            snprintf(key, sizeof(key), "%s@%zu", m == 1 ? "rr" : metric_names[m], s->ks[ki]);
            if (s->want[m])
                BSON_APPEND_DOUBLE(&line_doc, key, v[m]);
        }
    }
    if (rc == SL_OK && sl_records_write(report, &line_doc, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "report: %s", err);
    bson_destroy(&line_doc);
    t->queries++;
    free(ids);
    free(scores);
    free(hits);
    return rc;
}

/* Each threshold against the figures; the first broken one fails. */
static int check_thresholds(sl_ctx *ctx, const bson_t *thresholds, const bson_t *figures) {
    bson_iter_t it, lim, fig;
    if (!thresholds || !bson_iter_init(&it, thresholds))
        return SL_OK;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (!bson_iter_init_find(&fig, figures, key))
            return sl_fail(ctx, "thresholds: '%s' is not a figure of this evaluation", key);
        if (!BSON_ITER_HOLDS_NUMBER(&fig))
            return sl_fail(ctx, "thresholds: '%s' is not a number of this evaluation", key);
        double v = bson_iter_as_double(&fig), b;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &lim))
            return sl_fail(ctx, "thresholds: '%s' must be a mapping of min and/or max", key);
        while (bson_iter_next(&lim)) {
            const char *which = bson_iter_key(&lim);
            int is_min = strcmp(which, "min") == 0;
            if ((!is_min && strcmp(which, "max") != 0) || !eval_number(&lim, &b))
                return sl_fail(ctx, "thresholds: '%s': '%s' must be min or max, with a number", key,
                               which);
            if (is_min ? v < b : v > b)
                return sl_fail(ctx, "%s is %.4f, %s the threshold %g", key, v,
                               is_min ? "below" : "above", b);
        }
    }
    return SL_OK;
}

/* The figures as the metrics output, then the gate. */
static int finish(sl_ctx *ctx, const bson_t *thresholds, const bson_t *figures) {
    char err[1024], path[4096];
    snprintf(path, sizeof(path), "%s", sl_output_path(ctx, "metrics"));
    if (sl_json_write(path, figures, err, sizeof(err)) != 0)
        return sl_fail(ctx, "metrics: %s", err);
    return check_thresholds(ctx, thresholds, figures);
}

static int evaluate_retrieval(sl_ctx *ctx, const settings *s, bson_t *figures) {
    const char *index = sl_input_path(ctx, "index"), *queries = sl_input_path(ctx, "queries");
    if (!index || !queries)
        return sl_fail(ctx, "retrieval evaluation needs the inputs 'index' (an index step's "
                            "output) and 'queries' (JSON Lines of query and relevant)");
    char err[1024];
    retriever *r;
    if (retriever_open(index, &r, err, sizeof(err)) != 0)
        return sl_fail(ctx, "index: %s", err);
    sl_records_reader *rd = NULL;
    sl_records_writer *report = NULL;
    size_t line = 0;
    totals t = {0};
    judge_map j;
    int rc = SL_OK;
    const char *report_path = sl_output_path(ctx, "report");
    if (judge_map_build(r, &j) != 0) {
        rc = sl_fail(ctx, "index: its rows cannot be read (out of memory?)");
    } else if (sl_records_open(queries, &rd, err, sizeof(err)) != 0) {
        rc = sl_fail(ctx, "queries: %s", err);
    } else if (sl_records_create(report_path, &report, err, sizeof(err)) != 0) {
        rc = sl_fail(ctx, "report: %s", err);
    } else {
        for (;;) {
            bson_t q;
            int got = sl_records_next(rd, &q, err, sizeof(err));
            if (got < 0)
                rc = sl_fail(ctx, "queries: %s", err);
            if (got <= 0)
                break;
            rc = score_query(ctx, r, &j, s, &q, ++line, &t, report);
            bson_destroy(&q);
            if (rc == SL_OK && sl_cancelled(ctx))
                rc = SL_ECANCELLED;
            if (rc != SL_OK)
                break;
        }
    }
    sl_records_free(rd);
    if (report && sl_records_close(report, err, sizeof(err)) != 0 && rc == SL_OK)
        rc = sl_fail(ctx, "report: %s", err);
    judge_map_free(&j);
    retriever_close(r);
    if (rc == SL_OK && t.queries == 0)
        rc = sl_fail(ctx, "queries: the file holds no query");
    if (rc != SL_OK)
        return rc;
    BSON_APPEND_UTF8(figures, "search", retrieve_mode_name(s->search));
    BSON_APPEND_INT64(figures, "queries", (int64_t)t.queries);
    for (size_t ki = 0; ki < s->n_ks; ki++)
        for (size_t m = 0; m < N_METRICS; m++) {
            if (!s->want[m])
                continue;
            char key[32];
            snprintf(key, sizeof(key), "%s@%zu", metric_names[m], s->ks[ki]);
            double v = t.sum[ki][m] / (double)t.queries;
            BSON_APPEND_DOUBLE(figures, key, v);
            sl_metric(ctx, key, v, -1);
            sl_log(ctx, SL_LOG_INFO, "%s = %.4f over %zu queries", key, v, t.queries);
        }
    sl_metric(ctx, "queries", (double)t.queries, -1);
    return SL_OK;
}

static int run(sl_ctx *ctx) {
    const char *mode = sl_param_str(ctx, "mode");
    if (!mode || !*mode) /* a model connected is evaluated, with its index (rag) if any */
        mode = sl_input_path(ctx, "model") || !sl_input_path(ctx, "index") ? "model" : "retrieval";
    int model = strcmp(mode, "model") == 0;
    if (!model && strcmp(mode, "retrieval") != 0)
        return sl_fail(ctx, "mode is '%s': use retrieval or model", mode);
    bson_t *thresholds;
    int rc = read_thresholds(ctx, &thresholds);
    if (rc != SL_OK)
        return rc;
    bson_t figures = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&figures, "mode", mode);
    settings s;
    rc = read_settings(ctx, &s, model);
    if (rc == SL_OK && model)
        rc = model_eval_run(ctx, &(eval_retrieval){s.ks, s.n_ks, s.depth, s.search}, &figures);
    else if (rc == SL_OK)
        rc = evaluate_retrieval(ctx, &s, &figures);
    if (rc == SL_OK)
        rc = finish(ctx, thresholds, &figures);
    bson_destroy(&figures);
    if (thresholds)
        bson_destroy(thresholds);
    return rc;
}

static const sl_port inputs[] = {
    {"index", "index", "retrieval, and the model mode's rag metric: the index step's output", 1},
    {"queries", "dataset",
     "retrieval: JSON Lines of {query, relevant: [document id, link, link path or chunk id], "
     "filter: {author, category}}",
     1},
    {"model", "model", "model: the model to evaluate (a train step's output)", 1},
    {"dataset", "dataset",
     "model: an instruction dataset ({instruction, answer, split}); its test split is used", 1},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"metrics", "metrics", "the figures, as one JSON object", 0},
    {"report", "report",
     "one JSON line per query (its figures and first relevant rank) or per test example "
     "(instruction, reference, answer and its scores)",
     0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"mode", SL_PARAM_STRING, "\"\"",
     "retrieval or model; empty: model when a model is connected, else retrieval when an index "
     "is",
     0},
    {"k", SL_PARAM_LIST, "[1, 5, 10]",
     "retrieval and rag: the cut-offs k of recall@k, mrr@k (and ndcg@k)", 0},
    {"search", SL_PARAM_STRING, "hybrid", "retrieval and rag: hybrid, dense or bm25", 0},
    {"metrics", SL_PARAM_LIST, "[]",
     "the metrics to report (model: perplexity, rouge_l, bleu, exact_match, length, judge, "
     "rag); empty: all of the mode's (judge when one is configured, rag when an index is "
     "connected)",
     0},
    {"thresholds", SL_PARAM_JSON, "{}",
     "bounds that fail the step, e.g. {recall@5: {min: 0.8}}: a continuous-training gate", 0},
    {"split", SL_PARAM_STRING, "test", "model: the dataset's split to evaluate on (test, train)",
     0},
    {"max_examples", SL_PARAM_INT, "0", "model: the split's first N examples; 0: all", 0},
    {"max_new_tokens", SL_PARAM_INT, "256", "model: tokens generated per answer at most", 0},
    {"temperature", SL_PARAM_FLOAT, "0", "model: 0 is greedy decoding, else sampling", 0},
    {"seed", SL_PARAM_INT, "0", "model: the sampler's seed (each answer starts from it)", 0},
    {"threads", SL_PARAM_INT, "1", "model: OpenBLAS threads", 0},
    {"judge", SL_PARAM_JSON, "{}",
     "model: the LLM judge, {endpoint, model, api_key or api_key_env, max_in_flight, "
     "response_format, temperature, max_tokens, timeout, max_retries, backoff, max_requests, "
     "max_tokens_total}",
     0},
    {"rag_match", SL_PARAM_STRING, "chunk",
     "model, rag: what finding a test example's extract means: its chunk, or its document", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"evaluate", "1.0",
     "evaluate a model (perplexity, ROUGE-L, BLEU, exact match, lengths, an LLM judge, "
     "retrieval of its extracts, on a test split) or retrieval (recall@k, MRR@k, nDCG@k over "
     "judged queries) against thresholds",
     inputs, outputs, params, run},
};

SL_PLUGIN_DEFINE("evaluate", "1.0", steps, NULL, NULL)
