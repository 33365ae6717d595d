/* events.c - step logs and the events of steps running on worker threads. */
#include "run_internal.h"

/* ---- logging --------------------------------------------------------- */

/* ---- the log's size cap ---------------------------------------------
 *
 * A step that prints without end must not fill the disk: past
 * SLUICE_LOG_LIMIT bytes its log keeps the first half of the limit and the
 * last half, with a line saying how much was cut between them. The head is
 * written to STEP.log as it comes; the rest goes to STEP.log.tail, which is
 * set aside as STEP.log.tail.1 whenever it holds half the limit, so the
 * disk holds at most one and a half times the limit meanwhile. When the
 * step ends, the last half-limit of the two is appended to the log. */

#define LOG_LIMIT_DEFAULT ((uint64_t)64 << 20)

/* SLUICE_LOG_LIMIT: bytes, with an optional k, M or G (powers of 1024); 0
 * for no limit. A value that does not read as one keeps the default. */
static uint64_t log_limit(void) {
    static uint64_t limit;
    static int known;
    if (known)
        return limit;
    known = 1;
    limit = LOG_LIMIT_DEFAULT;
    const char *v = getenv("SLUICE_LOG_LIMIT");
    if (!v || !*v)
        return limit;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    int shift = *end == 'k' || *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (shift)
        end++;
    if (end == v || *end || (shift && n > (UINT64_MAX >> shift)))
        fprintf(stderr, "sluice: SLUICE_LOG_LIMIT is a size like 64M, not '%s': using 64M\n", v);
    else
        limit = (uint64_t)n << shift;
    return limit;
}

static void tail_path(const step_run *sr, int old, char *path, size_t size) {
    snprintf(path, size, "%s.log.tail%s", sr->dir, old ? ".1" : "");
}

/* Where the next line goes: the log, or past the head the tail file. */
static FILE *log_sink(step_run *sr, size_t line_len) {
    uint64_t limit = log_limit();
    if (!limit || (!sr->log_tail && sr->log_bytes + line_len <= limit / 2)) {
        sr->log_bytes += line_len;
        return sr->log;
    }
    char path[4096];
    if (sr->log_tail && sr->tail_bytes + line_len > limit / 2) {
        /* The tail file is full: it becomes the older half, whose previous
         * content is cut. */
        char old[4096];
        struct stat st;
        fclose(sr->log_tail);
        sr->log_tail = NULL;
        tail_path(sr, 1, old, sizeof(old));
        if (stat(old, &st) == 0)
            sr->cut_bytes += (uint64_t)st.st_size;
        tail_path(sr, 0, path, sizeof(path));
        rename(path, old);
        sr->tail_bytes = 0;
    }
    if (!sr->log_tail) {
        tail_path(sr, 0, path, sizeof(path));
        if (!(sr->log_tail = fopen(path, "w")))
            return NULL; /* the line is lost, not the step */
    }
    sr->tail_bytes += line_len;
    return sr->log_tail;
}

static void append_rest(step_run *sr, FILE *f) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, sr->log);
}

/* Ends the step's log: past the limit, the kept tail is appended after a
 * line that says how much was cut. */
void sched_log_close(step_run *sr) {
    if (sr->log_tail) {
        char path[4096], old[4096];
        tail_path(sr, 0, path, sizeof(path));
        tail_path(sr, 1, old, sizeof(old));
        fclose(sr->log_tail);
        sr->log_tail = NULL;
        FILE *older = fopen(old, "r"), *newer = fopen(path, "r");
        uint64_t half = log_limit() / 2, keep = half > sr->tail_bytes ? half - sr->tail_bytes : 0;
        struct stat st;
        uint64_t size = older && fstat(fileno(older), &st) == 0 ? (uint64_t)st.st_size : 0;
        if (older && size > keep) {
            /* Cut whole lines: the rest of the line the cut falls in too. */
            int c = '\n';
            sr->cut_bytes += size - keep;
            if (fseeko(older, (off_t)(size - keep), SEEK_SET) == 0)
                while ((c = fgetc(older)) != EOF && c != '\n')
                    sr->cut_bytes++;
        }
        if (sr->log) {
            if (sr->cut_bytes)
                fprintf(sr->log,
                        "[sluice: %llu bytes of this log cut here: it passed "
                        "SLUICE_LOG_LIMIT (%llu bytes)]\n",
                        (unsigned long long)sr->cut_bytes, (unsigned long long)log_limit());
            if (older)
                append_rest(sr, older);
            if (newer)
                append_rest(sr, newer);
        }
        if (older)
            fclose(older);
        if (newer)
            fclose(newer);
        unlink(old);
        unlink(path);
    }
    if (sr->log) {
        fclose(sr->log);
        sr->log = NULL;
    }
}

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

const char *sched_mask_secrets(const pipeline *p, const char *msg, buf *b) {
    return mask_secrets((const char *const *)p->secrets, p->n_secrets, msg, b);
}

void sched_log(step_run *sr, int level, const char *raw) {
    static const char *const names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    int lv = level < 0 ? 0 : level > 3 ? 3 : level;
    buf masked = BUF_INIT;
    const char *msg = sched_mask_secrets(sr->r->p, raw, &masked);
    if (log_file(sr)) {
        char t[32];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(t, sizeof(t), "%H:%M:%S", &tm);
        FILE *f = log_sink(sr, strlen(t) + strlen(msg) + 15);
        if (f) {
            fprintf(f, "%s.%03ld %s %s\n", t, ts.tv_nsec / 1000000, names[lv], msg);
            fflush(f);
        }
    }
    free(sr->tail[sr->tail_next % LOG_TAIL]);
    sr->tail[sr->tail_next % LOG_TAIL] = strdup(msg);
    sr->tail_next++;
    report_step_log(&sr->r->rep, sr->s->id, lv, msg);
    buf_free(&masked);
}

/* The last lines of the step's log, indented, for a failure report. */
char *sched_log_tail(step_run *sr) {
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

void sched_sink_log(void *ud, int level, const char *msg) {
    push_event(ud, EV_LOG, level, msg, 0, 0, 0, 0);
}
void sched_sink_progress(void *ud, uint64_t done, uint64_t total) {
    push_event(ud, EV_PROGRESS, 0, NULL, done, total, 0, 0);
}
void sched_sink_metric(void *ud, const char *key, double val, int64_t index) {
    push_event(ud, EV_METRIC, 0, key, 0, 0, val, index);
}

void sched_metric(step_run *sr, const char *key, double val, int64_t index) {
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
    sched_log(sr, SL_LOG_INFO, msg);
    report_step_metric(&sr->r->rep, sr->s->id, key, val, index);
}

void sched_drain_events(run *r) {
    pthread_mutex_lock(&r->mu);
    event *e = r->ev_head;
    r->ev_head = r->ev_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (e) {
        event *next = e->next;
        step_run *sr = e->at->sr;
        if (e->kind == EV_LOG)
            sched_log(sr, e->level, e->text);
        else if (e->kind == EV_PROGRESS)
            report_step_progress(&r->rep, sr->index, sr->s->id, e->a, e->b);
        else
            sched_metric(sr, e->text, e->value, e->index);
        free(e);
        e = next;
    }
}

void sched_on_wake(uv_async_t *a) { sched_drain_events(a->data); }
