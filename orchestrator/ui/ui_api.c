/* ui_api.c - the dashboard's routes, and the runs, a run, its step logs,
 * its live events and metrics (ui_api.h, docs/dashboard.md). */
#include "ui_api.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "modelreg.h"
#include "record.h"
#include "ui_run.h"

/* A page of runs holds at most this many; the default is smaller. */
#define MAX_PAGE 500
#define DEFAULT_PAGE 50
/* A step's log is sent from its end, at most this much. */
#define MAX_LOG (2 * 1024 * 1024)

void ui_error(ui_response *res, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "error", msg);
    ui_json(res, &doc);
    bson_destroy(&doc);
    res->status = status;
}

void ui_json(ui_response *res, const bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    buf_reset(&res->body);
    if (json)
        buf_append(&res->body, json, len);
    else
        buf_puts(&res->body, "{\"error\":\"cannot write JSON\"}");
    bson_free(json);
    res->status = json ? 200 : 500;
    res->type = "application/json";
}

int ui_begin(ui_ctx *c, MDB_txn **txn, ui_response *res) {
    if (!c->have_meta) {
        /* Read-only, unless an API key allows writes (a promotion). */
        int rc = meta_open(&c->m, c->store, c->api_key ? 0 : 1);
        if (rc == -ENOENT) {
            ui_error(res, 503, "the store %s has no runs yet", c->store);
            return -1;
        }
        if (rc != 0) {
            ui_error(res, 503, "cannot open the metadata of %s: %s", c->store,
                     meta_error(&c->m, rc));
            return -1;
        }
        c->have_meta = 1;
    }
    if (meta_begin(&c->m, 0, txn) != 0) {
        ui_error(res, 503, "cannot read the metadata of %s", c->store);
        return -1;
    }
    return 0;
}

const char *ui_str(const bson_t *doc, const char *key, const char *fallback) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return fallback;
}

double ui_num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_double(&it);
    return 0;
}

void ui_array_add(bson_t *array, const bson_t *doc) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(bson_count_keys(array), &k, idx, sizeof(idx));
    BSON_APPEND_DOCUMENT(array, k, doc);
}

int ui_resolve_run(ui_ctx *c, MDB_txn *txn, const char *spec, char *out, size_t size,
                   ui_response *res) {
    MDB_cursor *cur;
    MDB_val k = {0}, v;
    if (mdb_cursor_open(txn, c->m.runs, &cur) != 0) {
        ui_error(res, 500, "cannot read the runs");
        return -1;
    }
    int found = 0;
    if (strcmp(spec, "latest") == 0) {
        found = mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0;
    } else if (spec[0]) {
        k.mv_data = (void *)spec;
        k.mv_size = strlen(spec);
        if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size >= strlen(spec) &&
            memcmp(k.mv_data, spec, strlen(spec)) == 0) {
            found = 1;
            MDB_val k2 = k, v2;
            /* A prefix must name one run: the next key must not share it. */
            if (k.mv_size != strlen(spec) && mdb_cursor_get(cur, &k2, &v2, MDB_NEXT) == 0 &&
                k2.mv_size >= strlen(spec) && memcmp(k2.mv_data, spec, strlen(spec)) == 0) {
                mdb_cursor_close(cur);
                ui_error(res, 404, "run '%s' is ambiguous: give more of its id", spec);
                return -1;
            }
        }
    }
    if (found && k.mv_size < size) {
        memcpy(out, k.mv_data, k.mv_size);
        out[k.mv_size] = 0;
    }
    mdb_cursor_close(cur);
    if (!found || k.mv_size >= size) {
        ui_error(res, 404, "no run matches '%s'", spec);
        return -1;
    }
    return 0;
}

int ui_open_run(ui_ctx *c, const char *spec, MDB_txn **txn, char *id, size_t size, bson_t *run,
                ui_response *res) {
    if (ui_begin(c, txn, res) != 0)
        return -1;
    if (ui_resolve_run(c, *txn, spec, id, size, res) != 0 ||
        meta_get(*txn, c->m.runs, id, run) != 0) {
        if (!res->status)
            ui_error(res, 404, "no run %s", spec);
        meta_abort(*txn);
        return -1;
    }
    return 0;
}

/* ---- /api/runs ---------------------------------------------------------- */

/* A run as the list shows it: its view (effective status) without the
 * fields only its own page needs. */
static void append_run(bson_t *array, const char *key, size_t key_len, const bson_t *run) {
    bson_t item = BSON_INITIALIZER, view;
    bson_append_utf8(&item, "run", 3, key, (int)key_len);
    if (record_run_view(run, &view) == 0) {
        bson_iter_t it;
        bson_iter_init(&it, &view);
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "owner") && strcmp(bson_iter_key(&it), "overrides") &&
                strcmp(bson_iter_key(&it), "params"))
                bson_append_iter(&item, NULL, 0, &it);
        bson_destroy(&view);
    }
    double end = ui_num(run, "finished"), start = ui_num(run, "started");
    if (end > 0 && start > 0)
        BSON_APPEND_DOUBLE(&item, "took", end - start);
    ui_array_add(array, &item);
    bson_destroy(&item);
}

/* Newest first: run ids sort in start order, so the page is read backwards
 * from the cursor (the last run id of the page before) with an LMDB
 * cursor; no run older than the page is read unless filters skip runs. */
static void api_runs(ui_ctx *c, const char *query, ui_response *res) {
    char pipeline[256] = "", status[64] = "", tag[512] = "", cursor[256] = "", lim[32] = "";
    ui_query(query, "pipeline", pipeline, sizeof(pipeline));
    ui_query(query, "status", status, sizeof(status));
    ui_query(query, "tag", tag, sizeof(tag));
    ui_query(query, "cursor", cursor, sizeof(cursor));
    long limit = DEFAULT_PAGE;
    if (ui_query(query, "limit", lim, sizeof(lim))) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || !lim[0] || limit < 1 || limit > MAX_PAGE) {
            ui_error(res, 400, "limit takes a number from 1 to %d, not '%s'", MAX_PAGE, lim);
            return;
        }
    }
    if (tag[0] && (!strchr(tag, '=') || tag[0] == '=')) {
        ui_error(res, 400, "tag takes KEY=VALUE, not '%s'", tag);
        return;
    }
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0) {
        if (res->status == 503 && strstr(res->body.data ? res->body.data : "", "no runs yet")) {
            bson_t empty = BSON_INITIALIZER, arr;
            BSON_APPEND_ARRAY_BEGIN(&empty, "runs", &arr);
            bson_append_array_end(&empty, &arr);
            BSON_APPEND_NULL(&empty, "next");
            ui_json(res, &empty);
            bson_destroy(&empty);
        }
        return;
    }
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->m.runs, &cur) != 0) {
        meta_abort(txn);
        ui_error(res, 500, "cannot read the runs");
        return;
    }
    MDB_val k = {0}, v;
    int rc;
    if (cursor[0]) {
        k.mv_data = cursor;
        k.mv_size = strlen(cursor);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        /* At the cursor or past it (or past the end): the run before. */
        rc =
            rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == strlen(cursor) && memcmp(k.mv_data, cursor, k.mv_size) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    }
    bson_t doc = BSON_INITIALIZER, arr;
    BSON_APPEND_ARRAY_BEGIN(&doc, "runs", &arr);
    long n = 0;
    char last[256] = "";
    for (; rc == 0 && n < limit; rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
        bson_t run;
        if (!bson_init_static(&run, v.mv_data, v.mv_size))
            continue;
        if (pipeline[0] && strcmp(ui_str(&run, "pipeline", ""), pipeline) != 0)
            continue;
        if (status[0] && strcmp(record_effective_status(&run), status) != 0)
            continue;
        if (tag[0] && !record_has_tag(&run, tag))
            continue;
        append_run(&arr, k.mv_data, k.mv_size, &run);
        snprintf(last, sizeof(last), "%.*s", (int)k.mv_size, (const char *)k.mv_data);
        n++;
    }
    bson_append_array_end(&doc, &arr);
    /* A full page may have more after it: the client asks with its last id. */
    if (n == limit && rc == 0)
        BSON_APPEND_UTF8(&doc, "next", last);
    else
        BSON_APPEND_NULL(&doc, "next");
    mdb_cursor_close(cur);
    meta_abort(txn);
    ui_json(res, &doc);
    bson_destroy(&doc);
}

/* ---- /api/runs/ID ------------------------------------------------------- */

/* Why a step ran or was reused, in words. */
static const char *cache_reason(const bson_t *step, char *out, size_t size) {
    const char *status = ui_str(step, "status", "");
    const char *from = ui_str(step, "cached_from", NULL);
    if (from)
        snprintf(out, size, "reused the outputs of %s (same cache key)", from);
    else if (!strcmp(status, "done") && ui_str(step, "cache_key", NULL))
        snprintf(out, size, "ran: no reusable cache entry for its key (or caching was off)");
    else if (!strcmp(status, "done"))
        snprintf(out, size, "ran: not cacheable");
    else
        return NULL;
    return out;
}

/* A step record as the run page shows it: metrics summarised (last value
 * and count of each), the series being at /api/metrics. */
static void append_step(bson_t *array, const char *id, const bson_t *rec) {
    bson_t item = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&item, "step", id);
    bson_iter_t it;
    bson_iter_init(&it, rec);
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "metrics") && strcmp(bson_iter_key(&it), "key_parts"))
            bson_append_iter(&item, NULL, 0, &it);
    BSON_APPEND_UTF8(&item, "state", ui_str(rec, "status", "unknown"));
    char why[600];
    const char *reason = cache_reason(rec, why, sizeof(why));
    if (reason)
        BSON_APPEND_UTF8(&item, "cache_reason", reason);
    else
        BSON_APPEND_NULL(&item, "cache_reason");
    double s = ui_num(rec, "started"), f = ui_num(rec, "finished");
    if (s > 0 && f > 0)
        BSON_APPEND_DOUBLE(&item, "took", f - s);
    bson_t last;
    if (record_last_metrics(rec, &last) == 0) {
        BSON_APPEND_DOCUMENT(&item, "metrics", &last);
        bson_destroy(&last);
    }
    ui_array_add(array, &item);
    bson_destroy(&item);
}

typedef struct step_list {
    bson_t *array;
    const char *const *ids; /* the pipeline's step ids, or NULL */
    size_t n_ids;
    char *seen; /* per id: recorded */
} step_list;

static int each_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    step_list *l = ud;
    const char *slash = memchr(key, '/', len);
    char id[300];
    snprintf(id, sizeof(id), "%.*s", slash ? (int)(key + len - slash - 1) : (int)len,
             slash ? slash + 1 : key);
    for (size_t i = 0; i < l->n_ids; i++)
        if (strcmp(l->ids[i], id) == 0)
            l->seen[i] = 1;
    append_step(l->array, id, doc);
    return 0;
}

static void api_run(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    char id[256];
    bson_t run;
    if (ui_open_run(c, spec, &txn, id, sizeof(id), &run, res) != 0)
        return;
    bson_t doc = BSON_INITIALIZER, view, arr;
    BSON_APPEND_UTF8(&doc, "run", id);
    if (record_run_view(&run, &view) == 0) {
        bson_concat(&doc, &view);
        bson_destroy(&view);
    }
    ui_run_steps steps = {0};
    ui_run_pipeline_steps(&run, &steps);
    step_list l = {&arr, (const char *const *)steps.ids, steps.n, calloc(steps.n + 1, 1)};
    if (!l.seen)
        l.n_ids = 0;
    BSON_APPEND_ARRAY_BEGIN(&doc, "step_runs", &arr);
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s/", id);
    meta_each(txn, c->m.steps, prefix, each_step, &l);
    /* Steps of the pipeline with no record yet: waiting, or never run. */
    const char *effective = record_effective_status(&run);
    for (size_t i = 0; i < l.n_ids; i++) {
        if (l.seen[i])
            continue;
        bson_t item = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&item, "step", steps.ids[i]);
        BSON_APPEND_UTF8(&item, "state", strcmp(effective, "running") ? "not run" : "waiting");
        BSON_APPEND_NULL(&item, "cache_reason");
        ui_array_add(&arr, &item);
        bson_destroy(&item);
    }
    bson_append_array_end(&doc, &arr);
    free(l.seen);
    ui_run_steps_free(&steps);
    meta_abort(txn);
    ui_json(res, &doc);
    bson_destroy(&doc);
}

/* ---- a step's log ------------------------------------------------------- */

static void api_log(ui_ctx *c, const char *spec, const char *step, ui_response *res) {
    MDB_txn *txn;
    char id[256], key[600];
    bson_t rec;
    if (ui_begin(c, &txn, res) != 0)
        return;
    if (ui_resolve_run(c, txn, spec, id, sizeof(id), res) != 0) {
        meta_abort(txn);
        return;
    }
    snprintf(key, sizeof(key), "%s/%s", id, step);
    char path[4096] = "";
    if (meta_get(txn, c->m.steps, key, &rec) == 0)
        snprintf(path, sizeof(path), "%s", ui_str(&rec, "log", ""));
    meta_abort(txn);
    if (!path[0]) {
        /* A running step has no record yet: its log is where the run keeps it. */
        if (step[0] == '.' || strchr(step, '/')) {
            ui_error(res, 400, "'%s' is no step id", step);
            return;
        }
        snprintf(path, sizeof(path), "%s/runs/%s/steps/%s.log", c->store, id, step);
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        ui_error(res, 404, "step %s of run %s has no log (yet)", step, id);
        return;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > MAX_LOG) {
        fseek(f, st.st_size - MAX_LOG, SEEK_SET);
        buf_puts(&res->body, "[... the log's start is cut: see the file ...]\n");
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&res->body, chunk, n);
    fclose(f);
    res->status = 200;
    res->type = "text/plain; charset=utf-8";
}

/* ---- /api/runs/ID/events ------------------------------------------------ */

typedef struct events_state {
    char run[256];
    char *last; /* owned: the last snapshot sent */
    unsigned quiet_ticks;
} events_state;

static void events_free(void *p) {
    events_state *s = p;
    free(s->last);
    free(s);
}

static int snap_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    bson_t *steps = ud;
    const char *slash = memchr(key, '/', len);
    if (!slash)
        return 0;
    bson_append_utf8(steps, slash + 1, (int)(key + len - slash - 1),
                     ui_str(doc, "status", "unknown"), -1);
    return 0;
}

/* One poll: the run's status and its steps' states; an event when they
 * changed since the last, and the end once the run is over. */
static int events_poll(void *ctx, void *p, buf *out) {
    ui_ctx *c = ctx;
    events_state *s = p;
    MDB_txn *txn;
    ui_response scratch = {0};
    bson_t run;
    if (ui_begin(c, &txn, &scratch) != 0) {
        buf_free(&scratch.body);
        return 0;
    }
    buf_free(&scratch.body);
    if (meta_get(txn, c->m.runs, s->run, &run) != 0) {
        meta_abort(txn);
        buf_puts(out, "event: end\ndata: {}\n\n");
        return 1;
    }
    const char *status = record_effective_status(&run);
    int over = strcmp(status, "running") != 0;
    bson_t doc = BSON_INITIALIZER, steps;
    BSON_APPEND_UTF8(&doc, "run", s->run);
    BSON_APPEND_UTF8(&doc, "status", status);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "steps", &steps);
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s/", s->run);
    meta_each(txn, c->m.steps, prefix, snap_step, &steps);
    bson_append_document_end(&doc, &steps);
    meta_abort(txn);
    char *json = bson_as_relaxed_extended_json(&doc, NULL);
    bson_destroy(&doc);
    if (!json)
        return 0;
    if (!s->last || strcmp(s->last, json) != 0) {
        buf_printf(out, "event: state\ndata: %s\n\n", json);
        free(s->last);
        s->last = strdup(json);
        s->quiet_ticks = 0;
    } else if (++s->quiet_ticks % 60 == 0) {
        buf_puts(out, ": still here\n\n"); /* proxies drop idle streams */
    }
    bson_free(json);
    if (over)
        buf_puts(out, "event: end\ndata: {}\n\n");
    return over;
}

static void api_events(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    char id[256];
    if (ui_begin(c, &txn, res) != 0)
        return;
    int rc = ui_resolve_run(c, txn, spec, id, sizeof(id), res);
    meta_abort(txn);
    if (rc != 0)
        return;
    events_state *s = calloc(1, sizeof(*s));
    if (!s) {
        ui_error(res, 500, "out of memory");
        return;
    }
    snprintf(s->run, sizeof(s->run), "%s", id);
    res->status = 200;
    res->type = "text/event-stream";
    res->stream = 1;
    res->state = s;
    res->poll = events_poll;
    res->free_state = events_free;
}

/* ---- /api/metrics ------------------------------------------------------- */

/* Every point of every metric of a run: {step: {key: [{index, value}]}}. */
static int metric_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    bson_t *out = ud;
    const char *slash = memchr(key, '/', len);
    bson_iter_t it, ms, m;
    if (!slash || !bson_iter_init_find(&it, doc, "metrics") || !bson_iter_recurse(&it, &ms))
        return 0;
    bson_t series = BSON_INITIALIZER; /* key -> array, built as one pass per key */
    while (bson_iter_next(&ms)) {
        if (!bson_iter_recurse(&ms, &m))
            continue;
        const char *name = NULL;
        double value = 0, index = 0;
        while (bson_iter_next(&m)) {
            const char *f = bson_iter_key(&m);
            if (!strcmp(f, "key") && BSON_ITER_HOLDS_UTF8(&m))
                name = bson_iter_utf8(&m, NULL);
            else if (!strcmp(f, "value"))
                value = bson_iter_as_double(&m);
            else if (!strcmp(f, "index"))
                index = bson_iter_as_double(&m);
        }
        if (!name)
            continue;
        bson_t point = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&point, "key", name);
        BSON_APPEND_DOUBLE(&point, "index", index);
        BSON_APPEND_DOUBLE(&point, "value", value);
        ui_array_add(&series, &point);
        bson_destroy(&point);
    }
    if (bson_count_keys(&series)) {
        bson_t item = BSON_INITIALIZER;
        bson_append_utf8(&item, "step", 4, slash + 1, (int)(key + len - slash - 1));
        BSON_APPEND_ARRAY(&item, "points", &series);
        ui_array_add(out, &item);
        bson_destroy(&item);
    }
    bson_destroy(&series);
    return 0;
}

typedef struct across {
    const char *name;
    bson_t *array;
    const char *run;
    double started;
} across;

static int across_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    across *a = ud;
    const char *slash = memchr(key, '/', len);
    bson_t last;
    bson_iter_t it;
    if (!slash || record_last_metrics(doc, &last) != 0)
        return 0;
    if (bson_iter_init_find(&it, &last, a->name) && BSON_ITER_HOLDS_NUMBER(&it)) {
        bson_t item = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&item, "run", a->run);
        bson_append_utf8(&item, "step", 4, slash + 1, (int)(key + len - slash - 1));
        BSON_APPEND_DOUBLE(&item, "started", a->started);
        BSON_APPEND_DOUBLE(&item, "value", bson_iter_as_double(&it));
        ui_array_add(a->array, &item);
        bson_destroy(&item);
    }
    bson_destroy(&last);
    return 0;
}

static void api_metrics(ui_ctx *c, const char *query, ui_response *res) {
    char runspec[256] = "", name[256] = "", pipeline[256] = "", lim[32] = "";
    ui_query(query, "run", runspec, sizeof(runspec));
    ui_query(query, "name", name, sizeof(name));
    ui_query(query, "pipeline", pipeline, sizeof(pipeline));
    long limit = 200;
    if (ui_query(query, "limit", lim, sizeof(lim)))
        limit = strtol(lim, NULL, 10);
    if (limit < 1 || limit > 10000)
        limit = 200;
    if (!runspec[0] && !name[0]) {
        ui_error(res, 400, "give run=ID (a run's series) or name=METRIC (one metric across runs)");
        return;
    }
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0)
        return;
    bson_t doc = BSON_INITIALIZER, arr;
    if (runspec[0]) {
        char id[256];
        if (ui_resolve_run(c, txn, runspec, id, sizeof(id), res) != 0) {
            meta_abort(txn);
            bson_destroy(&doc);
            return;
        }
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "%s/", id);
        BSON_APPEND_UTF8(&doc, "run", id);
        BSON_APPEND_ARRAY_BEGIN(&doc, "steps", &arr);
        meta_each(txn, c->m.steps, prefix, metric_step, &arr);
        bson_append_array_end(&doc, &arr);
    } else {
        /* The newest runs first, up to limit runs, oldest of them first in
         * the answer (a chart's x axis). */
        BSON_APPEND_UTF8(&doc, "name", name);
        bson_t found = BSON_INITIALIZER;
        MDB_cursor *cur;
        if (mdb_cursor_open(txn, c->m.runs, &cur) == 0) {
            MDB_val k, v;
            long seen = 0;
            for (int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST); rc == 0 && seen < limit;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
                bson_t run;
                if (!bson_init_static(&run, v.mv_data, v.mv_size))
                    continue;
                if (pipeline[0] && strcmp(ui_str(&run, "pipeline", ""), pipeline))
                    continue;
                seen++;
                char id[256], prefix[300];
                snprintf(id, sizeof(id), "%.*s", (int)k.mv_size, (const char *)k.mv_data);
                snprintf(prefix, sizeof(prefix), "%s/", id);
                across a = {name, &found, id, ui_num(&run, "started")};
                meta_each(txn, c->m.steps, prefix, across_step, &a);
            }
            mdb_cursor_close(cur);
        }
        /* found is newest first; the answer oldest first. */
        BSON_APPEND_ARRAY_BEGIN(&doc, "points", &arr);
        uint32_t n = bson_count_keys(&found);
        for (uint32_t i = n; i > 0; i--) {
            char idx[16];
            const char *key;
            bson_uint32_to_string(i - 1, &key, idx, sizeof(idx));
            bson_iter_t it;
            if (bson_iter_init_find(&it, &found, key))
                bson_append_iter(&arr, NULL, 0, &it);
        }
        bson_append_array_end(&doc, &arr);
        bson_destroy(&found);
    }
    meta_abort(txn);
    ui_json(res, &doc);
    bson_destroy(&doc);
}

/* ---- writes (with the API key) ------------------------------------------ */

/* Cancels a running run as Ctrl-C in its terminal would: SIGTERM to the
 * sluice process that owns it (when that process is alive on this host),
 * which stops its steps and records the run as interrupted. */
static void api_cancel(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    char id[256];
    bson_t run;
    if (ui_open_run(c, spec, &txn, id, sizeof(id), &run, res) != 0)
        return;
    bson_iter_t it;
    int64_t pid = 0;
    if (bson_iter_init(&it, &run) && bson_iter_find_descendant(&it, "owner.pid", &it) &&
        BSON_ITER_HOLDS_NUMBER(&it))
        pid = bson_iter_as_int64(&it);
    const char *status = record_effective_status(&run);
    int alive = record_owner_alive(&run);
    meta_abort(txn);
    if (strcmp(status, "running") != 0) {
        ui_error(res, 409, "run %s is not running (it is %s)", id, status);
        return;
    }
    if (alive != 1 || pid <= 1) {
        ui_error(res, 409, "run %s is not run by a process of this host", id);
        return;
    }
    if (kill((pid_t)pid, SIGTERM) != 0) {
        ui_error(res, 500, "cannot signal the process of run %s: %s", id, strerror(errno));
        return;
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "run", id);
    BSON_APPEND_UTF8(&doc, "action", "cancel");
    BSON_APPEND_INT64(&doc, "signalled", pid);
    ui_json(res, &doc);
    res->status = 202;
    bson_destroy(&doc);
}

extern char **environ;

/* Starts schedule NAME's pipeline now through 'sluice schedule fire NAME
 * --trigger ui --json', the command POST /hooks/NAME of sluice serve runs
 * too: it records the cause and detaches the run, so it ends at once, and
 * its exit status says what came of it (docs/schedules.md). The loop waits
 * for it: a write with the key, tens of milliseconds. */
static void api_trigger(ui_ctx *c, const char *name, ui_response *res) {
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) {
        ui_error(res, 500, "cannot find the sluice program: %s", strerror(errno));
        return;
    }
    exe[len] = '\0';
    char *argv[] = {exe,         "--store", (char *)c->store, "schedule", "fire", (char *)name,
                    "--trigger", "ui",      "--json",         NULL};
    int out[2];
    if (pipe(out) != 0) {
        ui_error(res, 500, "cannot make a pipe: %s", strerror(errno));
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        ui_error(res, 500, "cannot start %s: %s", exe, strerror(rc));
        return;
    }
    char said[4096];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof(said) - 1 && ((got = read(out[0], said + n, sizeof(said) - 1 - n)) > 0 ||
                                    (got < 0 && errno == EINTR)))
        n += got > 0 ? (size_t)got : 0;
    said[n] = '\0';
    close(out[0]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    int status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    while (n > 0 && said[n - 1] == '\n')
        said[--n] = '\0';
    bson_t doc;
    bson_error_t err;
    if (status == 0 && bson_init_from_json(&doc, said, -1, &err)) {
        ui_json(res, &doc);
        res->status = 202;
        bson_destroy(&doc);
        return;
    }
    /* 'schedule fire' says why on stderr; its statuses 3 and 5 are no
     * schedule and a paused one (cmd_schedule.c) */
    const char *why = strncmp(said, "sluice schedule fire: ", 22) == 0 ? said + 22 : said;
    ui_error(res,
             status == 3   ? 404
             : status == 5 ? 409
             : status == 2 ? 400
                           : 500,
             "%s", *why ? why : "sluice schedule fire failed");
}

/* Points an alias of a model at a version, through the registry's gates
 * as 'sluice models promote' does; the audit trail says who: "sluice ui
 * (USER)". Body: {"alias", "version" | "artifact", "reason", "if": [...],
 * "better_than"}. */
static void api_promote(ui_ctx *c, const char *name, const ui_request *req, ui_response *res) {
    bson_t body;
    bson_error_t err;
    if (!bson_init_from_json(&body, req->body_len ? req->body : "{}",
                             req->body_len ? (ssize_t)req->body_len : 2, &err)) {
        ui_error(res, 400, "the body is no JSON object: %s", err.message);
        return;
    }
    const char *ifs[16];
    size_t n_ifs = 0;
    bson_iter_t it, sub;
    if (bson_iter_init_find(&it, &body, "if") && bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub) && n_ifs < 16)
            if (BSON_ITER_HOLDS_UTF8(&sub))
                ifs[n_ifs++] = bson_iter_utf8(&sub, NULL);
    const char *alias = ui_str(&body, "alias", NULL);
    int version = (int)ui_num(&body, "version");
    const char *artifact = ui_str(&body, "artifact", NULL);
    if (!alias || !modelreg_alias_ok(alias) || (version <= 0 && !artifact)) {
        ui_error(res, 400,
                 "give \"alias\" (a name beginning with a letter) and \"version\" (a "
                 "number from 1) or \"artifact\"");
        bson_destroy(&body);
        return;
    }
    char user[128], who[200];
    modelreg_user_name(user, sizeof(user));
    snprintf(who, sizeof(who), "%s (sluice ui)", user);
    ui_response scratch = {0};
    MDB_txn *txn;
    if (ui_begin(c, &txn, &scratch) != 0) { /* opens the store, writable with a key */
        *res = scratch;
        bson_destroy(&body);
        return;
    }
    meta_abort(txn);
    buf_free(&scratch.body);
    modelreg_promotion p = {.name = name,
                            .version = version > 0 ? version : 0,
                            .artifact = version > 0 ? NULL : artifact,
                            .alias = alias,
                            .ifs = ifs,
                            .n_ifs = n_ifs,
                            .better_than = ui_str(&body, "better_than", NULL),
                            .reason = ui_str(&body, "reason", NULL),
                            .who = who,
                            .time = (double)time(NULL)};
    int got = 0, previous = 0;
    char why[512] = "";
    int rc = modelreg_promote(&c->m, &p, &got, &previous, why, sizeof(why));
    if (rc < 0) {
        ui_error(res, rc == -ENOENT ? 404 : 400, "%s", why[0] ? why : meta_strerror(rc));
    } else {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "model", name);
        BSON_APPEND_UTF8(&doc, "alias", alias);
        BSON_APPEND_INT32(&doc, "version", got);
        BSON_APPEND_INT32(&doc, "previous", previous);
        BSON_APPEND_UTF8(&doc, "result",
                         rc == MODELREG_PROMOTED  ? "promoted"
                         : rc == MODELREG_REFUSED ? "refused"
                                                  : "unchanged");
        if (why[0])
            BSON_APPEND_UTF8(&doc, "why", why);
        ui_json(res, &doc);
        res->status = rc == MODELREG_REFUSED ? 409 : 200;
        bson_destroy(&doc);
    }
    bson_destroy(&body);
}

/* ---- routes -------------------------------------------------------------- */

/* Splits path (after a prefix) into its '/' parts, %-decoded, in place. */
static size_t split(char *path, char **parts, size_t max) {
    size_t n = 0;
    for (char *p = path; *p && n < max;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = 0;
        if (ui_unescape(p) != 0)
            return 0;
        parts[n++] = p;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n;
}

static int authorized(const ui_ctx *c, const ui_request *req) {
    if (!c->api_key)
        return 0;
    size_t klen = strlen(c->api_key);
    if (strncmp(req->auth, "Bearer ", 7) != 0 || strlen(req->auth + 7) != klen)
        return 0;
    /* Constant time: the key is a secret. */
    unsigned char diff = 0;
    for (size_t i = 0; i < klen; i++)
        diff |= (unsigned char)(req->auth[7 + i] ^ c->api_key[i]);
    return diff == 0;
}

void ui_api_handle(void *ctx, const ui_request *req, ui_response *res) {
    ui_ctx *c = ctx;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (strncmp(req->path, "/api/", 5) != 0) {
        for (size_t i = 0; i < ui_n_assets; i++)
            if (strcmp(ui_assets[i].path, req->path) == 0) {
                if (!get) {
                    ui_error(res, 405, "%s takes GET", req->path);
                    return;
                }
                res->status = 200;
                res->type = ui_assets[i].type;
                res->static_body = ui_assets[i].data;
                res->static_len = ui_assets[i].len;
                return;
            }
        ui_error(res, 404, "no page %s", req->path);
        return;
    }
    char path[sizeof(req->path)];
    snprintf(path, sizeof(path), "%s", req->path + 5);
    char *parts[8];
    size_t n = split(path, parts, 8);
    if (n == 0) {
        ui_error(res, 404, "no route %s", req->path);
        return;
    }
    if (!get) {
        if (strcmp(req->method, "POST") != 0) {
            ui_error(res, 405, "the API takes GET (and POST with an API key)");
        } else if (!c->api_key) {
            ui_error(res, 403,
                     "this dashboard is read-only: start 'sluice ui' with --api-key-file "
                     "to allow changes");
        } else if (!authorized(c, req)) {
            ui_error(res, 401, "give the API key as 'Authorization: Bearer KEY'");
        } else if (!strcmp(parts[0], "runs") && n == 3 && !strcmp(parts[2], "cancel")) {
            api_cancel(c, parts[1], res);
        } else if (!strcmp(parts[0], "models") && n == 3 && !strcmp(parts[2], "promote")) {
            api_promote(c, parts[1], req, res);
        } else if (!strcmp(parts[0], "schedules") && n == 3 && !strcmp(parts[2], "trigger")) {
            api_trigger(c, parts[1], res);
        } else {
            ui_error(res, 404, "no action %s in this version", req->path);
        }
        return;
    }
    const char *what = parts[0];
    if (!strcmp(what, "runs") && n == 1)
        api_runs(c, req->query, res);
    else if (!strcmp(what, "runs") && n == 2)
        api_run(c, parts[1], res);
    else if (!strcmp(what, "runs") && n == 3 && !strcmp(parts[2], "graph.svg"))
        ui_graph_svg(c, parts[1], res);
    else if (!strcmp(what, "runs") && n == 3 && !strcmp(parts[2], "events"))
        api_events(c, parts[1], res);
    else if (!strcmp(what, "runs") && n == 5 && !strcmp(parts[2], "steps") &&
             !strcmp(parts[4], "log"))
        api_log(c, parts[1], parts[3], res);
    else if (!strcmp(what, "artifacts") && n == 2)
        ui_artifact(c, parts[1], req->query, res);
    else if (!strcmp(what, "lineage") && n == 2)
        ui_lineage(c, parts[1], res);
    else if (!strcmp(what, "lineage") && n == 3 && !strcmp(parts[2], "graph.svg"))
        ui_lineage_svg(c, parts[1], res);
    else if (!strcmp(what, "metrics") && n == 1)
        api_metrics(c, req->query, res);
    else if (!strcmp(what, "models") && n == 1)
        ui_models(c, res);
    else if (!strcmp(what, "schedules") && n == 1)
        ui_schedules(c, res);
    else if (!strcmp(what, "traces") && n == 1)
        ui_traces(c, req->query, res);
    else
        ui_error(res, 404, "no route %s (see docs/dashboard.md)", req->path);
}

void ui_api_close(ui_ctx *c) {
    if (c->have_meta)
        meta_close(&c->m);
    c->have_meta = 0;
    ui_graph_close(c);
}
