/* slurm.c - the Slurm runner (docs/slurm.md): a step as a batch job.
 *
 * A step on Slurm is submitted with 'sbatch --parsable' as a job script in
 * its attempt's folder (on the store, a path the nodes see too): a shell
 * step's command, or 'sluice exec' reading the task manifest from a file
 * and writing its events to another, which the orchestrator reads once the
 * job ended (it stays the only writer of the metadata store). The state of
 * every job of the run comes from ONE batched query per cycle on a libuv
 * timer: 'sacct -j ID,ID,...', or without accounting 'scontrol -o show
 * job'; the interval backs off while nothing changes. A query that fails is
 * an outage, waited out: only Slurm's word ends a job. The exit code is
 * Slurm's. PREEMPTED and NODE_FAIL jobs are submitted again (up to
 * SLURM_MAX_REQUEUES times), then the step's retries apply. sbatch, sacct,
 * scontrol and scancel are found in PATH. */
#include "run_internal.h"

#include <ctype.h>

#define SLURM_POLL_MIN_MS 200
#define SLURM_POLL_MAX_MS 5000
#define SLURM_MAX_REQUEUES 3
/* Polls a job may be missing from the answers before it counts as lost
 * (accounting lags behind sbatch; scontrol forgets jobs after MinJobAge). */
#define SLURM_MAX_UNSEEN 100
/* First attempts of a fan-out step's instances launched within this many
 * ms of each other go as one job array (their folders are made on the
 * thread pool, so one scheduling pass reaches here over a few ms). */
#define SLURM_GATHER_MS 50

typedef struct slurm_runner {
    run *r;
    uv_timer_t timer;
    int timer_ready;
    attempt *jobs; /* submitted, not yet ended */
    int polling;   /* a query is running */
    child poll;
    buf out, err;    /* the query's standard output and error */
    int no_sacct;    /* accounting is off: scontrol instead */
    uint64_t delay;  /* the next poll's delay, backing off */
    int outage_said; /* a failing query was logged once */
    uv_timer_t gather_timer;
    attempt *gathered; /* fan-out instances waiting to go as one array */
} slurm_runner;

/* A small command's child and output, freed when it ends. */
typedef struct slurm_cmd {
    child ch;
    attempt *at;     /* sbatch: the attempt it submits; NULL for scancel */
    attempt **tasks; /* an array's sbatch: its attempts by task index (owned) */
    size_t n_tasks;
    buf out, err;
} slurm_cmd;

int sched_slurm_step(const run *r, const step *s) {
    if (sched_is_builtin(s))
        return 0; /* promote and deploy act on the run's own metadata */
    const char *runner = s->runner ? s->runner : r->p->settings.runner;
    return runner && strcmp(runner, "slurm") == 0;
}

static void poll_now(slurm_runner *sl, uint64_t delay);

static slurm_runner *runner_of(run *r) {
    if (r->slurm)
        return r->slurm;
    slurm_runner *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return NULL;
    sl->r = r;
    sl->delay = SLURM_POLL_MIN_MS;
    if (uv_timer_init(&r->loop, &sl->timer) != 0) {
        free(sl);
        return NULL;
    }
    sl->timer.data = sl;
    sl->timer_ready = 1;
    uv_timer_init(&r->loop, &sl->gather_timer); /* only fails for a bad loop, as above */
    sl->gather_timer.data = sl;
    r->slurm = sl;
    return sl;
}

void sched_slurm_free(run *r) {
    if (!r->slurm)
        return;
    if (r->slurm->polling) { /* its child's callback may still come: left to the exit */
        r->slurm = NULL;
        return;
    }
    buf_free(&r->slurm->out);
    buf_free(&r->slurm->err);
    free(r->slurm);
    r->slurm = NULL;
}

/* ---- the job script --------------------------------------------------- */

/* s in single quotes for sh. */
static void sh_quote(buf *b, const char *s) {
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            buf_printf(b, "'\\''");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

static const char *attempt_file(attempt *at, const char *name) {
    return arena_printf(&at->a, "%s/%s", at->dir, name);
}

static int write_file(const char *path, const char *data, size_t len, mode_t mode) {
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    int rc = fwrite(data, 1, len, f) == len ? 0 : -EIO;
    if (fclose(f) != 0 && !rc)
        rc = -errno;
    if (!rc && chmod(path, mode) != 0)
        rc = -errno;
    return rc;
}

/* The job script: a shell step's command in its folder, or 'sluice exec'
 * with the manifest on stdin and its events (fd 3) into a file. */
static int write_script(attempt *at, const char *path, int exports) {
    buf b = BUF_INIT;
    buf_printf(&b, "#!/bin/sh\n# sluice run %s, step %s, attempt %d\ncd ", at->r->run_id,
               at->sr->s->id, at->number);
    sh_quote(&b, at->dir);
    buf_printf(&b, " || exit 1\n");
    int rc = 0;
    if (exports && !at->sr->s->impl) {
        /* A job array's tasks share sbatch's environment: each sets its own
         * variables, those that differ from this process's. */
        char **env = sched_shell_env(at);
        if (!env)
            rc = -ENOMEM;
        for (size_t i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq || eq == env[i])
                continue;
            char name[256];
            size_t n = (size_t)(eq - env[i]);
            if (n >= sizeof(name) || isdigit((unsigned char)env[i][0]) ||
                strspn(env[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") <
                    n)
                continue; /* not a name sh can export */
            memcpy(name, env[i], n);
            name[n] = '\0';
            const char *now = getenv(name);
            if (now && strcmp(now, eq + 1) == 0)
                continue;
            buf_printf(&b, "export %s=", name);
            sh_quote(&b, eq + 1);
            buf_putc(&b, '\n');
        }
    }
    if (at->sr->s->impl) {
        bson_t doc = BSON_INITIALIZER;
        size_t len = 0;
        rc = task_to_bson(&at->t, &doc);
        char *json = rc == 0 ? bson_as_relaxed_extended_json(&doc, &len) : NULL;
        bson_destroy(&doc);
        const char *manifest = attempt_file(at, "slurm-task.json");
        if (!rc && (!json || !manifest))
            rc = -ENOMEM;
        if (!rc)
            rc = write_file(manifest, json, len, 0600);
        bson_free(json);
        buf_printf(&b, "exec ");
        sh_quote(&b, at->r->o->exe);
        buf_printf(&b, " exec <slurm-task.json 3>slurm-events.jsonl\n");
    } else {
        const char *cmd;
        int strict;
        rc = sched_shell_command(at, &cmd, &strict);
        if (!rc) {
            buf_printf(&b, "exec /bin/sh %s-c ", strict ? "-eu " : "");
            sh_quote(&b, cmd);
            buf_putc(&b, '\n');
        }
    }
    if (!rc)
        rc = buf_failed(&b) ? -ENOMEM : write_file(path, b.data, b.len, 0700);
    buf_free(&b);
    return rc;
}

/* ---- submission ------------------------------------------------------- */

static void cmd_line(child *c, int stream, const char *line, size_t len) {
    slurm_cmd *sc = c->data;
    buf *b = stream == 1 ? &sc->out : &sc->err;
    if (b->len < 65536) {
        buf_append(b, line, len);
        buf_putc(b, '\n');
    }
}

static void add_opt(char **args, size_t *k, arena *a, const char *flag, const char *v) {
    if (v && *v)
        args[(*k)++] = arena_printf(a, "%s=%s", flag, v);
}

static void submitted(child *c, int64_t status, int sig);

/* sbatch's arguments for at's step, in at's arena; NULL when out of
 * memory. array: a job array's --array spec (NULL for one job), whose
 * script and output are in at's folder (each task writes its own). */
static char **sbatch_args(attempt *at, const char *array) {
    int n_array = array != NULL;
    run *r = at->r;
    const step *s = at->sr->s;
    const slurm_options *d = &r->p->settings.slurm, *o = &s->slurm;
    size_t cap = 20 + d->n_extra + o->n_extra;
    char **args = arena_calloc(&at->a, cap, sizeof(char *));
    const char *script = attempt_file(at, n_array ? "slurm-array.sh" : "slurm-job.sh");
    const char *out = n_array ? "slurm-array.out" : "slurm.out";
    const char *err = n_array ? "slurm-array.out" : "slurm.err";
    if (!args || !script)
        return NULL;
    size_t k = 0;
    args[k++] = "sbatch";
    args[k++] = "--parsable";
    args[k++] = "--no-requeue"; /* sluice resubmits a preempted job itself */
    args[k++] =
        arena_printf(&at->a, "--job-name=sluice-%s", s->group && n_array ? s->group : s->id);
    if (n_array)
        args[k++] = arena_printf(&at->a, "--array=%s", array);
    args[k++] = arena_printf(&at->a, "--chdir=%s", at->dir);
    args[k++] = arena_printf(&at->a, "--output=%s/%s", at->dir, out);
    args[k++] = arena_printf(&at->a, "--error=%s/%s", at->dir, err);
    add_opt(args, &k, &at->a, "--partition", o->partition ? o->partition : d->partition);
    add_opt(args, &k, &at->a, "--account", o->account ? o->account : d->account);
    add_opt(args, &k, &at->a, "--time", o->time ? o->time : d->time);
    add_opt(args, &k, &at->a, "--mem", o->mem ? o->mem : d->mem);
    add_opt(args, &k, &at->a, "--gpus", o->gpus ? o->gpus : d->gpus);
    int cpus = o->cpus_per_task ? o->cpus_per_task : d->cpus_per_task;
    if (cpus)
        args[k++] = arena_printf(&at->a, "--cpus-per-task=%d", cpus);
    for (size_t i = 0; i < d->n_extra; i++)
        args[k++] = (char *)d->extra[i];
    for (size_t i = 0; i < o->n_extra; i++)
        args[k++] = (char *)o->extra[i];
    args[k++] = (char *)script;
    for (size_t i = 0; i < k; i++)
        if (!args[i])
            return NULL;
    return args;
}

static int submit(attempt *at) {
    run *r = at->r;
    const step *s = at->sr->s;
    char **args = sbatch_args(at, NULL);
    if (!args)
        return -ENOMEM;
    /* A shell step's variables travel in sbatch's environment (--export
     * is ALL by default); a plugin step's are in its manifest. */
    char **env = s->impl ? NULL : sched_shell_env(at);
    if (!s->impl && !env)
        return -ENOMEM;
    slurm_cmd *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->at = at;
    child_options co = {.file = "sbatch", .args = args, .env = env, .cwd = at->dir};
    child_spawn(&sc->ch, &r->reaper, &co, cmd_line, submitted, sc);
    return 0;
}

/* The last line of text, without its newline, for a message. */
static const char *last_line(buf *b) {
    while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' '))
        b->len--;
    buf_putc(b, '\0');
    if (buf_failed(b))
        return "";
    b->len--;
    char *nl = strrchr(b->data, '\n');
    return nl ? nl + 1 : b->data;
}

static void end_attempt(attempt *at, int ok, const char *why) {
    run *r = at->r;
    sched_attempt_done(at, ok, why);
    sched_free_attempt(at);
    sched_maybe_finish(r);
}

static void array_submitted(slurm_cmd *sc, const char *id, size_t n, const char *failed);

static void submitted(child *c, int64_t status, int sig) {
    slurm_cmd *sc = c->data;
    attempt *at = sc->at;
    run *r = at->r;
    char why[600];
    const char *id = sc->out.len ? sc->out.data : "";
    size_t n = 0;
    while (isdigit((unsigned char)id[n]) || id[n] == '_')
        n++;
    if (c->spawn_error || sig || status != 0 || n == 0 || n >= sizeof(at->job_id)) {
        if (c->spawn_error)
            snprintf(why, sizeof(why), "could not start sbatch: %s", uv_strerror(c->spawn_error));
        else if (sig)
            snprintf(why, sizeof(why), "sbatch was stopped (%s)", strsignal(sig));
        else
            snprintf(why, sizeof(why), "sbatch failed (status %lld): %s", (long long)status,
                     sc->err.len ? last_line(&sc->err) : "no job id");
        if (sc->tasks) {
            array_submitted(sc, NULL, 0, why);
            return;
        }
        buf_free(&sc->out);
        buf_free(&sc->err);
        free(sc);
        end_attempt(at, 0, why);
        return;
    }
    if (sc->tasks) {
        array_submitted(sc, id, n, NULL);
        return;
    }
    memcpy(at->job_id, id, n);
    at->job_id[n] = '\0';
    buf_free(&sc->out);
    buf_free(&sc->err);
    free(sc);
    step_run *sr = at->sr;
    snprintf(sr->job_id, sizeof(sr->job_id), "%s", at->job_id);
    sr->job_node[0] = '\0';
    snprintf(why, sizeof(why), "submitted to Slurm as job %s", at->job_id);
    sched_log(sr, SL_LOG_INFO, why);
    slurm_runner *sl = r->slurm;
    at->job_next = sl->jobs;
    sl->jobs = at;
    if (at->scancelled) /* stopped while sbatch ran: now it has an id */
        sched_slurm_cancel(at);
    poll_now(sl, SLURM_POLL_MIN_MS);
}

/* The job array's tasks: each attempt's job is ID_i; or each failed. */
static void array_submitted(slurm_cmd *sc, const char *id, size_t n, const char *failed) {
    slurm_runner *sl = sc->tasks[0]->r->slurm;
    if (!failed && n + 12 > sizeof(sc->tasks[0]->job_id))
        failed = "sbatch said a job id too long";
    for (size_t i = 0; i < sc->n_tasks; i++) {
        attempt *at = sc->tasks[i];
        if (failed) {
            end_attempt(at, 0, failed);
            continue;
        }
        size_t index = at->sr->s->instance;
        snprintf(at->job_id, sizeof(at->job_id), "%.*s_%zu", (int)n, id, index);
        step_run *sr = at->sr;
        snprintf(sr->job_id, sizeof(sr->job_id), "%s", at->job_id);
        sr->job_node[0] = '\0';
        char why[128];
        snprintf(why, sizeof(why), "submitted to Slurm as task %zu of job array %.*s (%s)", index,
                 (int)n, id, at->job_id);
        sched_log(sr, SL_LOG_INFO, why);
        at->job_next = sl->jobs;
        sl->jobs = at;
    }
    /* Stopped while sbatch ran: now they have ids (the array is scancelled once). */
    for (size_t i = 0; !failed && i < sc->n_tasks; i++)
        if (sc->tasks[i]->scancelled)
            sched_slurm_cancel(sc->tasks[i]);
    buf_free(&sc->out);
    buf_free(&sc->err);
    free(sc->tasks);
    free(sc);
    if (!failed)
        poll_now(sl, SLURM_POLL_MIN_MS);
}

/* One sbatch --array for tasks (n >= 2 instances of one fan-out step,
 * their scripts written): task i cds to tasks[i]'s folder and runs its
 * script there. On success tasks is taken (freed once sbatch ended). */
static int submit_array(attempt **tasks, size_t n) {
    attempt *first = tasks[0];
    buf b = BUF_INIT;
    buf_printf(&b, "#!/bin/sh\n# sluice run %s, step %s: %zu instances as one job array\n",
               first->r->run_id, first->sr->s->group, n);
    buf_printf(&b, "case \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "%zu) d=", tasks[i]->sr->s->instance);
        sh_quote(&b, tasks[i]->dir);
        buf_printf(&b, " ;;\n");
    }
    buf_printf(&b, "*) echo \"no task $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;\nesac\n"
                   "cd \"$d\" || exit 1\nexec ./slurm-job.sh >slurm.out 2>slurm.err\n");
    const char *path = attempt_file(first, "slurm-array.sh");
    int rc = buf_failed(&b) || !path ? -ENOMEM : write_file(path, b.data, b.len, 0700);
    /* The task ids are the instances' indices (sorted), runs as ranges: 0-12,14-19. */
    buf_reset(&b);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && tasks[j]->sr->s->instance == tasks[j - 1]->sr->s->instance + 1;)
            j++;
        buf_printf(&b, "%s%zu", i ? "," : "", tasks[i]->sr->s->instance);
        if (j - i > 1)
            buf_printf(&b, "-%zu", tasks[j - 1]->sr->s->instance);
    }
    const char *spec = buf_failed(&b) ? NULL : arena_printf(&first->a, "%s", buf_str(&b));
    buf_free(&b);
    char **args = rc || !spec ? NULL : sbatch_args(first, spec);
    slurm_cmd *sc = args ? calloc(1, sizeof(*sc)) : NULL;
    if (!sc)
        return rc ? rc : -ENOMEM;
    sc->at = first;
    sc->tasks = tasks;
    sc->n_tasks = n;
    child_options co = {.file = "sbatch", .args = args, .cwd = first->dir};
    child_spawn(&sc->ch, &first->r->reaper, &co, cmd_line, submitted, sc);
    return 0;
}

static int by_instance(const void *a, const void *b) {
    size_t x = (*(attempt *const *)a)->sr->s->instance, y = (*(attempt *const *)b)->sr->s->instance;
    return x < y ? -1 : x > y;
}

/* The gathered instances, by fan-out step: one array each (a lone one
 * goes as a plain job). */
static void gather_cb(uv_timer_t *t) {
    slurm_runner *sl = t->data;
    attempt *list = NULL;
    for (attempt *at = sl->gathered, *next; at; at = next) { /* back to launch order */
        next = at->job_next;
        at->job_next = list;
        list = at;
    }
    sl->gathered = NULL;
    while (list) {
        const char *group = list->sr->s->group;
        size_t n = 0;
        for (attempt *at = list; at; at = at->job_next)
            n += strcmp(at->sr->s->group, group) == 0;
        attempt **tasks = malloc(n * sizeof(*tasks));
        attempt **rest = &list;
        size_t k = 0;
        for (attempt *at = list, *next; at; at = next) {
            next = at->job_next;
            if (strcmp(at->sr->s->group, group) != 0) {
                rest = &at->job_next;
                continue;
            }
            *rest = next;
            at->job_next = NULL;
            if (tasks)
                tasks[k++] = at;
            else
                end_attempt(at, 0, "could not submit: out of memory");
        }
        if (k > 1)
            qsort(tasks, k, sizeof(*tasks), by_instance);
        int rc = k == 1 ? submit(tasks[0]) : k > 1 ? submit_array(tasks, k) : 0;
        if (rc) {
            char why[160];
            snprintf(why, sizeof(why), "could not submit: %s", strerror(-rc));
            for (size_t i = 0; i < k; i++)
                end_attempt(tasks[i], 0, why);
        }
        if (k <= 1 || rc)
            free(tasks);
    }
}

int sched_slurm_launch(attempt *at) {
    slurm_runner *sl = runner_of(at->r);
    if (!sl)
        return -ENOMEM;
    const step *s = at->sr->s;
    int gather = s->group && s->n_instances > 1 && at->number == 1;
    int rc = write_script(at, attempt_file(at, "slurm-job.sh"), gather);
    if (rc)
        return rc;
    if (!gather)
        return submit(at); /* a retry goes alone */
    at->job_next = sl->gathered;
    sl->gathered = at;
    uv_timer_start(&sl->gather_timer, gather_cb, SLURM_GATHER_MS, 0);
    return 0;
}

/* ---- cancelling ------------------------------------------------------- */

static void cmd_done(child *c, int64_t status, int sig) {
    slurm_cmd *sc = c->data;
    (void)status;
    (void)sig;
    buf_free(&sc->out);
    buf_free(&sc->err);
    free(sc);
}

void sched_slurm_cancel(attempt *at) {
    at->scancelled = 1;
    if (!at->job_id[0])
        return; /* sbatch is running: submitted() cancels the job it made */
    char target[32];
    snprintf(target, sizeof(target), "%s", at->job_id);
    char *us = strchr(target, '_');
    if (us && at->r->cancelling && at->r->slurm) {
        /* The run stops: its job array at once, with one scancel. */
        size_t n = (size_t)(us - target) + 1;
        for (attempt *o = at->r->slurm->jobs; o; o = o->job_next)
            if (o->array_scancelled && strncmp(o->job_id, target, n) == 0)
                return;
        at->array_scancelled = 1;
        *us = '\0';
    }
    slurm_cmd *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return;
    char *args[] = {"scancel", target, NULL};
    child_options co = {.file = "scancel", .args = args};
    child_spawn(&sc->ch, &at->r->reaper, &co, cmd_line, cmd_done, sc);
    sched_log(at->sr, SL_LOG_WARN, "scancel: stopping its Slurm job");
    if (at->r->slurm)
        poll_now(at->r->slurm, SLURM_POLL_MIN_MS);
}

static void unlink_job(slurm_runner *sl, attempt *at);
static void end_attempt(attempt *at, int ok, const char *why);

void sched_slurm_forget(attempt *at) {
    if (!at->job_id[0])
        return; /* sbatch is running: its end ends the attempt */
    if (at->r->slurm)
        unlink_job(at->r->slurm, at);
    char why[128];
    snprintf(why, sizeof(why), "stopped: scancel %s sent, Slurm's answer not awaited", at->job_id);
    end_attempt(at, 0, why);
}

/* ---- the end of a job ------------------------------------------------- */

/* Copies a file's lines into the step's log (the job's output), or hands
 * them to the event reader. */
static void read_lines(attempt *at, const char *path, int level, int events) {
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if (events)
            sched_child_event(at, line, (size_t)n);
        else
            sched_log(at->sr, level, line);
    }
    free(line);
    fclose(f);
}

typedef enum { JS_WAIT, JS_DONE, JS_FAIL, JS_REQUEUE } job_verdict;

/* Slurm's state names (sacct prints "CANCELLED by UID"). */
static job_verdict verdict_of(const char *state) {
    static const char *const waiting[] = {
        "PENDING",   "RUNNING",   "CONFIGURING",  "COMPLETING",  "REQUEUED",
        "RESIZING",  "SUSPENDED", "REQUEUE_HOLD", "REQUEUE_FED", "STAGE_OUT",
        "SIGNALING", "STOPPED",   "RESV_DEL_HOLD"};
    for (size_t i = 0; i < sizeof(waiting) / sizeof(waiting[0]); i++)
        if (strncmp(state, waiting[i], strlen(waiting[i])) == 0)
            return JS_WAIT;
    if (strcmp(state, "COMPLETED") == 0)
        return JS_DONE;
    if (strncmp(state, "PREEMPTED", 9) == 0 || strncmp(state, "NODE_FAIL", 9) == 0)
        return JS_REQUEUE;
    return JS_FAIL; /* FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE */
}

static void unlink_job(slurm_runner *sl, attempt *at) {
    for (attempt **p = &sl->jobs; *p; p = &(*p)->job_next)
        if (*p == at) {
            *p = at->job_next;
            break;
        }
    at->job_next = NULL;
}

/* The job ended in state with exit code "CODE:SIGNAL" on node. */
static void job_ended(slurm_runner *sl, attempt *at, const char *state, const char *exit_code,
                      job_verdict v) {
    unlink_job(sl, at);
    char why[700];
    if (v == JS_REQUEUE && !at->scancelled && at->requeues < SLURM_MAX_REQUEUES) {
        at->requeues++;
        snprintf(why, sizeof(why), "Slurm job %s ended %s: submitting it again (%d of %d)",
                 at->job_id, state, at->requeues, SLURM_MAX_REQUEUES);
        sched_log(at->sr, SL_LOG_WARN, why);
        at->job_id[0] = '\0';
        at->unseen = 0;
        int rc = submit(at);
        if (rc) {
            snprintf(why, sizeof(why), "could not submit again: %s", strerror(-rc));
            end_attempt(at, 0, why);
        }
        return;
    }
    int code = 0, sig = 0;
    if (exit_code)
        sscanf(exit_code, "%d:%d", &code, &sig);
    read_lines(at, attempt_file(at, "slurm.out"), SL_LOG_INFO, 0);
    read_lines(at, attempt_file(at, "slurm.err"), SL_LOG_WARN, 0);
    int ok = v == JS_DONE && code == 0 && sig == 0;
    if (at->sr->s->impl) {
        read_lines(at, attempt_file(at, "slurm-events.jsonl"), 0, 1);
        if (ok && !(at->reported_done && at->reported_rc == SL_OK))
            ok = 0;
    } else {
        sched_read_shell_metrics(at);
    }
    if (ok) {
        end_attempt(at, 1, NULL);
        return;
    }
    const char *said = at->reported_done && at->reported_error ? at->reported_error : NULL;
    if (v == JS_DONE && !said)
        snprintf(why, sizeof(why), "Slurm job %s completed without the step reporting its end",
                 at->job_id);
    else if (strncmp(state, "FAILED", 6) == 0 && sig)
        snprintf(why, sizeof(why), "Slurm job %s FAILED: killed by signal %d", at->job_id, sig);
    else if (strncmp(state, "FAILED", 6) == 0)
        snprintf(why, sizeof(why), "Slurm job %s FAILED: exit code %d%s%s", at->job_id, code,
                 said ? ": " : "", said ? said : "");
    else if (strncmp(state, "TIMEOUT", 7) == 0)
        snprintf(why, sizeof(why), "Slurm job %s reached its time limit (TIMEOUT)", at->job_id);
    else if (strncmp(state, "OUT_OF_MEMORY", 13) == 0)
        snprintf(why, sizeof(why), "Slurm job %s ran out of memory (OUT_OF_MEMORY)", at->job_id);
    else if (strncmp(state, "CANCELLED", 9) == 0)
        snprintf(why, sizeof(why), "Slurm job %s was cancelled%s", at->job_id,
                 at->scancelled ? " (scancel by sluice)" : " (CANCELLED outside sluice)");
    else
        snprintf(why, sizeof(why), "Slurm job %s ended %s, exit code %d", at->job_id, state, code);
    end_attempt(at, 0, why);
}

/* ---- polling ---------------------------------------------------------- */

static attempt *find_job(slurm_runner *sl, const char *id, size_t len) {
    for (attempt *at = sl->jobs; at; at = at->job_next)
        if (strlen(at->job_id) == len && strncmp(at->job_id, id, len) == 0)
            return at;
    return NULL;
}

/* The value of KEY= in an 'scontrol -o' line, into out. */
static int field(const char *line, const char *key, char *out, size_t size) {
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p++)
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            const char *v = p + kl + 1, *end = strchr(v, ' ');
            size_t n = end ? (size_t)(end - v) : strlen(v);
            if (n >= size)
                n = size - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
    return 0;
}

/* One job's line: the state it reports; returns 1 when it changed something. */
static int take(slurm_runner *sl, attempt *at, const char *state, const char *exit_code,
                const char *node) {
    step_run *sr = at->sr;
    at->unseen = -1; /* seen this cycle */
    if (node && *node && strcmp(node, "None") && strcmp(node, "None assigned") &&
        strcmp(node, "(null)"))
        snprintf(sr->job_node, sizeof(sr->job_node), "%s", node);
    job_verdict v = verdict_of(state);
    if (v == JS_WAIT)
        return 0;
    job_ended(sl, at, state, exit_code, v);
    return 1;
}

/* index is in ranges ("2-19", "0,3-5", "2-19%4"). */
static int in_ranges(const char *ranges, unsigned long index) {
    for (const char *p = ranges; *p && *p != '%';) {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (end == p)
            return 0;
        if (*end == '-')
            hi = strtoul(end + 1, &end, 10);
        if (index >= lo && index <= hi)
            return 1;
        p = *end == ',' ? end + 1 : end;
        if (*p && *p != '%' && !isdigit((unsigned char)*p))
            return 0;
    }
    return 0;
}

/* The tasks of job array id not started yet share one line (ranges of
 * their indices): waiting, or all ended alike (cancelled while pending). */
static int take_pending(slurm_runner *sl, const char *id, const char *ranges, const char *state,
                        const char *exit_code) {
    size_t n = strlen(id);
    int changed = 0;
    for (attempt *at = sl->jobs, *next; at; at = next) {
        next = at->job_next;
        if (strncmp(at->job_id, id, n) == 0 && at->job_id[n] == '_' &&
            in_ranges(ranges, strtoul(at->job_id + n + 1, NULL, 10)))
            changed |= take(sl, at, state, exit_code, NULL);
    }
    return changed;
}

static int parse_answer(slurm_runner *sl) {
    int changed = 0;
    buf_putc(&sl->out, '\0');
    if (buf_failed(&sl->out))
        return 0;
    char *save = NULL;
    for (char *line = strtok_r(sl->out.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char state[64], code[32], node[128], id[40];
        attempt *at;
        if (sl->no_sacct) {
            if (!field(line, "JobId", id, sizeof(id)) ||
                !field(line, "JobState", state, sizeof(state)))
                continue;
            if (!field(line, "ExitCode", code, sizeof(code)))
                snprintf(code, sizeof(code), "0:0");
            if (!field(line, "NodeList", node, sizeof(node)))
                node[0] = '\0';
            char array[16], task_id[16];
            if (field(line, "ArrayJobId", array, sizeof(array)) &&
                field(line, "ArrayTaskId", task_id, sizeof(task_id))) {
                if (task_id[strspn(task_id, "0123456789")]) { /* "2-19": tasks not started */
                    changed |= take_pending(sl, array, task_id, state, code);
                    continue;
                }
                snprintf(id, sizeof(id), "%s_%s", array, task_id);
            }
            if ((at = find_job(sl, id, strlen(id))))
                changed |= take(sl, at, state, code, node);
            continue;
        }
        /* JobID|State|ExitCode|NodeList */
        char *f[4] = {line, NULL, NULL, NULL};
        for (int i = 1; i < 4 && f[i - 1]; i++) {
            char *bar = strchr(f[i - 1], '|');
            if (bar) {
                *bar = '\0';
                f[i] = bar + 1;
            }
        }
        if (!f[3] || strchr(f[0], '.'))
            continue; /* a step of a job (id.batch) */
        char *bracket = strstr(f[0], "_[");
        if (bracket) { /* "ID_[2-19]": an array's tasks not started */
            *bracket = '\0';
            changed |= take_pending(sl, f[0], bracket + 2, f[1], f[2]);
            continue;
        }
        if ((at = find_job(sl, f[0], strlen(f[0]))))
            changed |= take(sl, at, f[1], f[2], f[3]);
    }
    return changed;
}

static void poll_cb(uv_timer_t *t);
static void start_query(slurm_runner *sl);

static void schedule_next(slurm_runner *sl, int changed) {
    if (!sl->jobs)
        return;
    if (changed)
        sl->delay = SLURM_POLL_MIN_MS;
    else if ((sl->delay *= 2) > SLURM_POLL_MAX_MS)
        sl->delay = SLURM_POLL_MAX_MS;
    uv_timer_start(&sl->timer, poll_cb, sl->delay, 0);
}

static void queried(child *c, int64_t status, int sig) {
    slurm_runner *sl = c->data;
    sl->polling = 0;
    int changed = 0;
    if (c->spawn_error || sig || status != 0) {
        const char *e = sl->err.len ? last_line(&sl->err) : "";
        if (!sl->no_sacct && !c->spawn_error && strstr(e, "accounting storage is disabled")) {
            sl->no_sacct = 1; /* no accounting: ask the controller instead */
            changed = 1;
        } else if (!sl->outage_said) {
            /* An outage of sacct or slurmctld is waited out, said once per job. */
            char msg[600];
            snprintf(msg, sizeof(msg), "%s failed (%s): waiting for Slurm to answer",
                     sl->no_sacct ? "scontrol" : "sacct",
                     c->spawn_error ? uv_strerror(c->spawn_error) : e);
            for (attempt *at = sl->jobs; at; at = at->job_next)
                sched_log(at->sr, SL_LOG_WARN, msg);
            sl->outage_said = 1;
        }
    } else {
        sl->outage_said = 0;
        changed = parse_answer(sl);
        /* A job the answer left out: not yet in accounting, or forgotten. */
        for (attempt *at = sl->jobs, *next; at; at = next) {
            next = at->job_next;
            if (at->unseen < 0) {
                at->unseen = 0;
            } else if (++at->unseen > SLURM_MAX_UNSEEN) {
                job_ended(sl, at, "LOST", NULL, JS_FAIL);
                changed = 1;
            }
        }
    }
    buf_reset(&sl->out);
    buf_reset(&sl->err);
    schedule_next(sl, changed);
}

static void query_line(child *c, int stream, const char *line, size_t len) {
    slurm_runner *sl = c->data;
    buf *b = stream == 1 ? &sl->out : &sl->err;
    buf_append(b, line, len);
    buf_putc(b, '\n');
}

static void start_query(slurm_runner *sl) {
    if (sl->polling || !sl->jobs)
        return;
    run *r = sl->r;
    buf ids = BUF_INIT;
    buf_putc(&ids, ',');
    /* An array's tasks by the array's id, once: sacct -j ID_i leaves out
     * the line of the tasks not started (ID_[2-19]). */
    for (attempt *at = sl->jobs; at; at = at->job_next) {
        size_t n = strcspn(at->job_id, "_");
        char key[40];
        snprintf(key, sizeof(key), ",%.*s,", (int)n, at->job_id);
        if (!strstr(buf_str(&ids), key))
            buf_printf(&ids, "%.*s,", (int)n, at->job_id);
    }
    if (buf_failed(&ids)) {
        buf_free(&ids);
        schedule_next(sl, 0);
        return;
    }
    ids.data[--ids.len] = '\0'; /* the last comma */
    char *sacct[] = {"sacct",       "-X",         "-j", ids.data + 1,
                     "--parsable2", "--noheader", "-o", "JobID,State,ExitCode,NodeList",
                     NULL};
    char *scontrol[] = {"scontrol", "-o", "show", "job", NULL};
    child_options co = {.file = sl->no_sacct ? "scontrol" : "sacct",
                        .args = sl->no_sacct ? scontrol : sacct};
    sl->polling = 1;
    memset(&sl->poll, 0, sizeof(sl->poll));
    child_spawn(&sl->poll, &r->reaper, &co, query_line, queried, sl);
    buf_free(&ids);
}

static void poll_cb(uv_timer_t *t) { start_query(t->data); }

/* The next query in delay ms at most (sooner than a backed-off one). */
static void poll_now(slurm_runner *sl, uint64_t delay) {
    sl->delay = SLURM_POLL_MIN_MS;
    if (sl->polling)
        return;
    if (uv_is_active((uv_handle_t *)&sl->timer) && uv_timer_get_due_in(&sl->timer) <= delay)
        return;
    uv_timer_start(&sl->timer, poll_cb, delay, 0);
}
