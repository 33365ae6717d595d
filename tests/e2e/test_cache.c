/* End-to-end tests of the cache and of what a pipeline may name: the cache
 * key covers everything a step reads, shell steps are strict, and hostile
 * pipelines are refused with located errors instead of hanging. */
#include "runner.h"

#include <sys/stat.h>

TestSuite(cache, .init = test_dir_setup, .fini = test_dir_teardown);

/* The text of output `output` of the last run: the value of the first
 * "output" : "HASH" in its record (a shell step's params name the same
 * outputs with their paths, which are not hashes). */
static char *output_text(const char *output) {
    cr_assert_neq(*last_run, '\0', "a run was recorded");
    result r = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char needle[80], id[16] = "";
    snprintf(needle, sizeof(needle), "\"%s\" : \"", output);
    for (const char *o = strstr(r.out, needle); o && !id[0]; o = strstr(o + 1, needle)) {
        const char *v = o + strlen(needle);
        if (strspn(v, "0123456789abcdef") == 64)
            snprintf(id, sizeof(id), "%.12s", v);
    }
    cr_assert_neq(id[0], '\0', "no output %s in %s", output, r.out);
    result_free(&r);
    result cat = RUN(test_store_arg, "artifacts", "cat", id);
    cr_assert_eq(cat.status, 0, "%s", cat.err);
    free(cat.err);
    return cat.out;
}

/* Writes a pipeline of 70 producers (p0..p69, each printing ${params.vN})
 * and one shell consumer that concatenates all 70 inputs. */
static char *write_wide_pipeline(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fputs("version: 1\npipeline: wide\nparams:\n", f);
    for (int i = 0; i < 70; i++)
        fprintf(f, "  v%d: a%d\n", i, i);
    fputs("steps:\n", f);
    for (int i = 0; i < 70; i++)
        fprintf(f,
                "  p%d:\n    uses: shell\n    with:\n      run: echo ${params.v%d} > o.txt\n"
                "      outputs: {o: o.txt}\n",
                i, i);
    fputs("  join:\n    uses: shell\n    inputs:\n", f);
    for (int i = 0; i < 70; i++)
        fprintf(f, "      i%d: p%d.o\n", i, i);
    fputs("    with:\n      run: |\n        : > all.txt\n", f);
    for (int i = 0; i < 70; i++)
        fprintf(f, "        cat \"$SLUICE_INPUT_i%d\" >> all.txt\n", i);
    fputs("      outputs: {all: all.txt}\n", f);
    fclose(f);
    char *path = strdup(write_test_file(test_dir, "wide.yaml", text));
    free(text);
    return path;
}

/* The cache key covered only a step's first 64 inputs: a change upstream of
 * the 66th was a cache hit with the old output. */
Test(cache, a_change_to_any_input_reruns_the_consumer) {
    char *pipeline = write_wide_pipeline();
    result first = RUN_PIPELINE(pipeline);
    cr_assert_eq(first.status, 0, "%s", first.err);
    char *all = output_text("all");
    cr_expect_eq(count(all, "a65\n"), 1, "%s", all);
    free(all);
    result second = RUN_PIPELINE(pipeline, "-p", "v65=changed");
    cr_assert_eq(second.status, 0, "%s", second.err);
    all = output_text("all");
    cr_expect_eq(count(all, "changed\n"), 1, "the consumer ran again: %s", all);
    cr_expect_eq(count(all, "a65\n"), 0, "%s", all);
    free(all);
    result_free(&first);
    result_free(&second);
    free(pipeline);
}

/* A multi-line shell step whose first line failed went on and succeeded. */
Test(cache, a_shell_step_fails_on_its_first_failing_line_unless_strict_is_false) {
    const char *pipeline = write_test_file(test_dir, "strict.yaml",
                                           "version: 1\npipeline: strict\nsteps:\n"
                                           "  strict:\n    uses: shell\n    with:\n"
                                           "      run: |\n        false\n        echo on > s.txt\n"
                                           "      outputs: {o: s.txt}\n"
                                           "  unset:\n    uses: shell\n    with:\n"
                                           "      run: |\n        echo $NOT_SET_ANYWHERE > u.txt\n"
                                           "      outputs: {o: u.txt}\n"
                                           "  lax:\n    uses: shell\n    with:\n"
                                           "      strict: false\n"
                                           "      run: |\n        false\n        echo on > l.txt\n"
                                           "      outputs: {o: l.txt}\n");
    result r = RUN_PIPELINE((char *)pipeline);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    cr_expect(
        strstr(show.out, "\"step\" : \"strict\", \"uses\" : \"shell\", \"status\" : \"failed\""),
        "%s", show.out);
    cr_expect(
        strstr(show.out, "\"step\" : \"unset\", \"uses\" : \"shell\", \"status\" : \"failed\""),
        "%s", show.out);
    cr_expect(strstr(show.out, "\"step\" : \"lax\", \"uses\" : \"shell\", \"status\" : \"done\""),
              "%s", show.out);
    result_free(&show);
    result_free(&r);
}

/* A shell step reports metrics through $SLUICE_METRICS; a cached run of it
 * shows the metrics of the run it came from (it showed none). */
Test(cache, shell_metrics_are_recorded_and_shown_again_when_cached) {
    const char *pipeline = write_test_file(
        test_dir, "metrics.yaml",
        "version: 1\npipeline: metrics\nsteps:\n"
        "  evaluate:\n    uses: shell\n    with:\n"
        "      run: |\n"
        "        echo '{\"name\": \"recall\", \"value\": 0.75}' >> \"$SLUICE_METRICS\"\n"
        "        echo '{\"name\": \"loss\", \"value\": 2.5, \"step\": 7}' >> \"$SLUICE_METRICS\"\n"
        "        echo done > r.txt\n"
        "      outputs: {report: r.txt}\n");
    const char *want[] = {"\"key\" : \"recall\", \"value\" : 0.75, \"index\" : 0",
                          "\"key\" : \"loss\", \"value\" : 2.5, \"index\" : 7"};
    for (int round = 0; round < 2; round++) {
        result r = RUN_PIPELINE((char *)pipeline);
        cr_assert_eq(r.status, 0, "%s", r.err);
        result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
        cr_assert_eq(show.status, 0, "%s", show.err);
        cr_expect(strstr(show.out, round ? "\"status\" : \"cached\"" : "\"status\" : \"done\""),
                  "%s", show.out);
        for (int i = 0; i < 2; i++)
            cr_expect(strstr(show.out, want[i]), "round %d: %s in %s", round, want[i], show.out);
        result_free(&show);
        result_free(&r);
    }
}

/* A secret written into 'run:' was on the shell's command line, which ps
 * (here /proc/PID/cmdline) shows to every user; it reaches the shell through the environment now,
 * with the same value whatever quotes it stands in. */
Test(cache, a_secret_in_a_shell_command_is_not_on_the_command_line) {
    run_env[1] = "SL_TEST_TOKEN=tok3n 'a\"b$HOME";
    run_env[2] = NULL;
    const char *pipeline = write_test_file(
        test_dir, "secret.yaml",
        "version: 1\npipeline: secret\nsteps:\n"
        "  use:\n    uses: shell\n    with:\n"
        "      run: |\n"
        "        for f in /proc/[0-9]*/cmdline; do (tr '\\0' ' ' < \"$f\"; echo) 2>/dev/null || :; "
        "done > ps.txt\n"
        "        printf '%s\\n' \"${secret.SL_TEST_TOKEN}\" '${secret.SL_TEST_TOKEN}' > v.txt\n"
        "      outputs: {ps: ps.txt, v: v.txt}\n");
    result r = RUN_PIPELINE((char *)pipeline);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *ps = output_text("ps"), *v = output_text("v");
    cr_expect(strstr(ps, "SLUICE_SECRET_1"), "the shell reads the secret from its environment: %s",
              ps);
    cr_expect_null(strstr(ps, "tok3n"), "%s", ps);
    cr_expect_str_eq(v, "tok3n 'a\"b$HOME\ntok3n 'a\"b$HOME\n");
    free(ps);
    free(v);
    result_free(&r);
}

/* A secret in a path that could not be read was printed in clear in the
 * error about it (a plugin folder here): diagnostics are masked too. */
Test(cache, a_secret_in_an_unreadable_plugin_folder_is_masked_in_the_error) {
    run_env[1] = "SL_TEST_TOKEN=tok3nValue";
    run_env[2] = NULL;
    const char *pipeline = write_test_file(test_dir, "folder.yaml",
                                           "version: 1\npipeline: folder\n"
                                           "plugins: [\"/nonexistent/${secret.SL_TEST_TOKEN}\"]\n"
                                           "steps:\n  a: {uses: shell, with: {run: 'true'}}\n");
    const char *commands[] = {"validate", "run"};
    for (int i = 0; i < 2; i++) {
        result r = RUN(test_store_arg, (char *)commands[i], (char *)pipeline);
        cr_expect_eq(r.status, 2, "%s: %s", commands[i], r.err);
        cr_expect(strstr(r.err, "/nonexistent/***: error: cannot read plugin folder"), "%s: %s",
                  commands[i], r.err);
        cr_expect_null(strstr(r.err, "tok3nValue"), "%s: %s", commands[i], r.err);
        result_free(&r);
    }
}

/* A FIFO in cache_on.files held validate, status and run forever (hashing
 * waited for a writer): refused with its line instead. */
Test(cache, a_fifo_in_cache_on_files_is_refused_with_its_line, .timeout = 60) {
    char fifo[128];
    snprintf(fifo, sizeof(fifo), "%s/fifo", test_dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *pipeline = write_test_file(test_dir, "fifo.yaml",
                                           "version: 1\npipeline: fifo\nsteps:\n"
                                           "  a:\n    uses: shell\n    cache_on:\n"
                                           "      files: [fifo]\n    with:\n"
                                           "      run: echo hi > x.txt\n"
                                           "      outputs: {o: x.txt}\n");
    const char *commands[] = {"validate", "status", "run"};
    for (int i = 0; i < 3; i++) {
        result r = RUN(test_store_arg, (char *)commands[i], (char *)pipeline);
        cr_expect_eq(r.status, 2, "%s: %s", commands[i], r.err);
        cr_expect(
            strstr(r.err, "fifo.yaml:7:15: error: 'cache_on.files' names 'fifo', which is a FIFO"),
            "%s: %s", commands[i], r.err);
        result_free(&r);
    }
    /* The same for a pipeline file that is a FIFO. */
    result r = RUN("validate", fifo);
    expect_refused(r, 2, "it is a FIFO, not a regular file");
}

/* ${...} expansion had no bound: a small file asked for gigabytes. The
 * reference that passes the limit is named with its line. */
Test(cache, substitution_is_bounded_and_names_the_reference, .timeout = 60) {
    const char *cases[][2] = {
        {"substitution-bomb", "pipeline.yaml:79:11: error: substituting '${params.big}' makes the "
                              "pipeline's substituted values larger than 64 MiB in all"},
        {"substitution-long-value", "pipeline.yaml:9:12: error: substituting '${params.s}' makes "
                                    "this value larger than 1 MiB"}};
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/tests/data/hostile/pipelines/%s/pipeline.yaml",
                 SLUICE_SOURCE_DIR, cases[i][0]);
        result r = RUN("validate", path);
        cr_expect_eq(r.status, 2, "%s", r.err);
        cr_expect(strstr(r.err, cases[i][1]), "%s", r.err);
        result_free(&r);
    }
}

/* The SHA-256 of text, as hex, by the system's sha256sum. */
static void sha256_hex(const char *text, char hex[65]) {
    char in[] = "/tmp/sluice-test-sha-XXXXXX";
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "sha256sum %s", in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_eq(fscanf(p, "%64s", hex), 1);
    pclose(p);
    unlink(in);
}

/* A step whose parameters hold a secret was keyed (and its parts recorded)
 * by a plain SHA-256, so a short secret could be found by trying guesses
 * against the store; and a step's error printed and stored the secret in
 * clear. */
Test(cache, a_secret_is_keyed_by_the_stores_own_secret_and_masked_in_errors) {
    run_env[1] = "SL_TEST_TOKEN=hunter2";
    run_env[2] = NULL;
    const char *pipeline =
        write_test_file(test_dir, "keyed.yaml",
                        "version: 1\npipeline: keyed\nsteps:\n"
                        "  use:\n    uses: shell\n    with:\n"
                        "      run: \"echo ${secret.SL_TEST_TOKEN} > t.txt\"\n"
                        "      outputs: {t: t.txt}\n"
                        "  bad:\n    uses: fail\n    with:\n"
                        "      reason: \"no category '${secret.SL_TEST_TOKEN}'\"\n");
    result r = RUN_PIPELINE((char *)pipeline);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect_null(strstr(r.out, "hunter2"), "%s", r.out);
    cr_expect_null(strstr(r.err, "hunter2"), "%s", r.err);
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    cr_expect_null(strstr(show.out, "hunter2"), "%s", show.out);
    cr_expect(strstr(show.out, "failed on purpose: no category '***'"), "%s", show.out);
    /* The parts do not give the plain hash of the command that holds it. */
    char plain[65];
    sha256_hex("\"echo hunter2 > t.txt\"", plain);
    cr_expect_null(strstr(show.out, plain), "the plain hash of the command is recorded");
    const char *run_part = strstr(show.out, "\"run\" : \"");
    cr_expect_not_null(run_part, "%s", show.out);
    result_free(&show);
    char key[160];
    snprintf(key, sizeof(key), "%s/store/cache.key", test_dir);
    struct stat st;
    cr_assert_eq(stat(key, &st), 0, "the store has its cache secret");
    cr_expect_eq(st.st_mode & 0777, 0600);
    cr_expect_eq(st.st_size, 32);
    result_free(&r);
    /* The same secret is a cache hit, another one runs again. */
    r = RUN_PIPELINE((char *)pipeline);
    cr_expect(strstr(r.out, "\"step\" : \"use\", \"status\" : \"cached\""), "%s", r.out);
    result_free(&r);
    run_env[1] = "SL_TEST_TOKEN=hunter3";
    r = RUN_PIPELINE((char *)pipeline);
    char *t = output_text("t");
    cr_expect_str_eq(t, "hunter3\n");
    free(t);
    result_free(&r);
}

/* A parameter naming a file was hashed as a string: rewriting the file in
 * place was a cache hit with the old output. A path parameter (ABI 1.2)
 * joins the key by content, resolved against the pipeline's folder. */
Test(cache, a_path_parameter_is_keyed_on_what_it_names) {
    write_test_file(test_dir, "weights.txt", "one\n");
    char *pipeline = strdup(write_test_file(test_dir, "path.yaml",
                                            "version: 1\npipeline: path\nsteps:\n"
                                            "  copy: {uses: read, with: {source: weights.txt}}\n"));
    result r = RUN_PIPELINE(pipeline);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *out = output_text("out");
    cr_expect_str_eq(out, "one\n");
    free(out);
    result_free(&r);
    r = RUN_PIPELINE((char *)pipeline);
    cr_expect(strstr(r.out, "\"step\" : \"copy\", \"status\" : \"cached\""), "unchanged: %s",
              r.out);
    result_free(&r);
    write_test_file(test_dir, "weights.txt", "two\n");
    result status = RUN(test_store_arg, "status", (char *)pipeline);
    cr_expect(strstr(status.out, "parameter 'source' changed"), "%s%s", status.out, status.err);
    result_free(&status);
    r = RUN_PIPELINE((char *)pipeline);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_null(strstr(r.out, "\"status\" : \"cached\""), "%s", r.out);
    out = output_text("out");
    cr_expect_str_eq(out, "two\n");
    free(out);
    result_free(&r);
    free(pipeline);
}

Test(cache, a_path_parameter_naming_a_device_is_refused_with_its_line) {
    const char *pipeline = write_test_file(test_dir, "dev.yaml",
                                           "version: 1\npipeline: dev\nsteps:\n"
                                           "  copy:\n    uses: read\n    with:\n"
                                           "      source: /dev/zero\n");
    result r = RUN(test_store_arg, "run", (char *)pipeline);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "dev.yaml:7:15: error: parameter 'source' of step 'copy' names "
                            "'/dev/zero', which is a character device"),
              "%s", r.err);
    result_free(&r);
}

/* Pipelines validation accepted (output names a shell could read, the work
 * folder itself as an output, outputs on one path or nested, 'run: null',
 * '!!int abc', 'uses: /etc/passwd:x', a text file as a plugin): each case of
 * the hostile corpus is refused with the status and located message its
 * 'expect' file gives. */
Test(cache, hostile_pipelines_are_refused_with_located_errors, .timeout = 120) {
    const char *cases[] = {"output-name-injection",
                           "output-is-work-folder",
                           "outputs-same-path",
                           "outputs-nested",
                           "run-null",
                           "tag-int-not-integer",
                           "uses-etc-passwd",
                           "uses-not-elf",
                           "cache-on-device",
                           "cache-on-device-run"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[512], path[600];
        snprintf(dir, sizeof(dir), "%s/tests/data/hostile/pipelines/%s", SLUICE_SOURCE_DIR,
                 cases[i]);
        snprintf(path, sizeof(path), "%s/pipeline.yaml", dir);
        char store[128];
        snprintf(store, sizeof(store), "--store=%s/store-%zu", test_dir, i);
        snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/expect");
        char *expect = slurp(dir);
        cr_assert_not_null(expect, "%s", dir);
        result r = RUN(store, strstr(cases[i], "-run") ? "run" : "validate", path);
        cr_expect_eq(r.status, atoi(expect), "%s: %s", cases[i], r.err);
        for (char *line = strchr(expect, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
            char want[512];
            snprintf(want, sizeof(want), "%.*s", (int)strcspn(line + 1, "\n"), line + 1);
            if (want[0])
                cr_expect(strstr(r.err, want), "%s: '%s' in %s", cases[i], want, r.err);
        }
        free(expect);
        result_free(&r);
    }
}

/* Suggestions looked at the first 64 parameters only. */
Test(cache, a_misspelt_parameter_is_matched_against_every_parameter) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    fputs("version: 1\npipeline: many\nparams:\n", f);
    for (int i = 0; i < 70; i++)
        fprintf(f, "  p%02d: %d\n", i, i);
    fputs("  learning_rate: 0.1\nsteps:\n"
          "  a: {uses: shell, with: {run: \"echo ${params.learning_rat} > x\", outputs: {x: x}}}\n",
          f);
    fclose(f);
    char *pipeline = strdup(write_test_file(test_dir, "many.yaml", text));
    free(text);
    result r = RUN(test_store_arg, "run", "-p", "learning_rat=0.2", pipeline);
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "no parameter 'learning_rat' (did you mean 'learning_rate'?)"), "%s",
              r.err);
    cr_expect(strstr(r.err, "unknown parameter 'learning_rat' (did you mean 'learning_rate'?)"),
              "%s", r.err);
    result_free(&r);
    free(pipeline);
}
