/* run.c - a run of a pipeline on a libuv loop: scheduling ready steps up to
 * the job limit, finishing steps (outputs into the store, retries, skipping
 * what is downstream of a failure), interruption, and the run's set-up. */
#include "run_internal.h"
#include "when.h"

#include <unistd.h>

#include "supervise.h"
#include "value_json.h"

static void start_attempt(step_run *sr);
static void on_retry(uv_timer_t *t);

/* ---- finishing -------------------------------------------------------- */

void sched_free_attempt(attempt *at) {
    if (at->hc_ready)
        host_ctx_free(&at->hc);
    free(at->why);
    free(at->manifest);
    free(at->reported_error);
    free(at->dir);
    arena_free(&at->a);
    free(at);
}

void sched_maybe_finish(run *r) {
    if (r->running || r->retry_waiting || r->rq_head != r->rq_tail)
        return;
    if (!r->cancelling && !dag_ready_idle(&r->ready))
        return;
    r->finished = 1;
    uv_stop(&r->loop);
}

double sched_wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The hash of the output that feeds `in`, or NULL. */
const char *sched_input_hash(run *r, const step_input *in) {
    if (in->artifact)
        return in->artifact_hash;
    const step_run *src = &r->steps[in->from];
    for (size_t i = 0; i < src->n_out; i++)
        if (strcmp(src->out_names[i], in->from_output) == 0)
            return src->out_hashes[i];
    return NULL;
}

static void finish_step(step_run *sr, step_outcome outcome, const char *why);

/* Every step's end goes through here: its reason is printed, recorded and
 * shown again by 'runs show', so secrets are masked in it once, here (a
 * plugin's error may quote the parameter that holds one). */
void sched_finish_step(step_run *sr, step_outcome outcome, const char *why) {
    buf masked = BUF_INIT;
    finish_step(sr, outcome, why ? sched_mask_secrets(sr->r->p, why, &masked) : NULL);
    buf_free(&masked);
}

static void finish_step(step_run *sr, step_outcome outcome, const char *why) {
    run *r = sr->r;
    sr->state = SR_FINISHED;
    char unrecorded[256];
    int rc = sched_record(sr, sched_record_status[outcome], why);
    if (rc && (outcome == STEP_DONE || outcome == STEP_CACHED)) {
        /* Like SQLITE_FULL: what cannot be recorded did not happen. */
        snprintf(unrecorded, sizeof(unrecorded),
                 "its result could not be recorded in the metadata store (%s)", meta_strerror(rc));
        outcome = STEP_FAILED;
        why = unrecorded;
        sched_record(sr, sched_record_status[outcome], why);
    }
    double secs = sr->t_first ? report_now() - sr->t_first : 0;
    char *tail = outcome == STEP_FAILED ? sched_log_tail(sr) : NULL;
    report_step_finished(&r->rep, sr->index, sr->s->id, outcome, sr->attempt_no, secs, why, tail);
    free(tail);
    sched_lineage_step_finished(sr, outcome, why);
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
    sched_log_close(sr);
    if (dag_ready_finish(&r->ready, sr->index,
                         outcome == STEP_DONE || outcome == STEP_CACHED || sr->cond_skipped) == 0)
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
            sched_record(o, "skipped", reason);
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

/* Moves the step's outputs into the artifact store and records where they
 * are, for the steps that read them. An optional output the step did not
 * write is left out. Returns 0, or -errno with *failed naming the output
 * and why (size bytes) saying what is wrong. */
static int keep_outputs(step_run *sr, attempt *at, const char **failed, char *why, size_t size) {
    int rc = sched_alloc_outputs(sr, at->t.n_outputs);
    for (size_t i = 0; rc == 0 && i < at->t.n_outputs; i++) {
        const char *name = at->t.outputs[i].name, *path = at->t.outputs[i].path;
        const sl_port *port = sr->s->impl ? plugin_step_output(sr->s->impl, name) : NULL;
        if (port && port->optional && !path_exists(path))
            continue;
        object_info info;
        if ((rc = path_check_beneath(at->dir, path)))
            snprintf(why, size, "its path %s%s",
                     rc == -ELOOP   ? "leads through a symbolic link"
                     : rc == -EXDEV ? "leads out of the step's folder"
                                    : "cannot be followed: ",
                     rc == -ELOOP || rc == -EXDEV ? "" : strerror(-rc));
        if (rc || (rc = store_ingest(&sr->r->store, path, &info, why, size))) {
            *failed = name;
            break;
        }
        char object[4096];
        store_object_path(&sr->r->store, info.hash, object, sizeof(object));
        sr->out_names[sr->n_out] =
            sr->s->impl ? port->name : step_known_outputs(sr->s)->u.map.keys[i];
        memcpy(sr->out_hashes[sr->n_out], info.hash, sizeof(info.hash));
        if (!(sr->out_paths[sr->n_out] = strdup(object)))
            rc = -ENOMEM;
        else
            sr->n_out++;
    }
    return rc;
}

void sched_attempt_done(attempt *at, int ok, const char *why) {
    step_run *sr = at->sr;
    run *r = sr->r;
    if (sr->cur != at)
        return; /* an abandoned attempt that came back late */
    sr->cur = NULL;
    uv_timer_stop(&sr->timeout);
    uv_timer_stop(&sr->grace);
    r->running--;
    char msg[1024], timeout_msg[1400], store_why[640];
    if (ok && (why = missing_output(sr, at, msg, sizeof(msg))))
        ok = 0;
    const char *failed = NULL;
    int kept = ok ? keep_outputs(sr, at, &failed, store_why, sizeof(store_why)) : 0;
    if (kept) {
        ok = 0;
        snprintf(msg, sizeof(msg), "cannot store output '%s': %s", failed ? failed : "?",
                 store_why);
        why = msg;
    }
    if (!ok && sr->timed_out) {
        char limit[32];
        duration_format(step_timeout_ms(r->p, sr->s), limit, sizeof(limit));
        snprintf(timeout_msg, sizeof(timeout_msg), "timed out after %s%s%s", limit, why ? "; " : "",
                 why ? why : "");
        why = timeout_msg;
    }
    sr->timed_out = 0;
    if (!ok) {
        sched_log(sr, SL_LOG_ERROR, why ? why : "failed");
        /* A failed attempt's outputs are incomplete: drop them (its log and
         * other files stay), which also frees a full disk for the records. */
        for (size_t i = 0; i < at->t.n_outputs; i++) /* never through a link */
            remove_tree_beneath(at->dir, at->t.outputs[i].path);
    }
    if (ok) {
        report_step_outputs(&r->rep, sr->s->id, sr->out_names, sr->out_paths, sr->n_out, 0);
        sched_finish_step(sr, STEP_DONE, NULL);
    } else if (r->cancelling) {
        sched_finish_step(sr, STEP_CANCELLED, "the run was interrupted");
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
        sched_finish_step(sr, STEP_FAILED, why ? why : "failed");
    }
    sched_schedule(r);
}

static void on_retry(uv_timer_t *t) {
    step_run *sr = t->data;
    run *r = sr->r;
    r->retry_waiting--;
    r->retry_queue[r->rq_tail++] = sr->index;
    sched_schedule(r);
}

/* 1 when `dir` is `root` or a folder inside it. */
static int path_under(const char *dir, const char *root) {
    size_t n = strlen(root);
    return n && strncmp(dir, root, n) == 0 &&
           (dir[n] == '/' || dir[n] == '\0' || root[n - 1] == '/');
}

/* Whether a plugin step runs in a child: its own 'isolation', or
 * SLUICE_ISOLATION (read by setup): "process" for every plugin step,
 * "outside" for the steps of plugins outside the pipeline's folder and
 * sluice's own plugin folders. */
static int isolated(const run *r, const step *s) {
    if (s->isolation == ISOLATION_PROCESS || r->isolation == ISOLATE_ALL)
        return 1;
    if (r->isolation != ISOLATE_OUTSIDE)
        return 0;
    const char *lib = s->impl->lib->real_path;
    if (path_under(lib, r->pipeline_dir))
        return 0;
    for (size_t i = 0; i < sizeof(r->own_plugins) / sizeof(r->own_plugins[0]); i++)
        if (r->own_plugins[i] && path_under(lib, r->own_plugins[i]))
            return 0;
    return 1;
}

/* SLUICE_ISOLATION, and sluice's own plugin folders for "outside".
 * Returns 0, or -EINVAL (said) for a value it does not know. */
static int read_isolation(run *r) {
    const char *v = getenv("SLUICE_ISOLATION");
    if (!v || !*v || strcmp(v, "in-process") == 0)
        return 0;
    if (strcmp(v, "process") == 0) {
        r->isolation = ISOLATE_ALL;
        return 0;
    }
    if (strcmp(v, "outside") != 0) {
        fprintf(stderr,
                "sluice run: SLUICE_ISOLATION is in-process, process or outside, not '%s'\n", v);
        return -EINVAL;
    }
    r->isolation = ISOLATE_OUTSIDE;
    const char *slash = r->o->exe ? strrchr(r->o->exe, '/') : NULL;
    if (!slash)
        return 0;
    static const char *const own[] = {"plugins", "../lib/sluice/plugins"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - r->o->exe), r->o->exe, own[i]);
        r->own_plugins[i] = realpath(path, NULL); /* NULL: no such folder */
    }
    return 0;
}

/* The supervisor of step processes (exec/supervise.h): sluice-supervise
 * beside the binary (the build tree) or in ../libexec/sluice (installed),
 * else the binary itself. Returns 0 or -ENOMEM. */
static int find_supervisor(run *r) {
    const char *exe = r->o->exe, *slash = exe ? strrchr(exe, '/') : NULL;
    if (!exe)
        return 0;
    static const char *const places[] = {"", "../libexec/sluice/"};
    for (size_t i = 0; slash && i < sizeof(places) / sizeof(places[0]); i++) {
        size_t len = (size_t)(slash - exe) + strlen(places[i]) + sizeof(SUPERVISE_PROGRAM) + 2;
        char *path = malloc(len);
        if (!path)
            return -ENOMEM;
        snprintf(path, len, "%.*s/%s%s", (int)(slash - exe), exe, places[i], SUPERVISE_PROGRAM);
        if (access(path, X_OK) == 0) {
            r->supervisor[0] = path;
            return 0;
        }
        free(path);
    }
    if (!(r->supervisor[0] = strdup(exe)))
        return -ENOMEM;
    r->supervisor[1] = "exec";
    r->supervisor[2] = SUPERVISE_FLAG;
    return 0;
}

/* Writes the run's record: p as the metadata store takes it. */
static int record_run_of(run *r, const pipeline *p, const char *status, double finished) {
    bson_t params = BSON_INITIALIZER, origins = BSON_INITIALIZER;
    for (size_t i = 0; i < p->n_params; i++) { /* secrets masked: never stored */
        value_append_bson(&params, p->params[i].name, strlen(p->params[i].name), p->params[i].value,
                          1);
        BSON_APPEND_UTF8(&origins, p->params[i].name,
                         p->params[i].origin ? p->params[i].origin : "default");
    }
    run_record rp = {p->name, p->file, p->dir, p->n_steps, &params, &origins};
    int rc = record_run(&r->meta, r->run_id, &rp, &r->origin, status, r->wall_t0, finished);
    bson_destroy(&params);
    bson_destroy(&origins);
    return rc;
}

/* The step is recorded as running before it starts: should sluice die
 * with it (a crash in an in-process step), the record shows which step
 * was running. Its final record replaces this one. */
static void record_started(step_run *sr) {
    run *r = sr->r;
    if (!r->meta_open)
        return;
    step_record rec = {.run_id = r->run_id,
                       .status = "running",
                       .started = sr->wall_started,
                       .attempts = sr->attempt_no + 1};
    bson_t params;
    run_step_record(sr->s, &rec, &params);
    int rc = record_step(&r->meta, &rec);
    bson_destroy(&params);
    if (rc)
        fprintf(stderr, "sluice run: cannot record step '%s' in the metadata store: %s\n",
                sr->s->id, meta_strerror(rc));
}

/* The last value step `step` of the run reported for metric name. */
static int metric_of(void *ud, uint32_t index, const char *name, double *out) {
    const step_run *sr = &((run *)ud)->steps[index];
    bson_iter_t it, m;
    int found = 0;
    if (!sr->has_metrics || !bson_iter_init(&it, &sr->metrics))
        return 0;
    while (bson_iter_next(&it)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &m) ||
            !bson_iter_find(&m, "key") || !BSON_ITER_HOLDS_UTF8(&m) ||
            strcmp(bson_iter_utf8(&m, NULL), name) != 0)
            continue;
        bson_iter_recurse(&it, &m);
        if (bson_iter_find(&m, "value") && BSON_ITER_HOLDS_NUMBER(&m)) {
            *out = bson_iter_as_double(&m);
            found = 1;
        }
    }
    return found;
}

/* Settles a step a condition skips: its own 'when' is false, or a step
 * upstream of it was skipped (which 'when: always' runs past, unless it
 * reads that step's outputs). A skip is no cache entry: the step is not
 * looked up in the cache, and nothing is kept. Returns 1 when the step is
 * settled (skipped, or failed because its condition could not be decided). */
static int settled_by_condition(step_run *sr) {
    run *r = sr->r;
    const step *s = sr->s;
    char why[600] = "";
    for (size_t k = 0; k < s->n_inputs && !why[0]; k++) {
        uint32_t up = s->inputs[k].from;
        if (up < r->p->n_steps && r->steps[up].cond_skipped)
            snprintf(why, sizeof(why), "its input '%s' comes from step '%s', which was skipped",
                     step_input_key(&s->inputs[k]), r->steps[up].s->id);
    }
    for (size_t k = 0; k < s->n_after && !why[0] && !s->when_always; k++) {
        uint32_t up = s->after[k].from;
        if (up < r->p->n_steps && r->steps[up].cond_skipped)
            snprintf(why, sizeof(why), "upstream step '%s' was skipped", r->steps[up].s->id);
    }
    if (!why[0] && s->when_expr) {
        int v = when_eval(r->p, s, metric_of, r, why, sizeof(why));
        if (v == 1)
            return 0;
        if (v < 0) {
            sched_finish_step(sr, STEP_FAILED, why);
            return 1;
        }
        snprintf(why, sizeof(why), "its condition is false: %s", s->when);
    }
    if (!why[0])
        return 0;
    sr->cond_skipped = 1;
    sched_finish_step(sr, STEP_SKIPPED, why);
    return 1;
}

static void start_attempt(step_run *sr) {
    run *r = sr->r;
    if (step_is_template(sr->s)) {
        sched_expand(sr); /* its instances are then ready in its place */
        return;
    }
    if (sr->attempt_no == 0 && settled_by_condition(sr))
        return;
    if (sr->attempt_no == 0 && sched_try_cache(sr))
        return;
    record_started(sr);
    sched_lineage_step_started(sr);
    attempt *at = calloc(1, sizeof(*at));
    if (!at) {
        sr->attempt_no++;
        sched_finish_step(sr, STEP_FAILED, "out of memory");
        return;
    }
    at->r = r;
    at->sr = sr;
    at->number = ++sr->attempt_no;
    at->kind = sched_slurm_step(r, sr->s) ? ATT_SLURM
               : !sr->s->impl             ? ATT_SHELL
               : isolated(r, sr->s)       ? ATT_PROCESS
                                          : ATT_IN_PROCESS;
    sr->cur = at;
    sr->state = SR_RUNNING;
    r->running++;
    if (!sr->t_first)
        sr->t_first = report_now();
    report_step_started(&r->rep, sr->index, sr->s->id, at->number, sr->attempts_max);
    int64_t limit = step_timeout_ms(r->p, sr->s);
    if (limit > 0)
        uv_timer_start(&sr->timeout, sched_on_timeout, (uint64_t)limit, 0);
    int rc = (at->dir = malloc(strlen(sr->dir) + 32)) ? 0 : -ENOMEM;
    if (rc == 0) {
        sprintf(at->dir, "%s.%d", sr->dir, at->number);
        rc = sched_build_task(at);
    }
    if (rc == 0 && at->kind != ATT_IN_PROCESS) {
        /* A child starts in its folder. Made on the thread pool: on a busy
         * ext4 one mkdir costs 100-300 us the loop is better without. An
         * in-process step's folder is made only if it asks for a path. */
        at->mkdir_req.data = at;
        rc = uv_fs_mkdir(&r->loop, &at->mkdir_req, at->dir, 0755, sched_on_dir_ready);
        if (rc == 0)
            return;
    }
    sched_launch(at, rc);
}

void sched_start_attempt(step_run *sr) { start_attempt(sr); }

void sched_schedule(run *r) {
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
    sched_maybe_finish(r);
}

/* ---- interruption ----------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
    run *r = h->data;
    /* A second signal, or SIGTERM after SIGINT, forces: a terminating
     * system or supervisor does not wait for a grace period twice. */
    int force = ++r->interrupts > 1;
    if (!r->cancelling) {
        r->cancelling = 1;
        r->signo = signum;
        char msg[128];
        snprintf(msg, sizeof(msg), "%s: stopping %d running step%s (again to force)",
                 signum == SIGINT   ? "interrupted"
                 : signum == SIGHUP ? "hung up"
                                    : "terminated",
                 r->running, r->running == 1 ? "" : "s");
        if (r->rep.mode != REPORT_JSON)
            fprintf(stderr, "\nsluice: %s\n", msg);
    }
    for (size_t i = 0; i < r->p->n_steps; i++) {
        step_run *sr = &r->steps[i];
        if (sr->state == SR_RETRY_WAIT && uv_is_active((uv_handle_t *)&sr->retry)) {
            uv_timer_stop(&sr->retry);
            r->retry_waiting--;
            sched_finish_step(sr, STEP_CANCELLED, "the run was interrupted before its retry");
        }
        attempt *at = sr->cur;
        if (!at)
            continue;
        if (at->kind == ATT_IN_PROCESS) {
            atomic_store(&at->hc.cancel, 1);
            if (force)
                sched_on_grace(&sr->grace);
            else if (!uv_is_active((uv_handle_t *)&sr->grace))
                uv_timer_start(&sr->grace, sched_on_grace, INPROC_GRACE_MS, 0);
        } else if (at->kind == ATT_SLURM) {
            sched_slurm_cancel(at);
            if (force) /* Slurm may be the thing that hangs */
                sched_slurm_forget(at);
        } else {
            child_kill(&at->ch, force ? 0 : KILL_GRACE_MS);
        }
    }
    while (r->rq_head != r->rq_tail)
        sched_finish_step(&r->steps[r->retry_queue[r->rq_head++]], STEP_CANCELLED,
                          "the run was interrupted before its retry");
    sched_maybe_finish(r);
}

static void on_tick(uv_timer_t *t) { report_tick(t->data); }

static void on_sync(uv_timer_t *t) { meta_sync(t->data); }

/* ---- the run ---------------------------------------------------------- */

/* A run's id: its UTC start to the millisecond, then 12 random bits, as
 * YYYYMMDD-HHMMSS-mmmRRR (mmm decimal, RRR hex), so that ids sort in start
 * order even within a second; the folder's creation settles the rare tie. */
static int make_run_dir(run *r) {
    size_t len = strlen(r->o->store) + sizeof(r->run_id) + 16;
    if (!(r->run_dir = malloc(len)))
        return -ENOMEM;
    snprintf(r->run_dir, len, "%s/runs", r->o->store);
    int rc = mkdir_p(r->run_dir, 0755);
    for (int tries = 0; rc == 0; tries++) {
        struct timespec ts;
        struct tm tm;
        unsigned char rnd[2] = {0};
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
        /* Each field bounded, so the id always has its 22 characters. */
        snprintf(r->run_id, sizeof(r->run_id), "%04u%02u%02u-%02u%02u%02u-%03u%03x",
                 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
                 (unsigned)(ts.tv_nsec / 1000000) % 1000u,
                 ((unsigned)rnd[0] << 4 | (unsigned)rnd[1] >> 4) & 0xfffu);
        snprintf(r->run_dir, len, "%s/runs/%s", r->o->store, r->run_id);
        if (mkdir(r->run_dir, 0755) == 0)
            break;
        if (errno != EEXIST || tries == 100)
            return -errno;
    }
    if (rc)
        return rc;
    snprintf(r->run_dir, len, "%s/runs/%s/steps", r->o->store, r->run_id);
    if (mkdir(r->run_dir, 0755) != 0)
        return -errno;
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
        if (st == NODE_DONE && step_is_template(r->steps[i].s))
            continue; /* its instances stand for it */
        bson_t s;
        BSON_APPEND_DOCUMENT_BEGIN(&steps, r->steps[i].s->id, &s);
        BSON_APPEND_UTF8(&s, "status",
                         st == NODE_DONE      ? names[2]
                         : st == NODE_FAILED  ? names[3]
                         : st == NODE_SKIPPED ? names[4]
                         : st == NODE_RUNNING ? names[1]
                                              : names[0]);
        BSON_APPEND_INT32(&s, "attempts", r->steps[i].attempt_no);
        bson_append_document_end(&steps, &s);
    }
    bson_append_document_end(&doc, &steps);
    if (r->ol_closed) {
        bson_t ol;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "openlineage", &ol);
        BSON_APPEND_INT64(&ol, "events", (int64_t)r->ol_stats.events);
        BSON_APPEND_INT64(&ol, "delivered", (int64_t)r->ol_stats.delivered);
        BSON_APPEND_INT64(&ol, "failed", (int64_t)r->ol_stats.failed);
        BSON_APPEND_INT64(&ol, "retries", (int64_t)r->ol_stats.retries);
        if (r->ol_stats.failed)
            BSON_APPEND_UTF8(&ol, "last_error", r->ol_stats.last_error);
        bson_append_document_end(&doc, &ol);
    }
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
    /* Room for the instances 'foreach: STEP.OUTPUT' makes as the run goes
     * (fanout.c): step runs never move, their timers are in the loop. */
    r->steps = calloc(r->p->cap_steps + 1, sizeof(*r->steps));
    r->retry_queue = calloc(r->p->cap_steps + 1, sizeof(*r->retry_queue));
    if (!r->steps || !r->retry_queue)
        return -ENOMEM;
    if ((rc = sched_select_steps(r)) || (rc = read_isolation(r)) || (rc = find_supervisor(r)))
        return rc;
    if ((rc = store_open(&r->store, r->o->store)) || (rc = store_lock(&r->store, 0, 1)))
        return rc;
    if ((rc = meta_open(&r->meta, r->o->store, 0))) {
        fprintf(stderr, "sluice run: cannot open the metadata store in %s/meta: %s\n", r->o->store,
                meta_error(&r->meta, rc));
        return -EINVAL; /* said */
    }
    r->meta_open = 1;
    if ((rc = make_run_dir(r)))
        return rc;
    if (!realpath(r->p->dir, r->pipeline_dir))
        return -errno;
    sched_lineage_open(r);
    for (size_t i = 0; i < n; i++)
        if ((rc = sched_init_step_run(r, i)))
            return rc;
    return 0;
}

int sched_init_step_run(run *r, size_t i) {
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
    return 0;
}

static void teardown(run *r) {
    sched_lineage_close(r);
    sched_slurm_free(r);
    for (size_t i = 0; r->steps && i < r->p->n_steps; i++) {
        step_run *sr = &r->steps[i];
        sched_log_close(sr);
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
    free(r->own_plugins[0]);
    free(r->own_plugins[1]);
    free(r->supervisor[0]);
    if (r->meta_open)
        meta_close(&r->meta);
    store_close(&r->store);
    free(r->selection);
    free(r->plugin_hashes);
    free(r->steps);
    free(r->retry_queue);
    free(r->run_dir);
    dag_ready_free(&r->ready);
    dag_free(&r->g);
    report_free(&r->rep);
    pthread_mutex_destroy(&r->mu);
}

void run_exit_abandoned(int status) {
    fflush(stdout);
    fflush(stderr);
    /* Not exit(): it would join libuv's thread pool, where the abandoned
     * step's thread never returns. */
    _exit(status);
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
    int jobs = o->jobs > 0            ? o->jobs
               : p->settings.jobs > 0 ? p->settings.jobs
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
    int rc = report_init(&r->rep, stdout, o->json, p->cap_steps);
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
    uv_async_init(&r->loop, &r->wake, sched_on_wake);
    r->wake.data = r;
    /* SIGHUP is a dropped terminal: stop like Ctrl-C. The others a run has
     * no use for are ignored rather than let kill it with its steps
     * orphaned and its record left 'running' (children get them back at
     * their defaults). */
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
        uv_signal_init(&r->loop, &r->stop_signals[i]);
        r->stop_signals[i].data = r;
        uv_signal_start(&r->stop_signals[i], on_signal, stops[i]);
    }
    signal(SIGQUIT, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGALRM, SIG_IGN);
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = &r->rep;
    if (r->rep.mode == REPORT_TTY)
        uv_timer_start(&r->tick, on_tick, 100, 100);

    r->wall_t0 = sched_wall_now();
    r->origin = (run_origin){o->overrides, o->n_overrides, o->resume, o->tags,
                             o->n_tags,    o->cause,       o->n_cause};
    /* A run whose records could not all be written did not succeed. */
    int unrecorded = (rc = record_run_of(r, p, "running", 0));
    if (unrecorded)
        fprintf(stderr, "sluice run: cannot record the run in the metadata store: %s\n",
                meta_strerror(rc));
    else
        snprintf(o->run_id, sizeof(o->run_id), "%s", r->run_id);
    uv_timer_init(&r->loop, &r->sync_timer);
    r->sync_timer.data = &r->meta;
    uv_timer_start(&r->sync_timer, on_sync, 250, 250);
    report_run_started(&r->rep, r->run_id, p->name, r->run_dir, p->n_steps, jobs);
    sched_lineage_run(r, "START", NULL);
    sched_schedule(r);
    while (!r->finished)
        uv_run(&r->loop, UV_RUN_ONCE);
    sched_drain_events(r);

    /* Steps never started: cancelled by the interruption. */
    for (size_t i = 0; i < p->n_steps; i++)
        if (r->steps[i].state == SR_WAITING) {
            r->steps[i].state = SR_FINISHED;
            r->n_cancelled++;
            sched_record(&r->steps[i], "cancelled", "not started: the run was interrupted");
            report_step_finished(&r->rep, i, r->steps[i].s->id, STEP_CANCELLED, 0, 0,
                                 "not started: the run was interrupted", NULL);
        }
    /* What the run produced: the outputs of the steps nothing consumes. */
    for (size_t i = 0; i < p->n_steps; i++)
        if (r->ready.state[i] == NODE_DONE && r->g.succ_start[i] == r->g.succ_start[i + 1] &&
            !step_is_template(r->steps[i].s))
            report_step_outputs(&r->rep, r->steps[i].s->id, r->steps[i].out_names,
                                r->steps[i].out_paths, r->steps[i].n_out, 1);
    const char *status = r->cancelling ? "interrupted" : r->n_failed ? "failed" : "done";
    sched_lineage_run(r,
                      r->cancelling ? "ABORT"
                      : r->n_failed ? "FAIL"
                                    : "COMPLETE",
                      r->cancelling ? "the run was interrupted"
                      : r->n_failed ? "a step failed"
                                    : NULL);
    sched_lineage_close(r);
    write_summary(r, status);
    report_run_finished(&r->rep, r->run_id, status, r->n_done, r->n_cached, r->n_failed,
                        r->n_skipped, r->n_cancelled, report_now() - r->t0);
    if ((rc = record_run_of(r, p, status, sched_wall_now())) || (rc = meta_sync(&r->meta))) {
        fprintf(stderr, "sluice run: cannot record the run's end in the metadata store: %s\n",
                meta_strerror(rc));
        unrecorded = rc;
    }
    /* Interrupted: 128 + the signal, as a shell reports it (130 for Ctrl-C). */
    int exit_code = r->cancelling ? 128 + r->signo : r->n_failed || unrecorded ? 1 : 0;
    fflush(stdout);
    o->abandoned = r->abandoned > 0;
    if (r->abandoned) {
        /* Everything else is left to the process's end, which must come at
         * once (run_exit_abandoned): the records are closed first. */
        meta_close(&r->meta);
        r->meta_open = 0;
        return exit_code;
    }
    /* Its fork server kills what no step could be told to own, and ends. */
    child_reaper_close(&r->reaper, NULL);
    uv_walk(&r->loop, close_all, NULL);
    /* A uv_stop() left over from the end makes one uv_run() return early. */
    while (uv_run(&r->loop, UV_RUN_DEFAULT) != 0)
        ;
    uv_loop_close(&r->loop);
    teardown(r);
    free(r);
    return exit_code;
}
