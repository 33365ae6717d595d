/* bench.h - what the benchmarks share: a monotonic clock and the wall time
 * of a shell command. A benchmark is a program of its own, so these are
 * static functions of each (the unused ones marked so). */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* Seconds on the monotonic clock. */
__attribute__((unused)) static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The wall time of cmd through /bin/sh; a benchmark whose command fails
 * measures nothing, so it stops the program, naming the bench and label. */
__attribute__((unused)) static double timed(const char *bench, const char *label, const char *cmd) {
    double t0 = now();
    int rc = system(cmd);
    double t = now() - t0;
    if (rc != 0) {
        fprintf(stderr, "%s: %s failed (%d): %s\n", bench, label, rc, cmd);
        exit(1);
    }
    return t;
}

/* The port a local server just started as pid writes to port_file (whole: written and renamed);
 * one that does not appear in 10 s stops the program, naming the bench and the server. */
__attribute__((unused)) static int wait_port(const char *bench, const char *server,
                                             const char *port_file, pid_t pid) {
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port)
            return port;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    fprintf(stderr, "%s: %s did not start\n", bench, server);
    kill(pid, SIGTERM);
    exit(1);
}

/* Reads every byte of p[0, n) words with 16-byte vector adds (GCC's vector
 * extension, so -O2 needs no auto-vectoriser), four accumulators deep: 64
 * bytes per iteration, well above what memory delivers, so this measures
 * the memory's read rate rather than the adder's. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

__attribute__((unused)) static uint64_t read_all(const uint64_t *p, size_t n) {
    u64x2 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        u64x2 v0, v1, v2, v3;
        memcpy(&v0, p + i, 16); /* unaligned-safe loads */
        memcpy(&v1, p + i + 2, 16);
        memcpy(&v2, p + i + 4, 16);
        memcpy(&v3, p + i + 6, 16);
        a0 += v0;
        a1 += v1;
        a2 += v2;
        a3 += v3;
    }
    u64x2 a = a0 + a1 + a2 + a3;
    uint64_t sum = a[0] + a[1];
    for (; i < n; i++)
        sum += p[i];
    return sum;
}

#endif
