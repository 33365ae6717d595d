/* test_train.c - the train and train_tokenizer steps and `sluice model`
 * end to end with the real binary, on the demo datasets with tiny models:
 * pretrain then info/score/generate, SFT and DPO, determinism, kill -9 then
 * resume from a checkpoint, NaN, the memory refusal and bad input. */
#include <dirent.h>
#include <glob.h>
#include <math.h>
#include <signal.h>

#include "runner.h"

#define DATA SLUICE_SOURCE_DIR "/pipelines/demo/datasets"

TestSuite(train, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* A pipeline: the demo documents, a tokenizer, and a train step on
 * dataset_file (a path) with the given `with` entries (YAML flow). */
static char *train_pipeline(const char *dataset_file, const char *with) {
    char text[4096];
    snprintf(
        text, sizeof(text),
        "version: 1\npipeline: t\n"
        "steps:\n"
        "  docs: {uses: shell, with: {run: 'cp " DATA "/documents.jsonl \"$SLUICE_OUTPUT_c\"', "
        "outputs: {c: c.jsonl}}}\n"
        "  data: {uses: shell, with: {run: 'cp %s \"$SLUICE_OUTPUT_d\"', outputs: {d: d.jsonl}}}\n"
        "  tok: {uses: train_tokenizer, inputs: {chunks: docs.c}, with: {vocab_size: 320}}\n"
        "  pre:\n"
        "    uses: train\n"
        "    inputs: {dataset: data.d, tokenizer: tok.tokenizer}\n"
        "    with: {d_model: 32, n_layers: 1, n_heads: 2, context: 64, max_seq_len: 64, "
        "batch_size: 4, %s}\n",
        dataset_file, with);
    return write_test_file(test_dir, "p.yaml", text);
}

/* The step log of step in the last run. */
static char *step_log(const char *step) {
    char path[512];
    snprintf(path, sizeof(path), "%s/store/runs/%s/steps/%s.log", test_dir, last_run, step);
    char *log = slurp(path);
    cr_assert_not_null(log, "%s", path);
    return log;
}

/* The values of "metric KEY = V (at N)" lines of a log, in order. */
static size_t metrics(const char *log, const char *key, double *v, long *at, size_t max) {
    char needle[64];
    snprintf(needle, sizeof(needle), "metric %s = ", key);
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, needle)) && n < max; p += strlen(needle)) {
        v[n] = strtod(p + strlen(needle), NULL);
        const char *a = strstr(p, "(at ");
        at[n++] = a ? strtol(a + 4, NULL, 10) : -1;
    }
    return n;
}

static char *model_path(char *spec) {
    static char path[1024];
    result r = RUN(test_store_arg, "artifacts", "path", spec);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    snprintf(path, sizeof(path), "%s/model.safetensors", r.out);
    result_free(&r);
    return path;
}

Test(train, pretrain_from_scratch_then_model_info_score_generate) {
    result r = RUN_PIPELINE(train_pipeline(
        DATA "/documents.jsonl",
        "method: pretrain, max_steps: 12, checkpoint_every: 5, learning_rate: 3.0e-3"));
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    char *log = step_log("pre");
    double v[64];
    long at[64];
    size_t n = metrics(log, "loss", v, at, 64);
    cr_expect_eq(n, 12, "%s", log);
    cr_expect_lt(v[n - 1], v[0], "the loss falls: %s", log);
    cr_expect_eq(at[n - 1], 12);
    cr_expect_eq(count(log, "metric lr = "), 12);
    cr_expect_eq(count(log, "metric grad_norm = "), 12);
    cr_expect_eq(count(log, "metric tokens_per_s = "), 12);
    cr_expect_eq(count(log, "checkpoint at step "), 2, "%s", log);
    cr_expect_null(strstr(log, "does not declare"), "unconnected optional inputs: %s", log);
    free(log);

    char spec[64];
    snprintf(spec, sizeof(spec), "%s:pre.model", last_run);
    r = RUN(test_store_arg, "model", "info", spec);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "architecture  gpt2 (1 layers, d_model 32") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "context       64") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "(320 tokens)") != NULL, "%s", r.out);
    result_free(&r);
    char *text = write_test_file(test_dir, "t.txt",
                                 "A content-addressed store names a file by "
                                 "the hash of its bytes, so data pipelines "
                                 "can skip what they already made.\n");
    r = RUN(test_store_arg, "model", "score", spec, text, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    double loss = NAN, ppl = NAN;
    const char *l = strstr(r.out, "\"loss\": "), *p = strstr(r.out, "\"perplexity\": ");
    cr_assert(l && p && strstr(r.out, "{\"tokens\": "), "%s", r.out);
    loss = strtod(l + 8, NULL);
    ppl = strtod(p + 14, NULL);
    cr_expect(loss > 0 && loss < 7, "%s", r.out);
    cr_expect_float_eq(ppl, exp(loss), 1e-3 * ppl, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "model", "generate", spec, "A pipeline", "--max-tokens", "8",
            "--temperature", "0");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_gt(strlen(r.out), 1, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "model", "info", "no-such-model");
    cr_expect_eq(r.status, 2, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "model", "score", spec);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "score takes DIR FILE") != NULL, "%s", r.err);
    result_free(&r);
}

Test(train, sft_then_dpo_loss_falls_and_dpo_reports_trls_metrics) {
    char text[4096];
    snprintf(
        text, sizeof(text),
        "version: 1\npipeline: t\n"
        "steps:\n"
        "  docs: {uses: shell, with: {run: 'cp " DATA "/documents.jsonl \"$SLUICE_OUTPUT_c\"', "
        "outputs: {c: c.jsonl}}}\n"
        "  ins: {uses: shell, with: {run: 'cp " DATA "/instruction.jsonl \"$SLUICE_OUTPUT_d\"', "
        "outputs: {d: d.jsonl}}}\n"
        "  prf: {uses: shell, with: {run: 'cp " DATA "/preference.jsonl \"$SLUICE_OUTPUT_d\"', "
        "outputs: {d: d.jsonl}}}\n"
        "  tok: {uses: train_tokenizer, inputs: {chunks: docs.c}, with: {vocab_size: 320}}\n"
        "  sft:\n"
        "    uses: train\n"
        "    inputs: {dataset: ins.d, tokenizer: tok.tokenizer}\n"
        "    with: {method: sft, d_model: 32, n_layers: 1, n_heads: 2, context: 128, "
        "max_seq_len: 128, batch_size: 4, packing: false, epochs: 6, warmup_steps: 2, "
        "learning_rate: 3.0e-3, eval_every: 6}\n"
        "  dpo:\n"
        "    uses: train\n"
        "    inputs: {dataset: prf.d, model: sft.model}\n"
        "    with: {method: dpo, max_seq_len: 128, batch_size: 2, epochs: 3, "
        "warmup_steps: 0, learning_rate: 1.0e-3, checkpoint_every: 4}\n");
    result r = RUN_PIPELINE(write_test_file(test_dir, "p.yaml", text));
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    double v[64];
    long at[64];
    char *log = step_log("sft");
    size_t n = metrics(log, "loss", v, at, 64);
    cr_expect_geq(n, 6, "%s", log);
    cr_expect_lt(v[n - 1], v[0], "%s", log);
    cr_expect_eq(metrics(log, "eval_loss", v, at, 64), n / 6, "%s", log);
    free(log);
    log = step_log("dpo");
    n = metrics(log, "loss", v, at, 64);
    cr_expect_eq(n, 15, "%s", log); /* 10 pairs, 5 batches x 3 epochs */
    cr_expect_float_eq(v[0], 0.69314718, 1e-4, "policy = reference at the start: %s", log);
    cr_expect_lt(v[n - 1], v[0], "%s", log);
    cr_expect_eq(count(log, "metric rewards/chosen = "), 15);
    cr_expect_eq(count(log, "metric rewards/rejected = "), 15);
    cr_expect_eq(count(log, "metric rewards/accuracies = "), 15);
    cr_expect_eq(count(log, "metric rewards/margins = "), 15);
    /* the reference's log-probabilities, once for all epochs */
    cr_expect_eq(count(log, "reference log-probabilities: computed for 10 pairs"), 1, "%s", log);
    cr_expect_eq(count(log, "reference log-probabilities: read"), 0, "%s", log);
    free(log);
}

Test(train, the_same_inputs_seed_and_threads_give_the_same_bytes) {
    char *p = train_pipeline(DATA "/documents.jsonl",
                             "method: pretrain, max_steps: 6, learning_rate: 3.0e-3");
    char first[1024];
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    char spec[64];
    snprintf(spec, sizeof(spec), "%s:pre.model", last_run);
    snprintf(first, sizeof(first), "%s", model_path(spec));
    /* again in another store: nothing cached, everything recomputed */
    snprintf(test_store_arg + strlen(test_store_arg), 16, "2");
    r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    snprintf(spec, sizeof(spec), "%s:pre.model", last_run);
    char cmd[2200];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", first, model_path(spec));
    cr_expect_eq(system(cmd), 0, "model.safetensors differs between two runs: %s", cmd);
}

/* A checkpoint folder under STORE/checkpoints/train, or NULL. */
static int find_checkpoint(char *out, size_t size) {
    char pattern[256];
    snprintf(pattern, sizeof(pattern), "%s/store/checkpoints/train/*/checkpoint-*", test_dir);
    glob_t g;
    int found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    if (found)
        snprintf(out, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    return found;
}

Test(train, kill_9_during_training_then_resume_continues_from_the_checkpoint) {
    char *p = train_pipeline(DATA "/documents.jsonl",
                             "method: pretrain, epochs: 1000, max_steps: 400, checkpoint_every: 3, "
                             "keep_checkpoints: 1, learning_rate: 3.0e-3");
    pid_t pid = start_sluice_run(p);
    char ck[512];
    int found = 0;
    for (int i = 0; i < 2000 && !found; i++) {
        found = find_checkpoint(ck, sizeof(ck));
        if (!found)
            nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    cr_assert(found, "no checkpoint appeared");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char runs[256], crashed[64] = "";
    snprintf(runs, sizeof(runs), "%s/store/runs", test_dir);
    DIR *d = opendir(runs);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.')
            snprintf(crashed, sizeof(crashed), "%s", e->d_name);
    if (d)
        closedir(d);
    cr_assert_neq(crashed[0], '\0');
    result r =
        run_pipeline((char *[]){"sluice", test_store_arg, "resume", "--json", crashed, NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    char *log = step_log("pre");
    const char *at = strstr(log, "resuming from the checkpoint at step ");
    cr_assert_not_null(at, "%s", log);
    long from = strtol(at + strlen("resuming from the checkpoint at step "), NULL, 10);
    cr_expect(from > 0 && from % 3 == 0, "%s", log);
    double v[512];
    long idx[512];
    size_t n = metrics(log, "loss", v, idx, 512);
    cr_assert_gt(n, 0);
    cr_expect_eq(idx[0], from + 1, "the step count continues: %s", log);
    cr_expect_eq(idx[n - 1], 400);
    cr_expect_eq(n, (size_t)(400 - from));
    free(log);
    cr_expect_not(find_checkpoint(ck, sizeof(ck)), "checkpoints removed once the model is written");
}

Test(train, a_nan_loss_stops_with_a_message_and_keeps_the_checkpoint) {
    result r = RUN_PIPELINE(train_pipeline(DATA "/documents.jsonl",
                                           "method: pretrain, max_steps: 50, warmup_steps: 0, "
                                           "learning_rate: 1e30, max_grad_norm: 0, "
                                           "checkpoint_every: 1"));
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.out, "training stopped; the last good checkpoint stays in") != NULL, "%s",
              r.out);
    result_free(&r);
    char ck[512];
    cr_expect(find_checkpoint(ck, sizeof(ck)), "the last good checkpoint is kept");
}

Test(train, refuses_what_it_cannot_do) {
    static const struct {
        const char *data, *with, *message;
    } cases[] = {
        {DATA "/documents.jsonl", "method: pretrain, max_memory_mb: 1", "training needs about "},
        {DATA "/documents.jsonl", "method: rlhf", "method 'rlhf': use pretrain, sft or dpo"},
        {DATA "/documents.jsonl", "method: lora", "LoRA is not built yet"},
        {"/dev/null", "method: pretrain", "input 'dataset'"},
        {DATA "/documents.jsonl", "method: sft", "input 'dataset'"}, /* no instruction field */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        result r = RUN_PIPELINE(train_pipeline(cases[i].data, cases[i].with));
        cr_expect_eq(r.status, 1, "%s", cases[i].with);
        cr_expect(strstr(r.out, cases[i].message) != NULL, "%s: %s", cases[i].with, r.out);
        result_free(&r);
    }
}
