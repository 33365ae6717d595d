/* The hostile-input corpus: every case under tests/data/hostile/<kind>/<case>/
 * (kinds pipelines, pages, models, exports, index; the format is described
 * in tests/data/hostile/README.md) is run with the real sluice binary, and
 * its exit status and messages are compared with the case's `expect`, as
 * curl's tests/data cases are. Each case runs in a fresh folder with a fresh
 * store and under a time limit, so a case that hangs fails instead of
 * stopping the suite; a case with a `site` folder gets it served on
 * loopback (scripts/demo-serve) at $SLUICE_HOSTILE_SITE. */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include "runner.h"
#include "serve.h"

/* Seconds a case may take (the dev-asan build is several times slower than
 * release); past it, timeout(1) ends sluice and the case fails with 124. */
#define CASE_SECONDS "240"
#define MAX_ARGS 48

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the folders in dir, sorted; *n of them (malloc'ed). */
static char **case_names(const char *dir, size_t *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[1024];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof(*names));
            cr_assert_not_null(names);
        }
        cr_assert_not_null(names[(*n)++] = strdup(e->d_name));
    }
    closedir(d);
    if (*n > 1)
        qsort(names, *n, sizeof(*names), by_name);
    return names;
}

/* Replaces every "$CASE" and "$STORE" in word (into out). */
static void substitute(const char *word, const char *case_dir, const char *store, char *out,
                       size_t size) {
    size_t k = 0;
    out[0] = '\0';
    for (const char *p = word; *p && k + 1 < size;) {
        const char *with = NULL;
        size_t skip = 0;
        if (strncmp(p, "$CASE", 5) == 0)
            with = case_dir, skip = 5;
        else if (strncmp(p, "$STORE", 6) == 0)
            with = store, skip = 6;
        if (with) {
            k += (size_t)snprintf(out + k, size - k, "%s", with);
            cr_assert_lt(k, size, "%s: the expanded argument is too long", word);
            p += skip;
        } else {
            out[k++] = *p++;
            out[k] = '\0';
        }
    }
}

/* Serves case_dir/site on loopback; returns the server's pid (0 when the
 * case has no site) and sets site_env to SLUICE_HOSTILE_SITE=URL. */
static pid_t serve_site(const char *case_dir, char *site_env, size_t size) {
    char site[1024], port_file[256];
    struct stat st;
    snprintf(site, sizeof(site), "%s/site", case_dir);
    if (stat(site, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    snprintf(port_file, sizeof(port_file), "%s/port", test_dir);
    int port;
    pid_t pid = demo_serve(site, port_file, &port);
    snprintf(site_env, size, "SLUICE_HOSTILE_SITE=http://127.0.0.1:%d", port);
    return pid;
}

/* Runs one case; returns 1 when it held, 0 (with the reasons reported)
 * when not. */
static int run_case(const char *kind, const char *name, const char *case_dir) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/cmd", case_dir);
    char *cmd = slurp(path);
    snprintf(path, sizeof(path), "%s/expect", case_dir);
    char *expect = slurp(path);
    cr_assert(cmd && *cmd, "%s/%s: no cmd file", kind, name);
    cr_assert(expect && *expect, "%s/%s: no expect file", kind, name);
    cmd[strcspn(cmd, "\r\n")] = '\0';

    test_dir_setup();
    char store[128], site_env[96];
    snprintf(store, sizeof(store), "%s/store", test_dir);
    pid_t server = serve_site(case_dir, site_env, sizeof(site_env));
    if (server) {
        run_env[1] = site_env;
        run_env[2] = NULL;
    }

    static char words[MAX_ARGS][1200];
    char *argv[MAX_ARGS + 6];
    size_t argc = 0;
    argv[argc++] = "/usr/bin/timeout";
    argv[argc++] = "-k";
    argv[argc++] = "5";
    argv[argc++] = CASE_SECONDS;
    argv[argc++] = SLUICE_BIN;
    size_t n_words = 0;
    for (char *save = NULL, *w = strtok_r(cmd, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        cr_assert_lt(n_words, (size_t)MAX_ARGS, "%s/%s: too many arguments", kind, name);
        substitute(w, case_dir, store, words[n_words], sizeof(words[n_words]));
        argv[argc++] = words[n_words++];
    }
    argv[argc] = NULL;
    result r = run_in(test_dir, NULL, argv);

    local_server_stop(&server);
    char *output = NULL;
    size_t output_len = 0;
    FILE *m = open_memstream(&output, &output_len);
    cr_assert_not_null(m);
    fprintf(m, "%s%s", r.out ? r.out : "", r.err ? r.err : "");
    fclose(m);

    int held = 1;
    char *save = NULL, *line = strtok_r(expect, "\n", &save);
    int want = atoi(line);
    if (r.status != want) {
        cr_expect_eq(r.status, want, "%s/%s: exit status %d, expected %d; output:\n%s", kind, name,
                     r.status, want, output);
        held = 0;
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        line[strcspn(line, "\r")] = '\0';
        if (!*line)
            continue;
        if (!strstr(output, line)) {
            cr_expect_not_null(NULL, "%s/%s: the output lacks '%s'; output:\n%s", kind, name, line,
                               output);
            held = 0;
        }
    }
    free(output);
    result_free(&r);
    free(cmd);
    free(expect);
    test_dir_teardown();
    return held;
}

/* Runs every case of one kind; at_least is how many there must be (a
 * corpus folder emptied by mistake must not pass). */
static void run_kind(const char *kind, size_t at_least) {
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/tests/data/hostile/%s", SLUICE_SOURCE_DIR, kind);
    size_t n;
    char **names = case_names(dir, &n);
    cr_assert_geq(n, at_least, "%s: %zu cases, expected at least %zu", dir, n, at_least);
    size_t held = 0;
    for (size_t i = 0; i < n; i++) {
        char case_dir[1024];
        snprintf(case_dir, sizeof(case_dir), "%s/%s", dir, names[i]);
        held += (size_t)run_case(kind, names[i], case_dir);
        free(names[i]);
    }
    free(names);
    cr_log_info("%s: %zu of %zu cases held", kind, held, n);
}

TestSuite(hostile, .timeout = 1800);

Test(hostile, pipelines) { run_kind("pipelines", 1); }
Test(hostile, pages) { run_kind("pages", 1); }
Test(hostile, models) { run_kind("models", 1); }
Test(hostile, exports) { run_kind("exports", 1); }
Test(hostile, index) { run_kind("index", 1); }
