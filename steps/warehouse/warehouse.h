/* warehouse.h - the document warehouse of the LLM twin: users and the
 * documents crawled for them, one collection per category (articles, posts,
 * repositories), upserted by link as the Handbook's MongoDB warehouse does.
 * Documents are kept as the Handbook stores them: {_id, content, platform,
 * author_id, author_full_name, link}; users as {_id, first_name, last_name}.
 *
 * Two backends behind this one interface: LMDB under STORE/warehouse (the
 * default, no server) and MongoDB through mongo-c-driver (a mongodb:// URI;
 * collections "users", "articles", "posts", "repositories" in the URI's
 * database, "twin" when it names none). */
#ifndef SLUICE_STEPS_WAREHOUSE_H
#define SLUICE_STEPS_WAREHOUSE_H

#include <bson/bson.h>
#include <stddef.h>

typedef struct warehouse warehouse;

#define WAREHOUSE_CATEGORIES                                                                       \
    { "articles", "posts", "repositories" }
#define WAREHOUSE_N_CATEGORIES 3

/* Opens the warehouse named by where: NULL or "" for STORE/warehouse in the
 * sluice store (created unless read_only), a mongodb:// or mongodb+srv://
 * URI for MongoDB. On success *out is the caller's, to free with
 * warehouse_close(); on failure returns a negative code with a message in
 * err and *out is NULL. */
int warehouse_open(warehouse **out, const char *store_dir, const char *where, int read_only,
                   char *err, size_t err_size);
/* Discards writes not yet flushed. NULL is allowed. */
void warehouse_close(warehouse *w);
/* The message of the last failed call, valid until the next call. */
const char *warehouse_error(const warehouse *w);

/* Upserts, batched until warehouse_flush(): a user keyed by its "_id", a
 * document keyed by category and its "link" (a document without one is
 * refused). The backend copies doc. LMDB flushes a batch in one transaction
 * (all or nothing); MongoDB as one ordered bulk write per collection. */
int warehouse_put_user(warehouse *w, const bson_t *user);
int warehouse_put_document(warehouse *w, const char *category, const bson_t *doc);
int warehouse_flush(warehouse *w);

/* 1 when a document with this link is stored in category (NULL: in any),
 * 0 when none is, negative on error. Sees flushed writes only. */
int warehouse_has_link(warehouse *w, const char *category, const char *link);

/* The user with this first and last name: 1 and *user initialised (the
 * caller destroys it), 0 when there is none, negative on error. */
int warehouse_find_user(warehouse *w, const char *first_name, const char *last_name, bson_t *user);

/* Calls fn for each document of category (NULL: all), in link order within
 * a category; fn returns nonzero to stop. doc is valid for the call. */
typedef int (*warehouse_fn)(void *ud, const char *category, const bson_t *doc);
int warehouse_each(warehouse *w, const char *category, warehouse_fn fn, void *ud);
int warehouse_each_user(warehouse *w, warehouse_fn fn, void *ud);

/* Imports a Handbook warehouse export folder (UserDocument.json,
 * ArticleDocument.json, PostDocument.json, RepositoryDocument.json: JSON
 * arrays; a missing file is an empty collection). Returns 0 and the counts,
 * or a negative code (see warehouse_error). */
int warehouse_import(warehouse *w, const char *dir, size_t *users, size_t *documents);
/* Writes the same files from the warehouse into dir (created). */
int warehouse_export(warehouse *w, const char *dir, size_t *users, size_t *documents);

#endif
