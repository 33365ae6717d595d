#include "schedules.h"

#include <errno.h>
#include <string.h>

/* The database, made on the first write: stores from before schedules
 * lack it, and then have none. */
static int open_dbi(MDB_txn *txn, int write, MDB_dbi *dbi) {
    int rc = mdb_dbi_open(txn, "schedules", write ? MDB_CREATE : 0, dbi);
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    return rc > 0 ? -rc : rc;
}

int schedules_put(meta_db *m, const char *name, const bson_t *doc, int only_new) {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    bson_t old;
    if ((rc = open_dbi(txn, 1, &dbi)) == 0 && only_new) {
        rc = meta_get(txn, dbi, name, &old);
        rc = rc == 0 ? -EEXIST : rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc == 0)
        rc = meta_put(txn, dbi, name, doc);
    if (rc) {
        meta_abort(txn);
        return rc;
    }
    return meta_commit(txn);
}

int schedules_get(meta_db *m, const char *name, bson_t *out) {
    MDB_txn *txn;
    MDB_dbi dbi;
    bson_t doc;
    int rc = meta_begin(m, 0, &txn);
    if (rc)
        return rc;
    if ((rc = open_dbi(txn, 0, &dbi)) == 0 && (rc = meta_get(txn, dbi, name, &doc)) == 0)
        bson_copy_to(&doc, out);
    meta_abort(txn);
    return rc == MDB_NOTFOUND ? -ENOENT : rc;
}

int schedules_update(meta_db *m, const char *name, const bson_t *changes) {
    MDB_txn *txn;
    MDB_dbi dbi;
    bson_t doc, merged = BSON_INITIALIZER;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    if ((rc = open_dbi(txn, 1, &dbi)) == 0 && (rc = meta_get(txn, dbi, name, &doc)) == 0) {
        bson_iter_t it, probe;
        if (bson_iter_init(&it, &doc))
            while (bson_iter_next(&it))
                if (!bson_iter_init_find(&probe, changes, bson_iter_key(&it)) &&
                    !bson_append_iter(&merged, bson_iter_key(&it), -1, &it))
                    rc = -ENOMEM;
        if (rc == 0 && !bson_concat(&merged, changes))
            rc = -ENOMEM;
        if (rc == 0)
            rc = meta_put(txn, dbi, name, &merged);
    }
    bson_destroy(&merged);
    if (rc) {
        meta_abort(txn);
        return rc == MDB_NOTFOUND ? -ENOENT : rc;
    }
    return meta_commit(txn);
}

int schedules_remove(meta_db *m, const char *name) {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    if ((rc = open_dbi(txn, 1, &dbi)) == 0) {
        MDB_val k = {strlen(name), (void *)name};
        rc = mdb_del(txn, dbi, &k, NULL);
        rc = rc == MDB_NOTFOUND ? -ENOENT : rc > 0 ? -rc : rc;
    }
    if (rc) {
        meta_abort(txn);
        return rc;
    }
    return meta_commit(txn);
}

int schedules_each(meta_db *m, meta_each_fn fn, void *ud) {
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = meta_begin(m, 0, &txn);
    if (rc)
        return rc;
    if ((rc = open_dbi(txn, 0, &dbi)) == 0)
        rc = meta_each(txn, dbi, "", fn, ud);
    meta_abort(txn);
    return rc == -ENOENT ? 0 : rc;
}

int schedules_claim_delivery(meta_db *m, const char *name, const char *delivery) {
    MDB_txn *txn;
    MDB_dbi dbi;
    bson_t doc, merged = BSON_INITIALIZER, arr;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    if ((rc = open_dbi(txn, 1, &dbi)) == 0 && (rc = meta_get(txn, dbi, name, &doc)) == 0) {
        bson_iter_t it, sub;
        /* the deliveries kept, then this one; the oldest drop off */
        const char *seen[SCHEDULES_DELIVERIES_KEPT];
        size_t n = 0, first = 0;
        if (bson_iter_init_find(&it, &doc, "deliveries") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &sub))
            while (bson_iter_next(&sub))
                if (BSON_ITER_HOLDS_UTF8(&sub)) {
                    const char *v = bson_iter_utf8(&sub, NULL);
                    if (strcmp(v, delivery) == 0)
                        rc = -EALREADY;
                    seen[n++ % SCHEDULES_DELIVERIES_KEPT] = v;
                }
        if (n >= SCHEDULES_DELIVERIES_KEPT) {
            first = n % SCHEDULES_DELIVERIES_KEPT + 1; /* keep the newest KEPT - 1 */
            n = SCHEDULES_DELIVERIES_KEPT - 1;
        }
        if (rc == 0 && bson_iter_init(&it, &doc))
            while (bson_iter_next(&it))
                if (strcmp(bson_iter_key(&it), "deliveries") != 0 &&
                    !bson_append_iter(&merged, bson_iter_key(&it), -1, &it))
                    rc = -ENOMEM;
        if (rc == 0) {
            char key[16];
            const char *k;
            BSON_APPEND_ARRAY_BEGIN(&merged, "deliveries", &arr);
            size_t i = 0;
            for (; i < n; i++) {
                bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
                BSON_APPEND_UTF8(&arr, k, seen[(first + i) % SCHEDULES_DELIVERIES_KEPT]);
            }
            bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
            BSON_APPEND_UTF8(&arr, k, delivery);
            if (!bson_append_array_end(&merged, &arr))
                rc = -ENOMEM;
        }
        if (rc == 0)
            rc = meta_put(txn, dbi, name, &merged);
    }
    bson_destroy(&merged);
    if (rc) {
        meta_abort(txn);
        return rc == MDB_NOTFOUND ? -ENOENT : rc;
    }
    return meta_commit(txn);
}
