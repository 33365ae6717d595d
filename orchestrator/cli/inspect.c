#include "inspect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int inspect_open(const char *store, meta_db *m) {
    int rc = meta_open(m, store, 1);
    if (rc == 0)
        return 0;
    if (rc == -ENOENT)
        fprintf(stderr, "sluice: no runs in %s yet (run a pipeline, or give --store)\n", store);
    else
        fprintf(stderr, "sluice: cannot read the metadata in %s/meta: %s\n", store,
                meta_error(m, rc));
    return EXIT_BAD_INPUT;
}

int inspect_begin(const char *store, meta_db *m, MDB_txn **txn) {
    if (inspect_open(store, m))
        return EXIT_BAD_INPUT;
    int rc = meta_begin(m, 0, txn);
    if (rc == 0)
        return 0;
    fprintf(stderr, "sluice: cannot read the metadata: %s\n", meta_strerror(rc));
    meta_close(m);
    return EXIT_BAD_INPUT;
}

void inspect_end(meta_db *m, MDB_txn *txn) {
    meta_abort(txn);
    meta_close(m);
}

void inspect_append_item(bson_t *array, const char *id_field, const char *key, size_t key_len,
                         const bson_t *doc) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(bson_count_keys(array), &k, idx, sizeof(idx));
    bson_t item;
    BSON_APPEND_DOCUMENT_BEGIN(array, k, &item);
    bson_append_utf8(&item, id_field, -1, key, (int)key_len);
    bson_concat(&item, doc);
    bson_append_document_end(array, &item);
}

typedef struct match {
    const char *prefix;
    char *out;
    size_t size;
    int count;
} match;

static int on_match(void *ud, const char *key, size_t len, const bson_t *doc) {
    match *m = ud;
    (void)doc;
    /* Step keys are RUN/STEP: only whole first parts count as matches. */
    if (memchr(key, '/', len) && !strchr(m->prefix, '/'))
        return 0;
    if (m->count++ == 0)
        snprintf(m->out, m->size, "%.*s", (int)len, key);
    return m->count > 1;
}

int inspect_resolve(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *prefix, char *out,
                    size_t size) {
    match m = {prefix, out, size, 0};
    int rc = meta_each(txn, dbi, prefix, on_match, &m);
    if (rc) {
        fprintf(stderr, "sluice: cannot read the metadata: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    if (m.count == 0) {
        fprintf(stderr, "sluice: no %s matches '%s'\n", what, prefix);
        return EXIT_BAD_INPUT;
    }
    if (m.count > 1) {
        fprintf(stderr, "sluice: '%s' is ambiguous: more than one %s starts with it\n", prefix,
                what);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

void inspect_print_json(const bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (json)
        printf("%s\n", json);
    bson_free(json);
}

void inspect_time(double t, char *out, size_t size) {
    time_t secs = (time_t)t;
    struct tm tm;
    localtime_r(&secs, &tm);
    strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm);
}

const char *inspect_str(const bson_t *doc, const char *key, const char *fallback) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return fallback;
}

double inspect_num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_double(&it);
    return 0;
}
