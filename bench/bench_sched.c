/* bench_sched - what sluice costs per step, against make and ninja.
 *
 * In one run, on the same 1,000-step DAG (a lattice 10 wide and 100 deep,
 * each step after two steps of the row above):
 *   - sluice, steps in-process (the no-op step of the test plugin);
 *   - sluice, the same steps as shell steps running `true`;
 *   - GNU make -j2 and ninja -j2 running `true` for each target.
 * Then the published 40-task test: 40 sequential tasks of 10 ms of work
 * (published: Airflow 2.7 116 s, Prefect 2.14 4.9 s, Windmill 2.1 s), run
 * with sluice's in-process sleep step, beside the 0.4 s of work it holds.
 * Every sluice step runs (--no-cache) and writes its metadata records; one
 * more line times the lattice answered wholly from the cache. Wall times are
 * the best of a few rounds, whole processes included. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define WIDTH 10
#define DEPTH 100
#define STEPS (WIDTH * DEPTH)
#define ROUNDS 5

static char dir[64];

static FILE *create(const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    return f;
}

static void write_pipeline(const char *name, const char *uses) {
    FILE *f = create(name);
    fprintf(f, "pipeline: lattice\nsettings: {jobs: 2}\nsteps:\n");
    for (int d = 0; d < DEPTH; d++)
        for (int w = 0; w < WIDTH; w++) {
            fprintf(f, "  s%d_%d: {uses: %s", d, w, uses);
            if (d > 0)
                fprintf(f, ", after: [s%d_%d, s%d_%d]", d - 1, w, d - 1, (w + 1) % WIDTH);
            fprintf(f, "}\n");
        }
    fclose(f);
}

static void write_make_and_ninja(void) {
    FILE *m = create("lattice.mk"), *n = create("build.ninja");
    fprintf(m, ".PHONY: all");
    for (int i = 0; i < STEPS; i++)
        fprintf(m, " s%d_%d", i / WIDTH, i % WIDTH);
    fprintf(m, "\nall:");
    for (int w = 0; w < WIDTH; w++)
        fprintf(m, " s%d_%d", DEPTH - 1, w);
    fprintf(m, "\n");
    fprintf(n, "rule noop\n  command = true\n");
    for (int d = 0; d < DEPTH; d++)
        for (int w = 0; w < WIDTH; w++) {
            fprintf(m, "s%d_%d:", d, w);
            fprintf(n, "build s%d_%d: noop", d, w);
            if (d > 0) {
                fprintf(m, " s%d_%d s%d_%d", d - 1, w, d - 1, (w + 1) % WIDTH);
                fprintf(n, " | s%d_%d s%d_%d", d - 1, w, d - 1, (w + 1) % WIDTH);
            }
            fprintf(m, "\n\t@true\n");
            fprintf(n, "\n");
        }
    fclose(m);
    fclose(n);
}

static void write_forty(void) {
    FILE *f = create("forty.yaml");
    fprintf(f, "pipeline: forty\nsteps:\n");
    for (int i = 0; i < 40; i++) {
        fprintf(f, "  t%d: {uses: sleep, with: {ms: 10}", i);
        if (i)
            fprintf(f, ", after: [t%d]", i - 1);
        fprintf(f, "}\n");
    }
    fclose(f);
}

static int have(const char *tool) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

int main(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-bench-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    write_pipeline("inproc.yaml", "noop");
    write_pipeline("shell.yaml", "shell, with: {run: 'true'}");
    write_make_and_ninja();
    write_forty();
    FILE *one = create("one.yaml");
    fprintf(one, "pipeline: one\nsteps: {a: {uses: noop}}\n");
    fclose(one);

    /* Every command once per round, rounds interleaved, best of each: a
     * noisy machine then hurts all of them alike. */
    enum { START, INPROC, SHELL, FORTY, CACHED, MAKE, NINJA, N_CMDS };
    static const char *const labels[] = {"sluice 1 step", "sluice in-process",
                                         "sluice shell",  "sluice 40 tasks",
                                         "sluice cached", "make",
                                         "ninja"};
    static const char *const files[] = {"one.yaml", "inproc.yaml", "shell.yaml", "forty.yaml",
                                        "inproc.yaml"};
    char cmds[N_CMDS][1024];
    double t[N_CMDS];
    /* Every step really runs (--no-cache), its records written all the same;
     * CACHED then times the same lattice answered from the cache. */
    for (int i = START; i <= CACHED; i++)
        snprintf(cmds[i], sizeof(cmds[i]),
                 "SLUICE_PLUGIN_PATH=%s/good %s --store %s/store run %s/%s -j 2 %s>/dev/null",
                 SLUICE_TEST_PLUGINS, SLUICE_BIN, dir, dir, files[i],
                 i == CACHED ? "" : "--no-cache ");
    snprintf(cmds[MAKE], sizeof(cmds[MAKE]), "make -s -j2 -f %s/lattice.mk -C %s all >/dev/null",
             dir, dir);
    snprintf(cmds[NINJA], sizeof(cmds[NINJA]), "ninja -C %s -j2 >/dev/null", dir);
    int present[N_CMDS] = {1, 1, 1, 1, 1, have("make"), have("ninja")};
    for (int i = 0; i < N_CMDS; i++)
        t[i] = 1e9;
    for (int round = 0; round < ROUNDS; round++)
        for (int i = 0; i < N_CMDS; i++)
            if (present[i]) {
                double took = timed("bench_sched", labels[i], cmds[i]);
                if (took < t[i])
                    t[i] = took;
            }
    double start = t[START], inproc = t[INPROC], shell = t[SHELL], forty = t[FORTY];
    double cached = t[CACHED];
    double make = present[MAKE] ? t[MAKE] : -1, ninja = present[NINJA] ? t[NINJA] : -1;

    double per_in = (inproc - start) / (STEPS - 1) * 1e6,
           per_sh = (shell - start) / (STEPS - 1) * 1e6;
    printf("bench_sched: %d-step lattice (%dx%d), 2 jobs, best of %d, whole processes\n", STEPS,
           WIDTH, DEPTH, ROUNDS);
    printf("  sluice start-up (1-step run)   %8.1f ms\n", start * 1e3);
    printf("  sluice in-process no-ops       %8.1f ms  %7.1f us/step (goal < 100)\n", inproc * 1e3,
           per_in);
    printf("  sluice shell 'true' steps      %8.1f ms  %7.1f us/step\n", shell * 1e3, per_sh);
    printf("  sluice in-process, all cached  %8.1f ms  %7.1f us/step (cache look-up, records)\n",
           cached * 1e3, (cached - start) / (STEPS - 1) * 1e6);
    if (make > 0)
        printf("  GNU make -j2 'true' targets    %8.1f ms  %7.1f us/step  shell/make %.2f, "
               "in-process/make %.3f\n",
               make * 1e3, make / STEPS * 1e6, per_sh / (make / STEPS * 1e6),
               per_in / (make / STEPS * 1e6));
    if (ninja > 0)
        printf("  ninja -j2 'true' edges         %8.1f ms  %7.1f us/step  shell/ninja %.2f, "
               "in-process/ninja %.3f\n",
               ninja * 1e3, ninja / STEPS * 1e6, per_sh / (ninja / STEPS * 1e6),
               per_in / (ninja / STEPS * 1e6));
    printf("  40 sequential 10 ms tasks      %8.1f ms  for 400 ms of work: %.1f ms overhead "
           "(%.2f ms/task); published: Airflow 2.7 116 s, Prefect 2.14 4.9 s, Windmill 2.1 s\n",
           forty * 1e3, (forty - 0.4) * 1e3, (forty - 0.4) / 40 * 1e3);
    snprintf(cmds[0], sizeof(cmds[0]), "rm -rf %s", dir);
    return system(cmds[0]) == 0 ? 0 : 1;
}
