/* report.h - what a run shows as it goes: a live view on a terminal (a line
 * per running step, with elapsed time and progress), plain timestamped lines
 * elsewhere (logs, CI), or one JSON event per line with --json (docs/cli.md
 * lists the events). All calls come from the loop thread. */
#ifndef SLUICE_SCHED_REPORT_H
#define SLUICE_SCHED_REPORT_H

#include <stdint.h>
#include <stdio.h>

typedef enum { REPORT_TTY, REPORT_PLAIN, REPORT_JSON } report_mode;

typedef enum {
    STEP_DONE,
    STEP_FAILED,
    STEP_SKIPPED,
    STEP_CANCELLED,
    STEP_CACHED, /* done by reusing an earlier step run's outputs */
} step_outcome;

typedef struct live_entry {
    const char *id; /* borrowed from the pipeline */
    double started;
    uint64_t done, total;
    int attempt;
    int active;
    double last_event; /* of the last JSON progress event */
} live_entry;

typedef struct reporter {
    report_mode mode;
    FILE *out;
    double t0;
    live_entry *live; /* one per step */
    size_t n_steps;
    int drawn;    /* live lines on screen now */
    size_t width; /* of the widest step id */
    int color;    /* tty mode and no NO_COLOR (no-color.org) */
} reporter;

/* Picks the mode (json when asked, tty when out is a terminal and TERM is not
 * "dumb", else plain). n_steps is the most steps the run may have (with
 * room for the instances 'foreach: STEP.OUTPUT' makes). Returns 0 or
 * -ENOMEM. */
int report_init(reporter *r, FILE *out, int json, size_t n_steps);
void report_free(reporter *r);

void report_run_started(reporter *r, const char *run_id, const char *pipeline, const char *run_dir,
                        size_t n_steps, int jobs);
void report_step_started(reporter *r, size_t index, const char *id, int attempt, int attempts);
void report_step_progress(reporter *r, size_t index, const char *id, uint64_t done, uint64_t total);
void report_step_log(reporter *r, const char *id, int level, const char *msg);
/* What a step says for its user to read in the run's output too (a
 * deployment's URL): a line "step ID: MSG", or the log event in JSON. */
void report_step_note(reporter *r, const char *id, const char *msg);
void report_step_metric(reporter *r, const char *id, const char *key, double value, int64_t step);
void report_step_retry(reporter *r, size_t index, const char *id, int next_attempt, int attempts,
                       int64_t delay_ms, const char *why);
/* why: the error of a failure, the failed ancestor of a skip; tail: the last
 * lines of the step's log, shown with a failure (may be NULL). */
void report_step_finished(reporter *r, size_t index, const char *id, step_outcome outcome,
                          int attempt, double seconds, const char *why, const char *tail);
/* A finished step's outputs. In JSON an event for every step; elsewhere
 * printed for the steps the run ends with (final: nothing consumes them). */
void report_step_outputs(reporter *r, const char *id, const char *const *names, char *const *paths,
                         size_t n, int final);
void report_run_finished(reporter *r, const char *run_id, const char *status, size_t done,
                         size_t cached, size_t failed, size_t skipped, size_t cancelled,
                         double seconds);

/* Redraws the live view (a timer calls it on a terminal). */
void report_tick(reporter *r);

double report_now(void);

#endif
