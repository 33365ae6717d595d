#include "meta.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/fsutil.h"

#define META_MAP_SIZE ((size_t)8 << 30) /* address space only: the file grows as used */

/* LMDB's own codes are negative; system errors come as positive errno. */
static int code(int rc) { return rc > 0 ? -rc : rc; }

const char *meta_strerror(int rc) { return mdb_strerror(rc < 0 && rc > -30000 ? -rc : rc); }

static int open_dbs(meta_db *m, int read_only) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(m->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    if (rc)
        return code(rc);
    unsigned flags = read_only ? 0 : MDB_CREATE;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"runs", &m->runs},         {"steps", &m->steps}, {"artifacts", &m->artifacts},
               {"consumers", &m->consumers}, {"cache", &m->cache}, {"info", &m->info}};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]) && rc == 0; i++)
        rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
    if (rc == 0) {
        /* The schema version: written once, checked on every open. */
        MDB_val k = {6, "schema"}, v;
        int got = mdb_get(txn, m->info, &k, &v);
        if (got == MDB_NOTFOUND && !read_only) {
            int32_t version = META_SCHEMA_VERSION;
            v.mv_size = sizeof(version);
            v.mv_data = &version;
            rc = mdb_put(txn, m->info, &k, &v, 0);
        } else if (got == 0) {
            int32_t version;
            memcpy(&version, v.mv_data, sizeof(version));
            if (version > META_SCHEMA_VERSION)
                rc = EPROTO; /* written by a newer sluice */
        } else if (got != MDB_NOTFOUND) {
            rc = got;
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return code(rc);
    }
    return code(mdb_txn_commit(txn));
}

int meta_open(meta_db *m, const char *store_root, int read_only) {
    memset(m, 0, sizeof(*m));
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/meta", store_root);
    int rc = read_only ? 0 : mkdir_p(dir, 0755);
    if (rc)
        return rc;
    if ((rc = mdb_env_create(&m->env)))
        return code(rc);
    mdb_env_set_maxdbs(m->env, 8);
    mdb_env_set_mapsize(m->env, META_MAP_SIZE);
    rc = mdb_env_open(m->env, dir, MDB_NOSYNC | MDB_NOTLS | (read_only ? MDB_RDONLY : 0), 0644);
    if (rc == 0)
        rc = open_dbs(m, read_only);
    if (rc) {
        mdb_env_close(m->env);
        m->env = NULL;
    }
    return code(rc);
}

void meta_close(meta_db *m) {
    if (m->env) {
        mdb_env_sync(m->env, 1);
        mdb_env_close(m->env);
    }
    m->env = NULL;
}

int meta_sync(meta_db *m) { return code(mdb_env_sync(m->env, 1)); }

int meta_begin(meta_db *m, int write, MDB_txn **txn) {
    return code(mdb_txn_begin(m->env, NULL, write ? 0 : MDB_RDONLY, txn));
}

int meta_commit(MDB_txn *txn) { return code(mdb_txn_commit(txn)); }

void meta_abort(MDB_txn *txn) { mdb_txn_abort(txn); }

int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const bson_t *doc) {
    MDB_val k = {strlen(key), (void *)key};
    MDB_val v = {doc ? doc->len : 0, doc ? (void *)bson_get_data(doc) : (void *)""};
    return code(mdb_put(txn, dbi, &k, &v, 0));
}

int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, bson_t *doc) {
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc)
        return code(rc);
    if (!bson_init_static(doc, v.mv_data, v.mv_size))
        return -EBADMSG;
    return 0;
}

int meta_each(MDB_txn *txn, MDB_dbi dbi, const char *prefix, meta_each_fn fn, void *ud) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return code(rc);
    size_t plen = strlen(prefix);
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        bson_t doc;
        int stop = 0;
        if (v.mv_size == 0 || bson_init_static(&doc, v.mv_data, v.mv_size)) {
            if (v.mv_size == 0)
                bson_init(&doc);
            stop = fn(ud, k.mv_data, k.mv_size, &doc);
        }
        if (stop)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : code(rc);
}
