/* sgemm_rate.h - the machine's cblas_sgemm rate, the peak the benchmarks of
 * OpenBLAS-based code (bench_embed, bench_train) print their fraction of:
 * 1024 x 1024 x 1024, the best of 5 rounds of 3, as the machine may be
 * shared. */
#ifndef SLUICE_SGEMM_RATE_H
#define SLUICE_SGEMM_RATE_H

#include <cblas.h>
#include <stdlib.h>

#include "bench.h"

static double sgemm_gflops(void) {
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c)
        exit(1);
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    int reps = 3;
    double t = 1e30;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        if (now() - t0 < t)
            t = now() - t0;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n * reps / t / 1e9;
}

#endif
