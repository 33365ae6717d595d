#include "warehouse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const categories[] = WAREHOUSE_CATEGORIES;
static const char *const export_files[] = {"ArticleDocument.json", "PostDocument.json",
                                           "RepositoryDocument.json"};

static int code(int rc) { return rc > 0 ? -rc : rc; }

int warehouse_open(warehouse *w, const char *store_dir, int read_only, char *err, size_t err_size) {
    memset(w, 0, sizeof(*w));
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/warehouse", store_dir);
    if (!read_only && mkdir(store_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "%s: %s", store_dir, strerror(errno));
        return -errno;
    }
    if (!read_only && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    int rc = mdb_env_create(&w->env);
    if (rc == 0) {
        mdb_env_set_maxdbs(w->env, 4);
        mdb_env_set_mapsize(w->env, (size_t)16 << 30);
        rc = mdb_env_open(w->env, dir, read_only ? MDB_RDONLY : 0, 0644);
    }
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = mdb_txn_begin(w->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
    unsigned flags = read_only ? 0 : MDB_CREATE;
    if (rc == 0)
        rc = mdb_dbi_open(txn, "users", flags, &w->users);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "documents", flags, &w->documents);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        snprintf(err, err_size, "the warehouse in %s: %s", dir,
                 rc == ENOENT || rc == MDB_NOTFOUND ? "there is none yet (import or crawl first)"
                                                    : mdb_strerror(rc));
        if (w->env)
            mdb_env_close(w->env);
        w->env = NULL;
    }
    return code(rc);
}

void warehouse_close(warehouse *w) {
    if (w->env)
        mdb_env_close(w->env);
    w->env = NULL;
}

int warehouse_begin(warehouse *w, MDB_txn **txn) { return code(mdb_txn_begin(w->env, NULL, 0, txn)); }

int warehouse_commit(MDB_txn *txn) { return code(mdb_txn_commit(txn)); }

static int put(MDB_txn *txn, MDB_dbi dbi, const char *key, size_t klen, const bson_t *doc) {
    MDB_val k = {klen, (void *)key}, v = {doc->len, (void *)bson_get_data(doc)};
    return code(mdb_put(txn, dbi, &k, &v, 0));
}

int warehouse_put_user(warehouse *w, MDB_txn *txn, const char *id, const bson_t *user) {
    return put(txn, w->users, id, strlen(id), user);
}

/* Keys are "category\0link": a category's documents are contiguous. */
int warehouse_put_document(warehouse *w, MDB_txn *txn, const char *category, const char *link,
                           const bson_t *doc) {
    char key[4096];
    int n = snprintf(key, sizeof(key), "%s%c%s", category, '\0', link);
    if (n < 0 || (size_t)n >= sizeof(key))
        return -ENAMETOOLONG;
    return put(txn, w->documents, key, (size_t)n, doc);
}

static int each(warehouse *w, MDB_dbi dbi, const char *prefix, size_t plen, warehouse_fn fn,
                void *ud) {
    int documents = dbi == w->documents;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return code(rc);
    if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
        mdb_txn_abort(txn);
        return code(rc);
    }
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        bson_t doc;
        /* A document's key is "category\0link"; a user's has no category. */
        const char *category = documents ? (const char *)k.mv_data : NULL;
        if (bson_init_static(&doc, v.mv_data, v.mv_size) && fn(ud, category, &doc))
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : code(rc);
}

int warehouse_each(warehouse *w, const char *category, warehouse_fn fn, void *ud) {
    if (!category)
        return each(w, w->documents, "", 0, fn, ud);
    char prefix[128];
    int n = snprintf(prefix, sizeof(prefix), "%s%c", category, '\0');
    return each(w, w->documents, prefix, (size_t)n, fn, ud);
}

int warehouse_each_user(warehouse *w, warehouse_fn fn, void *ud) {
    return each(w, w->users, "", 0, fn, ud);
}

/* Reads a JSON array file into a document {"0": ..., "1": ...}. */
static bson_t *read_array(const char *path, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *json = malloc((size_t)size + 16);
    if (!json) {
        fclose(f);
        return NULL;
    }
    memcpy(json, "{\"a\":", 5);
    size_t got = fread(json + 5, 1, (size_t)size, f);
    fclose(f);
    memcpy(json + 5 + got, "}", 2);
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &e);
    free(json);
    if (!doc)
        snprintf(err, err_size, "%s: not a JSON array of documents: %s", path, e.message);
    return doc;
}

static const char *str(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL)
                                                                           : NULL;
}

/* Puts every element of file's array; users when category is NULL. */
static int import_file(warehouse *w, MDB_txn *txn, const char *dir, const char *file,
                       const char *category, size_t *count, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* a category with no export file has no documents */
    bson_t *all = read_array(path, err, err_size);
    if (!all)
        return -EINVAL;
    bson_iter_t it, arr;
    int rc = 0;
    if (bson_iter_init_find(&it, all, "a") && bson_iter_recurse(&it, &arr)) {
        while (rc == 0 && bson_iter_next(&arr)) {
            uint32_t len;
            const uint8_t *data;
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
                continue;
            bson_iter_document(&arr, &len, &data);
            bson_t doc;
            bson_init_static(&doc, data, len);
            const char *id = str(&doc, "_id"), *link = str(&doc, "link");
            if (category && !link) {
                snprintf(err, err_size, "%s: document %zu has no link", path, *count + 1);
                rc = -EINVAL;
            } else if (!category && !id) {
                snprintf(err, err_size, "%s: user %zu has no _id", path, *count + 1);
                rc = -EINVAL;
            } else {
                rc = category ? warehouse_put_document(w, txn, category, link, &doc)
                              : warehouse_put_user(w, txn, id, &doc);
                (*count)++;
            }
        }
    }
    bson_destroy(all);
    return rc;
}

int warehouse_import(warehouse *w, const char *dir, size_t *users, size_t *documents, char *err,
                     size_t err_size) {
    *users = *documents = 0;
    MDB_txn *txn;
    int rc = warehouse_begin(w, &txn);
    if (rc) {
        snprintf(err, err_size, "%s", mdb_strerror(-rc));
        return rc;
    }
    rc = import_file(w, txn, dir, "UserDocument.json", NULL, users, err, err_size);
    for (size_t i = 0; rc == 0 && i < 3; i++)
        rc = import_file(w, txn, dir, export_files[i], categories[i], documents, err, err_size);
    if (rc) { /* all or nothing */
        mdb_txn_abort(txn);
        return rc;
    }
    return warehouse_commit(txn);
}

typedef struct writer {
    FILE *f;
    size_t n;
    const char *category;
} writer;

static int write_one(void *ud, const char *category, const bson_t *doc) {
    writer *wr = ud;
    (void)category;
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (!json)
        return 1;
    fprintf(wr->f, "%s%s", wr->n ? ",\n" : "\n", json);
    bson_free(json);
    wr->n++;
    return 0;
}

static int export_one(warehouse *w, const char *dir, const char *file, const char *category,
                      size_t *count, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    writer wr = {fopen(path, "w"), 0, category};
    if (!wr.f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return -errno;
    }
    fputc('[', wr.f);
    int rc = category ? warehouse_each(w, category, write_one, &wr)
                      : warehouse_each_user(w, write_one, &wr);
    fputs(wr.n ? "\n]\n" : "]\n", wr.f);
    if (fclose(wr.f) != 0 && rc == 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        rc = -EIO;
    }
    *count += wr.n;
    return rc;
}

int warehouse_export(warehouse *w, const char *dir, size_t *users, size_t *documents, char *err,
                     size_t err_size) {
    *users = *documents = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    int rc = export_one(w, dir, "UserDocument.json", NULL, users, err, err_size);
    for (size_t i = 0; rc == 0 && i < 3; i++)
        rc = export_one(w, dir, export_files[i], categories[i], documents, err, err_size);
    return rc;
}
