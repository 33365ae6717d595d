/* ui_run.h - a run's pipeline as the dashboard reads it again from the
 * run's file and -p values (ui_graph.c): its step ids and its graph. */
#ifndef SLUICE_UI_RUN_H
#define SLUICE_UI_RUN_H

#include <bson/bson.h>
#include <stddef.h>

#include "ui_api.h"

typedef struct ui_run_steps {
    char **ids; /* owned, in the pipeline's order */
    size_t n;
} ui_run_steps;

/* The step ids of run's pipeline as its file reads now (none when it no
 * longer loads or names another pipeline). */
void ui_run_pipeline_steps(const bson_t *run, ui_run_steps *out);
void ui_run_steps_free(ui_run_steps *s);

/* Frees Graphviz's context, if made. */
void ui_graph_close(ui_ctx *c);

#endif
