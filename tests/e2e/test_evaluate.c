/* test_evaluate.c - the evaluate step's model mode with the real binary: a
 * tiny model the train step makes from the demo data, evaluated on the demo
 * instruction dataset's test split; its perplexity against a PyTorch
 * reference (tests/ref/perplexity_ref.py), the report's rows, the gate
 * that stops the step after it, bad input refused. */
#include <bson/bson.h>
#include <math.h>
#include <sys/stat.h>

#include "require.h"
#include "runner.h"
#include "tiny_model.h"

#define DATA DEMO_DATA
#define PYTHON "/usr/bin/python3"

TestSuite(evaluate, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* The demo documents -> a tokenizer -> a tiny GPT-2 pretrained, then SFT on
 * dataset (a path) -> evaluate with the given `with` entries (YAML flow),
 * and a deploy step after it that leaves a marker in the test folder. */
static char *eval_pipeline(const char *dataset, const char *with) {
    char text[4096];
    snprintf(
        text, sizeof(text),
        "version: 1\npipeline: e\n"
        "steps:\n" TINY_DOCS_STEP
        "  data: {uses: shell, with: {run: 'cp %s \"$SLUICE_OUTPUT_d\"', outputs: {d: "
        "d.jsonl}}}\n" TINY_TOKENIZER_STEP(
            320) "  pre:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: docs.c, tokenizer: tok.tokenizer}\n"
                 "    with: {method: pretrain, d_model: 32, n_layers: 1, n_heads: 2, context: "
                 "256,\n"
                 "           max_seq_len: 256, batch_size: 4, epochs: 1, seed: 1}\n"
                 "  sft:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: data.d, model: pre.model}\n"
                 "    with: {method: sft, max_seq_len: 256, batch_size: 4, epochs: 3, seed: 1,\n"
                 "           learning_rate: 3.0e-3}\n"
                 "  evaluate:\n"
                 "    uses: evaluate\n"
                 "    inputs: {model: sft.model, dataset: data.d}\n"
                 "    with: {max_new_tokens: 24, %s}\n"
                 "  deploy:\n"
                 "    uses: shell\n"
                 "    inputs: {metrics: evaluate.metrics}\n"
                 "    with: {run: 'touch @/deployed'}\n"
                 "    cache: false\n",
        dataset, with);
    return write_test_file(test_dir, "p.yaml", text);
}

/* The test examples of the JSON Lines dataset at path. */
static size_t test_split_size(const char *path) {
    char *text = slurp(path);
    cr_assert_not_null(text, "%s", path);
    size_t n = count(text, "\"split\": \"test\"");
    free(text);
    return n;
}

static int deployed(void) {
    char path[128];
    snprintf(path, sizeof(path), "%s/deployed", test_dir);
    return access(path, F_OK) == 0;
}

static double field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it), "no %s", key);
    return bson_iter_as_double(&it);
}

Test(evaluate, model_mode_reports_each_test_example_and_the_perplexity_torch_computes) {
    expect_success(RUN_PIPELINE(eval_pipeline(DATA "/instruction.jsonl", "seed: 7")));
    cr_assert(deployed(), "the gate had no threshold: deploy ran");
    size_t n_test = test_split_size(DATA "/instruction.jsonl");
    cr_assert_gt(n_test, 0);

    /* one report line per test example, each with its answer and scores */
    char *report = last_output("report");
    cr_expect_eq(count(report, "\n"), n_test, "%s", report);
    cr_expect_eq(count(report, "\"instruction\" : "), n_test);
    cr_expect_eq(count(report, "\"answer\" : "), n_test);
    cr_expect_eq(count(report, "\"rouge_l\" : "), n_test);
    cr_expect_eq(count(report, "\"bleu\" : "), n_test);
    cr_expect_eq(count(report, "\"perplexity\" : "), n_test);
    free(report);

    char *metrics = last_output("metrics");
    bson_error_t err;
    bson_t *m = bson_new_from_json((const uint8_t *)metrics, -1, &err);
    cr_assert_not_null(m, "%s: %s", err.message, metrics);
    cr_expect_eq(field(m, "examples"), (double)n_test);
    double rouge = field(m, "rouge_l"), bleu = field(m, "bleu"), em = field(m, "exact_match");
    cr_expect(rouge >= 0 && rouge <= 1, "rouge_l %g", rouge);
    cr_expect(bleu >= 0 && bleu <= 100, "bleu %g", bleu);
    cr_expect(em >= 0 && em <= 1, "exact_match %g", em);
    cr_expect_gt(field(m, "answer_words_mean"), 0);
    cr_expect_gt(field(m, "reference_words_mean"), 0);
    double ppl = field(m, "perplexity");

    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import torch, regex' 2>/dev/null") != 0) {
        bson_destroy(m);
        free(metrics);
        SKIP_UNLESS_REQUIRED(PYTHON " with torch and regex is needed for the reference");
    }
    char folder[1024], spec[128], cmd[2048];
    snprintf(spec, sizeof(spec), "%s:sft.model", last_run);
    output_folder(spec, folder, sizeof(folder));
    snprintf(cmd, sizeof(cmd), PYTHON " " SLUICE_SOURCE_DIR "/tests/ref/perplexity_ref.py %s %s",
             folder, DATA "/instruction.jsonl");
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[8192];
    size_t len = fread(out, 1, sizeof(out) - 1, p);
    out[len] = '\0';
    cr_assert_eq(pclose(p), 0, "the reference failed: %s", out);
    bson_t *ref = bson_new_from_json((const uint8_t *)out, -1, &err);
    cr_assert_not_null(ref, "%s: %s", err.message, out);
    double want = field(ref, "perplexity");
    cr_expect(fabs(ppl - want) <= 1e-6 * want, "perplexity %.9f, torch %.9f", ppl, want);
    cr_expect_gt(ppl, 1.0);
    bson_destroy(ref);
    bson_destroy(m);
    free(metrics);
}

Test(evaluate, a_threshold_not_met_fails_the_step_and_the_step_after_does_not_run) {
    /* met: deploy runs */
    expect_success(RUN_PIPELINE(eval_pipeline(
        DATA "/instruction.jsonl", "metrics: [perplexity], thresholds: {perplexity: {max: 1e9}}")));
    cr_assert(deployed());
    char path[128];
    snprintf(path, sizeof(path), "%s/deployed", test_dir);
    cr_assert_eq(unlink(path), 0);
    /* not met (no model has perplexity 1.0): evaluate fails, deploy is skipped */
    result r = RUN_PIPELINE(eval_pipeline(
        DATA "/instruction.jsonl", "metrics: [perplexity], thresholds: {perplexity: {max: 1.0}}"));
    cr_expect_eq(r.status, 1, "%s\n%s", r.out, r.err);
    cr_expect_not_null(strstr(r.out, "above the threshold 1"), "%s", r.out);
    cr_expect(!deployed(), "the step after a failed gate ran");
    cr_expect_geq(count(r.out, "\"status\" : \"skipped\""), 1, "%s", r.out);
    result_free(&r);
    /* a minimum: rouge_l cannot reach 2 */
    r = RUN_PIPELINE(eval_pipeline(DATA "/instruction.jsonl",
                                   "metrics: [rouge_l], thresholds: {rouge_l: {min: 2}}"));
    cr_expect_eq(r.status, 1, "%s\n%s", r.out, r.err);
    cr_expect_not_null(strstr(r.out, "below the threshold 2"), "%s", r.out);
    cr_expect(!deployed());
    result_free(&r);
}

Test(evaluate, bad_input_is_refused_naming_what_is_wrong) {
    /* a dataset without a test split */
    char *train_only = write_test_file(
        test_dir, "train_only.jsonl",
        "{\"instruction\": \"What is a DAG?\", \"answer\": \"A graph without cycles.\"}\n"
        "{\"instruction\": \"What is a step?\", \"answer\": \"One task of a pipeline.\"}\n");
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", train_only);
    result r = RUN_PIPELINE(eval_pipeline(copy, "seed: 1"));
    cr_expect_eq(r.status, 1);
    cr_expect_not_null(strstr(r.out, "test"), "%s", r.out);
    cr_expect(!deployed());
    result_free(&r);
    /* a metric of another mode, a threshold on a figure it does not have */
    r = RUN_PIPELINE(eval_pipeline(DATA "/instruction.jsonl", "metrics: [recall]"));
    cr_expect_eq(r.status, 1);
    cr_expect_not_null(strstr(r.out, "'recall' is not a model metric"), "%s", r.out);
    result_free(&r);
    r = RUN_PIPELINE(eval_pipeline(DATA "/instruction.jsonl",
                                   "metrics: [perplexity], thresholds: {bleu: {min: 1}}"));
    cr_expect_eq(r.status, 1);
    cr_expect_not_null(strstr(r.out, "'bleu' is not a figure of this evaluation"), "%s", r.out);
    cr_expect(!deployed());
    result_free(&r);
}

/* pipelines/evaluating.yaml as shipped: offline, on the demo data, with its
 * embedded defaults. */
Test(evaluate, the_shipped_evaluating_pipeline_runs_on_the_demo_data) {
    expect_success(RUN_PIPELINE(SLUICE_SOURCE_DIR "/pipelines/evaluating.yaml"));
    char *report = last_output("report");
    cr_expect_eq(count(report, "\"answer\" : "), test_split_size(DATA "/instruction.jsonl"), "%s",
                 report);
    free(report);
    char *metrics = last_output("metrics");
    cr_expect_not_null(strstr(metrics, "\"perplexity\" : "), "%s", metrics);
    cr_expect_not_null(strstr(metrics, "\"rouge_l\" : "), "%s", metrics);
    cr_expect_not_null(strstr(metrics, "\"bleu\" : "), "%s", metrics);
    free(metrics);
    /* The registry: the SFT model (version 2, after the pretrained one) carries the figures the
     * evaluate step measured on it, and a gate on them promotes it or refuses it. */
    result r = RUN(test_store_arg, "models", "show", "evaluating@2", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_not_null(strstr(r.out, "\"step\" : \"sft\""), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "\"perplexity\" : "), "%s", r.out);
    cr_expect_not_null(strstr(r.out, "/evaluate\""), "%s", r.out);
    result_free(&r);
    expect_success(RUN(test_store_arg, "models", "promote", "evaluating@2", "production", "--if",
                       "perplexity<=1e9"));
    r = RUN(test_store_arg, "models", "promote", "evaluating@2", "staging", "--if",
            "perplexity<=1");
    expect_refused(r, 1, "perplexity");
    /* NAME@ALIAS and NAME@VERSION name the model artifact wherever an artifact id is taken. */
    result by_alias =
               RUN(test_store_arg, "artifacts", "path", "--type", "model", "evaluating@production"),
           by_step = RUN(test_store_arg, "artifacts", "path", "--type", "model", "sft");
    cr_assert_eq(by_alias.status, 0, "%s", by_alias.err);
    cr_assert_eq(by_step.status, 0, "%s", by_step.err);
    cr_expect_str_eq(by_alias.out, by_step.out);
    result_free(&by_alias);
    result_free(&by_step);
    expect_success(RUN(test_store_arg, "model", "info", "evaluating@production"));
    r = RUN(test_store_arg, "artifacts", "show", "evaluating@9");
    expect_refused(r, 2, "model evaluating has no version 9");
    r = RUN(test_store_arg, "artifacts", "show", "evaluating@staging");
    expect_refused(r, 2, "has no alias 'staging'");
}
