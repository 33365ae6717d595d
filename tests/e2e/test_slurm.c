/* test_slurm.c - the Slurm runner on a real one-node cluster, started by
 * scripts/slurm-cluster in a temporary folder: once with accounting
 * (slurmdbd over MariaDB, so sacct is real) and once without (scontrol).
 * Each cluster serves one test that runs several pipelines, as a cluster
 * takes seconds to start. States Slurm cannot produce quickly on one node
 * (TIMEOUT needs a minute, PREEMPTED a preempting partition) and an outage
 * of sacct come from a wrapper sacct ahead in PATH that rewrites the real
 * one's answers or fails. */
#include <signal.h>
#include <sys/stat.h>

#include "require.h"
#include "runner.h"

static char dir[64], conf_env[160], path_env[4200], mode_env[64], store_arg[128];
static char cluster[128];

static int have_slurm(void) {
    return access("/usr/sbin/slurmctld", X_OK) == 0 ||
           system("command -v slurmctld >/dev/null") == 0;
}

/* A wrapper sacct: SLUICE_FAKE_SACCT=timeout turns ended jobs into TIMEOUT;
 * =outage-preempt fails the first three calls (an outage) and then turns
 * the first job that completed into PREEMPTED once. */
static void write_fake_sacct(const char *real) {
    char text[2048];
    snprintf(text, sizeof(text),
             "#!/bin/sh\n"
             "d=%s/fake\n"
             "n=$(cat $d/calls 2>/dev/null || echo 0); n=$((n + 1)); echo $n >$d/calls\n"
             "if [ \"$SLUICE_FAKE_SACCT\" = outage-preempt ] && [ $n -le 3 ]; then\n"
             "  echo 'sacct: error: Problem talking to the database: Connection refused' >&2\n"
             "  exit 1\n"
             "fi\n"
             "out=$(%s \"$@\") || exit $?\n"
             "case \"$SLUICE_FAKE_SACCT\" in\n"
             "timeout) echo \"$out\" | sed 's/|COMPLETED|/|TIMEOUT|/' ;;\n"
             "outage-preempt)\n"
             "  if [ ! -f $d/preempted ] && echo \"$out\" | grep -q '|COMPLETED|'; then\n"
             "    touch $d/preempted; echo \"$out\" | sed 's/|COMPLETED|/|PREEMPTED|/'\n"
             "  else echo \"$out\"; fi ;;\n"
             "*) echo \"$out\" ;;\n"
             "esac\n",
             dir, real);
    char folder[128];
    snprintf(folder, sizeof(folder), "%s/fake", dir);
    cr_assert_eq(mkdir(folder, 0755), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/sacct", folder);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0755), 0);
}

static void cluster_start(const char *flag) {
    if (!have_slurm())
        SKIP_UNLESS_REQUIRED("slurmctld is not installed (Debian's slurm-wlm, munge, slurmdbd, "
                             "mariadb-server: scripts/deps)");
    snprintf(dir, sizeof(dir), "/tmp/sluice-slurm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);
    snprintf(cluster, sizeof(cluster), "%s/cluster", dir);
    char cmd[512];
    /* --owner: the cluster stops itself should this test die first. */
    snprintf(cmd, sizeof(cmd), "%s/scripts/slurm-cluster start %s %s --owner %d >%s/start.log 2>&1",
             SLUICE_SOURCE_DIR, cluster, flag, (int)getpid(), dir);
    if (system(cmd) != 0) {
        char log[128];
        snprintf(log, sizeof(log), "%s/start.log", dir);
        char *text = slurp(log);
        cr_assert_fail("scripts/slurm-cluster did not start:\n%s", text ? text : "");
    }
    snprintf(conf_env, sizeof(conf_env), "SLURM_CONF=%s/slurm.conf", cluster);
    putenv(conf_env); /* for squeue and scancel run from here */
    snprintf(store_arg, sizeof(store_arg), "--store=%s/store", dir);
    char real[512] = "sacct";
    FILE *w = popen("command -v sacct", "r");
    if (w && fgets(real, sizeof(real), w))
        real[strcspn(real, "\n")] = '\0';
    if (w)
        pclose(w);
    write_fake_sacct(real);
    const char *path = getenv("PATH");
    snprintf(path_env, sizeof(path_env), "PATH=%s/fake:%s", dir, path ? path : "/usr/bin:/bin");
    run_env[0] = conf_env;
    run_env[1] = path_env;
    run_env[2] = NULL;
}

static void cluster_stop(void) {
    if (!cluster[0])
        return;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s/scripts/slurm-cluster stop %s; chmod -R u+w %s; rm -rf %s",
             SLUICE_SOURCE_DIR, cluster, dir, dir);
    cr_expect_eq(system(cmd), 0);
    cluster[0] = '\0';
}

static void with_accounting(void) { cluster_start(""); }
static void without_accounting(void) { cluster_start("--no-accounting"); }

/* The fake sacct's mode for the next runs ("" for none). */
static void fake_mode(const char *mode) {
    char calls[128];
    snprintf(calls, sizeof(calls), "%s/fake/calls", dir);
    unlink(calls); /* the outage counts calls from here */
    snprintf(mode_env, sizeof(mode_env), "SLUICE_FAKE_SACCT=%s", mode);
    run_env[2] = mode_env;
    run_env[3] = NULL;
}

static result run_yaml(const char *name, const char *text) {
    char *p = write_test_file(dir, name, text);
    return run_in(NULL, NULL, (char *[]){"sluice", store_arg, "run", p, NULL});
}

/* The run id in a run's output ("... run ID: pipeline ..."). */
static void run_id_of(const char *out, char *id, size_t size) {
    const char *p = strstr(out, " run ");
    cr_assert_not_null(p, "no run id in: %s", out);
    p += 5;
    size_t n = strcspn(p, ":");
    cr_assert_lt(n, size);
    memcpy(id, p, n);
    id[n] = '\0';
}

static char *runs_show(const char *out) {
    char id[64];
    run_id_of(out, id, sizeof(id));
    result r = run_in(NULL, NULL, (char *[]){"sluice", store_arg, "runs", "show", id, NULL});
    cr_assert_eq(r.status, 0, "%s", r.err);
    free(r.err);
    return r.out;
}

static const char parallel_pipeline[] =
    "version: 1\n"
    "pipeline: par\n"
    "settings: {runner: slurm, slurm: {time: 5, cpus_per_task: 1, extra: [--comment=sluice]}}\n"
    "steps:\n"
    "  a: {uses: shell, with: {run: 'echo from-a >$SLUICE_OUTPUT_out', outputs: {out: a.txt}}}\n"
    "  b: {uses: shell, with: {run: 'echo from-b >$SLUICE_OUTPUT_out', outputs: {out: b.txt}}}\n"
    "  bad: {uses: shell, with: {run: 'echo broken >&2; exit 7'}}\n"
    "  join:\n"
    "    uses: shell\n"
    "    runner: local\n"
    "    inputs: {x: a.out, y: b.out}\n"
    "    with: {run: 'cat $SLUICE_INPUT_x $SLUICE_INPUT_y'}\n";

/* Parallel steps, a failing one with its exit code, a local step reading
 * what jobs wrote, and each job's id and node in 'runs show'. */
static void parallel_and_failing(void) {
    result r = run_yaml("par.yaml", parallel_pipeline);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step a done"), "%s", r.out);
    cr_expect(strstr(r.out, "step b done"), "%s", r.out);
    cr_expect(strstr(r.out, "step join done"), "%s", r.out);
    cr_expect(strstr(r.out, "FAILED: exit code 7"), "%s", r.out);
    cr_expect(strstr(r.out, "| broken"), "the job's stderr is in the step's log: %s", r.out);
    char *show = runs_show(r.out);
    cr_expect(strstr(show, "slurm job "), "%s", show);
    cr_expect(strstr(show, " on localhost"), "%s", show);
    free(show);
    result_free(&r);
}

/* Starts 'sluice run p' on the cluster in the background, its output into
 * out_path ("/dev/null": dropped); returns its pid for the test to wait for. */
static pid_t start_run(const char *p, const char *out_path) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        putenv(path_env);
        execl(SLUICE_BIN, "sluice", store_arg, "run", p, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits until squeue lists a running job of step whose id matches the
 * grep pattern ("." any, "_" a task of an array). */
static void wait_running(const char *step, const char *pattern) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "squeue -h -t RUNNING -n sluice-%s -o %%i | grep -q %s", step,
             pattern);
    while (system(cmd) != 0)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
}

/* A job cancelled from outside (scancel) fails its step, and says so. */
static void cancelled_outside(void) {
    char *p = write_test_file(dir, "long.yaml",
                              "version: 1\n"
                              "pipeline: long\n"
                              "settings: {runner: slurm}\n"
                              "steps:\n"
                              "  long: {uses: shell, with: {run: 'sleep 60'}}\n");
    char out_path[128];
    snprintf(out_path, sizeof(out_path), "%s/long.out", dir);
    pid_t pid = start_run(p, out_path);
    /* The job runs: squeue names it; then it is cancelled. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "squeue -h -t RUNNING -n sluice-long -o %%i | grep -q . && "
             "scancel $(squeue -h -n sluice-long -o %%i)");
    while (system(cmd) != 0)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    char *out = slurp(out_path);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "%s", out);
    cr_expect(out && strstr(out, "CANCELLED outside sluice"), "%s", out);
    free(out);
}

/* SIGINT to sluice scancels its job. */
static void interrupted(void) {
    char *p = write_test_file(dir, "int.yaml",
                              "version: 1\n"
                              "pipeline: int\n"
                              "settings: {runner: slurm}\n"
                              "steps:\n"
                              "  sleeper: {uses: shell, with: {run: 'sleep 60'}}\n");
    pid_t pid = start_run(p, "/dev/null");
    wait_running("sleeper", ".");
    kill(pid, SIGINT);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 130);
    /* Its job is gone from the queue: sluice waited for Slurm to end it. */
    cr_expect_neq(system("squeue -h -n sluice-sleeper -t PENDING,RUNNING -o %i | grep -q ."), 0);
}

/* A step past sluice's own timeout is scancelled. */
static void sluice_timeout(void) {
    result r = run_yaml("to.yaml", "version: 1\n"
                                   "pipeline: to\n"
                                   "settings: {runner: slurm}\n"
                                   "steps:\n"
                                   "  slow: {uses: shell, timeout: 1s, with: {run: 'sleep 60'}}\n");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "timed out after 1s"), "%s", r.out);
    cr_expect(strstr(r.out, "scancel by sluice"), "%s", r.out);
    result_free(&r);
}

/* slurmctld restarted while a job runs: the run still finishes right
 * (without accounting the queries fail meanwhile: an outage, waited out). */
static void controller_restarted(void) {
    char *p =
        write_test_file(dir, "restart.yaml",
                        "version: 1\n"
                        "pipeline: restart\n"
                        "settings: {runner: slurm, cache: false}\n"
                        "steps:\n"
                        "  first: {uses: shell, with: {run: 'sleep 3; echo first-done'}}\n"
                        "  second: {uses: shell, after: [first], with: {run: 'echo second'}}\n");
    char out_path[128];
    snprintf(out_path, sizeof(out_path), "%s/restart.out", dir);
    pid_t pid = start_run(p, out_path);
    wait_running("first", ".");
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s/scripts/slurm-cluster restart-slurmctld %s", SLUICE_SOURCE_DIR,
             cluster);
    cr_expect_eq(system(cmd), 0);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    char *out = slurp(out_path);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "%s", out);
    cr_expect(out && strstr(out, "step second done"), "%s", out);
    free(out);
}

static const char quick_pipeline[] =
    "version: 1\n"
    "pipeline: quick\n"
    "settings: {runner: slurm}\n"
    "steps:\n"
    "  quick: {uses: shell, cache: false, with: {run: 'echo ok'}}\n";

/* Slurm's TIMEOUT (a job past its --time) fails the step, named. */
static void slurm_timeout(void) {
    fake_mode("timeout");
    result r = run_yaml("quick.yaml", quick_pipeline);
    fake_mode("");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "reached its time limit (TIMEOUT)"), "%s", r.out);
    result_free(&r);
}

/* sacct failing is waited out; a PREEMPTED job is submitted again. */
static void outage_and_preemption(void) {
    fake_mode("outage-preempt");
    result r = run_yaml("quick.yaml", quick_pipeline);
    fake_mode("");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    char log[160];
    snprintf(log, sizeof(log), "%s/store", dir);
    char id[64];
    run_id_of(r.out, id, sizeof(id));
    char path[256];
    snprintf(path, sizeof(path), "%s/store/runs/%s/steps/quick.log", dir, id);
    char *text = slurp(path);
    cr_expect(text && strstr(text, "waiting for Slurm to answer"), "%s", text);
    cr_expect(text && strstr(text, "PREEMPTED: submitting it again"), "%s", text);
    free(text);
    result_free(&r);
}

/* Each instance each[0..n-1] of run id names its job in its log: task i
 * of one job array, whose id goes to array. */
static void expect_array_tasks(const char *id, int n_tasks, char *array, size_t size) {
    array[0] = '\0';
    for (int i = 0; i < n_tasks; i++) {
        char path[256], want[64];
        snprintf(path, sizeof(path), "%s/store/runs/%s/steps/each[%d].log", dir, id, i);
        char *text = slurp(path);
        const char *p = text ? strstr(text, "of job array ") : NULL;
        cr_assert_not_null(p, "each[%d]: %s", i, text ? text : "no log");
        p += 13;
        size_t n = strcspn(p, " ");
        if (!array[0])
            snprintf(array, size, "%.*s", (int)n, p);
        snprintf(want, sizeof(want), "task %d of job array %s (%s_%d)", i, array, array, i);
        cr_expect(strstr(text, want), "each[%d] is not %s: %s", i, want, text);
        free(text);
    }
}

/* The instances of 'foreach: STEP.OUTPUT', made when STEP has run, go as
 * one job array too. */
static void rows_as_array(void) {
    result r = run_yaml(
        "rows.yaml", "version: 1\n"
                     "pipeline: rowsarr\n"
                     "settings: {runner: slurm, jobs: 4, cache: false}\n"
                     "steps:\n"
                     "  list:\n"
                     "    uses: shell\n"
                     "    runner: local\n"
                     "    with:\n"
                     "      run: 'for i in 0 1 2 3; do echo \"{\\\"i\\\": $i}\"; done "
                     ">$SLUICE_OUTPUT_rows'\n"
                     "      outputs: {rows: r.jsonl}\n"
                     "  each:\n"
                     "    uses: shell\n"
                     "    foreach: list.rows\n"
                     "    with: {run: 'echo v${item.i} >$SLUICE_OUTPUT_o', outputs: {o: o.txt}}\n");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    char id[64], array[32];
    run_id_of(r.out, id, sizeof(id));
    expect_array_tasks(id, 4, array, sizeof(array));
    result_free(&r);
}

/* A foreach of 20 goes as one job array: every instance's recorded job
 * is a task ID_i of the same array ID, each wrote its own output, and the
 * failing one fails alone with its own exit code. */
static void foreach_as_array(void) {
    result r = run_yaml("arr.yaml",
                        "version: 1\n"
                        "pipeline: arr\n"
                        "settings: {runner: slurm, jobs: 20, cache: false}\n"
                        "steps:\n"
                        "  each:\n"
                        "    uses: shell\n"
                        "    foreach: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, "
                        "17, 18, 19]\n"
                        "    with:\n"
                        "      run: 'test ${item} != 13 || exit 9; echo v${item} "
                        ">$SLUICE_OUTPUT_o'\n"
                        "      outputs: {o: o.txt}\n");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "FAILED: exit code 9"), "%s", r.out);
    char id[64], array[32] = "";
    run_id_of(r.out, id, sizeof(id));
    expect_array_tasks(id, 20, array, sizeof(array));
    for (int i = 0; i < 20; i++) {
        char ref[128], want[16];
        snprintf(ref, sizeof(ref), "%s:each[%d].o", id, i);
        result c =
            run_in(NULL, NULL, (char *[]){"sluice", store_arg, "artifacts", "cat", ref, NULL});
        snprintf(want, sizeof(want), "v%d\n", i);
        if (i == 13)
            cr_expect_neq(c.status, 0, "the failed instance has no output: %s", c.out);
        else
            cr_expect(c.status == 0 && strcmp(c.out, want) == 0, "%s: %s%s", ref, c.out, c.err);
        result_free(&c);
    }
    char fail[64];
    snprintf(fail, sizeof(fail), "Slurm job %s_13 FAILED: exit code 9", array);
    cr_expect(strstr(r.out, fail), "%s", r.out);
    result_free(&r);
}

/* SIGINT stops a job array: its pending tasks end too (one line in sacct). */
static void interrupted_array(void) {
    char *p = write_test_file(dir, "intarr.yaml",
                              "version: 1\n"
                              "pipeline: intarr\n"
                              "settings: {runner: slurm, jobs: 6}\n"
                              "steps:\n"
                              "  naps: {uses: shell, foreach: [1, 2, 3, 4, 5, 6], "
                              "with: {run: 'sleep 60'}}\n");
    pid_t pid = start_run(p, "/dev/null");
    wait_running("naps", "_");
    kill(pid, SIGINT);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 130);
    cr_expect_neq(system("squeue -h -n sluice-naps -t PENDING,RUNNING -o %i | grep -q ."), 0);
}

TestSuite(slurm, .timeout = 240);

Test(slurm, a_cluster_with_accounting, .init = with_accounting, .fini = cluster_stop) {
    fake_mode("");
    foreach_as_array();
    rows_as_array();
    interrupted_array();
    parallel_and_failing();
    cancelled_outside();
    interrupted();
    sluice_timeout();
    slurm_timeout();
    outage_and_preemption();
    controller_restarted();
}

Test(slurm, a_cluster_without_accounting_is_watched_through_scontrol, .init = without_accounting,
     .fini = cluster_stop) {
    result r = run_yaml("par.yaml", parallel_pipeline);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step a done"), "%s", r.out);
    cr_expect(strstr(r.out, "step b done"), "%s", r.out);
    cr_expect(strstr(r.out, "FAILED: exit code 7"), "%s", r.out);
    char *show = runs_show(r.out);
    cr_expect(strstr(show, " on localhost"), "%s", show);
    free(show);
    result_free(&r);
    foreach_as_array();
    cancelled_outside();
    controller_restarted();
}

/* No cluster needed: the settings are checked where they are written. */
Test(slurm, its_settings_are_checked_with_their_lines) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-slurm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char *p = write_test_file(
        dir, "bad.yaml",
        "version: 1\n"
        "pipeline: bad\n"
        "settings:\n"
        "  slurm: {partiton: x, cpus_per_task: 0}\n"
        "steps:\n"
        "  a: {uses: shell, runner: cloud, slurm: {time: ''}, with: {run: 'true'}}\n");
    result r = RUN("validate", p);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "bad.yaml:4:11: error: unknown key 'partiton' in 'settings.slurm'"),
              "%s", r.err);
    cr_expect(strstr(r.err, "bad.yaml:4:39: error: 'slurm.cpus_per_task' must be between 1"), "%s",
              r.err);
    cr_expect(strstr(r.err, "bad.yaml:6:28: error: 'runner' must be local or slurm, not 'cloud'"),
              "%s", r.err);
    cr_expect(strstr(r.err, "bad.yaml:6:49: error: 'slurm.time' must be one non-empty line"), "%s",
              r.err);
    result_free(&r);
}
