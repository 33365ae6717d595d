/* cmd_exec.c - sluice exec: the child side of 'isolation: process'.
 *
 * Reads a task manifest (JSON) on stdin, loads the plugin, runs the step and
 * reports back on file descriptor 3, one JSON object per line:
 *   {"t": "log", "level": N, "msg": "..."}
 *   {"t": "progress", "a": DONE, "b": TOTAL}
 *   {"t": "metric", "key": "...", "value": X, "b": INDEX}
 *   {"t": "done", "a": STATUS, "error": "..."}
 * What the step prints on stdout and stderr goes to its log. SIGTERM asks the
 * step to stop (sl_cancelled() turns true). Exit status 0 when the step
 * succeeded, 1 when it failed, 2 when the manifest or plugin was bad. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "buf.h"
#include "host.h"
#include "supervise.h"
#include "task.h"

static FILE *events;
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int *cancel_flag;

static void emit(bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    pthread_mutex_lock(&events_mu);
    if (json) {
        fwrite(json, 1, len, events);
        fputc('\n', events);
        fflush(events);
    }
    pthread_mutex_unlock(&events_mu);
    bson_free(json);
    bson_destroy(doc);
}

static void ev_log(void *ud, int level, const char *msg) {
    (void)ud;
    bson_t *d = BCON_NEW("t", BCON_UTF8("log"), "level", BCON_INT32(level), "msg", BCON_UTF8(msg));
    emit(d);
}

static void ev_progress(void *ud, uint64_t done, uint64_t total) {
    (void)ud;
    emit(BCON_NEW("t", BCON_UTF8("progress"), "a", BCON_INT64((int64_t)done), "b",
                  BCON_INT64((int64_t)total)));
}

static void ev_metric(void *ud, const char *key, double v, int64_t index) {
    (void)ud;
    emit(BCON_NEW("t", BCON_UTF8("metric"), "key", BCON_UTF8(key), "value", BCON_DOUBLE(v), "b",
                  BCON_INT64(index)));
}

static void on_term(int sig) {
    (void)sig;
    if (cancel_flag)
        atomic_store(cancel_flag, 1);
}

static void done(int status, const char *error) {
    bson_t *d = BCON_NEW("t", BCON_UTF8("done"), "a", BCON_INT32(status));
    if (error)
        BSON_APPEND_UTF8(d, "error", error);
    emit(d);
}

static char *read_all(FILE *f) {
    buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    return buf_detach(&b);
}

int cmd_exec(const cli_globals *g, int argc, char **argv) {
    (void)g;
    if (argc >= 2 && strcmp(argv[1], SUPERVISE_FLAG) == 0) /* see exec/supervise.h */
        return supervise_main(argc - 2, argv + 2, "sluice exec " SUPERVISE_FLAG);
    events = fcntl(3, F_GETFD) != -1 ? fdopen(3, "w") : NULL;
    if (!events)
        events = stderr;
    if (argc != 1) {
        fprintf(stderr, "sluice exec: takes no arguments; it reads a task manifest on stdin\n");
        return EXIT_BAD_INPUT;
    }
    char *json = read_all(stdin);
    bson_error_t berr;
    bson_t *doc = json ? bson_new_from_json((const uint8_t *)json, -1, &berr) : NULL;
    free(json);
    arena a = ARENA_INIT;
    task t;
    char err[512];
    int status = EXIT_BAD_INPUT;
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    if (!doc) {
        done(SL_EINVAL, "the task manifest is not JSON");
        goto out;
    }
    if (task_from_bson(&a, doc, &t, err, sizeof(err)) != 0) {
        done(SL_EINVAL, err);
        goto out;
    }
    diag_list d = DIAG_LIST_INIT;
    const plugin_lib *lib = NULL;
    registry_load_file(&reg, t.plugin_path, &d, &lib);
    const plugin_step *ps = lib ? registry_find(&reg, t.step_name) : NULL;
    if (!ps) {
        snprintf(err, sizeof(err), "%s", d.n ? d.items[0].msg : "the plugin declares no such step");
        diag_clear(&d);
        done(SL_EINVAL, err);
        goto out;
    }
    diag_clear(&d);
    t.step = ps->step;
    host_ctx hc;
    task_sink sink = {ev_log, ev_progress, ev_metric, NULL};
    if (host_ctx_init(&hc, &t, &sink) != 0) {
        done(SL_ENOMEM, "cannot set up the step's context");
        goto out;
    }
    cancel_flag = &hc.cancel;
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    const char *why = NULL;
    int rc = host_ctx_run(&hc, &why);
    fflush(stdout);
    done(rc, why);
    cancel_flag = NULL;
    host_ctx_free(&hc);
    status = rc == SL_OK ? EXIT_DONE : EXIT_STEP_FAILED;
out:
    if (doc)
        bson_destroy(doc);
    registry_free(&reg);
    arena_free(&a);
    if (events && events != stderr)
        fclose(events);
    return status;
}
