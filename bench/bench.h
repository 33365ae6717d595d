/* bench.h - what the benchmarks share: a monotonic clock and the wall time
 * of a shell command. A benchmark is a program of its own, so these are
 * static functions of each (the unused ones marked so). */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stdio.h>
#include <stdlib.h>
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

#endif
