/* End-to-end tests of how a run ends: every way out (a step past its
 * timeout, signals, kill -9 of sluice, a crash inside an in-process step)
 * must end the process with its status, leave no process of the run behind,
 * and leave a record that says how the run ended and can be resumed.
 *
 * "No process left" is checked exactly: the test process makes itself a
 * child subreaper, so every process sluice started that outlives its parent
 * becomes the test's child; once sluice is gone, the test must be left with
 * no child at all. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

static void setup(void) {
    test_dir_setup();
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

TestSuite(lifecycle, .init = setup, .fini = test_dir_teardown, .timeout = 120);

/* Our children (the test is their subreaper), alive (0) or ended and not
 * reaped (state Z, 1), and their names, into pids/zombie/names; returns
 * how many (at most max). */
static size_t children(pid_t *pids, int *zombie, char (*names)[32], size_t max) {
    size_t n = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && n < max && (e = readdir(d));) {
        char path[300], text[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[len] = '\0';
        char *open = strchr(text, '('), *close = strrchr(text, ')'), state;
        int ppid;
        if (!open || !close || sscanf(close + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
            continue;
        pids[n] = (pid_t)atoi(text);
        zombie[n] = state == 'Z';
        snprintf(names[n], sizeof(names[n]), "%.*s", (int)(close - open - 1), open + 1);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* How many processes outlived the run that just ended, judged by events,
 * not by a deadline: when sluice ends, its fork server (sluice-supervise)
 * kills every process left and exits; until then it adopts the orphans,
 * after that they come to the test. So once the server has exited, a
 * process of ours still alive was either killed and dies of its signal,
 * or was missed and ends by itself: that one outlived the run. Waits for
 * each to end (a leaked 'sleep 30' is found when it ends); one that had
 * ended already (a zombie when looked at) is not judged. */
static int processes_left(void) {
    pid_t pids[256];
    int zombie[256];
    char names[256][32];
    int left = 0;
    for (size_t n; (n = children(pids, zombie, names, 256)) > 0;) {
        /* A server first: once it is gone, what it adopted is ours. A
         * child of sluice that was about to become one (killed between
         * fork and exec) shows its name only once it has exec'd. */
        size_t i = 0;
        while (i < n && strcmp(names[i], "sluice-supervis") != 0)
            i++;
        if (i == n)
            i = 0;
        siginfo_t info = {0};
        while (waitid(P_PID, (id_t)pids[i], &info, WEXITED | WNOWAIT) != 0 && errno == EINTR)
            ;
        char path[64], name[32] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(name, sizeof(name), f))
                name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        waitpid(pids[i], NULL, 0);
        if (!zombie[i] && info.si_code == CLD_EXITED && strcmp(name, "sluice-supervis") != 0) {
            fprintf(stderr, "outlived its run and ended by itself: %d (%s)\n", (int)pids[i], name);
            left++;
        }
    }
    return left;
}

/* Starts sluice with argv (after the binary and the store) in the
 * background, its output in test_dir/out and test_dir/err. */
static pid_t start_bg(char *const args[]) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char out[128], err[128];
        snprintf(out, sizeof(out), "%s/out", test_dir);
        snprintf(err, sizeof(err), "%s/err", test_dir);
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        putenv(test_plugin_path);
        setenv("MONGOC_DISABLE_SHM", "1", 1);
        char *argv[16] = {"sluice", test_store_arg};
        for (int i = 0; args[i] && i < 13; i++)
            argv[i + 2] = args[i];
        execv(SLUICE_BIN, argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid) {
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void wait_for_file(const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", test_dir, name);
    wait_for_text(path, NULL);
}

static void touch(const char *name) { write_test_file(test_dir, name, ""); }

/* The newest run's id: run ids sort by their start. */
static char *newest_run(void) {
    static char id[64];
    char path[256];
    snprintf(path, sizeof(path), "%s/store/runs", test_dir);
    id[0] = '\0';
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, id) > 0)
            snprintf(id, sizeof(id), "%s", e->d_name);
    if (d)
        closedir(d);
    return id;
}

/* The run's status, as `runs show` reports it. */
static char *run_status(char *id) {
    static char status[32];
    result r = RUN(test_store_arg, "runs", "show", id, "--json");
    if (!*id || r.status != 0) { /* killed before it recorded the run */
        result_free(&r);
        return "(none)";
    }
    const char *s = strstr(r.out, "\"status\" : \"");
    cr_assert_not_null(s, "%s", r.out);
    snprintf(status, sizeof(status), "%.*s", (int)strcspn(s + 12, "\""), s + 12);
    result_free(&r);
    return status;
}

/* ---- in-process steps that do not stop ---------------------------------- */

Test(lifecycle, an_in_process_step_that_overruns_its_timeout_ends_the_process_with_status_1) {
    char *p = write_test_file(test_dir, "over.yaml",
                              "pipeline: over\n"
                              "steps:\n"
                              "  nap: {uses: sleep, with: {ms: 600000, ignore_cancel: true}, "
                              "timeout: 100ms}\n");
    /* Before, the run was reported failed and the process never ended: the
     * suite's timeout would fail this test. */
    result r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect(strstr(r.out, "its thread was left running"), "%s", r.out);
    cr_expect_str_eq(run_status(newest_run()), "failed");
    result_free(&r);
}

/* A shell step marks that the run is under way; the in-process step beside
 * it ignores sl_cancelled(). */
static const char *stubborn =
    "pipeline: stubborn\n"
    "settings: {jobs: 2}\n"
    "steps:\n"
    "  mark: {uses: shell, with: {run: 'touch @/started; exec sleep 600'}}\n"
    "  nap: {uses: sleep, with: {ms: 600000, ignore_cancel: true}}\n";

static void interrupt_stubborn(int first, int second, int expected) {
    char *p = write_test_file(test_dir, "stubborn.yaml", stubborn);
    pid_t pid = start_bg((char *[]){"run", p, NULL});
    wait_for_file("started");
    kill(pid, first);
    if (second) {
        /* Once the first is taken: signals sent together may be handled in
         * either order. */
        char err[256];
        snprintf(err, sizeof(err), "%s/err", test_dir);
        wait_for_text(err, "stopping");
        kill(pid, second);
    }
    cr_expect_eq(wait_status(pid), expected);
    char *id = newest_run();
    cr_expect_str_eq(run_status(id), "interrupted");
    char log[256];
    snprintf(log, sizeof(log), "%s/store/runs/%s/steps/nap.log", test_dir, id);
    char *text = slurp(log);
    cr_expect(text && strstr(text, "its thread was left running"), "%s: %s", log, text);
    free(text);
    cr_expect_eq(processes_left(), 0);
}

Test(lifecycle, sigint_ends_a_run_whose_in_process_step_ignores_it) {
    interrupt_stubborn(SIGINT, 0, 130);
}

Test(lifecycle, a_second_sigint_ends_it_at_once) { interrupt_stubborn(SIGINT, SIGINT, 130); }

Test(lifecycle, sigterm_after_sigint_ends_it_at_once) { interrupt_stubborn(SIGINT, SIGTERM, 130); }

/* ---- signals -------------------------------------------------------------- */

/* A run of two steps under way, one waiting for test_dir/go, the other
 * after it. */
static pid_t start_waiting_run(void) {
    char *p = write_test_file(test_dir, "wait.yaml",
                              "pipeline: wait\n"
                              "steps:\n"
                              "  first: {uses: shell, with: {run: 'touch @/started; "
                              "while [ ! -e @/go ]; do sleep 0.02; done'}}\n"
                              "  then: {uses: shell, after: [first], with: {run: 'true'}}\n");
    pid_t pid = start_bg((char *[]){"run", p, NULL});
    wait_for_file("started");
    return pid;
}

static void stops_the_run(int sig, int expected) {
    pid_t pid = start_waiting_run();
    kill(pid, sig);
    cr_expect_eq(wait_status(pid), expected);
    cr_expect_str_eq(run_status(newest_run()), "interrupted");
    cr_expect_eq(processes_left(), 0);
}

Test(lifecycle, sigterm_stops_the_run_with_143) { stops_the_run(SIGTERM, 143); }
Test(lifecycle, sighup_stops_the_run_with_129) { stops_the_run(SIGHUP, 129); }
Test(lifecycle, sigint_stops_the_run_with_130) { stops_the_run(SIGINT, 130); }

static void is_ignored(int sig) {
    pid_t pid = start_waiting_run();
    kill(pid, sig);
    touch("go");
    cr_expect_eq(wait_status(pid), 0);
    cr_expect_str_eq(run_status(newest_run()), "done");
    cr_expect_eq(processes_left(), 0);
}

Test(lifecycle, sigquit_is_ignored) { is_ignored(SIGQUIT); }
Test(lifecycle, sigusr1_is_ignored) { is_ignored(SIGUSR1); }
Test(lifecycle, sigusr2_is_ignored) { is_ignored(SIGUSR2); }
Test(lifecycle, sigalrm_is_ignored) { is_ignored(SIGALRM); }

/* ---- processes that try to outlive their step -------------------------- */

/* The pipeline (text) succeeds and leaves no process behind. */
static void succeeds_and_leaves_nothing(const char *text) {
    char *p = write_test_file(test_dir, "daemon.yaml", text);
    result r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    cr_expect_eq(processes_left(), 0);
}

Test(lifecycle, daemons_a_step_starts_are_stopped_with_it) {
    /* setsid leaves the process group, the subshell's & is a double fork;
     * both hold the step's output pipes. */
    succeeds_and_leaves_nothing("pipeline: daemon\n"
                                "steps:\n"
                                "  spawn: {uses: shell, with: {run: 'setsid -f sleep 600; "
                                "(sleep 601 &); echo started'}}\n");
}

Test(lifecycle, a_timeout_stops_a_step_whose_daemon_left_the_group) {
    char *p = write_test_file(test_dir, "escape.yaml",
                              "pipeline: escape\n"
                              "steps:\n"
                              "  spawn: {uses: shell, timeout: 200ms, with: {run: 'setsid -f "
                              "sleep 600; exec setsid sleep 601'}}\n");
    result r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "timed out after 200ms"), "%s", r.out);
    cr_expect_eq(processes_left(), 0);
    result_free(&r);
}

/* ---- kill -9 --------------------------------------------------------------- */

Test(lifecycle, kill_9_at_each_step_then_resume_and_rerun, .timeout = 300) {
    /* Six steps in a chain and a branch, each a little work and an output. */
    char *p = write_test_file(
        test_dir, "chain.yaml",
        "pipeline: chain\n"
        "params: {seed: 0}\n"
        "steps:\n"
        "  a: {uses: shell, with: {run: 'sleep 0.01; echo a${params.seed} > o', outputs: {o: o}}}\n"
        "  b: {uses: shell, inputs: {i: a.o}, with: {run: 'sleep 0.01; cat $SLUICE_INPUT_i > o; "
        "echo b >> o', outputs: {o: o}}}\n"
        "  c: {uses: shell, inputs: {i: b.o}, with: {run: '(sleep 30 &); sleep 0.01; cat "
        "$SLUICE_INPUT_i > o', outputs: {o: o}}}\n"
        "  d: {uses: shell, inputs: {i: a.o}, with: {run: 'setsid -f sleep 30; cat "
        "$SLUICE_INPUT_i > o', outputs: {o: o}}}\n"
        "  e: {uses: echo, inputs: {in: c.o}}\n"
        "  f: {uses: shell, inputs: {i: e.out, j: d.o}, with: {run: 'cat $SLUICE_INPUT_i "
        "$SLUICE_INPUT_j > o', outputs: {o: o}}}\n");
    /* Killed at points the run's own events mark (each step's start and
     * end), not at moments of a clock: every round kills inside a run. */
    static const char *const points[][2] = {
        {"step_started", "a"},  {"step_finished", "a"}, {"step_started", "b"},
        {"step_finished", "b"}, {"step_started", "c"},  {"step_finished", "c"},
        {"step_started", "d"},  {"step_finished", "d"}, {"step_started", "e"},
        {"step_finished", "e"}, {"step_started", "f"},  {"step_finished", "f"}};
    char out[256];
    snprintf(out, sizeof(out), "%s/out", test_dir);
    char crashed[64] = "", param[32] = "", crashed_param[32] = "", before[64] = "";
    for (int round = 0; round < (int)(sizeof(points) / sizeof(points[0])); round++) {
        const char *event = points[round][0], *step = points[round][1];
        /* a seed of its own: no step of the round comes from the cache */
        snprintf(param, sizeof(param), "seed=%d", round);
        unlink(out); /* the last round's events are not this one's */
        pid_t pid = start_bg((char *[]){"run", "--json", p, "-p", param, NULL});
        wait_for_event(out, event, step);
        kill(pid, SIGKILL);
        wait_status(pid);
        cr_assert_eq(processes_left(), 0, "round %d: killed at %s of %s", round, event, step);
        char *id = newest_run();
        cr_assert_str_neq(id, before, "round %d: the run was recorded", round);
        snprintf(before, sizeof(before), "%s", id);
        const char *status = run_status(id);
        cr_assert(strcmp(status, "crashed") == 0 || strcmp(status, "done") == 0,
                  "round %d (%s of %s): run %s is %s", round, event, step, id, status);
        if (strcmp(status, "crashed") == 0) {
            snprintf(crashed, sizeof(crashed), "%s", id);
            snprintf(crashed_param, sizeof(crashed_param), "%s", param);
        }
    }
    cr_assert_neq(crashed[0], '\0', "no kill came during a run");
    /* The last crashed run, resumed, completes; run again, all is cached. */
    result r = RUN(test_store_arg, "resume", "--json", crashed);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result again = RUN(test_store_arg, "run", "--json", p, "-p", crashed_param);
    cr_expect_eq(again.status, 0, "%s", again.err);
    cr_expect_eq(count(again.out, "\"status\" : \"cached\""), 6, "%s\nafter the resume:\n%s%s",
                 again.out, r.out, r.err);
    result_free(&r);
    result_free(&again);
    /* Every record's object is there and verifies against its hash. */
    result doctor = RUN(test_store_arg, "doctor");
    cr_expect_eq(doctor.status, 0, "%s%s", doctor.out, doctor.err);
    result_free(&doctor);
    cr_expect_eq(processes_left(), 0);
}

/* ---- crashes inside sluice ----------------------------------------------- */

/* signal: whether the process is killed by a signal, or only ends. */
static void crash_then_resume(const char *how, int signal) {
    char text[1024];
    snprintf(text, sizeof(text),
             "pipeline: boom\n"
             "steps:\n"
             "  first: {uses: emit, with: {text: hello}}\n"
             "  boom: {uses: die, inputs: {in: first.out}, with: {how: %s, unless: @/fixed}}\n"
             "  last: {uses: echo, inputs: {in: first.out}, after: [boom]}\n",
             how);
    char *p = write_test_file(test_dir, "boom.yaml", text);
    result r = RUN(test_store_arg, "run", p, "--tag", "who=test");
    /* Killed by a signal (a sanitizer may make a segfault an abort); exit()
     * from a worker thread ends it however libc's exit handlers do. */
    if (signal)
        cr_expect_gt(r.status, 128, "%s", r.err);
    else
        cr_expect_neq(r.status, 0, "%s", r.err);
    result_free(&r);
    char crashed[64];
    snprintf(crashed, sizeof(crashed), "%s", newest_run());
    cr_expect_str_eq(run_status(crashed), "crashed");
    result show = RUN(test_store_arg, "runs", "show", crashed);
    cr_expect(strstr(show.out, "crashed"), "%s", show.out);
    const char *boom = strstr(show.out, "  boom ");
    size_t line = boom ? strcspn(boom, "\n") : 0;
    const char *running = boom ? strstr(boom, " running ") : NULL;
    cr_expect(running && running < boom + line, "the step that was running: %s", show.out);
    result_free(&show);
    result list = RUN(test_store_arg, "runs", "list", "--json");
    cr_expect(strstr(list.out, "\"crashed\""), "%s", list.out);
    cr_expect_null(strstr(list.out, "\"running\""), "%s", list.out);
    result_free(&list);

    /* Fixed, resumed from another folder: the pipeline is found by its
     * recorded path, the finished step reused, the tags kept. */
    touch("fixed");
    result res =
        run_in("/", NULL, (char *[]){"sluice", test_store_arg, "resume", crashed, "--json", NULL});
    cr_expect_eq(res.status, 0, "%s%s", res.out, res.err);
    cr_expect_eq(count(res.out, "\"status\" : \"cached\""), 1, "first is reused: %s", res.out);
    result_free(&res);
    char resumed[64];
    snprintf(resumed, sizeof(resumed), "%s", newest_run());
    cr_expect_str_eq(run_status(resumed), "done");
    result shown = RUN(test_store_arg, "runs", "show", resumed, "--json");
    cr_expect(strstr(shown.out, "\"who\" : \"test\""), "%s", shown.out);
    cr_expect(strstr(shown.out, crashed), "resumes %s: %s", crashed, shown.out);
    result_free(&shown);
    result twice = RUN(test_store_arg, "resume", crashed);
    cr_expect_eq(twice.status, 0, "%s", twice.err);
    cr_expect(strstr(twice.out, "already resumed by run"), "%s", twice.out);
    cr_expect(strstr(twice.out, resumed), "%s", twice.out);
    result_free(&twice);
}

Test(lifecycle, a_segfault_in_an_in_process_step_leaves_a_crashed_run_that_resumes) {
    crash_then_resume("segv", 1);
}

Test(lifecycle, an_abort_in_an_in_process_step_leaves_a_crashed_run_that_resumes) {
    crash_then_resume("abort", 1);
}

Test(lifecycle, an_exit_in_an_in_process_step_leaves_a_crashed_run_that_resumes) {
    crash_then_resume("exit", 0);
}

Test(lifecycle, a_live_run_is_not_resumed) {
    pid_t pid = start_waiting_run();
    char *id = newest_run();
    cr_expect_str_eq(run_status(id), "running");
    result r = RUN(test_store_arg, "resume", id);
    expect_refused(r, 2, "still running");
    touch("go");
    cr_expect_eq(wait_status(pid), 0);
    cr_expect_eq(processes_left(), 0);
}

/* ---- logs ------------------------------------------------------------------ */

Test(lifecycle, a_step_log_is_capped_keeping_its_head_and_tail) {
    run_env[1] = "SLUICE_LOG_LIMIT=64k";
    run_env[2] = NULL;
    char *p = write_test_file(test_dir, "loud.yaml",
                              "pipeline: loud\n"
                              "steps:\n"
                              "  loud: {uses: shell, with: {run: 'seq 1 40000'}}\n");
    result r = RUN(test_store_arg, "run", "--json", p);
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char path[256];
    snprintf(path, sizeof(path), "%s/store/runs/%s/steps/loud.log", test_dir, newest_run());
    char *log = slurp(path);
    cr_assert_not_null(log);
    size_t len = strlen(log);
    cr_expect_leq(len, 64 * 1024, "%zu bytes", len);
    const char *nl = strchr(log, '\n');
    cr_expect(nl && nl - log >= 8 && strncmp(nl - 8, " INFO  1", 8) == 0, "the head is kept");
    cr_expect(strstr(log, " INFO  40000\n"), "the tail is kept");
    cr_expect(strstr(log, "bytes of this log cut here"), "the cut is said");
    cr_expect_null(strstr(log, " INFO  20000\n"), "the middle is cut");
    free(log);
    char tail[300];
    snprintf(tail, sizeof(tail), "%s.tail", path);
    cr_expect_neq(access(tail, F_OK), 0, "%s is removed", tail);
}

/* ---- SLUICE_ISOLATION ------------------------------------------------------ */

/* A step that segfaults, then one that runs after it whatever happens. */
static result run_crashing_with(const char *isolation) {
    static char env[64];
    snprintf(env, sizeof(env), "SLUICE_ISOLATION=%s", isolation);
    run_env[1] = env;
    run_env[2] = NULL;
    char *p = write_test_file(test_dir, "iso.yaml",
                              "pipeline: iso\n"
                              "steps:\n"
                              "  boom: {uses: die}\n"
                              "  beside: {uses: emit, with: {text: hi}}\n");
    return RUN(test_store_arg, "run", "--json", p);
}

static void crash_is_contained(const char *isolation) {
    result r = run_crashing_with(isolation);
    cr_expect_eq(r.status, 1, "%s", r.err);
    /* SIGSEGV, or SIGABRT where a sanitizer turns the crash into an abort. */
    cr_expect(strstr(r.out, "crashed: killed by SIG"), "%s", r.out);
    cr_expect_str_eq(run_status(newest_run()), "failed");
    result_free(&r);
}

Test(lifecycle, sluice_isolation_process_runs_every_plugin_step_in_a_child) {
    crash_is_contained("process");
}

Test(lifecycle, sluice_isolation_outside_runs_plugins_from_elsewhere_in_a_child) {
    crash_is_contained("outside"); /* the test plugins are outside the test's folder */
}

Test(lifecycle, an_unknown_sluice_isolation_is_refused) {
    result r = run_crashing_with("sometimes");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "SLUICE_ISOLATION is in-process, process or outside, not 'sometimes'"),
              "%s", r.err);
    result_free(&r);
}

Test(lifecycle, sluice_isolation_outside_keeps_the_pipelines_own_plugins_in_process) {
    /* The test plugins copied into the pipeline's folder, and only there. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir '%s/plug' && cp '%s/good/teststeps.so' '%s/plug/'", test_dir,
             SLUICE_TEST_PLUGINS, test_dir);
    cr_assert_eq(system(cmd), 0);
    run_env[0] = "SLUICE_PLUGIN_PATH=";
    run_env[1] = "SLUICE_ISOLATION=outside";
    run_env[2] = NULL;
    char *p = write_test_file(test_dir, "own.yaml",
                              "pipeline: own\n"
                              "plugins: [plug]\n"
                              "steps:\n"
                              "  boom: {uses: die}\n");
    result r = RUN(test_store_arg, "run", p);
    cr_expect_gt(r.status, 128, "in-process, the crash is sluice's: %s", r.err);
    cr_expect_str_eq(run_status(newest_run()), "crashed");
    result_free(&r);
}

/* ---- the fork server that starts step commands ------------------------- */

/* Runs pipeline p with the sluice binary (copy: a copy of it in a folder
 * without sluice-supervise, so that 'sluice exec --supervise' serves). */
static result run_with(int copy, const char *p) {
    if (!copy)
        return RUN(test_store_arg, "run", (char *)p);
    static char bin[300];
    char cmd[800];
    snprintf(bin, sizeof(bin), "%s/bin/sluice", test_dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/bin' && cp '%s' '%s'", test_dir, SLUICE_BIN, bin);
    cr_assert_eq(system(cmd), 0);
    return run_in(NULL, NULL, (char *[]){bin, test_store_arg, "run", (char *)p, NULL});
}

static void steps_end_as_their_command_ended(int copy) {
    char *p = write_test_file(test_dir, "ends.yaml",
                              "pipeline: ends\n"
                              "settings: {jobs: 1}\n"
                              "steps:\n"
                              "  seven: {uses: shell, with: {run: 'setsid -f sleep 600; "
                              "(sleep 601 &); exit 7'}}\n"
                              "  segv: {uses: shell, with: {run: 'kill -SEGV $$'}}\n"
                              "  missing: {uses: shell, with: {run: '/no/such/program'}}\n"
                              "  fine: {uses: shell, with: {run: 'echo fine'}}\n");
    result r = run_with(copy, p);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "exited with status 7"), "%s", r.out);
    cr_expect(strstr(r.out, "SIGSEGV"), "%s", r.out);
    cr_expect(strstr(r.out, "cannot run '/no/such/program'"), "%s", r.out);
    cr_expect(strstr(r.out, "could not start: no such file or directory"), "%s", r.out);
    cr_expect(strstr(r.out, "3 failed"), "%s", r.out);
    result_free(&r);
    cr_expect_eq(processes_left(), 0);
}

Test(lifecycle, steps_end_as_their_command_ended_and_leave_nothing) {
    steps_end_as_their_command_ended(0);
}

Test(lifecycle, sluice_exec_supervise_serves_where_sluice_supervise_is_not_installed) {
    steps_end_as_their_command_ended(1);
}

/* The daemon of the first step is gone before the second step starts, not
 * only at the end of the run: the server tells it by its token. */
Test(lifecycle, a_daemon_is_killed_when_its_step_ends_not_at_the_runs_end) {
    succeeds_and_leaves_nothing("pipeline: token\n"
                                "steps:\n"
                                "  start: {uses: shell, with: {run: \"setsid -f sh -c 'echo $$ > "
                                "@/daemon; exec sleep 600'; while [ ! -s @/daemon ]; do sleep "
                                "0.01; done\"}}\n"
                                "  check: {uses: shell, after: [start], with: {run: 'd=$(cat "
                                "@/daemon); n=0; while kill -0 $d 2>/dev/null; do n=$((n+1)); "
                                "[ $n -lt 500 ] || { echo alive; exit 1; }; sleep 0.01; done'}}\n");
}

/* A daemon that cleared its environment and left the session belongs to
 * no step that can be told: it goes at the end of the run. */
Test(lifecycle, a_daemon_nothing_can_attribute_is_killed_at_the_runs_end) {
    succeeds_and_leaves_nothing(
        "pipeline: anon\n"
        "steps:\n"
        "  start: {uses: shell, with: {run: 'env -i setsid -f sleep 600'}}\n");
}
