/* backend.h - what a warehouse backend implements (private to the
 * warehouse library). A collection is "users" or a category; a user's key is
 * its "_id", a document's its "link". */
#ifndef SLUICE_STEPS_WAREHOUSE_BACKEND_H
#define SLUICE_STEPS_WAREHOUSE_BACKEND_H

#include "warehouse.h"

typedef struct warehouse_ops {
    /* Queues an upsert of doc (copied) under key in collection. */
    int (*put)(warehouse *w, const char *collection, const char *key, const bson_t *doc);
    /* Writes what put queued; on failure nothing of the batch is promised. */
    int (*flush)(warehouse *w);
    /* 1 and *found initialised when collection holds a document whose
     * field equals value (a string), 0 when none does. */
    int (*find)(warehouse *w, const char *collection, const char *field, const char *value,
                bson_t *found);
    /* Each document of collection, in key order; category is passed to fn. */
    int (*each)(warehouse *w, const char *collection, const char *category, warehouse_fn fn,
                void *ud);
    void (*close)(warehouse *w);
} warehouse_ops;

struct warehouse {
    const warehouse_ops *ops;
    char err[512];
};

/* Each returns 0 and *out (a struct beginning with struct warehouse, freed
 * by its close), or a negative code with the message in err. The MongoDB
 * one lives in the module sluice_mongo (steps/module/module.h), which exports it
 * under its own name. */
typedef int (*warehouse_open_fn)(warehouse **out, const char *where, int read_only, char *err,
                                 size_t err_size);
int warehouse_lmdb_open(warehouse **out, const char *store_dir, int read_only, char *err,
                        size_t err_size);
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int warehouse_mongo_open(warehouse **out, const char *uri, int read_only, char *err,
                         size_t err_size);

/* Sets w->err from a format; returns code, so that callers can
 * `return warehouse_fail(w, -EIO, "...", ...)`. */
int warehouse_fail(warehouse *w, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
