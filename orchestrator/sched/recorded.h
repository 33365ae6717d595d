/* recorded.h - the pipeline a run record names: its file loaded again with
 * the run's -p values (and --params files, recorded as "@FILE"), for what
 * only the pipeline knows (the order of the steps, the DAG's edges). */
#ifndef SLUICE_RECORDED_H
#define SLUICE_RECORDED_H

#include <bson/bson.h>

#include "pipeline.h"

/* The pipeline of run (a run record: its "file", "overrides" and
 * "pipeline"); NULL when the file no longer loads, now holds another
 * pipeline, or memory ran out. The caller frees it with pipeline_free(). */
pipeline *recorded_pipeline(const bson_t *run);

#endif
