/* test_ui.c - sluice ui, the dashboard: its JSON API over runs the real
 * binary made, then its pages in headless Chromium (tests/ui/dashboard.mjs,
 * with puppeteer-core from tests/package.json). */
#include <bson/bson.h>
#include <signal.h>
#include <sys/stat.h>

#include "json_fields.h"
#include "raw_http.h"
#include "require.h"
#include "runner.h"
#include "twin_pipeline.h"
#include "ui_proc.h"

/* a: 7 points of a loss series and an output; b reads it; c fails. */
#define DEMO_PIPELINE                                                                              \
    "pipeline: ui_demo\n"                                                                          \
    "steps:\n"                                                                                     \
    "  a:\n"                                                                                       \
    "    uses: shell\n"                                                                            \
    "    with:\n"                                                                                  \
    "      run: 'for i in 1 2 3 4 5 6 7; do echo \"{\\\"name\\\": \\\"loss\\\", \\\"value\\\": "   \
    "$i, \\\"step\\\": $i}\" >> \"$SLUICE_METRICS\"; done; echo one > out'\n"                      \
    "      outputs: {o: out}\n"                                                                    \
    "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'cat \"$SLUICE_INPUT_i\" > o2; echo two "    \
    ">> o2', outputs: {o: o2}}}\n"                                                                 \
    "  c: {uses: shell, after: [b], with: {run: 'echo about to fail; exit 3'}}\n"

/* w waits for a file the test (or the browser test) makes; z follows. */
#define LIVE_PIPELINE                                                                              \
    "pipeline: ui_live\n"                                                                          \
    "steps:\n"                                                                                     \
    "  w: {uses: shell, with: {run: 'while [ ! -e @/go ]; do sleep 0.05; done'}}\n"                \
    "  z: {uses: shell, after: [w], with: {run: 'true'}}\n"

/* Starts sluice ui with the API key in key_file, when given; else polling
 * fast, for the events route. */
static void start_ui_with(const char *key_file) {
    if (key_file)
        start_ui_opts((const char *[]){"--api-key-file", key_file, NULL});
    else
        start_ui_opts((const char *[]){"--poll-ms", "50", NULL});
}

static void start_ui(void) { start_ui_with(NULL); }

/* GET path: the status, and the body parsed as JSON into doc (when it is). */
static char response[1 << 20];
static int get(const char *path, bson_t *doc) {
    char req[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    exchange(ui_port, req, response, sizeof(response));
    const char *body = strstr(response, "\r\n\r\n");
    cr_assert_not_null(body, "no answer to %s", path);
    bson_error_t err;
    if (doc && !bson_init_from_json(doc, body + 4, -1, &err))
        cr_assert_fail("GET %s: not JSON (%s): %s", path, err.message, body + 4);
    return status_of(response);
}

static void setup(void) { test_dir_setup(); }
static void teardown(void) {
    stop_ui();
    test_dir_teardown();
}

TestSuite(ui, .init = setup, .fini = teardown, .timeout = 240);

/* The state of a step in /api/runs/ID. */
static const char *step_state(const bson_t *run, const char *step) {
    bson_iter_t it, e;
    cr_assert(field(run, "step_runs", &it) && bson_iter_recurse(&it, &e));
    bson_t item;
    while (next_document(&e, &item))
        if (!strcmp(str(&item, "step"), step))
            return str(&item, "state");
    return "absent";
}

static char *step_output(const bson_t *run, const char *step, char *out) {
    bson_iter_t it, e;
    cr_assert(field(run, "step_runs", &it) && bson_iter_recurse(&it, &e));
    bson_t item;
    while (next_document(&e, &item))
        if (!strcmp(str(&item, "step"), step)) {
            snprintf(out, 65, "%s", str(&item, "outputs.o"));
            return out;
        }
    cr_assert_fail("no step %s", step);
    return NULL;
}

Test(ui, api_and_pages) {
    char path[512], demo_run[64], live_run[64], a_out[65], b_out[65];
    char *p = write_test_file(test_dir, "demo.yaml", DEMO_PIPELINE);
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 1, "step c fails: %s", r.err);
    result_free(&r);
    snprintf(demo_run, sizeof(demo_run), "%s", last_run);
    p = write_test_file(test_dir, "live.yaml", LIVE_PIPELINE);
    pid_t live = start_sluice_run(p);
    start_ui();

    /* The live run shows up, newest first, running. */
    bson_t doc;
    for (;;) {
        cr_assert_eq(get("/api/runs", &doc), 200);
        bson_iter_t it;
        int n = field(&doc, "runs", &it) ? (int)bson_count_keys(&doc) : 0;
        (void)n;
        int two = field(&doc, "runs.1.run", &it);
        int running = two && !strcmp(str(&doc, "runs.0.status"), "running");
        if (two && running) {
            snprintf(live_run, sizeof(live_run), "%s", str(&doc, "runs.0.run"));
            cr_expect_str_eq(str(&doc, "runs.1.run"), demo_run, "newest first");
            cr_expect_str_eq(str(&doc, "runs.1.status"), "failed");
            cr_expect_str_eq(str(&doc, "runs.0.pipeline"), "ui_live");
            bson_destroy(&doc);
            break;
        }
        bson_destroy(&doc);
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }

    /* Pages of one, through the cursor; filters. */
    cr_assert_eq(get("/api/runs?limit=1", &doc), 200);
    cr_expect_str_eq(str(&doc, "runs.0.run"), live_run);
    snprintf(path, sizeof(path), "/api/runs?limit=1&cursor=%s", str(&doc, "next"));
    bson_destroy(&doc);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(str(&doc, "runs.0.run"), demo_run, "the second page");
    bson_destroy(&doc);
    cr_assert_eq(get("/api/runs?pipeline=ui_demo&status=failed", &doc), 200);
    cr_expect_str_eq(str(&doc, "runs.0.run"), demo_run);
    bson_iter_t it;
    cr_expect_not(field(&doc, "runs.1", &it), "one run of ui_demo");
    bson_destroy(&doc);
    cr_expect_eq(get("/api/runs?limit=0", &doc), 400);
    bson_destroy(&doc);

    /* A run: each step's state, why it ran, its outputs. */
    snprintf(path, sizeof(path), "/api/runs/%s", demo_run);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(step_state(&doc, "a"), "done");
    cr_expect_str_eq(step_state(&doc, "b"), "done");
    cr_expect_str_eq(step_state(&doc, "c"), "failed");
    cr_expect_eq(num(&doc, "step_runs.0.metrics.loss"), 7, "a's loss, its last point");
    step_output(&doc, "a", a_out);
    step_output(&doc, "b", b_out);
    bson_destroy(&doc);
    snprintf(path, sizeof(path), "/api/runs/%s", live_run);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(step_state(&doc, "z"), "waiting", "a step not started yet");
    bson_destroy(&doc);
    cr_expect_eq(get("/api/runs/nosuchrun", &doc), 404);
    bson_destroy(&doc);

    /* Its DAG as SVG: sluice graph's nodes, each with its state in words. */
    snprintf(path, sizeof(path), "/api/runs/%s/graph.svg", demo_run);
    cr_assert_eq(get(path, NULL), 200);
    cr_expect(strstr(response, "Content-Type: image/svg+xml"));
    cr_expect(strstr(response, "<svg"));
    cr_expect(strstr(response, "class=\"node failed\""), "%s", response);
    cr_expect(strstr(response, ">failed "), "the state in words");
    cr_expect_eq(count(response, "class=\"node done\""), 2);

    /* A step's log. */
    snprintf(path, sizeof(path), "/api/runs/%s/steps/c/log", demo_run);
    cr_assert_eq(get(path, NULL), 200);
    cr_expect(strstr(response, "about to fail"), "%s", response);

    /* The series: one point per metric recorded; a metric across runs. */
    snprintf(path, sizeof(path), "/api/metrics?run=%s", demo_run);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(str(&doc, "steps.0.step"), "a");
    cr_expect(field(&doc, "steps.0.points.6", &it) && !field(&doc, "steps.0.points.7", &it),
              "7 points");
    cr_expect_eq(num(&doc, "steps.0.points.6.value"), 7);
    bson_destroy(&doc);
    cr_assert_eq(get("/api/metrics?name=loss", &doc), 200);
    cr_expect_str_eq(str(&doc, "points.0.run"), demo_run);
    bson_destroy(&doc);

    /* An artifact with its preview, its download, and its lineage. */
    snprintf(path, sizeof(path), "/api/artifacts/%.10s", b_out);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(str(&doc, "artifact"), b_out);
    cr_expect_str_eq(str(&doc, "preview_kind"), "text");
    cr_expect_str_eq(str(&doc, "text"), "one\ntwo\n");
    cr_expect_str_eq(str(&doc, "step"), "b");
    bson_destroy(&doc);
    snprintf(path, sizeof(path), "/api/artifacts/%s?download", b_out);
    cr_assert_eq(get(path, NULL), 200);
    cr_expect(strstr(response, "\r\n\r\none\ntwo\n"));
    snprintf(path, sizeof(path), "/api/lineage/%s", a_out);
    cr_assert_eq(get(path, &doc), 200);
    char *json = bson_as_relaxed_extended_json(&doc, NULL);
    cr_expect(strstr(json, b_out), "downwards: b's output");
    char step_b[128];
    snprintf(step_b, sizeof(step_b), "s:%s/b", demo_run);
    cr_expect(strstr(json, step_b), "the step between");
    bson_free(json);
    bson_destroy(&doc);
    snprintf(path, sizeof(path), "/api/lineage/%s/graph.svg", b_out);
    cr_assert_eq(get(path, NULL), 200);
    cr_expect(strstr(response, a_out), "upwards, a's output is linked");

    /* The rest answers; writes are refused without a key. */
    cr_expect_eq(get("/api/models", &doc), 200);
    bson_destroy(&doc);
    cr_expect_eq(get("/api/schedules", &doc), 200);
    bson_destroy(&doc);
    cr_expect_eq(get("/api/traces", &doc), 200);
    bson_destroy(&doc);
    char req[512];
    post(req, sizeof(req), "/api/runs/latest/cancel", "{}");
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 403, "read-only: %s", response);
    cr_expect_eq(get("/api/nothing", &doc), 404);
    bson_destroy(&doc);
    cr_expect_eq(get("/", NULL), 200);
    cr_expect(strstr(response, "/assets/app.js"));
    cr_expect_eq(get("/assets/app.js", NULL), 200);

    /* The events of a finished run: its state, then the end. */
    snprintf(path, sizeof(path), "/api/runs/%s/events", demo_run);
    cr_assert_eq(get(path, NULL), 200);
    cr_expect(strstr(response, "text/event-stream"));
    cr_expect(strstr(response, "event: state\ndata: {"));
    cr_expect(strstr(response, "\"c\" : \"failed\""));
    cr_expect(strstr(response, "event: end"));

    /* The pages in a browser; it makes the file the live run waits for. */
    char go[256];
    snprintf(go, sizeof(go), "%s/go", test_dir);
    char script[512], modules[512];
    snprintf(script, sizeof(script), "%s/tests/ui/dashboard.mjs", SLUICE_SOURCE_DIR);
    snprintf(modules, sizeof(modules), "%s/tests/node_modules/puppeteer-core", SLUICE_SOURCE_DIR);
    int browser = access("/usr/bin/chromium", X_OK) == 0 && access(modules, F_OK) == 0 &&
                  system("node --version >/dev/null 2>&1") == 0;
    if (browser) {
        const char *dir = getenv("SLUICE_TEST_ARTIFACTS");
        char shots[512];
        snprintf(shots, sizeof(shots), "%s/ui-screenshots", dir && *dir ? dir : test_dir);
        mkdir(shots, 0755);
        char spec_json[4096];
        snprintf(spec_json, sizeof(spec_json),
                 "{\"base\": \"http://127.0.0.1:%d\", \"screenshots\": \"%s\", \"runs\": [\"%s\", "
                 "\"%s\"], \"done\": {\"run\": \"%s\", \"steps\": {\"a\": \"done\", \"b\": "
                 "\"done\", \"c\": \"failed\"}}, \"live\": {\"run\": \"%s\", \"step\": \"w\", "
                 "\"file\": \"%s\"}, \"chart\": {\"run\": \"%s\", \"title\": \"a: loss\", "
                 "\"points\": 7}, \"lineage\": {\"artifact\": \"%s\", \"links\": [\"%s\", "
                 "\"%s\"]}}",
                 ui_port, shots, demo_run, live_run, demo_run, live_run, go, demo_run, b_out, a_out,
                 b_out);
        char *spec = write_test_file(test_dir, "spec.json", spec_json);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd), "node %s %s > %s/browser.out 2>&1", script, spec, test_dir);
        int rc = system(cmd);
        snprintf(path, sizeof(path), "%s/browser.out", test_dir);
        char *out = slurp(path);
        cr_expect_eq(rc, 0, "the browser test:\n%s", out ? out : "");
        if (getenv("SLUICE_TEST_VERBOSE"))
            fprintf(stderr, "%s", out ? out : "");
        free(out);
    }
    /* The live run ends once its file is there. */
    FILE *f = fopen(go, "a");
    cr_assert_not_null(f);
    fclose(f);
    int ws;
    waitpid(live, &ws, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    snprintf(path, sizeof(path), "/api/runs/%s", live_run);
    cr_assert_eq(get(path, &doc), 200);
    cr_expect_str_eq(str(&doc, "status"), "done");
    cr_expect_str_eq(step_state(&doc, "z"), "done");
    bson_destroy(&doc);
    if (!browser)
        SKIP_UNLESS_REQUIRED("chromium, node or puppeteer-core (npm ci in tests/) is missing: the "
                             "browser half was not run");
}

/* With an API key: a write without it is refused, with it a running run
 * is cancelled (its sluice gets SIGTERM, as from a terminal). */
Test(ui, cancel_needs_the_key) {
    char *key = write_test_file(test_dir, "key", "0123456789abcdef-test-key\n");
    char key_path[512];
    snprintf(key_path, sizeof(key_path), "%s", key);
    char *p = write_test_file(test_dir, "live.yaml", LIVE_PIPELINE);
    pid_t live = start_sluice_run(p);
    start_ui_with(key_path);
    /* Wait until the run is recorded as running. */
    bson_t doc;
    for (;;) {
        int status = get("/api/runs/latest", &doc);
        bson_iter_t it;
        int running =
            status == 200 && field(&doc, "status", &it) && !strcmp(str(&doc, "status"), "running");
        bson_destroy(&doc);
        if (running)
            break;
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    char req[512];
    post(req, sizeof(req), "/api/runs/latest/cancel", "{}");
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 401, "no key: %s", response);
    snprintf(req, sizeof(req),
             "POST /api/runs/latest/cancel HTTP/1.1\r\nHost: t\r\nConnection: "
             "close\r\nAuthorization: Bearer "
             "0123456789abcdef-test-key\r\nContent-Length: 0\r\n\r\n");
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 202, "%s", response);
    int ws;
    waitpid(live, &ws, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 143, "the run's sluice ends as on SIGTERM");
    cr_assert_eq(get("/api/runs/latest", &doc), 200);
    cr_expect_str_neq(str(&doc, "status"), "running");
    bson_destroy(&doc);
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 409, "no longer running: %s", response);
}

/* With the key, a version of a model is promoted through the registry's
 * gates; the models route then shows the alias and the audit entry. */
Test(ui, promote_with_the_key) {
    char *key = write_test_file(test_dir, "key", "0123456789abcdef-test-key\n");
    char key_path[512];
    snprintf(key_path, sizeof(key_path), "%s", key);
    char *p = twin_pipeline("");
    char *argv[] = {"sluice", test_store_arg, "run", p, NULL};
    expect_success(run_in(NULL, NULL, argv));
    start_ui_with(key_path);
    const char *body = "{\"alias\": \"production\", \"version\": 1, \"if\": [\"perplexity < 10\"]}";
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /api/models/twin/promote HTTP/1.1\r\nHost: t\r\nConnection: "
             "close\r\nAuthorization: Bearer "
             "0123456789abcdef-test-key\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 409, "the gate holds it back: %s", response);
    cr_expect(strstr(response, "perplexity"), "%s", response);
    body = "{\"alias\": \"production\", \"version\": 1, \"reason\": \"from the ui\"}";
    snprintf(req, sizeof(req),
             "POST /api/models/twin/promote HTTP/1.1\r\nHost: t\r\nConnection: "
             "close\r\nAuthorization: Bearer "
             "0123456789abcdef-test-key\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 200, "%s", response);
    cr_expect(strstr(response, "\"promoted\""), "%s", response);
    bson_t doc;
    cr_assert_eq(get("/api/models", &doc), 200);
    cr_expect_str_eq(str(&doc, "models.0.name"), "twin");
    cr_expect_eq(num(&doc, "models.0.aliases.production.version"), 1);
    cr_expect_str_eq(str(&doc, "models.0.audit.0.reason"), "from the ui");
    cr_expect_eq(num(&doc, "models.0.versions.0.metrics.perplexity"), 50);
    bson_destroy(&doc);
}

/* POST with the test's API key. */
static int post_with_key(const char *path) {
    char req[512];
    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer "
             "0123456789abcdef-test-key\r\nContent-Length: 0\r\n\r\n",
             path);
    exchange(ui_port, req, response, sizeof(response));
    return status_of(response);
}

Test(ui, trigger_fires_a_schedule_with_the_key) {
    char *key = write_test_file(test_dir, "key", "0123456789abcdef-test-key\n");
    char key_path[512];
    snprintf(key_path, sizeof(key_path), "%s", key);
    char *p = write_test_file(test_dir, "fired.yaml",
                              "pipeline: fired\nsteps:\n  a: {uses: shell, with: {run: 'true'}}\n");
    expect_success(RUN(test_store_arg, "schedule", "add", "nightly", p, "--every", "24h"));
    start_ui_with(key_path);
    char req[512];
    post(req, sizeof(req), "/api/schedules/nightly/trigger", "{}");
    exchange(ui_port, req, response, sizeof(response));
    cr_expect_eq(status_of(response), 401, "no key: %s", response);
    cr_expect_eq(post_with_key("/api/schedules/nosuch/trigger"), 404, "%s", response);
    cr_expect_eq(post_with_key("/api/schedules/nightly/trigger"), 202, "%s", response);
    cr_expect(strstr(response, "\"trigger\" : \"ui\""), "%s", response);
    /* the fired run ends, with its cause */
    for (int i = 0;; i++) {
        result r = RUN(test_store_arg, "runs", "list", "--json");
        int done = strstr(r.out, "\"status\" : \"done\"") != NULL;
        if (done || i == 1500) {
            cr_expect(done, "the fired run never finished: %s", r.out);
            cr_expect(strstr(r.out, "\"trigger\" : \"ui\""), "%s", r.out);
            result_free(&r);
            break;
        }
        result_free(&r);
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    expect_success(RUN(test_store_arg, "schedule", "pause", "nightly"));
    cr_expect_eq(post_with_key("/api/schedules/nightly/trigger"), 409, "%s", response);
}

/* A step input from the store ("artifact:ID") is a source node of the run's
 * graph, linking to the artifact the step run read. */
Test(ui, graph_svg_draws_artifact_inputs) {
    char *f = write_test_file(test_dir, "greeting.txt", "hello\n");
    result r =
        RUN(test_store_arg, "artifacts", "import", f, "--type", "text", "--name", "greeting");
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *hash = strstr(r.out, "as artifact ");
    cr_assert_not_null(hash, "%s", r.out);
    char href[128];
    snprintf(href, sizeof(href), "xlink:href=\"#/artifact/%.64s\"", hash + 12);
    result_free(&r);
    char *p = write_test_file(test_dir, "reads.yaml",
                              "pipeline: reads\nsteps:\n  a: {uses: shell, inputs: {g: "
                              "\"artifact:greeting\"}, with: {run: 'cat \"$SLUICE_INPUT_g\"'}}\n");
    expect_success(RUN_PIPELINE(p));
    start_ui();
    cr_assert_eq(get("/api/runs/latest/graph.svg", NULL), 200, "%s", response);
    cr_expect(strstr(response, "class=\"node artifact\""), "%s", response);
    cr_expect(strstr(response, "artifact:greeting"), "%s", response);
    cr_expect(strstr(response, href), "a link to %s: %s", href, response);
    cr_expect(strstr(response, "class=\"node done\""), "the step keeps its state: %s", response);
}
