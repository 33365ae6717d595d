/* ui_store.c - the dashboard's artifacts (with a preview), lineage, model
 * registry, schedules and traces (ui_api.h, docs/dashboard.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "formats.h"
#include "modelreg.h"
#include "schedules.h"
#include "store.h"
#include "ui_api.h"

#define PREVIEW_BYTES 8192
#define PREVIEW_ROWS 20
#define MAX_DOWNLOAD (256u * 1024 * 1024)
#define LINEAGE_MAX_NODES 200

/* A hash or a unique prefix of one into out (65 bytes); 0, or -1 with res. */
static int resolve_artifact(ui_ctx *c, MDB_txn *txn, const char *spec, char *out,
                            ui_response *res) {
    MDB_cursor *cur;
    MDB_val k = {strlen(spec), (void *)spec}, v;
    size_t n = strlen(spec);
    if (n == 0 || n > HASH_HEX_LEN || strspn(spec, "0123456789abcdef") != n) {
        ui_error(res, 400, "'%s' is no artifact hash (or prefix of one)", spec);
        return -1;
    }
    if (mdb_cursor_open(txn, c->m.artifacts, &cur) != 0) {
        ui_error(res, 500, "cannot read the artifacts");
        return -1;
    }
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    int found =
        rc == 0 && k.mv_size >= n && memcmp(k.mv_data, spec, n) == 0 && k.mv_size <= HASH_HEX_LEN;
    if (found) {
        memcpy(out, k.mv_data, k.mv_size);
        out[k.mv_size] = 0;
        MDB_val k2, v2;
        if (k.mv_size != n && mdb_cursor_get(cur, &k2, &v2, MDB_NEXT) == 0 && k2.mv_size >= n &&
            memcmp(k2.mv_data, spec, n) == 0) {
            mdb_cursor_close(cur);
            ui_error(res, 404, "artifact '%s' is ambiguous: give more of its hash", spec);
            return -1;
        }
    }
    mdb_cursor_close(cur);
    if (!found)
        ui_error(res, 404, "no artifact matches '%s'", spec);
    return found ? 0 : -1;
}

static void object_path(const ui_ctx *c, const char *hash, char *out, size_t size) {
    char objects[4096];
    snprintf(objects, sizeof(objects), "%s/objects", c->store);
    artifact_store s = {.root = (char *)c->store, .objects = objects};
    store_object_path(&s, hash, out, size);
}

/* The first rows of a JSON Lines file, each as a document; 0 when the
 * head does not read as JSON Lines. */
static int preview_jsonl(const char *head, size_t len, bson_t *rows) {
    int n = 0;
    for (const char *p = head; p < head + len && n < PREVIEW_ROWS;) {
        const char *nl = memchr(p, '\n', (size_t)(head + len - p));
        if (!nl)
            break; /* a row cut by the head's end is left out */
        if (nl > p) {
            bson_t row;
            bson_error_t err;
            if (!bson_init_from_json(&row, p, nl - p, &err))
                return 0;
            ui_array_add(rows, &row);
            bson_destroy(&row);
            n++;
        }
        p = nl + 1;
    }
    return n > 0;
}

static void preview_file(const char *path, const char *type, bson_t *doc) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        BSON_APPEND_UTF8(doc, "preview_kind", "missing");
        return;
    }
    char head[PREVIEW_BYTES + 1];
    size_t len = fread(head, 1, PREVIEW_BYTES, f);
    fclose(f);
    head[len] = 0;
    if (len >= 4 && memcmp(head, MATRIX_MAGIC, 4) == 0) {
        matrix mx;
        char err[256];
        if (matrix_open(&mx, path, err, sizeof(err)) == 0) {
            BSON_APPEND_UTF8(doc, "preview_kind", "matrix");
            BSON_APPEND_INT64(doc, "rows", (int64_t)mx.rows);
            BSON_APPEND_INT64(doc, "cols", (int64_t)mx.cols);
            matrix_close(&mx);
            return;
        }
    }
    bson_t rows = BSON_INITIALIZER;
    if (len && head[0] == '{' && preview_jsonl(head, len, &rows)) {
        BSON_APPEND_UTF8(doc, "preview_kind", "jsonl");
        BSON_APPEND_ARRAY(doc, "rows", &rows);
        bson_destroy(&rows);
        return;
    }
    bson_destroy(&rows);
    if (memchr(head, 0, len) || !bson_utf8_validate(head, len, false)) {
        BSON_APPEND_UTF8(doc, "preview_kind", "binary");
        return;
    }
    BSON_APPEND_UTF8(doc, "preview_kind", strcmp(type, "json") ? "text" : "json");
    BSON_APPEND_UTF8(doc, "text", head);
}

/* A folder: its entries, and a model's configuration. */
static void preview_folder(const char *path, bson_t *doc) {
    DIR *d = opendir(path);
    bson_t files = BSON_INITIALIZER;
    int n = 0, model = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < 200;) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096 + 300];
        struct stat st;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        bson_t item = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&item, "name", e->d_name);
        if (stat(sub, &st) == 0) {
            BSON_APPEND_INT64(&item, "size", (int64_t)st.st_size);
            BSON_APPEND_BOOL(&item, "folder", S_ISDIR(st.st_mode));
        }
        ui_array_add(&files, &item);
        bson_destroy(&item);
        model |= strcmp(e->d_name, "config.json") == 0;
        n++;
    }
    if (d)
        closedir(d);
    BSON_APPEND_UTF8(doc, "preview_kind", model ? "model" : "folder");
    BSON_APPEND_ARRAY(doc, "files", &files);
    bson_destroy(&files);
    if (model) {
        char cfg[4096 + 16];
        bson_t *config = NULL;
        char err[256];
        snprintf(cfg, sizeof(cfg), "%s/config.json", path);
        if (json_file_read(cfg, &config, err, sizeof(err)) == 0 && config) {
            BSON_APPEND_DOCUMENT(doc, "config", config);
            bson_destroy(config);
        }
    }
}

static void download(const char *path, const char *hash, ui_response *res) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        if (f)
            fclose(f);
        ui_error(res, 400, "artifact %.12s is a folder or missing: use 'sluice artifacts export'",
                 hash);
        return;
    }
    if ((uint64_t)st.st_size > MAX_DOWNLOAD) {
        fclose(f);
        ui_error(res, 413, "artifact %.12s is over 256 MiB: use 'sluice artifacts export'", hash);
        return;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&res->body, chunk, n);
    fclose(f);
    if (buf_failed(&res->body)) {
        buf_free(&res->body);
        ui_error(res, 500, "out of memory");
        return;
    }
    res->status = 200;
    res->type = "application/octet-stream";
    snprintf(res->extra, sizeof(res->extra), "attachment; filename=\"%.16s\"", hash);
    res->disposition = res->extra;
}

void ui_artifact(ui_ctx *c, const char *spec, const char *query, ui_response *res) {
    MDB_txn *txn;
    char hash[HASH_HEX_LEN + 1];
    bson_t rec;
    if (ui_begin(c, &txn, res) != 0)
        return;
    if (resolve_artifact(c, txn, spec, hash, res) != 0 ||
        meta_get(txn, c->m.artifacts, hash, &rec) != 0) {
        if (!res->status)
            ui_error(res, 404, "no artifact %s", spec);
        meta_abort(txn);
        return;
    }
    char path[4096], flag[8];
    object_path(c, hash, path, sizeof(path));
    if (ui_query(query, "download", flag, sizeof(flag))) {
        meta_abort(txn);
        download(path, hash, res);
        return;
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "artifact", hash);
    bson_concat(&doc, &rec);
    /* Who read it: the consumers, RUN/STEP. */
    meta_abort(txn);
    const char *type = ui_str(&doc, "type", "any");
    if (strcmp(ui_str(&doc, "kind", "file"), "folder") == 0)
        preview_folder(path, &doc);
    else
        preview_file(path, type, &doc);
    ui_json(res, &doc);
    bson_destroy(&doc);
}

/* ---- lineage ------------------------------------------------------------ */

typedef struct lineage {
    ui_ctx *c;
    MDB_txn *txn;
    char (*ids)[340]; /* the nodes' ids, "a:HASH" or "s:RUN/STEP" */
    size_t n, cap;
    bson_t *nodes, *edges;
    int full;
} lineage;

/* Adds node id if new: 1 new, 0 known, -1 full or out of memory. */
static int add_node(lineage *l, const char *id) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->ids[i], id) == 0)
            return 0;
    if (l->n >= LINEAGE_MAX_NODES) {
        l->full = 1;
        return -1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        void *grown = realloc(l->ids, cap * sizeof(*l->ids));
        if (!grown)
            return -1;
        l->ids = grown;
        l->cap = cap;
    }
    snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", id);
    return 1;
}

static void add_edge(lineage *l, const char *from, const char *to) {
    bson_t e = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&e, "from", from);
    BSON_APPEND_UTF8(&e, "to", to);
    ui_array_add(l->edges, &e);
    bson_destroy(&e);
}

static void walk_artifact(lineage *l, const char *hash, int dir, int depth);

/* A step run, RUN/STEP: a node, and (dir < 0) its inputs upwards or
 * (dir > 0) its outputs downwards. */
static void walk_step(lineage *l, const char *runstep, int dir, int depth) {
    char id[340];
    snprintf(id, sizeof(id), "s:%s", runstep);
    bson_t rec;
    int fresh = add_node(l, id);
    if (fresh < 0 || meta_get(l->txn, l->c->m.steps, runstep, &rec) != 0)
        return;
    if (fresh) {
        const char *slash = strchr(runstep, '/');
        bson_t node = BSON_INITIALIZER;
        char label[400], href[400];
        snprintf(label, sizeof(label), "%s\nrun %.20s\n%s", slash ? slash + 1 : runstep, runstep,
                 ui_str(&rec, "status", "?"));
        snprintf(href, sizeof(href), "#/run/%.*s/step/%s",
                 slash ? (int)(slash - runstep) : (int)strlen(runstep), runstep,
                 slash ? slash + 1 : "");
        BSON_APPEND_UTF8(&node, "id", id);
        BSON_APPEND_UTF8(&node, "kind", "step");
        BSON_APPEND_UTF8(&node, "run_step", runstep);
        BSON_APPEND_UTF8(&node, "status", ui_str(&rec, "status", "?"));
        BSON_APPEND_UTF8(&node, "label", label);
        BSON_APPEND_UTF8(&node, "href", href);
        ui_array_add(l->nodes, &node);
        bson_destroy(&node);
    }
    if (depth <= 0)
        return;
    bson_iter_t it, ports;
    if (!bson_iter_init_find(&it, &rec, dir < 0 ? "inputs" : "outputs") ||
        !bson_iter_recurse(&it, &ports))
        return;
    while (bson_iter_next(&ports)) {
        if (!BSON_ITER_HOLDS_UTF8(&ports))
            continue;
        char hash[HASH_HEX_LEN + 1], aid[340];
        snprintf(hash, sizeof(hash), "%s", bson_iter_utf8(&ports, NULL));
        snprintf(aid, sizeof(aid), "a:%s", hash);
        if (dir < 0)
            add_edge(l, aid, id);
        else
            add_edge(l, id, aid);
        walk_artifact(l, hash, dir, depth - 1);
    }
}

typedef struct consumers {
    lineage *l;
    char (*keys)[340];
    size_t n;
} consumers;

static int each_consumer(void *ud, const char *key, size_t len, const bson_t *doc) {
    consumers *cs = ud;
    (void)doc;
    const char *slash = memchr(key, '/', len);
    if (!slash || cs->n >= 64)
        return cs->n >= 64;
    void *grown = realloc(cs->keys, (cs->n + 1) * sizeof(*cs->keys));
    if (!grown)
        return 1;
    cs->keys = grown;
    snprintf(cs->keys[cs->n++], sizeof(cs->keys[0]), "%.*s", (int)(key + len - slash - 1),
             slash + 1);
    return 0;
}

static void walk_artifact(lineage *l, const char *hash, int dir, int depth) {
    char id[340];
    snprintf(id, sizeof(id), "a:%s", hash);
    bson_t rec;
    int have = meta_get(l->txn, l->c->m.artifacts, hash, &rec) == 0;
    int fresh = add_node(l, id);
    if (fresh < 0)
        return;
    if (fresh) {
        bson_t node = BSON_INITIALIZER;
        char label[400], href[400];
        const char *type = have ? ui_str(&rec, "type", "any") : "?";
        const char *output = have ? ui_str(&rec, "output", "") : "";
        snprintf(label, sizeof(label), "%s%s%s\n%.12s", output, output[0] ? ": " : "", type, hash);
        snprintf(href, sizeof(href), "#/artifact/%s", hash);
        BSON_APPEND_UTF8(&node, "id", id);
        BSON_APPEND_UTF8(&node, "kind", "artifact");
        BSON_APPEND_UTF8(&node, "hash", hash);
        BSON_APPEND_UTF8(&node, "type", type);
        BSON_APPEND_UTF8(&node, "label", label);
        BSON_APPEND_UTF8(&node, "href", href);
        ui_array_add(l->nodes, &node);
        bson_destroy(&node);
    }
    if (depth <= 0 || !have)
        return;
    if (dir < 0) {
        const char *run = ui_str(&rec, "run", NULL), *step = ui_str(&rec, "step", NULL);
        if (run && step) {
            char rs[330], sid[340];
            snprintf(rs, sizeof(rs), "%.160s/%.160s", run, step);
            snprintf(sid, sizeof(sid), "s:%s", rs);
            add_edge(l, sid, id);
            walk_step(l, rs, dir, depth - 1);
        }
        return;
    }
    consumers cs = {l, NULL, 0};
    char prefix[HASH_HEX_LEN + 2];
    snprintf(prefix, sizeof(prefix), "%s/", hash);
    meta_each(l->txn, l->c->m.consumers, prefix, each_consumer, &cs);
    for (size_t i = 0; i < cs.n; i++) {
        char sid[340];
        snprintf(sid, sizeof(sid), "s:%s", cs.keys[i]);
        add_edge(l, id, sid);
        walk_step(l, cs.keys[i], dir, depth - 1);
    }
    free(cs.keys);
}

int ui_lineage_doc(ui_ctx *c, MDB_txn *txn, const char *spec, bson_t *out, ui_response *res) {
    char hash[HASH_HEX_LEN + 1];
    if (resolve_artifact(c, txn, spec, hash, res) != 0)
        return -1;
    bson_t nodes = BSON_INITIALIZER, edges = BSON_INITIALIZER;
    lineage l = {c, txn, NULL, 0, 0, &nodes, &edges, 0};
    walk_artifact(&l, hash, -1, 16);
    /* Down: a second walk of its own (the artifact's node starts it again);
     * nodes both walks found are merged below by id. */
    bson_t nodes2 = BSON_INITIALIZER, edges2 = BSON_INITIALIZER;
    lineage d = {c, txn, NULL, 0, 0, &nodes2, &edges2, 0};
    walk_artifact(&d, hash, 1, 16);
    /* Merge: every node once, every edge once. */
    bson_t all = BSON_INITIALIZER, all_edges = BSON_INITIALIZER;
    lineage merged = {c, txn, NULL, 0, 0, NULL, NULL, 0};
    const bson_t *lists[2] = {&nodes, &nodes2};
    for (int k = 0; k < 2; k++) {
        bson_iter_t it;
        bson_iter_init(&it, lists[k]);
        while (bson_iter_next(&it)) {
            bson_t nd;
            uint32_t len;
            const uint8_t *data;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&nd, data, len) && add_node(&merged, ui_str(&nd, "id", "")) == 1)
                ui_array_add(&all, &nd);
        }
    }
    free(merged.ids);
    bson_concat(&all_edges, &edges);
    bson_iter_t it;
    bson_iter_init(&it, &edges2);
    while (bson_iter_next(&it)) {
        bson_t e;
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&it, &len, &data);
        if (bson_init_static(&e, data, len))
            ui_array_add(&all_edges, &e);
    }
    BSON_APPEND_UTF8(out, "artifact", hash);
    BSON_APPEND_ARRAY(out, "nodes", &all);
    BSON_APPEND_ARRAY(out, "edges", &all_edges);
    BSON_APPEND_BOOL(out, "truncated", l.full || d.full);
    free(l.ids);
    free(d.ids);
    bson_destroy(&nodes);
    bson_destroy(&edges);
    bson_destroy(&nodes2);
    bson_destroy(&edges2);
    bson_destroy(&all);
    bson_destroy(&all_edges);
    return 0;
}

void ui_lineage(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0)
        return;
    bson_t doc = BSON_INITIALIZER;
    if (ui_lineage_doc(c, txn, spec, &doc, res) == 0)
        ui_json(res, &doc);
    bson_destroy(&doc);
    meta_abort(txn);
}

/* ---- models ------------------------------------------------------------- */

typedef struct model_acc {
    char name[MODELREG_MAX_NAME + 1];
    bson_t versions, aliases, audit, deploys;
} model_acc;

typedef struct models {
    ui_ctx *c;
    MDB_txn *txn;
    bson_t *array;
    model_acc cur;
    int open;
} models;

static void flush_model(models *ms) {
    if (!ms->open)
        return;
    bson_t item = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&item, "name", ms->cur.name);
    BSON_APPEND_ARRAY(&item, "versions", &ms->cur.versions);
    BSON_APPEND_DOCUMENT(&item, "aliases", &ms->cur.aliases);
    BSON_APPEND_ARRAY(&item, "audit", &ms->cur.audit);
    BSON_APPEND_ARRAY(&item, "deployments", &ms->cur.deploys);
    ui_array_add(ms->array, &item);
    bson_destroy(&item);
    bson_destroy(&ms->cur.versions);
    bson_destroy(&ms->cur.aliases);
    bson_destroy(&ms->cur.audit);
    bson_destroy(&ms->cur.deploys);
    ms->open = 0;
}

static int each_model_record(void *ud, const char *key, size_t len, const bson_t *doc) {
    models *ms = ud;
    const char *slash = memchr(key, '/', len);
    if (!slash || slash - key > MODELREG_MAX_NAME)
        return 0;
    size_t nlen = (size_t)(slash - key);
    if (!ms->open || strlen(ms->cur.name) != nlen || strncmp(ms->cur.name, key, nlen)) {
        flush_model(ms);
        snprintf(ms->cur.name, sizeof(ms->cur.name), "%.*s", (int)nlen, key);
        bson_init(&ms->cur.versions);
        bson_init(&ms->cur.aliases);
        bson_init(&ms->cur.audit);
        bson_init(&ms->cur.deploys);
        ms->open = 1;
    }
    const char *rest = slash + 1;
    size_t rlen = (size_t)(key + len - rest);
    char tail[300];
    if (rlen > 2 && !strncmp(rest, "v/", 2)) {
        bson_t item = BSON_INITIALIZER;
        BSON_APPEND_INT32(&item, "version", (int32_t)strtol(rest + 2, NULL, 10));
        bson_concat(&item, doc);
        bson_t metrics;
        const char *artifact = ui_str(doc, "artifact", NULL);
        if (artifact && modelreg_metrics(&ms->c->m, ms->txn, artifact, &metrics, NULL) == 0) {
            BSON_APPEND_DOCUMENT(&item, "metrics", &metrics);
            bson_destroy(&metrics);
        }
        ui_array_add(&ms->cur.versions, &item);
        bson_destroy(&item);
    } else if (rlen > 6 && !strncmp(rest, "alias/", 6)) {
        snprintf(tail, sizeof(tail), "%.*s", (int)(rlen - 6), rest + 6);
        BSON_APPEND_DOCUMENT(&ms->cur.aliases, tail, doc);
    } else if (rlen > 6 && !strncmp(rest, "audit/", 6)) {
        ui_array_add(&ms->cur.audit, doc);
    } else if (rlen > 7 && !strncmp(rest, "deploy/", 7)) {
        ui_array_add(&ms->cur.deploys, doc);
    }
    return 0;
}

void ui_models(ui_ctx *c, ui_response *res) {
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0)
        return;
    bson_t doc = BSON_INITIALIZER, arr;
    BSON_APPEND_ARRAY_BEGIN(&doc, "models", &arr);
    models ms = {.c = c, .txn = txn, .array = &arr};
    if (c->m.has_models)
        modelreg_each(&c->m, txn, "", each_model_record, &ms);
    flush_model(&ms);
    bson_append_array_end(&doc, &arr);
    meta_abort(txn);
    ui_json(res, &doc);
    bson_destroy(&doc);
}

/* ---- schedules ---------------------------------------------------------- */

static int each_schedule(void *ud, const char *key, size_t len, const bson_t *doc) {
    bson_t item = BSON_INITIALIZER;
    bson_append_utf8(&item, "name", 4, key, (int)len);
    bson_concat(&item, doc);
    ui_array_add(ud, &item);
    bson_destroy(&item);
    return 0;
}

void ui_schedules(ui_ctx *c, ui_response *res) {
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0)
        return;
    meta_abort(txn);
    bson_t doc = BSON_INITIALIZER, arr;
    BSON_APPEND_ARRAY_BEGIN(&doc, "schedules", &arr);
    int rc = schedules_each(&c->m, each_schedule, &arr);
    bson_append_array_end(&doc, &arr);
    if (rc == 0)
        ui_json(res, &doc);
    else
        ui_error(res, 500, "cannot read the schedules: %s", meta_strerror(rc));
    bson_destroy(&doc);
}

/* ---- traces ------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The newest traces first, from the newest segments of STORE/traces. A
 * line still being written (no newline yet) is left out. */
void ui_traces(ui_ctx *c, const char *query, ui_response *res) {
    char dir[4096], lim[32];
    long limit = 50;
    if (ui_query(query, "limit", lim, sizeof(lim)))
        limit = strtol(lim, NULL, 10);
    if (limit < 1 || limit > 1000)
        limit = 50;
    snprintf(dir, sizeof(dir), "%s/traces", c->store);
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".jsonl") != 0)
            continue;
        char **grown = realloc(names, (n + 1) * sizeof(*names));
        if (!grown)
            break;
        names = grown;
        if ((names[n] = strdup(e->d_name)))
            n++;
    }
    if (d)
        closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    buf_puts(&res->body, "{\"traces\":[");
    long got = 0;
    for (size_t i = n; i > 0 && got < limit; i--) {
        char path[8192];
        void *map = NULL;
        size_t size = 0;
        char err[256];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i - 1]);
        if (file_map(path, &map, &size, err, sizeof(err)) != 0 || !map)
            continue;
        const char *text = map;
        size_t end = size;
        while (end > 0 && text[end - 1] != '\n')
            end--; /* a line still being written */
        while (end > 0 && got < limit) {
            size_t start = end - 1;
            while (start > 0 && text[start - 1] != '\n')
                start--;
            size_t len = end - 1 - start;
            if (len > 1 && text[start] == '{' && text[start + len - 1] == '}') {
                if (got++)
                    buf_putc(&res->body, ',');
                buf_append(&res->body, text + start, len);
            }
            end = start;
        }
        munmap(map, size);
    }
    buf_puts(&res->body, "]}");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    res->status = 200;
    res->type = "application/json";
}
