/* inspect.h - what the inspection commands (runs, artifacts, lineage)
 * share: opening the store read-only and resolving id prefixes. */
#ifndef SLUICE_CLI_INSPECT_H
#define SLUICE_CLI_INSPECT_H

#include "store.h"
#include "meta.h"

/* What inspect_open() returns, with missing_ok, for a store with no
 * metadata yet (nothing printed): a list command shows an empty list. */
#define INSPECT_NO_STORE 1

/* Opens the store's metadata read-only; prints why not and returns
 * EXIT_BAD_INPUT when there is none (INSPECT_NO_STORE with missing_ok). */
int inspect_open(const char *store, meta_db *m, int missing_ok);

/* inspect_open() and a read-only transaction; on failure nothing is left
 * open and EXIT_BAD_INPUT is returned. End with inspect_end(). */
int inspect_begin(const char *store, meta_db *m, MDB_txn **txn);
void inspect_end(meta_db *m, MDB_txn *txn);
/* The same; with missing_ok, a store with no metadata returns
 * INSPECT_NO_STORE, nothing open and nothing printed. */
int inspect_begin_ex(const char *store, int missing_ok, meta_db *m, MDB_txn **txn);

/* Appends {id_field: key, ...doc} as the next item of a JSON array. */
void inspect_append_item(bson_t *array, const char *id_field, const char *key, size_t key_len,
                         const bson_t *doc);

/* Resolves a unique prefix of a key of dbi into out (size bytes). Returns 0,
 * or prints "no ... matches" / "... is ambiguous" and returns EXIT_BAD_INPUT.
 * For what == "run", the word "latest" names the newest run (run ids sort
 * in start order), so every command that takes a run id takes it. */
int inspect_resolve(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *prefix, char *out,
                    size_t size);

/* Resolves what every command that takes an artifact id accepts, into the
 * artifact's hash (out, size bytes): a hash or a unique prefix of one;
 * RUN:STEP.OUTPUT, the output of a step in a run (RUN as inspect_resolve()
 * takes it: a prefix, or "latest"); STEP.OUTPUT, that output in the newest
 * run that has it (a cached step's run included); NAME@VERSION or
 * NAME@ALIAS, the model artifact of that version of the registry's model.
 * Returns 0, or prints why not and returns EXIT_BAD_INPUT. */
int inspect_resolve_artifact(MDB_txn *txn, const meta_db *m, const char *spec, char *out,
                             size_t size);

/* Where the artifact of record rec came from, for people, into out:
 * "made by RUN/STEP.OUTPUT", or "imported from PATH on TIME" (its newest
 * import) for one 'artifacts import' brought in. Returns out. */
const char *inspect_origin(const bson_t *rec, char *out, size_t size);

/* Calls fn(ud, path, name, time) for each import of rec, oldest first
 * (name NULL when it has none). */
void inspect_each_import(const bson_t *rec,
                         void (*fn)(void *ud, const char *path, const char *name, double time),
                         void *ud);

/* Prints doc as one JSON line. */
void inspect_print_json(const bson_t *doc);

/* A time since the epoch as local "YYYY-MM-DD HH:MM:SS". */
void inspect_time(double t, char *out, size_t size);

/* A string field of doc, or fallback. */
const char *inspect_str(const bson_t *doc, const char *key, const char *fallback);
double inspect_num(const bson_t *doc, const char *key);

#endif
