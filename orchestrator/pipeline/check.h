/* check.h - the checks that look across steps: references between steps,
 * the built-in steps' arguments, and the shape of the graph. */
#ifndef SLUICE_PIPELINE_CHECK_H
#define SLUICE_PIPELINE_CHECK_H

#include "dag.h"
#include "pipeline.h"

/* Resolves every input and 'after' reference (filling their step indices),
 * checks the arguments of built-in steps, and reports each cycle by its
 * path. Errors go to d; returns 0 or -ENOMEM. */
int pipeline_check(pipeline *p, diag_list *d);

/* The dependency graph of p: an edge from each step to those that take its
 * outputs or run after it. Unresolved references are left out. Returns 0 or
 * -ENOMEM; free g with dag_free(). */
int pipeline_dag(const pipeline *p, dag *g);

/* The outputs a step declares when sluice knows them without loading a
 * plugin (the shell step's with.outputs); NULL when unknown. */
const value *step_known_outputs(const step *s);

#define STEP_SHELL "shell"

#endif
