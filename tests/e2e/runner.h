/* runner.h - running the sluice binary from end-to-end tests. */
#ifndef SLUICE_TESTS_RUNNER_H
#define SLUICE_TESTS_RUNNER_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct result {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} result;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&data, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return data;
}

/* Environment variables the next runs set ("NAME=VALUE"), or NULL. */
static const char *run_env[8];

/* Runs argv (argv[0] is replaced by the sluice binary unless it is a path)
 * in folder cwd (NULL: here), with stdin from in_path (NULL: /dev/null). */
static result run_in(const char *cwd, const char *in_path, char *const argv[]) {
    char out_path[] = "/tmp/sluice-test-out-XXXXXX", err_path[] = "/tmp/sluice-test-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    cr_assert(out_fd >= 0 && err_fd >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in_fd = open(in_path ? in_path : "/dev/null", O_RDONLY);
        dup2(in_fd, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        for (int i = 0; i < 8 && run_env[i]; i++)
            putenv((char *)run_env[i]);
        /* No /dev/shm counters for mongo-c-driver (see main.c): tests kill
         * sluice on purpose, and a stale segment makes a later process with
         * the same pid warn on the stderr that tests compare. */
        setenv("MONGOC_DISABLE_SHM", "1", 1);
        execv(argv[0][0] == '/' ? argv[0] : SLUICE_BIN, argv);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    close(out_fd);
    close(err_fd);
    result r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws), slurp(out_path),
                slurp(err_path)};
    unlink(out_path);
    unlink(err_path);
    return r;
}

#define RUN(...) run_in(NULL, NULL, (char *[]){"sluice", __VA_ARGS__, NULL})

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

/* Fails the test with the command's output unless it exited 0; frees r. */
static void expect_success(result r) {
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
}

/* Expects the command to have exited with status, saying needle on stderr
 * (a refusal: bad usage, bad input); frees r. */
static void expect_refused(result r, int status, const char *needle) {
    cr_expect_eq(r.status, status, "exit %d, not %d: %s%s", r.status, status, r.out, r.err);
    cr_expect_not_null(strstr(r.err, needle), "'%s' is not in: %s", needle, r.err);
    result_free(&r);
}

/* A fresh folder for a test, with a store in it and the test plugins on the
 * plugin path of the runs that follow. */
static char test_dir[64], test_store_arg[128], test_plugin_path[512];

static void test_dir_setup(void) {
    snprintf(test_dir, sizeof(test_dir), "/tmp/sluice-test-XXXXXX");
    cr_assert_not_null(mkdtemp(test_dir));
    snprintf(test_store_arg, sizeof(test_store_arg), "--store=%s/store", test_dir);
    snprintf(test_plugin_path, sizeof(test_plugin_path), "SLUICE_PLUGIN_PATH=%s/good",
             SLUICE_TEST_PLUGINS);
    run_env[0] = test_plugin_path;
    run_env[1] = NULL;
}

static void test_dir_teardown(void) {
    char cmd[200];
    /* Objects are read-only: make them writable to remove them. */
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", test_dir, test_dir);
    cr_expect_eq(system(cmd), 0);
}

/* Starts 'sluice STORE run PIPELINE' in the background, output discarded;
 * returns its pid for the test to signal and wait for. */
static pid_t start_sluice_run(const char *pipeline_path) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        putenv(test_plugin_path);
        setenv("MONGOC_DISABLE_SHM", "1", 1);
        execl(SLUICE_BIN, "sluice", test_store_arg, "run", pipeline_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Starts 'sluice STORE run --json PIPELINE' in the background, its events
 * in out_path, for a test to wait for them (wait_for_event). */
static pid_t start_sluice_run_json(const char *pipeline_path, const char *out_path) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(out, 1);
        dup2(devnull, 2);
        putenv(test_plugin_path);
        setenv("MONGOC_DISABLE_SHM", "1", 1);
        execl(SLUICE_BIN, "sluice", test_store_arg, "run", "--json", pipeline_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The offset in out of the first JSON event line `event` about step (NULL:
 * any step), or -1. */
static long event_at(const char *out, const char *event, const char *step) {
    char e[64], s[96];
    snprintf(e, sizeof(e), "\"event\" : \"%s\"", event);
    snprintf(s, sizeof(s), "\"step\" : \"%s\"", step ? step : "");
    for (const char *line = out; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *a = strstr(line, e), *b = step ? strstr(line, s) : line;
        if (a && b && (size_t)(a - line) < len && (size_t)(b - line) < len)
            return line - out;
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* Waits until the file at path holds needle (NULL: until it exists). Tests
 * synchronize on such events, never on a sleep or a deadline of their own:
 * something that never happens is the suite's timeout. */
static void wait_for_text(const char *path, const char *needle) {
    for (;;) {
        char *text = slurp(path);
        int found = text && (!needle || strstr(text, needle));
        free(text);
        if (found)
            return;
        nanosleep(&(struct timespec){0, 5000000L}, NULL);
    }
}

/* Waits until the --json events in path include `event` about step. */
static void wait_for_event(const char *path, const char *event, const char *step) {
    for (;;) {
        char *text = slurp(path);
        long at = text ? event_at(text, event, step) : -1;
        free(text);
        if (at >= 0)
            return;
        nanosleep(&(struct timespec){0, 5000000L}, NULL);
    }
}

/* Writes folder/name with text, where every "@" stands for folder; returns
 * the path (static: valid until the next call). */
static char *write_test_file(const char *folder, const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", folder, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (const char *p = text; *p; p++)
        if (*p == '@')
            fputs(folder, f);
        else
            fputc(*p, f);
    fclose(f);
    return path;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- run, then inspect ---- */

/* The id of the run whose --json events are in out ("" if none). */
static char last_run[32];

static result run_pipeline(char *const argv[]) {
    result r = run_in(NULL, NULL, argv);
    const char *id = r.out ? strstr(r.out, "\"run\" : \"") : NULL;
    snprintf(last_run, sizeof(last_run), "%.*s", id ? (int)strcspn(id + 9, "\"") : 0,
             id ? id + 9 : "");
    return r;
}

/* Runs a pipeline with --json in the test store, noting its run id. */
#define RUN_PIPELINE(...)                                                                          \
    run_pipeline((char *[]){"sluice", test_store_arg, "run", "--json", __VA_ARGS__, NULL})

/* The text of output `output` of the last run. */
static char *last_output(const char *output) {
    cr_assert_neq(*last_run, '\0', "a run was recorded");
    result r = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\" : \"", output);
    /* In a step's "outputs" object: parameters share the names, and a
     * shell step's 'outputs' parameter names paths, not hashes. */
    const char *hash = NULL;
    for (const char *o = strstr(r.out, "\"outputs\" : {"); o && !hash;
         o = strstr(o + 1, "\"outputs\" : {")) {
        const char *found = strstr(o, needle), *end = strchr(o, '}');
        if (found && end && found < end && strspn(found + strlen(needle), "0123456789abcdef") == 64)
            hash = found;
    }
    cr_assert_not_null(hash, "no output %s in %s", output, r.out);
    char id[16];
    snprintf(id, sizeof(id), "%.12s", hash + strlen(needle));
    result_free(&r);
    result cat = RUN(test_store_arg, "artifacts", "cat", id);
    cr_assert_eq(cat.status, 0, "%s", cat.err);
    free(cat.err);
    return cat.out;
}

/* The folder of the output spec (RUN:STEP.OUTPUT) into out. */
static void output_folder(const char *spec, char *out, size_t size) {
    result r = RUN(test_store_arg, "artifacts", "path", (char *)spec);
    cr_assert_eq(r.status, 0, "%s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    snprintf(out, size, "%s", r.out);
    result_free(&r);
}

/* How many times needle occurs in text. */
static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#endif
