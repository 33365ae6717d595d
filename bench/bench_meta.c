/* bench_meta - what recording a step costs, beside LMDB's own commit cost.
 *
 * In one run, on the same disk:
 *   - a bare LMDB commit of one 1 KiB record, synced (the durable floor) and
 *     not synced (MDB_NOSYNC, what sluice commits with);
 *   - sluice's record_step(): the step run with its parameters, cache key
 *     parts, two inputs and two outputs, their artifact records, the lineage
 *     edges and the cache entry, in one transaction, not synced;
 *   - the same followed by a sync each time: a durable step record.
 * It prints records per second, microseconds each, and the ratios. */
#define _XOPEN_SOURCE 700
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#include "diag.h"
#include "error.h"
#include "record.h"
#include "run.h"
#include "pipeline.h"

#define FAST_N 20000
#define SYNC_N 200

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_meta: %s: %s\n", what, sluice_strerror(rc));
    exit(1);
}

/* Seconds per bare commit of one 1 KiB record. */
static double bare_commits(const char *dir, int nosync, int n) {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)1 << 30)) ||
        (rc = mdb_env_open(env, dir, nosync ? MDB_NOSYNC : 0, 0644)))
        die("open", rc);
    char value[1024];
    memset(value, 'x', sizeof(value));
    double t0 = now();
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%08d", i);
        MDB_val k = {strlen(key), key}, v = {sizeof(value), value};
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
            (rc = mdb_put(txn, dbi, &k, &v, 0)) || (rc = mdb_txn_commit(txn)))
            die("commit", rc);
    }
    double t = (now() - t0) / n;
    mdb_env_close(env);
    return t;
}

static double sluice_records(const char *store, const pipeline *p, int sync, int n) {
    meta_db m;
    int rc = meta_open(&m, store, 0);
    if (rc)
        die("meta_open", rc);
    const step *s = &p->steps[1];
    bson_t parts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&parts, "step",
                     "a3f1c29e0d1b4c5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a");
    record_port ins[2] = {
        {"i", "1111111111111111111111111111111111111111111111111111111111111111", NULL, 0, 0},
        {"j", "2222222222222222222222222222222222222222222222222222222222222222", NULL, 0, 0}};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        char run_id[32], h1[65], h2[65], key[65];
        snprintf(run_id, sizeof(run_id), "run-%08d", i);
        snprintf(h1, sizeof(h1), "%064d", 2 * i);
        snprintf(h2, sizeof(h2), "%064d", 2 * i + 1);
        snprintf(key, sizeof(key), "%064d", i);
        record_port outs[2] = {{"o", h1, "chunks", 1024, 0}, {"p", h2, "metrics", 64, 0}};
        step_record rec = {.run_id = run_id,
                           .status = "done",
                           .started = 1.0,
                           .finished = 2.0,
                           .attempts = 1,
                           .cache_key = key,
                           .key_parts = &parts,
                           .inputs = ins,
                           .n_inputs = 2,
                           .outputs = outs,
                           .n_outputs = 2,
                           .cacheable = 1};
        bson_t params;
        run_step_record(s, &rec, &params);
        rc = record_step(&m, &rec);
        bson_destroy(&params);
        if (rc)
            die("record_step", rc);
        if (sync && (rc = meta_sync(&m)))
            die("sync", rc);
    }
    double t = (now() - t0) / n;
    bson_destroy(&parts);
    meta_close(&m);
    return t;
}

int main(void) {
    char dir[] = "/tmp/sluice-bench-meta-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char a[128], b[128], c[128], d[128], cmd[256];
    snprintf(a, sizeof(a), "%s/bare-sync", dir);
    snprintf(b, sizeof(b), "%s/bare-nosync", dir);
    snprintf(c, sizeof(c), "%s/store-fast", dir);
    snprintf(d, sizeof(d), "%s/store-sync", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s %s", a, b);
    if (system(cmd) != 0)
        return 1;
    const char *yaml = "pipeline: bench\nsteps:\n"
                       "  a: {uses: shell, with: {run: x, outputs: {o: o, p: p}}}\n"
                       "  s: {uses: shell, inputs: {i: a.o, j: a.p},\n"
                       "      with: {run: 'y --size 500 --overlap 50', outputs: {o: o, p: p}}}\n";
    diag_list dl = DIAG_LIST_INIT;
    pipeline *p = NULL;
    if (pipeline_load_buffer(yaml, strlen(yaml), "bench.yaml", NULL, NULL, &dl, &p) != 0) {
        diag_print(&dl, stderr);
        return 1;
    }
    double bare_sync = bare_commits(a, 0, SYNC_N);
    double bare_fast = bare_commits(b, 1, FAST_N);
    double rec_fast = sluice_records(c, p, 0, FAST_N);
    double rec_sync = sluice_records(d, p, 1, SYNC_N);
    printf("bench_meta: %s, one transaction per record\n", mdb_version(NULL, NULL, NULL));
    printf("  bare LMDB commit, synced           %8.1f us   %9.0f /s  (the durable floor)\n",
           bare_sync * 1e6, 1 / bare_sync);
    printf("  bare LMDB commit, MDB_NOSYNC       %8.1f us   %9.0f /s\n", bare_fast * 1e6,
           1 / bare_fast);
    printf("  sluice step record (+lineage)      %8.1f us   %9.0f /s  %.2fx a bare nosync commit\n",
           rec_fast * 1e6, 1 / rec_fast, rec_fast / bare_fast);
    printf("  sluice step record, synced each    %8.1f us   %9.0f /s  %.2fx a bare synced commit\n",
           rec_sync * 1e6, 1 / rec_sync, rec_sync / bare_sync);
    pipeline_free(p);
    diag_clear(&dl);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
