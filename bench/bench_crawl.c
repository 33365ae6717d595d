/* bench_crawl - the crawl step fetching 200 local pages, against curl
 * fetching the same pages one after another (one process, one kept-alive
 * connection: the fastest sequential client there is) and curl --parallel.
 *
 * Two cases, both served on loopback by scripts/demo-serve:
 *   - generated article pages served at once: what the crawler itself costs
 *     (fetch, robots.txt, HTML parsing, warehouse writes) beside bare
 *     transfers;
 *   - the same pages 20 ms slow each, as a remote site is: what keeping a
 *     few transfers in flight (the multi interface) buys. The physical
 *     limit here is 200 x 20 ms / concurrency.
 * Every sluice run is a whole process on a fresh store, so nothing is
 * skipped as already crawled. Best of a few rounds. */
#define _XOPEN_SOURCE 700
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PAGES 200
#define ROUNDS 3
#define CONCURRENCY 4

static char dir[64], base[64];

static pid_t start_server(void) {
    char port_file[128];
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(127);
        execl("/usr/bin/python3", "python3", SLUICE_SOURCE_DIR "/scripts/demo-serve", "--port", "0",
              "--port-file", port_file, (char *)NULL);
        _exit(127);
    }
    int port = wait_port("bench_crawl", "the demo server", port_file, pid);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    return pid;
}

/* The URL of page i; slow pages go through /slow/0.02/. */
static void url(char *out, size_t size, int i, int slow) {
    snprintf(out, size, "%s%s/generated/%d.html", base, slow ? "/slow/0.02" : "", i);
}

static void write_inputs(int slow) {
    char path[128];
    snprintf(path, sizeof(path), "%s/crawl%d.yaml", dir, slow);
    FILE *y = fopen(path, "w");
    snprintf(path, sizeof(path), "%s/urls%d", dir, slow);
    FILE *u = fopen(path, "w");
    if (!y || !u) {
        perror("bench_crawl");
        exit(1);
    }
    fprintf(y,
            "version: 1\npipeline: bench_crawl\nsteps:\n  crawl:\n    uses: crawl\n"
            "    cache: false\n    with:\n      user_full_name: Bench Mark\n"
            "      concurrency: %d\n      allow_private: true\n      links:\n",
            CONCURRENCY);
    for (int i = 0; i < PAGES; i++) {
        char link[256];
        url(link, sizeof(link), i, slow);
        fprintf(y, "        - %s\n", link);
        fprintf(u, "url = \"%s\"\noutput = \"/dev/null\"\n", link);
    }
    fclose(y);
    fclose(u);
}

int main(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-bench-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    pid_t server = start_server();
    const char *labels[] = {"pages served at once", "pages 20 ms slow each"};
    printf("bench_crawl: %d local pages (scripts/demo-serve), best of %d, whole processes\n", PAGES,
           ROUNDS);
    for (int slow = 0; slow < 2; slow++) {
        write_inputs(slow);
        char seq[512], par[512], crawl[512];
        snprintf(seq, sizeof(seq), "curl -sf --no-progress-meter --config %s/urls%d", dir, slow);
        snprintf(par, sizeof(par),
                 "curl -sf --no-progress-meter --parallel --parallel-max %d --config %s/urls%d",
                 CONCURRENCY, dir, slow);
        double best_seq = 1e9, best_par = 1e9, best_crawl = 1e9;
        for (int r = 0; r < ROUNDS; r++) {
            snprintf(crawl, sizeof(crawl),
                     "rm -rf %s/store && " SLUICE_BIN " --store %s/store run %s/crawl%d.yaml "
                     ">/dev/null 2>%s/crawl.err",
                     dir, dir, dir, slow, dir);
            double t = timed("bench_crawl", "curl", seq);
            best_seq = t < best_seq ? t : best_seq;
            t = timed("bench_crawl", "curl --parallel", par);
            best_par = t < best_par ? t : best_par;
            t = timed("bench_crawl", "sluice crawl", crawl);
            best_crawl = t < best_crawl ? t : best_crawl;
        }
        printf("  %s:\n", labels[slow]);
        printf("    curl, sequential             %8.1f ms  %7.0f pages/s\n", best_seq * 1e3,
               PAGES / best_seq);
        printf("    curl --parallel-max %d        %8.1f ms  %7.0f pages/s\n", CONCURRENCY,
               best_par * 1e3, PAGES / best_par);
        printf(
            "    sluice crawl, %d in flight    %8.1f ms  %7.0f pages/s  = %.2fx sequential curl\n",
            CONCURRENCY, best_crawl * 1e3, PAGES / best_crawl, best_seq / best_crawl);
        if (slow)
            printf("    latency floor (200 x 20 ms / %d) %5.1f ms: sluice at %.0f%% of it\n",
                   CONCURRENCY, PAGES * 20.0 / CONCURRENCY,
                   100 * (PAGES * 0.020 / CONCURRENCY) / best_crawl);
    }
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w %s && rm -rf %s", dir, dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
