/* End-to-end tests of the plugin ABI's compatibility promise: a plugin
 * built against the previous minor version's header
 * (tests/plugins/abi/plugin_1_2.h) loads, lists and runs in this sluice,
 * in process and in a child, and its status codes keep their meaning. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

static char abi_plugin_path[600];

static void abi_setup(void) {
    test_dir_setup();
    snprintf(abi_plugin_path, sizeof(abi_plugin_path), "SLUICE_PLUGIN_PATH=%s/abi",
             SLUICE_TEST_PLUGINS);
    run_env[0] = abi_plugin_path;
}

TestSuite(abi, .init = abi_setup, .fini = test_dir_teardown, .timeout = 60);

Test(abi, a_1_2_plugin_is_listed_with_its_ports_and_parameters) {
    result r = RUN("plugins", "describe", "abi12_copy");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    /* The second port and the third parameter sit past the first element:
     * they read right only if the arrays are walked by 1.2's sizes. */
    const char *want[] = {"extra", "optional", "suffix", "times", "note", "path"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect(strstr(r.out, want[i]) != NULL, "missing '%s' in:\n%s", want[i], r.out);
    result_free(&r);
}

static void copy_runs(const char *isolation) {
    char yaml[600];
    snprintf(yaml, sizeof(yaml),
             "pipeline: old\n"
             "steps:\n"
             "  say: {uses: shell, with: {run: 'printf hello > out', outputs: {o: out}}}\n"
             "  copy: {uses: abi12_copy, inputs: {in: say.o}, with: {suffix: '!', times: 3},\n"
             "         isolation: %s}\n",
             isolation);
    char *p = write_test_file(test_dir, "old.yaml", yaml);
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char *out = last_output("out");
    cr_expect_str_eq(out, "hello!!!");
    free(out);
    result_free(&r);
}

Test(abi, a_1_2_plugin_runs_in_process) { copy_runs("in-process"); }

Test(abi, a_1_2_plugin_runs_in_a_child) { copy_runs("process"); }

/* 1.2's codes are -1..-5; -3 is also -ESRCH, which this sluice would name
 * "No such process" if it read the old plugin's code as errno. */
static void fails_with(const char *step, const char *message) {
    char yaml[300];
    snprintf(yaml, sizeof(yaml), "pipeline: oldfail\nsteps:\n  s: {uses: %s}\n", step);
    char *p = write_test_file(test_dir, "oldfail.yaml", yaml);
    result r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, message) || strstr(r.out, message), "missing '%s' in:\n%s%s", message,
              r.out, r.err);
    cr_expect(!strstr(r.err, "No such process") && !strstr(r.out, "No such process"));
    result_free(&r);
}

Test(abi, a_1_2_plugins_sl_fail_keeps_its_message) {
    fails_with("abi12_fail", "the old plugin failed on purpose");
}

Test(abi, a_1_2_plugins_einval_reads_as_einval) {
    fails_with("abi12_einval", "the step reported an invalid argument");
}

/* init_data's pointer reaches run through the loader, the scheduler and a
 * child 'sluice exec'; the second run finds the plugin in the registry cache
 * and loads it only to run the step (registry_materialize). */
static void user_data_runs(const char *isolation) {
    char cache[200];
    snprintf(cache, sizeof(cache), "SLUICE_PLUGIN_CACHE=%s/plugins.json", test_dir);
    run_env[1] = cache;
    run_env[2] = NULL;
    char yaml[300];
    snprintf(yaml, sizeof(yaml), "pipeline: data\nsteps:\n  s: {uses: abi13_data, isolation: %s}\n",
             isolation);
    char *p = write_test_file(test_dir, "data.yaml", yaml);
    for (int i = 0; i < 2; i++) {
        result r = RUN_PIPELINE(p, "--no-cache");
        cr_assert_eq(r.status, 0, "run %d: %s%s", i + 1, r.out, r.err);
        char *out = last_output("out");
        cr_expect_str_eq(out, "magic 5eed");
        free(out);
        result_free(&r);
    }
}

Test(abi, init_datas_pointer_reaches_run_in_process) { user_data_runs("in-process"); }

Test(abi, init_datas_pointer_reaches_run_in_a_child) { user_data_runs("process"); }

/* A temporary of the registry cache left by a killed process (between
 * mkstemp and rename) is swept once it is an hour old; a younger one may
 * be another process's, being written, and is kept. */
Test(abi, the_registry_caches_stale_temporaries_are_swept) {
    char cache[200], stale[220], young[220];
    snprintf(cache, sizeof(cache), "SLUICE_PLUGIN_CACHE=%s/plugins.json", test_dir);
    snprintf(stale, sizeof(stale), "%s/plugins.json.Ab3dEf", test_dir);
    snprintf(young, sizeof(young), "%s/plugins.json.Xy9z01", test_dir);
    for (const char *path = stale;; path = young) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fclose(f);
        if (path == young)
            break;
    }
    struct timespec two_hours_ago[2] = {{.tv_sec = time(NULL) - 7200},
                                        {.tv_sec = time(NULL) - 7200}};
    cr_assert_eq(utimensat(AT_FDCWD, stale, two_hours_ago, 0), 0);
    run_env[1] = cache;
    run_env[2] = NULL;
    result r = RUN("plugins", "list");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    cr_expect_neq(access(stale, F_OK), 0, "the stale temporary is still there");
    cr_expect_eq(access(young, F_OK), 0, "a young temporary was removed");
}

Test(abi, what_abi_1_3_refuses_is_refused_with_its_reason) {
    char path[600];
    snprintf(path, sizeof(path), "SLUICE_PLUGIN_PATH=%s/abi_bad:%s/abi", SLUICE_TEST_PLUGINS,
             SLUICE_TEST_PLUGINS);
    run_env[0] = path;
    result r = RUN("plugins", "list");
    cr_expect_eq(r.status, 2);
    const char *reasons[] = {
        "both_inits.so: error: plugin refused: plugin 'both_inits' gives both init/teardown and "
        "init_data/teardown_data: use one pair",
        "short_stride.so: error: plugin refused: its descriptor gives sizeof(sl_port) as 8 bytes",
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        cr_expect(strstr(r.err, reasons[i]) != NULL, "missing: %s\nin:\n%s", reasons[i], r.err);
    cr_expect(strstr(r.out, "abi12_copy") != NULL, "the good plugins still load:\n%s", r.out);
    result_free(&r);
}
