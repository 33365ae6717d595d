/* bind.h - a pipeline checked against the steps its plugins declare.
 *
 * After pipeline_load_*(), binding finds each step's plugin step, checks
 * its 'with' against the parameter schema (unknown names, missing required
 * ones, kinds, with lossless conversion of text such as an ${env.X}), its
 * inputs against the declared ports (unknown ports, unconnected required
 * ones) and the type of every data edge, and fills step.impl and step.args. */
#ifndef SLUICE_PIPELINE_BIND_H
#define SLUICE_PIPELINE_BIND_H

#include "pipeline.h"
#include "registry.h"

/* What an unknown 'uses' is: an error (run), or a warning that the step was
 * not checked (validate without --strict, where plugins may live elsewhere). */
typedef enum { BIND_STRICT, BIND_LENIENT } bind_mode;

/* Loads the pipeline's own 'plugins' folders into reg, then binds. Errors
 * and warnings go to d. Returns 0, or -ENOMEM. */
int pipeline_bind(pipeline *p, plugin_registry *reg, bind_mode mode, diag_list *d);

/* Binds one step whose plugin is already resolved (s->impl, or shell): its
 * arguments from 'with', as pipeline_bind does; for the instances a run
 * makes of 'foreach: STEP.OUTPUT' (pipeline_expand_rows). Returns 0 or
 * -ENOMEM; errors go to d. */
int pipeline_bind_step(pipeline *p, step *s, diag_list *d);

#endif
