/* runreport.c - a run's report as one document (runreport.h). */
#include "runreport.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"
#include "modelreg.h"
#include "plan.h"
#include "run_steps.h"

int runreport_direction(const char *metric) {
    if (modelreg_lower_is_better(metric))
        return -1;
    static const char *const higher[] = {"acc",         "f1",        "bleu",       "rouge",
                                         "recall",      "precision", "auc",        "score",
                                         "exact_match", "win_rate",  "throughput", "tokens_per"};
    char low[128];
    size_t n = 0;
    for (; metric[n] && n < sizeof(low) - 1; n++)
        low[n] = (char)tolower((unsigned char)metric[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof(higher) / sizeof(higher[0]); i++)
        if (strstr(low, higher[i]))
            return 1;
    return 0;
}

int runreport_field(const bson_t *doc, const char *path, bson_iter_t *out) {
    bson_iter_t it;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, out);
}

const char *runreport_str(const bson_t *doc, const char *path, const char *fallback) {
    bson_iter_t it;
    return runreport_field(doc, path, &it) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL)
                                                                        : fallback;
}

int runreport_num(const bson_t *doc, const char *path, double *v) {
    bson_iter_t it;
    if (!runreport_field(doc, path, &it) || !BSON_ITER_HOLDS_NUMBER(&it))
        return 0;
    *v = bson_iter_as_double(&it);
    return 1;
}

int runreport_subdoc(const bson_iter_t *it, bson_t *out) {
    uint32_t len;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it))
        return 0;
    if (BSON_ITER_HOLDS_DOCUMENT(it))
        bson_iter_document(it, &len, &data);
    else
        bson_iter_array(it, &len, &data);
    return bson_init_static(out, data, len);
}

/* The next index key of an array being built. */
static const char *next_key(const bson_t *array, char *text, size_t size) {
    const char *k;
    bson_uint32_to_string(bson_count_keys(array), &k, text, size);
    return k;
}

static void append_copy(bson_t *out, const char *key, const bson_t *doc, const char *field) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, field))
        bson_append_iter(out, key, -1, &it);
}

static void append_time_or_null(bson_t *out, const char *key, double t) {
    if (t > 0)
        BSON_APPEND_DOUBLE(out, key, t);
    else
        BSON_APPEND_NULL(out, key);
}

static void append_str_or_null(bson_t *out, const char *key, const char *s) {
    if (s)
        BSON_APPEND_UTF8(out, key, s);
    else
        BSON_APPEND_NULL(out, key);
}

/* ---- why a step ran ------------------------------------------------------ */

/* The runs of the same pipeline before the reported one, oldest first. */
typedef struct earlier_runs {
    const char *pipeline, *before;
    char **ids; /* owned */
    size_t n;
    int failed;
} earlier_runs;

static int keep_earlier(void *ud, const char *key, size_t len, const bson_t *doc) {
    earlier_runs *e = ud;
    char id[256];
    snprintf(id, sizeof(id), "%.*s", (int)len, key);
    if (strcmp(id, e->before) >= 0)
        return 1; /* run ids sort by start: nothing after is earlier */
    if (strcmp(inspect_str(doc, "pipeline", ""), e->pipeline) != 0)
        return 0;
    char **ids = realloc(e->ids, (e->n + 1) * sizeof(*ids));
    char *copy = ids ? strndup(key, len) : NULL;
    if (ids)
        e->ids = ids;
    if (!copy) {
        e->failed = 1;
        return 1;
    }
    e->ids[e->n++] = copy;
    return 0;
}

static void free_earlier(earlier_runs *e) {
    for (size_t i = 0; i < e->n; i++)
        free(e->ids[i]);
    free(e->ids);
}

static int sub_document(const bson_t *doc, const char *field, bson_t *out) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, field) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
           runreport_subdoc(&it, out);
}

/* Why a step ran rather than came from the cache, as 'sluice status' says
 * it: what changed since the newest earlier run of the pipeline that ran
 * the step, by the two records' cache key parts. */
static void why_ran(MDB_txn *txn, const meta_db *m, const earlier_runs *e, const char *step_id,
                    const bson_t *rec, char *why, size_t size) {
    bson_t now, before;
    if (!sub_document(rec, "key_parts", &now)) {
        snprintf(why, size, "not cacheable");
        return;
    }
    for (size_t i = e->n; i > 0; i--) {
        char key[512];
        bson_t old;
        snprintf(key, sizeof(key), "%s/%s", e->ids[i - 1], step_id);
        if (meta_get(txn, m->steps, key, &old) != 0 || !sub_document(&old, "key_parts", &before))
            continue;
        const char *a = inspect_str(&old, "cache_key", ""), *b = inspect_str(rec, "cache_key", "");
        const char *was = inspect_str(&old, "status", "");
        if (*a && strcmp(a, b) == 0 && strcmp(was, "done") != 0 && strcmp(was, "cached") != 0) {
            snprintf(why, size, "unchanged since run %s, where it was %s: nothing cached",
                     e->ids[i - 1], was);
            return;
        }
        if (*a && strcmp(a, b) == 0) {
            snprintf(why, size,
                     "unchanged since run %s, but the cache was not used (--no-cache, "
                     "cache: false, or its outputs were gone)",
                     e->ids[i - 1]);
            return;
        }
        char diff[400];
        plan_explain(&before, &now, diff, sizeof(diff));
        snprintf(why, size, "since run %s: %s", e->ids[i - 1], diff);
        return;
    }
    snprintf(why, size, "no earlier run of this step");
}

/* ---- the steps ----------------------------------------------------------- */

typedef struct counts {
    int64_t done, cached, failed, skipped, cancelled, other;
} counts;

static void count_status(counts *c, const char *status) {
    if (strcmp(status, "done") == 0)
        c->done++;
    else if (strcmp(status, "cached") == 0)
        c->cached++;
    else if (strcmp(status, "failed") == 0)
        c->failed++;
    else if (strcmp(status, "skipped") == 0)
        c->skipped++;
    else if (strcmp(status, "cancelled") == 0)
        c->cancelled++;
    else
        c->other++;
}

/* One step's entry; its metrics also go flat (STEP.KEY) into metrics and
 * its outputs' hashes into outputs (for the version the run made). */
static void append_step(MDB_txn *txn, const meta_db *m, const earlier_runs *e, const char *id,
                        const bson_t *rec, bson_t *steps, bson_t *metrics, bson_t *outputs,
                        counts *c) {
    char idx[16], why[1024] = "";
    bson_t s;
    BSON_APPEND_DOCUMENT_BEGIN(steps, next_key(steps, idx, sizeof(idx)), &s);
    const char *status = inspect_str(rec, "status", "?");
    const char *from = inspect_str(rec, "cached_from", NULL);
    /* A cached step's record keeps the step run it reused where an error
     * would be: that is cached_from, not an error. */
    const char *error = strcmp(status, "cached") == 0 ? NULL : inspect_str(rec, "error", NULL);
    count_status(c, status);
    BSON_APPEND_UTF8(&s, "step", id);
    BSON_APPEND_UTF8(&s, "status", status);
    BSON_APPEND_BOOL(&s, "cached", strcmp(status, "cached") == 0);
    if (strcmp(status, "cached") == 0)
        snprintf(why, sizeof(why), "same inputs and parameters as %s",
                 from ? from : "an earlier run");
    else if (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0)
        why_ran(txn, m, e, id, rec, why, sizeof(why));
    else if (error)
        snprintf(why, sizeof(why), "%s", error);
    BSON_APPEND_UTF8(&s, "why", why);
    append_str_or_null(&s, "cached_from", from);
    double started = inspect_num(rec, "started"), finished = inspect_num(rec, "finished");
    if (started > 0 && finished >= started && strcmp(status, "cached") != 0)
        BSON_APPEND_DOUBLE(&s, "seconds", finished - started);
    else
        BSON_APPEND_NULL(&s, "seconds");
    BSON_APPEND_INT32(&s, "attempts", (int32_t)inspect_num(rec, "attempts"));
    append_str_or_null(&s, "error", error);
    append_str_or_null(&s, "log", inspect_str(rec, "log", NULL));
    bson_t last;
    record_last_metrics(rec, &last);
    BSON_APPEND_DOCUMENT(&s, "metrics", &last);
    bson_iter_t it;
    if (bson_iter_init(&it, &last))
        while (bson_iter_next(&it)) {
            char name[512];
            snprintf(name, sizeof(name), "%s.%s", id, bson_iter_key(&it));
            bson_append_iter(metrics, name, -1, &it);
        }
    bson_destroy(&last);
    bson_append_document_end(steps, &s);
    bson_iter_t outs, o;
    if (bson_iter_init_find(&outs, rec, "outputs") && bson_iter_recurse(&outs, &o))
        while (bson_iter_next(&o))
            if (BSON_ITER_HOLDS_UTF8(&o))
                BSON_APPEND_BOOL(outputs, bson_iter_utf8(&o, NULL), true);
}

/* ---- against a registered version ---------------------------------------- */

/* The newest version of a model whose artifact the run output. */
typedef struct made_version {
    const bson_t *outputs;
    int version;
    char artifact[160];
} made_version;

static int find_made(void *ud, const char *key, size_t len, const bson_t *doc) {
    made_version *mv = ud;
    (void)key;
    (void)len;
    const char *artifact = inspect_str(doc, "artifact", "");
    bson_iter_t it;
    if (*artifact && bson_iter_init_find(&it, mv->outputs, artifact)) {
        mv->version = (int)inspect_num(doc, "version");
        snprintf(mv->artifact, sizeof(mv->artifact), "%s", artifact);
    }
    return 0;
}

/* The run's own figures by metric name: each step's, by KEY (the later
 * step in the report's order wins a name two steps report). */
static void figures_by_key(const bson_t *steps, bson_t *out) {
    bson_init(out);
    bson_iter_t it, s, ms;
    if (!bson_iter_init(&it, steps))
        return;
    while (bson_iter_next(&it)) {
        if (!bson_iter_recurse(&it, &s) || !bson_iter_find(&s, "metrics") ||
            !bson_iter_recurse(&s, &ms))
            continue;
        while (bson_iter_next(&ms)) {
            bson_t next = BSON_INITIALIZER;
            bson_iter_t l;
            if (bson_iter_init(&l, out))
                while (bson_iter_next(&l))
                    if (strcmp(bson_iter_key(&l), bson_iter_key(&ms)) != 0)
                        bson_append_iter(&next, NULL, 0, &l);
            bson_append_iter(&next, NULL, 0, &ms);
            bson_destroy(out);
            bson_steal(out, &next);
        }
    }
}

static void append_comparison(bson_t *array, const char *name, const bson_iter_t *base,
                              const bson_iter_t *mine) {
    char idx[16];
    bson_t e;
    BSON_APPEND_DOCUMENT_BEGIN(array, next_key(array, idx, sizeof(idx)), &e);
    BSON_APPEND_UTF8(&e, "name", name);
    int has_a = base && BSON_ITER_HOLDS_NUMBER(base), has_b = mine && BSON_ITER_HOLDS_NUMBER(mine);
    double a = has_a ? bson_iter_as_double(base) : 0, b = has_b ? bson_iter_as_double(mine) : 0;
    if (has_a)
        BSON_APPEND_DOUBLE(&e, "baseline", a);
    else
        BSON_APPEND_NULL(&e, "baseline");
    if (has_b)
        BSON_APPEND_DOUBLE(&e, "run", b);
    else
        BSON_APPEND_NULL(&e, "run");
    int dir = runreport_direction(name);
    if (has_a && has_b)
        BSON_APPEND_DOUBLE(&e, "change", b - a);
    else
        BSON_APPEND_NULL(&e, "change");
    append_str_or_null(&e, "direction", dir < 0 ? "lower" : dir > 0 ? "higher" : NULL);
    const char *verdict = NULL;
    if (has_a && has_b && dir)
        verdict = a == b ? "same" : (b - a) * dir > 0 ? "better" : "worse";
    append_str_or_null(&e, "verdict", verdict);
    bson_append_document_end(array, &e);
}

/* The "against" part: the version spec names, its figures (the registry's:
 * from the step runs that evaluated it), the run's figures (those of the
 * version of the same model the run made, else the run's own metrics by
 * name), and a comparison per metric. */
static int append_against(meta_db *m, MDB_txn *txn, const char *spec, const bson_t *steps,
                          const bson_t *outputs, bson_t *doc) {
    char name[MODELREG_MAX_NAME + 1], why[512] = "its version cannot be read";
    int version = 0;
    int rc = modelreg_resolve(m, txn, spec, name, &version, why, sizeof(why));
    /* An alias that points nowhere yet, of a model that exists. */
    bson_t newest;
    const char *at = strchr(spec, '@');
    int alias_unset = rc == -ENOENT && at && !isdigit((unsigned char)at[1]) &&
                      modelreg_get_version(m, txn, name, 0, &newest) == 0;
    if (rc == -ENOENT && at && !alias_unset && modelreg_get_version(m, txn, name, 0, &newest) != 0)
        snprintf(why, sizeof(why), "no model is called '%s'", name);
    if (rc && !alias_unset) {
        fprintf(stderr, "sluice report: --against %s: %s\n", spec,
                rc == -EINVAL || rc == -ENOENT ? why : strerror(rc < 0 ? -rc : rc));
        return EXIT_BAD_INPUT;
    }
    bson_t a;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "against", &a);
    BSON_APPEND_UTF8(&a, "spec", spec);
    BSON_APPEND_UTF8(&a, "model", name);
    made_version mv = {outputs, 0, ""};
    char prefix[MODELREG_MAX_NAME + 4];
    snprintf(prefix, sizeof(prefix), "%s/v/", name);
    modelreg_each(m, txn, prefix, find_made, &mv);
    bson_t base = BSON_INITIALIZER, mine;
    const char *artifact = NULL;
    bson_t vdoc;
    if (!alias_unset && modelreg_get_version(m, txn, name, version, &vdoc) == 0)
        artifact = inspect_str(&vdoc, "artifact", NULL);
    if (artifact) {
        BSON_APPEND_INT32(&a, "version", version);
        BSON_APPEND_UTF8(&a, "artifact", artifact);
        bson_destroy(&base);
        modelreg_metrics(m, txn, artifact, &base, NULL);
    } else {
        /* The first CI run: nothing is at the alias yet. Not an error, so
         * that the run that makes the first production model reports. */
        fprintf(stderr, "sluice report: --against %s: %s: nothing to compare with\n", spec, why);
        BSON_APPEND_NULL(&a, "version");
        BSON_APPEND_NULL(&a, "artifact");
    }
    bson_t cand;
    BSON_APPEND_DOCUMENT_BEGIN(&a, "candidate", &cand);
    if (mv.version) {
        BSON_APPEND_UTF8(&cand, "from", "version");
        BSON_APPEND_INT32(&cand, "version", mv.version);
        BSON_APPEND_UTF8(&cand, "artifact", mv.artifact);
        modelreg_metrics(m, txn, mv.artifact, &mine, NULL);
    } else {
        BSON_APPEND_UTF8(&cand, "from", "run");
        BSON_APPEND_NULL(&cand, "version");
        BSON_APPEND_NULL(&cand, "artifact");
        figures_by_key(steps, &mine);
    }
    bson_append_document_end(&a, &cand);
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(&a, "metrics", &arr);
    bson_iter_t x, y;
    if (artifact && bson_iter_init(&x, &mine))
        while (bson_iter_next(&x)) {
            int has = bson_iter_init_find(&y, &base, bson_iter_key(&x));
            append_comparison(&arr, bson_iter_key(&x), has ? &y : NULL, &x);
        }
    if (artifact && bson_iter_init(&y, &base))
        while (bson_iter_next(&y))
            if (!bson_iter_init_find(&x, &mine, bson_iter_key(&y)))
                append_comparison(&arr, bson_iter_key(&y), &y, NULL);
    bson_append_array_end(&a, &arr);
    bson_append_document_end(doc, &a);
    bson_destroy(&base);
    bson_destroy(&mine);
    return 0;
}

/* ---- the report ------------------------------------------------------------ */

int runreport_build(const char *store, const char *spec, const char *against, bson_t *doc) {
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(store, &m, &txn))
        return EXIT_BAD_INPUT;
    char id[256];
    bson_t run;
    step_rows rows = {0};
    int status = inspect_resolve(txn, m.runs, "run", spec, id, sizeof(id));
    if (status == 0 && (meta_get(txn, m.runs, id, &run) != 0 ||
                        run_steps_collect(txn, &m, id, &run, &rows) != 0)) {
        fprintf(stderr, "sluice report: cannot read run %s in %s\n", id, store);
        status = EXIT_BAD_INPUT;
    }
    earlier_runs e = {status == 0 ? inspect_str(&run, "pipeline", "") : "", id, NULL, 0, 0};
    if (status == 0 && (meta_each(txn, m.runs, "", keep_earlier, &e) != 0 || e.failed)) {
        fprintf(stderr, "sluice report: cannot read the runs in %s\n", store);
        status = EXIT_BAD_INPUT;
    }
    if (status) {
        free_earlier(&e);
        run_steps_free(&rows);
        inspect_end(&m, txn);
        return status;
    }
    bson_init(doc);
    BSON_APPEND_INT32(doc, "v", RUNREPORT_VERSION);
    BSON_APPEND_UTF8(doc, "run", id);
    BSON_APPEND_UTF8(doc, "pipeline", inspect_str(&run, "pipeline", ""));
    append_str_or_null(doc, "file", inspect_str(&run, "file", NULL));
    BSON_APPEND_UTF8(doc, "status", record_effective_status(&run));
    double started = inspect_num(&run, "started"), finished = inspect_num(&run, "finished");
    append_time_or_null(doc, "started", started);
    append_time_or_null(doc, "finished", finished);
    if (started > 0 && finished >= started)
        BSON_APPEND_DOUBLE(doc, "seconds", finished - started);
    else
        BSON_APPEND_NULL(doc, "seconds");
    append_str_or_null(doc, "resumes", inspect_str(&run, "resumes", NULL));
    append_copy(doc, "git", &run, "git");
    append_copy(doc, "params", &run, "params");
    append_copy(doc, "tags", &run, "tags");

    bson_t steps = BSON_INITIALIZER, metrics = BSON_INITIALIZER, outputs = BSON_INITIALIZER;
    counts c = {0};
    for (size_t i = 0; i < rows.n; i++) {
        bson_t rec;
        if (meta_get(txn, m.steps, rows.rows[i].key, &rec) == 0)
            append_step(txn, &m, &e, run_steps_id(rows.rows[i].key), &rec, &steps, &metrics,
                        &outputs, &c);
    }
    bson_t cdoc;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "counts", &cdoc);
    BSON_APPEND_INT64(&cdoc, "steps", (int64_t)rows.n);
    BSON_APPEND_INT64(&cdoc, "done", c.done);
    BSON_APPEND_INT64(&cdoc, "cached", c.cached);
    BSON_APPEND_INT64(&cdoc, "failed", c.failed);
    BSON_APPEND_INT64(&cdoc, "skipped", c.skipped);
    BSON_APPEND_INT64(&cdoc, "cancelled", c.cancelled);
    BSON_APPEND_INT64(&cdoc, "other", c.other);
    bson_append_document_end(doc, &cdoc);
    BSON_APPEND_ARRAY(doc, "steps", &steps);
    BSON_APPEND_DOCUMENT(doc, "metrics", &metrics);
    if (against)
        status = append_against(&m, txn, against, &steps, &outputs, doc);
    else
        BSON_APPEND_NULL(doc, "against");
    bson_destroy(&steps);
    bson_destroy(&metrics);
    bson_destroy(&outputs);
    free_earlier(&e);
    run_steps_free(&rows);
    inspect_end(&m, txn);
    if (status)
        bson_destroy(doc);
    return status;
}
