/* test_train.c - the train and train_tokenizer steps and `sluice model`
 * end to end with the real binary, on the demo datasets with tiny models:
 * pretrain then info/score/generate, SFT and DPO, determinism, kill -9 then
 * resume from a checkpoint, NaN, the memory refusal and bad input. */
#include <dirent.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>

#include "require.h"
#include "runner.h"
#include "tiny_model.h"

#define DATA DEMO_DATA

TestSuite(train, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* A pipeline: the demo documents, a tokenizer, and a train step on
 * dataset_file (a path) with the given `with` entries (YAML flow). */
static char *train_pipeline(const char *dataset_file, const char *with) {
    char text[4096];
    snprintf(
        text, sizeof(text),
        "version: 1\npipeline: t\n"
        "steps:\n" TINY_DOCS_STEP
        "  data: {uses: shell, with: {run: 'cp %s \"$SLUICE_OUTPUT_d\"', outputs: {d: "
        "d.jsonl}}}\n" TINY_TOKENIZER_STEP(
            320) "  pre:\n"
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
    char dir[900];
    output_folder(spec, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    return path;
}

Test(train, pretrain_from_scratch_then_model_info_score_generate) {
    expect_success(RUN_PIPELINE(train_pipeline(
        DATA "/documents.jsonl",
        "method: pretrain, max_steps: 12, checkpoint_every: 5, learning_rate: 3.0e-3")));
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
    result r = RUN(test_store_arg, "model", "info", spec);
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
    expect_refused(r, 2, "score takes DIR FILE");
}

/* A pipeline: the demo documents, instructions and preferences (steps
 * docs, ins, prf), a tokenizer (tok), a tiny GPT-2 trained by SFT from
 * scratch (sft, with sft_with added to its `with`), and the steps more
 * (YAML, which may use ins.d, prf.d and sft.model). */
static char *sft_pipeline(const char *sft_with, const char *more) {
    char text[8192];
    snprintf(text, sizeof(text),
             "version: 1\npipeline: t\n"
             "steps:\n" TINY_DOCS_STEP "  ins: {uses: shell, with: {run: 'cp " DATA
             "/instruction.jsonl \"$SLUICE_OUTPUT_d\"', "
             "outputs: {d: d.jsonl}}}\n"
             "  prf: {uses: shell, with: {run: 'cp " DATA
             "/preference.jsonl \"$SLUICE_OUTPUT_d\"', "
             "outputs: {d: d.jsonl}}}\n" TINY_TOKENIZER_STEP(
                 320) "  sft:\n"
                      "    uses: train\n"
                      "    inputs: {dataset: ins.d, tokenizer: tok.tokenizer}\n"
                      "    with: {method: sft, d_model: 32, n_layers: 1, n_heads: 2, context: 128, "
                      "max_seq_len: 128, batch_size: 4, packing: false, warmup_steps: 2, "
                      "learning_rate: 3.0e-3, %s}\n"
                      "%s",
             sft_with, more);
    return write_test_file(test_dir, "p.yaml", text);
}

Test(train, sft_then_dpo_loss_falls_and_dpo_reports_trls_metrics) {
    char *p = sft_pipeline("epochs: 6, eval_every: 6",
                           "  dpo:\n"
                           "    uses: train\n"
                           "    inputs: {dataset: prf.d, model: sft.model}\n"
                           "    with: {method: dpo, max_seq_len: 128, batch_size: 2, epochs: 3, "
                           "warmup_steps: 0, learning_rate: 1.0e-3, checkpoint_every: 4}\n");
    expect_success(RUN_PIPELINE(p));
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

/* ---- dpo: the reference's log-probabilities as an artifact --------------- */

#define DPO_WITH                                                                                   \
    "method: dpo, max_seq_len: 128, batch_size: 2, epochs: 2, warmup_steps: 0, "                   \
    "learning_rate: 1.0e-3, checkpoint_every: 0"

/* The rows of a reference artifact (the text of the file): the sums and
 * token counts of each pair, in order; asserts each line's layout. */
static size_t reference_rows(const char *text, double *chosen, double *rejected, long *tokens,
                             size_t max) {
    size_t n = 0;
    for (const char *line = text; *line && n < max; n++) {
        long index = -1;
        int used = -1;
        sscanf(line,
               "{\"index\": %ld, \"chosen\": %lf, \"rejected\": %lf, \"chosen_tokens\": %ld, "
               "\"rejected_tokens\": %ld}%n",
               &index, &chosen[n], &rejected[n], &tokens[2 * n], &tokens[2 * n + 1], &used);
        cr_assert_gt(used, 0, "row %zu: %.200s", n + 1, line);
        cr_expect_eq(index, (long)n, "%.200s", line);
        cr_expect(chosen[n] < 0 && rejected[n] < 0, "%.200s", line);
        cr_expect(tokens[2 * n] > 0 && tokens[2 * n + 1] > 0, "%.200s", line);
        const char *end = strchr(line, '\n');
        cr_assert_not_null(end, "a row ends with a line feed");
        line = end + 1;
    }
    return n;
}

/* The text of output spec (RUN:STEP.OUTPUT), a file. */
static char *output_text(const char *spec) {
    char path[1024];
    output_folder(spec, path, sizeof(path));
    char *text = slurp(path);
    cr_assert_not_null(text, "%s", path);
    return text;
}

Test(train, dpo_steps_share_one_reference_pass_through_the_reference_artifact) {
    char *p =
        sft_pipeline("epochs: 2, checkpoint_every: 0",
                     "  dpo:\n"
                     "    uses: train\n"
                     "    inputs: {dataset: prf.d, model: sft.model}\n"
                     "    with: {" DPO_WITH "}\n"
                     "  shared:\n"
                     "    uses: train\n"
                     "    inputs: {dataset: prf.d, model: sft.model, reference: dpo.reference}\n"
                     "    with: {" DPO_WITH ", beta: 0.5}\n"
                     "  own:\n"
                     "    uses: train\n"
                     "    inputs: {dataset: prf.d, model: sft.model}\n"
                     "    with: {" DPO_WITH ", beta: 0.5}\n");
    expect_success(RUN_PIPELINE(p));
    char *log = step_log("dpo");
    cr_expect_eq(count(log, "reference log-probabilities: computed for 10 pairs"), 1, "%s", log);
    free(log);
    log = step_log("shared");
    cr_expect_eq(count(log, "reference log-probabilities: read for 10 pairs from input "
                            "'reference'"),
                 1, "%s", log);
    cr_expect_eq(count(log, "computed"), 0, "the reference model ran: %s", log);
    double v[64];
    long at[64];
    cr_assert_gt(metrics(log, "loss", v, at, 64), 0, "%s", log);
    cr_expect_float_eq(v[0], 0.69314718, 1e-4, "policy = reference at the start: %s", log);
    free(log);
    log = step_log("own");
    cr_expect_eq(count(log, "reference log-probabilities: computed for 10 pairs"), 1, "%s", log);
    free(log);

    /* beta 0.5 on the shared pass trains the model its own pass does */
    char spec[64], shared[1024], own[1024], cmd[2200];
    snprintf(spec, sizeof(spec), "%s:shared.model", last_run);
    snprintf(shared, sizeof(shared), "%s", model_path(spec));
    snprintf(spec, sizeof(spec), "%s:own.model", last_run);
    snprintf(own, sizeof(own), "%s", model_path(spec));
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", shared, own);
    cr_expect_eq(system(cmd), 0, "the shared reference trains another model: %s", cmd);

    /* the same starting model: the same bytes from each step */
    char *text[3];
    const char *steps[3] = {"dpo", "shared", "own"};
    for (int i = 0; i < 3; i++) {
        snprintf(spec, sizeof(spec), "%s:%s.reference", last_run, steps[i]);
        text[i] = output_text(spec);
    }
    cr_expect_str_eq(text[1], text[0]);
    cr_expect_str_eq(text[2], text[0]);
    double chosen[16], rejected[16];
    long tokens[32];
    cr_expect_eq(reference_rows(text[0], chosen, rejected, tokens, 16), 10, "%s", text[0]);
    for (int i = 0; i < 3; i++)
        free(text[i]);
    /* other methods do not write it */
    snprintf(spec, sizeof(spec), "%s:sft.reference", last_run);
    result r = RUN(test_store_arg, "artifacts", "path", spec);
    cr_expect_neq(r.status, 0, "%s", r.out);
    result_free(&r);
}

Test(train, a_bad_reference_input_fails_naming_the_file_and_line) {
    /* a shell step spoils dpo.reference as each case says, into bad.r */
    static const struct {
        const char *edit, *message;
    } cases[] = {
        {"head -n 9", ": 9 rows for the dataset's 10 pairs"},
        {"sed '3s/.*/{not json/'", " line 3: not a JSON object"},
        {"sed '2s/\"chosen\": [^,]*/\"chosen\": \"x\"/'",
         " line 2: 'chosen' and 'rejected' must be finite numbers"},
        {"sed '4s/\"index\": 3/\"index\": 7/'",
         " line 4: 'index' is 7 where pair 4 of the dataset has 3"},
        {"sed '5s/\"rejected_tokens\": [0-9]*/\"rejected_tokens\": 1/'",
         " line 5: 'rejected_tokens' is 1 where pair 5 of the dataset has "},
        {"sed '1s/\"chosen_tokens\": [0-9]*, //'",
         " line 1: 'chosen_tokens' is missing or not a whole number >= 0"},
        {"sed '1s/\"chosen\": -/\"chosen\": -1/'", ": pair 1's chosen log-probability is -1"},
        /* a blank line first (skipped, yet counted), the last row twice */
        {"sed -e '1{h;s/.*//;p;g}' -e '$p'", " line 12: a row past the dataset's 10 pairs"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char more[2048];
        snprintf(more, sizeof(more),
                 "  dpo:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: prf.d, model: sft.model}\n"
                 "    with: {" DPO_WITH ", max_steps: 1}\n"
                 "  bad:\n"
                 "    uses: shell\n"
                 "    inputs: {r: dpo.reference}\n"
                 "    with:\n"
                 "      outputs: {r: r.jsonl}\n"
                 "      run: |\n"
                 "        %s \"$SLUICE_INPUT_r\" > \"$SLUICE_OUTPUT_r\"\n"
                 "  again:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: prf.d, model: sft.model, reference: bad.r}\n"
                 "    with: {" DPO_WITH ", max_steps: 1}\n",
                 cases[i].edit);
        result r = RUN_PIPELINE(sft_pipeline("epochs: 1, checkpoint_every: 0", more));
        cr_expect_eq(r.status, 1, "%s: %s", cases[i].edit, r.err);
        cr_expect(strstr(r.out, "input 'reference': ") != NULL, "%s: %s", cases[i].edit, r.out);
        cr_expect(strstr(r.out, cases[i].message) != NULL, "%s: %s", cases[i].edit, r.out);
        result_free(&r);
    }
    /* another method: refused */
    result r = RUN_PIPELINE(sft_pipeline("epochs: 1, checkpoint_every: 0",
                                         "  dpo:\n"
                                         "    uses: train\n"
                                         "    inputs: {dataset: prf.d, model: sft.model}\n"
                                         "    with: {" DPO_WITH ", max_steps: 1}\n"
                                         "  sft2:\n"
                                         "    uses: train\n"
                                         "    inputs: {dataset: ins.d, model: sft.model, "
                                         "reference: dpo.reference}\n"
                                         "    with: {method: sft, max_steps: 1}\n"));
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.out, "method sft does not use it") != NULL, "%s", r.out);
    result_free(&r);
}

Test(train, the_same_inputs_seed_and_threads_give_the_same_bytes) {
    char *p = train_pipeline(DATA "/documents.jsonl",
                             "method: pretrain, max_steps: 6, learning_rate: 3.0e-3");
    char first[1024];
    expect_success(RUN_PIPELINE(p));
    char spec[64];
    snprintf(spec, sizeof(spec), "%s:pre.model", last_run);
    snprintf(first, sizeof(first), "%s", model_path(spec));
    /* again in another store: nothing cached, everything recomputed */
    snprintf(test_store_arg + strlen(test_store_arg), 16, "2");
    expect_success(RUN_PIPELINE(p));
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

/* Runs pipeline p, kills it with SIGKILL once step's first checkpoint (every
 * 3 steps) is written, resumes it, and checks that step continued from the
 * checkpoint to its last step (400). */
static void kill_9_then_resume(const char *p, const char *step) {
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
    char *log = step_log(step);
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

Test(train, kill_9_during_training_then_resume_continues_from_the_checkpoint) {
    kill_9_then_resume(train_pipeline(DATA "/documents.jsonl",
                                      "method: pretrain, epochs: 1000, max_steps: 400, "
                                      "checkpoint_every: 3, keep_checkpoints: 1, "
                                      "learning_rate: 3.0e-3"),
                       "pre");
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
        {DATA "/documents.jsonl", "method: rlhf", "method 'rlhf': use pretrain, sft, lora or dpo"},
        {DATA "/documents.jsonl", "method: lora",
         "method lora adapts a pretrained model and there is none"},
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

/* ---- lora ----------------------------------------------------------------- */

/* The SFT'd base of the lora tests and the steps lora_steps. */
static char *lora_pipeline(const char *lora_steps) {
    return sft_pipeline("epochs: 2, checkpoint_every: 0", lora_steps);
}

#define LORA_WITH                                                                                  \
    "method: lora, max_seq_len: 128, batch_size: 4, packing: false, epochs: 6, "                   \
    "warmup_steps: 0, learning_rate: 1.0e-2, checkpoint_every: 4"

/* `sluice model score SPEC --json` of a fixed text: the loss. */
static double score(const char *spec) {
    char *text = write_test_file(test_dir, "t.txt",
                                 "Below is an instruction that describes a task. A pipeline "
                                 "stores data by the hash of its bytes.\n");
    result r = RUN(test_store_arg, "model", "score", (char *)spec, text, "--json");
    cr_assert_eq(r.status, 0, "%s: %s", spec, r.err);
    const char *l = strstr(r.out, "\"loss\": ");
    cr_assert_not_null(l, "%s", r.out);
    double loss = strtod(l + 8, NULL);
    result_free(&r);
    return loss;
}

Test(train, lora_trains_adapters_on_a_frozen_base_and_sluice_model_uses_them) {
    expect_success(RUN_PIPELINE(lora_pipeline("  lora:\n"
                                              "    uses: train\n"
                                              "    inputs: {dataset: ins.d, model: sft.model}\n"
                                              "    with: {" LORA_WITH "}\n"
                                              "  merged:\n"
                                              "    uses: train\n"
                                              "    inputs: {dataset: ins.d, model: sft.model}\n"
                                              "    with: {" LORA_WITH ", merge: true}\n"
                                              "  again:\n"
                                              "    uses: train\n"
                                              "    inputs: {dataset: ins.d, model: lora.model}\n"
                                              "    with: {method: sft, max_seq_len: 128, "
                                              "max_steps: 1, warmup_steps: 0, "
                                              "learning_rate: 1.0e-12}\n")));
    double v[64];
    long at[64];
    char *log = step_log("lora");
    size_t n = metrics(log, "loss", v, at, 64);
    cr_expect_eq(n, 12, "%s", log); /* 5 examples fit: 2 batches x 6 epochs */
    cr_expect_lt(v[n - 1], v[0], "the loss falls: %s", log);
    cr_expect_eq(count(log, "metric lr = "), n);
    cr_expect_eq(count(log, "metric grad_norm = "), n);
    cr_expect_eq(count(log, "metric tokens_per_s = "), n);
    /* one GPT-2 layer, d_model 32, r 8, all four linears: A (8, in) and
     * B (out, 8) for c_attn (32 -> 96), c_proj (32 -> 32), c_fc (32 -> 128)
     * and the MLP's c_proj (128 -> 32): 8 * (128 + 64 + 160 + 160) */
    cr_expect(strstr(log, "on 4 adapted layers: 4096 trainable parameters") != NULL, "%s", log);
    cr_expect_eq(count(log, "checkpoint at step "), 2, "%s", log);
    free(log);

    char spec[3][64], dir[3][1024], path[1200];
    const char *steps[3] = {"sft", "lora", "merged"};
    for (int i = 0; i < 3; i++) {
        snprintf(spec[i], sizeof(spec[i]), "%s:%s.model", last_run, steps[i]);
        output_folder(spec[i], dir[i], sizeof(dir[i]));
    }
    /* merge: false: the base's weights unchanged, PEFT's files naming it */
    char cmd[3000];
    snprintf(cmd, sizeof(cmd), "cmp -s '%s/model.safetensors' '%s/model.safetensors'", dir[0],
             dir[1]);
    cr_expect_eq(system(cmd), 0, "the base's tensors are not those of the base: %s", cmd);
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir[1]);
    char *conf = slurp(path);
    cr_assert_not_null(conf, "%s", path);
    cr_expect(strstr(conf, "\"peft_type\" : \"LORA\"") != NULL, "%s", conf);
    cr_expect(strstr(conf, "\"r\" : 8,") != NULL, "%s", conf);
    cr_expect(strstr(conf, "\"lora_alpha\" : 16") != NULL, "%s", conf);
    cr_expect(strstr(conf, dir[0]) != NULL, "base_model_name_or_path is the base: %s", conf);
    free(conf);
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir[1]);
    struct stat st;
    cr_expect_eq(stat(path, &st), 0, "%s", path);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir[1]);
    cr_expect_eq(stat(path, &st), 0, "%s", path);
    /* merge: true: a plain folder whose weights moved */
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir[2]);
    cr_expect_neq(stat(path, &st), 0, "%s", path);
    snprintf(cmd, sizeof(cmd), "cmp -s '%s/model.safetensors' '%s/model.safetensors'", dir[0],
             dir[2]);
    cr_expect_neq(system(cmd), 0, "merged weights equal the base's: %s", cmd);

    result r = RUN(test_store_arg, "model", "info", spec[1]);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "adapter       LoRA, r 8") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "model", "info", spec[2]);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "architecture  gpt2 (1 layers, d_model 32") != NULL, "%s", r.out);
    cr_expect_null(strstr(r.out, "adapter "), "%s", r.out);
    result_free(&r);
    /* The same training either way: the adapter applied by sluice model
     * scores as the merged weights do, and not as the base. */
    double base = score(spec[0]), adapted = score(spec[1]), merged = score(spec[2]);
    cr_expect_float_eq(adapted, merged, 1e-4, "adapter %f, merged %f", adapted, merged);
    cr_expect(fabs(adapted - base) > 1e-3, "the adapter changes nothing: %f, base %f", adapted,
              base);
    r = RUN(test_store_arg, "model", "generate", spec[1], "A pipeline", "--max-tokens", "8",
            "--temperature", "0");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_gt(strlen(r.out), 1, "%s", r.out);
    result_free(&r);
    /* A step starting from the adapter folder starts from the adapted
     * model: one step at a learning rate of 1e-12 leaves it where it was. */
    char again[64];
    snprintf(again, sizeof(again), "%s:again.model", last_run);
    double after = score(again);
    cr_expect_float_eq(after, merged, 1e-4, "from the adapter folder %f, merged %f", after, merged);
    log = step_log("again");
    cr_expect(strstr(log, "the LoRA adapter (r 8) in ") != NULL, "%s", log);
    free(log);
}

Test(train, lora_refuses_bad_parameters_naming_them) {
    result r = RUN_PIPELINE(lora_pipeline("  bad_module:\n"
                                          "    uses: train\n"
                                          "    inputs: {dataset: ins.d, model: sft.model}\n"
                                          "    with: {" LORA_WITH ", target_modules: [c_attn, q]}\n"
                                          "  bad_dropout:\n"
                                          "    uses: train\n"
                                          "    inputs: {dataset: ins.d, model: sft.model}\n"
                                          "    with: {" LORA_WITH ", dropout: 1.0}\n"));
    cr_expect_eq(r.status, 1, "%s", r.err);
    /* r.out is --json: the quotes come escaped */
    cr_expect(strstr(r.out, "target_modules: lora: unknown target module \\\"q\\\" for a gpt2 "
                            "model (known: c_attn, c_proj, c_fc)") != NULL,
              "%s", r.out);
    cr_expect(strstr(r.out, "dropout is 1: it must be from 0 to below 1") != NULL, "%s", r.out);
    result_free(&r);
}

Test(train, lora_kill_9_then_resume_continues_and_ends_as_an_unbroken_run) {
    char *p = lora_pipeline("  lora:\n"
                            "    uses: train\n"
                            "    inputs: {dataset: ins.d, model: sft.model}\n"
                            "    with: {method: lora, max_seq_len: 128, batch_size: 4, "
                            "packing: false, epochs: 1000, max_steps: 400, checkpoint_every: 3, "
                            "keep_checkpoints: 1, learning_rate: 1.0e-3, dropout: 0.1}\n");
    kill_9_then_resume(p, "lora");
    char spec[64], resumed[1200], cmd[2600];
    snprintf(spec, sizeof(spec), "%s:lora.model", last_run);
    output_folder(spec, resumed, sizeof(resumed));
    /* again in another store, not interrupted: the same adapter, so the
     * adapters, their AdamW state, the data position and the dropout
     * masks (drawn from the step count) all came back */
    snprintf(test_store_arg + strlen(test_store_arg), 16, "2");
    expect_success(RUN_PIPELINE(p));
    char whole[1200];
    snprintf(spec, sizeof(spec), "%s:lora.model", last_run);
    output_folder(spec, whole, sizeof(whole));
    snprintf(cmd, sizeof(cmd), "cmp '%s/adapter_model.safetensors' '%s/adapter_model.safetensors'",
             resumed, whole);
    cr_expect_eq(system(cmd), 0, "the resumed run's adapter differs: %s", cmd);
}

Test(train, dpo_kill_9_then_resume_reads_the_reference_and_ends_as_an_unbroken_run) {
    char *p = lora_pipeline("  dpo:\n"
                            "    uses: train\n"
                            "    inputs: {dataset: prf.d, model: sft.model}\n"
                            "    with: {method: dpo, max_seq_len: 128, batch_size: 2, "
                            "epochs: 1000, max_steps: 400, checkpoint_every: 3, "
                            "keep_checkpoints: 1, learning_rate: 1.0e-4}\n");
    kill_9_then_resume(p, "dpo");
    char *log = step_log("dpo");
    cr_expect_eq(count(log, "reference log-probabilities: read for 10 pairs from "), 1, "%s", log);
    cr_expect_eq(count(log, "computed"), 0, "the resumed step ran the reference model: %s", log);
    free(log);
    char spec[64], resumed[1200], whole[1200], cmd[2600];
    snprintf(spec, sizeof(spec), "%s:dpo.model", last_run);
    output_folder(spec, resumed, sizeof(resumed));
    snprintf(spec, sizeof(spec), "%s:dpo.reference", last_run);
    char *resumed_ref = output_text(spec);
    /* again in another store, not interrupted */
    snprintf(test_store_arg + strlen(test_store_arg), 16, "2");
    expect_success(RUN_PIPELINE(p));
    snprintf(spec, sizeof(spec), "%s:dpo.model", last_run);
    output_folder(spec, whole, sizeof(whole));
    snprintf(cmd, sizeof(cmd), "cmp '%s/model.safetensors' '%s/model.safetensors'", resumed, whole);
    cr_expect_eq(system(cmd), 0, "the resumed run's model differs: %s", cmd);
    snprintf(spec, sizeof(spec), "%s:dpo.reference", last_run);
    char *whole_ref = output_text(spec);
    cr_expect_str_eq(resumed_ref, whole_ref);
    free(resumed_ref);
    free(whole_ref);
}

/* ---- the reference against PyTorch ---------------------------------------- */

#define PYTHON "/usr/bin/python3"

Test(train, the_reference_log_probabilities_match_pytorch) {
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import torch, regex' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("skipped: the reference needs %s with torch and regex (Debian's "
                             "python3-torch, python3-regex)\n",
                             PYTHON);
    expect_success(RUN_PIPELINE(sft_pipeline("epochs: 2, checkpoint_every: 0",
                                             "  dpo:\n"
                                             "    uses: train\n"
                                             "    inputs: {dataset: prf.d, model: sft.model}\n"
                                             "    with: {" DPO_WITH ", max_steps: 1}\n")));
    char spec[64], model[1024], cmd[2400];
    snprintf(spec, sizeof(spec), "%s:sft.model", last_run);
    output_folder(spec, model, sizeof(model));
    snprintf(spec, sizeof(spec), "%s:dpo.reference", last_run);
    char *ours = output_text(spec);
    snprintf(cmd, sizeof(cmd),
             PYTHON " " SLUICE_SOURCE_DIR "/tests/ref/dpo_logps_ref.py '%s' " DATA
                    "/preference.jsonl 128 > '%s/torch.jsonl'",
             model, test_dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[256];
    snprintf(path, sizeof(path), "%s/torch.jsonl", test_dir);
    char *theirs = slurp(path);
    cr_assert_not_null(theirs, "%s", path);
    /* the Python rows come from json.dumps: the same keys, in the same order */
    double c[2][16], r[2][16];
    long tokens[2][32];
    size_t n = reference_rows(ours, c[0], r[0], tokens[0], 16);
    cr_assert_eq(n, 10, "%s", ours);
    cr_assert_eq(reference_rows(theirs, c[1], r[1], tokens[1], 16), n, "%s", theirs);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(tokens[0][2 * i], tokens[1][2 * i], "pair %zu chosen tokens", i + 1);
        cr_expect_eq(tokens[0][2 * i + 1], tokens[1][2 * i + 1], "pair %zu rejected tokens", i + 1);
        cr_expect_float_eq(c[0][i], c[1][i], 1e-6 * fabs(c[1][i]),
                           "pair %zu chosen: %.9g, torch %.9g", i + 1, c[0][i], c[1][i]);
        cr_expect_float_eq(r[0][i], r[1][i], 1e-6 * fabs(r[1][i]),
                           "pair %zu rejected: %.9g, torch %.9g", i + 1, r[0][i], r[1][i]);
    }
    free(ours);
    free(theirs);
}
