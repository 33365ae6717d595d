/* pipeline.h - a pipeline file (format version 1) loaded and checked.
 *
 * pipeline_load_file() reads the YAML, walks it against the format's schema,
 * substitutes ${params.x}, ${env.X} and ${secret.X}, resolves references
 * between steps and checks the graph, reporting every error it finds as a
 * located diagnostic. The whole pipeline lives in one arena: strings and
 * values it hands out are borrowed until pipeline_free(). */
#ifndef SLUICE_PIPELINE_PIPELINE_H
#define SLUICE_PIPELINE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "hmap.h"
#include "value.h"

#define PIPELINE_FORMAT_VERSION 1
#define PIPELINE_MAX_FILE_BYTES (16u << 20)
#define PIPELINE_MAX_ID 64
/* The most outputs a step may declare: a plugin's port arrays are refused
 * beyond it when loaded, a shell step's 'outputs' when validated, so no
 * record of a step's outputs is ever cut short. */
#define PIPELINE_MAX_PORTS 256

typedef struct srcpos {
    unsigned line, col;
} srcpos;

typedef struct param {
    const char *name;
    value *value; /* the default, or the -p override when one was given */
    int overridden;
    srcpos pos;
    /* Where value came from: "default", "params_file FILE:LINE",
     * "--params FILE:LINE" or "-p" (the last one that set it). */
    const char *origin;
} param;

/* An input port fed by another step's output (a data edge), or by an
 * artifact already in the store ("artifact:ID": an import, or an output of
 * an earlier run), which is no edge. */
typedef struct step_input {
    const char *port;
    const char *from_step, *from_output; /* NULL for an artifact */
    uint32_t from;        /* index of from_step in pipeline.steps once resolved; UINT32_MAX for an
                      artifact */
    srcpos pos;           /* of the reference "step.output" or "artifact:ID" */
    const char *artifact; /* the ID of "artifact:ID", else NULL */
    /* The artifact's hash and object path, set by the command that runs the
     * pipeline once it has found it in the store (NULL until then). */
    const char *artifact_hash, *artifact_path;
    /* Set when the reference names a fan-out step: the input was written
     * once and stands for that step's instances, one input each, in item
     * order (index 0..list_len-1), all with the same port. */
    size_t list_len, index;
    const char *key; /* PORT_INDEX for an item of a list, else NULL: see step_input_key */
} step_input;

/* The name an input is recorded and keyed under: its port, or PORT_i for
 * item i of a list input (as $SLUICE_INPUT_PORT_i names it). */
static inline const char *step_input_key(const step_input *in) {
    return in->key ? in->key : in->port;
}

/* The prefix of an input that names an artifact in the store. */
#define PIPELINE_ARTIFACT_PREFIX "artifact:"

/* An order-only edge: this step starts after that one succeeds. */
typedef struct step_after {
    const char *step;
    uint32_t from;
    srcpos pos;
} step_after;

typedef struct step_arg {
    const char *name;
    value *value;
    srcpos pos; /* of the key */
} step_arg;

typedef enum { ISOLATION_IN_PROCESS, ISOLATION_PROCESS } step_isolation;

/* sbatch's options for a step run by Slurm (docs/slurm.md): NULL or 0 for
 * unset. A step's own are merged over settings.slurm's, field by field;
 * its extra follow the pipeline's. */
typedef struct slurm_options {
    const char *partition, *account, *time, *mem, *gpus;
    int cpus_per_task;
    const char **extra; /* further sbatch arguments, as given */
    size_t n_extra;
} slurm_options;

#define UNSET (-1)

struct plugin_step;

typedef struct step {
    const char *id;
    srcpos pos; /* of the id */
    const char *uses;
    srcpos uses_pos;
    const char *description;
    step_arg *with;
    size_t n_with;
    step_input *inputs;
    size_t n_inputs;
    step_after *after;
    size_t n_after;
    int retries;        /* extra attempts; UNSET inherits settings.retries */
    int64_t backoff_ms; /* first retry delay, doubling; UNSET inherits */
    int64_t timeout_ms; /* 0 = none; UNSET inherits settings.timeout */
    int cache;          /* 0 or 1; UNSET inherits settings.cache */
    step_isolation isolation;
    const char **cache_on_env;
    size_t n_cache_on_env;
    const char **cache_on_files; /* relative to the pipeline file's folder */
    size_t n_cache_on_files;
    /* Filled by pipeline_bind(): the plugin step (NULL for shell, or when
     * no plugin declares it) and the arguments it runs with, in the order
     * of its parameter schema, defaults filled in and typed. */
    const struct plugin_step *impl;
    step_arg *args;
    size_t n_args;
    /* 'when': the condition as written (NULL for none), where its text
     * starts, whether it is 'always', and the checked expression (NULL
     * until pipeline_check_when has found it sound; see when.h). */
    const char *when;
    srcpos when_pos;
    int when_always;
    struct when_expr *when_expr;
    /* An instance of a fan-out step (foreach/matrix): the id as written,
     * its index among n_instances, and the item ${item} stands for. NULL
     * group for an ordinary step. */
    const char *group;
    size_t instance, n_instances;
    const value *item;
    /* 'foreach: STEP.OUTPUT': a fan-out whose items are the JSON Lines rows
     * of another step's output, known only once that step has finished.
     * Until then the step stands as one template (no group, shown as
     * ID[*]); pipeline_expand_rows() makes its instances (and sets the
     * template's n_instances, 0 until then). foreach_from is
     * the step's index once resolved (UINT32_MAX before, or after an
     * error); with_node the 'with' read again for each row. NULL
     * foreach_step for every other step, instances included. */
    const char *foreach_step, *foreach_output;
    srcpos foreach_pos;
    uint32_t foreach_from;
    const struct ynode *with_node;
    const char *runner;  /* "local" or "slurm"; NULL inherits settings.runner */
    slurm_options slurm; /* its own sbatch options, over settings.slurm */
} step;

/* The most instances one fan-out step may expand to. */
#define PIPELINE_MAX_INSTANCES 1000
/* The most steps a pipeline may have once every fan-out is expanded. */
#define PIPELINE_MAX_STEPS 10000

typedef struct pipeline_settings {
    int cache;          /* default 1 */
    int jobs;           /* 0 = as many as the machine has cores */
    int retries;        /* default 0 */
    int64_t backoff_ms; /* default 1s */
    int64_t timeout_ms; /* default 0: none */
    const char *runner; /* "local" (default) or "slurm" */
    slurm_options slurm;
    /* Where OpenLineage events go: an http(s) URL, or a file path made
     * absolute or relative to the working folder; NULL for none. */
    const char *openlineage;
    const char *openlineage_namespace; /* the jobs' namespace, default "sluice" */
    /* .env files (settings.env_file, then --env-file) and whether their
     * variables replace the real environment's (settings.env_override). */
    int env_override;
} pipeline_settings;

/* A variable read from a .env file: for ${env.X}, ${secret.X} and shell
 * steps' environment. */
typedef struct dotenv_var {
    const char *name, *value;
} dotenv_var;

typedef struct pipeline {
    arena arena;
    const char *file; /* as given, for diagnostics */
    const char *dir;  /* the file's folder: relative paths start here */
    int version;
    const char *name;
    const char *description;
    param *params;
    size_t n_params;
    pipeline_settings settings;
    const char **plugins; /* search folders, resolved against dir */
    size_t n_plugins;
    const char **secrets; /* the values ${secret.X} resolved to, to mask them in logs */
    size_t n_secrets;
    dotenv_var *dotenv; /* from the .env files, later files winning */
    size_t n_dotenv;
    step *steps; /* in file order; a fan-out step's instances in item order */
    size_t n_steps;
    /* Room in steps for the instances of 'foreach: STEP.OUTPUT' steps,
     * added at the end as a run expands them: PIPELINE_MAX_INSTANCES each.
     * steps never moves, so pointers into it stay valid. */
    size_t cap_steps;
    hmap step_ids; /* id -> index in steps; instances as ID[i] */
} pipeline;

/* How a load resolves what lies outside the file. */
typedef struct pipeline_options {
    /* "name=value" from -p, YAML flow values; "@FILE" a params file
     * (--params FILE), applied before every "name=value" whatever the order. */
    const char *const *overrides;
    size_t n_overrides;
    const char *const *env_files; /* --env-file, after settings.env_file */
    size_t n_env_files;
    int env_override; /* --env-override: .env files win over the environment */
    /* Look-ups for ${env.X} and ${secret.X}; NULL means getenv(). Returned
     * strings are borrowed for the call. */
    const char *(*lookup_env)(void *ud, const char *name);
    const char *(*lookup_secret)(void *ud, const char *name);
    void *lookup_ud;
    /* When set, a ${secret.X} with no value is an error; otherwise (as in
     * validate) it stands as "***" and the check goes on. */
    int require_secrets;
} pipeline_options;

/* Loads and checks path. Returns 0 when the pipeline is valid, -EINVAL when
 * diagnostics hold errors, another negative errno when the file cannot be
 * read (also reported in d). *out receives the pipeline whenever its YAML
 * could be read, errors or not, so callers can still show what was found;
 * free it with pipeline_free(). path is copied; opt may be NULL. */
int pipeline_load_file(const char *path, const pipeline_options *opt, diag_list *d, pipeline **out);

/* The same from memory; name labels diagnostics and dir resolves relative
 * paths (NULL: the current folder). */
int pipeline_load_buffer(const char *data, size_t len, const char *name, const char *dir,
                         const pipeline_options *opt, diag_list *d, pipeline **out);

void pipeline_free(pipeline *p);

/* The parameter called name, or NULL with *hint the closest declared name
 * (NULL when none is close). */
param *pipeline_find_param(const pipeline *p, const char *name, const char **hint);

/* Index of step id, or -1. */
long pipeline_find_step(const pipeline *p, const char *id);

/* Checks text as a place for OpenLineage events: "" (none: *out = NULL),
 * an http:// or https:// URL with a host, or a file that is a regular file
 * sluice may append to or that may be created in an existing folder. A
 * relative path is taken from dir (NULL: the working folder); *out is the
 * URL or the path (made in a). Returns 0, -ENOMEM, or -EINVAL with why
 * (size bytes) saying what is wrong. */
int pipeline_lineage_target(arena *a, const char *text, const char *dir, const char **out,
                            char *why, size_t size);

/* Whether s is the template of a 'foreach: STEP.OUTPUT' not expanded
 * (its instances are not; neither is any other step). */
static inline int step_is_template(const step *s) { return s->foreach_step && !s->group; }

/* Appends the compact name of the fan-out step s is an instance of,
 * "ID[0..N-1]", to b (commands show a fan-out step as one line); of a
 * template (step_is_template), "ID[*]": its count is known at run time. */
void step_group_label(const step *s, buf *b);

/* Expands the template steps[tpl] ('foreach: STEP.OUTPUT') into one
 * instance per row of rows (a list of values, in the pipeline's arena or
 * living as long), appended to steps as ID[0..n-1], each reading 'with'
 * with its row as ${item}; the inputs and 'after' of other steps that
 * name the template are rewritten to the list of instances, as for a
 * fan-out expanded when loading. The instances are bound as the template
 * was (pipeline_bind_step: its plugin is already known). Returns 0,
 * -ENOMEM, or -EINVAL with the errors (a ${item.FIELD} a row lacks, a
 * parameter a row makes the wrong kind, too many rows) in d; p is then
 * unchanged but for what its arena holds. Not thread-safe: p must not be read
 * meanwhile by any other thread through the inputs of its steps. */
int pipeline_expand_rows(pipeline *p, uint32_t tpl, const value *rows, diag_list *d);

/* Effective per-step settings, after inheritance from settings. */
int step_cache_enabled(const pipeline *p, const step *s);
int step_retries(const pipeline *p, const step *s);
int64_t step_backoff_ms(const pipeline *p, const step *s);
int64_t step_timeout_ms(const pipeline *p, const step *s);

#endif
