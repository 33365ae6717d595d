#include "inspect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "modelreg.h"
#include "record.h"

int inspect_open(const char *store, meta_db *m, int missing_ok) {
    int rc = meta_open(m, store, 1);
    if (rc == 0)
        return 0;
    if (rc == -ENOENT && missing_ok)
        return INSPECT_NO_STORE;
    if (rc == -ENOENT)
        fprintf(stderr, "sluice: no runs in %s yet (run a pipeline, or give --store)\n", store);
    else
        fprintf(stderr, "sluice: cannot read the metadata in %s/meta: %s\n", store,
                meta_error(m, rc));
    return EXIT_BAD_INPUT;
}

int inspect_begin(const char *store, meta_db *m, MDB_txn **txn) {
    return inspect_begin_ex(store, 0, m, txn);
}

int inspect_begin_ex(const char *store, int missing_ok, meta_db *m, MDB_txn **txn) {
    int open = inspect_open(store, m, missing_ok);
    if (open)
        return open;
    int rc = meta_begin(m, 0, txn);
    if (rc == 0)
        return 0;
    fprintf(stderr, "sluice: cannot read the metadata: %s\n", meta_strerror(rc));
    meta_close(m);
    return EXIT_BAD_INPUT;
}

void inspect_end(meta_db *m, MDB_txn *txn) {
    meta_abort(txn);
    meta_close(m);
}

void inspect_append_item(bson_t *array, const char *id_field, const char *key, size_t key_len,
                         const bson_t *doc) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(bson_count_keys(array), &k, idx, sizeof(idx));
    bson_t item;
    BSON_APPEND_DOCUMENT_BEGIN(array, k, &item);
    bson_append_utf8(&item, id_field, -1, key, (int)key_len);
    bson_concat(&item, doc);
    bson_append_document_end(array, &item);
}

typedef struct match {
    const char *prefix;
    char *out;
    size_t size;
    int count;
} match;

static int on_match(void *ud, const char *key, size_t len, const bson_t *doc) {
    match *m = ud;
    (void)doc;
    /* Step keys are RUN/STEP: only whole first parts count as matches. */
    if (memchr(key, '/', len) && !strchr(m->prefix, '/'))
        return 0;
    if (m->count++ == 0)
        snprintf(m->out, m->size, "%.*s", (int)len, key);
    return m->count > 1;
}

/* Keeps the last whole key (no '/'): ids sort by start, so the newest. */
static int on_last(void *ud, const char *key, size_t len, const bson_t *doc) {
    match *m = ud;
    (void)doc;
    if (!memchr(key, '/', len)) {
        snprintf(m->out, m->size, "%.*s", (int)len, key);
        m->count = 1;
    }
    return 0;
}

int inspect_resolve(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *prefix, char *out,
                    size_t size) {
    match m = {prefix, out, size, 0};
    if (strcmp(what, "run") == 0 && strcmp(prefix, "latest") == 0) {
        int rc = meta_each(txn, dbi, "", on_last, &m);
        if (rc == 0 && m.count)
            return 0;
        fprintf(stderr, "sluice: %s\n",
                rc ? meta_strerror(rc) : "no runs yet: 'latest' names none");
        return EXIT_BAD_INPUT;
    }
    int rc = meta_each(txn, dbi, prefix, on_match, &m);
    if (rc) {
        fprintf(stderr, "sluice: cannot read the metadata: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    if (m.count == 0) {
        fprintf(stderr, "sluice: no %s matches '%s'\n", what, prefix);
        return EXIT_BAD_INPUT;
    }
    if (m.count > 1) {
        fprintf(stderr, "sluice: '%s' is ambiguous: more than one %s starts with it\n", prefix,
                what);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

/* The newest step run of a step (keys RUN/STEP sort by run, so the last
 * one seen) that has the output. */
typedef struct newest_output {
    const char *step, *output;
    char *out;
    size_t size;
    int found, step_seen;
} newest_output;

/* The hash of output `output` in step run doc, or NULL. */
static const char *output_hash(const bson_t *doc, const char *output) {
    bson_iter_t it, outs;
    if (bson_iter_init_find(&it, doc, "outputs") && bson_iter_recurse(&it, &outs) &&
        bson_iter_find(&outs, output) && BSON_ITER_HOLDS_UTF8(&outs))
        return bson_iter_utf8(&outs, NULL);
    return NULL;
}

static int on_step_output(void *ud, const char *key, size_t len, const bson_t *doc) {
    newest_output *n = ud;
    const char *slash = memchr(key, '/', len);
    if (!slash || strlen(n->step) != len - (size_t)(slash + 1 - key) ||
        memcmp(slash + 1, n->step, strlen(n->step)) != 0)
        return 0;
    n->step_seen = 1;
    const char *hash = output_hash(doc, n->output);
    if (hash) {
        snprintf(n->out, n->size, "%s", hash);
        n->found = 1;
    }
    return 0;
}

/* The artifact last imported under a name (--name). */
typedef struct named {
    const char *name;
    double time;
    int found, hit;
    char hash[HASH_HEX_LEN + 1];
} named;

static void on_import(void *ud, const char *path, const char *name, double time) {
    named *n = ud;
    (void)path;
    if (name && strcmp(name, n->name) == 0 && (!n->found || time >= n->time)) {
        n->time = time;
        n->found = n->hit = 1;
    }
}

static int on_named(void *ud, const char *key, size_t len, const bson_t *doc) {
    named *n = ud;
    n->hit = 0;
    inspect_each_import(doc, on_import, n);
    if (n->hit && len == HASH_HEX_LEN)
        snprintf(n->hash, sizeof(n->hash), "%.*s", (int)len, key);
    return 0;
}

/* NAME@VERSION or NAME@ALIAS: the model artifact that version of the registry's model is. */
static int resolve_model_version(MDB_txn *txn, const meta_db *m, const char *spec, char *out,
                                 size_t size) {
    char name[MODELREG_MAX_NAME + 1], why[256];
    int version;
    bson_t doc;
    int rc = modelreg_resolve(m, txn, spec, name, &version, why, sizeof(why));
    if (rc == 0)
        rc = modelreg_get_version(m, txn, name, version, &doc);
    else {
        fprintf(stderr, "sluice: %s\n", rc == -ENOENT || rc == -EINVAL ? why : meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    bson_iter_t it;
    if (rc != 0 || !bson_iter_init_find(&it, &doc, "artifact") || !BSON_ITER_HOLDS_UTF8(&it)) {
        fprintf(stderr, "sluice: %s@%d: cannot read its record: %s\n", name, version,
                rc ? meta_strerror(rc) : "no artifact");
        return EXIT_BAD_INPUT;
    }
    snprintf(out, size, "%s", bson_iter_utf8(&it, NULL));
    return 0;
}

int inspect_resolve_artifact(MDB_txn *txn, const meta_db *m, const char *spec, char *out,
                             size_t size) {
    if (strchr(spec, '@'))
        return resolve_model_version(txn, m, spec, out, size);
    const char *colon = strchr(spec, ':');
    const char *name = colon ? colon + 1 : spec;
    const char *dot = strchr(name, '.');
    if (!colon && !dot) {
        /* A name given at import wins over a hash prefix that reads the same. */
        named n = {.name = spec};
        int rc = meta_each(txn, m->artifacts, "", on_named, &n);
        if (rc == 0 && n.found) {
            snprintf(out, size, "%s", n.hash);
            return 0;
        }
        return inspect_resolve(txn, m->artifacts, "artifact", spec, out, size);
    }
    if (!dot || dot == name || !dot[1] || (colon && colon == spec)) {
        fprintf(stderr,
                "sluice: '%s' is not an artifact id: use a hash (or a unique prefix of "
                "one), RUN:STEP.OUTPUT or STEP.OUTPUT\n",
                spec);
        return EXIT_BAD_INPUT;
    }
    char step_id[256], run[256], prefix[260];
    snprintf(step_id, sizeof(step_id), "%.*s", (int)(dot - name), name);
    newest_output n = {step_id, dot + 1, out, size, 0, 0};
    prefix[0] = '\0';
    if (colon) {
        char run_spec[256];
        snprintf(run_spec, sizeof(run_spec), "%.*s", (int)(colon - spec), spec);
        if (inspect_resolve(txn, m->runs, "run", run_spec, run, sizeof(run)))
            return EXIT_BAD_INPUT;
        snprintf(prefix, sizeof(prefix), "%s/", run);
    }
    int rc = meta_each(txn, m->steps, prefix, on_step_output, &n);
    if (rc) {
        fprintf(stderr, "sluice: cannot read the metadata: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    if (n.found)
        return 0;
    if (!n.step_seen)
        fprintf(stderr, "sluice: no step '%s' in %s%s\n", step_id, colon ? "run " : "any run",
                colon ? run : "");
    else
        fprintf(stderr, "sluice: step '%s' has no output '%s' in %s%s\n", step_id, dot + 1,
                colon ? "run " : "any run", colon ? run : "");
    return EXIT_BAD_INPUT;
}

typedef struct import_fn {
    void (*fn)(void *ud, const char *path, const char *name, double time);
    void *ud;
} import_fn;

static int call_import_fn(void *ud, const bson_t *one) {
    const import_fn *f = ud;
    f->fn(f->ud, inspect_str(one, "path", "?"), inspect_str(one, "name", NULL),
          inspect_num(one, "time"));
    return 0;
}

void inspect_each_import(const bson_t *rec,
                         void (*fn)(void *ud, const char *path, const char *name, double time),
                         void *ud) {
    import_fn f = {fn, ud};
    record_each_import(rec, call_import_fn, &f);
}

typedef struct newest_import {
    const char *path;
    double time;
} newest_import;

static void take_newest(void *ud, const char *path, const char *name, double time) {
    newest_import *n = ud;
    (void)name;
    if (!n->path || time >= n->time)
        *n = (newest_import){path, time};
}

const char *inspect_origin(const bson_t *rec, char *out, size_t size) {
    newest_import n = {NULL, 0};
    bson_iter_t it;
    if (bson_iter_init_find(&it, rec, "run") ||
        (inspect_each_import(rec, take_newest, &n), !n.path)) {
        snprintf(out, size, "made by %s/%s.%s", inspect_str(rec, "run", "?"),
                 inspect_str(rec, "step", "?"), inspect_str(rec, "output", "?"));
    } else {
        char when[64];
        inspect_time(n.time, when, sizeof(when));
        snprintf(out, size, "imported from %s on %s", n.path, when);
    }
    return out;
}

void inspect_print_json(const bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (json)
        printf("%s\n", json);
    bson_free(json);
}

void inspect_time(double t, char *out, size_t size) {
    time_t secs = (time_t)t;
    struct tm tm;
    localtime_r(&secs, &tm);
    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

const char *inspect_str(const bson_t *doc, const char *key, const char *fallback) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return fallback;
}

double inspect_num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_double(&it);
    return 0;
}
