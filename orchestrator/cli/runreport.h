/* runreport.h - what a CI system wants to know of a finished run, as one
 * document: its pipeline and status, each step (state, whether it came
 * from the cache and why, time, error, metrics), and optionally how its
 * metrics compare with a registered model version's. 'sluice report'
 * prints it as JSON or Markdown (cmd_report.c); 'run --junit' writes its
 * steps as JUnit test cases (junit.c). The JSON shape is docs/ci.md's
 * contract, versioned by its "v". */
#ifndef SLUICE_CLI_RUNREPORT_H
#define SLUICE_CLI_RUNREPORT_H

#include <bson/bson.h>

/* The report's schema version: raised when a field changes meaning or
 * goes away; added fields keep it. */
#define RUNREPORT_VERSION 1

/* Builds the report of run spec (a run id, a unique prefix of one, or
 * "latest") in the store into *doc (initialized here on success; the
 * caller destroys it). against, when not NULL, is NAME@ALIAS or
 * NAME@VERSION of a registered model to compare the run's metrics with.
 * Returns 0, or prints why not ("sluice report: ...") and returns
 * EXIT_BAD_INPUT (an unknown run or model, a bad spec, no store). */
int runreport_build(const char *store, const char *spec, const char *against, bson_t *doc);

/* The direction of a metric for the report's better/worse: -1 when lower
 * is better (the registry's names: loss, perplexity, error, ...), 1 when
 * higher is (accuracy, f1, bleu, rouge, recall, precision, auc, ...), 0
 * when sluice cannot tell. */
int runreport_direction(const char *metric);

/* Reading the report's document (or any): the string at a dotted path
 * ("git.commit"), or fallback; the number there (1 and *v, or 0); the
 * field there (1 and *out, or 0); and the document or array an iterator
 * is at, as a view into it (1, or 0 when it holds none). All borrowed
 * from doc. */
int runreport_field(const bson_t *doc, const char *path, bson_iter_t *out);
const char *runreport_str(const bson_t *doc, const char *path, const char *fallback);
int runreport_num(const bson_t *doc, const char *path, double *v);
int runreport_subdoc(const bson_iter_t *it, bson_t *out);

/* Writes the steps of run run_id as JUnit XML to path, atomically (a
 * temporary file beside it, renamed): one test case per step (junit.c;
 * docs/ci.md says what each state becomes). A run that never started
 * (run_id NULL or "") gets one error case naming exit_status, under the
 * name pipeline. Returns the run's exit_status, or, when the file cannot
 * be written (said on stderr) and the run succeeded, EXIT_STEP_FAILED:
 * the run's result could not be recorded. */
int runreport_junit(const char *store, const char *run_id, const char *pipeline, int exit_status,
                    const char *path);

/* Whether a JUnit file can be written at path (its folder exists and is
 * writable, and path is no folder), before a run starts: 0, or -errno
 * with why printed. */
int runreport_junit_check(const char *path);

#endif
