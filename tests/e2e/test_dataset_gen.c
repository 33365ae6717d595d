/* The dataset_gen step through the real binary: offline on the demo
 * articles (both kinds, byte for byte again, read by the train step), bad
 * parameters, no extracts at all, and the API path against
 * tests/llm_server.py (good answers, answers of the wrong shape, a failing
 * server, the key kept out of the store, and a kill -9 halfway after which
 * resume sends only the requests that never finished). */
#include <bson/bson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llm_stats.h"
#include "local_server.h"
#include "require.h"
#include "runner.h"

#define DEMO SLUICE_SOURCE_DIR "/pipelines/demo/datasets/documents.jsonl"
#define KEY "sk-test-DSGEN-SECRET-42"

static void stop_server(void);
static void teardown(void) {
    stop_server();
    test_dir_teardown();
}

TestSuite(dataset_gen, .init = test_dir_setup, .fini = teardown, .timeout = 240);

/* A pipeline: the documents at docs, cleaned and chunked, then one
 * dataset_gen step `gen` per line of gens ("NAME: {with...}"), and extra
 * steps after. Returns its path (malloc'ed). */
static char *pipeline(const char *docs, const char *gens, const char *extra) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f,
            "version: 1\npipeline: dsgen_test\nsettings: {jobs: 2}\nsteps:\n"
            "  documents:\n    uses: shell\n"
            "    with: {run: 'cp %s \"$SLUICE_OUTPUT_documents\"', outputs: {documents: d.jsonl}}\n"
            "  clean:\n    uses: clean\n    inputs: {documents: documents.documents}\n"
            "  chunk:\n    uses: chunk\n    inputs: {documents: clean.documents}\n",
            docs);
    for (const char *g = gens; *g;) {
        size_t n = strcspn(g, "\n");
        const char *colon = memchr(g, ':', n);
        cr_assert_not_null(colon);
        fprintf(f,
                "  %.*s:\n    uses: dataset_gen\n    inputs: {chunks: chunk.chunks}\n"
                "    with: %.*s\n",
                (int)(colon - g), g, (int)(n - (size_t)(colon + 1 - g)), colon + 1);
        g += n + (g[n] == '\n');
    }
    fprintf(f, "%s", extra ? extra : "");
    fclose(f);
    char *path = strdup(write_test_file(test_dir, "p.yaml", text));
    free(text);
    return path;
}

/* The text of output port of step, as the run's --json events (out) name
 * its file. */
static char *output_of(const char *out, const char *step, const char *port) {
    char needle[128];
    snprintf(needle, sizeof(needle), "\"step\" : \"%s\", \"outputs\" : { \"%s\" : \"", step, port);
    const char *at = strstr(out, needle);
    cr_assert_not_null(at, "no output %s of %s in %s", port, step, out);
    at += strlen(needle);
    char path[512];
    snprintf(path, sizeof(path), "%.*s", (int)strcspn(at, "\""), at);
    char *text = slurp(path);
    cr_assert_not_null(text, "%s", path);
    return text;
}

/* Parses a dataset file's JSON. */
static bson_t *parse_dataset(const char *text) {
    bson_t *doc = bson_new();
    bson_error_t err;
    cr_assert(bson_init_from_json(doc, text, -1, &err), "%s", err.message);
    return doc;
}

/* Samples in split/category of a dataset. */
static int samples_in(const bson_t *doc, const char *split, const char *category) {
    char path[128];
    snprintf(path, sizeof(path), "%s.%s.samples", split, category);
    bson_iter_t it, arr;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &arr) ||
        !BSON_ITER_HOLDS_ARRAY(&arr))
        return -1;
    bson_iter_t child;
    bson_iter_recurse(&arr, &child);
    int n = 0;
    while (bson_iter_next(&child))
        n++;
    return n;
}

/* The value of metric key of the last run's step (as `runs show` prints it). */
static double metric(const char *step, const char *key) {
    result r = RUN(test_store_arg, "runs", "show", last_run);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char head[64], needle[96];
    snprintf(head, sizeof(head), "\n  %s ", step);
    const char *at = strstr(r.out, head);
    cr_assert_not_null(at, "no step %s in %s", step, r.out);
    snprintf(needle, sizeof(needle), "metric %s = ", key);
    const char *m = strstr(at, needle);
    const char *next = strstr(at + 1, "\n  ");
    while (next && next[3] == ' ') /* lines of this step are indented more */
        next = strstr(next + 1, "\n  ");
    cr_assert(m && (!next || m < next), "no metric %s of %s in %s", key, step, r.out);
    double v = strtod(m + strlen(needle), NULL);
    result_free(&r);
    return v;
}

Test(dataset_gen, offline_both_kinds_same_bytes_again_and_train_reads_them) {
    const char *extra =
        "  tokenizer:\n    uses: train_tokenizer\n    inputs: {chunks: chunk.chunks}\n"
        "    with: {vocab_size: 300, special_tokens: ['<|endoftext|>']}\n"
        "  sft:\n    uses: train\n"
        "    inputs: {dataset: ins.dataset, tokenizer: tokenizer.tokenizer}\n"
        "    with: {method: sft, type: gpt2, d_model: 16, n_layers: 1, n_heads: 2,"
        " context: 256, max_seq_len: 256, max_steps: 2, batch_size: 2,"
        " eval_every: 1}\n";
    char *p = pipeline(DEMO, "ins: {kind: instruction}\npref: {kind: preference, seed: 7}", extra);
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *ins = output_of(r.out, "ins", "dataset"), *pref = output_of(r.out, "pref", "dataset");
    result_free(&r);
    bson_t *di = parse_dataset(ins), *dp = parse_dataset(pref);
    int train = samples_in(di, "train", "articles"), test = samples_in(di, "test", "articles");
    cr_expect_gt(train, 0);
    cr_expect_eq(test, (train + test + 9) / 10, "ceil(0.1 of them) in test");
    cr_expect_eq((double)train, metric("ins", "rows_train_articles"));
    cr_expect_gt(samples_in(dp, "train", "articles"), 0);
    cr_expect_not_null(strstr(pref, "\"chosen\": "));
    cr_expect_not_null(strstr(pref, "\"rejected\": "));
    cr_expect_null(strstr(ins, "\"chosen\": "));
    cr_expect_gt(metric("sft", "eval_loss"), 0, "the train step read both splits");
    /* Again, without the cache: the same bytes. */
    r = run_pipeline((char *[]){"sluice", test_store_arg, "run", "--json", "--no-cache", p, NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *again = output_of(r.out, "ins", "dataset");
    result_free(&r);
    cr_expect_str_eq(again, ins);
    free(again);
    bson_destroy(di);
    bson_destroy(dp);
    free(ins);
    free(pref);
    free(p);
}

Test(dataset_gen, bad_parameters_are_refused_by_name) {
    const struct {
        const char *with, *says;
    } cases[] = {
        {"{kind: sft}", "kind is 'sft': it must be instruction or preference"},
        {"{test_split_size: 1}", "test_split_size is 1: it must be a fraction"},
        {"{pairs_per_extract: 0}", "pairs_per_extract is 0: it must be from 1 to 100"},
        {"{endpoint: 'ftp://x'}", "endpoint is 'ftp://x': it must be an http:// or https://"},
        {"{endpoint: 'http://127.0.0.1:9/v1', concurrency: 0}", "concurrency is 0"},
        {"{endpoint: 'http://127.0.0.1:9/v1', temperature: 3}", "temperature is 3"},
        {"{endpoint: 'http://127.0.0.1:9/v1', model: ''}", "model is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char gens[160];
        snprintf(gens, sizeof(gens), "gen: %s", cases[i].with);
        char *p = pipeline(DEMO, gens, NULL);
        result r = RUN(test_store_arg, "run", p);
        cr_expect_neq(r.status, 0, "%s", cases[i].with);
        cr_expect(strstr(r.err, cases[i].says) || strstr(r.out, cases[i].says), "%s:\n%s%s",
                  cases[i].with, r.out, r.err);
        result_free(&r);
        free(p);
    }
}

Test(dataset_gen, no_extracts_give_an_empty_dataset_that_says_so) {
    char *docs = strdup(write_test_file(test_dir, "none.jsonl", ""));
    char *p = pipeline(docs, "gen: {kind: preference}", NULL);
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *out = output_of(r.out, "gen", "dataset");
    result_free(&r);
    bson_t *d = parse_dataset(out);
    bson_iter_t it;
    cr_expect(bson_iter_init_find(&it, d, "train") && BSON_ITER_HOLDS_DOCUMENT(&it));
    cr_expect_eq(metric("gen", "rows_train"), 0);
    bson_destroy(d);
    free(out);
    free(p);
    free(docs);
}

/* ---- the API path, against tests/llm_server.py ---- */

static pid_t server = -1;
static char endpoint[128];

static void start_server(const char *mode) {
    server = llm_server_start(test_dir, (const char *[]){"--api-key", KEY, "--mode", mode, NULL},
                              endpoint, sizeof(endpoint));
}

static void stop_server(void) { local_server_stop(&server); }

/* The server's total of chat requests. */
static long server_total(void) { return llm_server_stat(endpoint, "total"); }

static char key_env[64] = "DSGEN_TEST_KEY=" KEY;

/* The dataset_gen steps of kind with the server's endpoint and the key as a
 * secret. */
static char *api_pipeline(const char *kind, const char *more) {
    char gens[512];
    snprintf(gens, sizeof(gens),
             "gen: {kind: %s, endpoint: '%s', api_key: '${secret.DSGEN_TEST_KEY}', "
             "max_retries: 2, backoff: 0.05%s}",
             kind, endpoint, more ? more : "");
    run_env[1] = key_env;
    run_env[2] = NULL;
    setenv("DSGEN_TEST_KEY", KEY, 1); /* for the runs started in the background */
    return pipeline(DEMO, gens, NULL);
}

Test(dataset_gen, api_answers_become_the_dataset_and_the_key_stays_out) {
    start_server("ok");
    char *p = api_pipeline("instruction", ", concurrency: 4");
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_null(strstr(r.out, KEY));
    cr_expect_null(strstr(r.err, KEY));
    char *out = output_of(r.out, "gen", "dataset");
    result_free(&r);
    double requests = metric("gen", "requests");
    cr_expect_gt(requests, 0);
    cr_expect_eq((long)requests, server_total());
    cr_expect_eq(metric("gen", "rows_train") + metric("gen", "rows_test"),
                 5 * requests - metric("gen", "dropped_duplicate_instruction") -
                     metric("gen", "dropped_short_answer"),
                 "five items per answer, each kept or counted");
    cr_expect_not_null(strstr(out, "Question 1: what does the text say about"));
    free(out);
    /* Not in the store, metadata, logs or cache. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -r -l -a '%s' %s/store", KEY, test_dir);
    cr_expect_neq(system(cmd), 0, "the key is written somewhere in the store");
    /* Again, without the step cache: every answer from the request cache. */
    long before = server_total();
    r = run_pipeline((char *[]){"sluice", test_store_arg, "run", "--json", "--no-cache", p, NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    cr_expect_eq(server_total(), before, "no request sent again");
    cr_expect_eq(metric("gen", "cached"), requests);
    stop_server();
    free(p);
}

Test(dataset_gen, answers_of_the_wrong_shape_are_dropped_and_counted) {
    start_server("wrong_shape");
    char *p = api_pipeline("preference", "");
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    double requests = metric("gen", "requests");
    cr_expect_gt(requests, 0);
    cr_expect_eq(metric("gen", "dropped_wrong_shape"), requests);
    cr_expect_eq(metric("gen", "rows_train"), 0);
    stop_server();
    free(p);
}

Test(dataset_gen, a_server_that_keeps_failing_fails_the_step_clearly) {
    start_server("500");
    char *p = api_pipeline("instruction", "");
    result r = RUN(test_store_arg, "run", p);
    cr_expect_neq(r.status, 0);
    cr_expect(strstr(r.out, "requests failed after their retries") ||
                  strstr(r.err, "requests failed after their retries"),
              "%s%s", r.out, r.err);
    cr_expect_null(strstr(r.err, KEY));
    cr_expect_null(strstr(r.out, KEY));
    result_free(&r);
    stop_server();
    free(p);
}

Test(dataset_gen, kill_9_halfway_then_resume_sends_only_the_unfinished_requests) {
    /* slow answers, one in flight: the kill comes with some answered. */
    start_server("slow:300");
    char *p = api_pipeline("instruction", ", concurrency: 1");
    char events[256];
    snprintf(events, sizeof(events), "%s/events", test_dir);
    pid_t pid = start_sluice_run_json(p, events);
    wait_for_event(events, "step_started", "gen");
    /* Until three answers are in the cache. */
    char cache[256];
    snprintf(cache, sizeof(cache), "ls %s/store/cache/llm 2>/dev/null | wc -l", test_dir);
    long cached = 0;
    while (cached < 3) { /* a cache that never fills: the suite's timeout */
        FILE *f = popen(cache, "r");
        cr_assert(f && fscanf(f, "%ld", &cached) == 1);
        pclose(f);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    cr_assert_geq(cached, 3);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    long sent = server_total();
    /* The run as sluice recorded it. */
    result runs = RUN(test_store_arg, "runs", "list", "--limit", "1");
    cr_assert_eq(runs.status, 0, "%s", runs.err);
    char id[32];
    const char *line = strchr(runs.out, '\n');
    cr_assert(line && sscanf(line + 1, "%31s", id) == 1, "%s", runs.out);
    result_free(&runs);
    /* A request in flight at the kill was sent and not kept: it goes again. */
    FILE *f = popen(cache, "r");
    cr_assert(f && fscanf(f, "%ld", &cached) == 1);
    pclose(f);
    result r = run_pipeline((char *[]){"sluice", test_store_arg, "resume", "--json", id, NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    double requests = metric("gen", "requests");
    cr_expect_eq(metric("gen", "cached"), (double)cached, "the answers kept before the kill");
    cr_expect_eq(server_total() - sent, (long)requests, "only the unfinished were sent");
    char *chunks = last_output("chunks");
    cr_expect_eq((size_t)(cached + (long)requests), count(chunks, "\n"),
                 "one request per extract, each answered once into the cache");
    free(chunks);
    cr_expect_gt(requests, 0);
    stop_server();
    free(p);
}
