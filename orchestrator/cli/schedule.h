/* schedule.h - a schedule as 'sluice schedule' records it and 'sluice
 * scheduler' runs it (docs/schedules.md): its trigger, the fire times it
 * owes, and the polls of git, warehouse and artifact triggers. */
#ifndef SLUICE_CLI_SCHEDULE_H
#define SLUICE_CLI_SCHEDULE_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "meta.h"

typedef enum { SK_CRON, SK_EVERY, SK_AT, SK_GIT, SK_WAREHOUSE, SK_ARTIFACT } sched_kind;
typedef enum { CATCHUP_NONE, CATCHUP_LATEST, CATCHUP_ALL } sched_catchup;

/* catchup all runs at most this many missed times, the newest ones. */
#define SCHED_CATCHUP_MAX 24
/* A fire time at most this late is on time (catchup none still runs it). */
#define SCHED_GRACE_S 60

typedef struct sched_def {
    char name[65];
    char file[4096];
    char *params[64]; /* "k=v", owned; n_params of them */
    size_t n_params;
    sched_kind kind;
    cron_expr cron;
    char tz[128];        /* "" local */
    char expr[256];      /* the --cron or --at text, or the trigger as given */
    int64_t every_s, at; /* --every in seconds, --at since the epoch */
    char repo[1024];     /* git: a path (absolute) or URL */
    char branch[256];    /* git: "" for HEAD */
    char pipeline[256], step[128], output[128]; /* artifact */
    sched_catchup catchup;
    int paused;
    int64_t created;
    /* state */
    int64_t last_fire; /* 0: never */
    char last_seen[128];
    int64_t runs, skipped;
    int64_t pid; /* the process of the run it started, 0 once it ended */
} sched_def;

/* Now, in seconds since the epoch: $SLUICE_NOW when set (for tests only:
 * seconds, or a time as --at takes it), else the clock. */
int64_t sched_now(void);

/* Reads a record. Returns 0 or -EINVAL (why says what is wrong). */
int sched_def_from_bson(const bson_t *doc, sched_def *d, char *why, size_t size);
void sched_def_free(sched_def *d);

const char *sched_kind_name(sched_kind k);
const char *sched_catchup_name(sched_catchup c);

/* Time kinds: the first fire time after t: 0 and *next, or -ENOENT. */
int sched_next_after(const sched_def *d, int64_t t, int64_t *next);

/* What a time schedule owes at now: the times in (last fire or creation,
 * now] by its catchup policy. */
typedef struct sched_due {
    int64_t n_due;   /* fire times passed */
    int run;         /* 1: start a run for fire time run_at */
    int64_t run_at;  /* also the new last fire time when nothing runs */
    int64_t skipped; /* passed times that get no run */
} sched_due;

void sched_due_at(const sched_def *d, int64_t now, sched_due *out);

/* The trigger's current value: a commit sha (git), the number of documents
 * (warehouse), an artifact hash (artifact, "" before any). Returns 0, or a
 * negative code with why. store is the sluice store; m is open (artifact).
 * Safe on another thread than the one that writes m (LMDB, MDB_NOTLS). */
int sched_poll(const sched_def *d, const char *store, meta_db *m, char *value, size_t size,
               char *why, size_t why_size);

/* 1 when the poll's value is news against last_seen (git and artifact: a
 * different value; warehouse: more documents). */
int sched_poll_is_new(const sched_def *d, const char *value);

/* 1 when process pid is the 'sluice run' d started (its command line has
 * "--cause schedule=NAME"), still running: a scheduler restarted while a
 * run it started goes on does not start another. */
int sched_run_alive(const sched_def *d, int64_t pid);

/* Seconds since the epoch as "2026-12-07T10:00:00Z". */
void sched_iso(int64_t t, char *out, size_t size);

#endif
