/* bench.h - what the benchmarks share: a monotonic clock and the wall time
 * of a shell command. A benchmark is a program of its own, so these are
 * static functions of each (the unused ones marked so). */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

#endif
