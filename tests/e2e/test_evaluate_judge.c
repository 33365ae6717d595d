/* The evaluate step's judge and rag metrics through the real binary, on the demo data: the demo
 * articles chunked, an offline instruction dataset made from the chunks (each sample naming its
 * extract), the chunks embedded and indexed, a tiny model pretrained on them, then evaluate in
 * model mode with the index connected (rag) and an LLM judge at tests/llm_server.py (good answers,
 * answers that do not read, 429s with Retry-After). The judge's counts are held against the
 * server's, the means against the per-example scores of the report, rag against the report's
 * ranks; nothing is timed. */
#include <bson/bson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_stats.h"
#include "local_server.h"
#include "require.h"
#include "runner.h"

#define DEMO SLUICE_SOURCE_DIR "/pipelines/demo/datasets/documents.jsonl"

static pid_t server = -1;
static char endpoint[128];

static void teardown(void) {
    local_server_stop(&server);
    test_dir_teardown();
}

TestSuite(evaluate_judge, .init = test_dir_setup, .fini = teardown, .timeout = 600);

static void start_server(const char *mode) {
    server = llm_server_start(test_dir,
                              (const char *const[]){"--mode", mode, "--retry-after", "0.05",
                                                    "--api-key", "sk-judge-test", NULL},
                              endpoint, sizeof(endpoint));
}

/* The demo pipeline up to the model, the index and the dataset; then evaluate `with` evaluate_with
 * (a flow mapping's inside) and its index input from index_step's output (NULL: none). */
static char *pipeline(const char *evaluate_with, const char *index_step) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f,
            "version: 1\npipeline: judge_test\nsettings: {jobs: 2}\nsteps:\n"
            "  documents:\n    uses: shell\n"
            "    with: {run: 'cp %s \"$SLUICE_OUTPUT_documents\"', outputs: {documents: d.jsonl}}\n"
            "  clean: {uses: clean, inputs: {documents: documents.documents}}\n"
            "  chunk: {uses: chunk, inputs: {documents: clean.documents}}\n"
            "  windows:\n    uses: chunk\n    inputs: {documents: clean.documents}\n"
            "    with: {min_length: 200, max_length: 600}\n"
            "  dataset:\n    uses: dataset_gen\n    inputs: {chunks: chunk.chunks}\n"
            "    with: {kind: instruction, test_split_size: 0.2, seed: 42}\n"
            "  embed: {uses: embed, inputs: {chunks: chunk.chunks}}\n"
            "  index:\n    uses: index\n"
            "    inputs: {embeddings: embed.embeddings, chunks: chunk.chunks, model: embed.model}\n"
            "  wembed: {uses: embed, inputs: {chunks: windows.chunks}}\n"
            "  windex:\n    uses: index\n"
            "    inputs: {embeddings: wembed.embeddings, chunks: windows.chunks, model: "
            "wembed.model}\n"
            "  tokenizer:\n    uses: train_tokenizer\n    inputs: {chunks: chunk.chunks}\n"
            "    with: {vocab_size: 300, special_tokens: ['<|endoftext|>']}\n"
            "  pretrain:\n    uses: train\n"
            "    inputs: {dataset: chunk.chunks, tokenizer: tokenizer.tokenizer}\n"
            "    with: {method: pretrain, type: gpt2, d_model: 32, n_layers: 1, n_heads: 2,\n"
            "           context: 128, max_seq_len: 128, epochs: 1, batch_size: 8, seed: 42,\n"
            "           threads: 1}\n"
            "  evaluate:\n    uses: evaluate\n"
            "    inputs: {model: pretrain.model, dataset: dataset.dataset%s%s%s}\n"
            "    with: {max_new_tokens: 8, %s}\n",
            DEMO, index_step ? ", index: " : "", index_step ? index_step : "",
            index_step ? ".index" : "", evaluate_with);
    fclose(f);
    char *path = strdup(write_test_file(test_dir, "p.yaml", text));
    free(text);
    return path;
}

/* The last run's output as JSON: the metrics object, or the report's lines (n of them). */
static bson_t *figures(void) {
    char *text = last_output("metrics");
    bson_t *doc = bson_new_from_json((const uint8_t *)text, -1, NULL);
    cr_assert_not_null(doc, "%s", text);
    free(text);
    return doc;
}

static double figure(const bson_t *doc, const char *key) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, doc, key), "no figure %s", key);
    return bson_iter_as_double(&it);
}

static bson_t **report(size_t *n) {
    char *text = last_output("report");
    bson_t **lines = NULL;
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines = realloc(lines, (*n + 1) * sizeof(*lines));
        cr_assert_not_null(lines);
        lines[*n] = bson_new_from_json((const uint8_t *)line, -1, NULL);
        cr_assert_not_null(lines[*n], "%s", line);
        (*n)++;
    }
    free(text);
    return lines;
}

static void report_free(bson_t **lines, size_t n) {
    for (size_t i = 0; i < n; i++)
        bson_destroy(lines[i]);
    free(lines);
}

static int field(const bson_t *line, const char *key, bson_iter_t *it) {
    return bson_iter_init_find(it, line, key);
}

Test(evaluate_judge, judge_counts_agree_with_the_server_and_rag_with_the_report) {
    start_server("judge_mixed");
    setenv("JUDGE_TEST_KEY", "sk-judge-test", 1);
    char with[512];
    snprintf(with, sizeof(with),
             "metrics: [judge, rag], k: [1, 5, 10], "
             "judge: {endpoint: '%s', model: judge-model, api_key_env: JUDGE_TEST_KEY, "
             "max_in_flight: 4, backoff: 0.01}",
             endpoint);
    char *p = pipeline(with, "index");
    expect_success(RUN_PIPELINE(p));
    bson_t *fig = figures();
    size_t n;
    bson_t **lines = report(&n);
    cr_assert_gt(n, 5, "the demo's test split");
    /* The judge: every answer asked once, the 429s once more; the answers that did not read
     * counted, the rest scored; the server saw the same. */
    long scored = llm_server_stat(endpoint, "modes.judge"),
         prose = llm_server_stat(endpoint, "modes.judge_prose"),
         range = llm_server_stat(endpoint, "modes.judge_range"),
         limited = llm_server_stat(endpoint, "modes.429");
    cr_assert_eq(llm_server_stat(endpoint, "bad_requests"), 0);
    cr_assert_eq(llm_server_stat(endpoint, "formats.json_schema"), (long)n + limited);
    cr_assert_eq(llm_server_stat(endpoint, "total"), (long)n + limited);
    cr_assert_gt(prose + range, 0, "the demo's answers meet unparsable judgements");
    cr_assert_gt(limited, 0, "and 429s");
    cr_assert_eq(figure(fig, "judge_unparsable"), (double)(prose + range));
    cr_assert_eq(figure(fig, "judge_scored"), (double)scored);
    cr_assert_eq(figure(fig, "judge_requests"), (double)(n + (size_t)limited));
    /* The means are those of the report's scores; the interval holds the mean. */
    double acc = 0, sty = 0;
    size_t k = 0, unparsable = 0;
    for (size_t i = 0; i < n; i++) {
        bson_iter_t it;
        if (field(lines[i], "judge_accuracy", &it)) {
            acc += bson_iter_as_int64(&it);
            cr_assert(field(lines[i], "judge_style", &it));
            sty += bson_iter_as_int64(&it);
            cr_assert(field(lines[i], "judge_accuracy_analysis", &it));
            k++;
        } else {
            cr_assert(field(lines[i], "judge_unparsable", &it) && bson_iter_bool(&it),
                      "line %zu is scored or unparsable", i);
            cr_assert(field(lines[i], "judge_raw", &it), "what the judge said is kept");
            unparsable++;
        }
    }
    cr_assert_eq(k, (size_t)scored);
    cr_assert_eq(unparsable, (size_t)(prose + range));
    cr_assert_float_eq(figure(fig, "judge_accuracy"), acc / (double)k, 1e-12);
    cr_assert_float_eq(figure(fig, "judge_style"), sty / (double)k, 1e-12);
    cr_assert_leq(figure(fig, "judge_accuracy_ci95_low"), figure(fig, "judge_accuracy"));
    cr_assert_geq(figure(fig, "judge_style_ci95_high"), figure(fig, "judge_style"));
    /* rag: the index is built from the chunks the dataset was made from, so every example's
     * extract is there; recall@k from the report's ranks. */
    cr_assert_eq(figure(fig, "rag_examples"), (double)n);
    cr_assert_eq(figure(fig, "rag_unmatched"), 0);
    size_t ks[3] = {1, 5, 10};
    for (int c = 0; c < 3; c++) {
        size_t found = 0;
        double rr = 0;
        for (size_t i = 0; i < n; i++) {
            bson_iter_t it;
            cr_assert(field(lines[i], "rag_rank", &it), "line %zu", i);
            size_t rank = (size_t)bson_iter_as_int64(&it);
            found += rank && rank <= ks[c];
            rr += rank && rank <= ks[c] ? 1.0 / (double)rank : 0;
        }
        char key[32];
        snprintf(key, sizeof(key), "rag_recall@%zu", ks[c]);
        cr_assert_float_eq(figure(fig, key), (double)found / (double)n, 1e-12);
        snprintf(key, sizeof(key), "rag_mrr@%zu", ks[c]);
        cr_assert_float_eq(figure(fig, key), rr / (double)n, 1e-12);
    }
    cr_assert_gt(figure(fig, "rag_recall@10"), 0, "the twin finds some of its own extracts");
    report_free(lines, n);
    bson_destroy(fig);
    /* Again: every judgement from the cache, not a request sent; the same figures. */
    long before = llm_server_stat(endpoint, "total");
    expect_success(RUN_PIPELINE("--no-cache", p));
    bson_t *again = figures();
    cr_assert_eq(llm_server_stat(endpoint, "total"), before, "nothing sent again");
    cr_assert_eq(figure(again, "judge_cached"), (double)n);
    cr_assert_eq(figure(again, "judge_unparsable"), (double)(prose + range));
    bson_destroy(again);
    free(p);
}

Test(evaluate_judge, a_gate_on_the_judge_stops_the_step_after_it) {
    start_server("judge_mixed");
    char with[512];
    snprintf(with, sizeof(with),
             "metrics: [judge], judge: {endpoint: '%s', model: judge-model, api_key: "
             "sk-judge-test, backoff: 0.01}, thresholds: {judge_unparsable: {max: 0}}",
             endpoint);
    char *p = pipeline(with, NULL);
    FILE *f = fopen(p, "a");
    fprintf(f, "  deploy:\n    uses: shell\n    after: [evaluate]\n"
               "    with: {run: 'echo deployed'}\n");
    fclose(f);
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert_not_null(strstr(r.out, "judge_unparsable is"), "%s", r.out);
    cr_assert_eq(count(r.out, "\"event\" : \"step_finished\", \"step\" : \"deploy\""), 0);
    result_free(&r);
    free(p);
}

Test(evaluate_judge, judge_settings_refused_with_reasons) {
    static const struct {
        const char *with, *why;
    } cases[] = {
        {"metrics: [judge]", "judge needs the judge's endpoint and model"},
        {"metrics: [judge], judge: {endpoint: '', model: m}",
         "judge needs the judge's endpoint and model"},
        {"metrics: [rag]", "rag needs the input 'index'"},
        {"judge: {endpoint: 'ftp://x', model: m}", "judge: endpoint must be an http"},
        {"judge: {endpoint: 'http://127.0.0.1:9/v1'}", "judge: model names"},
        {"judge: {endpoint: 'http://127.0.0.1:9/v1', model: m, max_in_flight: 0}",
         "judge: max_in_flight must be a number from 1 to 1024"},
        {"judge: {endpoint: 'http://127.0.0.1:9/v1', model: m, response_format: xml}",
         "response_format is 'xml'"},
        {"judge: {endpoint: 'http://127.0.0.1:9/v1', model: m, temprature: 0}",
         "'temprature' is not a setting"},
        {"judge: {endpoint: 'http://127.0.0.1:9/v1', model: m, api_key_env: SLUICE_NO_SUCH_VAR}",
         "SLUICE_NO_SUCH_VAR, which is not set"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = pipeline(cases[i].with, NULL);
        result r = RUN_PIPELINE(p);
        cr_assert_eq(r.status, 1, "case %zu: %s", i, r.out);
        cr_assert_not_null(strstr(r.out, cases[i].why), "case %zu: no '%s' in %s", i, cases[i].why,
                           r.out);
        result_free(&r);
        free(p);
    }
}

/* An index chunked otherwise holds none of the extracts: the step says so, and by document the
 * twin's retrieval is measured all the same. */
Test(evaluate_judge, rag_by_document_on_an_index_chunked_otherwise) {
    char *p = pipeline("metrics: [rag]", "windex");
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert_not_null(strstr(r.out, "no test example's chunk is in the index"), "%s", r.out);
    result_free(&r);
    free(p);
    p = pipeline("metrics: [rag], rag_match: document", "windex");
    expect_success(RUN_PIPELINE(p));
    bson_t *fig = figures();
    size_t n;
    bson_t **lines = report(&n);
    cr_assert_eq(figure(fig, "rag_examples"), (double)n);
    cr_assert_geq(figure(fig, "rag_recall@5"), figure(fig, "rag_recall@1"));
    cr_assert_gt(figure(fig, "rag_recall@10"), 0);
    report_free(lines, n);
    bson_destroy(fig);
    free(p);
}

/* An empty endpoint (an unset ${env.X:-}) is no judge: the default metrics run without it. */
Test(evaluate_judge, an_empty_endpoint_is_no_judge) {
    char *p = pipeline("metrics: [], judge: {endpoint: '', model: gpt-4o-mini}", NULL);
    expect_success(RUN_PIPELINE(p));
    bson_t *fig = figures();
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, fig, "rouge_l"), "the text metrics ran");
    cr_assert_not(bson_iter_init_find(&it, fig, "judge_accuracy"), "no judge");
    cr_assert_not(bson_iter_init_find(&it, fig, "rag_examples"), "no index, no rag");
    bson_destroy(fig);
    free(p);
}
