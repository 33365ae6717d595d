#include "record.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gitinfo.h"
#include "modelreg.h"

/* When process pid started, in clock ticks since boot (/proc/PID/stat's
 * 22nd field): with the pid it names one process, as pids are reused. */
static int process_start(long pid, long long *start) {
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The fields after the name, which may hold ')', start at the last ')'
     * with field 3; the start time is the 20th of them. */
    char *at = strrchr(text, ')');
    for (int field = 3; at && field <= 22; field++) {
        at = strchr(at, ' ');
        if (at)
            at++;
    }
    if (!at)
        return -EINVAL;
    *start = strtoll(at, NULL, 10);
    return 0;
}

static void append_owner(bson_t *doc) {
    static long long my_start = -1;
    if (my_start < 0 && process_start((long)getpid(), &my_start) != 0)
        my_start = 0;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    bson_t owner;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "owner", &owner);
    BSON_APPEND_INT64(&owner, "pid", (int64_t)getpid());
    BSON_APPEND_INT64(&owner, "start", (int64_t)my_start);
    BSON_APPEND_UTF8(&owner, "host", host);
    bson_append_document_end(doc, &owner);
}

int record_owner_alive(const bson_t *run) {
    bson_iter_t it, f;
    if (!bson_iter_init_find(&it, run, "owner") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &f))
        return -1;
    long long pid = 0, start = 0;
    const char *host = NULL;
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (strcmp(k, "pid") == 0 && BSON_ITER_HOLDS_NUMBER(&f))
            pid = bson_iter_as_int64(&f);
        else if (strcmp(k, "start") == 0 && BSON_ITER_HOLDS_NUMBER(&f))
            start = bson_iter_as_int64(&f);
        else if (strcmp(k, "host") == 0 && BSON_ITER_HOLDS_UTF8(&f))
            host = bson_iter_utf8(&f, NULL);
    }
    char here[256] = "";
    gethostname(here, sizeof(here) - 1);
    if (pid <= 0 || pid > INT_MAX || !host || strcmp(host, here) != 0)
        return -1; /* another machine's run: it cannot be checked from here */
    long long now_start;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    if (process_start((long)pid, &now_start) != 0)
        return 1;                            /* it exists; when it started is hidden from us */
    return start == 0 || now_start == start; /* else the pid was reused */
}

const char *record_effective_status(const bson_t *run) {
    bson_iter_t it;
    const char *status = bson_iter_init_find(&it, run, "status") && BSON_ITER_HOLDS_UTF8(&it)
                             ? bson_iter_utf8(&it, NULL)
                             : "?";
    if (strcmp(status, "running") == 0 && record_owner_alive(run) == 0)
        return "crashed";
    return status;
}

int record_run_view(const bson_t *run, bson_t *view) {
    const char *status = record_effective_status(run);
    bson_init(view);
    bson_iter_t it;
    if (!bson_iter_init(&it, run))
        return -EINVAL;
    while (bson_iter_next(&it)) {
        int ok = strcmp(bson_iter_key(&it), "status") == 0
                     ? BSON_APPEND_UTF8(view, "status", status)
                     : bson_append_iter(view, NULL, 0, &it);
        if (!ok) {
            bson_destroy(view);
            return -ENOMEM;
        }
    }
    return 0;
}

/* params as the record's "params" document (empty for NULL). */
static void append_params(bson_t *doc, const bson_t *params) {
    if (params) {
        BSON_APPEND_DOCUMENT(doc, "params", params);
    } else {
        bson_t empty = BSON_INITIALIZER;
        BSON_APPEND_DOCUMENT(doc, "params", &empty);
    }
}

/* A document of "key=value" strings, as key: value. */
static void append_pairs(bson_t *doc, const char *name, const char *const *pairs, size_t n) {
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, name, &sub);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        if (eq)
            bson_append_utf8(&sub, pairs[i], (int)(eq - pairs[i]), eq + 1, -1);
    }
    bson_append_document_end(doc, &sub);
}

int record_run(meta_db *m, const char *run_id, const run_record *p, const run_origin *origin,
               const char *status, double started, double finished) {
    bson_t doc = BSON_INITIALIZER, overrides;
    BSON_APPEND_UTF8(&doc, "pipeline", p->name ? p->name : "");
    /* Absolute, so that 'resume' works from any folder. */
    char *file = realpath(p->file, NULL);
    BSON_APPEND_UTF8(&doc, "file", file ? file : p->file);
    free(file);
    BSON_APPEND_UTF8(&doc, "status", status);
    append_owner(&doc);
    BSON_APPEND_DOUBLE(&doc, "started", started);
    if (finished > 0)
        BSON_APPEND_DOUBLE(&doc, "finished", finished);
    BSON_APPEND_INT32(&doc, "steps", (int32_t)p->n_steps);
    if (origin && origin->resumes)
        BSON_APPEND_UTF8(&doc, "resumes", origin->resumes);
    BSON_APPEND_ARRAY_BEGIN(&doc, "overrides", &overrides);
    for (size_t i = 0; origin && i < origin->n_overrides; i++) {
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        BSON_APPEND_UTF8(&overrides, k, origin->overrides[i]);
    }
    bson_append_array_end(&doc, &overrides);
    append_pairs(&doc, "tags", origin ? origin->tags : NULL, origin ? origin->n_tags : 0);
    if (origin && origin->n_cause)
        append_pairs(&doc, "cause", origin->cause, origin->n_cause);
    /* The commit of the pipeline file's repository, when it is in one. */
    git_state git;
    if (git_describe(p->dir, &git) == 1) {
        bson_t g;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "git", &g);
        BSON_APPEND_UTF8(&g, "commit", git.commit);
        BSON_APPEND_UTF8(&g, "branch", git.branch);
        BSON_APPEND_BOOL(&g, "dirty", git.dirty);
        bson_append_document_end(&doc, &g);
    }
    append_params(&doc, p->params);
    if (p->param_origins)
        BSON_APPEND_DOCUMENT(&doc, "param_origins", p->param_origins);
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc == 0) {
        rc = meta_put(txn, m->runs, run_id, &doc);
        rc = rc ? (meta_abort(txn), rc) : meta_commit(txn);
    }
    bson_destroy(&doc);
    return rc;
}

static void append_ports(bson_t *doc, const char *key, const record_port *ports, size_t n) {
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
    for (size_t i = 0; i < n; i++) {
        if (ports[i].hash)
            BSON_APPEND_UTF8(&sub, ports[i].name, ports[i].hash);
        else
            BSON_APPEND_NULL(&sub, ports[i].name);
    }
    bson_append_document_end(doc, &sub);
}

int record_step(meta_db *m, const step_record *rec) {
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", rec->run_id, rec->step_id);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "uses", rec->uses ? rec->uses : "");
    if (rec->version)
        BSON_APPEND_UTF8(&doc, "version", rec->version);
    BSON_APPEND_UTF8(&doc, "status", rec->status);
    if (rec->started > 0)
        BSON_APPEND_DOUBLE(&doc, "started", rec->started);
    if (rec->finished > 0)
        BSON_APPEND_DOUBLE(&doc, "finished", rec->finished);
    BSON_APPEND_INT32(&doc, "attempts", rec->attempts);
    if (rec->error)
        BSON_APPEND_UTF8(&doc, "error", rec->error);
    if (rec->log)
        BSON_APPEND_UTF8(&doc, "log", rec->log);
    if (rec->cache_key)
        BSON_APPEND_UTF8(&doc, "cache_key", rec->cache_key);
    if (rec->key_parts)
        BSON_APPEND_DOCUMENT(&doc, "key_parts", rec->key_parts);
    if (rec->cached_from)
        BSON_APPEND_UTF8(&doc, "cached_from", rec->cached_from);
    if (rec->metrics)
        BSON_APPEND_ARRAY(&doc, "metrics", rec->metrics);
    if (rec->job_id)
        BSON_APPEND_UTF8(&doc, "job_id", rec->job_id);
    if (rec->node)
        BSON_APPEND_UTF8(&doc, "node", rec->node);
    append_params(&doc, rec->params);
    append_ports(&doc, "inputs", rec->inputs, rec->n_inputs);
    append_ports(&doc, "outputs", rec->outputs, rec->n_outputs);

    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc) {
        bson_destroy(&doc);
        return rc;
    }
    rc = meta_put(txn, m->steps, key, &doc);
    /* Artifacts made here, and the lineage both ways. */
    int made = strcmp(rec->status, "done") == 0;
    for (size_t i = 0; rc == 0 && made && i < rec->n_outputs; i++) {
        const record_port *o = &rec->outputs[i];
        bson_t a = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&a, "type", o->type ? o->type : "any");
        BSON_APPEND_INT64(&a, "size", (int64_t)o->size);
        BSON_APPEND_UTF8(&a, "kind", o->is_dir ? "folder" : "file");
        BSON_APPEND_UTF8(&a, "run", rec->run_id);
        BSON_APPEND_UTF8(&a, "step", rec->step_id);
        BSON_APPEND_UTF8(&a, "output", o->name);
        BSON_APPEND_DOUBLE(&a, "created", rec->finished);
        bson_t old;
        /* The first producer stays the producer: a later identical output
         * is the same artifact. */
        if (meta_get(txn, m->artifacts, o->hash, &old) == MDB_NOTFOUND)
            rc = meta_put(txn, m->artifacts, o->hash, &a);
        bson_destroy(&a);
    }
    for (size_t i = 0; rc == 0 && rec->started > 0 && i < rec->n_inputs; i++) {
        if (!rec->inputs[i].hash)
            continue;
        char ck[768];
        snprintf(ck, sizeof(ck), "%s/%s", rec->inputs[i].hash, key);
        rc = meta_put(txn, m->consumers, ck, NULL);
    }
    int reused = strcmp(rec->status, "cached") == 0;
    for (size_t i = 0; rc == 0 && rec->model_name && (made || reused) && i < rec->n_outputs; i++) {
        const record_port *o = &rec->outputs[i];
        int version;
        if (o->hash && o->type && strcmp(o->type, "model") == 0)
            rc = modelreg_register(m, txn, rec->model_name, o->hash, o->name, rec, &version);
    }
    if (rc == 0 && made && rec->cacheable && rec->cache_key) {
        bson_t c = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&c, "from", key);
        append_ports(&c, "outputs", rec->outputs, rec->n_outputs);
        rc = meta_put(txn, m->cache, rec->cache_key, &c);
        bson_destroy(&c);
    }
    rc = rc ? (meta_abort(txn), rc) : meta_commit(txn);
    bson_destroy(&doc);
    return rc;
}

/* Reads outputs {name: hash} of doc into hit. Returns 0, or -EOVERFLOW when
 * they do not fit (validation refuses such steps, so only an alien record
 * gets there): a record cut short must not pass for the step's outputs. */
static int read_outputs(const bson_t *doc, cache_hit *hit) {
    bson_iter_t it, outs;
    if (bson_iter_init_find(&it, doc, "outputs") && bson_iter_recurse(&it, &outs))
        while (bson_iter_next(&outs)) {
            if (!BSON_ITER_HOLDS_UTF8(&outs))
                continue;
            if (hit->n_outputs == RECORD_MAX_PORTS ||
                strlen(bson_iter_key(&outs)) >= sizeof(hit->outputs[0].name))
                return -EOVERFLOW;
            snprintf(hit->outputs[hit->n_outputs].name, sizeof(hit->outputs[0].name), "%s",
                     bson_iter_key(&outs));
            snprintf(hit->outputs[hit->n_outputs].hash, sizeof(hit->outputs[0].hash), "%s",
                     bson_iter_utf8(&outs, NULL));
            hit->n_outputs++;
        }
    return 0;
}

int record_cache_lookup(meta_db *m, const char *key, cache_hit *hit) {
    MDB_txn *txn;
    int rc = meta_begin(m, 0, &txn);
    if (rc)
        return rc;
    bson_t doc;
    rc = meta_get(txn, m->cache, key, &doc);
    if (rc == MDB_NOTFOUND) {
        meta_abort(txn);
        return 0;
    }
    bson_iter_t it;
    memset(hit, 0, sizeof(*hit));
    if (rc == 0 && bson_iter_init_find(&it, &doc, "from") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(hit->from, sizeof(hit->from), "%s", bson_iter_utf8(&it, NULL));
    int fits = rc == 0 && read_outputs(&doc, hit) == 0;
    meta_abort(txn);
    return rc ? rc : fits;
}

int record_finished_step(meta_db *m, const char *run_id, const char *step_id, cache_hit *hit) {
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", run_id, step_id);
    MDB_txn *txn;
    int rc = meta_begin(m, 0, &txn);
    if (rc)
        return rc;
    bson_t doc;
    rc = meta_get(txn, m->steps, key, &doc);
    int finished = 0;
    if (rc == 0) {
        bson_iter_t it;
        const char *status = bson_iter_init_find(&it, &doc, "status") && BSON_ITER_HOLDS_UTF8(&it)
                                 ? bson_iter_utf8(&it, NULL)
                                 : "";
        finished = strcmp(status, "done") == 0 || strcmp(status, "cached") == 0;
        memset(hit, 0, sizeof(*hit));
        snprintf(hit->from, sizeof(hit->from), "%s", key);
        if (finished && read_outputs(&doc, hit) != 0)
            finished = 0;
    }
    meta_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : rc ? rc : finished;
}

int record_cache_forget(meta_db *m, const char *key) {
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    MDB_val k = {strlen(key), (void *)key};
    rc = mdb_del(txn, m->cache, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) {
        meta_abort(txn);
        return rc > 0 ? -rc : rc;
    }
    return meta_commit(txn);
}

typedef struct latest {
    meta_db *m;
    MDB_txn *txn;
    const char *pipeline, *step_id;
    cache_hit *hit;
    int found;
} latest;

/* Runs are keyed by time: the last match in key order is the latest. */
static int latest_run(void *ud, const char *key, size_t len, const bson_t *doc) {
    latest *l = ud;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "pipeline") || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), l->pipeline) != 0)
        return 0;
    char step_key[512];
    snprintf(step_key, sizeof(step_key), "%.*s/%s", (int)len, key, l->step_id);
    bson_t rec;
    if (meta_get(l->txn, l->m->steps, step_key, &rec) != 0)
        return 0;
    const char *status = bson_iter_init_find(&it, &rec, "status") && BSON_ITER_HOLDS_UTF8(&it)
                             ? bson_iter_utf8(&it, NULL)
                             : "";
    if (strcmp(status, "done") != 0 && strcmp(status, "cached") != 0)
        return 0;
    memset(l->hit, 0, sizeof(*l->hit));
    snprintf(l->hit->from, sizeof(l->hit->from), "%s", step_key);
    if (read_outputs(&rec, l->hit) != 0)
        return 0;
    l->found = 1;
    return 0;
}

int record_latest_finished(meta_db *m, const char *pipeline_name, const char *step_id,
                           cache_hit *hit) {
    latest l = {m, NULL, pipeline_name, step_id, hit, 0};
    int rc = meta_begin(m, 0, &l.txn);
    if (rc)
        return rc;
    rc = meta_each(l.txn, m->runs, "", latest_run, &l);
    meta_abort(l.txn);
    return rc ? rc : l.found;
}

int record_last_metrics(const bson_t *step, bson_t *out) {
    bson_init(out);
    bson_iter_t it, ms, one;
    if (!bson_iter_init_find(&it, step, "metrics") || !bson_iter_recurse(&it, &ms))
        return 0;
    while (bson_iter_next(&ms)) {
        if (!bson_iter_recurse(&ms, &one))
            continue;
        const char *name = NULL;
        double v = 0;
        int has_value = 0;
        while (bson_iter_next(&one)) {
            if (strcmp(bson_iter_key(&one), "key") == 0 && BSON_ITER_HOLDS_UTF8(&one))
                name = bson_iter_utf8(&one, NULL);
            else if (strcmp(bson_iter_key(&one), "value") == 0 && BSON_ITER_HOLDS_NUMBER(&one))
                has_value = 1, v = bson_iter_as_double(&one);
        }
        if (!name || !has_value)
            continue;
        /* Rebuilt without the key's earlier point: a series is short. */
        bson_t next = BSON_INITIALIZER;
        bson_iter_t l;
        if (bson_iter_init(&l, out))
            while (bson_iter_next(&l))
                if (strcmp(bson_iter_key(&l), name) != 0 && !bson_append_iter(&next, NULL, 0, &l))
                    break;
        int ok = BSON_APPEND_DOUBLE(&next, name, v);
        bson_destroy(out);
        bson_steal(out, &next);
        if (!ok)
            return -ENOMEM;
    }
    return 0;
}

int record_has_tag(const bson_t *run, const char *spec) {
    const char *eq = strchr(spec, '=');
    bson_iter_t it, tags;
    if (!eq || !bson_iter_init_find(&it, run, "tags") || !bson_iter_recurse(&it, &tags))
        return 0;
    while (bson_iter_next(&tags))
        if (strlen(bson_iter_key(&tags)) == (size_t)(eq - spec) &&
            strncmp(bson_iter_key(&tags), spec, (size_t)(eq - spec)) == 0 &&
            BSON_ITER_HOLDS_UTF8(&tags) && strcmp(bson_iter_utf8(&tags, NULL), eq + 1) == 0)
            return 1;
    return 0;
}
