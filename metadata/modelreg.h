/* modelreg.h - the model registry: named models, their numbered versions,
 * aliases (staging, production, any name) and the audit trail of every
 * alias change, in the metadata store's sub-database "models":
 *
 *   NAME/v/0000000001      a version: artifact, run, step, output, params,
 *                          inputs [{port, artifact, type}], git, created
 *   NAME/alias/ALIAS       {version, time, who, reason}: where ALIAS points
 *   NAME/audit/0000000001  {alias, version, previous, time, who, reason}:
 *                          one alias change, numbered in order
 *   NAME/deploy/LISTEN     {version, alias, url, listen, pid, log, action,
 *                          time, who, run, step}: the server a deploy step
 *                          started (or reloaded) on LISTEN, as it left it
 *
 * A version is registered in the transaction that records the step run
 * that made (or reused) its artifact (record_step, step_record.model_name),
 * and a promotion writes its alias and its audit entry in one transaction:
 * a sluice killed at any point leaves the registry before or after, never
 * between. Same name and same artifact are the same version. A version's
 * metrics are not stored: they are read from the step runs that consumed
 * its artifact (lineage), so that an evaluation made later shows. */
#ifndef SLUICE_METADATA_MODELREG_H
#define SLUICE_METADATA_MODELREG_H

#include "record.h"

#define MODELREG_MAX_NAME 64

/* 1 when s is a valid model name ([a-z0-9_-], 1 to 64), else 0. An alias
 * is one too, beginning with a letter (so that NAME@3 is a version). */
int modelreg_name_ok(const char *s);

/* 1 when s is a valid alias: a model name beginning with a letter. */
int modelreg_alias_ok(const char *s);

/* Registers artifact (an output of rec of type model) as a version of
 * model name inside txn, unless name already has a version of artifact.
 * *version gets the version's number. Called by record_step. */
int modelreg_register(meta_db *m, MDB_txn *txn, const char *name, const char *artifact,
                      const char *output, const step_record *rec, int *version);

/* Reads version (0: the newest) of name into *doc (valid until txn ends).
 * Returns 0, MDB_NOTFOUND, or a negative code. */
int modelreg_get_version(const meta_db *m, MDB_txn *txn, const char *name, int version,
                         bson_t *doc);

/* The number of name's version of artifact, 0 when it has none, or a
 * negative code. */
int modelreg_version_of(const meta_db *m, MDB_txn *txn, const char *name, const char *artifact);

/* The number of the version an alias points to, 0 when it points nowhere,
 * or a negative code. */
int modelreg_alias_version(const meta_db *m, MDB_txn *txn, const char *name, const char *alias);

/* Resolves SPEC = NAME, NAME@VERSION or NAME@ALIAS into name (size
 * MODELREG_MAX_NAME + 1) and *version. Returns 0, or -ENOENT / -EINVAL
 * with why. */
int modelreg_resolve(const meta_db *m, MDB_txn *txn, const char *spec, char *name, int *version,
                     char *why, size_t why_size);

/* The version's metrics, into out (initialized here; the caller destroys
 * it): {KEY: value} from every finished step run that read the artifact
 * and made no model itself (an evaluation, not a further training), the
 * last point of a series, a newer run's value over an older one's. from,
 * when not NULL, gets an array of those step runs (RUN/STEP). */
int modelreg_metrics(meta_db *m, MDB_txn *txn, const char *artifact, bson_t *out, bson_t *from);

/* Calls fn for every record of the registry whose key starts with
 * prefix (a name and "/", or "" for all), in key order. */
int modelreg_each(const meta_db *m, MDB_txn *txn, const char *prefix, meta_each_fn fn, void *ud);

/* Whether lower values of a metric are better: names holding loss,
 * perplexity, ppl, error, latency, mse or mae. */
int modelreg_lower_is_better(const char *metric);

/* Who is promoting, for the audit trail: $USER, else the user the
 * password database names for this process, else the uid. */
void modelreg_user_name(char *out, size_t size);

/* A promotion: point alias at a version, if its gates hold. */
typedef struct modelreg_promotion {
    const char *name;
    int version;          /* 0: the version of artifact */
    const char *artifact; /* with version 0 */
    const char *alias;
    const char *const *ifs; /* "METRIC<=VALUE" (<, <=, >, >=, ==, !=), all must hold */
    size_t n_ifs;
    const char *better_than; /* "ALIAS:METRIC[:lower|:higher]", or NULL */
    const char *reason;      /* may be NULL */
    const char *who;
    double time;
    const bson_t *metrics; /* figures of the candidate that win over its lineage's; may be NULL */
} modelreg_promotion;

enum {
    MODELREG_PROMOTED = 0,
    MODELREG_REFUSED = 1,   /* a gate failed: why names the figure; nothing written */
    MODELREG_UNCHANGED = 2, /* the alias points there already: nothing written */
};

/* Checks the gates and moves the alias, in one write transaction.
 * Returns a MODELREG_* value with *version (the version promoted or
 * refused) and *previous (where the alias pointed, 0: nowhere), or a
 * negative code (-ENOENT: no such model or version, -EINVAL: a gate that
 * does not parse) with why. */
int modelreg_promote(meta_db *m, const modelreg_promotion *p, int *version, int *previous,
                     char *why, size_t why_size);

/* Records in its own write transaction that name's model is served on
 * listen as doc says (the fields above), over what was recorded there. */
int modelreg_record_deployment(meta_db *m, const char *name, const char *listen, const bson_t *doc);

#endif
