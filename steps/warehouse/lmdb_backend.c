/* lmdb_backend.c - the warehouse in LMDB under STORE/warehouse: two
 * databases, "users" keyed by _id and "documents" keyed by
 * "category\0link", so that a category's documents are contiguous and in
 * link order. A batch of puts is one write transaction, committed by flush. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include <lmdb.h>

typedef struct lmdb_warehouse {
    struct warehouse base;
    MDB_env *env;
    MDB_dbi users, documents;
    MDB_txn *batch; /* the open write transaction, or NULL */
} lmdb_warehouse;

static int code(int rc) { return rc > 0 ? -rc : rc; }

static int fail_mdb(lmdb_warehouse *l, int rc, const char *what) {
    return warehouse_fail(&l->base, code(rc), "the warehouse: %s: %s", what, mdb_strerror(rc));
}

static MDB_dbi dbi_of(lmdb_warehouse *l, const char *collection) {
    return strcmp(collection, "users") == 0 ? l->users : l->documents;
}

/* The key of a document; a user's key is its id as is. */
static int make_key(const char *collection, const char *key, char *buf, size_t size, MDB_val *k) {
    if (strcmp(collection, "users") == 0) {
        *k = (MDB_val){strlen(key), (void *)key};
        return 0;
    }
    int n = snprintf(buf, size, "%s%c%s", collection, '\0', key);
    if (n < 0 || (size_t)n >= size || (size_t)n > 511) /* LMDB's default key limit */
        return -ENAMETOOLONG;
    *k = (MDB_val){(size_t)n, buf};
    return 0;
}

static int lmdb_put(warehouse *w, const char *collection, const char *key, const bson_t *doc) {
    lmdb_warehouse *l = (lmdb_warehouse *)w;
    char buf[512];
    MDB_val k, v = {doc->len, (void *)bson_get_data(doc)};
    if (make_key(collection, key, buf, sizeof(buf), &k) != 0)
        return warehouse_fail(w, -ENAMETOOLONG, "the warehouse: key '%.80s...' is too long", key);
    int rc = l->batch ? 0 : mdb_txn_begin(l->env, NULL, 0, &l->batch);
    if (rc)
        return fail_mdb(l, rc, "beginning a write");
    if ((rc = mdb_put(l->batch, dbi_of(l, collection), &k, &v, 0)) != 0)
        return fail_mdb(l, rc, "writing");
    return 0;
}

static int lmdb_flush(warehouse *w) {
    lmdb_warehouse *l = (lmdb_warehouse *)w;
    if (!l->batch)
        return 0;
    int rc = mdb_txn_commit(l->batch);
    l->batch = NULL;
    return rc ? fail_mdb(l, rc, "committing") : 0;
}

/* Walks collection from its first key; fn returns nonzero to stop. */
typedef int (*visit_fn)(void *ud, const MDB_val *key, const bson_t *doc);

static int walk(lmdb_warehouse *l, const char *collection, visit_fn fn, void *ud) {
    int users = strcmp(collection, "users") == 0;
    char prefix[128];
    size_t plen = users ? 0 : (size_t)snprintf(prefix, sizeof(prefix), "%s%c", collection, '\0');
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fail_mdb(l, rc, "reading");
    if ((rc = mdb_cursor_open(txn, dbi_of(l, collection), &cur)) != 0) {
        mdb_txn_abort(txn);
        return fail_mdb(l, rc, "reading");
    }
    MDB_val k = {plen, prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    int stopped = 0;
    while (rc == 0 && !stopped) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        bson_t doc;
        if (!bson_init_static(&doc, v.mv_data, v.mv_size)) {
            rc = MDB_CORRUPTED;
            break;
        }
        stopped = fn(ud, &k, &doc);
        if (!stopped)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : fail_mdb(l, rc, "reading");
}

typedef struct each_ctx {
    const char *category;
    warehouse_fn fn;
    void *ud;
} each_ctx;

static int each_visit(void *ud, const MDB_val *key, const bson_t *doc) {
    (void)key;
    each_ctx *e = ud;
    return e->fn(e->ud, e->category, doc);
}

static int lmdb_each(warehouse *w, const char *collection, const char *category, warehouse_fn fn,
                     void *ud) {
    each_ctx e = {category, fn, ud};
    return walk((lmdb_warehouse *)w, collection, each_visit, &e);
}

typedef struct find_ctx {
    const char *field, *value;
    bson_t *found;
    int hit;
} find_ctx;

static int find_visit(void *ud, const MDB_val *key, const bson_t *doc) {
    (void)key;
    find_ctx *f = ud;
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, f->field) && BSON_ITER_HOLDS_UTF8(&it) &&
        strcmp(bson_iter_utf8(&it, NULL), f->value) == 0) {
        bson_copy_to(doc, f->found);
        f->hit = 1;
    }
    return f->hit;
}

static int lmdb_find(warehouse *w, const char *collection, const char *field, const char *value,
                     bson_t *found) {
    lmdb_warehouse *l = (lmdb_warehouse *)w;
    int users = strcmp(collection, "users") == 0;
    if (strcmp(field, users ? "_id" : "link") != 0) { /* not the key: a scan */
        find_ctx f = {field, value, found, 0};
        int rc = walk(l, collection, find_visit, &f);
        return rc ? rc : f.hit;
    }
    char buf[512];
    MDB_val k, v;
    if (make_key(collection, value, buf, sizeof(buf), &k) != 0)
        return 0; /* longer than any stored key */
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fail_mdb(l, rc, "reading");
    rc = mdb_get(txn, dbi_of(l, collection), &k, &v);
    int hit = 0;
    if (rc == 0) {
        bson_t doc;
        if (bson_init_static(&doc, v.mv_data, v.mv_size)) {
            bson_copy_to(&doc, found);
            hit = 1;
        } else {
            rc = MDB_CORRUPTED;
        }
    }
    mdb_txn_abort(txn);
    if (rc && rc != MDB_NOTFOUND)
        return fail_mdb(l, rc, "reading");
    return hit;
}

static void lmdb_close(warehouse *w) {
    lmdb_warehouse *l = (lmdb_warehouse *)w;
    if (l->batch)
        mdb_txn_abort(l->batch);
    if (l->env)
        mdb_env_close(l->env);
    free(l);
}

static const warehouse_ops lmdb_ops = {lmdb_put, lmdb_flush, lmdb_find, lmdb_each, lmdb_close};

static int make_dir(const char *dir, char *err, size_t err_size) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    int e = errno;
    snprintf(err, err_size, "%s: %s", dir, strerror(e));
    return -e;
}

int warehouse_lmdb_open(warehouse **out, const char *store_dir, int read_only, char *err,
                        size_t err_size) {
    *out = NULL;
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/warehouse", store_dir) >= sizeof(dir)) {
        snprintf(err, err_size, "%s: the path is too long", store_dir);
        return -ENAMETOOLONG;
    }
    int rc = 0;
    if (!read_only && ((rc = make_dir(store_dir, err, err_size)) != 0 ||
                       (rc = make_dir(dir, err, err_size)) != 0))
        return rc;
    lmdb_warehouse *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    l->base.ops = &lmdb_ops;
    rc = mdb_env_create(&l->env);
    if (rc == 0) {
        mdb_env_set_maxdbs(l->env, 4);
        mdb_env_set_mapsize(l->env, (size_t)16 << 30);
        rc = mdb_env_open(l->env, dir, read_only ? MDB_RDONLY : 0, 0644);
    }
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = mdb_txn_begin(l->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    unsigned flags = read_only ? 0 : MDB_CREATE;
    if (rc == 0)
        rc = mdb_dbi_open(txn, "users", flags, &l->users);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "documents", flags, &l->documents);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        snprintf(err, err_size, "the warehouse in %s: %s", dir,
                 rc == ENOENT || rc == MDB_NOTFOUND ? "there is none yet (import or crawl first)"
                                                    : mdb_strerror(rc));
        lmdb_close(&l->base);
        return code(rc);
    }
    *out = &l->base;
    return 0;
}
