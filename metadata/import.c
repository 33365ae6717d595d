/* import.c - the record of an artifact imported from outside the store
 * (record.h, record_import). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

static const char *utf8_of(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int record_each_import(const bson_t *rec, int (*fn)(void *ud, const bson_t *one), void *ud) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, rec, "imports") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &sub))
        return 0;
    while (bson_iter_next(&sub)) {
        const uint8_t *data;
        uint32_t len;
        bson_t one;
        if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
            continue;
        bson_iter_document(&sub, &len, &data);
        if (bson_init_static(&one, data, len) && fn(ud, &one))
            return 1;
    }
    return 0;
}

/* Imports copied into a new array: those a callback of each_import keeps. */
typedef struct import_list {
    bson_t *arr;
    uint32_t n;
    const import_record *imp; /* append_imports: the one being added */
    int again;                /* ... found among the old */
    const char *name, *path;  /* forget_in: those to leave out */
    forget_report *rep;
} import_list;

static void list_add(import_list *l, const bson_t *one) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(l->n++, &k, idx, sizeof(idx));
    BSON_APPEND_DOCUMENT(l->arr, k, one);
}

static int copy_import(void *ud, const bson_t *one) {
    import_list *l = ud;
    if (same(utf8_of(one, "path"), l->imp->path) && same(utf8_of(one, "name"), l->imp->name))
        l->again = 1;
    list_add(l, one);
    return 0;
}

/* Appends the imports of old (if any) and then imp to the array *arr;
 * *again set when one of old's already is imp (same path and name). */
static void append_imports(bson_t *arr, const bson_t *old, const import_record *imp, int *again) {
    import_list l = {.arr = arr, .imp = imp};
    if (old)
        record_each_import(old, copy_import, &l);
    *again = l.again;
    char idx[16];
    const char *k;
    bson_t entry;
    bson_uint32_to_string(l.n, &k, idx, sizeof(idx));
    BSON_APPEND_DOCUMENT_BEGIN(arr, k, &entry);
    BSON_APPEND_UTF8(&entry, "path", imp->path);
    if (imp->name)
        BSON_APPEND_UTF8(&entry, "name", imp->name);
    BSON_APPEND_DOUBLE(&entry, "time", imp->time);
    bson_append_document_end(arr, &entry);
}

int record_import(meta_db *m, const char *hash, const import_record *imp, char *have_type,
                  size_t size) {
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    bson_t old, doc = BSON_INITIALIZER, arr;
    int found = meta_get(txn, m->artifacts, hash, &old);
    if (found != 0 && found != MDB_NOTFOUND) {
        meta_abort(txn);
        return found;
    }
    int known = found == 0;
    const char *type = known ? utf8_of(&old, "type") : NULL;
    /* "any" (a rebuilt record, an untyped output) says nothing to disagree with. */
    if (type && strcmp(type, "any") != 0 && strcmp(type, imp->type) != 0) {
        snprintf(have_type, size, "%s", type);
        meta_abort(txn);
        return -EMEDIUMTYPE;
    }
    if (known) {
        bson_copy_to_excluding_noinit(&old, &doc, "imports", "type", NULL);
    } else {
        BSON_APPEND_INT64(&doc, "size", (int64_t)imp->size);
        BSON_APPEND_UTF8(&doc, "kind", imp->is_dir ? "folder" : "file");
        BSON_APPEND_DOUBLE(&doc, "created", imp->time);
    }
    BSON_APPEND_UTF8(&doc, "type", imp->type);
    int again;
    BSON_APPEND_ARRAY_BEGIN(&doc, "imports", &arr);
    append_imports(&arr, known ? &old : NULL, imp, &again);
    bson_append_array_end(&doc, &arr);
    if (again) {
        meta_abort(txn);
        bson_destroy(&doc);
        return IMPORT_AGAIN;
    }
    rc = meta_put(txn, m->artifacts, hash, &doc);
    bson_destroy(&doc);
    rc = rc ? (meta_abort(txn), rc) : meta_commit(txn);
    return rc ? rc : known ? IMPORT_KNOWN : IMPORT_NEW;
}

/* The artifacts forget_imports may change: those with an import that matches. */
typedef struct forget_scan {
    const char *name, *path;
    char (*hashes)[HASH_HEX_LEN + 1];
    size_t n, cap;
    int failed;
} forget_scan;

static int import_matches(const bson_t *one, const char *name, const char *path) {
    return (!name || same(utf8_of(one, "name"), name)) &&
           (!path || same(utf8_of(one, "path"), path));
}

static int scan_matches(void *ud, const bson_t *one) {
    const forget_scan *s = ud;
    return import_matches(one, s->name, s->path);
}

static int scan_artifact(void *ud, const char *key, size_t len, const bson_t *doc) {
    forget_scan *s = ud;
    if (len != HASH_HEX_LEN || !record_each_import(doc, scan_matches, s))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        void *grown = realloc(s->hashes, cap * sizeof(*s->hashes));
        if (!grown) {
            s->failed = 1;
            return 1;
        }
        s->hashes = grown;
        s->cap = cap;
    }
    memcpy(s->hashes[s->n], key, len);
    s->hashes[s->n++][len] = 0;
    return 0;
}

typedef struct model_ref {
    const char *hash;
    char *kept_by;
    size_t size;
} model_ref;

/* A model version naming the artifact roots it as its producer would. */
static int find_model(void *ud, const char *key, size_t len, const bson_t *doc) {
    model_ref *r = ud;
    const char *artifact = utf8_of(doc, "artifact");
    char name[300];
    snprintf(name, sizeof(name), "%.*s", (int)len, key);
    char *v = strstr(name, "/v/"); /* NAME/v/VERSION: a version */
    if (!v || !artifact || strcmp(artifact, r->hash) != 0)
        return 0;
    *v = 0;
    snprintf(r->kept_by, r->size, "model %s version %d", name, atoi(v + 3));
    return 1;
}

static int keep_import(void *ud, const bson_t *one) {
    import_list *l = ud;
    if (import_matches(one, l->name, l->path)) {
        l->rep->forgotten++;
        return 0;
    }
    if (!l->n)
        snprintf(l->rep->kept_by, sizeof(l->rep->kept_by), "imported from %s",
                 utf8_of(one, "path") ? utf8_of(one, "path") : "?");
    list_add(l, one);
    return 0;
}

/* Rewrites the record of hash without the matching imports; *rep says what came of it. */
static int forget_in(meta_db *m, MDB_txn *txn, const char *hash, const char *name, const char *path,
                     forget_report *rep) {
    bson_t old, doc = BSON_INITIALIZER, arr;
    int rc = meta_get(txn, m->artifacts, hash, &old);
    if (rc)
        return rc == MDB_NOTFOUND ? 0 : rc;
    memset(rep, 0, sizeof(*rep));
    snprintf(rep->hash, sizeof(rep->hash), "%s", hash);
    bson_copy_to_excluding_noinit(&old, &doc, "imports", NULL);
    BSON_APPEND_ARRAY_BEGIN(&doc, "imports", &arr);
    import_list l = {.arr = &arr, .name = name, .path = path, .rep = rep};
    record_each_import(&old, keep_import, &l);
    uint32_t kept = l.n;
    bson_append_array_end(&doc, &arr);
    const char *run = utf8_of(&old, "run");
    if (!kept && run)
        snprintf(rep->kept_by, sizeof(rep->kept_by), "made by run %s", run);
    model_ref ref = {hash, rep->kept_by, sizeof(rep->kept_by)};
    if (!kept && !run && m->has_models)
        meta_each(txn, m->models, "", find_model, &ref);
    if (!rep->kept_by[0]) {
        MDB_val key = {HASH_HEX_LEN, (void *)hash};
        rc = mdb_del(txn, m->artifacts, &key, NULL);
        rep->removed = rc == 0;
    } else {
        if (!kept) { /* no import left: the record as its producer wrote it */
            bson_reinit(&doc);
            bson_copy_to_excluding_noinit(&old, &doc, "imports", NULL);
        }
        rc = meta_put(txn, m->artifacts, hash, &doc);
    }
    bson_destroy(&doc);
    return rc;
}

int record_forget_imports(meta_db *m, const char *hash, const char *name, const char *path,
                          forget_report **out, size_t *n) {
    *out = NULL;
    *n = 0;
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    forget_scan s = {name, path, NULL, 0, 0, 0};
    bson_t one;
    if (hash) {
        if (meta_get(txn, m->artifacts, hash, &one) == 0)
            scan_artifact(&s, hash, strlen(hash), &one);
    } else {
        rc = meta_each(txn, m->artifacts, "", scan_artifact, &s);
    }
    forget_report *reps = s.n ? calloc(s.n, sizeof(*reps)) : NULL;
    if (s.failed || (s.n && !reps))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s.n; i++)
        rc = forget_in(m, txn, s.hashes[i], name, path, &reps[i]);
    free(s.hashes);
    rc = rc ? (meta_abort(txn), rc) : meta_commit(txn);
    if (rc) {
        free(reps);
        return rc;
    }
    *out = reps;
    *n = s.n;
    return 0;
}
