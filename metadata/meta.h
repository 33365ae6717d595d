/* meta.h - the metadata store: runs, step runs, artifacts, lineage and the
 * cache index, in LMDB under STORE/meta/.
 *
 * Records are BSON documents (libbson) under string keys:
 *   runs       RUN_ID                  the run: pipeline, file, params, status, times
 *   steps      RUN_ID/STEP_ID          a step run: status, times, attempts, params,
 *                                      inputs and outputs (hashes), error, cache key,
 *                                      cached_from
 *   artifacts  HASH                    type, size, kind, producer (run, step, output)
 *   consumers  HASH/RUN_ID/STEP_ID     empty: lineage downwards (producer is upwards)
 *   cache      KEY                     run, step, outputs of the step run to reuse
 *   info       "schema"                the schema version (int32)
 *   models     NAME/...                the model registry: versions, aliases,
 *                                      the audit trail (modelreg.h)
 *
 * Only the orchestrator writes, and a step's records go in one transaction.
 * Commits are not synced one by one (MDB_NOSYNC): a killed sluice loses
 * nothing, since committed pages are in the kernel's cache, and meta_sync()
 * flushes them to disk at the end of a run and every few hundred
 * milliseconds during one. A power cut or kernel crash loses the commits
 * since the last flush and, on a file system that reorders writes, may
 * leave the newest meta page naming pages that never reached the disk
 * (LMDB's caveat): meta_open's check then refuses the file (docs/store.md).
 * Several sluice processes may use one store at once (LMDB's locking). */
#ifndef SLUICE_METADATA_META_H
#define SLUICE_METADATA_META_H

#include <bson/bson.h>
#include <lmdb.h>
#include <stddef.h>

#define META_SCHEMA_VERSION 1

typedef struct meta_db {
    MDB_env *env;
    MDB_dbi runs, steps, artifacts, consumers, cache, info;
    /* The model registry (modelreg.h). A store no sluice with a registry
     * has written yet lacks it: read-only, has_models is then 0 and the
     * registry reads as empty; a writer makes it. */
    MDB_dbi models;
    int has_models;
    char why[768]; /* what meta_open found wrong, when it says more than its code */
} meta_db;

/* Opens STORE/meta, creating it (writable only) when the store has no
 * runs yet. The file is checked before LMDB maps it (mdbcheck.h): a
 * damaged, empty or missing-but-needed data.mdb is refused with -EUCLEAN
 * and m->why saying what is wrong; nothing is ever reset. Returns 0,
 * -ENOENT (read-only, no database yet) or a negative code. */
int meta_open(meta_db *m, const char *store_root, int read_only);
/* Makes a new, empty STORE/meta/data.mdb where there is none (-EEXIST
 * otherwise), for 'sluice doctor --rebuild', and opens it. */
int meta_create(meta_db *m, const char *store_root);
void meta_close(meta_db *m);
int meta_sync(meta_db *m);

/* Words for a code: -errno, LMDB's MDB_* codes, or -EUCLEAN (damage). */
const char *meta_strerror(int rc);
/* Why meta_open failed: m->why when it says more, else meta_strerror. */
const char *meta_error(const meta_db *m, int rc);

/* A transaction: write or read-only. Returns 0 or a negative code. */
int meta_begin(meta_db *m, int write, MDB_txn **txn);
int meta_commit(MDB_txn *txn);
void meta_abort(MDB_txn *txn);

int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const bson_t *doc);
/* Reads key into *doc, which points into LMDB's memory: valid until the
 * transaction ends. Returns 0, MDB_NOTFOUND, or another negative code. */
int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, bson_t *doc);

/* Calls fn for every record whose key starts with prefix, in key order; fn
 * returns nonzero to stop. key and doc are valid for the call. */
typedef int (*meta_each_fn)(void *ud, const char *key, size_t key_len, const bson_t *doc);
int meta_each(MDB_txn *txn, MDB_dbi dbi, const char *prefix, meta_each_fn fn, void *ud);

#endif
