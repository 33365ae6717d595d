/* End-to-end tests of the artifact store, the metadata, the cache and
 * lineage: the real binary, twice or more on one store. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

#include "require.h"
#include "runner.h"

TestSuite(store, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 60);

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The status of each step's step_finished event, as "id=status ...", sorted
 * by step id (independent steps finish in either order). */
static char *statuses(const char *out) {
    static char acc[2048];
    char *items[64];
    size_t n = 0;
    acc[0] = '\0';
    for (const char *line = out; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bson_error_t err;
        bson_t *doc = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &err);
        bson_iter_t e, st, s;
        if (doc && bson_iter_init_find(&e, doc, "event") &&
            strcmp(bson_iter_utf8(&e, NULL), "step_finished") == 0 &&
            bson_iter_init_find(&st, doc, "step") && bson_iter_init_find(&s, doc, "status")) {
            char item[256];
            snprintf(item, sizeof(item), "%s=%s", bson_iter_utf8(&st, NULL),
                     bson_iter_utf8(&s, NULL));
            if (n < 64)
                items[n++] = strdup(item);
        }
        if (doc)
            bson_destroy(doc);
        line = nl ? nl + 1 : NULL;
    }
    qsort(items, n, sizeof(*items), by_text);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(acc);
        snprintf(acc + used, sizeof(acc) - used, "%s%s", i ? " " : "", items[i]);
        free(items[i]);
    }
    return acc;
}

/* A field of the first JSON event of a kind (a static copy), or NULL. */
static char *event_value(const char *out, const char *event, const char *field) {
    static char value[256];
    char needle[64];
    snprintf(needle, sizeof(needle), "\"event\" : \"%s\"", event);
    const char *line = strstr(out, needle);
    if (!line)
        return NULL;
    const char *end = strchr(line, '\n');
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\" : \"", field);
    const char *at = strstr(line, pattern);
    if (!at || (end && at > end))
        return NULL;
    at += strlen(pattern);
    snprintf(value, sizeof(value), "%.*s", (int)(strchr(at, '"') - at), at);
    return value;
}

static const char *chain = "pipeline: chain\n"
                           "params: {greeting: hello, suffix: '!'}\n"
                           "steps:\n"
                           "  a: {uses: emit, with: {text: '${params.greeting}'}}\n"
                           "  b: {uses: echo, inputs: {in: a.out}, with: {prefix: 'b: '}}\n"
                           "  c: {uses: shell, inputs: {in: b.out},\n"
                           "      with: {run: 'cat \"$SLUICE_INPUT_in\" > out.txt; echo "
                           "\"${params.suffix}\" >> out.txt',\n"
                           "             outputs: {text: out.txt}}}\n"
                           "  side: {uses: emit, with: {text: unrelated}}\n";

Test(store, a_second_identical_run_is_fully_cached_and_runs_nothing) {
    /* Each step notes in @/ran that it ran: a cached step adds nothing. */
    char *p = write_test_file(
        test_dir, "slow.yaml",
        "pipeline: slow\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'echo a >> @/ran; echo a > a', outputs: {a: a}}}\n"
        "  b: {uses: shell, inputs: {a: a.a},\n"
        "      with: {run: 'echo b >> @/ran; cat \"$SLUICE_INPUT_a\" > b', outputs: {b: b}}}\n");
    char ran_path[256];
    snprintf(ran_path, sizeof(ran_path), "%s/ran", test_dir);
    result r1 = RUN(test_store_arg, "run", p, "--json");
    cr_assert_eq(r1.status, 0, "%s%s", r1.out, r1.err);
    cr_expect_str_eq(statuses(r1.out), "a=done b=done");
    result r2 = RUN(test_store_arg, "run", p, "--json");
    cr_assert_eq(r2.status, 0, "%s", r2.err);
    cr_expect_str_eq(statuses(r2.out), "a=cached b=cached");
    char *ran = slurp(ran_path);
    cr_expect_str_eq(ran, "a\nb\n", "the cached run ran no step");
    free(ran);
    result r3 = RUN(test_store_arg, "run", p, "--json", "--no-cache");
    cr_expect_str_eq(statuses(r3.out), "a=done b=done", "--no-cache runs everything");
    result_free(&r1);
    result_free(&r2);
    result_free(&r3);
}

Test(store, changing_a_parameter_reruns_exactly_that_step_and_its_descendants) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    expect_success(RUN(test_store_arg, "run", p, "--json"));
    result r = RUN(test_store_arg, "run", p, "--json", "-p", "suffix=again");
    cr_expect_str_eq(statuses(r.out), "a=cached b=cached c=done side=cached");
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--json", "-p", "greeting=hi");
    cr_expect_str_eq(statuses(r.out), "a=done b=done c=done side=cached");
    result_free(&r);
}

Test(store, editing_a_plugin_binary_invalidates_its_steps) {
    char plugins[256], cmd[768];
    snprintf(plugins, sizeof(plugins), "%s/plugins", test_dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/good/teststeps.so %s/", plugins,
             SLUICE_TEST_PLUGINS, plugins);
    cr_assert_eq(system(cmd), 0);
    char *p = write_test_file(test_dir, "plug.yaml",
                              "pipeline: plug\n"
                              "plugins: [plugins]\n"
                              "steps:\n"
                              "  a: {uses: emit, with: {text: x}}\n"
                              "  s: {uses: shell, with: {run: 'echo s > s', outputs: {s: s}}}\n");
    run_env[0] = NULL;
    expect_success(RUN(test_store_arg, "run", p, "--json"));
    /* Same code, different bytes: appended bytes leave an ELF loadable. */
    snprintf(cmd, sizeof(cmd), "printf 'rebuilt' >> %s/teststeps.so", plugins);
    cr_assert_eq(system(cmd), 0);
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(statuses(r.out), "a=done s=cached");
    result_free(&r);
}

/* The hash of the artifact step `step` made (as artifacts list says). */
static void artifact_of_step(const char *step_id, char hash[65]) {
    result r = RUN(test_store_arg, "artifacts", "list", "--json");
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, &err);
    cr_assert_not_null(doc, "%s", r.out);
    bson_iter_t it, arr, item;
    hash[0] = '\0';
    cr_assert(bson_iter_init_find(&it, doc, "artifacts") && bson_iter_recurse(&it, &arr));
    while (bson_iter_next(&arr)) {
        bson_iter_recurse(&arr, &item);
        const char *h = NULL, *step = NULL;
        while (bson_iter_next(&item)) {
            if (strcmp(bson_iter_key(&item), "hash") == 0)
                h = bson_iter_utf8(&item, NULL);
            if (strcmp(bson_iter_key(&item), "step") == 0)
                step = bson_iter_utf8(&item, NULL);
        }
        if (step && strcmp(step, step_id) == 0)
            snprintf(hash, 65, "%s", h);
    }
    bson_destroy(doc);
    result_free(&r);
    cr_assert_eq(strlen(hash), 64);
}

Test(store, a_corrupted_object_is_detected_and_its_step_runs_again) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    expect_success(RUN(test_store_arg, "run", p, "--json"));
    /* Alter the object a.out points to. */
    char hash[65] = "";
    artifact_of_step("a", hash);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "f=%s/store/objects/%.2s/%s; chmod u+w $f; printf X >> $f", test_dir,
             hash, hash);
    cr_assert_eq(system(cmd), 0);
    result r = RUN(test_store_arg, "artifacts", "cat", hash);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "corrupt: its content no longer matches its hash") != NULL, "%s",
              r.err);
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(statuses(r.out), "a=done b=cached c=cached side=cached");
    cr_expect(strstr(r.out, "altered in the store: running the step again") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "cat", hash);
    cr_expect_eq(r.status, 0, "the re-run replaced the altered object: %s", r.err);
    cr_expect_str_eq(r.out, "hello\n");
    result_free(&r);
}

Test(store, steps_without_outputs_are_not_cached) {
    char *p = write_test_file(
        test_dir, "effects.yaml",
        "pipeline: effects\nsteps:\n  notify: {uses: shell, with: {run: 'true'}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_str_eq(statuses(r.out), "notify=done");
    result_free(&r);
}

Test(store, runs_and_artifacts_are_recorded_and_readable) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    expect_success(RUN(test_store_arg, "run", p));
    result r = RUN(test_store_arg, "runs", "list");
    cr_expect_eq(r.status, 0);
    cr_expect(strstr(r.out, " chain ") != NULL && strstr(r.out, " done ") != NULL, "%s", r.out);
    char run_id[32];
    cr_assert_eq(sscanf(strchr(r.out, '\n') + 1, "%31s", run_id), 1);
    result_free(&r);
    run_id[10] = '\0'; /* a unique prefix will do */
    r = RUN(test_store_arg, "runs", "show", run_id, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"step\" : \"c\"") && strstr(r.out, "\"status\" : \"done\""), "%s",
              r.out);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", "nosuchrun");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "sluice: no run matches 'nosuchrun'\n");
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "list");
    cr_expect(strstr(r.out, "/c.text") != NULL, "%s", r.out);
    result_free(&r);
}

Test(store, lineage_of_the_final_artifact_both_ways) {
    char *p =
        write_test_file(test_dir, "three.yaml",
                        "pipeline: three\n"
                        "steps:\n"
                        "  one: {uses: emit, with: {text: seed}}\n"
                        "  two: {uses: echo, inputs: {in: one.out}}\n"
                        "  three: {uses: echo, inputs: {in: two.out}, with: {prefix: '3 '}}\n");
    result r = RUN(test_store_arg, "run", p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *at = strstr(r.out, "three.out: ");
    cr_assert_not_null(at, "%s", r.out);
    char path[512];
    cr_assert_eq(sscanf(at, "three.out: %511s", path), 1);
    const char *hash = strrchr(path, '/') + 1;
    char final[65];
    snprintf(final, sizeof(final), "%s", hash);
    result_free(&r);
    r = RUN(test_store_arg, "lineage", final, "--up", "--format", "json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, &err);
    cr_assert_not_null(doc, "%s", r.out);
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, doc, "artifacts"));
    uint32_t len;
    const uint8_t *data;
    bson_iter_array(&it, &len, &data);
    bson_t arts;
    bson_init_static(&arts, data, len);
    cr_expect_eq(bson_count_keys(&arts), 3, "final, two.out, one.out: %s", r.out);
    cr_assert(bson_iter_init_find(&it, doc, "step_runs"));
    bson_iter_array(&it, &len, &data);
    bson_t steps;
    bson_init_static(&steps, data, len);
    cr_expect_eq(bson_count_keys(&steps), 3, "three, two, one: %s", r.out);
    cr_expect(strstr(r.out, "/one\"") && strstr(r.out, "/two\"") && strstr(r.out, "/three\""), "%s",
              r.out);
    bson_destroy(doc);
    result_free(&r);
    /* Downwards from the first artifact: the same chain. */
    r = RUN(test_store_arg, "artifacts", "list", "--json");
    const char *one = strstr(r.out, "\"step\" : \"one\"");
    cr_assert_not_null(one);
    const char *h = one;
    while (h > r.out && strncmp(h, "\"hash\" : \"", 10) != 0)
        h--;
    char first[65];
    snprintf(first, sizeof(first), "%.64s", h + 10);
    result_free(&r);
    r = RUN(test_store_arg, "lineage", first, "--down");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "(echo, done)") && strstr(r.out, "three.out"), "%s", r.out);
    cr_expect(strstr(r.out, "(emit, done)") == NULL, "--down shows no producer: %s", r.out);
    result_free(&r);
}

Test(store, secrets_never_reach_the_store) {
    const char *secret = "s3cr3t-valu3-9f8e7d";
    char env[128];
    snprintf(env, sizeof(env), "SLUICE_TEST_TOKEN=%s", secret);
    run_env[1] = env;
    run_env[2] = NULL;
    /* The step uses the secret, and even prints it: the log masks it. */
    char *p = write_test_file(
        test_dir, "secret.yaml",
        "pipeline: secret\n"
        "params: {token: '${secret.SLUICE_TEST_TOKEN}'}\n"
        "steps:\n"
        "  use: {uses: shell, with: {run: 'test -n \"$TOKEN\" && echo \"token $TOKEN\" && echo "
        "used > out',\n"
        "        env: {TOKEN: '${params.token}'}, outputs: {o: out}}}\n"
        "  header: {uses: emit, with: {text: 'Bearer ${secret.SLUICE_TEST_TOKEN}'}, cache: false}\n"
        "  leak: {uses: shell, with: {run: 'echo \"$X\" >&2; exit 1', env: {X: "
        "'${params.token}'}}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, secret) == NULL, "%s", r.out);
    cr_expect(strstr(r.out, "token ***") != NULL, "the printed secret is masked: %s", r.out);
    result_free(&r);
    char cmd[512];
    /* Only the header step's output holds it, since that step writes it on
     * purpose: everything else in the store (records, logs, summaries,
     * every other object) must not. */
    snprintf(cmd, sizeof(cmd), "grep -r -a -l -F '%s' %s/store > %s/found", secret, test_dir,
             test_dir);
    cr_assert_eq(system(cmd), 0, "the header step's output holds the secret");
    char found_path[256];
    snprintf(found_path, sizeof(found_path), "%s/found", test_dir);
    char *found = slurp(found_path);
    cr_expect(strstr(found, "/objects/") && !strchr(strchr(found, '\n') + 1, '/'),
              "exactly one file, an object, holds the secret: %s", found);
    free(found);
    r = RUN(test_store_arg, "runs", "show", "2", "--json");
    cr_expect(strstr(r.out, "\"***\"") != NULL, "secrets show masked: %s", r.out);
    result_free(&r);
}

Test(store, status_says_what_would_run_and_why) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    result r = RUN(test_store_arg, "status", p);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "a     run    it has not run before") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "b     run    its input 'in' comes from 'a', which runs") != NULL, "%s",
              r.out);
    cr_expect(strstr(r.out, "4 of 4 steps would run") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "run", p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "status", p, "-p", "greeting=hi");
    cr_expect(strstr(r.out, ": parameter 'text' changed") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "side  cache  from ") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "3 of 4 steps would run") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "run", "--dry-run", "--json", p);
    cr_expect(strstr(r.out, "\"would\" : \"cache\"") && !strstr(r.out, "\"would\" : \"run\""), "%s",
              r.out);
    result_free(&r);
}

Test(store, resume_finishes_a_failed_run_and_reuses_what_finished) {
    char *p = write_test_file(
        test_dir, "res.yaml",
        "pipeline: res\n"
        "steps:\n"
        "  one: {uses: shell, with: {run: 'echo 1 > o', outputs: {o: o}}}\n"
        "  notify: {uses: shell, with: {run: 'echo x >> @/notified'}}\n"
        "  gate: {uses: shell, inputs: {i: one.o},\n"
        "         with: {run: 'test -f @/open && cp \"$SLUICE_INPUT_i\" o', outputs: {o: o}}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1);
    char *run_id = event_value(r.out, "run_started", "run");
    cr_assert_not_null(run_id, "%s", r.out);
    char id[64];
    snprintf(id, sizeof(id), "%s", run_id);
    result_free(&r);
    char open_path[256];
    snprintf(open_path, sizeof(open_path), "%s/open", test_dir);
    fclose(fopen(open_path, "w"));
    r = RUN(test_store_arg, "resume", id, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(statuses(r.out), "gate=done notify=cached one=cached");
    result_free(&r);
    char notified[256];
    snprintf(notified, sizeof(notified), "%s/notified", test_dir);
    char *text = slurp(notified);
    cr_expect_str_eq(text, "x\n", "the step without outputs ran once");
    free(text);
}

Test(store, kill_9_at_each_step_leaves_a_readable_store_that_resume_completes, .timeout = 120) {
    /* cache: false, so that every round runs every step and shows the
     * events it is killed at. */
    char *p = write_test_file(
        test_dir, "long.yaml",
        "pipeline: long\n"
        "settings: {cache: false}\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'sleep 0.1; echo a > o', outputs: {o: o}}}\n"
        "  b: {uses: shell, inputs: {i: a.o},\n"
        "      with: {run: 'sleep 0.1; cat \"$SLUICE_INPUT_i\" > o; echo b >> o', outputs: {o: "
        "o}}}\n"
        "  c: {uses: emit, with: {text: c}}\n"
        "  d: {uses: shell, inputs: {i: b.o, j: c.out},\n"
        "      with: {run: 'sleep 0.1; cat \"$SLUICE_INPUT_i\" \"$SLUICE_INPUT_j\" > o', outputs: "
        "{o: o}}}\n"
        "  e: {uses: shell, inputs: {i: d.o},\n"
        "      with: {run: 'sleep 0.1; cat \"$SLUICE_INPUT_i\" > o; echo e >> o', outputs: {o: "
        "o}}}\n");
    /* Killed at points the run's own events mark, each inside the run (not
     * at random moments: under load these came before the run had begun). */
    static const char *const points[][2] = {{"step_started", "a"}, {"step_finished", "a"},
                                            {"step_started", "b"}, {"step_finished", "b"},
                                            {"step_started", "d"}, {"step_started", "e"}};
    int killed = 0;
    char out[256];
    snprintf(out, sizeof(out), "%s/events", test_dir);
    for (int round = 0; round < (int)(sizeof(points) / sizeof(points[0])); round++) {
        unlink(out); /* the last round's events are not this one's */
        pid_t pid = start_sluice_run_json(p, out);
        wait_for_event(out, points[round][0], points[round][1]);
        kill(pid, SIGKILL);
        int ws;
        waitpid(pid, &ws, 0);
        killed += WIFSIGNALED(ws);
        /* The store reads, and every recorded artifact is whole. A run
         * killed before it made its database leaves a store with no runs. */
        result r = RUN(test_store_arg, "runs", "list");
        int empty = r.status == 2 && strstr(r.err, "no runs in") != NULL;
        cr_expect(r.status == 0 || empty, "round %d: %s", round, r.err);
        result_free(&r);
        r = RUN(test_store_arg, "artifacts", "list", "--json");
        cr_expect(r.status == 0 || empty, "round %d: %s", round, r.err);
        for (const char *h = strstr(r.out, "\"hash\" : \""); h;
             h = strstr(h + 1, "\"hash\" : \"")) {
            char hash[65];
            snprintf(hash, sizeof(hash), "%.64s", h + 10);
            result c = RUN(test_store_arg, "artifacts", "cat", hash);
            cr_expect_eq(c.status, 0, "round %d: artifact %s: %s", round, hash, c.err);
            result_free(&c);
        }
        result_free(&r);
    }
    cr_expect_eq(killed, 6, "every run was killed before it finished");
    /* Resuming the last run that did not finish (runs list: newest first)
     * completes the pipeline. */
    result r = RUN(test_store_arg, "runs", "list", "--json");
    char id[64] = "";
    for (const char *at = strstr(r.out, "\"run\" : \""); at && !id[0];
         at = strstr(at + 1, "\"run\" : \"")) {
        const char *status = strstr(at, "\"status\" : \"");
        if (status && strncmp(status + 12, "done", 4) != 0)
            snprintf(id, sizeof(id), "%.*s", (int)(strchr(at + 9, '"') - (at + 9)), at + 9);
    }
    result_free(&r);
    cr_assert(id[0], "no unfinished run found");
    r = RUN(test_store_arg, "resume", id, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *e_out = strstr(r.out, "\"step\" : \"e\", \"outputs\" : { \"o\" : \"");
    cr_assert_not_null(e_out, "%s", r.out);
    e_out = strstr(e_out, "\"o\" : \"") + 7;
    char path[512];
    snprintf(path, sizeof(path), "%.*s", (int)(strchr(e_out, '"') - e_out), e_out);
    char *text = slurp(path);
    cr_expect_str_eq(text, "a\nb\nc\ne\n");
    free(text);
    result_free(&r);
    r = RUN(test_store_arg, "gc");
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
}

Test(store, only_and_from_run_part_of_a_pipeline_on_the_latest_upstream_outputs) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    result r = RUN(test_store_arg, "run", p, "--only", "b", "--json");
    cr_expect_eq(r.status, 1, "nothing upstream has finished yet");
    cr_expect(strstr(r.out, "it has never finished in this pipeline") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "run", p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    /* a's parameter changes, but --only b takes a's latest output as it is. */
    r = RUN(test_store_arg, "run", p, "--only", "b", "--json", "-p", "greeting=changed");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(statuses(r.out), "a=cached b=done c=skipped side=skipped");
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--from", "b", "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(statuses(r.out), "a=cached b=done c=done side=skipped");
    result_free(&r);
    r = RUN(test_store_arg, "run", p, "--only", "nope");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "sluice run: the pipeline has no step 'nope' (for --only)\n");
    result_free(&r);
}

Test(store, a_run_records_the_git_commit_and_its_tags) {
    char repo[200], cmd[1024];
    snprintf(repo, sizeof(repo), "%s/repo", test_dir);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s && cd %s && git init -q . && git config user.email t@example.org && "
             "git config user.name tester",
             repo, repo);
    cr_assert_eq(system(cmd), 0);
    char *p = write_test_file(repo, "p.yaml",
                              "pipeline: versioned\nsteps:\n  a: {uses: emit, with: {text: v1}}\n");
    snprintf(cmd, sizeof(cmd),
             "cd %s && git add p.yaml && git commit -q -m one && git rev-parse HEAD > head", repo);
    cr_assert_eq(system(cmd), 0);
    char head_path[256];
    snprintf(head_path, sizeof(head_path), "%s/head", repo);
    char *head = slurp(head_path);
    head[40] = '\0';
    result r = RUN(test_store_arg, "run", p, "--tag", "ci_job=1234", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char id[64];
    snprintf(id, sizeof(id), "%s", event_value(r.out, "run_started", "run"));
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", id, "--json");
    char expect[128];
    snprintf(expect, sizeof(expect), "\"commit\" : \"%s\"", head);
    cr_expect(strstr(r.out, expect) != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "\"dirty\" : false") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "\"tags\" : { \"ci_job\" : \"1234\" }") != NULL, "%s", r.out);
    result_free(&r);
    snprintf(cmd, sizeof(cmd), "sed -i s/v1/v2/ %s", p);
    cr_assert_eq(system(cmd), 0);
    r = RUN(test_store_arg, "run", p, "--json");
    snprintf(id, sizeof(id), "%s", event_value(r.out, "run_started", "run"));
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", id, "--json");
    cr_expect(strstr(r.out, "\"dirty\" : true") != NULL, "an edited pipeline is dirty: %s", r.out);
    result_free(&r);
    free(head);
}

/* Mounts a tmpfs of `size` at TEST_DIR/small (into small, 256 bytes) and
 * fills store with the --store argument for a store on it; skips the test
 * where mounting is not allowed. */
static void mount_small_disk(const char *size, char *small, char *store) {
    char cmd[600];
    snprintf(small, 256, "%s/small", test_dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && mount -t tmpfs -o size=%s tmpfs %s 2>/dev/null",
             small, size, small);
    if (system(cmd) != 0)
        SKIP_UNLESS_REQUIRED("cannot mount a small tmpfs here (needs root and mount rights)");
    snprintf(store, 300, "--store=%s/store", small);
}

Test(store, a_full_disk_fails_the_step_clearly_and_keeps_the_store_readable) {
    char small[256], cmd[600], store[300];
    mount_small_disk("2m", small, store);
    char *p = write_test_file(test_dir, "full.yaml",
                              "pipeline: full\n"
                              "steps:\n"
                              "  small: {uses: emit, with: {text: fits}}\n"
                              "  big: {uses: shell, with: {run: 'head -c 4000000 /dev/zero > big', "
                              "outputs: {big: big}}}\n");
    result r = RUN(store, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect_str_eq(statuses(r.out), "big=failed small=done");
    cr_expect(strstr(r.out, "No space left on device") != NULL, "the log says why: %s", r.out);
    result_free(&r);
    r = RUN(store, "runs", "list");
    cr_expect_eq(r.status, 0, "the store still reads: %s", r.err);
    cr_expect(strstr(r.out, " failed ") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(store, "artifacts", "list");
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    snprintf(cmd, sizeof(cmd), "umount %s", small);
    cr_expect_eq(system(cmd), 0);
}

Test(store, several_sluice_processes_share_one_store) {
    char *p1 = strdup(write_test_file(
        test_dir, "one.yaml",
        "pipeline: one\nsteps:\n"
        "  a: {uses: shell, with: {run: 'sleep 0.2; echo one > o', outputs: {o: o}}}\n"
        "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'cp \"$SLUICE_INPUT_i\" o', outputs: {o: "
        "o}}}\n"));
    char *p2 = strdup(write_test_file(
        test_dir, "two.yaml",
        "pipeline: two\nsteps:\n"
        "  a: {uses: shell, with: {run: 'sleep 0.2; echo two > o', outputs: {o: o}}}\n"
        "  b: {uses: emit, with: {text: two}}\n"));
    pid_t x = start_sluice_run(p1), y = start_sluice_run(p2);
    /* Readers while both write, once the store exists (a slow start under
     * the sanitizers may take a while). */
    char meta[256];
    snprintf(meta, sizeof(meta), "%s/store/meta/data.mdb", test_dir);
    wait_for_text(meta, NULL);
    for (int i = 0; i < 5; i++) {
        result r = RUN(test_store_arg, "runs", "list");
        cr_expect_eq(r.status, 0, "%s", r.err);
        result_free(&r);
    }
    int wx, wy;
    waitpid(x, &wx, 0);
    waitpid(y, &wy, 0);
    cr_expect(WIFEXITED(wx) && WEXITSTATUS(wx) == 0);
    cr_expect(WIFEXITED(wy) && WEXITSTATUS(wy) == 0);
    result r = RUN(test_store_arg, "runs", "list", "--json");
    int done = 0;
    for (const char *at = strstr(r.out, "\"status\" : \"done\""); at;
         at = strstr(at + 1, "\"status\" : \"done\""))
        done++;
    cr_expect_eq(done, 2, "%s", r.out);
    result_free(&r);
    free(p1);
    free(p2);
}

/* ---- faults: a damaged metadata file, a disk that fills while recording ---- */

/* Runs the chain once and returns the path of its data.mdb (static). */
static const char *stored_chain_meta(void) {
    char *p = write_test_file(test_dir, "chain.yaml", chain);
    expect_success(RUN(test_store_arg, "run", p, "--json"));
    static char meta[256];
    snprintf(meta, sizeof(meta), "%s/store/meta/data.mdb", test_dir);
    return meta;
}

/* Every command that reads the metadata refuses a damaged file with exit
 * 2 and the message, and none dies of a signal. */
static void expect_damage_refused(const char *what, const char *message) {
    char chain_path[256];
    snprintf(chain_path, sizeof(chain_path), "%s/chain.yaml", test_dir);
    result rs[] = {RUN(test_store_arg, "runs", "list"), RUN(test_store_arg, "artifacts", "list"),
                   RUN(test_store_arg, "status", chain_path), RUN(test_store_arg, "gc"),
                   RUN(test_store_arg, "run", chain_path)};
    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        cr_expect_eq(rs[i].status, 2, "%s: command %zu: %s", what, i, rs[i].err);
        cr_expect(strstr(rs[i].err, message) != NULL, "%s: command %zu: %s", what, i, rs[i].err);
        result_free(&rs[i]);
    }
}

Test(store, a_truncated_metadata_file_is_refused_with_exit_2_not_a_crash) {
    const char *meta = stored_chain_meta();
    cr_assert_eq(truncate(meta, 8192), 0);
    expect_damage_refused("truncated",
                          "is damaged: it is 8192 bytes long but its database runs to byte");
    struct stat st;
    cr_assert_eq(stat(meta, &st), 0);
    cr_expect_eq(st.st_size, 8192, "the file is left as it was");
}

Test(store, an_empty_or_missing_metadata_file_is_never_silently_replaced) {
    const char *meta = stored_chain_meta();
    cr_assert_eq(truncate(meta, 0), 0);
    expect_damage_refused("empty", "is damaged: it is empty (0 bytes)");
    struct stat st;
    cr_assert_eq(stat(meta, &st), 0);
    cr_expect_eq(st.st_size, 0, "no fresh database took its place");
    cr_assert_eq(unlink(meta), 0);
    expect_damage_refused("missing", "is damaged: it is missing, but the store holds runs");
    cr_expect_neq(access(meta, F_OK), 0, "no fresh database took its place");
}

/* A file fuzz_meta found: every page checked out on its own, but keys out
 * of order sent LMDB's first write to the wrong place and it crashed. */
Test(store, a_metadata_file_with_keys_out_of_order_is_refused) {
    const char *meta = stored_chain_meta();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cp '%s/tests/fuzz/seeds/meta/keys-out-of-order.mdb' '%s'",
             SLUICE_SOURCE_DIR, meta);
    cr_assert_eq(system(cmd), 0);
    expect_damage_refused("keys out of order", "its keys are out of order");
}

Test(store, fuzzed_metadata_files_never_crash_a_command, .timeout = 240) {
    const char *meta = stored_chain_meta();
    char chain_path[256];
    snprintf(chain_path, sizeof(chain_path), "%s/chain.yaml", test_dir);
    /* More records, so that the tree has branch and overflow pages. */
    for (int i = 0; i < 3; i++) {
        char param[32];
        snprintf(param, sizeof(param), "greeting=%d", i);
        result r = RUN(test_store_arg, "run", chain_path, "-p", param);
        cr_assert_eq(r.status, 0, "%s", r.err);
        result_free(&r);
    }
    char *good = slurp(meta);
    struct stat st;
    cr_assert(good && stat(meta, &st) == 0);
    size_t len = (size_t)st.st_size;
    cr_assert_gt(len, 8192);
    srand(19);
    int refused = 0;
    for (int round = 0; round < 40; round++) {
        char *bad = malloc(len);
        cr_assert_not_null(bad);
        memcpy(bad, good, len);
        /* A few random bytes anywhere, or a burst in one page. */
        size_t page = (size_t)rand() % (len / 4096);
        int burst = round % 2, flips = 1 + rand() % (burst ? 100 : 8);
        for (int k = 0; k < flips; k++) {
            size_t at = burst ? page * 4096 + (size_t)rand() % 4096 : (size_t)rand() % len;
            bad[at] = (char)rand();
        }
        FILE *f = fopen(meta, "wb");
        cr_assert_not_null(f);
        fwrite(bad, 1, len, f);
        fclose(f);
        free(bad);
        result rs[] = {RUN(test_store_arg, "runs", "list"), RUN(test_store_arg, "run", chain_path)};
        for (size_t i = 0; i < 2; i++) {
            cr_expect(rs[i].status == 0 || rs[i].status == 1 || rs[i].status == 2,
                      "round %d, command %zu: status %d: %s", round, i, rs[i].status, rs[i].err);
            refused += rs[i].status == 2;
            result_free(&rs[i]);
        }
    }
    cr_expect_gt(refused, 0, "some damage was found");
    free(good);
}

Test(store, a_disk_full_while_recording_fails_the_run_which_resumes_once_space_is_back) {
    char small[256], cmd[600], store[300];
    mount_small_disk("1m", small, store);
    /* b's output fills the disk (it stops at the full disk and succeeds):
     * storing it needs no space, recording it does. */
    char *p = write_test_file(test_dir, "fill.yaml",
                              "pipeline: fill\n"
                              "steps:\n"
                              "  a: {uses: shell, with: {run: 'echo a > o', outputs: {o: o}}}\n"
                              "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'head -c 20000000 "
                              "/dev/urandom > o 2>/dev/null || true', outputs: {o: o}}}\n"
                              "  c: {uses: shell, inputs: {i: b.o}, with: {run: 'echo c > o', "
                              "outputs: {o: o}}}\n");
    result r = RUN(store, "run", p, "--json");
    cr_expect_eq(r.status, 1, "a record that cannot be written fails the run: %s%s", r.out, r.err);
    cr_expect_str_eq(statuses(r.out), "a=done b=failed c=skipped");
    cr_expect(strstr(r.out, "its result could not be recorded in the metadata store (No space "
                            "left on device)") != NULL,
              "%s", r.out);
    char id[64];
    snprintf(id, sizeof(id), "%s", event_value(r.out, "run_started", "run"));
    result_free(&r);
    snprintf(cmd, sizeof(cmd), "mount -o remount,size=64m %s", small);
    cr_assert_eq(system(cmd), 0);
    r = RUN(store, "resume", id, "--json");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(statuses(r.out), "a=cached b=done c=done");
    result_free(&r);
    r = RUN(store, "doctor");
    cr_expect_eq(r.status, 0, "every record has its object: %s%s", r.out, r.err);
    result_free(&r);
    snprintf(cmd, sizeof(cmd), "umount %s", small);
    cr_expect_eq(system(cmd), 0);
}

/* ---- gc beside live runs ---- */

Test(store, gc_in_a_loop_beside_a_run_never_removes_what_the_run_records, .timeout = 120) {
    /* Twenty steps, each storing an output the next one reads; new objects
     * in every run (the run id is in them). */
    char text[8192] = "pipeline: many\nsettings: {cache: false}\nsteps:\n  s0: {uses: shell, with: "
                      "{run: 'echo \"$SLUICE_RUN_ID\" > o', outputs: {o: o}}}\n";
    for (int i = 1; i < 20; i++) {
        size_t used = strlen(text);
        snprintf(
            text + used, sizeof(text) - used,
            "  s%d: {uses: shell, inputs: {i: s%d.o}, with: {run: 'cat \"$SLUICE_INPUT_i\" > o; "
            "echo %d >> o', outputs: {o: o}}}\n",
            i, i - 1, i);
    }
    char *p = write_test_file(test_dir, "many.yaml", text);
    result r = RUN(test_store_arg, "run", p, "--json"); /* the store exists before gc starts */
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    pid_t pid = start_sluice_run(p);
    int refused = 0, ws = 0, rounds = 0;
    while (waitpid(pid, &ws, WNOHANG) == 0) {
        /* No grace: only the lock stands between gc and the run. */
        result g = RUN(test_store_arg, "gc", "--grace", "0");
        cr_expect(g.status == 0 || g.status == 2, "%s", g.err);
        refused += g.status == 2 && strstr(g.err, "runs are in progress") != NULL;
        result_free(&g);
        rounds++;
    }
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the run succeeds beside gc");
    cr_expect_gt(refused, 0, "gc refused while the run held the store (%d rounds)", rounds);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "every record has its object: %s%s", r.out, r.err);
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect_eq(r.status, 0, "once the run is over gc runs: %s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
}

Test(store, gc_wait_waits_for_the_run_and_keeps_what_it_recorded, .timeout = 120) {
    char *p = write_test_file(
        test_dir, "slow.yaml",
        "pipeline: slow\nsettings: {cache: false}\nsteps:\n"
        "  a: {uses: shell, with: {run: 'echo \"$SLUICE_RUN_ID\" > o', outputs: {o: o}}}\n"
        "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'touch @/b_waits; while test ! -f @/go; "
        "do "
        "sleep 0.05; done; cp \"$SLUICE_INPUT_i\" o', outputs: {o: o}}}\n");
    char go[256];
    snprintf(go, sizeof(go), "%s/go", test_dir);
    fclose(fopen(go, "w"));
    result r = RUN(test_store_arg, "run", p); /* the store exists */
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    unlink(go);
    char b_waits[256];
    snprintf(b_waits, sizeof(b_waits), "%s/b_waits", test_dir);
    unlink(b_waits); /* the first run's */
    pid_t pid = start_sluice_run(p);
    /* b waits for go; a's output is stored, so the run holds the store's
     * lock (from before its first output to its end) while gc starts. */
    wait_for_text(b_waits, NULL);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect_eq(r.status, 2, "refused while the run is live: %s", r.out);
    result_free(&r);
    pid_t gc = fork();
    cr_assert_geq(gc, 0);
    if (gc == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        setenv("MONGOC_DISABLE_SHM", "1", 1);
        execl(SLUICE_BIN, "sluice", test_store_arg, "gc", "--wait", "--grace", "0", (char *)NULL);
        _exit(127);
    }
    /* gc is blocked on the lock once the kernel lists it waiting for it
     * ("-> FLOCK ... PID" in /proc/locks): an event, not a pause. */
    char waiting[64];
    snprintf(waiting, sizeof(waiting), "-> FLOCK  ADVISORY  WRITE %d ", (int)gc);
    wait_for_text("/proc/locks", waiting);
    cr_expect_eq(waitpid(gc, NULL, WNOHANG), 0, "gc --wait waits while the run is live");
    fclose(fopen(go, "w"));
    int ws, wg;
    waitpid(pid, &ws, 0);
    waitpid(gc, &wg, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the run succeeds");
    cr_expect(WIFEXITED(wg) && WEXITSTATUS(wg) == 0, "gc ran once the run ended");
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "every record has its object: %s", r.out);
    result_free(&r);
}

Test(store, gc_keeps_an_unreferenced_object_younger_than_the_grace_period) {
    stored_chain_meta();
    char fan[256], object[400];
    const char *name = "00aa000000000000000000000000000000000000000000000000000000000000";
    snprintf(fan, sizeof(fan), "%s/store/objects/00", test_dir);
    mkdir(fan, 0755);
    snprintf(object, sizeof(object), "%s/%s", fan, name);
    fclose(fopen(object, "w"));
    result r = RUN(test_store_arg, "gc");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "0 objects removed") && strstr(r.out, "1 unreferenced but younger"),
              "%s", r.out);
    cr_expect_eq(access(object, F_OK), 0, "kept");
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "1 object removed") != NULL, "%s", r.out);
    cr_expect_neq(access(object, F_OK), 0, "removed");
    result_free(&r);
}

/* ---- links made by steps ---- */

/* A file outside the store, mode 0600, that no step may change, move,
 * store or delete; returns its path (static). */
static const char *outside_file(void) {
    static char path[256];
    snprintf(path, sizeof(path), "%s/outside", test_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/outside/secret", test_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("outside the store\n", f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void expect_outside_untouched(const char *path) {
    struct stat st;
    cr_expect_eq(stat(path, &st), 0, "%s still exists", path);
    cr_expect_eq(st.st_mode & 07777, 0600, "its mode is unchanged: %o", st.st_mode & 07777);
    char *text = slurp(path);
    cr_expect_str_eq(text ? text : "", "outside the store\n");
    free(text);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -r -q -F 'outside the store' %s/store/objects", test_dir);
    cr_expect_neq(system(cmd), 0, "no object holds the outside file");
}

static void expect_link_refused(const char *yaml, const char *message) {
    char *p = write_test_file(test_dir, "links.yaml", yaml);
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, message) != NULL, "%s", r.out);
    result_free(&r);
}

Test(store, an_output_that_is_a_symbolic_link_is_refused_and_its_target_untouched) {
    const char *secret = outside_file();
    expect_link_refused(
        "pipeline: links\nsteps:\n"
        "  l: {uses: shell, with: {run: 'ln -s @/outside/secret o', outputs: {o: o}}}\n",
        "cannot store output 'o': it is or holds a symbolic link, the output "
        "itself (to ");
    expect_outside_untouched(secret);
}

Test(store, a_folder_output_holding_a_link_is_refused) {
    const char *secret = outside_file();
    expect_link_refused("pipeline: links\nsteps:\n"
                        "  l: {uses: shell, with: {run: 'mkdir d && echo a > d/a && ln -s "
                        "@/outside/secret d/l', outputs: {d: d}}}\n",
                        "it is or holds a symbolic link, l (to ");
    expect_outside_untouched(secret);
}

Test(store, an_output_reached_through_a_linked_folder_is_neither_stored_nor_deleted) {
    const char *secret = outside_file();
    /* The step makes 'sub' a link to the outside folder: its output
     * sub/secret is the outside file. */
    expect_link_refused(
        "pipeline: links\nsteps:\n"
        "  l: {uses: shell, with: {run: 'ln -s @/outside sub', outputs: {o: sub/secret}}}\n",
        "cannot store output 'o': its path leads through a symbolic link");
    expect_outside_untouched(secret);
    /* A failed step's outputs are removed: never through the link. */
    expect_link_refused("pipeline: links\nsteps:\n"
                        "  l: {uses: shell, with: {run: 'ln -s @/outside sub; exit 1', outputs: "
                        "{o: sub/secret}}}\n",
                        "the command exited with status 1");
    expect_outside_untouched(secret);
}

Test(store, an_object_that_is_a_link_is_refused_as_corrupt_not_followed) {
    stored_chain_meta();
    char hash[65] = "", cmd[800];
    artifact_of_step("a", hash);
    /* As an older sluice stored a link output: the object is a link to a
     * file outside whose content has the object's hash. */
    const char *secret = outside_file();
    snprintf(cmd, sizeof(cmd),
             "printf 'hello\\n' > %s && f=%s/store/objects/%.2s/%s && rm -f $f && ln -s %s $f",
             secret, test_dir, hash, hash, secret);
    cr_assert_eq(system(cmd), 0);
    result r = RUN(test_store_arg, "artifacts", "cat", hash);
    cr_expect_eq(r.status, 2, "%s", r.out);
    cr_expect(strstr(r.out, "hello") == NULL, "the outside file is not printed: %s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 1, "%s", r.out);
    result_free(&r);
}

/* ---- outputs a step left open ---- */

Test(store, an_output_the_step_left_open_is_refused_not_stored_truncated) {
    char *p =
        write_test_file(test_dir, "open.yaml",
                        "pipeline: open\nsteps:\n  u: {uses: unclosed, with: {bytes: 13893}}\n");
    result r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "cannot store output 'out': it is still open for writing") != NULL,
              "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "list", "--json");
    cr_expect(strstr(r.out, "\"hash\"") == NULL, "nothing was recorded: %s", r.out);
    result_free(&r);
}

/* ---- doctor ---- */

Test(store, doctor_finds_an_altered_object_and_rebuilds_lost_metadata) {
    const char *meta = stored_chain_meta();
    result r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "a sound store: %s%s", r.out, r.err);
    cr_expect(strstr(r.out, ": 0 problems") != NULL, "%s", r.out);
    result_free(&r);
    /* One object altered: its artifact and the step runs that made or
     * reused it are named. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd),
             "f=$(ls -d %s/store/objects/*/* | head -1); chmod u+w $f; printf X >> $f", test_dir);
    cr_assert_eq(system(cmd), 0);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "its content no longer matches its hash") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "has no intact object") != NULL, "%s", r.out);
    result_free(&r);
    /* The metadata lost: doctor says so, and --rebuild recovers the runs
     * and the intact objects. */
    cr_assert_eq(truncate(meta, 4096), 0);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.out, "problem: metadata: ") && strstr(r.out, "doctor --rebuild"), "%s",
              r.out);
    result_free(&r);
    r = RUN(test_store_arg, "doctor", "--rebuild");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "rebuilt the metadata: 1 run and 3 artifacts") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "list");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, " chain ") && strstr(r.out, " done "), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\n1 object removed, 3 kept") ||
                  strstr(r.out, "1 object removed, 3 kept"),
              "only the altered object goes: %s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    char *p =
        write_test_file(test_dir, "again.yaml",
                        "pipeline: again\nsteps:\n"
                        "  s: {uses: shell, with: {run: 'echo again > o', outputs: {o: o}}}\n");
    r = RUN(test_store_arg, "run", p, "--json");
    cr_expect_eq(r.status, 0, "the store runs again: %s%s", r.out, r.err);
    result_free(&r);
}
