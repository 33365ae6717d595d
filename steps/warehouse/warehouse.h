/* warehouse.h - the document warehouse of the LLM twin, in LMDB under
 * STORE/warehouse: users and the documents crawled for them, one
 * collection per category (articles, posts, repositories), upserted by
 * link as the Handbook's MongoDB warehouse does. Documents are kept as the
 * Handbook stores them: {_id, content, platform, author_id,
 * author_full_name, link}. */
#ifndef SLUICE_STEPS_WAREHOUSE_H
#define SLUICE_STEPS_WAREHOUSE_H

#include <bson/bson.h>
#include <lmdb.h>

typedef struct warehouse {
    MDB_env *env;
    MDB_dbi users, documents;
} warehouse;

#define WAREHOUSE_CATEGORIES {"articles", "posts", "repositories"}

/* Opens (creating, unless read_only) STORE/warehouse. Returns 0 or a
 * negative code, with a message in err. */
int warehouse_open(warehouse *w, const char *store_dir, int read_only, char *err, size_t err_size);
void warehouse_close(warehouse *w);

/* Inserts or replaces: a user by its id, a document by category and link.
 * All of one batch in one transaction: begin, then puts, then commit. */
int warehouse_begin(warehouse *w, MDB_txn **txn);
int warehouse_put_user(warehouse *w, MDB_txn *txn, const char *id, const bson_t *user);
int warehouse_put_document(warehouse *w, MDB_txn *txn, const char *category, const char *link,
                           const bson_t *doc);
int warehouse_commit(MDB_txn *txn);

/* Calls fn for each document of category (NULL: all), in link order; fn
 * returns nonzero to stop. doc is valid for the call. */
typedef int (*warehouse_fn)(void *ud, const char *category, const bson_t *doc);
int warehouse_each(warehouse *w, const char *category, warehouse_fn fn, void *ud);
int warehouse_each_user(warehouse *w, warehouse_fn fn, void *ud);

/* Imports a Handbook warehouse export folder (UserDocument.json,
 * ArticleDocument.json, PostDocument.json, RepositoryDocument.json: JSON
 * arrays); returns 0 and the counts, or a negative code with err. */
int warehouse_import(warehouse *w, const char *dir, size_t *users, size_t *documents, char *err,
                     size_t err_size);
/* Writes the same files from the warehouse. */
int warehouse_export(warehouse *w, const char *dir, size_t *users, size_t *documents, char *err,
                     size_t err_size);

#endif
