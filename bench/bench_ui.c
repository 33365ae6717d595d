/* bench_ui - the dashboard with 10,000 runs in the store.
 *
 * Writes 10,000 runs (each with one step run) through the metadata API,
 * starts 'sluice ui' on a free port, and times, on fresh loopback
 * connections, the server's answers:
 *   - GET /api/runs, the first page (50 runs, newest first): time to the
 *     first byte and to the whole answer;
 *   - the runs page as a browser loads it: /, /assets/app.js and the first
 *     page of /api/runs, one after the other;
 *   - a filter that matches no run (every run is read): the worst case.
 * Each is the median of 30 tries, printed in ms and as a ratio to the goal
 * of 200 ms of server time (issue 18): below 1 meets it.
 * Then requests per second for the first page of /api/runs, one after the
 * other, on one kept-alive connection against a fresh connection each:
 * what keep-alive saves a browser. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#include "error.h"
#include "meta.h"

#define N_RUNS 10000
#define TRIES 30
#define GOAL_MS 200.0

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_ui: %s: %s\n", what, sluice_strerror(rc));
    exit(1);
}

/* The runs as record_run() writes them (pipeline, file, status, times,
 * steps, overrides, tags) and one step run each, put straight into LMDB a
 * thousand to a transaction: record_run() commits each run alone and looks
 * up its git commit, which would make this set-up the bench's longest part. */
static void write_runs(const char *store, const char *file) {
    meta_db m;
    MDB_txn *txn = NULL;
    int rc = meta_open(&m, store, 0);
    if (rc)
        die("meta_open", rc);
    for (int i = 0; i < N_RUNS; i++) {
        if (i % 1000 == 0 && (rc = meta_begin(&m, 1, &txn)))
            die("meta_begin", rc);
        char id[48], key[64], hash[65];
        snprintf(id, sizeof(id), "20260101-%06d-%06x", i / 60 * 100 + i % 60, i);
        snprintf(key, sizeof(key), "%s/a", id);
        snprintf(hash, sizeof(hash), "%064x", i);
        double t = 1767225600.0 + i * 60.0;
        const char *status = i % 7 ? "done" : "failed";
        bson_t run = BSON_INITIALIZER, sub, step = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&run, "pipeline", "bench_ui");
        BSON_APPEND_UTF8(&run, "file", file);
        BSON_APPEND_UTF8(&run, "status", status);
        BSON_APPEND_DOUBLE(&run, "started", t);
        BSON_APPEND_DOUBLE(&run, "finished", t + 3);
        BSON_APPEND_INT32(&run, "steps", 1);
        BSON_APPEND_ARRAY_BEGIN(&run, "overrides", &sub);
        bson_append_array_end(&run, &sub);
        BSON_APPEND_DOCUMENT_BEGIN(&run, "tags", &sub);
        BSON_APPEND_UTF8(&sub, "ci", "1");
        bson_append_document_end(&run, &sub);
        BSON_APPEND_UTF8(&step, "uses", "shell");
        BSON_APPEND_UTF8(&step, "status", status);
        BSON_APPEND_DOUBLE(&step, "started", t);
        BSON_APPEND_DOUBLE(&step, "finished", t + 3);
        BSON_APPEND_INT32(&step, "attempts", 1);
        BSON_APPEND_DOCUMENT_BEGIN(&step, "outputs", &sub);
        BSON_APPEND_UTF8(&sub, "o", hash);
        bson_append_document_end(&step, &sub);
        if ((rc = meta_put(txn, m.runs, id, &run)) || (rc = meta_put(txn, m.steps, key, &step)))
            die("meta_put", rc);
        bson_destroy(&run);
        bson_destroy(&step);
        if ((i % 1000 == 999 || i == N_RUNS - 1) && (rc = meta_commit(txn)))
            die("meta_commit", rc);
    }
    meta_sync(&m);
    meta_close(&m);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("bench_ui: connect");
        exit(1);
    }
    return fd;
}

/* One GET on a fresh connection: seconds to the first byte and to the
 * end; exits when the answer is not 200. */
static void get(int port, const char *path, double *first, double *all) {
    char req[512], buf[65536];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", path);
    double t0 = now();
    int fd = connect_to(port);
    if (send(fd, req, strlen(req), 0) != (ssize_t)strlen(req))
        exit(1);
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    *first = now() - t0;
    if (n < 12 || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "bench_ui: GET %s: %.*s\n", path, n > 0 ? (int)n : 0, buf);
        exit(1);
    }
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
    *all = now() - t0;
    close(fd);
}

/* n GETs of path one after the other, each answer read whole (framed by
 * its Content-Length): on one kept-alive connection, or a fresh one each
 * (Connection: close). Returns requests per second. */
static double rate(int port, const char *path, int n, int keep) {
    char req[512], buf[65536];
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\n%s\r\n", path,
                       keep ? "" : "Connection: close\r\n");
    int fd = -1;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        if (fd < 0)
            fd = connect_to(port);
        if (send(fd, req, (size_t)len, 0) != len)
            exit(1);
        size_t have = 0, want = 0;
        while (!want || have < want) {
            ssize_t k = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
            if (k <= 0) {
                fprintf(stderr, "bench_ui: %s: the answer was cut short\n", path);
                exit(1);
            }
            have += (size_t)k;
            buf[have] = 0;
            const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
            if (!want && end && cl)
                want = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
            if (have == sizeof(buf) - 1 && have < want)
                have = 0, want -= sizeof(buf) - 1; /* a long answer: only its length counts */
        }
        if (!keep) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return n / (now() - t0);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return v[n / 2];
}

static void report(const char *what, double seconds) {
    double ms = seconds * 1000;
    printf("  %-48s %8.2f ms   %.3f of the %.0f ms goal\n", what, ms, ms / GOAL_MS, GOAL_MS);
}

int main(void) {
    char dir[] = "/tmp/sluice-bench-ui-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char store[128], file[128], out[128], cmd[256];
    snprintf(store, sizeof(store), "%s/store", dir);
    snprintf(file, sizeof(file), "%s/bench_ui.yaml", dir);
    snprintf(out, sizeof(out), "%s/ui.out", dir);
    FILE *f = fopen(file, "w");
    if (!f)
        return 1;
    fputs("pipeline: bench_ui\nsteps:\n  a: {uses: shell, with: {run: 'true'}}\n", f);
    fclose(f);
    double t0 = now();
    write_runs(store, file);
    printf("bench_ui: %d runs written in %.2f s\n", N_RUNS, now() - t0);

    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        char store_arg[160];
        snprintf(store_arg, sizeof(store_arg), "--store=%s", store);
        execl(SLUICE_BIN, "sluice", store_arg, "ui", "--listen", "127.0.0.1:0", (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        nanosleep(&(struct timespec){0, 50000000}, NULL);
        f = fopen(out, "r");
        char line[512] = "";
        if (f && fgets(line, sizeof(line), f)) {
            const char *at = strstr(line, "127.0.0.1:");
            port = at ? atoi(at + 10) : 0;
        }
        if (f)
            fclose(f);
    }
    if (!port) {
        fprintf(stderr, "bench_ui: sluice ui did not start\n");
        kill(pid, SIGTERM);
        return 1;
    }
    double first[TRIES], all[TRIES], page[TRIES], scan[TRIES], a, b;
    get(port, "/api/runs", &a, &b); /* the first opens the store */
    for (int i = 0; i < TRIES; i++) {
        get(port, "/api/runs", &first[i], &all[i]);
        double x, y, z = 0;
        page[i] = 0;
        get(port, "/", &x, &y);
        page[i] += y;
        get(port, "/assets/app.js", &x, &y);
        page[i] += y;
        get(port, "/api/runs", &x, &y);
        page[i] += y;
        get(port, "/api/runs?status=no-such-status", &x, &z);
        scan[i] = z;
    }
    printf("bench_ui: sluice ui over %d runs (median of %d, server time on loopback)\n", N_RUNS,
           TRIES);
    report("GET /api/runs (50 newest): first byte", median(first, TRIES));
    report("GET /api/runs (50 newest): whole answer", median(all, TRIES));
    report("runs page: /, app.js and /api/runs", median(page, TRIES));
    report("a filter matching none of the 10,000 runs", median(scan, TRIES));
    double fresh = rate(port, "/api/runs", 1000, 0), kept = rate(port, "/api/runs", 1000, 1);
    printf("  GET /api/runs, 1000 one after the other: %.0f/s on fresh connections, %.0f/s on "
           "one kept alive: %.2f times\n",
           fresh, kept, kept / fresh);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
