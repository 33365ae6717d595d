/* bench_slurm - the Slurm runner's cost per step against sbatch by hand.
 *
 * Starts a one-node cluster (scripts/slurm-cluster, without accounting
 * unless --accounting) in a temporary folder, then in the same run:
 *   peer:   N 'sbatch --wrap true' submitted by hand, then 'squeue' every
 *           100 ms until none of them is left;
 *   sluice: a pipeline of N independent shell steps 'true' with
 *           settings.runner slurm and -j N.
 * Prints each wall time, the time per step and sluice's ratio to the peer.
 *
 *   bench_slurm [--steps N] [--accounting] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char dir[64];

static void stop_cluster(void) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s/scripts/slurm-cluster stop %s/cluster; chmod -R u+w %s; rm -rf %s",
             SLUICE_SOURCE_DIR, dir, dir, dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_slurm: could not stop the cluster in %s\n", dir);
}

int main(int argc, char **argv) {
    int n = 20, accounting = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--accounting") == 0)
            accounting = 1;
        else {
            fprintf(stderr, "usage: bench_slurm [--steps N] [--accounting]\n");
            return 2;
        }
    }
    if (n < 1 || n > 1000) {
        fprintf(stderr, "bench_slurm: --steps is 1 to 1000\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "/tmp/bench-slurm-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("bench_slurm: mkdtemp");
        return 1;
    }
    char cluster[128], cmd[1024];
    snprintf(cluster, sizeof(cluster), "%s/cluster", dir);
    snprintf(cmd, sizeof(cmd), "%s/scripts/slurm-cluster start %s %s --owner %d >%s/start.log 2>&1",
             SLUICE_SOURCE_DIR, cluster, accounting ? "" : "--no-accounting", (int)getpid(), dir);
    double t0 = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_slurm: the cluster did not start (see %s/start.log)\n", dir);
        return 1;
    }
    printf("cluster (%s accounting) up in %.1f s\n", accounting ? "with" : "without", now() - t0);
    char conf[160];
    snprintf(conf, sizeof(conf), "%s/slurm.conf", cluster);
    setenv("SLURM_CONF", conf, 1);

    /* The peer: sbatch by hand, then wait until the queue has none of them. */
    double p0 = now();
    for (int i = 0; i < n; i++)
        if (system("sbatch --quiet --job-name=bench-peer --output=/dev/null --wrap true") != 0) {
            fprintf(stderr, "bench_slurm: sbatch failed\n");
            stop_cluster();
            return 1;
        }
    while (system("squeue -h -n bench-peer -o %i | grep -q .") == 0) {
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
    double peer = now() - p0;

    /* sluice: the same steps as a pipeline. */
    char yaml[160];
    snprintf(yaml, sizeof(yaml), "%s/bench.yaml", dir);
    FILE *f = fopen(yaml, "w");
    if (!f) {
        perror("bench_slurm: pipeline");
        stop_cluster();
        return 1;
    }
    fprintf(f,
            "version: 1\npipeline: bench_slurm\nsettings: {runner: slurm, cache: false}\nsteps:\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "  s%d: {uses: shell, with: {run: 'true'}}\n", i);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s --store=%s/store run -j %d %s >%s/run.log 2>&1", SLUICE_BIN, dir,
             n, yaml, dir);
    double s0 = now();
    int rc = system(cmd);
    double ours = now() - s0;
    if (rc != 0) {
        fprintf(stderr, "bench_slurm: sluice run failed (see %s/run.log)\n", dir);
        return 1;
    }
    printf("%d steps 'true' on a one-node cluster (%ld CPUs)\n", n, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  sbatch --wrap by hand + squeue: %7.2f s  (%6.1f ms per step)\n", peer,
           peer * 1000 / n);
    printf("  sluice run --runner slurm:      %7.2f s  (%6.1f ms per step)\n", ours,
           ours * 1000 / n);
    printf("  ratio sluice / by hand: %.2f\n", ours / peer);
    stop_cluster();
    return 0;
}
