/* test_models.c - the model registry end to end with the real binary:
 * tiny trainings become versions 1, 2 (a cached one none), gated
 * promotion by the command and by the promote step, the audit trail,
 * models diff, runs diff, and promotions killed with SIGKILL. */
#include <bson/bson.h>
#include <signal.h>
#include <sys/file.h>

#include "json_fields.h"
#include "raw_http.h"
#include "runner.h"
#include "twin_pipeline.h"

TestSuite(models, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* Runs the pipeline at path with seed and ppl; returns its exit status. */
static int train_twin(const char *path, int seed, int ppl) {
    char s[32], p[32];
    snprintf(s, sizeof(s), "seed=%d", seed);
    snprintf(p, sizeof(p), "ppl=%d", ppl);
    result r = RUN_PIPELINE((char *)path, "-p", s, "-p", p);
    int status = r.status;
    if (status != 0 && status != 1)
        cr_log_error("%s%s", r.out, r.err);
    result_free(&r);
    return status;
}

/* The JSON output of a command that must exit 0, parsed. */
static bson_t *run_json(char *const argv[]) {
    result r = run_in(NULL, NULL, argv);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, &err);
    cr_assert_not_null(doc, "%s: %s", err.message, r.out);
    result_free(&r);
    return doc;
}
#define JSON(...) run_json((char *[]){"sluice", test_store_arg, __VA_ARGS__, "--json", NULL})

static uint32_t n_items(const bson_t *doc, const char *path) {
    bson_iter_t it, sub;
    cr_assert(field(doc, path, &it) && bson_iter_recurse(&it, &sub), "no array at %s", path);
    uint32_t n = 0;
    while (bson_iter_next(&sub))
        n++;
    return n;
}

/* Three versions of twin: 1 (perplexity 50), 2 (60: worse), 3 (40: better). */
static void three_versions(void) {
    char *path = twin_pipeline("");
    cr_assert_eq(train_twin(path, 1, 50), 0);
    cr_assert_eq(train_twin(path, 2, 60), 0);
    cr_assert_eq(train_twin(path, 3, 40), 0);
}

static result promote(const char *spec, const char *alias, const char *opt1, const char *arg1,
                      const char *opt2, const char *arg2) {
    char *argv[16] = {"sluice", test_store_arg, "models", "promote", (char *)spec, (char *)alias};
    size_t n = 6;
    if (opt1) {
        argv[n++] = (char *)opt1;
        argv[n++] = (char *)arg1;
    }
    if (opt2) {
        argv[n++] = (char *)opt2;
        argv[n++] = (char *)arg2;
    }
    argv[n] = NULL;
    return run_in(NULL, NULL, argv);
}

Test(models, two_trainings_make_versions_1_and_2_and_a_cached_one_none) {
    char *path = twin_pipeline("");
    cr_assert_eq(train_twin(path, 1, 50), 0);
    char first_run[32];
    snprintf(first_run, sizeof(first_run), "%s", last_run);
    cr_assert_eq(train_twin(path, 2, 60), 0);
    char second_run[32];
    snprintf(second_run, sizeof(second_run), "%s", last_run);
    /* The same seed again: train comes from the cache, the same artifact. */
    cr_assert_eq(train_twin(path, 2, 60), 0);
    bson_t *list = JSON("models", "list");
    cr_expect_eq(n_items(list, "models"), 2);
    cr_expect_eq(num(list, "models.0.version"), 1);
    cr_expect_eq(num(list, "models.1.version"), 2);
    cr_expect_str_eq(str(list, "models.0.name"), "twin");
    cr_expect_str_eq(str(list, "models.0.run"), first_run);
    cr_expect_str_eq(str(list, "models.1.run"), second_run);
    cr_expect_str_eq(str(list, "models.0.step"), "train");
    cr_expect_eq(num(list, "models.0.params.seed"), 1);
    cr_expect_eq(num(list, "models.1.params.seed"), 2);
    cr_expect_str_neq(str(list, "models.0.artifact"), str(list, "models.1.artifact"));
    /* Lineage: the dataset and tokenizer it was trained on. */
    cr_expect_str_eq(str(list, "models.0.datasets.0.port"), "dataset");
    cr_expect_str_eq(str(list, "models.0.datasets.1.type"), "tokenizer");
    /* Metrics from the evaluation that read it; the cached one's second
     * evaluation says the same. */
    cr_expect_eq(num(list, "models.0.metrics.perplexity"), 50);
    cr_expect_eq(num(list, "models.1.metrics.perplexity"), 60);
    cr_expect_eq(n_items(list, "models.1.metrics_from"), 2);
    bson_destroy(list);

    bson_t *latest = JSON("models", "show", "twin");
    cr_expect_eq(num(latest, "version"), 2);
    bson_destroy(latest);
    result r = RUN(test_store_arg, "models", "show", "twin@7");
    expect_refused(r, 2, "model twin has no version 7");
    r = RUN(test_store_arg, "models", "show", "nobody");
    expect_refused(r, 2, "no model is called 'nobody'");
    expect_success(RUN(test_store_arg, "doctor"));
}

Test(models, model_name_names_the_model_and_a_bad_one_fails_the_step) {
    char *path = twin_pipeline("");
    /* The train step's with gets model_name through a pipeline param. */
    char text[4096];
    char *orig = slurp(path);
    cr_assert_not_null(orig);
    snprintf(text, sizeof(text), "%s", orig);
    free(orig);
    char *at = strstr(text, "seed: '${params.seed}'");
    cr_assert_not_null(at);
    char fixed[4200];
    snprintf(fixed, sizeof(fixed), "%.*sseed: '${params.seed}', model_name: '${params.name}'%s",
             (int)(at - text), text, at + strlen("seed: '${params.seed}'"));
    char *params = strstr(fixed, "ppl: 50}");
    cr_assert_not_null(params);
    char named[4300];
    snprintf(named, sizeof(named), "%.*sppl: 50, name: ''}%s", (int)(params - fixed), fixed,
             params + strlen("ppl: 50}"));
    char *p2 = write_test_file(test_dir, "named.yaml", named);
    result r = RUN_PIPELINE(p2, "-p", "name=llm-twin");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    bson_t *list = JSON("models", "list", "llm-twin");
    cr_expect_eq(n_items(list, "models"), 1);
    cr_expect_str_eq(str(list, "models.0.name"), "llm-twin");
    bson_destroy(list);
    list = JSON("models", "list", "twin");
    cr_expect_eq(n_items(list, "models"), 0);
    bson_destroy(list);
    r = RUN_PIPELINE(p2, "-p", "name=Bad Name", "-p", "seed=9");
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.out, "model_name 'Bad Name' is no model name") != NULL, "%s", r.out);
    result_free(&r);
}

Test(models, promote_refuses_a_worse_model_naming_the_figure_and_takes_a_better_one) {
    three_versions();
    result r = promote("twin@1", "production", NULL, NULL, NULL, NULL);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "twin@1 is now production") != NULL, "%s", r.out);
    result_free(&r);

    /* Worse than production: refused, exit 1, the figure named. */
    r = promote("twin@2", "production", "--better-than", "production:perplexity", NULL, NULL);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "refused: perplexity: twin@2 has perplexity = 60, not better (lower "
                            "is better) than production's (twin@1) 50") != NULL,
              "%s", r.err);
    result_free(&r);
    r = promote("twin@2", "production", "--if", "perplexity<=55", NULL, NULL);
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.err, "perplexity: twin@2 has perplexity = 60, which is not <= 55") != NULL,
              "%s", r.err);
    result_free(&r);
    r = promote("twin@3", "production", "--if", "accuracy>=0.5", NULL, NULL);
    expect_refused(r, 1, "accuracy: twin@3 has no metric 'accuracy'");
    bson_t *show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 1, "refusals leave the alias where it was");
    bson_destroy(show);

    /* Better: accepted, with --json. */
    bson_t *ok = JSON("models", "promote", "twin@3", "production", "--better-than",
                      "production:perplexity", "--if", "perplexity <= 55");
    cr_expect_eq(num(ok, "version"), 3);
    cr_expect_eq(num(ok, "previous"), 1);
    cr_expect_str_eq(str(ok, "name"), "twin");
    cr_expect_str_eq(str(ok, "aliases.0"), "production");
    cr_expect_eq(num(ok, "metrics.perplexity"), 40);
    cr_expect(str(ok, "run")[0]);
    bson_destroy(ok);

    /* The direction stated: higher is better makes 60 beat 40. */
    r = promote("twin@2", "production", "--better-than", "production:perplexity:higher", NULL,
                NULL);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    /* Bad gates are bad input. */
    r = promote("twin@1", "staging", "--if", "perplexity=<3", NULL, NULL);
    expect_refused(r, 2, "'perplexity=<3' is no condition");
    r = promote("twin@1", "staging", "--better-than", "production", NULL, NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = promote("twin@9", "staging", NULL, NULL, NULL, NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = promote("twin", "staging", NULL, NULL, NULL, NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);

    /* Shell completion offers the versions and aliases (docs/cli.md). */
    r = RUN("__complete", "--", "sluice", test_store_arg, "models", "show", "twin@");
    cr_expect_eq(r.status, 0);
    cr_expect_str_eq(r.out, "twin@1\ntwin@2\ntwin@3\ntwin@production\n");
    result_free(&r);
}

Test(models, the_audit_trail_keeps_who_when_why_and_the_previous_version) {
    three_versions();
    run_env[1] = "USER=ada";
    run_env[2] = NULL;
    expect_success(promote("twin@1", "production", "--reason", "first model", NULL, NULL));
    expect_success(promote("twin@3", "production", "--reason", "lower perplexity", NULL, NULL));
    expect_success(promote("twin@3", "staging", NULL, NULL, NULL, NULL));
    /* Already there: nothing written. */
    result r = promote("twin@3", "production", NULL, NULL, NULL, NULL);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "twin@3 is production already") != NULL, "%s", r.out);
    result_free(&r);

    bson_t *three = JSON("models", "show", "twin@3");
    cr_expect_eq(n_items(three, "aliases"), 2);
    cr_expect_eq(n_items(three, "audit"), 2);
    cr_expect_str_eq(str(three, "audit.0.alias"), "production");
    cr_expect_eq(num(three, "audit.0.version"), 3);
    cr_expect_eq(num(three, "audit.0.previous"), 1);
    cr_expect_str_eq(str(three, "audit.0.who"), "ada");
    cr_expect_str_eq(str(three, "audit.0.reason"), "lower perplexity");
    cr_expect_gt(num(three, "audit.0.time"), 1.7e9);
    cr_expect_str_eq(str(three, "audit.1.alias"), "staging");
    bson_iter_t it;
    cr_expect(field(three, "audit.1.previous", &it) && BSON_ITER_HOLDS_NULL(&it));
    bson_destroy(three);
    bson_t *one = JSON("models", "show", "twin@1");
    cr_expect_eq(n_items(one, "aliases"), 0);
    cr_expect_eq(n_items(one, "audit"), 2, "its promotion and the one that replaced it");
    bson_destroy(one);
    r = RUN(test_store_arg, "models", "show", "twin@3");
    cr_expect(strstr(r.out, "production: version 1 -> 3  by ada: lower perplexity") != NULL, "%s",
              r.out);
    result_free(&r);
}

Test(models, the_promote_step_gates_what_comes_after_it) {
    char *path = twin_pipeline("  gate:\n"
                               "    uses: promote\n"
                               "    inputs: {model: train.model}\n"
                               "    after: [eval]\n"
                               "    with: {alias: production, better_than: "
                               "'production:perplexity', if: ['perplexity < 100'], reason: ct}\n"
                               "  deploy:\n"
                               "    uses: shell\n"
                               "    after: [gate]\n"
                               "    with: {run: 'echo deployed'}\n");
    cr_assert_eq(train_twin(path, 1, 50), 0);
    cr_assert_eq(train_twin(path, 2, 60), 1, "a worse model stops the run");
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "promotion of twin@2 to production refused: perplexity: twin@2 has "
                            "perplexity = 60") != NULL,
              "%s", r.out);
    cr_expect(strstr(r.out, "deploy") && strstr(r.out, "skipped"), "%s", r.out);
    result_free(&r);
    cr_assert_eq(train_twin(path, 3, 40), 0);
    bson_t *show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 3);
    cr_expect_eq(n_items(show, "audit"), 1);
    cr_expect(strstr(str(show, "audit.0.who"), ", step gate)") != NULL, "%s",
              str(show, "audit.0.who"));
    cr_expect_str_eq(str(show, "audit.0.reason"), "ct");
    bson_destroy(show);
    /* Validation knows the step's parameters like any plugin's. */
    char *bad = write_test_file(test_dir, "bad.yaml",
                                "version: 1\npipeline: b\nsteps:\n"
                                "  g: {uses: promote, with: {alias: x, iff: y}}\n");
    r = RUN("validate", bad);
    expect_refused(r, 2, "iff");
}

/* ---- the deploy step ---- */

static const char deploy_step[] = "  deploy:\n"
                                  "    uses: deploy\n"
                                  "    inputs: {model: train.model}\n"
                                  "    after: [eval]\n"
                                  "    with: {listen: '127.0.0.1:0', reason: shipped}\n";

/* A file of the server the deploy step started for 127.0.0.1:0, as a
 * number (0 when it is not there). */
static long served(const char *file) {
    char path[256];
    snprintf(path, sizeof(path), "%s/store/serve/127.0.0.1_0/%s", test_dir, file);
    char *text = slurp(path);
    long v = text ? atol(text) : 0;
    free(text);
    return v;
}

/* Whether pid runs (a zombie does not). */
static int running(long pid) {
    char path[64], stat[512] = "";
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    stat[n] = 0;
    fclose(f);
    const char *paren = strrchr(stat, ')');
    return paren && paren[2] != 'Z';
}

/* Stops the server a test's deploy started (it is no child of the test):
 * SIGTERM, then until it is gone. */
static void stop_deployed(void) {
    long pid = served("pid");
    if (pid <= 0 || !running(pid))
        return;
    kill((pid_t)pid, SIGTERM);
    for (int i = 0; i < 6000 && running(pid); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    cr_expect(!running(pid), "the deployed server %ld did not stop", pid);
}

/* The deploy step starts a server for the first version, then reloads the
 * same server (same pid) with the second; the registry and the server's
 * /v1/models agree on which version serves. */
Test(models, the_deploy_step_starts_a_server_then_reloads_it, .fini = stop_deployed) {
    char *path = twin_pipeline(deploy_step);
    result r = RUN_PIPELINE(path);
    long pid = served("pid"), port = served("port");
    char want[128];
    snprintf(want, sizeof(want), "serving at http://127.0.0.1:%ld (pid %ld", port, pid);
    cr_expect_not_null(strstr(r.out, want), "%s", r.out);
    expect_success(r);
    cr_assert(pid > 0 && port > 0 && running(pid));
    cr_expect_eq(health((int)port), 200);
    char out[4096];
    exchange((int)port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, sizeof(out));
    cr_expect_not_null(strstr(out, "\"id\": \"twin\""), "%s", out);
    cr_expect_not_null(strstr(out, "\"version\": \"1\""), "%s", out);
    bson_t *show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 1);
    cr_expect_eq(n_items(show, "deployments"), 1);
    cr_expect_eq(num(show, "deployments.0.pid"), pid);
    snprintf(want, sizeof(want), "http://127.0.0.1:%ld", port);
    cr_expect_str_eq(str(show, "deployments.0.url"), want);
    cr_expect_str_eq(str(show, "deployments.0.action"), "started");
    cr_expect_str_eq(str(show, "deployments.0.run"), last_run);
    cr_expect_str_eq(str(show, "audit.0.reason"), "shipped");
    bson_destroy(show);

    /* a new version: the same server takes it */
    cr_assert_eq(train_twin(path, 2, 50), 0);
    cr_expect_eq(served("pid"), pid);
    cr_expect(running(pid));
    exchange((int)port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, sizeof(out));
    cr_expect_not_null(strstr(out, "\"version\": \"2\""), "%s", out);
    show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 2);
    cr_expect_eq(num(show, "deployments.0.pid"), pid);
    cr_expect_str_eq(str(show, "deployments.0.action"), "reloaded");
    bson_destroy(show);
    show = JSON("models", "show", "twin@1");
    cr_expect_eq(n_items(show, "deployments"), 0, "version 1 serves no more");
    bson_destroy(show);
    result h = RUN(test_store_arg, "models", "show", "twin@production");
    snprintf(want, sizeof(want),
             "deployed at http://127.0.0.1:%ld as production (reloaded, pid %ld, running)", port,
             pid);
    cr_expect_not_null(strstr(h.out, want), "%s", h.out);
    result_free(&h);

    /* once stopped, the registry says so */
    stop_deployed();
    show = JSON("models", "show", "twin@production");
    bson_iter_t it;
    cr_expect(field(show, "deployments.0.running", &it) && BSON_ITER_HOLDS_BOOL(&it) &&
              !bson_iter_bool(&it));
    bson_destroy(show);

    /* its pid file left behind, the next deployment starts a new server */
    cr_assert_eq(train_twin(path, 3, 50), 0);
    long again = served("pid");
    cr_expect(again > 0 && again != pid && running(again));
    show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 3);
    cr_expect_eq(num(show, "deployments.0.pid"), again);
    cr_expect_str_eq(str(show, "deployments.0.action"), "started");
    bson_destroy(show);
}

/* Two deploys on one address at once: the second waits for the first's
 * lock (STORE/serve/PLACE/lock) and reloads the server it started; one
 * that waits longer than its 'wait' fails, naming the holder, and starts
 * nothing. Here the test holds the lock as a deploy under way would. */
Test(models, a_deploy_waits_for_another_on_its_address, .fini = stop_deployed) {
    char *path = twin_pipeline("  deploy:\n"
                               "    uses: deploy\n"
                               "    inputs: {model: train.model}\n"
                               "    after: [eval]\n"
                               "    with: {listen: '127.0.0.1:0', wait: 1}\n");
    char dir[200], lock[256];
    snprintf(dir, sizeof(dir), "%s/store/serve/127.0.0.1_0", test_dir);
    snprintf(lock, sizeof(lock), "%s/lock", dir);
    char mk[300];
    snprintf(mk, sizeof(mk), "mkdir -p '%s'", dir);
    cr_assert_eq(system(mk), 0);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    cr_assert_eq(write(fd, "4242\n", 5), 5);
    result r = RUN_PIPELINE(path);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "another deploy on 127.0.0.1:0 (pid 4242"), "%s", r.out);
    result_free(&r);
    cr_expect_eq(served("pid"), 0, "no server was started");

    /* let go: the pipeline deploys (its default 'wait': a server under
     * a sanitizer may take more than 1 s to load) */
    close(fd);
    path = twin_pipeline(deploy_step);
    cr_assert_eq(train_twin(path, 1, 50), 0);
    cr_expect(running(served("pid")));
    /* and a second run on the address reloads that server */
    long pid = served("pid");
    cr_assert_eq(train_twin(path, 2, 50), 0);
    cr_expect_eq(served("pid"), pid);
}

/* Two runs deploying on one address at the same time: one server starts
 * (its log says "sluice serve: listening" once), the other deploy reloads
 * it. */
Test(models, two_deploys_at_once_start_one_server, .fini = stop_deployed) {
    char *path = strdup(twin_pipeline(deploy_step));
    pid_t runs[2];
    for (int i = 0; i < 2; i++) {
        char seed[32];
        snprintf(seed, sizeof(seed), "seed=%d", i + 1);
        runs[i] = fork();
        cr_assert_geq(runs[i], 0);
        if (runs[i] == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            dup2(devnull, 2);
            putenv(test_plugin_path);
            setenv("MONGOC_DISABLE_SHM", "1", 1);
            execl(SLUICE_BIN, "sluice", test_store_arg, "run", path, "-p", seed, (char *)NULL);
            _exit(127);
        }
    }
    for (int i = 0; i < 2; i++) {
        int ws;
        cr_assert_eq(waitpid(runs[i], &ws, 0), runs[i]);
        cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "run %d: %d", i, ws);
    }
    free(path);
    cr_expect(running(served("pid")));
    char log[256];
    snprintf(log, sizeof(log), "%s/store/serve/127.0.0.1_0/serve.log", test_dir);
    char *text = slurp(log);
    cr_assert_not_null(text);
    cr_expect_eq(count(text, "sluice serve: listening on"), 1, "%s", text);
    cr_expect_eq(count(text, "reloaded:"), 1, "%s", text);
    free(text);
}

Test(models, models_diff_and_runs_diff) {
    char *path = twin_pipeline("");
    cr_assert_eq(train_twin(path, 1, 50), 0);
    char a[32];
    snprintf(a, sizeof(a), "%s", last_run);
    cr_assert_eq(train_twin(path, 2, 60), 0);
    bson_t *d = JSON("models", "diff", "twin@1", "twin@2");
    cr_expect_eq(n_items(d, "params"), 1);
    cr_expect_str_eq(str(d, "params.0.name"), "seed");
    cr_expect_eq(num(d, "params.0.a"), 1);
    cr_expect_eq(num(d, "params.0.b"), 2);
    cr_expect_eq(n_items(d, "metrics"), 1);
    cr_expect_eq(num(d, "metrics.0.change"), 10);
    cr_expect_eq(n_items(d, "datasets"), 0);
    bson_destroy(d);

    d = JSON("runs", "diff", a, "latest");
    cr_expect_str_eq(str(d, "a"), a);
    cr_expect_str_eq(str(d, "b"), last_run);
    cr_expect_str_eq(str(d, "params.0.name"), "seed");
    int saw_ppl = 0, saw_model = 0;
    bson_iter_t it, e;
    cr_assert(field(d, "metrics", &it) && bson_iter_recurse(&it, &e));
    bson_t item;
    while (next_document(&e, &item)) {
        if (strcmp(str(&item, "name"), "eval.perplexity") == 0) {
            saw_ppl = 1;
            cr_expect_eq(num(&item, "change"), 10);
        }
    }
    cr_assert(field(d, "artifacts", &it) && bson_iter_recurse(&it, &e));
    while (next_document(&e, &item)) {
        saw_model |= strcmp(str(&item, "name"), "train.model") == 0;
        cr_expect_str_neq(str(&item, "name"), "docs.c", "unchanged artifacts are not listed");
    }
    cr_expect(saw_ppl && saw_model);
    bson_destroy(d);
    result r = RUN(test_store_arg, "runs", "diff", a, a);
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, "params: no change") && strstr(r.out, "artifacts: no change"), "%s",
              r.out);
    result_free(&r);
}

/* The alias's version (0: none) and how many audit entries it has. */
static void registry_state(const char *alias, int *version, uint32_t *entries);
static size_t trail_of(const char *alias, int *version, int *previous, size_t max);
Test(models, a_promotion_killed_midway_leaves_the_registry_before_it) {
    three_versions();
    expect_success(promote("twin@1", "production", NULL, NULL, NULL, NULL));
    /* Killed after the alias is written, before its audit entry and the
     * commit. */
    run_env[1] = "SLUICE_TEST_KILL_IN_PROMOTION=1";
    run_env[2] = NULL;
    result r = promote("twin@3", "production", "--reason", "killed", NULL, NULL);
    cr_expect_eq(r.status, 128 + SIGKILL, "%s%s", r.out, r.err);
    result_free(&r);
    run_env[1] = NULL;
    int version;
    uint32_t entries;
    registry_state("production", &version, &entries);
    cr_expect_eq(version, 1, "before: the alias did not move");
    cr_expect_eq(entries, 1, "before: no audit entry of the killed promotion");
    expect_success(RUN(test_store_arg, "doctor"));
    expect_success(promote("twin@3", "production", NULL, NULL, NULL, NULL));
    registry_state("production", &version, &entries);
    cr_expect_eq(version, 3);
    cr_expect_eq(entries, 2);
}

/* The alias's trail: every audit entry of alias (from the versions it
 * concerns, once each by its seq) as version and previous in seq order. */
static size_t trail_of(const char *alias, int *version, int *previous, size_t max) {
    int seen[256] = {0};
    size_t n = 0;
    for (int v = 1; v <= 3; v++) {
        char spec[32];
        snprintf(spec, sizeof(spec), "twin@%d", v);
        bson_t *doc = JSON("models", "show", spec);
        bson_iter_t it, e;
        cr_assert(field(doc, "audit", &it) && bson_iter_recurse(&it, &e));
        bson_t item;
        while (next_document(&e, &item)) {
            int seq = (int)num(&item, "seq");
            cr_assert(seq >= 1 && seq < 256 && (size_t)seq <= max);
            if (strcmp(str(&item, "alias"), alias) != 0 || seen[seq])
                continue;
            seen[seq] = 1;
            bson_iter_t pv;
            version[seq - 1] = (int)num(&item, "version");
            previous[seq - 1] = field(&item, "previous", &pv) && BSON_ITER_HOLDS_NUMBER(&pv)
                                    ? (int)num(&item, "previous")
                                    : 0;
            n++;
        }
        bson_destroy(doc);
    }
    for (size_t i = 0; i < n; i++)
        cr_assert(seen[i + 1], "the trail's numbers have no gap");
    return n;
}

Test(models, promotions_killed_at_any_moment_leave_alias_and_trail_agreeing) {
    three_versions();
    /* kill -9 at varied moments of promotions that alternate staging
     * between versions 1 and 3: from its start to about when a promotion
     * is done (0.1 s here), so that some commit and some do not. */
    srand(7);
    for (int i = 0; i < 30; i++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execl(SLUICE_BIN, "sluice", test_store_arg, "models", "promote",
                  i % 2 ? "twin@3" : "twin@1", "staging", (char *)NULL);
            _exit(127);
        }
        struct timespec pause = {0, (long)(rand() % 150000) * 1000L};
        nanosleep(&pause, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    expect_success(RUN(test_store_arg, "doctor"));
    /* Whatever each kill left: every move of the alias has its entry,
     * each entry's previous is the version before it, and the alias is
     * where the newest entry says. */
    int version[64], previous[64];
    size_t n = trail_of("staging", version, previous, 64);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(previous[i], i ? version[i - 1] : 0, "entry %zu", i + 1);
    result r = RUN(test_store_arg, "models", "show", "twin@staging", "--json");
    if (n == 0) {
        cr_expect_eq(r.status, 2, "no entry, so no alias");
    } else {
        cr_assert_eq(r.status, 0, "%s", r.err);
        bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, NULL);
        cr_assert_not_null(doc);
        cr_expect_eq(num(doc, "version"), version[n - 1]);
        bson_destroy(doc);
    }
    result_free(&r);
    cr_log_info("%zu of 30 killed promotions committed", n);
}

static void registry_state(const char *alias, int *version, uint32_t *entries) {
    int versions[64], previous[64];
    *entries = (uint32_t)trail_of(alias, versions, previous, 64);
    char spec[64];
    snprintf(spec, sizeof(spec), "twin@%s", alias);
    result r = RUN(test_store_arg, "models", "show", spec, "--json");
    *version = 0;
    if (r.status == 0) {
        bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, NULL);
        cr_assert_not_null(doc);
        *version = (int)num(doc, "version");
        bson_destroy(doc);
    }
    result_free(&r);
}

Test(models, the_promote_steps_metrics_input_wins_over_the_lineage) {
    char *path = twin_pipeline("  figs:\n"
                               "    uses: shell\n"
                               "    with: {run: 'echo \"{\\\"perplexity\\\": 10}\" > "
                               "\"$SLUICE_OUTPUT_m\"', outputs: {m: m.json}}\n"
                               "  gate:\n"
                               "    uses: promote\n"
                               "    inputs: {model: train.model, metrics: figs.m}\n"
                               "    after: [eval]\n"
                               "    with: {alias: production, if: 'perplexity <= 20'}\n");
    /* The evaluation says 60; the metrics input says 10, and wins. */
    cr_assert_eq(train_twin(path, 1, 60), 0);
    bson_t *show = JSON("models", "show", "twin@production");
    cr_expect_eq(num(show, "version"), 1);
    cr_expect_eq(num(show, "metrics.perplexity"), 60, "the registry's own figures are lineage's");
    bson_destroy(show);
}

Test(models, doctor_names_a_version_whose_model_is_gone) {
    char *path = twin_pipeline("");
    cr_assert_eq(train_twin(path, 1, 50), 0);
    expect_success(RUN(test_store_arg, "models", "promote", "twin@1", "production"));
    result r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "%s", r.out);
    cr_expect(strstr(r.out, "3 model records: 0 problems") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "path", "train.model");
    cr_assert_eq(r.status, 0, "%s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", r.out, r.out);
    cr_assert_eq(system(cmd), 0);
    result_free(&r);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.out, "problem: model twin@1: its artifact ") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "has no intact object") != NULL, "%s", r.out);
    result_free(&r);
}
