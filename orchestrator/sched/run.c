#include "run.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "artifacts/store.h"
#include "cache.h"
#include "child.h"
#include "metadata/record.h"
#include "core/buf.h"
#include "core/fsutil.h"
#include "dag/ready.h"
#include "exec/host.h"
#include "exec/task.h"
#include "pipeline/check.h"
#include "pipeline/duration.h"
#include "plugins/registry.h"
#include "report.h"

extern char **environ;

#define KILL_GRACE_MS 500    /* SIGTERM to SIGKILL for a child */
#define INPROC_GRACE_MS 1000 /* for an in-process step to notice sl_cancelled() */
#define LOG_TAIL 10
#define MAX_BACKOFF_MS (3600 * 1000)

typedef struct run run;
typedef struct step_run step_run;

typedef enum { ATT_IN_PROCESS, ATT_PROCESS, ATT_SHELL } attempt_kind;

/* One attempt of one step; lives until its work or its child is over. */
typedef struct attempt {
    run *r;
    step_run *sr;
    int number;
    attempt_kind kind;
    arena a; /* the task's strings */
    task t;
    char *dir;
    /* in-process */
    uv_work_t work;
    host_ctx hc;
    int hc_ready;
    int rc;
    char *why;
    int abandoned;
    uv_fs_t mkdir_req;
    /* child */
    child ch;
    char *manifest;
    int reported_done, reported_rc;
    char *reported_error;
} attempt;

typedef enum { SR_WAITING, SR_RUNNING, SR_RETRY_WAIT, SR_FINISHED } sr_state;

struct step_run {
    run *r;
    uint32_t index;
    const step *s;
    sr_state state;
    int attempts_max, attempt_no;
    attempt *cur;
    double t_first;
    uv_timer_t timeout, retry, grace;
    int timed_out;
    FILE *log;
    int log_failed;
    char *dir;
    const char **out_names;
    char **out_paths; /* objects in the store, once the step succeeded */
    char (*out_hashes)[HASH_HEX_LEN + 1];
    size_t n_out;
    char key[HASH_HEX_LEN + 1]; /* the cache key; "" when it could not be made */
    bson_t key_parts;
    int has_parts;
    char cached_from[520];
    double wall_started;
    bson_t metrics; /* {"0": {key, value, index, attempt}, ...} as sl_metric() reports */
    int has_metrics;
    uint32_t n_metrics;
    char *tail[LOG_TAIL];
    unsigned tail_next;
};

/* An event from a step running on a worker thread. */
typedef enum { EV_LOG, EV_PROGRESS, EV_METRIC } event_kind;
typedef struct event {
    struct event *next;
    attempt *at;
    event_kind kind;
    int level;
    uint64_t a, b;
    double value;
    int64_t index;
    char text[];
} event;

typedef struct program {
    char *name, *path;
} program_path_entry;

struct run {
    uv_loop_t loop;
    pipeline *p;
    const run_options *o;
    dag g;
    dag_ready ready;
    step_run *steps;
    int jobs, running, retry_waiting;
    uint32_t *retry_queue;
    size_t rq_head, rq_tail;
    int cancelling, interrupts;
    uv_signal_t sigint, sigterm;
    child_reaper reaper;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_mutex_t mu;
    event *ev_head, *ev_tail;
    reporter rep;
    char run_id[48];
    char *run_dir;
    char pipeline_dir[4096]; /* absolute: shell steps run in their own folders */
    size_t n_done, n_failed, n_skipped, n_cancelled;
    int finished;
    size_t abandoned;
    double t0;
    program_path_entry *programs; /* PATH look-ups of shell steps' programs */
    size_t n_programs;
    artifact_store store;
    meta_db meta;
    int meta_open;
    uv_timer_t sync_timer; /* flushes metadata commits to disk now and then */
    size_t n_cached;
    double wall_t0;
    run_origin origin;
    /* --only/--from: which steps run (1), which only supply their latest
     * outputs (2: upstream of a selected step), which are left out (0). */
    unsigned char *selection;
    struct {
        const void *lib;
        char hash[HASH_HEX_LEN + 1];
    } plugin_hashes[64];
    size_t n_plugin_hashes;
};

static void schedule(run *r);
static void start_attempt(step_run *sr);
static int step_cacheable(const step_run *sr);
static void on_retry(uv_timer_t *t);

/* ---- logging --------------------------------------------------------- */

/* The step's log file, opened at its first line: a quiet step costs none. */
static FILE *log_file(step_run *sr) {
    if (!sr->log && !sr->log_failed) {
        char path[4096];
        snprintf(path, sizeof(path), "%s.log", sr->dir);
        if (!(sr->log = fopen(path, "a")))
            sr->log_failed = 1;
    }
    return sr->log;
}

/* msg with every secret of the pipeline replaced by ***, as CI systems mask
 * theirs: a step that prints one does not put it in a log. Returns msg
 * itself when it holds none, else b's text. */
static const char *mask_secrets(const pipeline *p, const char *msg, buf *b) {
    const char *out = msg;
    for (size_t i = 0; i < p->n_secrets; i++) {
        const char *secret = p->secrets[i];
        size_t len = strlen(secret);
        if (len < 3 || !strstr(out, secret)) /* too short to mask without noise */
            continue;
        buf next = BUF_INIT;
        for (const char *at = out, *hit; *at; at = hit + len) {
            hit = strstr(at, secret);
            if (!hit) {
                buf_puts(&next, at);
                break;
            }
            buf_append(&next, at, (size_t)(hit - at));
            buf_puts(&next, "***");
        }
        buf_free(b);
        *b = next;
        out = buf_str(b);
    }
    return out;
}

static void step_log(step_run *sr, int level, const char *raw) {
    static const char *const names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    int lv = level < 0 ? 0 : level > 3 ? 3 : level;
    buf masked = BUF_INIT;
    const char *msg = mask_secrets(sr->r->p, raw, &masked);
    if (log_file(sr)) {
        char t[32];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(t, sizeof(t), "%H:%M:%S", &tm);
        fprintf(sr->log, "%s.%03ld %s %s\n", t, ts.tv_nsec / 1000000, names[lv], msg);
        fflush(sr->log);
    }
    free(sr->tail[sr->tail_next % LOG_TAIL]);
    sr->tail[sr->tail_next % LOG_TAIL] = strdup(msg);
    sr->tail_next++;
    report_step_log(&sr->r->rep, sr->s->id, lv, msg);
    buf_free(&masked);
}

/* The last lines of the step's log, indented, for a failure report. */
static char *log_tail(step_run *sr) {
    buf b = BUF_INIT;
    unsigned n = sr->tail_next < LOG_TAIL ? sr->tail_next : LOG_TAIL;
    for (unsigned i = sr->tail_next - n; i < sr->tail_next; i++)
        if (sr->tail[i % LOG_TAIL])
            buf_printf(&b, "    | %s\n", sr->tail[i % LOG_TAIL]);
    if (sr->log && n)
        buf_printf(&b, "    (log: %s.log)\n", sr->dir);
    return buf_detach(&b);
}

/* ---- events from worker threads ------------------------------------- */

static void push_event(attempt *at, event_kind kind, int level, const char *text, uint64_t a,
                       uint64_t b, double val, int64_t index) {
    size_t len = text ? strlen(text) : 0;
    event *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return; /* an event lost to memory exhaustion; the step goes on */
    *e = (event){NULL, at, kind, level, a, b, val, index};
    memcpy(e->text, text ? text : "", len + 1);
    run *r = at->r;
    pthread_mutex_lock(&r->mu);
    if (r->ev_tail)
        r->ev_tail->next = e;
    else
        r->ev_head = e;
    r->ev_tail = e;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
}

static void sink_log(void *ud, int level, const char *msg) {
    push_event(ud, EV_LOG, level, msg, 0, 0, 0, 0);
}
static void sink_progress(void *ud, uint64_t done, uint64_t total) {
    push_event(ud, EV_PROGRESS, 0, NULL, done, total, 0, 0);
}
static void sink_metric(void *ud, const char *key, double val, int64_t index) {
    push_event(ud, EV_METRIC, 0, key, 0, 0, val, index);
}

static void handle_metric(step_run *sr, const char *key, double val, int64_t index) {
    if (!sr->has_metrics) {
        bson_init(&sr->metrics);
        sr->has_metrics = 1;
    }
    if (sr->n_metrics < 100000) { /* a runaway loss curve must not fill memory */
        char idx[16];
        const char *k;
        bson_uint32_to_string(sr->n_metrics++, &k, idx, sizeof(idx));
        bson_t m;
        BSON_APPEND_DOCUMENT_BEGIN(&sr->metrics, k, &m);
        BSON_APPEND_UTF8(&m, "key", key);
        BSON_APPEND_DOUBLE(&m, "value", val);
        BSON_APPEND_INT64(&m, "index", index);
        BSON_APPEND_INT32(&m, "attempt", sr->attempt_no);
        bson_append_document_end(&sr->metrics, &m);
    }
    char msg[512];
    snprintf(msg, sizeof(msg), "metric %s = %g (at %lld)", key, val, (long long)index);
    step_log(sr, SL_LOG_INFO, msg);
    report_step_metric(&sr->r->rep, sr->s->id, key, val, index);
}

static void drain_events(run *r) {
    pthread_mutex_lock(&r->mu);
    event *e = r->ev_head;
    r->ev_head = r->ev_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (e) {
        event *next = e->next;
        step_run *sr = e->at->sr;
        if (e->kind == EV_LOG)
            step_log(sr, e->level, e->text);
        else if (e->kind == EV_PROGRESS)
            report_step_progress(&r->rep, sr->index, sr->s->id, e->a, e->b);
        else
            handle_metric(sr, e->text, e->value, e->index);
        free(e);
        e = next;
    }
}

static void on_wake(uv_async_t *a) { drain_events(a->data); }

/* ---- finishing -------------------------------------------------------- */

static void free_attempt(attempt *at) {
    if (at->hc_ready)
        host_ctx_free(&at->hc);
    free(at->why);
    free(at->manifest);
    free(at->reported_error);
    free(at->dir);
    arena_free(&at->a);
    free(at);
}

static void maybe_finish(run *r) {
    if (r->running || r->retry_waiting || r->rq_head != r->rq_tail)
        return;
    if (!r->cancelling && !dag_ready_idle(&r->ready))
        return;
    r->finished = 1;
    uv_stop(&r->loop);
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The hash of the output that feeds `in`, or NULL. */
static const char *input_hash(run *r, const step_input *in) {
    const step_run *src = &r->steps[in->from];
    for (size_t i = 0; i < src->n_out; i++)
        if (strcmp(src->out_names[i], in->from_output) == 0)
            return src->out_hashes[i];
    return NULL;
}

/* Writes the step run's records; a failure to record is reported, and the
 * run goes on (its artifacts are in the store either way). */
static void record(step_run *sr, const char *status, const char *why) {
    run *r = sr->r;
    if (!r->meta_open)
        return;
    const step *s = sr->s;
    record_port ins[64], outs[64];
    size_t n_in = s->n_inputs < 64 ? s->n_inputs : 64, n_out = sr->n_out < 64 ? sr->n_out : 64;
    for (size_t i = 0; i < n_in; i++)
        ins[i] = (record_port){s->inputs[i].port, input_hash(r, &s->inputs[i]), NULL, 0, 0};
    for (size_t i = 0; i < n_out; i++) {
        const sl_port *port = s->impl ? plugin_step_output(s->impl, sr->out_names[i]) : NULL;
        outs[i] = (record_port){sr->out_names[i], sr->out_hashes[i], port ? port->type : "any", 0, 0};
        struct stat st;
        if (stat(sr->out_paths[i], &st) == 0) {
            outs[i].size = (uint64_t)st.st_size;
            outs[i].is_dir = S_ISDIR(st.st_mode);
        }
    }
    char log[4096];
    snprintf(log, sizeof(log), "%s.log", sr->dir);
    step_record rec = {
        .run_id = r->run_id,
        .s = s,
        .status = status,
        .started = sr->wall_started,
        .finished = wall_now(),
        .attempts = sr->attempt_no,
        .error = why,
        .log = path_exists(log) ? log : NULL,
        .cache_key = sr->key[0] ? sr->key : NULL,
        .key_parts = sr->has_parts ? &sr->key_parts : NULL,
        .cached_from = sr->cached_from[0] ? sr->cached_from : NULL,
        .metrics = sr->has_metrics ? &sr->metrics : NULL,
        .inputs = ins,
        .n_inputs = n_in,
        .outputs = outs,
        .n_outputs = n_out,
        .cacheable = step_cacheable(sr),
    };
    int rc = record_step(&r->meta, &rec);
    if (rc)
        fprintf(stderr, "sluice run: cannot record step '%s' in the metadata store: %s\n", s->id,
                meta_strerror(rc));
}

static const char *const record_status[] = {"done", "failed", "skipped", "cancelled", "cached"};

static void finish_step(step_run *sr, step_outcome outcome, const char *why) {
    run *r = sr->r;
    sr->state = SR_FINISHED;
    record(sr, record_status[outcome], why);
    double secs = sr->t_first ? report_now() - sr->t_first : 0;
    char *tail = outcome == STEP_FAILED ? log_tail(sr) : NULL;
    report_step_finished(&r->rep, sr->index, sr->s->id, outcome, sr->attempt_no, secs, why, tail);
    free(tail);
    if (outcome == STEP_DONE || outcome == STEP_CACHED)
        r->n_done++;
    if (outcome == STEP_CACHED)
        r->n_cached++;
    else if (outcome == STEP_SKIPPED)
        r->n_skipped++;
    else if (outcome == STEP_FAILED)
        r->n_failed++;
    else if (outcome == STEP_CANCELLED)
        r->n_cancelled++;
    if (sr->log) {
        fclose(sr->log);
        sr->log = NULL;
    }
    if (dag_ready_finish(&r->ready, sr->index, outcome == STEP_DONE || outcome == STEP_CACHED) == 0)
        return;
    char reason[256];
    snprintf(reason, sizeof(reason), "upstream step '%s' %s", sr->s->id,
             outcome == STEP_CANCELLED ? "was cancelled"
             : outcome == STEP_SKIPPED ? "was skipped"
                                       : "failed");
    for (size_t i = 0; i < r->p->n_steps; i++) {
        step_run *o = &r->steps[i];
        if (r->ready.state[i] == NODE_SKIPPED && o->state == SR_WAITING) {
            o->state = SR_FINISHED;
            r->n_skipped++;
            record(o, "skipped", reason);
            report_step_finished(&r->rep, i, o->s->id, STEP_SKIPPED, 0, 0, reason, NULL);
        }
    }
}

/* Outputs a successful step must have written. */
static const char *missing_output(step_run *sr, attempt *at, char *msg, size_t size) {
    for (size_t i = 0; i < at->t.n_outputs; i++) {
        const task_port *o = &at->t.outputs[i];
        int optional = 0;
        if (sr->s->impl) {
            const sl_port *port = plugin_step_output(sr->s->impl, o->name);
            optional = port && port->optional;
        }
        if (!optional && !path_exists(o->path)) {
            snprintf(msg, size, "it did not write its output '%s' (%s)", o->name, o->path);
            return msg;
        }
    }
    return NULL;
}

static int alloc_outputs(step_run *sr, size_t n) {
    sr->out_names = calloc(n + 1, sizeof(*sr->out_names));
    sr->out_paths = calloc(n + 1, sizeof(*sr->out_paths));
    sr->out_hashes = calloc(n + 1, sizeof(*sr->out_hashes));
    return sr->out_names && sr->out_paths && sr->out_hashes ? 0 : -ENOMEM;
}

/* Moves the step's outputs into the artifact store and records where they
 * are, for the steps that read them. An optional output the step did not
 * write is left out. Returns 0, or -errno with *failed naming the output. */
static int keep_outputs(step_run *sr, attempt *at, const char **failed) {
    int rc = alloc_outputs(sr, at->t.n_outputs);
    for (size_t i = 0; rc == 0 && i < at->t.n_outputs; i++) {
        const char *name = at->t.outputs[i].name, *path = at->t.outputs[i].path;
        const sl_port *port = sr->s->impl ? plugin_step_output(sr->s->impl, name) : NULL;
        if (port && port->optional && !path_exists(path))
            continue;
        object_info info;
        if ((rc = store_ingest(&sr->r->store, path, &info))) {
            *failed = name;
            break;
        }
        char object[4096];
        store_object_path(&sr->r->store, info.hash, object, sizeof(object));
        sr->out_names[sr->n_out] = sr->s->impl ? port->name : step_known_outputs(sr->s)->u.map.keys[i];
        memcpy(sr->out_hashes[sr->n_out], info.hash, sizeof(info.hash));
        if (!(sr->out_paths[sr->n_out] = strdup(object)))
            rc = -ENOMEM;
        else
            sr->n_out++;
    }
    return rc;
}

static void attempt_done(attempt *at, int ok, const char *why) {
    step_run *sr = at->sr;
    run *r = sr->r;
    if (sr->cur != at)
        return; /* an abandoned attempt that came back late */
    sr->cur = NULL;
    uv_timer_stop(&sr->timeout);
    uv_timer_stop(&sr->grace);
    r->running--;
    char msg[1024], timeout_msg[1400];
    if (ok && (why = missing_output(sr, at, msg, sizeof(msg))))
        ok = 0;
    const char *failed = NULL;
    int kept = ok ? keep_outputs(sr, at, &failed) : 0;
    if (kept) {
        ok = 0;
        snprintf(msg, sizeof(msg), "cannot store output '%s': %s", failed ? failed : "?",
                 strerror(-kept));
        why = msg;
    }
    if (!ok && sr->timed_out) {
        char limit[32];
        duration_format(step_timeout_ms(r->p, sr->s), limit, sizeof(limit));
        snprintf(timeout_msg, sizeof(timeout_msg), "timed out after %s%s%s", limit,
                 why ? "; " : "", why ? why : "");
        why = timeout_msg;
    }
    sr->timed_out = 0;
    if (!ok) {
        step_log(sr, SL_LOG_ERROR, why ? why : "failed");
        /* A failed attempt's outputs are incomplete: drop them (its log and
         * other files stay), which also frees a full disk for the records. */
        for (size_t i = 0; i < at->t.n_outputs; i++)
            remove_tree(at->t.outputs[i].path);
    }
    if (ok) {
        report_step_outputs(&r->rep, sr->s->id, sr->out_names, sr->out_paths, sr->n_out, 0);
        finish_step(sr, STEP_DONE, NULL);
    } else if (r->cancelling) {
        finish_step(sr, STEP_CANCELLED, "the run was interrupted");
    } else if (sr->attempt_no < sr->attempts_max) {
        int64_t delay = step_backoff_ms(r->p, sr->s);
        for (int i = 1; i < sr->attempt_no && delay < MAX_BACKOFF_MS; i++)
            delay *= 2;
        if (delay > MAX_BACKOFF_MS)
            delay = MAX_BACKOFF_MS;
        report_step_retry(&r->rep, sr->index, sr->s->id, sr->attempt_no + 1, sr->attempts_max,
                          delay, why ? why : "failed");
        sr->state = SR_RETRY_WAIT;
        r->retry_waiting++;
        uv_timer_start(&sr->retry, on_retry, (uint64_t)delay, 0);
    } else {
        finish_step(sr, STEP_FAILED, why ? why : "failed");
    }
    schedule(r);
}

static void on_retry(uv_timer_t *t) {
    step_run *sr = t->data;
    run *r = sr->r;
    r->retry_waiting--;
    r->retry_queue[r->rq_tail++] = sr->index;
    schedule(r);
}

/* ---- in-process steps ------------------------------------------------- */

static void work_cb(uv_work_t *w) {
    attempt *at = w->data;
    const char *why = NULL;
    at->rc = host_ctx_run(&at->hc, &why);
    if (why)
        at->why = strdup(why);
}

static void after_work_cb(uv_work_t *w, int status) {
    attempt *at = w->data;
    run *r = at->r;
    (void)status;
    drain_events(r); /* its last log lines belong before its end */
    if (at->abandoned) {
        r->abandoned--;
        step_log(at->sr, SL_LOG_WARN, "an abandoned attempt returned at last");
    } else {
        attempt_done(at, at->rc == SL_OK, at->why ? at->why : sl_status_message(at->rc));
    }
    free_attempt(at);
    maybe_finish(r);
}

/* The grace period after asking an in-process step to stop has passed. */
static void on_grace(uv_timer_t *t) {
    step_run *sr = t->data;
    attempt *at = sr->cur;
    if (!at || at->kind != ATT_IN_PROCESS)
        return;
    at->abandoned = 1;
    sr->r->abandoned++;
    attempt_done(at, 0, "it did not stop when asked (sl_cancelled); its thread was left running");
}

/* ---- child steps ------------------------------------------------------ */

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGABRT:
        return "SIGABRT";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "signal";
    }
}

static void on_child_event(attempt *at, const char *line, size_t len) {
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &err);
    bson_iter_t it;
    if (!doc || !bson_iter_init_find(&it, doc, "t") || !BSON_ITER_HOLDS_UTF8(&it)) {
        step_log(at->sr, SL_LOG_WARN, "an unreadable event from the step process");
        if (doc)
            bson_destroy(doc);
        return;
    }
    const char *t = bson_iter_utf8(&it, NULL);
    const char *text = NULL;
    double val = 0;
    int64_t a = 0, b = 0;
    int level = SL_LOG_INFO;
    bson_iter_t f;
    if (bson_iter_init(&f, doc))
        while (bson_iter_next(&f)) {
            const char *k = bson_iter_key(&f);
            if (BSON_ITER_HOLDS_UTF8(&f) && strcmp(k, "t") != 0)
                text = bson_iter_utf8(&f, NULL);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && strcmp(k, "value") == 0)
                val = bson_iter_as_double(&f);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && (strcmp(k, "a") == 0 || strcmp(k, "level") == 0))
                a = bson_iter_as_int64(&f);
            else if (BSON_ITER_HOLDS_NUMBER(&f) && strcmp(k, "b") == 0)
                b = bson_iter_as_int64(&f);
        }
    if (strcmp(t, "log") == 0) {
        level = (int)a;
        step_log(at->sr, level, text ? text : "");
    } else if (strcmp(t, "progress") == 0) {
        report_step_progress(&at->r->rep, at->sr->index, at->sr->s->id, (uint64_t)a, (uint64_t)b);
    } else if (strcmp(t, "metric") == 0 && text) {
        handle_metric(at->sr, text, val, b);
    } else if (strcmp(t, "done") == 0) {
        at->reported_done = 1;
        at->reported_rc = (int)a;
        free(at->reported_error);
        at->reported_error = text ? strdup(text) : NULL;
    }
    bson_destroy(doc);
}

static void on_child_line(child *c, int stream, const char *line, size_t len) {
    attempt *at = c->data;
    if (stream == 3) {
        on_child_event(at, line, len);
        return;
    }
    char *copy = strndup(line, len);
    if (copy) {
        step_log(at->sr, stream == 2 ? SL_LOG_WARN : SL_LOG_INFO, copy);
        free(copy);
    }
}

static void on_child_done(child *c, int64_t status, int sig) {
    attempt *at = c->data;
    char why[512];
    int ok = 0;
    if (c->spawn_error) {
        snprintf(why, sizeof(why), "could not start: %s", uv_strerror(c->spawn_error));
    } else if (sig) {
        const char *desc = strsignal(sig);
        if (at->sr->timed_out || at->r->cancelling)
            snprintf(why, sizeof(why), "stopped (%s)", signal_name(sig));
        else
            snprintf(why, sizeof(why), "crashed: killed by %s (%s)", signal_name(sig),
                     desc ? desc : "unknown signal");
    } else if (at->kind == ATT_SHELL) {
        ok = status == 0;
        snprintf(why, sizeof(why), "the command exited with status %lld", (long long)status);
    } else if (at->reported_done) {
        ok = at->reported_rc == SL_OK && status == 0;
        snprintf(why, sizeof(why), "%s",
                 at->reported_error ? at->reported_error : sl_status_message(at->reported_rc));
    } else {
        snprintf(why, sizeof(why), "the step process exited with status %lld without reporting",
                 (long long)status);
    }
    attempt_done(at, ok, ok ? NULL : why);
    free_attempt(at);
}

/* ---- starting attempts ------------------------------------------------ */

/* The path of output `name` of the step that feeds `in`. */
static const char *input_path(run *r, const step_input *in) {
    const step_run *src = &r->steps[in->from];
    for (size_t i = 0; i < src->n_out; i++)
        if (strcmp(src->out_names[i], in->from_output) == 0)
            return src->out_paths[i];
    return NULL;
}

/* Fills at->t for a step: parameters, inputs, outputs, work folder. */
static int build_task(attempt *at) {
    step_run *sr = at->sr;
    const step *s = sr->s;
    task *t = &at->t;
    arena *a = &at->a;
    t->step_id = s->id;
    t->work_dir = at->dir;
    t->attempt = at->number;
    t->n_params = s->n_args;
    t->params = arena_calloc(a, s->n_args + 1, sizeof(task_param));
    t->inputs = arena_calloc(a, s->n_inputs + 1, sizeof(task_port));
    if (!t->params || !t->inputs)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_args; i++) {
        t->params[i].name = s->args[i].name;
        t->params[i].kind = s->impl ? s->impl->step->params[i].kind : 0;
        t->params[i].value = s->args[i].value;
    }
    for (size_t i = 0; i < s->n_inputs; i++) {
        t->inputs[i].name = s->inputs[i].port;
        t->inputs[i].path = input_path(sr->r, &s->inputs[i]);
    }
    t->n_inputs = s->n_inputs;
    if (s->impl) {
        const plugin_step *ps = s->impl;
        t->step = ps->step;
        t->step_name = ps->step->name;
        t->plugin_path = ps->lib->real_path;
        t->n_outputs = ps->n_outputs;
        t->outputs = arena_calloc(a, ps->n_outputs + 1, sizeof(task_port));
        if (!t->outputs)
            return -ENOMEM;
        for (size_t i = 0; i < ps->n_outputs; i++) {
            t->outputs[i].name = ps->step->outputs[i].name;
            t->outputs[i].path = arena_printf(a, "%s/out/%s", at->dir, ps->step->outputs[i].name);
            if (!t->outputs[i].path)
                return -ENOMEM;
        }
        return 0; /* the host makes the folders when the step asks for a path */
    }
    const value *outs = step_known_outputs(s);
    t->step_name = STEP_SHELL;
    t->n_outputs = outs ? outs->u.map.n : 0;
    t->outputs = arena_calloc(a, t->n_outputs + 1, sizeof(task_port));
    if (!t->outputs)
        return -ENOMEM;
    for (size_t i = 0; i < t->n_outputs; i++) {
        t->outputs[i].name = outs->u.map.keys[i];
        t->outputs[i].path = arena_printf(a, "%s/%s", at->dir, outs->u.map.vals[i]->u.str.s);
        if (!t->outputs[i].path)
            return -ENOMEM;
    }
    return 0;
}

static const value *shell_arg(const step *s, const char *name) {
    for (size_t i = 0; i < s->n_args; i++)
        if (strcmp(s->args[i].name, name) == 0)
            return s->args[i].value;
    return NULL;
}

/* The environment of a shell step: sluice's own, then the step's
 * SLUICE_* variables, then its 'env'. Allocated in at->a. */
static char **shell_env(attempt *at) {
    const value *extra = shell_arg(at->sr->s, "env");
    size_t n_env = 0, n_extra = extra && extra->kind == VAL_MAP ? extra->u.map.n : 0;
    while (environ[n_env])
        n_env++;
    size_t cap = n_env + at->t.n_inputs + at->t.n_outputs + n_extra + 8;
    char **env = arena_calloc(&at->a, cap, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "SLUICE_INPUT_", 13) && strncmp(environ[i], "SLUICE_OUTPUT_", 14))
            env[k++] = environ[i];
    env[k++] = arena_printf(&at->a, "SLUICE_STEP=%s", at->t.step_id);
    env[k++] = arena_printf(&at->a, "SLUICE_WORK_DIR=%s", at->dir);
    env[k++] = arena_printf(&at->a, "SLUICE_ATTEMPT=%d", at->number);
    env[k++] = arena_printf(&at->a, "SLUICE_RUN_ID=%s", at->r->run_id);
    env[k++] = arena_printf(&at->a, "SLUICE_PIPELINE_DIR=%s", at->r->pipeline_dir);
    for (size_t i = 0; i < at->t.n_inputs; i++)
        env[k++] = arena_printf(&at->a, "SLUICE_INPUT_%s=%s", at->t.inputs[i].name,
                                at->t.inputs[i].path ? at->t.inputs[i].path : "");
    for (size_t i = 0; i < at->t.n_outputs; i++)
        env[k++] = arena_printf(&at->a, "SLUICE_OUTPUT_%s=%s", at->t.outputs[i].name,
                                at->t.outputs[i].path);
    for (size_t i = 0; i < n_extra; i++) {
        buf b = BUF_INIT;
        value_write_text(&b, extra->u.map.vals[i]);
        if (extra->u.map.vals[i]->secret) { /* the real value, not the mask */
            buf_reset(&b);
            buf_append(&b, extra->u.map.vals[i]->u.str.s, extra->u.map.vals[i]->u.str.len);
        }
        env[k++] = buf_failed(&b) ? NULL
                                  : arena_printf(&at->a, "%s=%s", extra->u.map.keys[i], buf_str(&b));
        buf_free(&b);
    }
    for (size_t i = 0; i < k; i++)
        if (!env[i])
            return NULL;
    env[k] = NULL;
    return env;
}

/* A command with nothing for a shell to interpret (no quotes, variables,
 * globs, redirections, operators) is split on blanks and run directly, as
 * make does: one exec instead of two. Returns the word count, 0 when the
 * command needs /bin/sh, -ENOMEM. */
#define DIRECT_MAX_WORDS 32
static int split_simple(arena *a, const char *cmd, char **words) {
    if (strpbrk(cmd, "\"'`$\\|&;<>()*?[]{}~#=%!\n"))
        return 0;
    int n = 0;
    for (const char *p = cmd; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        if (n == DIRECT_MAX_WORDS)
            return 0;
        if (!(words[n++] = arena_strndup(a, p, (size_t)(end - p))))
            return -ENOMEM;
        p = end;
    }
    words[n] = NULL;
    return n;
}

/* The path of a program, from the run's cache or a PATH search: a run has
 * few distinct programs, so the cache is a short list. A program not found
 * is left to exec to report. */
static int program_path(run *r, const char *name, const char **out) {
    for (size_t i = 0; i < r->n_programs; i++)
        if (strcmp(r->programs[i].name, name) == 0) {
            *out = r->programs[i].path;
            return 0;
        }
    char found[4096];
    *out = name;
    if (find_program(name, found, sizeof(found)) != 0)
        return 0;
    program_path_entry *grown = realloc(r->programs, (r->n_programs + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    r->programs = grown;
    program_path_entry *p = &r->programs[r->n_programs];
    p->name = strdup(name);
    p->path = strdup(found);
    if (!p->name || !p->path) {
        free(p->name);
        free(p->path);
        return -ENOMEM;
    }
    r->n_programs++;
    *out = p->path;
    return 0;
}

static int launch_shell(attempt *at) {
    /* 'run: true' is YAML's boolean: any scalar runs as the text it reads as. */
    const value *run_arg = shell_arg(at->sr->s, "run");
    buf text = BUF_INIT;
    if (run_arg && run_arg->secret)
        buf_append(&text, run_arg->u.str.s, run_arg->u.str.len);
    else if (run_arg)
        value_write_text(&text, run_arg);
    const value *cmd = buf_failed(&text) ? NULL : value_new_str(&at->a, buf_str(&text), text.len);
    buf_free(&text);
    char **env = shell_env(at);
    if (!env || !cmd)
        return -ENOMEM;
    char *words[DIRECT_MAX_WORDS + 1];
    int n = split_simple(&at->a, cmd->u.str.s, words);
    if (n < 0)
        return n;
    char *sh[] = {"sh", "-c", (char *)cmd->u.str.s, NULL};
    const char *program = "/bin/sh";
    if (n) {
        /* Look the program up once per run, not once per step and PATH entry. */
        int rc = program_path(at->r, words[0], &program);
        if (rc)
            return rc;
    }
    child_options o = {.file = program,
                       .args = n ? words : sh,
                       .env = env,
                       .cwd = at->dir};
    child_spawn(&at->ch, &at->r->reaper, &o, on_child_line, on_child_done, at);
    return 0;
}

static int launch_process(attempt *at) {
    bson_t doc = BSON_INITIALIZER;
    int rc = task_to_bson(&at->t, &doc);
    size_t len = 0;
    if (rc == 0)
        at->manifest = bson_as_relaxed_extended_json(&doc, &len);
    bson_destroy(&doc);
    if (!at->manifest)
        return -ENOMEM;
    char *args[] = {"sluice", "exec", NULL};
    child_options o = {.file = at->r->o->exe,
                       .args = args,
                       .cwd = at->dir,
                       .input = at->manifest,
                       .input_len = len,
                       .events = 1};
    child_spawn(&at->ch, &at->r->reaper, &o, on_child_line, on_child_done, at);
    return 0;
}

static int launch_in_process(attempt *at) {
    task_sink sink = {sink_log, sink_progress, sink_metric, at};
    int rc = host_ctx_init(&at->hc, &at->t, &sink);
    if (rc)
        return rc;
    at->hc_ready = 1;
    at->work.data = at;
    return uv_queue_work(&at->r->loop, &at->work, work_cb, after_work_cb);
}

static void on_timeout(uv_timer_t *t) {
    step_run *sr = t->data;
    attempt *at = sr->cur;
    if (!at)
        return;
    sr->timed_out = 1;
    step_log(sr, SL_LOG_ERROR, "the step ran past its timeout: stopping it");
    if (at->kind == ATT_IN_PROCESS) {
        atomic_store(&at->hc.cancel, 1);
        uv_timer_start(&sr->grace, on_grace, INPROC_GRACE_MS, 0);
    } else {
        child_kill(&at->ch, KILL_GRACE_MS);
    }
}

/* Starts the attempt's work, or ends the attempt when rc says it cannot. */
static void launch(attempt *at, int rc) {
    if (rc == 0 && (at->sr->timed_out || at->r->cancelling))
        rc = UV_ECANCELED;
    if (rc == 0)
        rc = at->kind == ATT_SHELL     ? launch_shell(at)
             : at->kind == ATT_PROCESS ? launch_process(at)
                                       : launch_in_process(at);
    if (rc == 0)
        return;
    char why[256];
    snprintf(why, sizeof(why), "could not start: %s",
             rc == UV_ECANCELED      ? "stopped before it started"
             : rc < 0 && rc > -4096 ? strerror(-rc)
                                    : uv_strerror(rc));
    attempt_done(at, 0, why);
    free_attempt(at);
}

static void on_dir_ready(uv_fs_t *req) {
    attempt *at = req->data;
    int rc = req->result < 0 && req->result != UV_EEXIST ? (int)req->result : 0;
    uv_fs_req_cleanup(req);
    launch(at, rc);
}

static const char *plugin_hash(run *r, const plugin_step *ps) {
    for (size_t i = 0; i < r->n_plugin_hashes; i++)
        if (r->plugin_hashes[i].lib == ps->lib)
            return r->plugin_hashes[i].hash;
    if (r->n_plugin_hashes == 64)
        return NULL;
    size_t i = r->n_plugin_hashes;
    if (hash_path(ps->lib->real_path, r->plugin_hashes[i].hash, NULL) != 0)
        return NULL;
    r->plugin_hashes[i].lib = ps->lib;
    r->n_plugin_hashes++;
    return r->plugin_hashes[i].hash;
}

/* Whether a result of this step may be reused: caching is on for it, and
 * it declares outputs. A step without outputs runs for its effects (a
 * deployment, a notification), and skipping it would skip them. */
static int step_cacheable(const step_run *sr) {
    const step *s = sr->s;
    size_t outputs = s->impl ? s->impl->n_outputs : step_known_outputs(s) ? step_known_outputs(s)->u.map.n : 0;
    return outputs > 0 && step_cache_enabled(sr->r->p, s);
}

enum { SEL_OUT = 0, SEL_RUN = 1, SEL_SUPPLY = 2 };

/* Marks the steps --only/--from select, and those upstream of them. Returns
 * 0, or -EINVAL when the named step does not exist (reported). */
static int select_steps(run *r) {
    const char *target = r->o->only ? r->o->only : r->o->from;
    if (!target)
        return 0;
    long t = pipeline_find_step(r->p, target);
    if (t < 0) {
        fprintf(stderr, "sluice run: the pipeline has no step '%s' (for --%s)\n", target,
                r->o->only ? "only" : "from");
        return -EINVAL;
    }
    size_t n = r->p->n_steps;
    r->selection = calloc(n + 1, 1);
    uint32_t *stack = malloc((n + 1) * sizeof(*stack));
    if (!r->selection || !stack) {
        free(stack);
        return -ENOMEM;
    }
    size_t top = 0;
    r->selection[t] = SEL_RUN;
    stack[top++] = (uint32_t)t;
    while (r->o->from && top) { /* everything downstream of --from */
        uint32_t v = stack[--top];
        for (uint32_t i = r->g.succ_start[v]; i < r->g.succ_start[v + 1]; i++)
            if (r->selection[r->g.succ[i]] != SEL_RUN) {
                r->selection[r->g.succ[i]] = SEL_RUN;
                stack[top++] = r->g.succ[i];
            }
    }
    for (size_t v = 0; v < n; v++) /* everything upstream of what runs supplies */
        if (r->selection[v] == SEL_RUN)
            stack[top++] = (uint32_t)v;
    while (top) {
        uint32_t v = stack[--top];
        for (uint32_t i = r->g.pred_start[v]; i < r->g.pred_start[v + 1]; i++)
            if (r->selection[r->g.pred[i]] == SEL_OUT) {
                r->selection[r->g.pred[i]] = SEL_SUPPLY;
                stack[top++] = r->g.pred[i];
            }
    }
    free(stack);
    return 0;
}

/* Computes the step's cache key and, when caching is on and an earlier step
 * run has the same key with all its objects intact, reuses its outputs.
 * Returns 1 when the step was satisfied from the cache. */
static int try_cache(step_run *sr) {
    run *r = sr->r;
    const step *s = sr->s;
    sr->wall_started = wall_now();
    cache_input ins[64];
    size_t n_in = s->n_inputs < 64 ? s->n_inputs : 64;
    for (size_t i = 0; i < n_in; i++)
        ins[i] = (cache_input){s->inputs[i].port, input_hash(r, &s->inputs[i])};
    const char *ph = s->impl ? plugin_hash(r, s->impl) : NULL;
    bson_init(&sr->key_parts);
    sr->has_parts = 1;
    if ((s->impl && !ph) || cache_key(r->p, s, ph, ins, n_in, sr->key, &sr->key_parts) != 0) {
        sr->key[0] = '\0';
        step_log(sr, SL_LOG_WARN, "no cache key: a plugin or a cache_on file could not be read");
        return 0;
    }
    cache_hit hit;
    int found = 0;
    int sel = r->selection ? r->selection[sr->index] : SEL_RUN;
    if (sel == SEL_OUT) {
        finish_step(sr, STEP_SKIPPED, r->o->only ? "not selected by --only" : "not selected by --from");
        return 1;
    }
    if (sel == SEL_SUPPLY) {
        /* Upstream of the selection: its latest outputs, whatever changed. */
        found = r->meta_open && record_latest_finished(&r->meta, r->p->name, s->id, &hit) == 1;
        if (!found) {
            finish_step(sr, STEP_FAILED,
                        "it has never finished in this pipeline, so --only/--from have no "
                        "outputs of it to use: run the whole pipeline first");
            return 1;
        }
    }
    /* A resumed run takes what finished in the run it resumes, whether it is
     * cached or not (a step without outputs too). */
    if (!found && r->o->resume && r->meta_open)
        found = record_finished_step(&r->meta, r->o->resume, s->id, &hit) == 1;
    if (!found && (r->o->no_cache || r->selection || !step_cacheable(sr) || !r->meta_open))
        return 0;
    if (!found && record_cache_lookup(&r->meta, sr->key, &hit) != 1)
        return 0;
    /* Trust the hit only when every object is there and intact. */
    for (size_t i = 0; i < hit.n_outputs; i++) {
        int v = store_verify(&r->store, hit.outputs[i].hash);
        if (v) {
            char msg[512];
            snprintf(msg, sizeof(msg), "cached output '%s' (%.12s) is %s: running the step again",
                     hit.outputs[i].name, hit.outputs[i].hash,
                     v == -ENOENT ? "missing from the store" : "altered in the store");
            step_log(sr, SL_LOG_WARN, msg);
            record_cache_forget(&r->meta, sr->key);
            return 0;
        }
    }
    if (alloc_outputs(sr, hit.n_outputs) != 0)
        return 0;
    const value *shell_outs = s->impl ? NULL : step_known_outputs(s);
    for (size_t i = 0; i < hit.n_outputs; i++) {
        const char *name = NULL; /* a name that lives as long as the pipeline */
        if (s->impl) {
            const sl_port *port = plugin_step_output(s->impl, hit.outputs[i].name);
            name = port ? port->name : NULL;
        } else {
            for (size_t k = 0; shell_outs && k < shell_outs->u.map.n; k++)
                if (strcmp(shell_outs->u.map.keys[k], hit.outputs[i].name) == 0)
                    name = shell_outs->u.map.keys[k];
        }
        char object[4096];
        store_object_path(&r->store, hit.outputs[i].hash, object, sizeof(object));
        if (!name || !(sr->out_paths[sr->n_out] = strdup(object)))
            return 0;
        sr->out_names[sr->n_out] = name;
        memcpy(sr->out_hashes[sr->n_out], hit.outputs[i].hash, HASH_HEX_LEN + 1);
        sr->n_out++;
    }
    snprintf(sr->cached_from, sizeof(sr->cached_from), "%s", hit.from);
    report_step_outputs(&r->rep, s->id, sr->out_names, sr->out_paths, sr->n_out, 0);
    finish_step(sr, STEP_CACHED, hit.from);
    return 1;
}

static void start_attempt(step_run *sr) {
    run *r = sr->r;
    if (sr->attempt_no == 0 && try_cache(sr))
        return;
    attempt *at = calloc(1, sizeof(*at));
    if (!at) {
        sr->attempt_no++;
        finish_step(sr, STEP_FAILED, "out of memory");
        return;
    }
    at->r = r;
    at->sr = sr;
    at->number = ++sr->attempt_no;
    at->kind = !sr->s->impl ? ATT_SHELL
               : sr->s->isolation == ISOLATION_PROCESS ? ATT_PROCESS
                                                       : ATT_IN_PROCESS;
    sr->cur = at;
    sr->state = SR_RUNNING;
    r->running++;
    if (!sr->t_first)
        sr->t_first = report_now();
    report_step_started(&r->rep, sr->index, sr->s->id, at->number, sr->attempts_max);
    int64_t limit = step_timeout_ms(r->p, sr->s);
    if (limit > 0)
        uv_timer_start(&sr->timeout, on_timeout, (uint64_t)limit, 0);
    int rc = (at->dir = malloc(strlen(sr->dir) + 32)) ? 0 : -ENOMEM;
    if (rc == 0) {
        sprintf(at->dir, "%s.%d", sr->dir, at->number);
        rc = build_task(at);
    }
    if (rc == 0 && at->kind != ATT_IN_PROCESS) {
        /* A child starts in its folder. Made on the thread pool: on a busy
         * ext4 one mkdir costs 100-300 us the loop is better without. An
         * in-process step's folder is made only if it asks for a path. */
        at->mkdir_req.data = at;
        rc = uv_fs_mkdir(&r->loop, &at->mkdir_req, at->dir, 0755, on_dir_ready);
        if (rc == 0)
            return;
    }
    launch(at, rc);
}

static void schedule(run *r) {
    while (!r->cancelling && r->running < r->jobs) {
        if (r->rq_head != r->rq_tail) {
            start_attempt(&r->steps[r->retry_queue[r->rq_head++]]);
            continue;
        }
        uint32_t v;
        if (!dag_ready_next(&r->ready, &v))
            break;
        start_attempt(&r->steps[v]);
    }
    maybe_finish(r);
}

/* ---- interruption ----------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
    run *r = h->data;
    int force = ++r->interrupts > 1;
    if (!r->cancelling) {
        r->cancelling = 1;
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: stopping %d running step%s (again to force)",
                 signum == SIGINT ? "interrupted" : "terminated", r->running,
                 r->running == 1 ? "" : "s");
        if (r->rep.mode != REPORT_JSON)
            fprintf(stderr, "\nsluice: %s\n", msg);
    }
    for (size_t i = 0; i < r->p->n_steps; i++) {
        step_run *sr = &r->steps[i];
        if (sr->state == SR_RETRY_WAIT && uv_is_active((uv_handle_t *)&sr->retry)) {
            uv_timer_stop(&sr->retry);
            r->retry_waiting--;
            finish_step(sr, STEP_CANCELLED, "the run was interrupted before its retry");
        }
        attempt *at = sr->cur;
        if (!at)
            continue;
        if (at->kind == ATT_IN_PROCESS) {
            atomic_store(&at->hc.cancel, 1);
            if (force)
                on_grace(&sr->grace);
            else if (!uv_is_active((uv_handle_t *)&sr->grace))
                uv_timer_start(&sr->grace, on_grace, INPROC_GRACE_MS, 0);
        } else {
            child_kill(&at->ch, force ? 0 : KILL_GRACE_MS);
        }
    }
    while (r->rq_head != r->rq_tail)
        finish_step(&r->steps[r->retry_queue[r->rq_head++]], STEP_CANCELLED,
                    "the run was interrupted before its retry");
    maybe_finish(r);
}

static void on_tick(uv_timer_t *t) { report_tick(t->data); }

static void on_sync(uv_timer_t *t) { meta_sync(t->data); }

/* ---- the run ---------------------------------------------------------- */

static int make_run_dir(run *r) {
    time_t now = time(NULL);
    struct tm tm;
    unsigned char rnd[3] = {0};
    gmtime_r(&now, &tm);
    uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
    snprintf(r->run_id, sizeof(r->run_id), "%04d%02d%02d-%02d%02d%02d-%02x%02x%02x",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             rnd[0], rnd[1], rnd[2]);
    size_t len = strlen(r->o->store) + strlen(r->run_id) + 16;
    if (!(r->run_dir = malloc(len)))
        return -ENOMEM;
    snprintf(r->run_dir, len, "%s/runs/%s/steps", r->o->store, r->run_id);
    int rc = mkdir_p(r->run_dir, 0755);
    if (rc)
        return rc;
    r->run_dir[strlen(r->run_dir) - 6] = '\0'; /* the run's folder, without /steps */
    /* Absolute: steps run in folders of their own, where a relative path
     * to another step's output would lead nowhere. */
    char *abs = realpath(r->run_dir, NULL);
    if (!abs)
        return -errno;
    free(r->run_dir);
    r->run_dir = abs;
    return 0;
}

static void write_summary(run *r, const char *status) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/run.json", r->run_dir);
    bson_t doc = BSON_INITIALIZER, steps;
    BSON_APPEND_UTF8(&doc, "run", r->run_id);
    BSON_APPEND_UTF8(&doc, "pipeline", r->p->name);
    BSON_APPEND_UTF8(&doc, "status", status);
    BSON_APPEND_DOUBLE(&doc, "seconds", report_now() - r->t0);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "steps", &steps);
    for (size_t i = 0; i < r->p->n_steps; i++) {
        static const char *const names[] = {"waiting", "running", "done", "failed", "skipped"};
        int st = r->ready.state[i];
        bson_t s;
        BSON_APPEND_DOCUMENT_BEGIN(&steps, r->steps[i].s->id, &s);
        BSON_APPEND_UTF8(&s, "status", st == NODE_DONE      ? names[2]
                                       : st == NODE_FAILED  ? names[3]
                                       : st == NODE_SKIPPED ? names[4]
                                       : st == NODE_RUNNING ? names[1]
                                                            : names[0]);
        BSON_APPEND_INT32(&s, "attempts", r->steps[i].attempt_no);
        bson_append_document_end(&steps, &s);
    }
    bson_append_document_end(&doc, &steps);
    size_t len;
    char *json = bson_as_relaxed_extended_json(&doc, &len);
    FILE *f = fopen(path, "w");
    if (f && json)
        fprintf(f, "%s\n", json);
    if (f)
        fclose(f);
    bson_free(json);
    bson_destroy(&doc);
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, close_cb);
}

static int setup(run *r) {
    size_t n = r->p->n_steps;
    int rc;
    if ((rc = pipeline_dag(r->p, &r->g)) || (rc = dag_ready_init(&r->ready, &r->g)))
        return rc;
    r->steps = calloc(n + 1, sizeof(*r->steps));
    r->retry_queue = calloc(n + 1, sizeof(*r->retry_queue));
    if (!r->steps || !r->retry_queue)
        return -ENOMEM;
    if ((rc = select_steps(r)))
        return rc;
    if ((rc = store_open(&r->store, r->o->store)))
        return rc;
    if ((rc = meta_open(&r->meta, r->o->store, 0))) {
        fprintf(stderr, "sluice run: cannot open the metadata store in %s/meta: %s\n",
                r->o->store, meta_strerror(rc));
        return rc;
    }
    r->meta_open = 1;
    if ((rc = make_run_dir(r)))
        return rc;
    if (!realpath(r->p->dir, r->pipeline_dir))
        return -errno;
    for (size_t i = 0; i < n; i++) {
        step_run *sr = &r->steps[i];
        sr->r = r;
        sr->index = (uint32_t)i;
        sr->s = &r->p->steps[i];
        sr->attempts_max = 1 + step_retries(r->p, sr->s);
        size_t len = strlen(r->run_dir) + strlen(sr->s->id) + 16;
        if (!(sr->dir = malloc(len)))
            return -ENOMEM;
        snprintf(sr->dir, len, "%s/steps/%s", r->run_dir, sr->s->id);
        uv_timer_init(&r->loop, &sr->timeout);
        uv_timer_init(&r->loop, &sr->retry);
        uv_timer_init(&r->loop, &sr->grace);
        sr->timeout.data = sr->retry.data = sr->grace.data = sr;
    }
    return 0;
}

static void teardown(run *r) {
    for (size_t i = 0; r->steps && i < r->p->n_steps; i++) {
        step_run *sr = &r->steps[i];
        if (sr->log)
            fclose(sr->log);
        for (unsigned k = 0; k < LOG_TAIL; k++)
            free(sr->tail[k]);
        for (size_t k = 0; k < sr->n_out; k++)
            free(sr->out_paths[k]);
        free(sr->out_paths);
        free(sr->out_names);
        free(sr->out_hashes);
        if (sr->has_parts)
            bson_destroy(&sr->key_parts);
        if (sr->has_metrics)
            bson_destroy(&sr->metrics);
        free(sr->dir);
    }
    for (size_t i = 0; i < r->n_programs; i++) {
        free(r->programs[i].name);
        free(r->programs[i].path);
    }
    free(r->programs);
    if (r->meta_open)
        meta_close(&r->meta);
    store_close(&r->store);
    free(r->selection);
    free(r->steps);
    free(r->retry_queue);
    free(r->run_dir);
    dag_ready_free(&r->ready);
    dag_free(&r->g);
    report_free(&r->rep);
    pthread_mutex_destroy(&r->mu);
}

int run_pipeline(pipeline *p, run_options *o) {
    /* On the heap: an abandoned in-process step may still call back into it
     * after this function returns, so then it is never freed. */
    run *r = calloc(1, sizeof(*r));
    if (!r) {
        fprintf(stderr, "sluice run: out of memory\n");
        return 2;
    }
    r->p = p;
    r->o = o;
    r->t0 = report_now();
    int jobs = o->jobs > 0 ? o->jobs : p->settings.jobs > 0 ? p->settings.jobs
                                                            : (int)uv_available_parallelism();
    r->jobs = jobs;
    /* The thread pool is sized once per process, before its first use. */
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", jobs < 4 ? 4 : jobs > 128 ? 128 : jobs);
    setenv("UV_THREADPOOL_SIZE", threads, 0);
    pthread_mutex_init(&r->mu, NULL);
    if (uv_loop_init(&r->loop) != 0) {
        fprintf(stderr, "sluice run: cannot start the event loop\n");
        pthread_mutex_destroy(&r->mu);
        free(r);
        return 2;
    }
    int rc = report_init(&r->rep, stdout, o->json, p->n_steps);
    if (rc == 0)
        rc = setup(r);
    if (rc) {
        if (rc != -EINVAL) /* EINVAL: a bad --only/--from, already said */
            fprintf(stderr, "sluice run: cannot prepare the run under %s: %s\n", o->store,
                    strerror(rc < 0 ? -rc : rc));
        uv_walk(&r->loop, close_all, NULL);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        uv_loop_close(&r->loop);
        teardown(r);
        free(r);
        return 2;
    }
    if (child_reaper_init(&r->reaper, &r->loop) != 0) {
        fprintf(stderr, "sluice run: cannot watch child processes\n");
        return 2; /* the loop is left to the process's exit */
    }
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = &r->rep;
    if (r->rep.mode == REPORT_TTY)
        uv_timer_start(&r->tick, on_tick, 100, 100);

    r->wall_t0 = wall_now();
    r->origin = (run_origin){o->overrides, o->n_overrides, o->resume, o->tags, o->n_tags};
    if ((rc = record_run(&r->meta, r->run_id, p, &r->origin, "running", r->wall_t0, 0)) != 0)
        fprintf(stderr, "sluice run: cannot record the run in the metadata store: %s\n",
                meta_strerror(rc));
    uv_timer_init(&r->loop, &r->sync_timer);
    r->sync_timer.data = &r->meta;
    uv_timer_start(&r->sync_timer, on_sync, 250, 250);
    report_run_started(&r->rep, r->run_id, p->name, r->run_dir, p->n_steps, jobs);
    schedule(r);
    while (!r->finished)
        uv_run(&r->loop, UV_RUN_ONCE);
    drain_events(r);

    /* Steps never started: cancelled by the interruption. */
    for (size_t i = 0; i < p->n_steps; i++)
        if (r->steps[i].state == SR_WAITING) {
            r->steps[i].state = SR_FINISHED;
            r->n_cancelled++;
            record(&r->steps[i], "cancelled", "not started: the run was interrupted");
            report_step_finished(&r->rep, i, r->steps[i].s->id, STEP_CANCELLED, 0, 0,
                                 "not started: the run was interrupted", NULL);
        }
    /* What the run produced: the outputs of the steps nothing consumes. */
    for (size_t i = 0; i < p->n_steps; i++)
        if (r->ready.state[i] == NODE_DONE && r->g.succ_start[i] == r->g.succ_start[i + 1])
            report_step_outputs(&r->rep, r->steps[i].s->id, r->steps[i].out_names,
                                r->steps[i].out_paths, r->steps[i].n_out, 1);
    const char *status = r->cancelling ? "interrupted" : r->n_failed ? "failed" : "done";
    write_summary(r, status);
    report_run_finished(&r->rep, r->run_id, status, r->n_done, r->n_cached, r->n_failed,
                        r->n_skipped, r->n_cancelled, report_now() - r->t0);
    if (record_run(&r->meta, r->run_id, p, &r->origin, status, r->wall_t0, wall_now()) != 0 ||
        meta_sync(&r->meta) != 0)
        fprintf(stderr, "sluice run: cannot record the run's end in the metadata store\n");
    int exit_code = r->cancelling ? 130 : r->n_failed ? 1 : 0;
    fflush(stdout);
    o->abandoned = r->abandoned > 0;
    if (r->abandoned)
        return exit_code; /* leave everything to the process's exit */
    uv_walk(&r->loop, close_all, NULL);
    /* A uv_stop() left over from the end makes one uv_run() return early. */
    while (uv_run(&r->loop, UV_RUN_DEFAULT) != 0)
        ;
    uv_loop_close(&r->loop);
    teardown(r);
    free(r);
    return exit_code;
}
