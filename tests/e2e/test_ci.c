/* test_ci.c - what sluice gives a CI system, with the real binary (docs/ci.md):
 * run --junit (checked with Python's xml.etree, hostile step text
 * included), sluice report in Markdown and JSON, with --against a
 * registered version, the --json events against docs/events.schema.json,
 * and the GitHub and GitLab workflows of docs/ci.md run as written. */
#include <bson/bson.h>
#include <signal.h>
#include <sys/stat.h>

#include "require.h"
#include "json_fields.h"
#include "runner.h"
#include "twin_pipeline.h"

#define PY "/usr/bin/python3"

TestSuite(ci, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 900);

/* ---- helpers ---- */

static bson_t *parse_json(const char *text) {
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, -1, &err);
    cr_assert_not_null(doc, "%s: %s", err.message, text);
    return doc;
}

static int is_null(const bson_t *doc, const char *path) {
    bson_iter_t it;
    return field(doc, path, &it) && BSON_ITER_HOLDS_NULL(&it);
}

/* sluice report ARGS --format json, which must exit 0, parsed. */
static bson_t *report_json(const char *run, const char *against) {
    char *argv[10] = {"sluice", test_store_arg, "report", (char *)run, "--format", "json"};
    size_t n = 6;
    if (against) {
        argv[n++] = "--against";
        argv[n++] = (char *)against;
    }
    argv[n] = NULL;
    result r = run_in(NULL, NULL, argv);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    bson_t *doc = parse_json(r.out);
    result_free(&r);
    return doc;
}

/* The JUnit file at path as tests/ci/junit_summary.py reads it with
 * xml.etree (which fails on XML that is not well-formed). */
static bson_t *junit(const char *path) {
    result r =
        run_in(NULL, NULL,
               (char *[]){PY, SLUICE_SOURCE_DIR "/tests/ci/junit_summary.py", (char *)path, NULL});
    cr_assert_eq(r.status, 0, "%s: %s%s", path, r.out, r.err);
    bson_t *doc = parse_json(r.out);
    result_free(&r);
    return doc;
}

/* The item of the array at array (a dotted path) whose string key is
 * value, as "ARRAY.N" into path. */
static void item_where(const bson_t *doc, const char *array, const char *key, const char *value,
                       char *path, size_t size) {
    for (int i = 0; i < 64; i++) {
        char at[128];
        bson_iter_t it;
        snprintf(at, sizeof(at), "%s.%d.%s", array, i, key);
        if (!field(doc, at, &it))
            break;
        if (BSON_ITER_HOLDS_UTF8(&it) && strcmp(bson_iter_utf8(&it, NULL), value) == 0) {
            snprintf(path, size, "%s.%d", array, i);
            return;
        }
    }
    cr_assert_fail("no item of %s with %s %s", array, key, value);
}

/* The JUnit test case of step id, as "suites.0.cases.N". */
static void case_of(const bson_t *j, const char *id, char *path, size_t size) {
    item_where(j, "suites.0.cases", "name", id, path, size);
}

static const char *case_str(const bson_t *j, const char *id, const char *key) {
    char path[128], full[160];
    case_of(j, id, path, sizeof(path));
    snprintf(full, sizeof(full), "%s.%s", path, key);
    return str(j, full);
}

/* A pipeline whose steps do everything a report shows: a metric and an
 * output (a), a shell step printing markup, an ANSI escape, a control
 * character and a byte that is not UTF-8 before it fails (noisy), a
 * plugin step failing with a hostile message (bad), and a step after the
 * failure (after). */
#define HOSTILE "</failure><x a=\\\"1\\\">&amp; ]]> | `*_ 'q' \\e[31mred\\x01 done"
static char *ci_pipeline(void) {
    return write_test_file(
        test_dir, "ci.yaml",
        "version: 1\npipeline: ci\nparams: {n: 1}\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'echo \"{\\\"name\\\": \\\"accuracy\\\", \\\"value\\\": "
        "0.75}\" >> \"$SLUICE_METRICS\"; echo ${params.n} > \"$SLUICE_OUTPUT_o\"', outputs: {o: "
        "o.txt}}}\n"
        "  noisy: {uses: shell, inputs: {x: a.o}, with: {run: 'printf \"<b>&amp;\\\\033[31m\\\\001 "
        "\\\\377 |cell|\\\\n\"; exit 3', outputs: {o: o.txt}}}\n"
        "  bad: {uses: fail, inputs: {in: a.o}, with: {reason: \"" HOSTILE "\"}}\n"
        "  after: {uses: shell, inputs: {x: noisy.o}, with: {run: 'true'}}\n");
}

/* ---- run --junit ---- */

Test(ci, junit_has_a_test_case_per_step_and_survives_hostile_text) {
    char *path = ci_pipeline();
    char pipeline_path[512], xml1[512], xml2[512];
    snprintf(pipeline_path, sizeof(pipeline_path), "%s", path);
    snprintf(xml1, sizeof(xml1), "%s/one.xml", test_dir);
    snprintf(xml2, sizeof(xml2), "%s/two.xml", test_dir);
    result r = RUN_PIPELINE(pipeline_path, "--junit", xml1);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
    char first[32];
    snprintf(first, sizeof(first), "%s", last_run);

    bson_t *j = junit(xml1);
    cr_expect_str_eq(str(j, "suites.0.name"), "ci");
    cr_expect_eq(num(j, "suites.0.tests"), 4);
    cr_expect_eq(num(j, "suites.0.failures"), 2);
    cr_expect_eq(num(j, "suites.0.skipped"), 1);
    cr_expect_eq(num(j, "suites.0.errors"), 0);
    cr_expect_str_eq(str(j, "suites.0.properties.run"), first);
    cr_expect_str_eq(str(j, "suites.0.properties.status"), "failed");
    /* In the DAG's order: a first, after (downstream of noisy) last. */
    cr_expect_str_eq(str(j, "suites.0.cases.0.name"), "a");
    cr_expect_str_eq(str(j, "suites.0.cases.3.name"), "after");
    cr_expect_str_eq(str(j, "suites.0.cases.0.classname"), "ci");
    cr_expect_str_eq(case_str(j, "a", "outcome"), "passed");
    cr_expect_str_eq(case_str(j, "a", "properties.cached"), "false");
    cr_expect_str_eq(case_str(j, "after", "outcome"), "skipped");
    cr_expect(strstr(case_str(j, "after", "message"), "'noisy'"), "%s",
              case_str(j, "after", "message"));
    /* The plugin's message, markup and all, comes back as it was written;
     * the ESC and the control character (not XML) as U+FFFD. */
    cr_expect_str_eq(case_str(j, "bad", "outcome"), "failure");
    cr_expect_str_eq(case_str(j, "bad", "message"),
                     "failed on purpose: </failure><x a=\"1\">&amp; ]]> | `*_ 'q' "
                     "\xef\xbf\xbd[31mred\xef\xbf\xbd done");
    /* The failure's text: the error, then the log's last lines. */
    const char *noisy = case_str(j, "noisy", "text");
    cr_expect(strstr(noisy, "exited with status 3"), "%s", noisy);
    cr_expect(strstr(noisy, "<b>&amp;\xef\xbf\xbd[31m\xef\xbf\xbd \xef\xbf\xbd |cell|"), "%s",
              noisy);
    bson_destroy(j);

    /* Again: a comes from the cache, a passed test with the property. */
    r = RUN_PIPELINE(pipeline_path, "--junit", xml2);
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
    j = junit(xml2);
    cr_expect_str_eq(case_str(j, "a", "outcome"), "passed");
    cr_expect_str_eq(case_str(j, "a", "properties.cached"), "true");
    char from[64];
    snprintf(from, sizeof(from), "%s/a", first);
    cr_expect_str_eq(case_str(j, "a", "properties.cached_from"), from);
    cr_expect_str_eq(case_str(j, "bad", "outcome"), "failure");
    bson_destroy(j);
}

Test(ci, junit_of_a_run_that_does_not_start_is_an_error_not_a_stale_file) {
    char xml[512];
    snprintf(xml, sizeof(xml), "%s/run.xml", test_dir);
    write_test_file(test_dir, "run.xml", "<testsuites><testsuite name=\"old\"/></testsuites>\n");
    char *path = write_test_file(test_dir, "broken.yaml",
                                 "version: 1\npipeline: b\nsteps:\n  a: {uses: nosuchstep}\n");
    result r = RUN(test_store_arg, "run", path, "--junit", xml);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    result_free(&r);
    bson_t *j = junit(xml);
    cr_expect_eq(num(j, "suites.0.errors"), 1);
    cr_expect_str_eq(case_str(j, "(run)", "outcome"), "error");
    cr_expect(strstr(case_str(j, "(run)", "message"), "exit status 2"));
    bson_destroy(j);
    /* A folder that is not there is refused before anything runs. */
    char *ok = write_test_file(test_dir, "ok.yaml",
                               "version: 1\npipeline: ok\nsteps:\n  a: {uses: shell, with: "
                               "{run: 'touch @/ran'}}\n");
    char nowhere[512], ran[512];
    snprintf(nowhere, sizeof(nowhere), "%s/no/such/folder/j.xml", test_dir);
    snprintf(ran, sizeof(ran), "%s/ran", test_dir);
    r = RUN(test_store_arg, "run", ok, "--junit", nowhere);
    expect_refused(r, 2, "--junit");
    cr_expect_neq(access(ran, F_OK), 0, "the run started");
}

Test(ci, junit_is_written_by_resume_and_for_an_interrupted_run) {
    char *path = write_test_file(test_dir, "slow.yaml",
                                 "version: 1\npipeline: slow\nsteps:\n"
                                 "  first: {uses: shell, with: {run: 'true'}}\n"
                                 "  wait: {uses: shell, after: [first], with: {run: 'if [ -e "
                                 "@/go ]; then true; else touch @/waiting; sleep 60; fi'}}\n");
    char xml[512], events[512], waiting[512];
    snprintf(xml, sizeof(xml), "%s/int.xml", test_dir);
    snprintf(events, sizeof(events), "%s/events", test_dir);
    snprintf(waiting, sizeof(waiting), "%s/waiting", test_dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int out = open(events, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        putenv(test_plugin_path);
        execl(SLUICE_BIN, "sluice", test_store_arg, "run", "--json", path, "--junit", xml,
              (char *)NULL);
        _exit(127);
    }
    wait_for_text(waiting, NULL);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
    bson_t *j = junit(xml);
    cr_expect_str_eq(str(j, "suites.0.properties.status"), "interrupted");
    cr_expect_str_eq(case_str(j, "first", "outcome"), "passed");
    cr_expect_str_eq(case_str(j, "wait", "outcome"), "error");
    char run[64];
    snprintf(run, sizeof(run), "%s", str(j, "suites.0.properties.run"));
    bson_destroy(j);

    write_test_file(test_dir, "go", "");
    char xml2[512];
    snprintf(xml2, sizeof(xml2), "%s/resumed.xml", test_dir);
    result r = RUN(test_store_arg, "resume", run, "--junit", xml2);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    j = junit(xml2);
    cr_expect_str_eq(str(j, "suites.0.properties.status"), "done");
    cr_expect_str_eq(case_str(j, "first", "properties.cached"), "true");
    cr_expect_str_eq(case_str(j, "wait", "outcome"), "passed");
    bson_destroy(j);
}

/* ---- sluice report ---- */

Test(ci, report_says_what_ran_what_came_from_the_cache_and_why) {
    char *path = ci_pipeline();
    char pipeline_path[512];
    snprintf(pipeline_path, sizeof(pipeline_path), "%s", path);
    result r = RUN_PIPELINE(pipeline_path);
    result_free(&r);
    char first[32];
    snprintf(first, sizeof(first), "%s", last_run);
    r = RUN_PIPELINE(pipeline_path);
    result_free(&r);
    char second[32];
    snprintf(second, sizeof(second), "%s", last_run);
    r = RUN_PIPELINE(pipeline_path, "-p", "n=2");
    result_free(&r);

    bson_t *doc = report_json(second, NULL);
    cr_expect_eq(num(doc, "v"), 1);
    cr_expect_str_eq(str(doc, "run"), second);
    cr_expect_str_eq(str(doc, "pipeline"), "ci");
    cr_expect_str_eq(str(doc, "status"), "failed");
    cr_expect_eq(num(doc, "counts.steps"), 4);
    cr_expect_eq(num(doc, "counts.cached"), 1);
    cr_expect_eq(num(doc, "counts.failed"), 2);
    cr_expect_eq(num(doc, "counts.skipped"), 1);
    cr_expect_str_eq(str(doc, "steps.0.step"), "a");
    cr_expect_str_eq(str(doc, "steps.0.status"), "cached");
    char from[64], why[128];
    snprintf(from, sizeof(from), "%s/a", first);
    cr_expect_str_eq(str(doc, "steps.0.cached_from"), from);
    snprintf(why, sizeof(why), "same inputs and parameters as %s/a", first);
    cr_expect_str_eq(str(doc, "steps.0.why"), why);
    cr_expect(is_null(doc, "steps.0.error"));
    cr_expect(is_null(doc, "against"));
    bson_iter_t m;
    cr_expect(bson_iter_init_find(&m, doc, "metrics") && bson_iter_recurse(&m, &m) &&
                  bson_iter_find(&m, "a.accuracy") && bson_iter_as_double(&m) == 0.75,
              "no metric a.accuracy");
    bson_destroy(doc);

    /* The third run changed a parameter: a ran, and the report says why. */
    doc = report_json("latest", NULL);
    cr_expect_str_eq(str(doc, "steps.0.status"), "done");
    snprintf(why, sizeof(why), "since run %s: parameter 'run' changed", second);
    cr_expect_str_eq(str(doc, "steps.0.why"), why);
    bson_destroy(doc);

    /* Markdown: a table, the hostile text escaped, no terminal codes. */
    r = RUN(test_store_arg, "report", second);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "| step | status | cache | took | attempts | why / error |"), "%s",
              r.out);
    cr_expect(strstr(r.out, "| `a` | cached | hit | - | 0 | same inputs and parameters as "), "%s",
              r.out);
    cr_expect(strstr(r.out, "| `bad` | **failed** | ran |"), "%s", r.out);
    cr_expect(strstr(r.out, "&lt;/failure&gt;&lt;x a=\"1\"&gt;&amp;amp; \\]\\]&gt; \\| \\`\\*\\_"),
              "%s", r.out);
    cr_expect_null(strchr(r.out, '\033'), "an escape code in %s", r.out);
    cr_expect_null(strstr(r.out, "<x"), "%s", r.out);
    cr_expect(strstr(r.out, "| `a.accuracy` | 0.75 |"), "%s", r.out);
    /* Every row of the steps table has its six cells. */
    const char *t = strstr(r.out, "### Steps");
    cr_assert_not_null(t);
    for (const char *line = strstr(t, "\n| `"); line && strncmp(line, "\n| `", 4) == 0;
         line = strchr(line + 1, '\n')) {
        size_t pipes = 0;
        for (const char *c = line + 1; *c && *c != '\n'; c++)
            pipes += *c == '|' && c[-1] != '\\';
        cr_expect_eq(pipes, 7, "%.200s", line + 1);
    }
    result_free(&r);
}

Test(ci, report_refuses_unknown_runs_models_and_formats) {
    char *path = ci_pipeline();
    result r = RUN_PIPELINE(path);
    result_free(&r);
    r = RUN(test_store_arg, "report", "29990101");
    expect_refused(r, 2, "29990101");
    r = RUN(test_store_arg, "report", "latest", "--against", "nomodel@production");
    expect_refused(r, 2, "no model is called 'nomodel'");
    r = RUN(test_store_arg, "report", "latest", "--against", "Bad Name");
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = RUN(test_store_arg, "report", "latest", "--format", "html");
    expect_refused(r, 2, "markdown or json");
    r = RUN(test_store_arg, "report");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}

/* The registry tests' twin, whose evaluation also reports bleu 0.PPL. */
static char *twin_with_bleu(void) {
    return twin_pipeline("  bleu:\n"
                         "    uses: shell\n"
                         "    inputs: {model: train.model}\n"
                         "    with: {run: 'echo \"{\\\"name\\\": \\\"bleu\\\", \\\"value\\\": "
                         "0.${params.ppl}}\" >> \"$SLUICE_METRICS\"'}\n");
}

static void train_twin(const char *path, int seed, int ppl, char *run, size_t size) {
    char s[32], p[32];
    snprintf(s, sizeof(s), "seed=%d", seed);
    snprintf(p, sizeof(p), "ppl=%d", ppl);
    result r = RUN_PIPELINE((char *)path, "-p", s, "-p", p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    snprintf(run, size, "%s", last_run);
}

/* The comparison entry of metric name in a report. */
static void comparison(const bson_t *doc, const char *name, char *path, size_t size) {
    item_where(doc, "against.metrics", "name", name, path, size);
}

static const char *verdict(const bson_t *doc, const char *name) {
    char path[64], full[96];
    comparison(doc, name, path, sizeof(path));
    snprintf(full, sizeof(full), "%s.verdict", path);
    return is_null(doc, full) ? "null" : str(doc, full);
}

Test(ci, report_against_a_registered_version_marks_better_and_worse) {
    char path[512], v1[32], v2[32], v3[32];
    snprintf(path, sizeof(path), "%s", twin_with_bleu());
    train_twin(path, 1, 50, v1, sizeof(v1));
    /* Nothing at production yet: said, and not an error. */
    result r = RUN(test_store_arg, "report", v1, "--against", "twin@production");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "nothing to compare"), "%s", r.err);
    cr_expect(strstr(r.out, "No version is there yet"), "%s", r.out);
    result_free(&r);
    bson_t *doc = report_json(v1, "twin@production");
    cr_expect(is_null(doc, "against.version"));
    cr_expect_eq(num(doc, "against.candidate.version"), 1);
    bson_destroy(doc);

    r = RUN(test_store_arg, "models", "promote", "twin@1", "production");
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    train_twin(path, 2, 60, v2, sizeof(v2));
    train_twin(path, 3, 40, v3, sizeof(v3));

    doc = report_json(v3, "twin@production");
    cr_expect_str_eq(str(doc, "against.model"), "twin");
    cr_expect_eq(num(doc, "against.version"), 1);
    cr_expect_str_eq(str(doc, "against.candidate.from"), "version");
    cr_expect_eq(num(doc, "against.candidate.version"), 3);
    char at[64], key[96];
    comparison(doc, "perplexity", at, sizeof(at));
    snprintf(key, sizeof(key), "%s.baseline", at);
    cr_expect_eq(num(doc, key), 50);
    snprintf(key, sizeof(key), "%s.run", at);
    cr_expect_eq(num(doc, key), 40);
    snprintf(key, sizeof(key), "%s.change", at);
    cr_expect_eq(num(doc, key), -10);
    snprintf(key, sizeof(key), "%s.direction", at);
    cr_expect_str_eq(str(doc, key), "lower");
    cr_expect_str_eq(verdict(doc, "perplexity"), "better");
    /* bleu 0.4 against 0.5: higher is better, so worse. */
    cr_expect_str_eq(verdict(doc, "bleu"), "worse");
    bson_destroy(doc);

    doc = report_json(v2, "twin@production");
    cr_expect_eq(num(doc, "against.candidate.version"), 2);
    cr_expect_str_eq(verdict(doc, "perplexity"), "worse");
    cr_expect_str_eq(verdict(doc, "bleu"), "better");
    bson_destroy(doc);
    /* A version number names the other side too. */
    doc = report_json(v3, "twin@2");
    cr_expect_eq(num(doc, "against.version"), 2);
    cr_expect_str_eq(verdict(doc, "perplexity"), "better");
    bson_destroy(doc);
    /* The same version on both sides. */
    doc = report_json(v1, "twin@production");
    cr_expect_str_eq(verdict(doc, "perplexity"), "same");
    bson_destroy(doc);

    r = RUN(test_store_arg, "report", v3, "--against", "twin@production");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "### Against `twin@production` (twin@1)"), "%s", r.out);
    cr_expect(strstr(r.out, "| `perplexity` | 50 | 40 | -10 (-20.0%) | **better** (lower is "
                            "better) |"),
              "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "report", v3, "--against", "twin@9");
    expect_refused(r, 2, "no version 9");
}

Test(ci, report_against_takes_a_runs_own_metrics_when_it_made_no_version) {
    char path[512], v1[32];
    snprintf(path, sizeof(path), "%s", twin_with_bleu());
    train_twin(path, 1, 50, v1, sizeof(v1));
    result r = RUN(test_store_arg, "models", "promote", "twin@1", "production");
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char *other = write_test_file(test_dir, "other.yaml",
                                  "version: 1\npipeline: other\nsteps:\n"
                                  "  m: {uses: shell, with: {run: 'echo \"{\\\"name\\\": "
                                  "\\\"perplexity\\\", \\\"value\\\": 70}\" >> "
                                  "\"$SLUICE_METRICS\"'}}\n");
    r = RUN_PIPELINE(other);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    bson_t *doc = report_json("latest", "twin@production");
    cr_expect_str_eq(str(doc, "against.candidate.from"), "run");
    cr_expect(is_null(doc, "against.candidate.version"));
    cr_expect_str_eq(verdict(doc, "perplexity"), "worse");
    /* bleu only the version has: listed, with no verdict. */
    cr_expect_str_eq(verdict(doc, "bleu"), "null");
    bson_destroy(doc);
}

/* ---- the --json events against docs/events.schema.json ---- */

static void require_jsonschema(void) {
    if (system(PY " -c 'import jsonschema' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("python3-jsonschema is not installed (apt-get install "
                             "python3-jsonschema)");
}

/* Runs tests/openlineage/check_events.py on the events in path against
 * the documented schema; returns its exit status, its output in *out. */
static int check_events(const char *path, char **out) {
    result r = run_in(NULL, NULL,
                      (char *[]){PY, SLUICE_SOURCE_DIR "/tests/openlineage/check_events.py",
                                 SLUICE_SOURCE_DIR "/docs/events.schema.json", (char *)path, NULL});
    *out = r.out;
    free(r.err);
    return r.status;
}

static void append_file(const char *path, const char *text) {
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(ci, every_event_of_real_runs_matches_the_documented_schema) {
    require_jsonschema();
    /* retried: fails its first attempt; a, noisy, bad, after as above. */
    char *path = write_test_file(
        test_dir, "events.yaml",
        "version: 1\npipeline: ev\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'echo \"{\\\"name\\\": \\\"nan\\\", \\\"value\\\": "
        "1}\" >> \"$SLUICE_METRICS\"; echo hello; echo oops >&2; echo a > \"$SLUICE_OUTPUT_o\"', "
        "outputs: {o: o.txt}}}\n"
        "  retried: {uses: shell, retries: {max: 1, backoff: 10ms}, with: {run: 'if [ -e @/once ]; "
        "then "
        "true; else touch @/once; exit 1; fi'}}\n"
        "  bad: {uses: fail, inputs: {in: a.o}, with: {reason: \"" HOSTILE "\"}}\n"
        "  after: {uses: shell, after: [bad], with: {run: 'true'}}\n"
        "  emit: {uses: emit, with: {text: hi}}\n");
    char events[512];
    snprintf(events, sizeof(events), "%s/events.jsonl", test_dir);
    char pipeline_path[512];
    snprintf(pipeline_path, sizeof(pipeline_path), "%s", path);
    result r = RUN_PIPELINE(pipeline_path);
    cr_expect_eq(r.status, 1, "%s", r.err);
    append_file(events, r.out);
    result_free(&r);
    r = RUN_PIPELINE(pipeline_path); /* a and emit from the cache */
    append_file(events, r.out);
    result_free(&r);
    char *text = slurp(events);
    cr_assert_not_null(text);
    static const char *const kinds[] = {"run_started",   "step_started", "step_log",
                                        "step_metric",   "step_retry",   "step_outputs",
                                        "step_finished", "run_finished"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        cr_expect_geq(event_at(text, kinds[i], NULL), 0, "no %s event", kinds[i]);
    cr_expect(strstr(text, "\"status\" : \"cached\""), "no cached step");
    cr_expect(strstr(text, "\"status\" : \"skipped\""), "no skipped step");
    size_t lines = count(text, "\n");
    cr_expect_eq(count(text, "{ \"v\" : 1, \"event\" : "), lines, "an event without v: %s", text);
    free(text);
    char *out;
    int status = check_events(events, &out);
    cr_expect_eq(status, 0, "%s", out);
    free(out);

    /* The check can fail: a field the schema does not document, an
     * unknown event, a missing v. */
    static const char *const bad[] = {
        "{\"v\": 1, \"event\": \"step_log\", \"time\": \"2026-01-01T00:00:00.000Z\", \"step\": "
        "\"a\", \"level\": \"info\", \"message\": \"m\", \"extra\": 1}\n",
        "{\"v\": 1, \"event\": \"step_teleported\", \"time\": \"2026-01-01T00:00:00.000Z\"}\n",
        "{\"event\": \"run_finished\", \"time\": \"2026-01-01T00:00:00.000Z\", \"run\": \"r\", "
        "\"status\": \"done\", \"done\": 1, \"cached\": 0, \"failed\": 0, \"skipped\": 0, "
        "\"cancelled\": 0, \"seconds\": 1.0}\n",
        "{\"v\": 1, \"event\": \"step_finished\", \"time\": \"2026-01-01T00:00:00.000Z\", "
        "\"step\": \"a\", \"status\": \"failed\", \"attempts\": 1, \"seconds\": 1.0}\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char one[512];
        snprintf(one, sizeof(one), "%s/bad%zu.jsonl", test_dir, i);
        append_file(one, bad[i]);
        cr_expect_eq(check_events(one, &out), 1, "accepted: %s", bad[i]);
        free(out);
    }
}

Test(ci, events_md_documents_exactly_the_schemas_events) {
    /* Each "### `NAME`" of docs/events.md is an event type of the schema,
     * and each of the schema's types has its section. */
    result r = run_in(
        NULL, NULL,
        (char *[]){PY, "-c",
                   "import json, re, sys\n"
                   "doc = open(sys.argv[1]).read()\n"
                   "schema = json.load(open(sys.argv[2]))\n"
                   "documented = set(re.findall(r'^### `([a-z_]+)`$', doc, re.M))\n"
                   "typed = set(schema['properties']['event']['enum'])\n"
                   "covered = {c['if']['properties']['event']['const'] for c in schema['allOf']}\n"
                   "print(sorted(documented), sorted(typed), sorted(covered))\n"
                   "sys.exit(0 if documented == typed == covered and len(typed) == 9 else 1)\n",
                   SLUICE_SOURCE_DIR "/docs/events.md",
                   SLUICE_SOURCE_DIR "/docs/events.schema.json", NULL});
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
}

/* ---- docs/ci.md's workflows, as written ---- */

/* Runs the shell commands of docs/ci.md's workflow which (github, gitlab)
 * in the source tree, against the test's store. */
static result run_workflow(const char *which) {
    char store[128], cmd[1024];
    snprintf(store, sizeof(store), "%s/store", test_dir);
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && exec env -u SLUICE_PLUGIN_PATH SLUICE_HOME='%s' " PY
             " tests/ci/ci_doc.py docs/ci.md %s",
             SLUICE_SOURCE_DIR, store, which);
    return run_in(NULL, NULL, (char *[]){"/bin/sh", "-c", cmd, NULL});
}

Test(ci, the_workflows_of_docs_ci_md_run_as_written) {
    if (system(PY " -c 'import yaml' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("python3-yaml is not installed (apt-get install python3-yaml)");
    /* The posting lines are the only ones left out. */
    result r = run_in(NULL, NULL,
                      (char *[]){PY, SLUICE_SOURCE_DIR "/tests/ci/ci_doc.py",
                                 SLUICE_SOURCE_DIR "/docs/ci.md", "github", "--list", NULL});
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "\n:\n"), 1, "%s", r.out);
    cr_expect(strstr(r.out, "--junit build/sluice-junit.xml"), "%s", r.out);
    cr_expect(strstr(r.out, "report latest --against twin@production --format markdown"), "%s",
              r.out);
    cr_expect(strstr(r.out, "models promote \"twin@$version\" production"), "%s", r.out);
    cr_expect_null(strstr(r.out, "curl"), "%s", r.out);
    result_free(&r);

    /* First, on an empty store: nothing in production to compare with; the
     * model made becomes production. */
    r = run_workflow("github");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "twin@1 is now production"), "%s", r.out);
    result_free(&r);
    char *md = slurp(SLUICE_SOURCE_DIR "/build/report.md");
    cr_assert_not_null(md);
    cr_expect(strstr(md, "## sluice report: `twin`"), "%s", md);
    cr_expect(strstr(md, "No version is there yet"), "%s", md);
    free(md);
    bson_t *j = junit(SLUICE_SOURCE_DIR "/build/sluice-junit.xml");
    cr_expect_str_eq(str(j, "suites.0.name"), "twin");
    cr_expect_eq(num(j, "suites.0.tests"), 5);
    cr_expect_eq(num(j, "suites.0.failures"), 0);
    cr_expect_str_eq(case_str(j, "evaluate", "outcome"), "passed");
    bson_destroy(j);
    char *comment = slurp(SLUICE_SOURCE_DIR "/build/comment.json");
    cr_assert_not_null(comment);
    bson_t *c = parse_json(comment);
    cr_expect(strstr(str(c, "body"), "## sluice report"));
    bson_destroy(c);
    free(comment);

    /* Then GitLab's job on the same store: everything from the cache, the
     * same version, compared with itself and already production. */
    r = run_workflow("gitlab");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    md = slurp(SLUICE_SOURCE_DIR "/build/report.md");
    cr_assert_not_null(md);
    cr_expect(strstr(md, "### Against `twin@production` (twin@1)"), "%s", md);
    cr_expect(strstr(md, "| `perplexity` |"), "%s", md);
    cr_expect(strstr(md, "| same |"), "%s", md);
    free(md);
    j = junit(SLUICE_SOURCE_DIR "/build/sluice-junit.xml");
    cr_expect_str_eq(case_str(j, "train", "properties.cached"), "true");
    bson_destroy(j);
    r = RUN(test_store_arg, "models", "show", "twin@production", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"version\" : 1"), "%s", r.out);
    result_free(&r);
}
