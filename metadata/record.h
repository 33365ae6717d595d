/* record.h - what a run writes to the metadata store, and the cache look-up.
 * Each function is one transaction. The records are plain structs the
 * orchestrator fills: metadata knows no pipeline or plugin types. */
#ifndef SLUICE_METADATA_RECORD_H
#define SLUICE_METADATA_RECORD_H

#include "hash.h"
#include "meta.h"

/* The longest step or port name and the most ports of a step a cache entry
 * holds (the pipeline's limits; the scheduler asserts they agree). */
#define RECORD_MAX_ID 64
#define RECORD_MAX_PORTS 256

typedef struct record_port {
    const char *name;
    const char *hash; /* NULL: an unconnected input */
    const char *type; /* outputs: the port's type */
    uint64_t size;
    int is_dir;
} record_port;

typedef struct step_record {
    const char *run_id;
    const char *step_id;
    const char *uses;         /* what the step runs (its 'uses'), or NULL */
    const char *version;      /* its plugin step's version, or NULL */
    const bson_t *params;     /* its arguments, secrets masked; NULL for none */
    const char *status;       /* done, cached, failed, skipped, cancelled */
    double started, finished; /* seconds since the epoch; 0 when it never started */
    int attempts;
    const char *error;
    const char *log;         /* the log file's path, or NULL */
    const char *cache_key;   /* NULL when not computed */
    const bson_t *key_parts; /* may be NULL */
    const char *cached_from; /* RUN_ID/STEP_ID of the reused step run, or NULL */
    const bson_t *metrics;   /* the metrics it reported (an array document), or NULL */
    const record_port *inputs;
    size_t n_inputs;
    const record_port *outputs;
    size_t n_outputs;
    int cacheable; /* on success, index it under cache_key */
    /* Done or cached: its outputs of type model are registered as versions
     * of this model (modelreg.h), in the same transaction. NULL: none. */
    const char *model_name;
    /* Run by Slurm: its last job's id and node (docs/slurm.md), or NULL. */
    const char *job_id, *node;
} step_record;

/* What identifies a run besides its pipeline: the command line's -p
 * overrides (to resume it) and the run it resumes, if any. */
typedef struct run_origin {
    const char *const *overrides;
    size_t n_overrides;
    const char *resumes;     /* RUN_ID or NULL */
    const char *const *tags; /* "key=value", from --tag */
    size_t n_tags;
    /* What started the run, "key=value" (schedule, fired_at, commit,
     * artifact...), from the scheduler (docs/schedules.md); none for a run
     * a person started. Recorded as the run's "cause" document. */
    const char *const *cause;
    size_t n_cause;
} run_origin;

/* The pipeline a run runs. */
typedef struct run_record {
    const char *name; /* or NULL */
    const char *file; /* as given; recorded absolute */
    const char *dir;  /* its folder, where the git commit is looked up */
    size_t n_steps;
    const bson_t *params; /* its parameters, secrets masked; NULL for none */
    /* Where each parameter's value came from, NAME: "default",
     * "--params FILE:LINE", ...; NULL for none (then not recorded). */
    const bson_t *param_origins;
} run_record;

int record_run(meta_db *m, const char *run_id, const run_record *p, const run_origin *origin,
               const char *status, double started, double finished);

int record_step(meta_db *m, const step_record *rec);

/* A run record names its owner: the process that writes it (pid, that
 * process's start time, host). A run left 'running' by an owner that is
 * gone crashed: these say so, for every reader of run records.
 *
 * record_owner_alive: 1 while run's owner runs, 0 when it is gone, -1 when
 * it cannot tell (no owner recorded, or another host's). */
int record_owner_alive(const bson_t *run);

/* The run's status as readers show it: its recorded status, or "crashed"
 * for a 'running' run whose owner is gone. Borrowed from run (or static). */
const char *record_effective_status(const bson_t *run);
/* Whether run carries tag spec, "KEY=VALUE" (a spec without '=' matches
 * none). */
int record_has_tag(const bson_t *run, const char *spec);

/* A copy of run with its effective status, for printing it whole (JSON).
 * Returns 0 (the caller destroys *view), or a negative code. */
int record_run_view(const bson_t *run, bson_t *view);

/* A cache entry: the step run whose outputs can be reused. */
typedef struct cache_hit {
    char from[520]; /* RUN_ID/STEP_ID */
    size_t n_outputs;
    struct {
        char name[RECORD_MAX_ID + 1];
        char hash[HASH_HEX_LEN + 1];
    } outputs[RECORD_MAX_PORTS];
} cache_hit;

/* 1 and *hit when key is in the cache, 0 when not, or a negative code. */
int record_cache_lookup(meta_db *m, const char *key, cache_hit *hit);

/* The step record RUN_ID/STEP_ID's outputs, for a resume: 1 and *hit when
 * it finished (done or cached), 0 when not, or a negative code. */
int record_finished_step(meta_db *m, const char *run_id, const char *step_id, cache_hit *hit);

/* The outputs of the latest step run of step_id, in a run of the pipeline
 * called pipeline_name, that
 * finished (done or cached): 1 and *hit, 0 when there is none, <0 error. */
int record_latest_finished(meta_db *m, const char *pipeline_name, const char *step_id,
                           cache_hit *hit);

/* An outside file or folder brought into the store by 'sluice artifacts
 * import'. Its artifact record has no producer (run, step, output) but a
 * list "imports" of {path, name, time}: the record roots the object for gc
 * as any artifact record does, and lineage shows where it came from. */
typedef struct import_record {
    const char *path; /* absolute */
    const char *type;
    const char *name; /* --name, or NULL */
    uint64_t size;
    int is_dir;
    double time; /* seconds since the epoch */
} import_record;

/* What record_import found before it wrote. */
enum {
    IMPORT_NEW = 0,   /* a new artifact */
    IMPORT_KNOWN = 1, /* the content was in the store already: this import is added to it */
    IMPORT_AGAIN = 2, /* already imported from this path under this name: nothing written */
};

/* Records the import of object hash in one transaction. Returns an
 * IMPORT_* value, -EMEDIUMTYPE when the artifact is already recorded with
 * another type (which goes into have_type, size bytes; nothing written),
 * or another negative code. */
int record_import(meta_db *m, const char *hash, const import_record *imp, char *have_type,
                  size_t size);

/* Calls fn(ud, import) for each import {path, name, time} of artifact record
 * rec, oldest first; stops at fn's nonzero, which it returns (else 0). */
int record_each_import(const bson_t *rec, int (*fn)(void *ud, const bson_t *one), void *ud);

/* What record_forget_imports did to one artifact's record. */
typedef struct forget_report {
    char hash[HASH_HEX_LEN + 1];
    size_t forgotten;  /* imports taken out of its record */
    int removed;       /* the record is gone: gc may remove the object */
    char kept_by[320]; /* else what still roots it, in words */
} forget_report;

/* Takes imports out of artifact records in one transaction ('artifacts
 * forget'): those of artifact hash (NULL: of any artifact) under name
 * (NULL: any) from path (NULL: any). A record left with no import, no
 * producer and no model version naming it is removed, so that gc may remove
 * its object. *out (the caller's, freed with free(); NULL when *n is 0)
 * says what became of each artifact changed. Returns 0 or a negative code
 * (nothing written). */
int record_forget_imports(meta_db *m, const char *hash, const char *name, const char *path,
                          forget_report **out, size_t *n);

/* The metrics of a step run's record as {KEY: value}, a series by its last
 * point (runs show, runs diff and the registry read them so). out is
 * initialized here; the caller destroys it. Returns 0 or -ENOMEM. */
int record_last_metrics(const bson_t *step, bson_t *out);

/* Drops a cache entry found unusable (an object missing or altered). */
int record_cache_forget(meta_db *m, const char *key);

#endif
