/* Unit tests of the scheduler (orchestrator/sched), in process: pipelines
 * of this file's own plugin steps (registered from memory, so each test
 * sees what its steps did) and shell steps, run through run_pipeline()
 * with --json events captured. Assertions are on the order of events and
 * on outcomes, never on time: with one job the order is exactly the ready
 * set's (first ready, first started; roots in file order); with more, only
 * what the edges impose. Also the plan (plan.h): what a run would reuse and
 * why the rest would run. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bind.h"
#include "diag.h"
#include "plan.h"
#include "host.h"
#include "registry.h"
#include "run.h"

/* ---- this file's plugin ---- */

/* What the steps did, in order: "tag" per run. Steps may run on two
 * threads at once. */
static pthread_mutex_t calls_mu = PTHREAD_MUTEX_INITIALIZER;
static char calls[1024];
static int gate_open; /* the gate step fails until a test opens it */

static void note_call(const char *tag) {
    pthread_mutex_lock(&calls_mu);
    strncat(calls, tag, sizeof(calls) - strlen(calls) - 2);
    strcat(calls, " ");
    pthread_mutex_unlock(&calls_mu);
}

/* Writes its tag and whatever it was given to output out. */
static int note_run(sl_ctx *ctx) {
    const char *tag = sl_param_str(ctx, "tag");
    note_call(tag);
    FILE *out = sl_output_create(ctx, "out");
    if (!out)
        return sl_fail(ctx, "cannot create the output");
    fprintf(out, "%s", tag);
    const char *ports[] = {"a", "b"};
    for (size_t i = 0; i < 2; i++) {
        FILE *in = sl_input_open(ctx, ports[i]);
        if (!in)
            continue;
        int c;
        fputc('(', out);
        while ((c = fgetc(in)) != EOF)
            fputc(c, out);
        fputc(')', out);
        fclose(in);
    }
    fclose(out);
    return SL_OK;
}

static int boom_run(sl_ctx *ctx) {
    note_call(sl_param_str(ctx, "tag"));
    return sl_fail(ctx, "boom: %s", sl_param_str(ctx, "tag"));
}

static int gate_run(sl_ctx *ctx) {
    note_call("gate");
    if (!__atomic_load_n(&gate_open, __ATOMIC_SEQ_CST))
        return sl_fail(ctx, "the gate is closed");
    FILE *out = sl_output_create(ctx, "out");
    if (!out)
        return sl_fail(ctx, "cannot create the output");
    fputs("open", out);
    fclose(out);
    return SL_OK;
}

/* Interrupts the run (as Ctrl-C would), then waits to be asked to stop
 * (never asked: the suite's timeout). */
static int interrupt_run(sl_ctx *ctx) {
    note_call("interrupt");
    kill(getpid(), SIGINT);
    while (!sl_cancelled(ctx))
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return SL_ECANCELLED;
}

static const sl_port two_in[] = {
    {"a", "any", NULL, 1}, {"b", "any", NULL, 1}, {NULL, NULL, NULL, 0}};
static const sl_port one_out[] = {{"out", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
static const sl_param tag_param[] = {{"tag", SL_PARAM_STRING, NULL, NULL, 1},
                                     {NULL, 0, NULL, NULL, 0}};
static const sl_step mem_steps[] = {
    {"note", "1", "write the tag and the inputs", two_in, one_out, tag_param, note_run},
    {"boom", "1", "fail", two_in, one_out, tag_param, boom_run},
    {"gate", "1", "fail until opened", two_in, one_out, NULL, gate_run},
    {"interrupt", "1", "SIGINT the run", two_in, one_out, NULL, interrupt_run},
};
static const sl_plugin mem_plugin = {.abi_version = SL_ABI_VERSION,
                                     .size = sizeof(sl_plugin),
                                     .signature = SL_BUILD_SIGNATURE,
                                     .name = "schedtest",
                                     .version = "1",
                                     .steps = mem_steps,
                                     .n_steps = 4,
                                     .step_size = sizeof(sl_step),
                                     .port_size = sizeof(sl_port),
                                     .param_size = sizeof(sl_param)};

/* ---- fixture ---- */

static char dir[64], store[128], exe[PATH_MAX];
static plugin_registry reg;

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-sched-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(store, sizeof(store), "%s/store", dir);
    setenv("SLUICE_PLUGIN_CACHE", "off", 1);
    reg = (plugin_registry)PLUGIN_REGISTRY_INIT(host_registry());
    diag_list d = DIAG_LIST_INIT;
    /* The plugin's file is this program: the cache key hashes it. */
    cr_assert_not_null(realpath("/proc/self/exe", exe));
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_add(&reg, exe, exe, NULL, &mem_plugin, &d, &lib), 0);
    cr_assert_not_null(lib, "%s", d.n ? d.items[0].msg : "");
    diag_clear(&d);
    calls[0] = '\0';
    gate_open = 0;
}

static void teardown(void) {
    registry_free(&reg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", dir, dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(sched, .init = setup, .fini = teardown, .timeout = 120);

static pipeline *load(const char *yaml, const char *const *overrides, size_t n_overrides) {
    diag_list d = DIAG_LIST_INIT;
    pipeline_options opt = {.overrides = overrides, .n_overrides = n_overrides};
    pipeline *p = NULL;
    int rc = pipeline_load_buffer(yaml, strlen(yaml), "t.yaml", dir, &opt, &d, &p);
    if (rc == 0)
        rc = pipeline_bind(p, &reg, BIND_STRICT, &d);
    cr_assert_eq(rc, 0, "%s", d.n ? d.items[0].msg : "(no message)");
    cr_assert_eq(d.errors, 0, "%s", d.items[0].msg);
    diag_clear(&d);
    return p;
}

/* One run: its status, its id and a trace of its events, one a line:
 * "start STEP", "retry STEP", "STATUS STEP" (done, failed, skipped, cached,
 * cancelled) and last "run STATUS". */
typedef struct outcome {
    int status;
    char run_id[48];
    char trace[2048];
    char *events; /* the JSON lines as printed */
} outcome;

/* The text of "key" : "value" in line, or "" (static). */
static const char *field(const char *line, const char *key) {
    static char value[128];
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\" : \"", key);
    const char *at = strstr(line, needle);
    value[0] = '\0';
    if (at) {
        at += strlen(needle);
        snprintf(value, sizeof(value), "%.*s", (int)strcspn(at, "\""), at);
    }
    return value;
}

static void trace_line(outcome *o, const char *line) {
    char event[32], step[80], what[40];
    snprintf(event, sizeof(event), "%s", field(line, "event"));
    snprintf(step, sizeof(step), "%s", field(line, "step"));
    what[0] = '\0';
    if (strcmp(event, "step_started") == 0)
        snprintf(what, sizeof(what), "start");
    else if (strcmp(event, "step_retry") == 0)
        snprintf(what, sizeof(what), "retry");
    else if (strcmp(event, "step_finished") == 0)
        snprintf(what, sizeof(what), "%s", field(line, "status"));
    else if (strcmp(event, "run_finished") == 0)
        snprintf(step, sizeof(step), "%s", field(line, "status")), snprintf(what, 4, "run");
    else if (strcmp(event, "run_started") == 0)
        snprintf(o->run_id, sizeof(o->run_id), "%s", field(line, "run"));
    if (what[0]) {
        size_t used = strlen(o->trace);
        snprintf(o->trace + used, sizeof(o->trace) - used, "%s %s\n", what, step);
    }
}

static outcome run(pipeline *p, run_options opt) {
    char events_path[128];
    snprintf(events_path, sizeof(events_path), "%s/events", dir);
    fflush(stdout);
    int saved = dup(1), fd = open(events_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    opt.store = store;
    opt.exe = SLUICE_BIN;
    opt.json = 1;
    if (!opt.jobs)
        opt.jobs = 1;
    outcome o = {.status = run_pipeline(p, &opt)};
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    cr_assert_eq(opt.abandoned, 0);

    FILE *f = fopen(events_path, "r");
    cr_assert_not_null(f);
    size_t cap = 0;
    FILE *all = open_memstream(&o.events, &cap);
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        fputs(line, all);
        trace_line(&o, line);
    }
    fclose(f);
    fclose(all);
    return o;
}

static void outcome_free(outcome *o) { free(o->events); }

/* The position of line in trace (-1 when absent). */
static long at(const outcome *o, const char *line) {
    char needle[128];
    snprintf(needle, sizeof(needle), "%s\n", line);
    for (const char *p = o->trace; (p = strstr(p, needle)); p++)
        if (p == o->trace || p[-1] == '\n')
            return p - o->trace;
    return -1;
}

#define expect_before(o, first, then)                                                              \
    cr_expect(at(o, first) >= 0 && at(o, then) > at(o, first), "'%s' before '%s' in:\n%s", first,  \
              then, (o)->trace)

static const char diamond[] = "pipeline: diamond\n"
                              "steps:\n"
                              "  top: {uses: note, with: {tag: top}}\n"
                              "  left: {uses: note, inputs: {a: top.out}, with: {tag: left}}\n"
                              "  right: {uses: note, inputs: {a: top.out}, with: {tag: right}}\n"
                              "  join:\n"
                              "    uses: note\n"
                              "    inputs: {a: left.out, b: right.out}\n"
                              "    with: {tag: join}\n"
                              "  alone: {uses: note, with: {tag: alone}}\n";

/* ---- the run ---- */

Test(sched, one_job_runs_the_ready_set_in_order) {
    pipeline *p = load(diamond, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_expect_eq(o.status, 0, "%s", o.events);
    /* roots top and alone are ready first, in file order; left and right
     * become ready when top is done, join when both are */
    cr_expect_str_eq(o.trace, "start top\ndone top\n"
                              "start alone\ndone alone\n"
                              "start left\ndone left\n"
                              "start right\ndone right\n"
                              "start join\ndone join\n"
                              "run done\n");
    cr_expect_str_eq(calls, "top alone left right join ");
    /* top asks for its optional inputs a and b, unconnected: NULL, no error */
    cr_expect_null(strstr(o.events, "does not declare"), "%s", o.events);
    cr_expect_null(strstr(o.events, "\"level\" : \"error\""), "%s", o.events);
    outcome_free(&o);
    pipeline_free(p);
}

Test(sched, two_jobs_keep_every_edge) {
    pipeline *p = load(diamond, NULL, 0);
    outcome o = run(p, (run_options){.jobs = 2});
    cr_expect_eq(o.status, 0, "%s", o.events);
    expect_before(&o, "done top", "start left");
    expect_before(&o, "done top", "start right");
    expect_before(&o, "done left", "start join");
    expect_before(&o, "done right", "start join");
    expect_before(&o, "done join", "run done");
    cr_expect_eq(strlen(calls), strlen("top alone left right join "), "%s", calls);
    outcome_free(&o);
    pipeline_free(p);
}

/* A failure skips exactly what is downstream of it; the rest finishes. */
Test(sched, a_failure_skips_its_dependents_only) {
    static const char yaml[] = "pipeline: fail\n"
                               "steps:\n"
                               "  top: {uses: note, with: {tag: top}}\n"
                               "  bad: {uses: boom, inputs: {a: top.out}, with: {tag: bad}}\n"
                               "  good: {uses: note, inputs: {a: top.out}, with: {tag: good}}\n"
                               "  after_bad: {uses: note, inputs: {a: bad.out}, with: {tag: x}}\n"
                               "  last: {uses: note, after: [after_bad, good], with: {tag: y}}\n";
    for (int jobs = 1; jobs <= 2; jobs++) {
        calls[0] = '\0';
        pipeline *p = load(yaml, NULL, 0);
        outcome o = run(p, (run_options){.jobs = jobs, .no_cache = 1});
        cr_expect_eq(o.status, 1, "a failed step fails the run");
        cr_expect_geq(at(&o, "failed bad"), 0, "%s", o.trace);
        cr_expect_geq(at(&o, "done good"), 0, "%s", o.trace);
        expect_before(&o, "failed bad", "skipped after_bad");
        expect_before(&o, "failed bad", "skipped last");
        cr_expect_eq(at(&o, "start after_bad"), -1, "never started");
        cr_expect_eq(at(&o, "start last"), -1, "never started");
        cr_expect_geq(at(&o, "run failed"), 0, "%s", o.trace);
        cr_expect(strstr(o.events, "\"error\" : \"boom: bad\""), "%s", o.events);
        cr_expect(strstr(o.events, "\"error\" : \"upstream step 'bad' failed\""), "%s", o.events);
        cr_expect(strstr(o.events, "\"failed\" : 1, \"skipped\" : 2"), "%s", o.events);
        cr_expect_eq(strstr(calls, "x ") || strstr(calls, "y "), 0, "%s", calls);
        outcome_free(&o);
        pipeline_free(p);
    }
}

Test(sched, retries_run_the_step_again_then_fail) {
    static const char yaml[] = "pipeline: retry\n"
                               "steps:\n"
                               "  bad: {uses: boom, retries: {max: 2, backoff: 1ms}, "
                               "with: {tag: bad}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_expect_eq(o.status, 1);
    cr_expect_str_eq(o.trace, "start bad\nretry bad\nstart bad\nretry bad\nstart bad\n"
                              "failed bad\nrun failed\n");
    cr_expect_str_eq(calls, "bad bad bad ");
    outcome_free(&o);
    pipeline_free(p);
}

/* ---- the cache ---- */

Test(sched, an_unchanged_step_comes_from_the_cache_without_running) {
    pipeline *p = load(diamond, NULL, 0);
    outcome first = run(p, (run_options){0});
    cr_assert_eq(first.status, 0, "%s", first.events);
    calls[0] = '\0';
    outcome second = run(p, (run_options){0});
    cr_expect_eq(second.status, 0);
    cr_expect_str_eq(calls, "", "no step ran");
    cr_expect_str_eq(second.trace, "cached top\ncached alone\ncached left\ncached right\n"
                                   "cached join\nrun done\n");
    char from[128];
    snprintf(from, sizeof(from), "\"cached_from\" : \"%s/join\"", first.run_id);
    cr_expect(strstr(second.events, from), "%s", second.events);
    cr_expect(strstr(second.events, "\"cached\" : 5"), "%s", second.events);

    calls[0] = '\0';
    outcome forced = run(p, (run_options){.no_cache = 1});
    cr_expect_str_eq(calls, "top alone left right join ", "--no-cache runs every step");
    outcome_free(&first);
    outcome_free(&second);
    outcome_free(&forced);
    pipeline_free(p);
}

/* A changed parameter runs its step; its changed output runs what reads
 * it; an unchanged output (right's input is top's) keeps the rest cached. */
Test(sched, a_change_runs_the_step_and_what_reads_its_output) {
    static const char yaml[] = "pipeline: params\n"
                               "params: {t: one}\n"
                               "steps:\n"
                               "  top: {uses: note, with: {tag: top}}\n"
                               "  left: {uses: note, inputs: {a: top.out}, "
                               "with: {tag: '${params.t}'}}\n"
                               "  right: {uses: note, inputs: {a: top.out}, with: {tag: right}}\n"
                               "  join: {uses: note, inputs: {a: left.out, b: right.out}, "
                               "with: {tag: join}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome first = run(p, (run_options){0});
    cr_assert_eq(first.status, 0, "%s", first.events);
    pipeline_free(p);

    const char *over[] = {"t=two"};
    p = load(yaml, over, 1);
    calls[0] = '\0';
    outcome second = run(p, (run_options){0});
    cr_expect_eq(second.status, 0);
    cr_expect_str_eq(calls, "two join ");
    cr_expect_str_eq(second.trace, "cached top\nstart left\ndone left\ncached right\n"
                                   "start join\ndone join\nrun done\n");
    outcome_free(&first);
    outcome_free(&second);
    pipeline_free(p);
}

/* ---- resume ---- */

Test(sched, a_resume_reuses_what_finished_and_runs_the_rest) {
    static const char yaml[] = "pipeline: resume\n"
                               "steps:\n"
                               "  top: {uses: note, with: {tag: top}}\n"
                               "  gate: {uses: gate, inputs: {a: top.out}, cache: false}\n"
                               "  after: {uses: note, inputs: {a: gate.out}, with: {tag: after}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome failed = run(p, (run_options){0});
    cr_assert_eq(failed.status, 1);
    cr_expect_str_eq(failed.trace, "start top\ndone top\nstart gate\nfailed gate\n"
                                   "skipped after\nrun failed\n");
    gate_open = 1;
    calls[0] = '\0';
    outcome resumed = run(p, (run_options){.resume = failed.run_id});
    cr_expect_eq(resumed.status, 0, "%s", resumed.events);
    cr_expect_str_eq(calls, "gate after ", "top is not run again");
    cr_expect_str_eq(resumed.trace, "cached top\nstart gate\ndone gate\nstart after\n"
                                    "done after\nrun done\n");
    char from[128];
    snprintf(from, sizeof(from), "\"cached_from\" : \"%s/top\"", failed.run_id);
    cr_expect(strstr(resumed.events, from), "%s", resumed.events);
    outcome_free(&failed);
    outcome_free(&resumed);
    pipeline_free(p);
}

/* ---- --only, --from ---- */

Test(sched, only_and_from_select_steps_and_take_the_latest_outputs_upstream) {
    pipeline *p = load(diamond, NULL, 0);
    outcome all = run(p, (run_options){0});
    cr_assert_eq(all.status, 0);
    calls[0] = '\0';
    outcome only = run(p, (run_options){.only = "left", .no_cache = 1});
    cr_expect_eq(only.status, 0, "%s", only.events);
    cr_expect_str_eq(calls, "left ");
    cr_expect_geq(at(&only, "cached top"), 0, "%s", only.trace);
    cr_expect_geq(at(&only, "skipped join"), 0, "%s", only.trace);
    cr_expect_geq(at(&only, "skipped alone"), 0, "%s", only.trace);
    calls[0] = '\0';
    outcome from = run(p, (run_options){.from = "left", .no_cache = 1});
    cr_expect_eq(from.status, 0, "%s", from.events);
    cr_expect_str_eq(calls, "left join ");
    cr_expect_geq(at(&from, "cached right"), 0, "%s", from.trace);
    outcome unknown = run(p, (run_options){.only = "nope"});
    cr_expect_eq(unknown.status, 2, "an unknown step: the run cannot start");
    cr_expect_str_eq(unknown.trace, "");
    outcome_free(&all);
    outcome_free(&only);
    outcome_free(&from);
    outcome_free(&unknown);
    pipeline_free(p);
}

/* ---- shell steps beside plugin steps ---- */

Test(sched, shell_steps_read_plugin_outputs_and_feed_plugin_steps) {
    static const char yaml[] =
        "pipeline: mixed\n"
        "steps:\n"
        "  top: {uses: note, with: {tag: top}}\n"
        "  up:\n"
        "    uses: shell\n"
        "    inputs: {x: top.out}\n"
        "    with: {run: 'tr a-z A-Z < \"$SLUICE_INPUT_x\" > \"$SLUICE_OUTPUT_y\"', "
        "outputs: {y: y}}\n"
        "  fails: {uses: shell, with: {run: 'exit 3'}}\n"
        "  end: {uses: note, inputs: {a: up.y}, with: {tag: end}}\n"
        "  never: {uses: note, after: fails, with: {tag: never}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_expect_eq(o.status, 1);
    cr_expect_str_eq(o.trace, "start top\ndone top\nstart fails\nfailed fails\nskipped never\n"
                              "start up\ndone up\nstart end\ndone end\nrun failed\n");
    cr_expect(strstr(o.events, "the command exited with status 3"), "%s", o.events);
    cr_expect_str_eq(calls, "top end ");
    outcome_free(&o);
    pipeline_free(p);
}

/* ---- steps in a process of their own ---- */

/* teststeps.so beside this file's plugin: 'sluice exec' loads a plugin by
 * its file, which this program is not. */
static void load_teststeps(void) {
    diag_list d = DIAG_LIST_INIT;
    const plugin_lib *lib = NULL;
    cr_assert_eq(registry_load_file(&reg, SLUICE_TEST_PLUGINS "/good/teststeps.so", &d, &lib), 0);
    cr_assert_not_null(lib, "%s", d.n ? d.items[0].msg : "");
    diag_clear(&d);
}

Test(sched, steps_in_their_own_process_report_back_over_the_pipe) {
    load_teststeps();
    static const char yaml[] =
        "pipeline: isolated\n"
        "steps:\n"
        "  make: {uses: emit, isolation: process, with: {text: hello}}\n"
        "  copy: {uses: echo, isolation: process, inputs: {in: make.out}, with: {prefix: '> '}}\n"
        "  bad: {uses: fail, isolation: process, with: {reason: 'in a child'}}\n"
        "  slow: {uses: sleep, isolation: process, timeout: 200ms, with: {ms: 60000}}\n"
        "  after: {uses: note, inputs: {a: copy.out}, with: {tag: after}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_expect_eq(o.status, 1);
    cr_expect_str_eq(o.trace,
                     "start make\ndone make\nstart bad\nfailed bad\nstart slow\n"
                     "failed slow\nstart copy\ndone copy\nstart after\ndone after\n"
                     "run failed\n",
                     "%s", o.events);
    /* the child's log lines, metric and failure came back as events */
    cr_expect(strstr(o.events, "\"message\" : \"wrote 6 bytes\""), "%s", o.events);
    cr_expect(strstr(o.events, "\"key\" : \"bytes\", \"value\" : 6.0"), "%s", o.events);
    cr_expect(strstr(o.events, "\"error\" : \"failed on purpose: in a child\""), "%s", o.events);
    cr_expect(strstr(o.events, "\"error\" : \"timed out after 200ms"), "%s", o.events);
    cr_expect_str_eq(calls, "after ");
    outcome_free(&o);
    pipeline_free(p);
}

/* ---- interruption ---- */

Test(sched, an_interrupt_stops_the_running_step_and_cancels_the_rest) {
    static const char yaml[] = "pipeline: stop\n"
                               "steps:\n"
                               "  top: {uses: note, with: {tag: top}}\n"
                               "  stop: {uses: interrupt, inputs: {a: top.out}}\n"
                               "  after: {uses: note, inputs: {a: stop.out}, with: {tag: after}}\n"
                               "  other: {uses: note, inputs: {a: top.out}, with: {tag: other}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_expect_eq(o.status, 130, "128 + SIGINT");
    /* stop and other became ready together, stop first: other never starts
     * and is cancelled; after, downstream of the cancelled stop, skipped */
    cr_expect_str_eq(o.trace,
                     "start top\ndone top\nstart stop\ncancelled stop\n"
                     "skipped after\ncancelled other\nrun interrupted\n",
                     "%s", o.events);
    cr_expect(strstr(o.events, "\"error\" : \"upstream step 'stop' was cancelled\""), "%s",
              o.events);
    cr_expect(strstr(o.events, "\"error\" : \"not started: the run was interrupted\""), "%s",
              o.events);
    cr_expect_str_eq(calls, "top interrupt ");
    outcome_free(&o);
    pipeline_free(p);
}

/* ---- the plan ---- */

Test(sched, the_plan_says_what_would_run_and_what_the_cache_has) {
    pipeline *p = load(diamond, NULL, 0);
    plan_step steps[5];
    char err[256] = "";
    cr_assert_eq(plan_pipeline(p, store, 0, steps, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < p->n_steps; i++) {
        cr_expect_eq(steps[i].runs, 1, "%s", p->steps[i].id);
        cr_expect_neq(steps[i].why[0], '\0');
    }
    outcome o = run(p, (run_options){0});
    cr_assert_eq(o.status, 0);
    cr_assert_eq(plan_pipeline(p, store, 0, steps, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < p->n_steps; i++) {
        char from[128];
        snprintf(from, sizeof(from), "%s/%s", o.run_id, p->steps[i].id);
        cr_expect_eq(steps[i].runs, 0, "%s: %s", p->steps[i].id, steps[i].why);
        cr_expect_str_eq(steps[i].from, from);
        cr_expect_eq(strlen(steps[i].key), 64);
    }
    cr_assert_eq(plan_pipeline(p, store, 1, steps, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(steps[0].runs, 1, "no_cache: everything runs");
    cr_expect_str_eq(calls, "top alone left right join ", "planning runs nothing");
    outcome_free(&o);
    pipeline_free(p);
}

Test(sched, the_plan_names_the_parameter_that_changed) {
    static const char yaml[] = "pipeline: why\n"
                               "params: {t: one}\n"
                               "steps:\n"
                               "  s: {uses: note, with: {tag: '${params.t}'}}\n"
                               "  u: {uses: note, inputs: {a: s.out}, with: {tag: u}}\n";
    pipeline *p = load(yaml, NULL, 0);
    outcome o = run(p, (run_options){0});
    cr_assert_eq(o.status, 0);
    pipeline_free(p);
    const char *over[] = {"t=two"};
    p = load(yaml, over, 1);
    plan_step steps[2];
    char err[256] = "";
    cr_assert_eq(plan_pipeline(p, store, 0, steps, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(steps[0].runs, 1);
    /* (sluice status adds which pipeline parameter it came from) */
    char since[96];
    snprintf(since, sizeof(since), "since run %s", o.run_id);
    cr_expect(strstr(steps[0].why, "parameter 'tag' changed") && strstr(steps[0].why, since), "%s",
              steps[0].why);
    cr_expect_eq(steps[1].runs, 1, "its input will change");
    outcome_free(&o);
    pipeline_free(p);
}

Test(sched, the_plan_of_a_store_that_cannot_be_read_fails_with_why) {
    pipeline *p = load(diamond, NULL, 0);
    char meta[160];
    snprintf(meta, sizeof(meta), "%s/meta", store);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && printf garbage > '%s/data.mdb'", meta, meta);
    cr_assert_eq(system(cmd), 0);
    plan_step steps[5];
    char err[512] = "";
    cr_expect_lt(plan_pipeline(p, store, 0, steps, err, sizeof(err)), 0);
    cr_expect(strstr(err, "damaged") != NULL, "%s", err);
    pipeline_free(p);
}
