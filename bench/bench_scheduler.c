/* bench_scheduler - what 'sluice scheduler' costs while it waits, and how
 * soon a commit starts a run.
 *
 *   - idle CPU: a scheduler with one cron schedule waiting (next fire hours
 *     away), its CPU time over N seconds (the kernel's per-thread run time,
 *     /proc/PID/task/T/schedstat, summed: libuv's pool threads included) as a
 *     share of one core; goal under 0.1%;
 *   - trigger latency: a git trigger polled every P seconds; a commit made
 *     with git, then the time until the scheduler says it started the run,
 *     over a few commits, against the goal of P seconds + 100 ms.
 *
 * usage: bench_scheduler [IDLE_SECONDS [POLL_SECONDS [COMMITS]]]
 * (default 65, 1, 5: the idle time spans two of the idle scheduler's
 * 30 s wake-ups, when it reads the records again). */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static char dir[64], store[128];

static void sh(const char *cmd) {
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_scheduler: failed: %s\n", cmd);
        exit(1);
    }
}

/* CPU seconds of every thread of pid so far. */
static double cpu_of(pid_t pid) {
    char path[128];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    double total = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char p[300];
        snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        unsigned long long ns = 0;
        if (f) {
            if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        total += (double)ns / 1e9;
    }
    if (d)
        closedir(d);
    return total;
}

static pid_t start_scheduler(const char *poll, const char *out) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(SLUICE_BIN, "sluice", "--store", store, "scheduler", "--poll", poll, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits until out holds needle n times; returns the monotonic time seen. */
static double wait_count(const char *out, const char *needle, int n) {
    for (;;) {
        FILE *f = fopen(out, "r");
        char line[1024];
        int seen = 0;
        while (f && fgets(line, sizeof(line), f))
            seen += strstr(line, needle) != NULL;
        if (f)
            fclose(f);
        if (seen >= n)
            return now();
        nanosleep(&(struct timespec){0, 1000000L}, NULL);
    }
}

static void stop(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
    int idle_s = argc > 1 ? atoi(argv[1]) : 65, poll_s = argc > 2 ? atoi(argv[2]) : 1,
        commits = argc > 3 ? atoi(argv[3]) : 5;
    snprintf(dir, sizeof(dir), "/tmp/bench-scheduler-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(store, sizeof(store), "%s/store", dir);
    char cmd[2048], out[200], poll[16];
    snprintf(cmd, sizeof(cmd),
             "printf 'pipeline: b\\nsteps:\\n  a: {uses: shell, with: {run: \"true\"}, cache: "
             "false}\\n' > %s/p.yaml",
             dir);
    sh(cmd);

    /* Idle: one cron schedule, next fire far away (the day before now). */
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    snprintf(cmd, sizeof(cmd),
             "%s --store %s schedule add idle %s/p.yaml --cron '%d %d * * *' >/dev/null",
             SLUICE_BIN, store, dir, tm.tm_min, (tm.tm_hour + 23) % 24);
    sh(cmd);
    snprintf(out, sizeof(out), "%s/idle.out", dir);
    pid_t pid = start_scheduler("30", out);
    wait_count(out, "scheduler: running", 1);
    double c0 = cpu_of(pid), w0 = now();
    sleep((unsigned)idle_s);
    double cpu = cpu_of(pid) - c0, wall = now() - w0;
    stop(pid);
    /* The start-up's CPU, as a check that the counters count. */
    printf("idle CPU, one cron schedule waiting, %d s: %.4f%% of a core (%.2f ms CPU, after "
           "%.1f ms to start; goal < 0.1%%)\n",
           idle_s, 100.0 * cpu / wall, cpu * 1e3, c0 * 1e3);
    snprintf(cmd, sizeof(cmd), "%s --store %s schedule remove idle >/dev/null", SLUICE_BIN, store);
    sh(cmd);

    /* Latency: a git trigger polled every poll_s. */
    snprintf(cmd, sizeof(cmd),
             "cd %s && git init -q -b main repo && cd repo && git -c user.name=b -c "
             "user.email=b@b commit -q --allow-empty -m 0 && %s --store %s schedule add "
             "commit %s/p.yaml --on git:%s/repo@main >/dev/null",
             dir, SLUICE_BIN, store, dir, dir);
    sh(cmd);
    snprintf(out, sizeof(out), "%s/latency.out", dir);
    snprintf(poll, sizeof(poll), "%d", poll_s);
    pid = start_scheduler(poll, out);
    wait_count(out, "scheduler: running", 1);
    double worst = 0, sum = 0;
    for (int i = 1; i <= commits; i++) {
        /* Off the poll's phase, so that the commits land anywhere in it. */
        nanosleep(&(struct timespec){0, (long)(137000000L * i % 1000000000L)}, NULL);
        snprintf(cmd, sizeof(cmd),
                 "git -C %s/repo -c user.name=b -c user.email=b@b commit -q --allow-empty -m %d",
                 dir, i);
        sh(cmd);
        double t0 = now(), t1 = wait_count(out, "schedule commit: started run", i);
        wait_count(out, "schedule commit: run exited", i);
        double lat = t1 - t0;
        sum += lat;
        if (lat > worst)
            worst = lat;
    }
    stop(pid);
    printf("trigger latency, git commit to run start, poll %d s, %d commits: mean %.0f ms, worst "
           "%.0f ms (goal <= %d ms)\n",
           poll_s, commits, 1e3 * sum / commits, 1e3 * worst, poll_s * 1000 + 100);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    sh(cmd);
    return 0;
}
