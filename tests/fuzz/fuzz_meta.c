/* fuzz_meta - libFuzzer target for the metadata file: the input is
 * STORE/meta/data.mdb. meta_open must refuse what LMDB cannot read safely;
 * what it accepts is read whole (every record of every database) and
 * written to, as a run would. Any crash, LMDB assertion, leak or sanitizer
 * report is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int touch(void *ud, const char *key, size_t len, const bson_t *doc) {
    size_t *sum = ud;
    bson_iter_t it;
    *sum += len + (key[0] != 0);
    if (bson_iter_init(&it, doc))
        while (bson_iter_next(&it))
            *sum += strlen(bson_iter_key(&it));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char root[64], file[128];
    if (!root[0]) {
        snprintf(root, sizeof(root), "/tmp/sluice-fuzz-meta-%ld", (long)getpid());
        snprintf(file, sizeof(file), "%s/meta", root);
        mkdir(root, 0755);
        mkdir(file, 0755);
        snprintf(file, sizeof(file), "%s/meta/data.mdb", root);
    }
    FILE *f = fopen(file, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    meta_db m;
    if (meta_open(&m, root, 0) != 0)
        return 0;
    MDB_txn *txn;
    size_t sum = 0;
    if (meta_begin(&m, 0, &txn) == 0) {
        MDB_dbi dbs[] = {m.runs, m.steps, m.artifacts, m.consumers, m.cache, m.info};
        for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
            meta_each(txn, dbs[i], "", touch, &sum);
        meta_abort(txn);
    }
    if (meta_begin(&m, 1, &txn) == 0) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_INT64(&doc, "sum", (int64_t)sum);
        if (meta_put(txn, m.runs, "fuzz", &doc) == 0)
            meta_commit(txn);
        else
            meta_abort(txn);
        bson_destroy(&doc);
    }
    meta_close(&m);
    return 0;
}
