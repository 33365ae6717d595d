#include "meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "mdbcheck.h"

#define META_MAP_SIZE ((size_t)8 << 30) /* address space only: the file grows as used */

/* LMDB's own codes are negative; system errors come as positive errno. */
static int code(int rc) { return rc > 0 ? -rc : rc; }

const char *meta_strerror(int rc) {
    switch (rc) {
    case -EUCLEAN:
        return "the metadata file is damaged";
    case -EPROTO:
        return "the metadata was written by a newer sluice (a newer schema version)";
    case MDB_INVALID:
        return "the metadata file is not an LMDB database (its header is damaged)";
    case MDB_CORRUPTED:
        return "the metadata file is damaged (a page is not what LMDB expects)";
    case MDB_VERSION_MISMATCH:
        return "the metadata was written by an incompatible LMDB";
    case MDB_MAP_FULL:
        return "the metadata store is full (it reached its 8 GiB map)";
    case MDB_PANIC:
        return "LMDB stopped after a failed write (disk full or an I/O error)";
    case MDB_NOTFOUND:
        return "no such record";
    default:
        break;
    }
    /* LMDB's own words for the rest of its codes, the C library's for errno. */
    return rc > 0 ? strerror(rc) : sluice_strerror(rc);
}

const char *meta_error(const meta_db *m, int rc) { return m->why[0] ? m->why : meta_strerror(rc); }

static int open_dbs(meta_db *m, int read_only) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(m->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    if (rc)
        return code(rc);
    unsigned flags = read_only ? 0 : MDB_CREATE;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"runs", &m->runs},           {"steps", &m->steps}, {"artifacts", &m->artifacts},
               {"consumers", &m->consumers}, {"cache", &m->cache}, {"info", &m->info}};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]) && rc == 0; i++)
        rc = mdb_dbi_open(txn, dbs[i].name, flags, dbs[i].dbi);
    if (rc == 0) {
        /* Added after the first stores were made: its absence is no damage. */
        int got = mdb_dbi_open(txn, "models", flags, &m->models);
        m->has_models = got == 0;
        if (got != 0 && got != MDB_NOTFOUND)
            rc = got;
    }
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
            int32_t version = 0;
            if (v.mv_size == sizeof(version))
                memcpy(&version, v.mv_data, sizeof(version));
            if (version < 1)
                rc = EUCLEAN; /* not a version any sluice wrote */
            else if (version > META_SCHEMA_VERSION)
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

static int damaged(meta_db *m, const char *path, const char *what) {
    snprintf(m->why, sizeof(m->why),
             "%.300s is damaged: %.320s. Nothing was changed; 'sluice doctor' checks the store "
             "and docs/store.md says how to recover",
             path, what);
    return -EUCLEAN;
}

static int env_open(meta_db *m, const char *dir, int read_only) {
    int rc = mdb_env_create(&m->env);
    if (rc)
        return code(rc);
    mdb_env_set_maxdbs(m->env, 16);
    mdb_env_set_mapsize(m->env, META_MAP_SIZE);
    rc = mdb_env_open(m->env, dir, MDB_NOSYNC | MDB_NOTLS | (read_only ? MDB_RDONLY : 0), 0644);
    if (rc) {
        mdb_env_close(m->env);
        m->env = NULL;
    }
    return code(rc);
}

/* A store's first database is made aside and linked into place whole, so
 * that no process ever sees a data.mdb without its meta pages: an empty one
 * is then always damage, never "new". */
static int create_fresh(const char *store_root, const char *dir, const char *data) {
    char tmp[4200], tmp_data[4300];
    snprintf(tmp, sizeof(tmp), "%s/meta.new-%ld", store_root, (long)getpid());
    snprintf(tmp_data, sizeof(tmp_data), "%s/data.mdb", tmp);
    remove_tree(tmp);
    int rc = mkdir_p(tmp, 0755);
    meta_db fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (rc == 0 && (rc = env_open(&fresh, tmp, 0)) == 0) {
        rc = open_dbs(&fresh, 0);
        if (rc == 0)
            rc = code(mdb_env_sync(fresh.env, 1));
        mdb_env_close(fresh.env);
    }
    if (rc == 0)
        rc = mkdir_p(dir, 0755);
    if (rc == 0 && link(tmp_data, data) != 0 && errno != EEXIST) /* EEXIST: another made it */
        rc = -errno;
    remove_tree(tmp);
    return rc;
}

/* Whether the store has run folders: then a missing database is a loss,
 * not a new store. */
static int store_has_runs(const char *store_root) {
    char runs[4200];
    snprintf(runs, sizeof(runs), "%s/runs", store_root);
    DIR *d = opendir(runs);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return found;
}

/* Checks the file, opens it, walks the snapshot a read transaction holds,
 * then opens the databases. */
static int open_checked(meta_db *m, const char *dir, const char *data, int read_only) {
    char what[320] = "";
    int fd = open(data, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = mdbcheck_header(fd, NULL, what, sizeof(what));
    if (rc == 0)
        rc = env_open(m, dir, read_only);
    rc = rc ? rc : -EAGAIN;
    for (int i = 0; rc == -EAGAIN && i < 8; i++) {
        MDB_txn *txn;
        if ((rc = code(mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn))))
            break;
        rc = mdbcheck_walk(fd, mdb_txn_id(txn), what, sizeof(what));
        mdb_txn_abort(txn);
    }
    close(fd);
    if (rc == -EAGAIN)
        rc = -EBUSY; /* commits kept overtaking the check */
    if (rc == 0 && (rc = open_dbs(m, read_only)) == MDB_NOTFOUND) {
        snprintf(what, sizeof(what), "it lacks sluice's databases (runs, steps, artifacts, ...)");
        rc = -EUCLEAN;
    }
    if (rc == -EUCLEAN)
        damaged(m, data, what[0] ? what : "its schema version record is not one sluice wrote");
    if (rc && m->env) {
        mdb_env_close(m->env);
        m->env = NULL;
    }
    return rc;
}

int meta_create(meta_db *m, const char *store_root) {
    memset(m, 0, sizeof(*m));
    char dir[4096], data[4200];
    snprintf(dir, sizeof(dir), "%s/meta", store_root);
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    if (path_exists(data))
        return -EEXIST;
    int rc = create_fresh(store_root, dir, data);
    return rc ? rc : open_checked(m, dir, data, 0);
}

int meta_open(meta_db *m, const char *store_root, int read_only) {
    memset(m, 0, sizeof(*m));
    char dir[4096], data[4200];
    snprintf(dir, sizeof(dir), "%s/meta", store_root);
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    struct stat st;
    if (stat(data, &st) != 0) {
        if (errno != ENOENT)
            return -errno;
        if (store_has_runs(store_root))
            return damaged(m, data, "it is missing, but the store holds runs");
        if (read_only)
            return -ENOENT;
        int rc = create_fresh(store_root, dir, data);
        if (rc)
            return rc;
        if (stat(data, &st) != 0)
            return -errno;
    } else if (st.st_size == 0) {
        return damaged(m, data, "it is empty (0 bytes)");
    }
    /* A reader may catch a meta page half written by a committing run:
     * damage is only damage when it stays. When the file did not change
     * while it was checked, it stays. */
    int rc = 0;
    for (int tries = 0; tries < 3; tries++) {
        if (tries) {
            struct timespec pause = {0, 20 * 1000000L};
            nanosleep(&pause, NULL);
        }
        m->why[0] = '\0';
        struct stat after;
        if ((rc = open_checked(m, dir, data, read_only)) != -EUCLEAN || stat(data, &after) != 0 ||
            (after.st_size == st.st_size && after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
             after.st_mtim.tv_nsec == st.st_mtim.tv_nsec))
            break;
        st = after;
    }
    return rc;
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
