/* dsgen_offline.h - samples made without a model: every answer (chosen) is
 * a run of whole sentences copied from its extract, every instruction is
 * the question that run answers in the text or names the run's topic by
 * its most distinctive phrase, and a preference sample's rejected answer
 * is a degraded copy (docs/dataset_gen.md, "Offline generation"). The
 * same extracts and seed give the same samples, in the same order. */
#ifndef SLUICE_STEPS_DSGEN_OFFLINE_H
#define SLUICE_STEPS_DSGEN_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "dsgen.h"

/* An extract as the step reads it from a chunk (all borrowed). */
typedef struct dsgen_extract {
    const char *text;
    size_t len;
    const char *id; /* the chunk id: with the seed, it seeds the extract's choices */
    const char *category;
} dsgen_extract;

/* How the kept samples were made. */
typedef struct dsgen_offline_stats {
    long from_question, from_topic;                             /* instructions */
    long rejected_other, rejected_truncated, rejected_shuffled; /* preference */
} dsgen_offline_stats;

/* Adds up to pairs samples per extract to set (its kind). 0 or -ENOMEM. */
int dsgen_offline(dsgen_set *set, const dsgen_extract *ex, size_t n, size_t pairs, uint64_t seed,
                  dsgen_offline_stats *stats);

#endif
