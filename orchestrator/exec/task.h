/* task.h - one attempt of one step, as the code that runs it sees it:
 * resolved parameters, input and output paths, a work folder. The same
 * description drives an in-process run, a child 'sluice exec', and (later)
 * a Slurm job; it crosses process boundaries as a JSON manifest. */
#ifndef SLUICE_EXEC_TASK_H
#define SLUICE_EXEC_TASK_H

#include <bson/bson.h>
#include <sluice/plugin.h>
#include <stddef.h>

#include "arena.h"
#include "value.h"

typedef struct task_param {
    const char *name;
    int kind;     /* sl_param_kind; 0 for the shell step's free-form arguments */
    value *value; /* resolved: the pipeline's, or the declared default */
} task_param;

typedef struct task_port {
    const char *name;
    const char *path; /* NULL: an optional input left unconnected */
} task_port;

typedef struct task {
    const char *step_id;
    const char *step_name;   /* the plugin step's name */
    const char *plugin_path; /* the .so that declares it */
    const sl_step *step;     /* resolved in this process; NULL until loaded */
    task_param *params;
    size_t n_params;
    task_port *inputs;
    size_t n_inputs;
    task_port *outputs;
    size_t n_outputs;
    const char *work_dir;
    const char *store_dir; /* the run's store, absolute */
    int attempt;
} task;

/* The manifest: task as a BSON document (secrets included: it travels over
 * a pipe, never to disk). Returns 0 or -ENOMEM. */
int task_to_bson(const task *t, bson_t *doc);

/* Reads a manifest into t, allocating in a. Returns 0, or -EINVAL with a
 * message in err. */
int task_from_bson(arena *a, const bson_t *doc, task *t, char *err, size_t err_size);

const task_param *task_find_param(const task *t, const char *name);
const task_port *task_find_port(const task_port *ports, size_t n, const char *name);

#endif
