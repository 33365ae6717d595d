/* test_serve_dashboard.c - the dashboard in `sluice serve`: with a store
 * holding a run, serve starts 'sluice ui' as a child and relays /, /api/
 * and /assets/ to it byte for byte (serve's API key not asked of them),
 * its own routes unchanged; SIGTERM stops both processes. */
#include <dirent.h>

#include "serve_fixture.h"

TestSuite(serve_dashboard, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 120);

/* The pid of the 'sluice ui' whose command line names this test's store
 * (0: none). */
static pid_t ui_child(void) {
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    struct dirent *e;
    pid_t found = 0;
    while (!found && (e = readdir(d))) {
        char path[300], cmd[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        cmd[n] = 0;
        /* arguments are NUL-separated: "--store" STORE "ui" */
        for (size_t i = 0; i + 1 < n; i += strlen(cmd + i) + 1)
            if (strstr(cmd + i, test_dir) && strcmp(cmd + i + strlen(cmd + i) + 1, "ui") == 0)
                found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

static char out[1 << 20];

static int get(int port, const char *path, const char *extra) {
    char req[512];
    /* no Connection: close: a relayed answer closes the connection itself */
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra ? extra : "");
    exchange(port, req, out, sizeof(out));
    return status_of(out);
}

Test(serve_dashboard, relays_the_dashboard_and_stops_it) {
    make_model();
    char *file = strdup(write_test_file(test_dir, "p.yaml",
                                        "pipeline: shown\n"
                                        "steps:\n"
                                        "  a: {uses: shell, with: {run: 'echo x > o', outputs: "
                                        "{o: o}}}\n"));
    result r = RUN_PIPELINE(file);
    free(file);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    cr_assert_neq(last_run[0], 0);
    char *keys = strdup(write_test_file(test_dir, "keys", "serve-key-0123456789\n"));
    int port;
    pid_t pid = start_serve((const char *[]){"--api-key-file", keys, NULL}, 1, &port);
    free(keys);
    /* the child may still be starting: 503 until it listens */
    int status;
    while ((status = get(port, "/", NULL)) == 503)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_assert_eq(status, 200, "GET /: %.300s\nserver log: %s", out, server_log());
    cr_expect_not_null(strstr(out, "text/html"));
    cr_expect_not_null(strstr(out, "<html"), "%.300s", out);
    /* asked to by the relay, the child closes after its answer */
    cr_expect_not_null(strstr(out, "Connection: close"), "%.300s", out);
    /* serve's key is not asked of the dashboard's reads */
    cr_assert_eq(get(port, "/api/runs?limit=5", NULL), 200, "%.300s", out);
    cr_expect_not_null(strstr(out, last_run), "the run %s in: %.500s", last_run, out);
    cr_expect_not_null(strstr(out, "\"shown\""), "%.500s", out);
    /* its writes need the ui's own key: serve's key file, passed on */
    char req[512];
    post(req, sizeof(req), "/api/models/none/promote", "{\"alias\": \"prod\", \"version\": 1}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 401, "%.300s", out);
    /* serve's own routes as before */
    cr_expect_eq(health(port), 200);
    cr_expect_eq(get(port, "/v1/models", "Connection: close\r\n"), 401, "%.300s", out);
    cr_expect_eq(get(port, "/v1/models",
                     "Authorization: Bearer serve-key-0123456789\r\nConnection: close\r\n"),
                 200, "%.300s", out);
    pid_t ui = ui_child();
    cr_assert_gt(ui, 0, "a 'sluice ui' child runs");
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
    cr_expect_eq(ui_child(), 0, "the 'sluice ui' child is gone");
    cr_expect(kill(ui, 0) != 0 && errno == ESRCH, "pid %d is gone", (int)ui);
}

Test(serve_dashboard, off_when_asked) {
    make_model();
    char *file = strdup(write_test_file(test_dir, "p.yaml",
                                        "pipeline: shown\n"
                                        "steps:\n"
                                        "  a: {uses: shell, with: {run: 'true'}}\n"));
    expect_success(RUN(test_store_arg, "run", file));
    free(file);
    int port;
    pid_t pid = start_serve((const char *[]){"--no-dashboard", NULL}, 1, &port);
    cr_expect_eq(get(port, "/", "Connection: close\r\n"), 404, "%.300s", out);
    cr_expect_eq(ui_child(), 0);
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
}
