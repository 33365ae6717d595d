/* End-to-end tests of 'sluice run': the real binary on real pipelines, with
 * shell steps and the test plugins (tests/plugins). */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"
#include "require.h"

TestSuite(run, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 60);

/* The value of field in the JSON event `event` about step (NULL: any). */
static char *event_field(const char *out, const char *event, const char *step, const char *field) {
    static char value[1024];
    const char *line = out;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bson_error_t err;
        bson_t *doc = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &err);
        cr_assert_not_null(doc, "not a JSON line: %.*s", (int)len, line);
        bson_iter_t it;
        int match =
            bson_iter_init_find(&it, doc, "event") && strcmp(bson_iter_utf8(&it, NULL), event) == 0;
        if (match && step)
            match = bson_iter_init_find(&it, doc, "step") &&
                    strcmp(bson_iter_utf8(&it, NULL), step) == 0;
        if (match && bson_iter_init_find(&it, doc, field)) {
            if (BSON_ITER_HOLDS_UTF8(&it))
                snprintf(value, sizeof(value), "%s", bson_iter_utf8(&it, NULL));
            else
                snprintf(value, sizeof(value), "%lld", (long long)bson_iter_as_int64(&it));
            bson_destroy(doc);
            return value;
        }
        bson_destroy(doc);
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static int count_events(const char *out, const char *event) {
    char needle[64];
    snprintf(needle, sizeof(needle), "\"event\" : \"%s\"", event);
    int n = 0;
    for (const char *p = strstr(out, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

#define expect_status(out, step, status)                                                           \
    do {                                                                                           \
        const char *got_ = event_field((out), "step_finished", (step), "status");                  \
        cr_expect(got_ != NULL && strcmp(got_, (status)) == 0, "step %s: expected %s, got %s",     \
                  (step), (status), got_ ? got_ : "(no event)");                                   \
    } while (0)

static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    double v = -1;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* Overlap shown by a handshake, not by clocks: each branch waits for the
 * other to have started, so the run finishes only if they ran at once
 * (run one after the other, the first would wait until its timeout). */
Test(run, parallel_branches_overlap_in_time) {
    char *p = write_test_file(
        test_dir, "par.yaml",
        "pipeline: par\n"
        "steps:\n"
        "  left:\n"
        "    uses: shell\n"
        "    timeout: 60s\n"
        "    with: {run: 'touch @/l0; while test ! -f @/r0; do sleep 0.01; done'}\n"
        "  right:\n"
        "    uses: shell\n"
        "    timeout: 60s\n"
        "    with: {run: 'touch @/r0; while test ! -f @/l0; do sleep 0.01; done'}\n");
    result r = RUN(test_store_arg, "run", p, "--jobs", "2", "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    expect_status(r.out, "left", "done");
    expect_status(r.out, "right", "done");
    result_free(&r);
}

/* With one job, b starts only after a finished: the events say so, and a
 * step that finds the other's marker would fail. */
Test(run, jobs_1_runs_one_at_a_time) {
    char *p = write_test_file(
        test_dir, "seq.yaml",
        "pipeline: seq\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'test ! -f @/busy; touch @/busy; sleep 0.2; rm @/busy'}}\n"
        "  b: {uses: shell, with: {run: 'test ! -f @/busy; touch @/busy; sleep 0.2; rm "
        "@/busy'}}\n");
    result r = RUN(test_store_arg, "run", p, "-j", "1", "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    long a_done = event_at(r.out, "step_finished", "a"),
         b_start = event_at(r.out, "step_started", "b");
    cr_expect(a_done >= 0 && b_start > a_done, "a finished before b started:\n%s", r.out);
    result_free(&r);
}

Test(run, a_failure_skips_exactly_its_descendants) {
    char *p = write_test_file(
        test_dir, "fail.yaml",
        "pipeline: fail\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'echo a > out', outputs: {o: out}}}\n"
        "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'echo broken >&2; exit 3'}}\n"
        "  c: {uses: shell, after: [b], with: {run: 'true'}}\n"
        "  c2: {uses: shell, after: [c], with: {run: 'true'}}\n"
        "  d: {uses: shell, inputs: {i: a.o}, with: {run: 'true'}}\n"
        "  e: {uses: fail, with: {reason: 'bad input'}}\n"
        "  f: {uses: noop}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s", r.err);
    expect_status(r.out, "a", "done");
    expect_status(r.out, "b", "failed");
    expect_status(r.out, "c", "skipped");
    expect_status(r.out, "c2", "skipped");
    expect_status(r.out, "d", "done");
    expect_status(r.out, "e", "failed");
    expect_status(r.out, "f", "done");
    const char *why = event_field(r.out, "step_finished", "b", "error");
    cr_expect(why && strcmp(why, "the command exited with status 3") == 0, "%s", why);
    why = event_field(r.out, "step_finished", "e", "error");
    cr_expect(why && strcmp(why, "failed on purpose: bad input") == 0, "%s", why);
    why = event_field(r.out, "step_finished", "c2", "error");
    cr_expect(why && strstr(why, "upstream step 'b' failed"), "%s", why);
    cr_expect_str_eq(event_field(r.out, "run_finished", NULL, "status"), "failed");
    result_free(&r);
}

Test(run, a_flaky_step_is_retried_with_backoff) {
    char *p = write_test_file(
        test_dir, "flaky.yaml",
        "pipeline: flaky\n"
        "steps:\n"
        "  flaky:\n"
        "    uses: shell\n"
        "    with: {run: 'n=$(cat @/count 2>/dev/null || echo 0); echo $((n+1)) > @/count; "
        "test $n -ge 2'}\n"
        "    retries: {max: 3, backoff: 100ms}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    expect_status(r.out, "flaky", "done");
    cr_expect_str_eq(event_field(r.out, "step_finished", "flaky", "attempts"), "3");
    cr_expect_eq(count_events(r.out, "step_retry"), 2);
    /* backoff 100ms, then doubled: what the scheduler says it waits */
    cr_expect(strstr(r.out, "\"next_attempt\" : 2, \"attempts\" : 4, \"delay_ms\" : 100,"), "%s",
              r.out);
    cr_expect(strstr(r.out, "\"next_attempt\" : 3, \"attempts\" : 4, \"delay_ms\" : 200,"), "%s",
              r.out);
    result_free(&r);
}

Test(run, retries_give_up_after_max) {
    char *p = write_test_file(test_dir, "never.yaml",
                              "pipeline: never\n"
                              "settings: {retries: {max: 2, backoff: 10ms}}\n"
                              "steps:\n  never: {uses: shell, with: {run: 'exit 1'}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1);
    cr_expect_str_eq(event_field(r.out, "step_finished", "never", "attempts"), "3");
    result_free(&r);
}

Test(run, a_timeout_stops_a_sleep_60_step) {
    /* Outcomes, not a stopwatch: the step began, was stopped as its
     * timeout passed, and the command after the sleep never ran. */
    char *p = write_test_file(test_dir, "timeout.yaml",
                              "pipeline: timeout\n"
                              "steps:\n"
                              "  stuck: {uses: shell, with: {run: 'touch @/began; sleep 60; touch "
                              "@/woke'}, timeout: 1s}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1);
    long started = event_at(r.out, "step_started", "stuck"),
         stopping = event_at(r.out, "step_log", "stuck"),
         finished = event_at(r.out, "step_finished", "stuck");
    cr_expect(started >= 0 && stopping > started && finished > stopping, "%s", r.out);
    cr_expect(strstr(r.out, "the step ran past its timeout: stopping it"), "%s", r.out);
    char began[256], woke[256];
    snprintf(began, sizeof(began), "%s/began", test_dir);
    cr_expect_eq(access(began, F_OK), 0, "the command began");
    snprintf(woke, sizeof(woke), "%s/woke", test_dir);
    cr_expect_neq(access(woke, F_OK), 0, "the step ran past its timeout");
    const char *why = event_field(r.out, "step_finished", "stuck", "error");
    cr_expect(why && strncmp(why, "timed out after 1s", 18) == 0, "%s", why);
    result_free(&r);
}

Test(run, an_in_process_step_is_asked_to_stop_at_its_timeout) {
    char *p = write_test_file(test_dir, "coop.yaml",
                              "pipeline: coop\n"
                              "steps:\n"
                              "  nap: {uses: sleep, with: {ms: 20000}, timeout: 300ms}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1);
    const char *why = event_field(r.out, "step_finished", "nap", "error");
    cr_expect(why && strcmp(why, "timed out after 300ms; the step stopped when asked to") == 0,
              "%s", why);
    result_free(&r);
}

Test(run, sigint_exits_130_and_leaves_no_orphan) {
    char *p =
        write_test_file(test_dir, "sig.yaml",
                        "pipeline: sig\n"
                        "steps:\n"
                        "  long: {uses: shell, with: {run: 'echo $$ > @/pid; exec sleep 60'}}\n"
                        "  nap: {uses: sleep, with: {ms: 60000}}\n"
                        "  later: {uses: shell, after: [long], with: {run: 'true'}}\n");
    char pid_path[256], events[256];
    snprintf(pid_path, sizeof(pid_path), "%s/pid", test_dir);
    snprintf(events, sizeof(events), "%s/events", test_dir);
    pid_t pid = start_sluice_run_json(p, events);
    /* Both running: the shell step wrote its pid, the in-process one began. */
    wait_for_text(pid_path, "\n");
    wait_for_event(events, "step_started", "nap");
    double child = read_number(pid_path);
    cr_assert_gt(child, 0, "the step never started");
    kill(pid, SIGINT);
    int ws;
    waitpid(pid, &ws, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 130, "status %d", ws);
    errno = 0;
    cr_expect_eq(kill((pid_t)child, 0), -1, "the step's process %d outlived the run", (int)child);
    cr_expect_eq(errno, ESRCH);
}

Test(run, a_crashing_plugin_in_its_own_process_is_reported_and_the_run_goes_on) {
    char *p = write_test_file(test_dir, "crash.yaml",
                              "pipeline: crash\n"
                              "steps:\n"
                              "  boom: {uses: crash, isolation: process}\n"
                              "  fine: {uses: emit, with: {text: still here}, isolation: process}\n"
                              "  next: {uses: echo, inputs: {in: fine.out}}\n");
    /* Under AddressSanitizer, let the segfault be a segfault, not a report. */
    run_env[1] = "ASAN_OPTIONS=handle_segv=0:detect_leaks=1";
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s", r.err);
    expect_status(r.out, "boom", "failed");
    expect_status(r.out, "fine", "done");
    expect_status(r.out, "next", "done");
    const char *why = event_field(r.out, "step_finished", "boom", "error");
    cr_expect(why && strcmp(why, "crashed: killed by SIGSEGV (Segmentation fault)") == 0, "%s",
              why);
    result_free(&r);
}

Test(run, plugin_steps_pass_files_along_in_and_out_of_process) {
    char *p = write_test_file(
        test_dir, "chain.yaml",
        "pipeline: chain\n"
        "steps:\n"
        "  say: {uses: emit, with: {text: the cat and the hat}}\n"
        "  quote: {uses: echo, inputs: {in: say.out}, with: {prefix: 'q: '}, isolation: process}\n"
        "  words: {uses: wordcount, inputs: {text: quote.out}, with: {top: 2}}\n"
        "  show: {uses: shell, inputs: {counts: words.counts},\n"
        "         with: {run: 'cp \"$SLUICE_INPUT_counts\" @/result'}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char path[256];
    snprintf(path, sizeof(path), "%s/result", test_dir);
    char *text = slurp(path);
    cr_expect_str_eq(text, "the\t2\nand\t1\n");
    free(text);
    cr_expect_str_eq(event_field(r.out, "step_metric", "say", "key"), "bytes");
    cr_expect_str_eq(event_field(r.out, "step_metric", "words", "key"), "distinct_words");
    result_free(&r);
}

Test(run, a_shell_step_that_does_not_write_its_output_fails) {
    char *p = write_test_file(
        test_dir, "noout.yaml",
        "pipeline: noout\n"
        "steps:\n"
        "  lazy: {uses: shell, with: {run: 'true', outputs: {report: report.txt}}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1);
    const char *why = event_field(r.out, "step_finished", "lazy", "error");
    cr_expect(why && strstr(why, "it did not write its output 'report'"), "%s", why);
    result_free(&r);
}

Test(run, shell_steps_see_their_environment) {
    char *p =
        write_test_file(test_dir, "env.yaml",
                        "pipeline: env\n"
                        "params: {greeting: hi}\n"
                        "steps:\n"
                        "  env:\n"
                        "    uses: shell\n"
                        "    with:\n"
                        "      run: 'echo \"$SLUICE_STEP $GREETING $SLUICE_ATTEMPT\" > @/env.txt'\n"
                        "      env: {GREETING: '${params.greeting} there'}\n");
    result r = RUN(test_store_arg, "run", p, "-p", "greeting=hello");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char path[256];
    snprintf(path, sizeof(path), "%s/env.txt", test_dir);
    char *text = slurp(path);
    cr_expect_str_eq(text, "env hello there 1\n");
    free(text);
    cr_expect(strstr(r.out, "step env done in") != NULL, "plain lines: %s", r.out);
    result_free(&r);
}

Test(run, json_progress_events_are_rate_limited) {
    char *p = write_test_file(test_dir, "prog.yaml",
                              "pipeline: prog\nsteps:\n  nap: {uses: sleep, with: {ms: 600}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0);
    int n = count_events(r.out, "step_progress");
    cr_expect(n >= 1 && n <= 5, "%d progress events for 0.6s", n);
    result_free(&r);
}

Test(run, bad_plugins_are_refused_each_with_its_reason) {
    char path[600];
    snprintf(path, sizeof(path), "SLUICE_PLUGIN_PATH=%s/good:%s/bad", SLUICE_TEST_PLUGINS,
             SLUICE_TEST_PLUGINS);
    run_env[0] = path;
    result r = RUN("plugins", "list");
    cr_expect_eq(r.status, 2);
    const char *reasons[] = {
        "bad_default.so: error: plugin refused: step 'sized': the default 'big' of parameter "
        "'size' is not of kind integer",
        "bad_port.so: error: plugin refused: step 'untyped': output 'result' has no valid type",
        "dup_across.so: warning: plugin not loaded: step 'noop' is already declared by",
        "init_fails.so: error: plugin refused: its init failed: no licence found (host ABI 1)",
        "no_run.so: error: plugin refused: step 'lazy' has no run function",
        "no_symbol.so: error: plugin refused: not a sluice plugin: it exports no "
        "sluice_plugin_v1()",
        "twice.so: error: plugin refused: plugin 'twice' declares step 'twin' twice",
        "wrong_abi.so: error: plugin refused: built for plugin ABI 2.0; this sluice speaks 1.3",
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        cr_expect(strstr(r.err, reasons[i]) != NULL, "missing: %s\nin:\n%s", reasons[i], r.err);
    cr_expect(strstr(r.out, "noop ") != NULL, "the good plugin still loads");
    result_free(&r);
}

Test(run, plugins_describe) {
    result r = RUN("plugins", "describe", "emit", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"name\" : \"text\", \"kind\" : \"string\", \"required\" : true") !=
                  NULL,
              "%s", r.out);
    result_free(&r);
    r = RUN("plugins", "describe", "nosuch");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}

Test(run, pipelines_are_checked_against_the_plugins) {
    char *p = write_test_file(
        test_dir, "schema.yaml",
        "pipeline: schema\n"
        "steps:\n"
        "  a: {uses: emit, with: {txt: x}}\n"
        "  b: {uses: emit, with: {text: x, count: many, ratio: 2, tags: [1, [2]]}}\n"
        "  c: {uses: echo, inputs: {input: a.out}}\n"
        "  d: {uses: typed, inputs: {chunks: e.docs}}\n"
        "  e: {uses: typed}\n"
        "  f: {uses: noop, inputs: {in: a.nope}}\n"
        "  g: {uses: nosuch}\n");
    result r = RUN("validate", p);
    cr_expect_eq(r.status, 2);
    const char *errors[] = {
        ":3:26: error: step 'emit' has no parameter 'txt' (did you mean 'text'?)",
        ":3:3: error: step 'a' needs parameter 'text' (string: what to write)",
        ":4:42: error: parameter 'count' of step 'b' must be an integer, not many",
        ":4:64: error: parameter 'tags' of step 'b' must be a list of scalars, not [1, [2]]",
        ":5:35: error: step 'echo' has no input 'input' (it takes: in)",
        ":5:3: error: step 'c' needs input 'in' (any) connected in 'inputs'",
        ":6:37: error: input 'chunks' of step 'd' takes chunks, but 'e.docs' is documents",
        ":8:32: error: step 'a' has no output 'nope' (it declares: out)",
        ":9:13: error: no plugin declares step 'nosuch'",
    };
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        cr_expect(strstr(r.err, errors[i]) != NULL, "missing: %s\nin:\n%s", errors[i], r.err);
    result_free(&r);
    /* --strict, which this used to take, is still accepted. */
    r = RUN("validate", "--strict", p);
    cr_expect(strstr(r.err, ":9:13: error: no plugin declares step 'nosuch'") != NULL, "%s", r.err);
    result_free(&r);
}

Test(run, a_plugin_given_by_path) {
    char *p = write_test_file(test_dir, "bypath.yaml",
                              "pipeline: bypath\n"
                              "steps:\n"
                              "  a: {uses: '" SLUICE_TEST_PLUGINS
                              "/good/teststeps.so:emit', with: {text: hi}}\n");
    run_env[0] = NULL;
    result r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
}

Test(run, run_arguments) {
    char *p = write_test_file(test_dir, "args.yaml", "pipeline: args\nsteps: {a: {uses: noop}}\n");
    result r = RUN(test_store_arg, "run", p, "--jobs", "4097");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err,
                     "sluice run: --jobs takes a number from 0 (all cores) to 4096, not '4097'\n");
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--runner", "cloud");
    expect_refused(r, 2, "sluice run: --runner is local or slurm, not 'cloud'\n");
}

Test(run, the_clean_and_chunk_steps_on_the_handbooks_articles, .timeout = 120) {
    const char *handbook = SLUICE_SOURCE_DIR "/../shared/handbook/artifacts";
    char raw[512];
    snprintf(raw, sizeof(raw), "%s/raw_documents.json", handbook);
    if (access(raw, R_OK) != 0 || access("/usr/bin/python3", X_OK) != 0)
        SKIP_UNLESS_REQUIRED("needs ../shared/handbook and /usr/bin/python3");
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "pipeline: handbook_features\n"
             "steps:\n"
             "  load:\n"
             "    uses: shell\n"
             "    with:\n"
             "      run: /usr/bin/python3 -c 'import json; [print(json.dumps(d)) for d in "
             "json.load(open(\"%s\"))[\"artifact_data\"]]' > docs.jsonl\n"
             "      outputs: {docs: docs.jsonl}\n"
             "  clean: {uses: clean, inputs: {documents: load.docs}}\n"
             "  chunk: {uses: chunk, inputs: {documents: clean.documents}}\n"
             "  check:\n"
             "    uses: shell\n"
             "    inputs: {clean: clean.documents, chunks: chunk.chunks}\n"
             "    with:\n"
             "      run: |\n"
             "        /usr/bin/python3 -c 'import json,os\n"
             "        want=json.load(open(\"%s/cleaned_documents.json\"))[\"artifact_data\"]\n"
             "        got=[json.loads(l) for l in open(os.environ[\"SLUICE_INPUT_clean\"])]\n"
             "        same=sum(1 for w,g in zip(want,got) if w[\"content\"]==g[\"content\"] and "
             "w[\"id\"]==g[\"id\"])\n"
             "        chunks=[json.loads(l) for l in open(os.environ[\"SLUICE_INPUT_chunks\"])]\n"
             "        print(\"clean\", same, \"of\", len(want), \"chunks\", len(chunks))\n"
             "        assert same==76 and len(got)==76 and len(chunks)==500'\n",
             raw, handbook);
    char *p = write_test_file(test_dir, "handbook.yaml", yaml);
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "clean 76 of 76 chunks 500") != NULL, "%s", r.out);
    result_free(&r);
}

Test(run, the_handbooks_warehouse_in_and_out_and_its_articles_chunked, .timeout = 120) {
    const char *raw = SLUICE_SOURCE_DIR "/../shared/handbook/data_warehouse_raw_data";
    if (access(raw, R_OK) != 0)
        SKIP_UNLESS_REQUIRED("needs ../shared/handbook");
    result r = RUN(test_store_arg, "warehouse", "import", (char *)raw);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "imported 2 users and 76 documents from " SLUICE_SOURCE_DIR
                            "/../shared/handbook/data_warehouse_raw_data\n");
    result_free(&r);
    r = RUN(test_store_arg, "run", SLUICE_SOURCE_DIR "/pipelines/examples/twin_chunks.yaml",
            "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *at = strstr(r.out, "\"step\" : \"chunk\", \"outputs\" : { \"chunks\" : \"");
    cr_assert_not_null(at, "%s", r.out);
    at = strstr(at, "\"chunks\" : \"") + 12;
    char path[512];
    snprintf(path, sizeof(path), "%.*s", (int)(strchr(at, '"') - at), at);
    char *chunks = slurp(path);
    size_t lines = 0;
    for (const char *c = chunks; *c; c++)
        lines += *c == '\n';
    cr_expect_eq(lines, 500, "the Handbook's 500 article chunks");
    free(chunks);
    result_free(&r);
    /* Out again, and the same documents come back. */
    char out_dir[256];
    snprintf(out_dir, sizeof(out_dir), "%s/export", test_dir);
    r = RUN(test_store_arg, "warehouse", "export", out_dir);
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,sys\n"
             "a=json.load(open(sys.argv[1]+\"/ArticleDocument.json\"))\n"
             "b=json.load(open(sys.argv[2]+\"/ArticleDocument.json\"))\n"
             "sys.exit(0 if {x[\"link\"]:x for x in a}=={x[\"link\"]:x for x in b} else 1)' %s %s",
             out_dir, raw);
    cr_expect_eq(system(cmd), 0, "the export holds the imported articles unchanged");
}

Test(run, clean_drops_near_duplicates_when_asked) {
    write_test_file(
        test_dir, "docs.jsonl",
        "{\"id\": \"1\", \"content\": \"the quick brown fox jumps over the lazy dog while the "
        "cat sleeps in the warm sun and the birds sing in the tall green trees today\"}\n"
        "{\"id\": \"2\", \"content\": \"The quick brown fox jumps over the lazy dog, while the "
        "cat sleeps in the warm sun and the birds sing in the tall green trees today!\"}\n"
        "{\"id\": \"3\", \"content\": {\"Title\": \"Other\", \"Content\": \"see https://x.org "
        "for something else entirely\"}}\n");
    char *p =
        write_test_file(test_dir, "dedupe.yaml",
                        "pipeline: dedupe\n"
                        "steps:\n"
                        "  load: {uses: shell, with: {run: 'cp @/docs.jsonl d', outputs: {d: d}}}\n"
                        "  clean:\n"
                        "    uses: clean\n"
                        "    inputs: {documents: load.d}\n"
                        "    with: {dedupe: near, remove_urls: true, normalize: true}\n"
                        "  show: {uses: shell, inputs: {c: clean.documents},\n"
                        "         with: {run: 'cp \"$SLUICE_INPUT_c\" @/out.jsonl'}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "\"key\" : \"duplicates_dropped\", \"value\" : 1.0") != NULL, "%s",
              r.out);
    result_free(&r);
    char out[256];
    snprintf(out, sizeof(out), "%s/out.jsonl", test_dir);
    char *text = slurp(out);
    cr_expect(strstr(text, "\"id\" : \"1\"") && !strstr(text, "\"id\" : \"2\""), "%s", text);
    cr_expect(strstr(text, "Other #### see for something") == NULL &&
                  strstr(text, "Other see for something else entirely") != NULL,
              "%s", text);
    free(text);
}

/* The token cap: a tokenizer folder given, every chunk has at most
 * max_tokens - 2 WordPiece tokens and shares 1 to token_overlap tokens with
 * the piece before it; checked by the independent Python tokenizer. */
Test(run, chunks_are_capped_at_the_tokenizers_limit_with_overlap) {
    char model[128];
    snprintf(model, sizeof(model), "%s/model", test_dir);
    cr_assert_eq(mkdir(model, 0755), 0);
    write_test_file(model, "vocab.txt",
                    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nquick\nbrown\nfox\njumps\nover\n"
                    "lazy\ndog\n.\n,\nsun\nwarm\n##s\n");
    char line[400] = "", docs[1600] = "";
    for (int i = 0; i < 5; i++)
        strcat(line, "the quick brown fox jumps over the lazy dogs, ");
    snprintf(docs, sizeof(docs),
             "{\"id\": \"p1\", \"category\": \"posts\", \"content\": \"%s\"}\n"
             "{\"id\": \"r1\", \"category\": \"repositories\", \"content\": \"%s%s\"}\n",
             line, line, line);
    write_test_file(test_dir, "docs.jsonl", docs);
    char *p =
        write_test_file(test_dir, "cap.yaml",
                        "pipeline: cap\n"
                        "steps:\n"
                        "  load: {uses: shell, with: {run: 'cp @/docs.jsonl d', outputs: {d: d}}}\n"
                        "  chunk:\n"
                        "    uses: chunk\n"
                        "    inputs: {documents: load.d}\n"
                        "    with: {tokenizer: '@/model', max_tokens: 12, token_overlap: 3}\n"
                        "  show: {uses: shell, inputs: {c: chunk.chunks},\n"
                        "         with: {run: 'cp \"$SLUICE_INPUT_c\" @/out.jsonl'}}\n");
    expect_success(RUN(test_store_arg, "run", p));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,sys\n"
             "sys.path.insert(0, \"%s/tests/ref\")\n"
             "import wordpiece_ref as w\n"
             "t = w.Tokenizer(sys.argv[1])\n"
             "rows = [json.loads(l) for l in open(sys.argv[2])]\n"
             "assert len(rows) > 4, len(rows)\n"
             "prev = None\n"
             "for r in rows:\n"
             "    ids = t.ids(r[\"content\"])\n"
             "    assert 0 < len(ids) <= 10, (len(ids), r)\n"
             "    if prev and prev[0] == r[\"document_id\"]:\n"
             "        assert any(prev[1][-m:] == ids[:m] for m in (1, 2, 3)), (prev[1], ids)\n"
             "    prev = (r[\"document_id\"], ids)\n"
             "' %s %s/out.jsonl",
             SLUICE_SOURCE_DIR, model, test_dir);
    cr_expect_eq(system(cmd), 0, "every piece within the limit, overlapping by 3 tokens");
}

/* The test plugin copied to test_dir/plug, alone on the plugin path of the
 * runs that follow, with a registry cache of the test's own. */
static char plug[128], env_plug[160], env_cache[160];

static void use_cached_plugin_copy(void) {
    char cmd[512];
    snprintf(plug, sizeof(plug), "%s/plug", test_dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/good/teststeps.so %s/", plug,
             SLUICE_TEST_PLUGINS, plug);
    cr_assert_eq(system(cmd), 0);
    snprintf(env_plug, sizeof(env_plug), "SLUICE_PLUGIN_PATH=%s", plug);
    snprintf(env_cache, sizeof(env_cache), "SLUICE_PLUGIN_CACHE=%s/cache.json", test_dir);
    run_env[0] = env_plug;
    run_env[1] = env_cache;
}

/* The registry cache (plugins/registry_cache.h): a plugin is opened to be
 * listed once; after that, listing and binding use its cached descriptor,
 * and the file is opened only when one of its steps runs, or when it
 * changed. LD_DEBUG=files makes the dynamic loader name what it opens. */
Test(run, plugins_are_listed_from_the_cache_and_loaded_when_a_step_runs) {
    char cmd[512];
    use_cached_plugin_copy();
    run_env[2] = "LD_DEBUG=files";
    run_env[3] = NULL;
    result first = RUN("plugins", "describe", "emit");
    cr_assert_eq(first.status, 0, "%s", first.err);
    cr_expect(strstr(first.err, "plug/teststeps.so") != NULL, "opened the first time");
    result second = RUN("plugins", "describe", "emit");
    cr_assert_eq(second.status, 0, "%s", second.err);
    cr_expect(strstr(second.err, "plug/teststeps.so") == NULL, "not opened the second time");
    cr_expect_str_eq(second.out, first.out, "the cached description is the plugin's");
    result_free(&first);
    result_free(&second);

    char *p = write_test_file(test_dir, "emit.yaml",
                              "pipeline: emit\n"
                              "steps:\n"
                              "  say: {uses: emit, with: {text: hello from the cache}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s", r.out);
    cr_expect(strstr(r.err, "plug/teststeps.so") != NULL, "opened to run its step");
    cr_expect(strstr(r.out, "\"status\" : \"done\"") != NULL, "%s", r.out);
    result_free(&r);

    /* A plugin file that changed is opened and checked again. */
    snprintf(cmd, sizeof(cmd), "touch -d '2001-02-03 04:05:06' %s/teststeps.so", plug);
    cr_assert_eq(system(cmd), 0);
    r = RUN("plugins", "describe", "emit");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "plug/teststeps.so") != NULL, "a changed file is opened again");
    result_free(&r);

    /* Off: nothing is written. */
    snprintf(env_cache, sizeof(env_cache), "SLUICE_PLUGIN_CACHE=off");
    snprintf(cmd, sizeof(cmd), "%s/cache.json", test_dir);
    unlink(cmd);
    r = RUN("plugins", "list");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_neq(access(cmd, F_OK), 0, "SLUICE_PLUGIN_CACHE=off writes no cache");
    result_free(&r);
}

/* A cached plugin is loaded on the loop thread when its first step starts,
 * while its other steps are being keyed on the thread pool: the keying
 * reads the steps' descriptors, which the loading must leave where they are
 * (under ThreadSanitizer, preset dev-tsan, sluice exits 66 on the race). */
Test(run, steps_of_a_cached_plugin_are_keyed_while_it_loads) {
    use_cached_plugin_copy();
    run_env[2] = NULL;
    result listed = RUN("plugins", "list");
    cr_assert_eq(listed.status, 0, "%s", listed.err);
    result_free(&listed);
    char *p = write_test_file(test_dir, "many.yaml",
                              "pipeline: many\n"
                              "steps:\n"
                              "  a: {uses: emit, with: {text: one}}\n"
                              "  b: {uses: emit, with: {text: two}}\n"
                              "  c: {uses: emit, with: {text: three}}\n"
                              "  d: {uses: emit, with: {text: four}}\n"
                              "  e: {uses: emit, with: {text: five}}\n"
                              "  f: {uses: emit, with: {text: six}}\n");
    result r = RUN_PIPELINE(p, "-j", "6");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *steps[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < 6; i++)
        expect_status(r.out, steps[i], "done");
    result_free(&r);
}
