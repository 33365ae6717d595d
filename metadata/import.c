/* import.c - the record of an artifact imported from outside the store
 * (record.h, record_import). */
#include <errno.h>
#include <stdio.h>
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

/* Appends the imports of old (if any) and then imp to the array *arr;
 * *again set when one of old's already is imp (same path and name). */
static void append_imports(bson_t *arr, const bson_t *old, const import_record *imp, int *again) {
    bson_iter_t it, sub;
    uint32_t n = 0;
    char idx[16];
    const char *k;
    *again = 0;
    if (old && bson_iter_init_find(&it, old, "imports") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub)) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
                continue;
            const uint8_t *data;
            uint32_t len;
            bson_t one;
            bson_iter_document(&sub, &len, &data);
            if (!bson_init_static(&one, data, len))
                continue;
            if (same(utf8_of(&one, "path"), imp->path) && same(utf8_of(&one, "name"), imp->name))
                *again = 1;
            bson_uint32_to_string(n++, &k, idx, sizeof(idx));
            BSON_APPEND_DOCUMENT(arr, k, &one);
        }
    bson_t entry;
    bson_uint32_to_string(n, &k, idx, sizeof(idx));
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
