/* test_schedule.c - sluice schedule and sluice scheduler, end to end: the
 * records, their errors, fires of --every, cron, git, artifact and
 * warehouse schedules with the cause they record, restarts, catchup, and
 * the one scheduler per store. Time is SLUICE_NOW (docs/schedules.md):
 * nothing here sleeps for a fire time or asserts on a duration. */
#include <signal.h>
#include <sys/stat.h>

#include "runner.h"

static char now_env[64];

/* The scheduler's clock for the runs that follow. */
static void set_now(const char *when) {
    snprintf(now_env, sizeof(now_env), "SLUICE_NOW=%s", when);
    run_env[1] = now_env;
    run_env[2] = NULL;
}

static void setup(void) {
    test_dir_setup();
    set_now("2026-12-07T10:00:00Z");
}

TestSuite(schedule, .init = setup, .fini = test_dir_teardown);

static char *pipeline_file(void) {
    return write_test_file(test_dir, "p.yaml",
                           "pipeline: sched\n"
                           "params: {word: hi}\n"
                           "steps:\n"
                           "  a: {uses: shell, with: {run: 'echo ${params.word} > out', outputs: "
                           "{o: out}}}\n");
}

/* The number of runs whose cause names schedule name. */
static size_t runs_of(const char *name) {
    result r = RUN(test_store_arg, "runs", "list", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char needle[128];
    snprintf(needle, sizeof(needle), "\"schedule\" : \"%s\"", name);
    size_t n = count(r.out, needle);
    result_free(&r);
    return n;
}

static void scheduler_once(void) { expect_success(RUN(test_store_arg, "scheduler", "--once")); }

Test(schedule, add_list_show_pause_resume_remove) {
    char *file = strdup(pipeline_file());
    expect_success(RUN(test_store_arg, "schedule", "add", "nightly", file, "-p", "word=night",
                       "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--catchup", "none"));
    expect_success(RUN(test_store_arg, "schedule", "add", "hourly", file, "--every", "1h"));
    result r = RUN(test_store_arg, "schedule", "list");
    cr_assert_eq(r.status, 0);
    cr_expect(strstr(r.out, "nightly") && strstr(r.out, "30 2 * * *"), "%s", r.out);
    /* 2026-12-08 02:30 in Berlin, the first after 2026-12-07 10:00 UTC. */
    cr_expect(strstr(r.out, "2026-12-08 02:30:00 CET"), "%s", r.out);
    cr_expect(strstr(r.out, "2026-12-07 11:00:00"), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "schedule", "show", "nightly", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"tz\" : \"Europe/Berlin\""), "%s", r.out);
    cr_expect(strstr(r.out, "\"catchup\" : \"none\""), "%s", r.out);
    cr_expect(strstr(r.out, "word=night"), "%s", r.out);
    result_free(&r);
    expect_success(RUN(test_store_arg, "schedule", "pause", "nightly"));
    r = RUN(test_store_arg, "schedule", "show", "nightly");
    cr_expect(strstr(r.out, "(paused)"), "%s", r.out);
    result_free(&r);
    expect_success(RUN(test_store_arg, "schedule", "resume", "nightly"));
    r = RUN(test_store_arg, "schedule", "show", "nightly");
    cr_expect(strstr(r.out, "(active)"), "%s", r.out);
    result_free(&r);
    expect_success(RUN(test_store_arg, "schedule", "remove", "nightly"));
    r = RUN(test_store_arg, "schedule", "list", "--json");
    cr_expect(!strstr(r.out, "nightly") && strstr(r.out, "hourly"), "%s", r.out);
    result_free(&r);
    expect_refused(RUN(test_store_arg, "schedule", "show", "nightly"), 2, "no schedule 'nightly'");
    expect_refused(RUN(test_store_arg, "schedule", "add", "hourly", file, "--every", "2h"), 2,
                   "a schedule 'hourly' exists");
    free(file);
}

Test(schedule, bad_schedules_are_refused_and_located) {
    char *file = strdup(pipeline_file());
    /* the options after 'schedule add x FILE', and what the refusal says */
    static const struct {
        const char *options[4], *says;
    } bad[] = {
        {{"--cron", "0 24 * * *"},
         "--cron '0 24 * * *': column 3: hour 24 is out of its range 0-23"},
        {{"--cron", "0 0 30 2 *"}, "never fires"},
        {{"--every", "10"}, "needs a unit"},
        {{"--at", "2026-12-07 25:00"}, "--at '2026-12-07 25:00': no such date or time"},
        {{"--at", "7 Dec"}, "--at '7 Dec': column 1: expected YYYY-MM-DD HH:MM"},
        {{"--at", "2026-12-01 10:00Z"}, "is in the past"},
        {{"--cron", "* * * * *", "--tz", "Mars/Olympus"}, "no such time zone"},
        {{"--on", "svn:foo"}, "--on takes git:REPO[@BRANCH]"},
        {{"--on", "artifact:a.b"}, "artifact:PIPELINE.STEP.OUTPUT"},
        {{"--every", "1h", "--cron", "* * * * *"}, "give one of --cron, --every, --at or --on"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[11] = {"sluice", test_store_arg, "schedule", "add", "x", file}; /* NULL-ended */
        for (int k = 0; k < 4 && bad[i].options[k]; k++)
            argv[6 + k] = (char *)bad[i].options[k];
        expect_refused(run_in(NULL, NULL, argv), 2, bad[i].says);
    }
    expect_refused(RUN(test_store_arg, "schedule", "add", "no/slash", file, "--every", "1h"), 2,
                   "a name is");
    char *broken =
        write_test_file(test_dir, "broken.yaml", "pipeline: b\nsteps:\n  a: {uses: nosuchstep}\n");
    expect_refused(RUN(test_store_arg, "schedule", "add", "x", broken, "--every", "1h"), 2,
                   "broken.yaml:3");
    result r = RUN(test_store_arg, "schedule", "list");
    cr_expect(strstr(r.out, "no schedules"), "nothing was recorded: %s", r.out);
    result_free(&r);
    free(file);
}

Test(schedule, every_fires_records_its_cause_and_a_restart_does_not_fire_again) {
    char *file = strdup(pipeline_file());
    expect_success(RUN(test_store_arg, "schedule", "add", "hourly", file, "--every", "1h"));
    set_now("2026-12-07T10:59:00Z");
    scheduler_once();
    cr_expect_eq(runs_of("hourly"), 0, "not due before 11:00");
    set_now("2026-12-07T11:00:20Z");
    scheduler_once();
    cr_assert_eq(runs_of("hourly"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "cause schedule=hourly trigger=every fired_at=2026-12-07T11:00:00Z"),
              "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", "latest", "--json");
    cr_expect(strstr(r.out, "\"cause\" : { \"schedule\" : \"hourly\""), "%s", r.out);
    result_free(&r);
    /* Restarted at the same time: the fire was remembered. */
    scheduler_once();
    cr_expect_eq(runs_of("hourly"), 1);
    /* Paused, it does not fire; resumed, it catches up (latest by default). */
    expect_success(RUN(test_store_arg, "schedule", "pause", "hourly"));
    set_now("2026-12-07T12:00:10Z");
    scheduler_once();
    cr_expect_eq(runs_of("hourly"), 1, "paused: no run");
    expect_success(RUN(test_store_arg, "schedule", "resume", "hourly"));
    scheduler_once();
    cr_expect_eq(runs_of("hourly"), 2);
    r = RUN(test_store_arg, "schedule", "show", "hourly");
    cr_expect(strstr(r.out, "runs 2, skipped 0"), "%s", r.out);
    result_free(&r);
    free(file);
}

Test(schedule, at_fires_once_on_time) {
    char *file = strdup(pipeline_file());
    expect_success(RUN(test_store_arg, "schedule", "add", "once", file, "--at",
                       "2026-12-07 13:00+01:00", "--catchup", "none"));
    set_now("2026-12-07T11:59:00Z");
    scheduler_once();
    cr_expect_eq(runs_of("once"), 0);
    set_now("2026-12-07T12:00:40Z"); /* 40 s late: on time even for catchup none */
    scheduler_once();
    cr_expect_eq(runs_of("once"), 1);
    set_now("2026-12-08T12:00:00Z");
    scheduler_once();
    cr_expect_eq(runs_of("once"), 1, "a one-off fires once");
    result r = RUN(test_store_arg, "schedule", "show", "once");
    cr_expect(strstr(r.out, "next -") && strstr(r.out, "runs 1, skipped 0"), "%s", r.out);
    result_free(&r);
    free(file);
}

Test(schedule, artifact_trigger_added_before_any_version_fires_on_the_first) {
    char *file = strdup(pipeline_file());
    char *up = strdup(write_test_file(test_dir, "up.yaml",
                                      "pipeline: up\nsteps:\n"
                                      "  make: {uses: shell, with: {run: 'echo 1 > f', "
                                      "outputs: {data: f}}}\n"));
    expect_success(
        RUN(test_store_arg, "schedule", "add", "first", file, "--on", "artifact:up.make.data"));
    scheduler_once();
    cr_expect_eq(runs_of("first"), 0);
    expect_success(RUN_PIPELINE(up));
    scheduler_once();
    cr_expect_eq(runs_of("first"), 1);
    free(up);
    free(file);
}

/* An --every 1h schedule made at 10:00 and a scheduler first started at
 * 13:30: 11:00, 12:00 and 13:00 were missed. */
static size_t missed_runs(char *catchup) {
    char *file = strdup(pipeline_file());
    expect_success(
        RUN(test_store_arg, "schedule", "add", "c", file, "--every", "1h", "--catchup", catchup));
    set_now("2026-12-07T13:30:00Z");
    scheduler_once();
    size_t n = runs_of("c");
    scheduler_once(); /* and a restart owes nothing more */
    cr_expect_eq(runs_of("c"), n);
    free(file);
    return n;
}

Test(schedule, catchup_none_skips_the_missed_times) {
    cr_expect_eq(missed_runs("none"), 0);
    result r = RUN(test_store_arg, "schedule", "show", "c");
    cr_expect(strstr(r.out, "runs 0, skipped 3"), "%s", r.out);
    cr_expect(strstr(r.out, "next 2026-12-07 14:00:00"), "%s", r.out);
    result_free(&r);
}

Test(schedule, catchup_latest_runs_the_newest) {
    cr_expect_eq(missed_runs("latest"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "fired_at=2026-12-07T13:00:00Z"), "%s", r.out);
    result_free(&r);
}

Test(schedule, catchup_all_runs_each_in_order) {
    cr_expect_eq(missed_runs("all"), 3);
    result r = RUN(test_store_arg, "runs", "list", "--json");
    const char *t11 = strstr(r.out, "fired_at\" : \"2026-12-07T11:00:00Z"),
               *t13 = strstr(r.out, "fired_at\" : \"2026-12-07T13:00:00Z");
    cr_assert(t11 && t13 && strstr(r.out, "fired_at\" : \"2026-12-07T12:00:00Z"), "%s", r.out);
    cr_expect(t13 < t11, "newest first: 13:00 ran last");
    result_free(&r);
}

Test(schedule, cron_fires_in_its_zone) {
    char *file = strdup(pipeline_file());
    /* 2026-03-29 02:30 does not exist in Berlin: it fires at 03:00 CEST. */
    set_now("2026-03-28T12:00:00Z");
    expect_success(RUN(test_store_arg, "schedule", "add", "dst", file, "--cron", "30 2 * * *",
                       "--tz", "Europe/Berlin"));
    set_now("2026-03-29T00:59:00Z");
    scheduler_once();
    cr_expect_eq(runs_of("dst"), 0);
    set_now("2026-03-29T01:00:30Z");
    scheduler_once();
    cr_expect_eq(runs_of("dst"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "fired_at=2026-03-29T01:00:00Z"), "%s", r.out);
    result_free(&r);
    free(file);
}

static void git(const char *repo, const char *cmd) {
    char line[1024];
    snprintf(line, sizeof(line),
             "cd '%s' && GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
             "GIT_COMMITTER_EMAIL=t@t git %s >/dev/null 2>&1",
             repo, cmd);
    cr_assert_eq(system(line), 0, "%s", line);
}

static void head_of(const char *repo, char *out, size_t size) {
    char line[600];
    snprintf(line, sizeof(line), "git -C '%s' rev-parse main", repo);
    FILE *p = popen(line, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(out, (int)size, p));
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

Test(schedule, git_trigger_fires_on_a_new_commit_once) {
    char *file = strdup(pipeline_file()), repo[128], on[200], sha[64], want[128];
    snprintf(repo, sizeof(repo), "%s/repo", test_dir);
    mkdir(repo, 0755);
    git(repo, "init -q -b main");
    git(repo, "commit -q --allow-empty -m one");
    snprintf(on, sizeof(on), "git:%s@main", repo);
    expect_success(RUN(test_store_arg, "schedule", "add", "oncommit", file, "--on", on));
    scheduler_once();
    cr_expect_eq(runs_of("oncommit"), 0, "the commit there at 'add' does not fire");
    git(repo, "commit -q --allow-empty -m two");
    head_of(repo, sha, sizeof(sha));
    scheduler_once();
    cr_assert_eq(runs_of("oncommit"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    snprintf(want, sizeof(want), "trigger=git fired_at=2026-12-07T10:00:00Z commit=%s", sha);
    cr_expect(strstr(r.out, want), "%s lacks %s", r.out, want);
    result_free(&r);
    scheduler_once();
    cr_expect_eq(runs_of("oncommit"), 1, "a restart does not fire the same commit again");
    /* A commit on another branch is not this trigger's. */
    git(repo, "checkout -q -b other");
    git(repo, "commit -q --allow-empty -m three");
    scheduler_once();
    cr_expect_eq(runs_of("oncommit"), 1);
    free(file);
}

Test(schedule, git_trigger_fetches_a_url) {
    char *file = strdup(pipeline_file()), repo[128], on[200], sha[64], want[128];
    snprintf(repo, sizeof(repo), "%s/remote", test_dir);
    mkdir(repo, 0755);
    git(repo, "init -q -b main");
    git(repo, "commit -q --allow-empty -m one");
    snprintf(on, sizeof(on), "git:file://%s@main", repo);
    expect_success(RUN(test_store_arg, "schedule", "add", "fetched", file, "--on", on));
    scheduler_once();
    cr_expect_eq(runs_of("fetched"), 0);
    git(repo, "commit -q --allow-empty -m two");
    head_of(repo, sha, sizeof(sha));
    scheduler_once();
    cr_assert_eq(runs_of("fetched"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    snprintf(want, sizeof(want), "commit=%s", sha);
    cr_expect(strstr(r.out, want), "%s lacks %s", r.out, want);
    result_free(&r);
    /* Fetched into the store's mirror, not a clone of the whole each time. */
    char mirror[200];
    snprintf(mirror, sizeof(mirror), "%s/store/scheduler/git/fetched/HEAD", test_dir);
    cr_expect_eq(access(mirror, F_OK), 0);
    free(file);
}

Test(schedule, artifact_trigger_fires_on_a_new_version) {
    char *file = strdup(pipeline_file());
    char *up = strdup(write_test_file(test_dir, "up.yaml",
                                      "pipeline: up\nparams: {v: 1}\nsteps:\n"
                                      "  make: {uses: shell, with: {run: 'echo ${params.v} > f', "
                                      "outputs: {data: f}}}\n"));
    expect_success(RUN_PIPELINE(up));
    expect_success(RUN(test_store_arg, "schedule", "add", "downstream", file, "--on",
                       "artifact:up.make.data"));
    scheduler_once();
    cr_expect_eq(runs_of("downstream"), 0, "the version there at 'add' does not fire");
    expect_success(RUN_PIPELINE(up)); /* the same output again: cached, no new version */
    scheduler_once();
    cr_expect_eq(runs_of("downstream"), 0);
    expect_success(RUN_PIPELINE(up, "-p", "v=2"));
    scheduler_once();
    cr_expect_eq(runs_of("downstream"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "trigger=artifact") && strstr(r.out, "artifact="), "%s", r.out);
    result_free(&r);
    free(up);
    free(file);
}

Test(schedule, warehouse_trigger_fires_on_new_documents) {
    char *file = strdup(pipeline_file()), dir[128];
    expect_success(RUN(test_store_arg, "schedule", "add", "docs", file, "--on", "warehouse"));
    scheduler_once();
    cr_expect_eq(runs_of("docs"), 0);
    snprintf(dir, sizeof(dir), "%s/export", test_dir);
    mkdir(dir, 0755);
    write_test_file(dir, "ArticleDocument.json",
                    "[{\"_id\": \"1\", \"content\": {\"text\": \"x\"}, \"platform\": \"medium\", "
                    "\"author_id\": \"u\", \"author_full_name\": \"A B\", \"link\": "
                    "\"https://example.org/a\"}]");
    expect_success(RUN(test_store_arg, "warehouse", "import", dir));
    scheduler_once();
    cr_expect_eq(runs_of("docs"), 1);
    result r = RUN(test_store_arg, "runs", "show", "latest");
    cr_expect(strstr(r.out, "trigger=warehouse") && strstr(r.out, "documents=1"), "%s", r.out);
    result_free(&r);
    scheduler_once();
    cr_expect_eq(runs_of("docs"), 1);
    free(file);
}

/* Starts 'sluice scheduler' in the background, its output in out; returns
 * once it has started. */
static pid_t start_scheduler(const char *out) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        for (int i = 0; run_env[i]; i++)
            putenv((char *)run_env[i]);
        execl(SLUICE_BIN, "sluice", test_store_arg, "scheduler", "--poll", "1", (char *)NULL);
        _exit(127);
    }
    wait_for_text(out, "scheduler: running on the store");
    return pid;
}

static void stop_scheduler(pid_t pid) {
    kill(pid, SIGTERM);
    int ws;
    waitpid(pid, &ws, 0);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "it stops cleanly on SIGTERM");
}

Test(schedule, a_run_still_going_is_not_started_again_after_a_restart) {
    char *file = strdup(write_test_file(
        test_dir, "slow.yaml",
        "pipeline: slow\nsteps:\n  a: {uses: shell, with: {run: 'while [ ! -f @/go ]; do sleep "
        "0.02; done; touch @/finished'}, cache: false}\n"));
    char out[200], go[200], finished[200];
    snprintf(out, sizeof(out), "%s/scheduler.out", test_dir);
    snprintf(go, sizeof(go), "%s/go", test_dir);
    snprintf(finished, sizeof(finished), "%s/finished", test_dir);
    expect_success(RUN(test_store_arg, "schedule", "add", "slow", file, "--every", "1h"));
    set_now("2026-12-07T11:00:10Z");
    pid_t pid = start_scheduler(out);
    wait_for_text(out, "schedule slow: started run");
    stop_scheduler(pid);         /* its run goes on */
    while (runs_of("slow") == 0) /* until that run has recorded itself */
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    /* A later fire is due, but the run of the scheduler before goes on. */
    set_now("2026-12-07T12:00:10Z");
    scheduler_once();
    cr_expect_eq(runs_of("slow"), 1);
    /* The record names the run's process, which the scheduler checks. */
    result r = RUN(test_store_arg, "schedule", "show", "slow", "--json");
    const char *at = strstr(r.out, "\"run_pid\" : ");
    cr_assert_not_null(at, "%s", r.out);
    long run_pid = strtol(at + 12, NULL, 10);
    result_free(&r);
    cr_assert_gt(run_pid, 0);
    write_test_file(test_dir, "go", "");
    wait_for_text(finished, NULL);
    /* Once its process is gone (a zombie has no command line), the time owed runs. */
    char cmdline[64];
    snprintf(cmdline, sizeof(cmdline), "/proc/%ld/cmdline", run_pid);
    for (;;) {
        char *text = slurp(cmdline);
        int alive = text && text[0];
        free(text);
        if (!alive)
            break;
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    scheduler_once();
    cr_expect_eq(runs_of("slow"), 2);
    free(file);
}

Test(schedule, one_scheduler_per_store) {
    char out[200];
    snprintf(out, sizeof(out), "%s/scheduler.out", test_dir);
    pid_t pid = start_scheduler(out);
    expect_refused(RUN(test_store_arg, "scheduler", "--once"), 2,
                   "another scheduler runs on the store");
    stop_scheduler(pid);
    scheduler_once(); /* the lock went with it */
}

/* 'schedule fire' starts the pipeline now with its cause; a delivery fires
 * once; exit 3 no such schedule, 4 a delivery seen, 5 paused. */
Test(schedule, fire_now_once_per_delivery) {
    char *file = strdup(pipeline_file());
    expect_success(RUN(test_store_arg, "schedule", "add", "ci", file, "--cron", "0 3 * * *"));
    free(file);
    result r = RUN(test_store_arg, "schedule", "fire", "ci", "--delivery", "abc-1", "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "\"trigger\" : \"manual\"") && strstr(r.out, "\"pid\""), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "schedule", "fire", "ci", "--delivery", "abc-1");
    cr_expect_eq(r.status, 4, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "delivery abc-1 fired already"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "schedule", "fire", "nosuch");
    cr_expect_eq(r.status, 3, "%s", r.err);
    result_free(&r);
    expect_success(RUN(test_store_arg, "schedule", "pause", "ci"));
    r = RUN(test_store_arg, "schedule", "fire", "ci", "--delivery", "abc-2");
    cr_expect_eq(r.status, 5, "%s", r.err);
    result_free(&r);
    expect_refused(RUN(test_store_arg, "schedule", "fire", "ci", "--delivery", "a b"), 2,
                   "--delivery take");
    /* the fired run: done, with its cause */
    for (int i = 0; i < 1500; i++) {
        r = RUN(test_store_arg, "runs", "list", "--json");
        int done = strstr(r.out, "\"status\" : \"done\"") != NULL;
        if (done || i == 1499) {
            cr_expect(done, "the fired run never finished: %s", r.out);
            cr_expect_eq(count(r.out, "\"delivery\" : \"abc-1\""), 1, "%s", r.out);
            cr_expect_eq(runs_of("ci"), 1);
            result_free(&r);
            break;
        }
        result_free(&r);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    /* the cron schedule's own state did not move */
    r = RUN(test_store_arg, "schedule", "show", "ci", "--json");
    cr_expect(strstr(r.out, "\"deliveries\" : [ \"abc-1\" ]"), "%s", r.out);
    cr_expect(!strstr(r.out, "last_fire\" : 1"), "%s", r.out);
    result_free(&r);
}
