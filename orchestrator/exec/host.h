/* host.h - sluice's side of the plugin SDK: the host-services table and the
 * context a step runs with. Where the step's events go (the orchestrator's
 * loop, or a pipe back to it from a child) is the sink's business. */
#ifndef SLUICE_EXEC_HOST_H
#define SLUICE_EXEC_HOST_H

#include <pthread.h>
#include <sluice/plugin.h>
#include <stdatomic.h>

#include "arena.h"
#include "registry.h"
#include "task.h"

/* Receives a running step's events. Called from whatever thread the step
 * calls the host from: implementations must be thread-safe. msg is borrowed
 * for the call. */
typedef struct task_sink {
    void (*log)(void *ud, int level, const char *msg);
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void (*metric)(void *ud, const char *key, double value, int64_t step);
    void *ud;
} task_sink;

typedef struct host_ctx {
    sl_ctx base; /* first: the plugin sees only this */
    const task *t;
    task_sink sink;
    atomic_int cancel;  /* set by the orchestrator: timeout or interrupt */
    pthread_mutex_t mu; /* guards scratch and failure */
    arena scratch;      /* strings handed to the plugin, valid for the run */
    char *failure;      /* the last sl_fail() message; owned */
    int dirs_made;      /* the work and output folders exist (made on first ask) */
} host_ctx;

/* Every task.step points at the step member of a host_step (registry.h). */

/* The table every plugin receives; static, valid for the process. */
const sl_host *host_services(void);

/* What a plugin registry needs of sluice: host_services() and the parsing
 * of parameter defaults into values (value.h). Static, valid for the
 * process; give it to PLUGIN_REGISTRY_INIT. */
const registry_host *host_registry(void);

/* Prepares a context for t (borrowed until host_ctx_free). Returns 0 or an
 * errno-style negative. */
int host_ctx_init(host_ctx *c, const task *t, const task_sink *sink);

/* Runs the step. Returns its status (SL_OK, a negative SL_E* code or a
 * negated errno; the -1..-5 of a plugin built for ABI 1.2 or older read as
 * the SL_E* codes they were); on
 * failure *why (owned by c) says why, from sl_fail() or the code. */
int host_ctx_run(host_ctx *c, const char **why);

void host_ctx_free(host_ctx *c);

/* The message for an SL_E* code. */
const char *sl_status_message(int status);

#endif
