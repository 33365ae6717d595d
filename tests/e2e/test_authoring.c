/* End-to-end tests of pipeline authoring with the real binary: params
 * files (params_file, --params, -p @FILE) and where each value came from,
 * nested parameters and join(), .env files, and 'when' conditions; and
 * each bad form refused with FILE:LINE:COL. */
#include "runner.h"

TestSuite(authoring, .init = test_dir_setup, .fini = test_dir_teardown);

static char pipeline_path[512];

/* Writes the pipeline (every "@" the test folder) and keeps its path. */
static void write_pipeline(const char *text) {
    snprintf(pipeline_path, sizeof(pipeline_path), "%s", write_test_file(test_dir, "p.yaml", text));
}

/* The text of the object the run's step output names: "  STEP.OUT: PATH". */
static char *output_of(const char *out, const char *step_output) {
    char needle[128];
    snprintf(needle, sizeof(needle), "  %s: ", step_output);
    const char *at = strstr(out, needle);
    cr_assert_not_null(at, "no output %s in %s", step_output, out);
    at += strlen(needle);
    char path[1024];
    snprintf(path, sizeof(path), "%.*s", (int)strcspn(at, "\n"), at);
    char *text = slurp(path);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

static const char params_pipeline[] = "pipeline: pf\n"
                                      "params_file: params.yaml\n"
                                      "params:\n"
                                      "  greeting: hello\n"
                                      "  n: 3\n"
                                      "  train: {lr: 0.1, epochs: 2}\n"
                                      "steps:\n"
                                      "  a:\n"
                                      "    uses: shell\n"
                                      "    with:\n"
                                      "      run: echo ${params.greeting} ${params.n} "
                                      "${params.train.lr} ${params.train.epochs} > "
                                      "\"$SLUICE_OUTPUT_o\"\n"
                                      "      outputs: {o: o.txt}\n";

Test(authoring, params_files_later_wins_and_origins) {
    write_pipeline(params_pipeline);
    write_test_file(test_dir, "params.yaml", "greeting: hi\ntrain: {lr: 0.5}\n");
    write_test_file(test_dir, "one.yaml", "n: 5\ngreeting: one\n");
    char *two = strdup(write_test_file(test_dir, "two.yaml", "# the later file\nn: 7\n"));
    char one[600];
    snprintf(one, sizeof(one), "%s/one.yaml", test_dir);
    result r = RUN(test_store_arg, "run", pipeline_path, "--params", one, "--params", two);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *text = output_of(r.out, "a.o");
    cr_expect_str_eq(text, "one 7 0.5 2\n");
    free(text);
    result_free(&r);

    r = RUN(test_store_arg, "runs", "show", "latest");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "param greeting = \"one\"  (--params "), "%s", r.out);
    cr_expect(strstr(r.out, "two.yaml:2)"), "%s", r.out);
    cr_expect(strstr(r.out, "(params_file params.yaml:2)"), "%s", r.out);
    result_free(&r);

    /* -p wins over every file, whatever the order; -p @FILE is --params. */
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "n=9", "-p", one);
    cr_expect_neq(r.status, 0, "'-p PATH' without '=' is refused: %s", r.out);
    result_free(&r);
    char at_one[600];
    snprintf(at_one, sizeof(at_one), "@%s", one);
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "n=9", "-p", at_one);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    text = output_of(r.out, "a.o");
    cr_expect_str_eq(text, "one 9 0.5 2\n");
    free(text);
    result_free(&r);

    r = RUN(test_store_arg, "status", pipeline_path, "--params", two);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "param n = 7  (--params "), "%s", r.out);
    cr_expect(strstr(r.out, "param greeting = \"hi\"  (params_file params.yaml:1)"), "%s", r.out);
    cr_expect(strstr(r.out, "param train = {\"lr\":0.5,\"epochs\":2}"), "%s", r.out);
    result_free(&r);

    r = RUN(test_store_arg, "runs", "diff", "latest", "latest");
    result_free(&r);
    free(two);
}

Test(authoring, runs_diff_shows_param_origins) {
    write_pipeline(params_pipeline);
    write_test_file(test_dir, "params.yaml", "greeting: hi\n");
    char *two = strdup(write_test_file(test_dir, "two.yaml", "n: 7\n"));
    result r = RUN(test_store_arg, "run", pipeline_path, "--params", two);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "n=8");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "list");
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* The newest first: the second line is the -p run, the third the other. */
    char a[32], b[32];
    const char *l1 = strchr(r.out, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
    snprintf(b, sizeof(b), "%.*s", (int)strcspn(l1, " "), l1);
    snprintf(a, sizeof(a), "%.*s", (int)strcspn(l2, " "), l2);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "diff", a, b);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "7 -> 8  (--params "), "%s", r.out);
    cr_expect(strstr(r.out, "two.yaml:1 -> -p)"), "%s", r.out);
    cr_expect(!strstr(r.out, "  greeting "), "an unchanged parameter is not listed: %s", r.out);
    result_free(&r);
    free(two);
}

/* Runs validate with one more --params FILE holding text and expects it
 * refused (exit 2) with `want` in the error. */
static void expect_bad_params(const char *text, const char *want) {
    char *path = strdup(write_test_file(test_dir, "bad.yaml", text));
    result r = RUN("validate", pipeline_path, "--params", path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, want), "want '%s' in: %s", want, r.err);
    result_free(&r);
    free(path);
}

Test(authoring, bad_params_files_are_located) {
    write_pipeline(params_pipeline);
    write_test_file(test_dir, "params.yaml", "{}\n");
    expect_bad_params(
        "greting: hi\n",
        "bad.yaml:1:1: error: unknown parameter 'greting' (did you mean 'greeting'?)");
    expect_bad_params("n: 1\nn2: 3\n", "bad.yaml:2:1: error: unknown parameter 'n2'");
    expect_bad_params("n: [1, 2]\n", "bad.yaml:1:4: error: parameter 'n' expects an integer, got "
                                     "a list");
    expect_bad_params("train: {lr: fast}\n",
                      "bad.yaml:1:13: error: parameter 'train.lr' expects a number, got a string");
    expect_bad_params("train: {lrr: 1}\n", "bad.yaml:1:9: error: unknown parameter 'train.lrr' "
                                           "(did you mean 'train.lr'?)");
    expect_bad_params("n: [1, 2\n", "bad.yaml:2:1: error: malformed YAML");
    expect_bad_params("- n\n- 3\n", "bad.yaml:1:1: error: a params file must be a mapping");
    /* The pipeline's own params_file, relative to the pipeline. */
    write_test_file(test_dir, "params.yaml", "\n\nn: lots\n");
    result r = RUN("validate", pipeline_path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "params.yaml:3:4: error: parameter 'n' expects an integer, got a "
                            "string"),
              "%s", r.err);
    result_free(&r);
    unlink(write_test_file(test_dir, "params.yaml", ""));
    r = RUN("validate", pipeline_path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "params.yaml: error: cannot read the params file"), "%s", r.err);
    result_free(&r);
}

Test(authoring, nested_params_and_join) {
    write_pipeline("pipeline: nj\n"
                   "params:\n"
                   "  authors: [Paul Iusztin, Maxime Labonne]\n"
                   "  train: {opt: {lr: 0.25}}\n"
                   "steps:\n"
                   "  a:\n"
                   "    uses: shell\n"
                   "    with:\n"
                   "      run: echo \"${join(params.authors, ', ')}|${params.train.opt.lr}\" > "
                   "\"$SLUICE_OUTPUT_o\"\n"
                   "      outputs: {o: o.txt}\n");
    result r = RUN(test_store_arg, "run", pipeline_path, "-p", "authors=[a, b, c]");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *text = output_of(r.out, "a.o");
    cr_expect_str_eq(text, "a, b, c|0.25\n");
    free(text);
    result_free(&r);

    write_pipeline("pipeline: nj\n"
                   "params:\n"
                   "  authors: [a, b]\n"
                   "  name: x\n"
                   "  train: {lr: 0.25}\n"
                   "steps:\n"
                   "  a:\n"
                   "    uses: shell\n"
                   "    with:\n"
                   "      run: echo ${params.train.lrr}\n"
                   "      env:\n"
                   "        A: ${join(params.name, ',')}\n"
                   "        B: ${params.name.first}\n"
                   "        C: ${join(params.authors)}\n");
    r = RUN("validate", pipeline_path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "p.yaml:10:17: error: 'params.train' has no key 'lrr' (it has: lr)"),
              "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:12:12: error: '${join(params.name, ',')}' joins a list, but "
                            "'params.name' is a string"),
              "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:13:12: error: 'params.name' is a string, not a mapping: it "
                            "has no key 'first'"),
              "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:14:12: error: '${join(params.authors)}': write "
                            "${join(params.NAME, 'SEPARATOR')}"),
              "%s", r.err);
    result_free(&r);
}

Test(authoring, env_files) {
    write_pipeline("pipeline: ev\n"
                   "settings: {env_file: .env}\n"
                   "params:\n"
                   "  who: ${env.WHO}\n"
                   "steps:\n"
                   "  a:\n"
                   "    uses: shell\n"
                   "    cache_on: {env: [FROM_FILE, SHADOWED]}\n"
                   "    with:\n"
                   "      run: echo \"${params.who} $FROM_FILE $SHADOWED ${secret.TOKEN}\" > "
                   "\"$SLUICE_OUTPUT_o\"; echo \"token ${secret.TOKEN}\"\n"
                   "      outputs: {o: o.txt}\n");
    write_test_file(test_dir, ".env",
                    "# settings for the demo\n"
                    "export WHO='a b'\n"
                    "FROM_FILE=\"x\\ty\" # a comment\n"
                    "SHADOWED=from-file\n"
                    "\n"
                    "TOKEN=s3cr3t-value\n");
    char *extra = strdup(write_test_file(test_dir, "extra.env", "FROM_FILE=later\n"));
    run_env[1] = "SHADOWED=from-environment";
    run_env[2] = NULL;
    result r = RUN(test_store_arg, "run", pipeline_path, "--env-file", extra);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *text = output_of(r.out, "a.o");
    cr_expect_str_eq(text, "a b later from-environment s3cr3t-value\n");
    free(text);
    cr_expect(!strstr(r.out, "s3cr3t-value") && !strstr(r.err, "s3cr3t-value"),
              "the secret is masked in the log: %s%s", r.out, r.err);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(!strstr(r.out, "s3cr3t-value"), "%s", r.out);
    result_free(&r);

    r = RUN(test_store_arg, "run", pipeline_path, "--env-override");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    text = output_of(r.out, "a.o");
    cr_expect_str_eq(text, "a b x\ty from-file s3cr3t-value\n");
    free(text);
    result_free(&r);
    run_env[1] = NULL;

    write_test_file(test_dir, ".env", "OK=1\nBAD LINE\nexport X = 2\nQ=\"open\n");
    r = RUN("validate", pipeline_path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, ".env:2:4: error: expected '=' right after the name 'BAD'"), "%s",
              r.err);
    cr_expect(strstr(r.err, ".env:3:9: error: expected '=' right after the name 'X'"), "%s", r.err);
    cr_expect(strstr(r.err, ".env:4:3: error: the value of 'Q' opens a double quote that is never "
                            "closed"),
              "%s", r.err);
    result_free(&r);
    free(extra);
}

static const char when_pipeline[] =
    "pipeline: w\n"
    "params:\n"
    "  deploy: false\n"
    "  stage: prod\n"
    "steps:\n"
    "  evaluate:\n"
    "    uses: shell\n"
    "    with:\n"
    "      run: |\n"
    "        echo '{\"name\": \"rouge_l\", \"value\": 0.42}' >> \"$SLUICE_METRICS\"\n"
    "  good:\n"
    "    uses: shell\n"
    "    after: evaluate\n"
    "    when: \"${steps.evaluate.metrics.rouge_l} > 0.3 && ${params.stage} in ['prod', 'qa']\"\n"
    "    with:\n"
    "      run: echo good > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n"
    "  deploy:\n"
    "    uses: shell\n"
    "    inputs: {x: good.o}\n"
    "    when: ${params.deploy} == true\n"
    "    with:\n"
    "      run: cat \"$SLUICE_INPUT_x\" > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n"
    "  notify:\n"
    "    uses: shell\n"
    "    after: deploy\n"
    "    with: {run: echo notify}\n"
    "  report:\n"
    "    uses: shell\n"
    "    after: deploy\n"
    "    when: always\n"
    "    with: {run: echo report}\n"
    "  publish:\n"
    "    uses: shell\n"
    "    inputs: {x: deploy.o}\n"
    "    when: always\n"
    "    with:\n"
    "      run: cat \"$SLUICE_INPUT_x\" \"$SLUICE_INPUT_x\" > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n";

Test(authoring, when_skips_steps_and_records_why) {
    write_pipeline(when_pipeline);
    result r = RUN(test_store_arg, "run", pipeline_path);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step deploy skipped: its condition is false: ${params.deploy} == "
                            "true\n"),
              "%s", r.out);
    cr_expect(strstr(r.out, "step notify skipped: upstream step 'deploy' was skipped\n"), "%s",
              r.out);
    cr_expect(strstr(r.out, "step report done"), "'when: always' runs past a skip: %s", r.out);
    cr_expect(strstr(r.out, "step publish skipped: its input 'x' comes from step 'deploy', which "
                            "was skipped"),
              "%s", r.out);
    cr_expect(strstr(r.out, "step good done"), "%s", r.out);
    cr_expect(strstr(r.out, "3 done, 0 failed, 3 skipped"), "%s", r.out);
    result_free(&r);

    r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "skipped           -  attempts 0  its condition is false: "
                            "${params.deploy} == true"),
              "%s", r.out);
    result_free(&r);

    r = RUN(test_store_arg, "status", pipeline_path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "(when: ${params.deploy} == true)\n"), "%s", r.out);
    result_free(&r);

    /* The skip is no cache entry: with the condition true the step runs, and
     * only then is it cached. */
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "deploy=true");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step deploy done"), "%s", r.out);
    cr_expect(strstr(r.out, "step notify done"), "%s", r.out);
    cr_expect(strstr(r.out, "step publish done"), "%s", r.out);
    char *text = output_of(r.out, "publish.o");
    cr_expect_str_eq(text, "good\ngood\n");
    free(text);
    result_free(&r);
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "deploy=true");
    cr_expect(strstr(r.out, "step deploy cached"), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "run", pipeline_path, "-p", "stage=dev");
    cr_expect(strstr(r.out, "step good skipped: its condition is false"), "%s", r.out);
    cr_expect(strstr(r.out, "step deploy skipped: its input 'x' comes from step 'good'"), "%s",
              r.out);
    result_free(&r);
}

Test(authoring, when_on_a_metric_never_reported_fails_the_step) {
    write_pipeline("pipeline: m\n"
                   "steps:\n"
                   "  evaluate: {uses: shell, with: {run: 'true'}}\n"
                   "  next:\n"
                   "    uses: shell\n"
                   "    after: evaluate\n"
                   "    when: \"${steps.evaluate.metrics.rouge_l} > 0.3\"\n"
                   "    with: {run: echo next}\n");
    result r = RUN(test_store_arg, "run", pipeline_path);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step next failed after 0.00s: its condition reads metric 'rouge_l' "
                            "of step 'evaluate', which that step did not report"),
              "%s", r.out);
    result_free(&r);
}

Test(authoring, bad_conditions_are_located) {
    write_pipeline("pipeline: w\n"
                   "params: {deploy: false, n: 3}\n"
                   "steps:\n"
                   "  a:\n"
                   "    uses: shell\n"
                   "    when: \"${steps.b.metrics.x} > 1\"\n"
                   "    with: {run: echo a}\n"
                   "  b:\n"
                   "    uses: shell\n"
                   "    after: a\n"
                   "    when: \"${params.deploy} == 'yes'\"\n"
                   "    with: {run: echo b}\n"
                   "  c:\n"
                   "    uses: shell\n"
                   "    when: \"${params.n} > 2 || ${params.nn} == 1\"\n"
                   "    with: {run: echo c}\n"
                   "  d:\n"
                   "    uses: shell\n"
                   "    when: \"${steps.c.metrics.x} > 1\"\n"
                   "    with: {run: echo d}\n");
    result r = RUN("validate", pipeline_path);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "p.yaml:6:12: error: cycle through 'when': the condition of step 'a' "
                            "reads the metrics of 'b', which runs after it (a -> b)"),
              "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:11:29: error: '==' compares a boolean with text"), "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:15:31: error: unknown parameter 'nn' (did you mean 'n'?)"),
              "%s", r.err);
    cr_expect(strstr(r.err, "p.yaml:19:12: error: the condition of step 'd' reads the metrics of "
                            "'c', which is not upstream of it"),
              "%s", r.err);
    result_free(&r);
}
