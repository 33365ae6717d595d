#include "report.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const outcome_names[] = {"done", "failed", "skipped", "cancelled", "cached"};
static const char *const level_names[] = {"debug", "info", "warn", "error"};

double report_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int report_init(reporter *r, FILE *out, int json, size_t n_steps) {
    memset(r, 0, sizeof(*r));
    r->out = out;
    r->t0 = report_now();
    r->n_steps = n_steps;
    const char *term = getenv("TERM");
    if (json)
        r->mode = REPORT_JSON;
    else if (isatty(fileno(out)) && term && strcmp(term, "dumb") != 0)
        r->mode = REPORT_TTY;
    else
        r->mode = REPORT_PLAIN;
    const char *no_color = getenv("NO_COLOR"); /* set by --no-color too */
    r->color = r->mode == REPORT_TTY && !(no_color && no_color[0]);
    r->live = calloc(n_steps + 1, sizeof(*r->live));
    return r->live ? 0 : -ENOMEM;
}

void report_free(reporter *r) {
    free(r->live);
    r->live = NULL;
}

/* Wall-clock time of day for plain lines, UTC, to the millisecond. */
static void stamp(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, size, "%02d:%02d:%02d.%03d", tm.tm_hour % 24, tm.tm_min % 60, tm.tm_sec % 61,
             (int)(ts.tv_nsec / 1000000) % 1000);
}

static void iso_time(char *out, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char day[16];
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    snprintf(out, size, "%sT%02d:%02d:%02d.%03dZ", day, tm.tm_hour % 24, tm.tm_min % 60,
             tm.tm_sec % 61, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* Clears the live view so that a permanent line can be printed above it. */
static void clear_live(reporter *r) {
    if (r->mode != REPORT_TTY || !r->drawn)
        return;
    fprintf(r->out, "\033[%dA\033[J", r->drawn);
    r->drawn = 0;
}

static void emit_json(reporter *r, bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (json) {
        fwrite(json, 1, len, r->out);
        fputc('\n', r->out);
        fflush(r->out);
        bson_free(json);
    }
    bson_destroy(doc);
}

static bson_t *event(const char *name) {
    char t[40];
    iso_time(t, sizeof(t));
    bson_t *doc = bson_new();
    /* The schema's version (docs/events.md): raised only when a field
     * changes meaning or goes; new fields and events keep it. */
    BSON_APPEND_INT32(doc, "v", 1);
    BSON_APPEND_UTF8(doc, "event", name);
    BSON_APPEND_UTF8(doc, "time", t);
    return doc;
}

static void line(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(reporter *r, const char *fmt, ...) {
    char t[32];
    clear_live(r);
    if (r->mode == REPORT_PLAIN) {
        stamp(t, sizeof(t));
        fprintf(r->out, "%s ", t);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
    fputc('\n', r->out);
    if (r->mode == REPORT_TTY)
        report_tick(r);
    fflush(r->out);
}

void report_run_started(reporter *r, const char *run_id, const char *pipeline, const char *run_dir,
                        size_t n_steps, int jobs) {
    if (r->mode == REPORT_JSON) {
        bson_t *e = event("run_started");
        BSON_APPEND_UTF8(e, "run", run_id);
        BSON_APPEND_UTF8(e, "pipeline", pipeline);
        BSON_APPEND_UTF8(e, "dir", run_dir);
        BSON_APPEND_INT64(e, "steps", (int64_t)n_steps);
        BSON_APPEND_INT32(e, "jobs", jobs);
        emit_json(r, e);
        return;
    }
    line(r, "run %s: pipeline %s, %zu step%s, %d at a time", run_id, pipeline, n_steps,
         n_steps == 1 ? "" : "s", jobs);
}

void report_step_started(reporter *r, size_t index, const char *id, int attempt, int attempts) {
    size_t w = strlen(id);
    if (w > r->width)
        r->width = w;
    r->live[index] = (live_entry){id, report_now(), 0, 0, attempt, 1, 0};
    if (r->mode == REPORT_JSON) {
        bson_t *e = event("step_started");
        BSON_APPEND_UTF8(e, "step", id);
        BSON_APPEND_INT32(e, "attempt", attempt);
        BSON_APPEND_INT32(e, "attempts", attempts);
        emit_json(r, e);
    } else if (r->mode == REPORT_PLAIN) {
        if (attempts > 1)
            line(r, "step %s started (attempt %d of %d)", id, attempt, attempts);
        else
            line(r, "step %s started", id);
    } else {
        report_tick(r);
    }
}

void report_step_progress(reporter *r, size_t index, const char *id, uint64_t done,
                          uint64_t total) {
    live_entry *entry = &r->live[index];
    entry->done = done;
    entry->total = total;
    /* At most a few events a second per step; the last one always. */
    double now = report_now();
    if (r->mode == REPORT_JSON && (now - entry->last_event >= 0.25 || done == total)) {
        entry->last_event = now;
        bson_t *e = event("step_progress");
        BSON_APPEND_UTF8(e, "step", id);
        BSON_APPEND_INT64(e, "done", (int64_t)done);
        BSON_APPEND_INT64(e, "total", (int64_t)total);
        emit_json(r, e);
    }
}

void report_step_log(reporter *r, const char *id, int level, const char *msg) {
    if (r->mode != REPORT_JSON)
        return; /* logs go to the step's log file; a failure shows their tail */
    bson_t *e = event("step_log");
    BSON_APPEND_UTF8(e, "step", id);
    BSON_APPEND_UTF8(e, "level", level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
    BSON_APPEND_UTF8(e, "message", msg);
    emit_json(r, e);
}

void report_step_note(reporter *r, const char *id, const char *msg) {
    if (r->mode == REPORT_JSON)
        return; /* the step_log event of the same message says it */
    line(r, "step %s: %s", id, msg);
}

void report_step_metric(reporter *r, const char *id, const char *key, double value, int64_t step) {
    if (r->mode != REPORT_JSON)
        return;
    bson_t *e = event("step_metric");
    BSON_APPEND_UTF8(e, "step", id);
    BSON_APPEND_UTF8(e, "key", key);
    BSON_APPEND_DOUBLE(e, "value", value);
    BSON_APPEND_INT64(e, "index", step);
    emit_json(r, e);
}

void report_step_retry(reporter *r, size_t index, const char *id, int next_attempt, int attempts,
                       int64_t delay_ms, const char *why) {
    r->live[index].active = 0;
    if (r->mode == REPORT_JSON) {
        bson_t *e = event("step_retry");
        BSON_APPEND_UTF8(e, "step", id);
        BSON_APPEND_INT32(e, "next_attempt", next_attempt);
        BSON_APPEND_INT32(e, "attempts", attempts);
        BSON_APPEND_INT64(e, "delay_ms", delay_ms);
        BSON_APPEND_UTF8(e, "error", why);
        emit_json(r, e);
        return;
    }
    line(r, "step %s failed: %s; retrying in %.3gs (attempt %d of %d)", id, why,
         (double)delay_ms / 1000.0, next_attempt, attempts);
}

void report_step_finished(reporter *r, size_t index, const char *id, step_outcome outcome,
                          int attempt, double seconds, const char *why, const char *tail) {
    r->live[index].active = 0;
    if (r->mode == REPORT_JSON) {
        bson_t *e = event("step_finished");
        BSON_APPEND_UTF8(e, "step", id);
        BSON_APPEND_UTF8(e, "status", outcome_names[outcome]);
        BSON_APPEND_INT32(e, "attempts", attempt);
        BSON_APPEND_DOUBLE(e, "seconds", seconds);
        if (why)
            BSON_APPEND_UTF8(e, outcome == STEP_CACHED ? "cached_from" : "error", why);
        emit_json(r, e);
        return;
    }
    const char *mark = r->mode != REPORT_TTY ? "step"
                       : outcome == STEP_DONE || outcome == STEP_CACHED
                           ? (r->color ? "\033[32m✓\033[0m" : "✓")
                       : outcome == STEP_FAILED ? (r->color ? "\033[31m✗\033[0m" : "✗")
                                                : (r->color ? "\033[33m-\033[0m" : "-");
    switch (outcome) {
    case STEP_DONE:
        line(r, "%s %s done in %.2fs", mark, id, seconds);
        break;
    case STEP_FAILED:
        line(r, "%s %s failed after %.2fs: %s", mark, id, seconds, why ? why : "");
        if (tail && *tail) {
            clear_live(r);
            fprintf(r->out, "%s", tail);
            if (r->mode == REPORT_TTY)
                report_tick(r);
        }
        break;
    case STEP_SKIPPED:
        line(r, "%s %s skipped: %s", mark, id, why ? why : "");
        break;
    case STEP_CACHED:
        line(r, "%s %s cached (from %s)", mark, id, why ? why : "an earlier run");
        break;
    case STEP_CANCELLED:
        line(r, "%s %s cancelled%s%s", mark, id, why ? ": " : "", why ? why : "");
        break;
    }
}

void report_step_outputs(reporter *r, const char *id, const char *const *names, char *const *paths,
                         size_t n, int final) {
    if (r->mode == REPORT_JSON) {
        if (final)
            return; /* already sent when the step finished */
        bson_t *e = event("step_outputs"), outs;
        BSON_APPEND_UTF8(e, "step", id);
        BSON_APPEND_DOCUMENT_BEGIN(e, "outputs", &outs);
        for (size_t i = 0; i < n; i++)
            BSON_APPEND_UTF8(&outs, names[i], paths[i]);
        bson_append_document_end(e, &outs);
        emit_json(r, e);
        return;
    }
    if (!final)
        return;
    clear_live(r);
    for (size_t i = 0; i < n; i++)
        fprintf(r->out, "  %s.%s: %s\n", id, names[i], paths[i]);
    fflush(r->out);
}

void report_run_finished(reporter *r, const char *run_id, const char *status, size_t done,
                         size_t cached, size_t failed, size_t skipped, size_t cancelled,
                         double seconds) {
    if (r->mode == REPORT_JSON) {
        bson_t *e = event("run_finished");
        BSON_APPEND_UTF8(e, "run", run_id);
        BSON_APPEND_UTF8(e, "status", status);
        BSON_APPEND_INT64(e, "done", (int64_t)done);
        BSON_APPEND_INT64(e, "cached", (int64_t)cached);
        BSON_APPEND_INT64(e, "failed", (int64_t)failed);
        BSON_APPEND_INT64(e, "skipped", (int64_t)skipped);
        BSON_APPEND_INT64(e, "cancelled", (int64_t)cancelled);
        BSON_APPEND_DOUBLE(e, "seconds", seconds);
        emit_json(r, e);
        return;
    }
    clear_live(r);
    char cached_note[48] = "";
    if (cached)
        snprintf(cached_note, sizeof(cached_note), " (%zu from the cache)", cached);
    line(r, "run %s %s in %.2fs: %zu done%s, %zu failed, %zu skipped%s", run_id, status, seconds,
         done, cached_note, failed, skipped, cancelled ? ", some cancelled" : "");
}

void report_tick(reporter *r) {
    if (r->mode != REPORT_TTY)
        return;
    clear_live(r);
    double now = report_now();
    int n = 0;
    for (size_t i = 0; i < r->n_steps; i++) {
        const live_entry *e = &r->live[i];
        if (!e->active)
            continue;
        fprintf(r->out, "  %s %-*s %6.1fs", r->color ? "\033[36m▸\033[0m" : "▸", (int)r->width,
                e->id, now - e->started);
        if (e->total)
            fprintf(r->out, "  %3.0f%% (%llu/%llu)", 100.0 * (double)e->done / (double)e->total,
                    (unsigned long long)e->done, (unsigned long long)e->total);
        if (e->attempt > 1)
            fprintf(r->out, "  attempt %d", e->attempt);
        fputc('\n', r->out);
        n++;
    }
    r->drawn = n;
    fflush(r->out);
}
