/* End-to-end tests of OpenLineage events (docs/lineage.md): runs of small
 * shell pipelines writing their events to a file or POSTing them to a
 * local receiver (tests/openlineage/receiver.py); every event is checked
 * against the run event's JSON schema (tests/openlineage/check_events.py,
 * with Debian's python3-jsonschema). */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "local_server.h"
#include "require.h"

TestSuite(lineage, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 60);

#define OL_DIR SLUICE_SOURCE_DIR "/tests/openlineage"

typedef struct ol_event {
    char type[16], job[160], run_id[40], parent[40], cached[8], error[256], in_type[32],
        out_type[32], version[16];
    char inputs[8][80], outputs[8][80]; /* dataset names */
    int n_inputs, n_outputs;
} ol_event;

static void copy_at(const bson_t *doc, const char *path, char *out, size_t size) {
    bson_iter_t it, found;
    *out = '\0';
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &found)) {
        if (BSON_ITER_HOLDS_UTF8(&found))
            snprintf(out, size, "%s", bson_iter_utf8(&found, NULL));
        else if (BSON_ITER_HOLDS_BOOL(&found))
            snprintf(out, size, "%s", bson_iter_bool(&found) ? "true" : "false");
    }
}

static int dataset_names(const bson_t *doc, const char *key, char names[8][80]) {
    bson_iter_t it, list;
    int n = 0;
    if (!bson_iter_init_find(&it, doc, key) || !bson_iter_recurse(&it, &list))
        return 0;
    while (bson_iter_next(&list) && n < 8) {
        bson_iter_t ds;
        if (bson_iter_recurse(&list, &ds) && bson_iter_find(&ds, "name"))
            snprintf(names[n++], 80, "%s", bson_iter_utf8(&ds, NULL));
    }
    return n;
}

/* The events of the JSON Lines file at path, in order; *n their count. */
static ol_event *read_events(const char *path, size_t *n) {
    char *text = slurp(path);
    cr_assert_not_null(text, "no events written to %s", path);
    ol_event *evs = calloc(count(text, "\n") + 1, sizeof(*evs));
    cr_assert_not_null(evs);
    *n = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl, "the last event is not a whole line");
        bson_error_t err;
        bson_t *doc = bson_new_from_json((const uint8_t *)line, nl - line, &err);
        cr_assert_not_null(doc, "not a JSON line: %.*s", (int)(nl - line), line);
        ol_event *e = &evs[(*n)++];
        copy_at(doc, "eventType", e->type, sizeof(e->type));
        copy_at(doc, "job.name", e->job, sizeof(e->job));
        copy_at(doc, "run.runId", e->run_id, sizeof(e->run_id));
        copy_at(doc, "run.facets.parent.run.runId", e->parent, sizeof(e->parent));
        copy_at(doc, "run.facets.sluice_step.cached", e->cached, sizeof(e->cached));
        copy_at(doc, "run.facets.errorMessage.message", e->error, sizeof(e->error));
        copy_at(doc, "run.facets.sluice_step.version", e->version, sizeof(e->version));
        copy_at(doc, "inputs.0.facets.sluice_artifact.type", e->in_type, sizeof(e->in_type));
        copy_at(doc, "outputs.0.facets.sluice_artifact.type", e->out_type, sizeof(e->out_type));
        e->n_inputs = dataset_names(doc, "inputs", e->inputs);
        e->n_outputs = dataset_names(doc, "outputs", e->outputs);
        bson_destroy(doc);
    }
    free(text);
    return evs;
}

/* The index of the first event of type about job, or -1. */
static long find(const ol_event *evs, size_t n, const char *type, const char *job) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(evs[i].type, type) == 0 && strcmp(evs[i].job, job) == 0)
            return (long)i;
    return -1;
}

static size_t count_type(const ol_event *evs, size_t n, const char *type) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += strcmp(evs[i].type, type) == 0;
    return k;
}

/* Every event of the file validates against the run event's schema. */
static void expect_valid(const char *events_path) {
    if (system(TEST_PYTHON " -c 'import jsonschema' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("python3-jsonschema is not installed (apt-get install "
                             "python3-jsonschema)");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             TEST_PYTHON " " OL_DIR "/check_events.py " OL_DIR "/runevent.schema.json %s",
             events_path);
    result r = run_in(NULL, NULL, (char *[]){"/bin/sh", "-c", cmd, NULL});
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
}

/* a feeds b and c; c fails, so d (after c) is skipped and never starts. */
#define BRANCHING                                                                                  \
    "pipeline: lin\n"                                                                              \
    "settings: {openlineage: %s}\n"                                                                \
    "steps:\n"                                                                                     \
    "  a: {uses: shell, with: {run: 'echo a > out', outputs: {o: out}}}\n"                         \
    "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'cat $SLUICE_INPUT_i > o2', outputs: {o: "   \
    "o2}}}\n"                                                                                      \
    "  c: {uses: shell, inputs: {i: a.o}, with: {run: 'exit 3'}}\n"                                \
    "  d: {uses: shell, after: [c], with: {run: 'true'}}\n"

static int path_exists_here(const char *path) { return access(path, F_OK) == 0; }

static char *write_pipeline(const char *name, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* A pipeline in the test's folder: format's text with the arguments. */
static char *write_pipeline(const char *name, const char *format, ...) {
    char text[2048];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    return write_test_file(test_dir, name, text);
}

Test(lineage, a_file_gets_start_then_complete_or_fail_for_every_step_in_order) {
    char events[256];
    snprintf(events, sizeof(events), "%s/events.jsonl", test_dir);
    char *p = write_pipeline("lin.yaml", BRANCHING, "events.jsonl"); /* beside the pipeline */
    result r = RUN_PIPELINE(p);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
    size_t n;
    ol_event *e = read_events(events, &n);
    /* The pipeline's run, and a, b, c: a START and an end each; d none. */
    cr_expect_eq(n, 8);
    cr_expect_eq(count_type(e, n, "START"), 4);
    cr_expect_eq(count_type(e, n, "COMPLETE"), 2);
    cr_expect_eq(count_type(e, n, "FAIL"), 2);
    cr_expect_eq(find(e, n, "START", "lin.d"), -1);
    cr_expect_eq(find(e, n, "START", "lin"), 0);
    cr_expect_eq(find(e, n, "FAIL", "lin"), (long)n - 1);
    const char *steps[] = {"lin.a", "lin.b", "lin.c"};
    for (int i = 0; i < 3; i++) {
        long start = find(e, n, "START", steps[i]);
        long end = i < 2 ? find(e, n, "COMPLETE", steps[i]) : find(e, n, "FAIL", steps[i]);
        cr_assert(start > 0 && end > start, "%s: START at %ld, end at %ld", steps[i], start, end);
        cr_expect_str_eq(e[start].run_id, e[end].run_id);
        cr_expect_str_eq(e[start].parent, e[0].run_id, "the pipeline's run is the parent");
        cr_expect_str_neq(e[start].run_id, e[0].run_id);
    }
    long a_done = find(e, n, "COMPLETE", "lin.a");
    cr_expect_lt(a_done, find(e, n, "START", "lin.b"), "upstream COMPLETE before downstream START");
    cr_expect_lt(a_done, find(e, n, "START", "lin.c"));
    /* a's output is b's input: the same dataset, named by its hash. */
    const ol_event *a = &e[a_done], *b = &e[find(e, n, "COMPLETE", "lin.b")];
    cr_assert_eq(a->n_outputs, 1);
    cr_expect_eq(strlen(a->outputs[0]), 64);
    cr_assert_eq(b->n_inputs, 1);
    cr_expect_str_eq(b->inputs[0], a->outputs[0]);
    cr_expect_eq(b->n_outputs, 1);
    const ol_event *c = &e[find(e, n, "FAIL", "lin.c")];
    cr_expect_eq(c->n_outputs, 0);
    cr_expect(strstr(c->error, "exited with status 3"), "%s", c->error);
    cr_expect_str_eq(a->cached, "false");
    free(e);
    expect_valid(events);
}

Test(lineage, a_cached_step_completes_with_cached_true_and_a_run_of_its_own) {
    char events[256];
    snprintf(events, sizeof(events), "%s/cached.jsonl", test_dir);
    char *p = write_pipeline("cached.yaml",
                             "pipeline: cached\n"
                             "settings: {openlineage: {to: '%s', namespace: team-a}}\n"
                             "steps:\n"
                             "  a: {uses: shell, with: {run: 'echo a > out', outputs: {o: out}}}\n",
                             events);
    expect_success(RUN_PIPELINE(p));
    expect_success(RUN_PIPELINE(p));
    size_t n;
    ol_event *e = read_events(events, &n);
    cr_assert_eq(n, 8, "two runs of START and COMPLETE for the pipeline and its step");
    cr_expect_str_eq(e[2].type, "COMPLETE");
    cr_expect_str_eq(e[2].cached, "false");
    cr_expect_str_eq(e[5].job, "cached.a");
    cr_expect_str_eq(e[5].type, "START");
    cr_expect_str_eq(e[6].type, "COMPLETE");
    cr_expect_str_eq(e[6].cached, "true");
    cr_expect_str_eq(e[6].outputs[0], e[2].outputs[0], "the same artifact");
    cr_expect_str_neq(e[6].run_id, e[2].run_id, "each step run has its own id");
    free(e);
    char *text = slurp(events);
    /* Per run: each event's job, the step events' parent job, the output. */
    cr_expect_eq(count(text, "\"namespace\" : \"team-a\""), 14, "%s", text);
    free(text);
    expect_valid(events);
}

/* Writes name.yaml with yaml (whose events go to name.jsonl beside it),
 * runs it expecting status, and reads its events; events is their file. */
static ol_event *run_for_events(const char *name, const char *yaml, int status, char events[256],
                                size_t *n) {
    char file[64];
    snprintf(file, sizeof(file), "%s.yaml", name);
    snprintf(events, 256, "%s/%s.jsonl", test_dir, name);
    result r = RUN_PIPELINE(write_test_file(test_dir, file, yaml));
    cr_expect_eq(r.status, status, "%s%s", r.out, r.err);
    result_free(&r);
    return read_events(events, n);
}

/* An artifact's type is the one its maker's port gives it, wherever it goes. */
Test(lineage, datasets_carry_the_type_of_the_port_that_made_them) {
    char events[256];
    size_t n;
    ol_event *e = run_for_events("typed",
                                 "pipeline: typed\n"
                                 "settings: {openlineage: typed.jsonl}\n"
                                 "steps:\n"
                                 "  t: {uses: typed}\n"
                                 "  s: {uses: shell, inputs: {d: t.docs}, with: {run: 'true'}}\n",
                                 0, events, &n);
    long t = find(e, n, "COMPLETE", "typed.t"), s = find(e, n, "COMPLETE", "typed.s");
    cr_assert(t > 0 && s > t);
    cr_expect_str_eq(e[t].out_type, "documents");
    cr_expect_str_eq(e[t].version, "1", "the plugin's version");
    cr_expect_str_eq(e[s].in_type, "documents", "not the shell step's 'any'");
    cr_expect_str_eq(e[s].inputs[0], e[t].outputs[0]);
    free(e);
    expect_valid(events);
}

Test(lineage, a_retried_step_is_one_run_with_its_attempts) {
    char events[256];
    size_t n;
    ol_event *e = run_for_events("flaky",
                                 "pipeline: flaky\n"
                                 "settings: {openlineage: flaky.jsonl}\n"
                                 "steps:\n"
                                 "  f:\n"
                                 "    uses: shell\n"
                                 "    with: {run: 'test -e @/once || { touch @/once; exit 1; }'}\n"
                                 "    retries: {max: 1, backoff: 10ms}\n",
                                 0, events, &n);
    cr_expect_eq(n, 4);
    cr_expect_eq(count_type(e, n, "START"), 2, "one START for the step, not one per attempt");
    cr_expect_eq(count_type(e, n, "FAIL"), 0);
    free(e);
    char *text = slurp(events);
    cr_expect(strstr(text, "\"status\" : \"done\", \"attempts\" : 2"), "%s", text);
    free(text);
}

Test(lineage, an_interrupted_step_gets_abort) {
    char events[256], started[256];
    snprintf(events, sizeof(events), "%s/intr.jsonl", test_dir);
    snprintf(started, sizeof(started), "%s/started", test_dir);
    char *p = write_pipeline("intr.yaml",
                             "pipeline: intr\n"
                             "settings: {openlineage: intr.jsonl}\n"
                             "steps:\n"
                             "  slow: {uses: shell, with: {run: 'touch @/started; sleep 60'}}\n"
                             "  later: {uses: shell, after: [slow], with: {run: 'true'}}\n");
    pid_t pid = start_sluice_run(p);
    wait_for_text(started, NULL);
    kill(pid, SIGINT);
    int ws;
    waitpid(pid, &ws, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 130);
    size_t n;
    ol_event *e = read_events(events, &n);
    cr_expect_eq(n, 4, "the pipeline and slow: START and ABORT; later never started");
    cr_expect_gt(find(e, n, "ABORT", "intr.slow"), find(e, n, "START", "intr.slow"));
    cr_expect_eq(find(e, n, "ABORT", "intr"), (long)n - 1);
    cr_expect_eq(find(e, n, "START", "intr.later"), -1);
    free(e);
    expect_valid(events);
}

static void expect_openlineage_refused(const char *target, const char *message) {
    char *p = write_pipeline("bad.yaml",
                             "pipeline: bad\n"
                             "settings:\n"
                             "  openlineage: '%s'\n"
                             "steps:\n  a: {uses: shell, with: {run: 'true'}}\n",
                             target);
    result r = RUN("validate", p);
    cr_expect_eq(r.status, 2, "%s: %s%s", target, r.out, r.err);
    char where[600];
    snprintf(where, sizeof(where), "%s:3:16: error: 'settings.openlineage': ", p);
    cr_expect(strstr(r.err, where) && strstr(r.err, message), "%s: %s", target, r.err);
    result_free(&r);
}

Test(lineage, a_bad_target_is_an_error_with_its_line) {
    expect_openlineage_refused("/nonexistent-sluice/ev.jsonl",
                               "its folder '/nonexistent-sluice' does not exist");
    expect_openlineage_refused("ftp://example.com/x", "is not an http:// or https:// URL");
    expect_openlineage_refused("http://", "not a valid URL");
    expect_openlineage_refused("http://exa mple.com/", "holds a space");
    expect_openlineage_refused("/tmp", "is a folder");
    char *p = write_pipeline("map.yaml", "pipeline: map\nsettings:\n  openlineage: {too: x.jsonl}\n"
                                         "steps:\n  a: {uses: shell, with: {run: 'true'}}\n");
    result r = RUN("validate", p);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, ":3:17: error: unknown key 'too' in 'settings.openlineage' (did you "
                            "mean 'to'?)"),
              "%s", r.err);
    cr_expect(strstr(r.err, ":3:16: error: 'settings.openlineage' needs 'to'"), "%s", r.err);
    result_free(&r);
    /* --openlineage is checked the same way; '' turns events off. */
    p = write_pipeline("ok.yaml",
                       "pipeline: ok\nsettings: {openlineage: '%s'}\nsteps:\n"
                       "  a: {uses: shell, with: {run: 'true'}}\n",
                       "ok.jsonl");
    r = RUN(test_store_arg, "run", p, "--openlineage", "https://");
    cr_expect_eq(r.status, 2, "%s", r.err);
    cr_expect(strstr(r.err, "sluice run: --openlineage: 'https://' is not a valid URL"), "%s",
              r.err);
    result_free(&r);
    expect_success(RUN(test_store_arg, "run", p, "--openlineage", ""));
    char ok[256];
    snprintf(ok, sizeof(ok), "%s/ok.jsonl", test_dir);
    cr_expect_not(path_exists_here(ok), "no events with --openlineage ''");
}

/* ---- HTTP ---- */

/* The figure `"key" : N` of the last run's run.json, or -1. */
static long summary_figure(const char *key) {
    char path[512], needle[64];
    snprintf(path, sizeof(path), "%s/store/runs/%s/run.json", test_dir, last_run);
    char *text = slurp(path);
    cr_assert_not_null(text, "no %s", path);
    snprintf(needle, sizeof(needle), "\"%s\" : ", key);
    const char *at = strstr(text, "\"openlineage\"");
    at = at ? strstr(at, needle) : NULL;
    long v = at ? strtol(at + strlen(needle), NULL, 10) : -1;
    free(text);
    return v;
}

/* Starts tests/openlineage/receiver.py refusing its first fail_first POSTs;
 * what it records goes to received (the test's received.jsonl). */
static pid_t start_receiver(const char *fail_first, char received[256], int *port) {
    char port_file[256];
    snprintf(port_file, sizeof(port_file), "%s/port", test_dir);
    snprintf(received, 256, "%s/received.jsonl", test_dir);
    const char *hang = strcmp(fail_first, "hang") == 0 ? "--hang" : NULL;
    return local_server_start(
        OL_DIR "/receiver.py",
        (const char *[]){"--out", received, "--fail-first", hang ? "0" : fail_first, hang, NULL},
        port_file, port);
}

Test(lineage, events_are_posted_to_a_receiver_that_fails_at_first_and_retried) {
    char received[256], url[64];
    int port;
    pid_t server = start_receiver("2", received, &port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port); /* no path: /api/v1/lineage */
    char *p = write_pipeline("lin.yaml", BRANCHING, "''");
    result r = RUN_PIPELINE(p, "--openlineage", url);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect_null(strstr(r.err, "openlineage"), "%s", r.err);
    result_free(&r);
    local_server_stop(&server);
    size_t n;
    ol_event *e = read_events(received, &n);
    cr_expect_eq(n, 8, "every event, once");
    cr_expect_str_eq(e[0].type, "START");
    cr_expect_lt(find(e, n, "COMPLETE", "lin.a"), find(e, n, "START", "lin.b"), "in order");
    free(e);
    cr_expect_eq(summary_figure("events"), 8);
    cr_expect_eq(summary_figure("delivered"), 8);
    cr_expect_eq(summary_figure("failed"), 0);
    cr_expect_eq(summary_figure("retries"), 2, "the two refused POSTs were tried again");
    expect_valid(received);
}

/* Runs a one-step pipeline sending its 4 events to the receiver on port:
 * the run succeeds whatever became of them, and says they were lost. */
static void run_losing_events(int port) {
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    char *p = write_pipeline("lost.yaml",
                             "pipeline: lost\nsettings: {openlineage: '%s'}\nsteps:\n"
                             "  a: {uses: shell, with: {run: 'true'}}\n",
                             url);
    result r = RUN_PIPELINE(p);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "sluice run: openlineage: 4 of 4 events not delivered to "), "%s",
              r.err);
    result_free(&r);
    cr_expect_eq(summary_figure("failed"), 4);
    cr_expect_eq(summary_figure("delivered"), 0);
}

Test(lineage, a_receiver_that_is_down_costs_a_warning_not_the_run) {
    char received[256];
    int port;
    pid_t server = start_receiver("0", received, &port);
    local_server_stop(&server); /* its port is now closed */
    run_losing_events(port);
    /* The first event is tried three times; once it failed, the rest once. */
    cr_expect_eq(summary_figure("retries"), 2);
}

/* A receiver that takes the request and never answers: the run still ends
 * (the suite's timeout would say otherwise), giving up on its events. */
Test(lineage, a_receiver_that_never_answers_does_not_hold_the_run) {
    char received[256];
    int port;
    pid_t server = start_receiver("hang", received, &port);
    run_losing_events(port);
    local_server_stop(&server);
}
