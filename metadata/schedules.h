/* schedules.h - the scheduler's records: one BSON document per schedule,
 * under its name, in the LMDB database "schedules" of STORE/meta (made by
 * the first 'sluice schedule add'; a store without it has no schedules).
 *
 * A record holds what 'schedule add' was given (file, params, the trigger,
 * catchup, paused) and the scheduler's state ("state": last fire time, the
 * last commit or artifact seen, counts of runs and skipped fires), which
 * the scheduler writes before it starts each run (docs/schedules.md).
 * Each function is one transaction. */
#ifndef SLUICE_METADATA_SCHEDULES_H
#define SLUICE_METADATA_SCHEDULES_H

#include "meta.h"

/* Stores doc under name. Returns 0, -EEXIST when only_new and name is
 * taken, or a negative code. */
int schedules_put(meta_db *m, const char *name, const bson_t *doc, int only_new);

/* A copy of the record name in *out (initialised here, the caller
 * destroys it). Returns 0, -ENOENT, or a negative code. */
int schedules_get(meta_db *m, const char *name, bson_t *out);

/* Replaces the record's top-level fields that changes has, keeping the
 * others, in one transaction. Returns 0, -ENOENT or a negative code. */
int schedules_update(meta_db *m, const char *name, const bson_t *changes);

/* Removes it: 0, -ENOENT or a negative code. */
int schedules_remove(meta_db *m, const char *name);

/* Calls fn for each record in name order; doc is valid for the call; fn
 * returns nonzero to stop. Returns 0 or a negative code. */
int schedules_each(meta_db *m, meta_each_fn fn, void *ud);

/* The deliveries of hooks a record remembers (its "deliveries" array, the
 * newest last): a delivery older than this many may fire again. */
#define SCHEDULES_DELIVERIES_KEPT 256

/* Notes delivery (a webhook's id, as GitHub's X-GitHub-Delivery) in the
 * record name, in one transaction, so that two fires of one delivery at
 * once cannot both see it new. Returns 0 (noted: fire), -EALREADY (seen
 * before: do not fire), -ENOENT, or a negative code. */
int schedules_claim_delivery(meta_db *m, const char *name, const char *delivery);

#endif
