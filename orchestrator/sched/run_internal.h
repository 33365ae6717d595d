/* run_internal.h - the scheduler's own state, shared by its files:
 *   run.c     the run: scheduling, finishing steps, interruption, set-up
 *   events.c  step logs (secrets masked) and events from worker threads
 *   launch.c  starting an attempt: in-process, 'sluice exec' or shell
 *   reuse.c   what a step need not run for: cache, resume, --only/--from,
 *             and the step records
 * Nothing here is API: run.h is. Everything is used on the loop thread
 * unless its comment says otherwise. */
#ifndef SLUICE_SCHED_RUN_INTERNAL_H
#define SLUICE_SCHED_RUN_INTERNAL_H

#include "run.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "modelreg.h"
#include "store.h"
#include "cache.h"
#include "child.h"
#include "record.h"
#include "buf.h"
#include "fsutil.h"
#include "mask.h"
#include "ready.h"
#include "host.h"
#include "task.h"
#include "check.h"
#include "duration.h"
#include "registry.h"
#include "report.h"
#include "oltransport.h"

#define KILL_GRACE_MS 500    /* SIGTERM to SIGKILL for a child */
#define INPROC_GRACE_MS 1000 /* for an in-process step to notice sl_cancelled() */
#define LOG_TAIL 10
#define MAX_BACKOFF_MS (3600 * 1000)

typedef struct run run;
typedef struct step_run step_run;

/* ATT_SLURM: a shell step, or a plugin step's 'sluice exec', as a Slurm job (slurm.c). */
typedef enum { ATT_IN_PROCESS, ATT_PROCESS, ATT_SHELL, ATT_SLURM } attempt_kind;

/* One attempt of one step; lives until its work or its child is over. */
typedef struct attempt {
    run *r;
    step_run *sr;
    int number;
    attempt_kind kind;
    arena a; /* the task's strings */
    task t;
    char *dir;
    /* in-process */
    uv_work_t work;
    host_ctx hc;
    int hc_ready;
    int rc;
    char *why;
    int abandoned;
    uv_fs_t mkdir_req;
    /* child */
    child ch;
    char *manifest;
    int reported_done, reported_rc;
    char *reported_error;
    /* Slurm (slurm.c): the job, once sbatch said its id */
    char job_id[32];
    int requeues, scancelled, unseen;
    int array_scancelled;     /* scancel sent to its whole job array */
    struct attempt *job_next; /* in the runner's list of jobs */
} attempt;

typedef enum { SR_WAITING, SR_RUNNING, SR_RETRY_WAIT, SR_FINISHED } sr_state;

struct step_run {
    run *r;
    uint32_t index;
    const step *s;
    sr_state state;
    int attempts_max, attempt_no;
    attempt *cur;
    double t_first;
    uv_timer_t timeout, retry, grace;
    int timed_out;
    FILE *log;
    int log_failed;
    FILE *log_tail; /* past the head of a log over its limit (events.c) */
    uint64_t log_bytes, tail_bytes, cut_bytes;
    char *dir;
    const char **out_names;
    char **out_paths; /* objects in the store, once the step succeeded */
    char (*out_hashes)[HASH_HEX_LEN + 1];
    size_t n_out;
    char key[HASH_HEX_LEN + 1]; /* the cache key; "" when it could not be made */
    int keyed;                  /* the key is made (or could not be): reuse.c's keying */
    bson_t key_parts;
    int has_parts;
    char cached_from[520];
    double wall_started;
    bson_t metrics; /* {"0": {key, value, index, attempt}, ...} as sl_metric() reports */
    int has_metrics;
    uint32_t n_metrics;
    char *tail[LOG_TAIL];
    unsigned tail_next;
    int ol_started;                 /* its OpenLineage START is sent (olevent.c) */
    char job_id[32], job_node[128]; /* its last Slurm job, for its record */
    /* Skipped by a condition (its own 'when', or one upstream of it): the
     * steps after it still start, and decide for themselves. */
    int cond_skipped;
};

/* An event from a step running on a worker thread. */
typedef enum { EV_LOG, EV_PROGRESS, EV_METRIC } event_kind;
typedef struct event {
    struct event *next;
    attempt *at;
    event_kind kind;
    int level;
    uint64_t a, b;
    double value;
    int64_t index;
    char text[];
} event;

typedef struct program {
    char *name, *path;
} program_path_entry;

struct run {
    uv_loop_t loop;
    pipeline *p;
    const run_options *o;
    dag g;
    dag_ready ready;
    step_run *steps;
    int jobs, running, retry_waiting;
    uint32_t *retry_queue;
    size_t rq_head, rq_tail;
    int cancelling, interrupts, signo; /* signo: the first stop signal */
    uv_signal_t stop_signals[3];       /* SIGINT, SIGTERM, SIGHUP */
    child_reaper reaper;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_mutex_t mu;
    event *ev_head, *ev_tail;
    reporter rep;
    char run_id[48];
    char *run_dir;
    char pipeline_dir[4096]; /* absolute: shell steps run in their own folders */
    size_t n_done, n_failed, n_skipped, n_cancelled;
    int finished;
    size_t abandoned;
    double t0;
    enum { ISOLATE_AS_SAID, ISOLATE_ALL, ISOLATE_OUTSIDE } isolation; /* SLUICE_ISOLATION */
    char *own_plugins[2];         /* sluice's own plugin folders, absolute, or NULL */
    char *supervisor[4];          /* child_options.supervisor; [0] NULL: none */
    program_path_entry *programs; /* PATH look-ups of shell steps' programs */
    size_t n_programs;
    artifact_store store;
    meta_db meta;
    int meta_open;
    uv_timer_t sync_timer; /* flushes metadata commits to disk now and then */
    size_t n_cached;
    double wall_t0;
    run_origin origin;
    /* --only/--from: which steps run (1), which only supply their latest
     * outputs (2: upstream of a selected step), which are left out (0). */
    unsigned char *selection;
    struct plugin_hash_entry {
        const void *lib;
        char hash[HASH_HEX_LEN + 1];
    } * plugin_hashes; /* malloc'ed, one per plugin library used */
    size_t n_plugin_hashes;
    ol_transport *ol;  /* settings.openlineage's events, or NULL */
    ol_stats ol_stats; /* what it delivered, once closed */
    int ol_closed;
    struct slurm_runner *slurm; /* slurm.c's state, made with the first job */
};

/* events.c */
/* msg with every secret of the pipeline replaced by ***, as CI systems mask
 * theirs: a step that prints one does not put it in a log. Returns msg
 * itself when it holds none, else b's text (b starts empty; the caller
 * frees it with buf_free). */
const char *sched_mask_secrets(const pipeline *p, const char *msg, buf *b);
void sched_log(step_run *sr, int level, const char *msg);
void sched_log_close(step_run *sr); /* the log's end: what was kept of its tail */
char *sched_log_tail(step_run *sr); /* malloc'ed: the last log lines, indented */
void sched_metric(step_run *sr, const char *key, double val, int64_t index);
void sched_drain_events(run *r);
void sched_on_wake(uv_async_t *a);
/* A task_sink for in-process steps: called from worker threads. */
void sched_sink_log(void *ud, int level, const char *msg);
void sched_sink_progress(void *ud, uint64_t done, uint64_t total);
void sched_sink_metric(void *ud, const char *key, double val, int64_t index);

/* olevent.c: OpenLineage events, each a no-op without settings.openlineage.
 * type is START, COMPLETE, FAIL or ABORT; why, a failure's reason, or NULL. */
void sched_lineage_open(run *r); /* a failure is said and leaves r->ol NULL */
void sched_lineage_run(run *r, const char *type, const char *why);
void sched_lineage_step_started(step_run *sr); /* once per step run */
void sched_lineage_step_finished(step_run *sr, step_outcome outcome, const char *why);
void sched_lineage_close(run *r); /* delivers what is left, counts it */

/* run.c */
void sched_schedule(run *r);
void sched_start_attempt(step_run *sr); /* the cache first, then an attempt */
void sched_maybe_finish(run *r);
void sched_finish_step(step_run *sr, step_outcome outcome, const char *why);
void sched_attempt_done(attempt *at, int ok, const char *why);
void sched_free_attempt(attempt *at);
double sched_wall_now(void);
const char *sched_input_hash(run *r, const step_input *in);

int sched_init_step_run(run *r, size_t i); /* steps[i] of the pipeline: 0 or -ENOMEM */

/* fanout.c: 'foreach: STEP.OUTPUT'. Expands the template sr (taken from
 * the ready set, its upstream step done) into one instance per row of that
 * step's output, which are then ready; or fails it, saying why (a bad row,
 * no rows, too many). Never launches anything itself. */
void sched_expand(step_run *sr);

/* launch.c */
int sched_build_task(attempt *at);      /* fills at->t: parameters, input and output paths */
void sched_launch(attempt *at, int rc); /* starts the attempt, or ends it with rc */
void sched_on_dir_ready(uv_fs_t *req);
void sched_on_timeout(uv_timer_t *t);
void sched_on_grace(uv_timer_t *t);

/* launch.c, for slurm.c: what a shell step runs and with which
 * environment (allocated in at->a), an event line of 'sluice exec', and a
 * shell step's metrics file. */
char **sched_shell_env(attempt *at);
int sched_shell_command(attempt *at, const char **cmd, int *strict);
void sched_child_event(attempt *at, const char *line, size_t len);
void sched_read_shell_metrics(attempt *at);

/* slurm.c: the Slurm runner (docs/slurm.md) */
int sched_slurm_step(const run *r, const step *s); /* 1: s runs as a Slurm job */
int sched_slurm_launch(attempt *at);               /* submits it; 0 or a negative code */
void sched_slurm_cancel(attempt *at);              /* scancel, or stop the submission */
void sched_slurm_forget(attempt *at);              /* a forced stop: ends it without Slurm's word */
void sched_slurm_free(run *r);                     /* after the loop closed */

/* reuse.c */
int sched_select_steps(run *r);
int sched_try_cache(step_run *sr); /* 1: the step is settled without running */
int sched_step_cacheable(const step_run *sr);
int sched_alloc_outputs(step_run *sr, size_t n);
int sched_record(step_run *sr, const char *status, const char *why);

/* builtin.c: the steps sluice provides itself. sched_is_builtin: s is one
 * (then sched_launch runs it through sched_run_builtin, on the loop, in
 * the run's metadata handle). The sched_run_* return 1 when done, 0 with
 * why when the step failed (a promotion refused, a server that did not
 * come up). */
int sched_is_builtin(const step *s);
int sched_run_builtin(attempt *at, char *why, size_t why_size);

/* promote.c */
int sched_run_promote(attempt *at, char *why, size_t why_size);
/* Moves p's alias (modelreg_promote in the run's metadata), saying so in
 * the step's log: 1, or 0 with why. */
int sched_promote(attempt *at, const modelreg_promotion *p, char *why, size_t why_size);
/* Who promotes, for the audit trail: the user, the run and the step. */
void sched_promotion_who(const attempt *at, char *who, size_t size);
/* A string parameter's value ("" when unset or not a string). */
const char *sched_param_str(const task *t, const char *name);
/* The registry's model the step names: model_name, else the pipeline's
 * name. */
const char *sched_model_name(const attempt *at);
/* The artifact id on input port (NULL when unconnected). */
const char *sched_input_artifact(const attempt *at, const char *port);

/* deploy.c */
int sched_run_deploy(attempt *at, char *why, size_t why_size);
extern const char *const sched_record_status[];

#endif
