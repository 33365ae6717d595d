/* test_alloc.c - out of memory, everywhere: the real binary run once per
 * allocation it makes, with that allocation failing (tests/alloc/failnth.c),
 * over the pipeline loader, the plugin registry and a small run. Each run
 * must end by itself with a clean error or success: no crash, no sanitizer
 * report (under dev-asan a leak aborts), no unnamed error.
 *
 * SLUICE_ALLOC_SWEEP=N bounds the runs per command (default 80, spread
 * evenly over the allocations); 0 tries every allocation. libbson's own
 * allocations are left alone: it aborts on a failed one by design. */
#include "runner.h"

#include <errno.h>

TestSuite(alloc, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 600);

static char env_preload[600], env_fail[64], env_count[300], env_asan[600];

/* Runs argv with the shim, failing allocation n (0: none) and counting. */
static result run_failing(unsigned long n, char *const argv[]) {
    snprintf(env_fail, sizeof(env_fail), "SLUICE_FAIL_ALLOC=%lu", n);
    size_t i = 0;
    while (run_env[i])
        i++;
    run_env[i] = env_preload;
    run_env[i + 1] = env_fail;
    run_env[i + 2] = env_count;
    run_env[i + 3] = env_asan;
    /* OpenBLAS (linked by the embed plugin) starts its threads as it loads
     * and raises SIGINT when it cannot: not ours to test. */
    run_env[i + 4] = "OPENBLAS_NUM_THREADS=1";
    run_env[i + 5] = NULL;
    result r = run_in(NULL, NULL, argv);
    run_env[i] = NULL;
    return r;
}

static void setup_env(void) {
    snprintf(env_preload, sizeof(env_preload), "LD_PRELOAD=%s", SLUICE_FAILNTH);
    snprintf(env_count, sizeof(env_count), "SLUICE_ALLOC_COUNT=%s/count", test_dir);
    /* The shim comes before ASan's runtime, which by default refuses that. */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(env_asan, sizeof(env_asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
             asan ? asan : "", asan && *asan ? ":" : "");
}

/* The allocations of the last run (the largest count a process wrote). */
static unsigned long last_count(void) {
    char path[300];
    snprintf(path, sizeof(path), "%s/count", test_dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "the shim wrote no count: was it preloaded?");
    unsigned long most = 0, n;
    while (fscanf(f, "%lu", &n) == 1)
        if (n > most)
            most = n;
    fclose(f);
    unlink(path);
    return most;
}

/* Runs argv once as is, then once per allocation (or a spread of them),
 * failing that one; fresh() is called before each run to reset state. */
static void sweep(const char *what, char *const argv[], void (*fresh)(void)) {
    setup_env();
    if (fresh)
        fresh();
    result ok = run_failing(0, argv);
    cr_assert_eq(ok.status, 0, "%s, no failure: %s%s", what, ok.out, ok.err);
    result_free(&ok);
    unsigned long total = last_count();
    cr_assert_gt(total, 10, "%s allocates: the shim counted %lu", what, total);
    const char *bound = getenv("SLUICE_ALLOC_SWEEP");
    unsigned long runs = bound ? strtoul(bound, NULL, 10) : 80;
    unsigned long stride = runs && total > runs ? (total + runs - 1) / runs : 1;
    unsigned long failed = 0;
    for (unsigned long n = 1; n <= total; n += stride) {
        if (fresh)
            fresh();
        result r = run_failing(n, argv);
        char path[300];
        snprintf(path, sizeof(path), "%s/count", test_dir);
        unlink(path);
        cr_assert_lt(r.status, 128, "%s, allocation %lu of %lu failing: killed by signal %d\n%s",
                     what, n, total, r.status - 128, r.err);
        cr_assert_null(strstr(r.err, "Sanitizer"), "%s, allocation %lu of %lu failing:\n%s", what,
                       n, total, r.err);
        cr_assert_null(strstr(r.err, "Unknown error"), "%s, allocation %lu failing:\n%s", what, n,
                       r.err);
        if (r.status != 0) {
            failed++;
            /* A run reports a failed step on stdout, the rest on stderr. */
            cr_assert(r.err[0] != '\0' || strstr(r.out, " failed"),
                      "%s, allocation %lu failing: exit %d with no message:\n%s", what, n, r.status,
                      r.out);
        }
        result_free(&r);
    }
    /* A sweep where nothing ever failed would test nothing. */
    cr_expect_gt(failed, 0, "%s: no failing allocation made the command fail", what);
}

static void fresh_store(void) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s/store' 2>/dev/null; rm -rf '%s/store'", test_dir,
             test_dir);
    cr_assert_eq(system(cmd), 0);
}

Test(alloc, loading_and_binding_a_shipped_pipeline) {
    /* The step plugins listed from a registry cache of the test's own, as
     * the first (unfailing) run leaves it: the same work every run. */
    static char env_cache[300];
    snprintf(env_cache, sizeof(env_cache), "SLUICE_PLUGIN_CACHE=%s/cache.json", test_dir);
    run_env[1] = env_cache;
    run_env[2] = NULL;
    sweep("validate",
          (char *[]){"sluice", "validate", SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml",
                     NULL},
          NULL);
}

/* A copy of the binary in a folder of its own, so that only the test
 * plugins are loaded, not the built-in ones beside the binary: those link
 * libraries (GnuTLS through libcurl, OpenBLAS) whose constructors abort
 * when an allocation fails. Returns the path (static). */
static char *lone_binary(void) {
    static char path[200];
    char cmd[600];
    snprintf(path, sizeof(path), "%s/bin/sluice", test_dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/bin' && cp '%s' '%s'", test_dir, SLUICE_BIN, path);
    cr_assert_eq(system(cmd), 0);
    return path;
}

Test(alloc, loading_the_test_plugin_folder) {
    /* Every file opened and checked, not listed from the registry cache. */
    run_env[1] = "SLUICE_PLUGIN_CACHE=off";
    run_env[2] = NULL;
    sweep("plugins list", (char *[]){lone_binary(), "plugins", "list", NULL}, NULL);
}

Test(alloc, a_small_run) {
    run_env[1] = "SLUICE_PLUGIN_CACHE=off";
    run_env[2] = NULL;
    char *bin = lone_binary();
    char *p = write_test_file(test_dir, "small.yaml",
                              "pipeline: small\n"
                              "steps:\n"
                              "  say: {uses: emit, with: {text: hello}}\n"
                              "  again: {uses: echo, inputs: {in: say.out}}\n");
    sweep("run", (char *[]){bin, test_store_arg, "run", p, NULL}, fresh_store);
}
