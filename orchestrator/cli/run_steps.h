/* run_steps.h - a run's step runs in the order people read them (the
 * pipeline's DAG, then start time), for 'runs show', 'report' and the
 * JUnit file of 'run --junit'. */
#ifndef SLUICE_CLI_RUN_STEPS_H
#define SLUICE_CLI_RUN_STEPS_H

#include <stddef.h>

#include "meta.h"
#include "pipeline.h"

/* A step run of the run, and where it sorts. */
typedef struct step_row {
    char *key; /* RUN/STEP, owned */
    long dag_pos;
    double started;
} step_row;

typedef struct step_rows {
    step_row *rows; /* owned; free with run_steps_free() */
    size_t n;
    int failed;
    const pipeline *p;   /* while collecting: the run's pipeline as it reads now, or NULL */
    const uint32_t *pos; /* while collecting: step index -> place in the DAG's order */
} step_rows;

/* The step runs of run id (its record run), sorted: DAG order first (from
 * the run's pipeline file with the run's -p values, when it still reads as
 * the same pipeline), then start time, then the id. s must be zeroed.
 * Returns 0 or -1 (cannot read, out of memory); run_steps_free() either way. */
int run_steps_collect(MDB_txn *txn, const meta_db *m, const char *id, const bson_t *run,
                      step_rows *s);
void run_steps_free(step_rows *s);

/* The step id of a RUN/STEP key (borrowed from key). */
const char *run_steps_id(const char *key);

#endif
