/* when.h - a step's condition: `when: "EXPR"`.
 *
 * EXPR compares values with == != < > <= >=, tests membership with `in`
 * (an item of a list), and combines booleans with && || ! and parentheses.
 * Its values are literals ('text' or "text", numbers, true, false, null,
 * [lists]) and references: ${params.NAME[.KEY...]}, ${env.NAME} (text; an
 * unset variable reads as null) and ${steps.ID.metrics.NAME} (a number that
 * step reported, its last value), known only once that step has finished.
 * `when: always` is no expression: the step runs even when a step upstream
 * of it was skipped by its own condition. */
#ifndef SLUICE_PIPELINE_WHEN_H
#define SLUICE_PIPELINE_WHEN_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "pipeline.h"

typedef struct when_expr when_expr;

/* Parses text into *out (in a). Returns 0; -EINVAL with *err_off the
 * offset in text of the mistake and err saying what it is; or -ENOMEM.
 * References are only parsed: when_check resolves them. */
int when_parse(arena *a, const char *text, when_expr **out, size_t *err_off, char *err,
               size_t err_size);

/* Resolves the references of every step's condition (parameters and the
 * environment now, step metrics to their steps), and checks the names,
 * the types of each operator's operands and that a step whose metrics a
 * condition reads runs before it: upstream through inputs or 'after',
 * never itself or downstream (a cycle through 'when'). Errors go to d,
 * located in the condition. Returns 0 or -ENOMEM. */
int pipeline_check_when(pipeline *p, diag_list *d);

/* The last value step `step` reported for metric name: 1 with *value, or 0
 * when it reported none. */
typedef int (*when_metric_fn)(void *ud, uint32_t index, const char *name, double *out);

/* Evaluates s's condition (checked by pipeline_check_when). Returns 1 when
 * true, 0 when false, -1 when it cannot be decided (a metric the step did
 * not report), with why (size bytes) saying so. */
int when_eval(const pipeline *p, const step *s, when_metric_fn metric, void *ud, char *why,
              size_t size);

#endif
