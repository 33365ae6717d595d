/* plan.h - what a run would do, step by step, and why: the answer to "will
 * this come from the cache, and if not, what changed?" (sluice status,
 * sluice run --dry-run). Nothing is run or written. */
#ifndef SLUICE_SCHED_PLAN_H
#define SLUICE_SCHED_PLAN_H

#include <bson/bson.h>

#include "hash.h"
#include "pipeline.h"

typedef struct plan_step {
    int runs;       /* 1: would run; 0: would come from the cache */
    char why[512];  /* for a run: what changed, or why it is not cached */
    char from[520]; /* for a cache hit: the step run reused */
    char key[HASH_HEX_LEN + 1];
} plan_step;

/* Plans every step of p (bound) against the store at store_root, into
 * steps[p->n_steps]. no_cache as for run. Returns 0, or a negative errno
 * with why the store could not be read in err (the caller prints it). */
int plan_pipeline(const pipeline *p, const char *store_root, int no_cache, plan_step *steps,
                  char *err, size_t err_size);

/* What differs between two cache key_parts documents (a step record's
 * "key_parts": before, an earlier run's; now, the later one's), as text
 * for people ("parameter 'seed' changed; input 'data' is new"), into why;
 * "its cached outputs are gone from the store" when nothing does. */
void plan_explain(const bson_t *before, const bson_t *now, char *why, size_t size);

#endif
