/* run.h - running a bound pipeline on a libuv loop.
 *
 * Steps whose inputs are ready start at once, up to 'jobs' at a time:
 * plugin steps in-process on libuv's thread pool, or (isolation: process)
 * in a child 'sluice exec' that reports back over a pipe; shell steps as a
 * child /bin/sh. A failure skips exactly the steps downstream of it while
 * independent branches finish; failed attempts are retried after an
 * exponential backoff; a step past its timeout is stopped (a child killed,
 * an in-process step asked through sl_cancelled()); SIGINT or SIGTERM
 * cancels the run cleanly (SIGHUP too). */
#ifndef SLUICE_SCHED_RUN_H
#define SLUICE_SCHED_RUN_H

#include <sluice/plugin.h>

#include "pipeline.h"
#include "record.h"

typedef struct run_options {
    const char *store;            /* the store folder; runs go under store/runs/ */
    const char *exe;              /* the sluice binary, for 'sluice exec' children */
    int jobs;                     /* 0: settings.jobs, else the machine's cores */
    int json;                     /* JSON event lines on stdout */
    int no_cache;                 /* run every step, even where the cache has it */
    const char *const *overrides; /* the -p values, recorded so a resume can repeat them */
    size_t n_overrides;
    const char *const *tags; /* --tag KEY=VALUE, recorded with the run */
    size_t n_tags;
    const char *const *cause; /* --cause KEY=VALUE: what started it (the scheduler) */
    size_t n_cause;
    const char *resume; /* RUN_ID: reuse every step that finished in that run */
    /* Run part of the pipeline: only this step (--only), or this step and
     * everything downstream of it (--from); the steps they need take the
     * latest outputs recorded for them, the others are skipped. */
    const char *only, *from;
    /* Set on return when an in-process step that ignored cancellation is
     * still running on a thread: the caller must then neither free the
     * pipeline nor unload plugins, and ends the process with
     * run_exit_abandoned(). */
    int abandoned;
    /* Set once the run has an id (its folder made): "" when it never
     * started. For what the caller reports on the run afterwards. */
    char run_id[48];
} run_options;

/* Ends the process at once with status, stdout and stderr flushed: after a
 * run that set o->abandoned (its records are already closed). exit() would
 * wait forever for the thread pool the abandoned step still holds. */
_Noreturn void run_exit_abandoned(int status);

/* Runs p (bound with pipeline_bind()). Returns the exit status of the CLI
 * contract: 0 all done, 1 a step failed, 128 + the signal when interrupted
 * (130 SIGINT, 143 SIGTERM, 129 SIGHUP); 2 when the run
 * could not start (reported on stderr, like an unknown --only step). */
int run_pipeline(pipeline *p, run_options *o);

/* Makes the instances of p's 'foreach: STEP.OUTPUT' steps as run run_id
 * made them: from the rows of STEP's output recorded in that run (m open,
 * the objects under store_root), as the run itself read them. A step
 * whose STEP did not finish in that run stays one template (ID[*]).
 * Returns 0, or a negative code with why (size bytes) saying what failed
 * (a row, the store). For 'graph --run'. */
int sched_expand_recorded(pipeline *p, const char *store_root, meta_db *m, const char *run_id,
                          char *why, size_t size);

/* Fills in the part of rec that is step s's (the metadata store takes no
 * pipeline types): its id, what it runs, and its arguments, secrets masked,
 * written into params, which this initialises and the caller destroys.
 * rec borrows s and params. */
void run_step_record(const step *s, step_record *rec, bson_t *params);

/* The steps sluice provides itself, as a plugin descriptor for a registry
 * (registry_add): 'promote' (promote.c) and 'deploy' (deploy.c), whose
 * ports and parameters pipelines are checked against like any plugin
 * step's (builtin.c). Static. */
#define SCHED_PROMOTE_STEP "promote"
#define SCHED_DEPLOY_STEP "deploy"
const sl_plugin *sched_builtin_plugin(void);

#endif
