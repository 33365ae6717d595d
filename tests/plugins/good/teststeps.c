#define _XOPEN_SOURCE 700
/* teststeps - step plugins that exercise the scheduler: no-ops, sleeps that
 * honour (or ignore) cancellation, failures, a crash, the end of the whole
 * process, typed ports, a path parameter. */
#include <signal.h>
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int noop_run(sl_ctx *ctx) {
    (void)ctx;
    return SL_OK;
}

static void nap(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int sleep_run(sl_ctx *ctx) {
    int64_t ms = sl_param_int(ctx, "ms");
    int ignore = sl_param_bool(ctx, "ignore_cancel");
    for (int64_t slept = 0; slept < ms; slept += 10) {
        if (!ignore && sl_cancelled(ctx))
            return SL_ECANCELLED;
        nap(10);
        sl_progress(ctx, (uint64_t)slept, (uint64_t)ms);
    }
    return SL_OK;
}

static int fail_run(sl_ctx *ctx) {
    sl_log(ctx, SL_LOG_INFO, "about to fail");
    return sl_fail(ctx, "failed on purpose: %s", sl_param_str(ctx, "reason"));
}

static int crash_run(sl_ctx *ctx) {
    sl_log(ctx, SL_LOG_INFO, "about to crash");
    raise(SIGSEGV);
    return SL_OK;
}

/* Ends the whole process, as a buggy in-process plugin can. */
static int die_run(sl_ctx *ctx) {
    const char *how = sl_param_str(ctx, "how"), *unless = sl_param_str(ctx, "unless");
    if (unless && *unless && access(unless, F_OK) == 0)
        return SL_OK; /* so that a test can let a resume get through */
    sl_log(ctx, SL_LOG_INFO, "about to %s", how);
    if (strcmp(how, "abort") == 0)
        abort();
    if (strcmp(how, "exit") == 0)
        exit(3);
    raise(SIGSEGV);
    return SL_OK;
}

/* Writes its 'text' parameter to its output, logs, reports a metric. */
static int emit_run(sl_ctx *ctx) {
    FILE *f = sl_output_create(ctx, "out");
    if (!f)
        return sl_fail(ctx, "cannot create the output");
    const char *text = sl_param_str(ctx, "text");
    fprintf(f, "%s\n", text ? text : "");
    fclose(f);
    sl_log(ctx, SL_LOG_INFO, "wrote %zu bytes", text ? strlen(text) + 1 : 1);
    sl_metric(ctx, "bytes", text ? (double)strlen(text) + 1 : 1, 0);
    return SL_OK;
}

/* Copies in (closed here; NULL fails the step, naming what) to output
 * "out" after prefix. */
static int copy_out(sl_ctx *ctx, FILE *in, const char *what, const char *prefix) {
    FILE *out = sl_output_create(ctx, "out");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return sl_fail(ctx, "cannot open %s or the output", what);
    }
    fputs(prefix, out);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        fwrite(chunk, 1, n, out);
    fclose(in);
    fclose(out);
    return SL_OK;
}

/* Copies its input to its output with a prefix. */
static int echo_run(sl_ctx *ctx) {
    return copy_out(ctx, sl_input_open(ctx, "in"), "the input", sl_param_str(ctx, "prefix"));
}

/* Copies the file its 'source' path parameter names to its output. */
static int read_run(sl_ctx *ctx) {
    const char *source = sl_param_str(ctx, "source");
    return copy_out(ctx, source ? fopen(source, "rb") : NULL, source ? source : "(no source)", "");
}

static int typed_run(sl_ctx *ctx) {
    FILE *f = sl_output_create(ctx, "docs");
    if (f)
        fclose(f);
    return f ? SL_OK : SL_EIO;
}

static const sl_port any_in[] = {{"in", "any", "anything", 1}, {NULL, NULL, NULL, 0}};
static const sl_port any_out[] = {{"out", "any", "a file", 1}, {NULL, NULL, NULL, 0}};
static const sl_port req_in[] = {{"in", "any", "a file", 0}, {NULL, NULL, NULL, 0}};
static const sl_port req_out[] = {{"out", "any", "a file", 0}, {NULL, NULL, NULL, 0}};
static const sl_port docs_out[] = {{"docs", "documents", NULL, 0}, {NULL, NULL, NULL, 0}};
static const sl_port chunks_in[] = {{"chunks", "chunks", NULL, 1}, {NULL, NULL, NULL, 0}};

static const sl_param sleep_params[] = {
    {"ms", SL_PARAM_INT, "100", "how long to sleep", 0},
    {"ignore_cancel", SL_PARAM_BOOL, "false", "never look at sl_cancelled()", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_param fail_params[] = {
    {"reason", SL_PARAM_STRING, "no reason", NULL, 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_param read_params[] = {
    {"source", SL_PARAM_PATH, NULL, "the file to copy", 1},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_param die_params[] = {
    {"how", SL_PARAM_STRING, "\"segv\"", "segv, abort or exit", 0},
    {"unless", SL_PARAM_STRING, "\"\"", "a file whose presence makes it succeed", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_param emit_params[] = {
    {"text", SL_PARAM_STRING, NULL, "what to write", 1},
    {"count", SL_PARAM_INT, "1", NULL, 0},
    {"ratio", SL_PARAM_FLOAT, "0.5", NULL, 0},
    {"tags", SL_PARAM_LIST, "[]", NULL, 0},
    {"extra", SL_PARAM_JSON, NULL, NULL, 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_param echo_params[] = {
    {"prefix", SL_PARAM_STRING, "\"> \"", NULL, 0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_step steps[] = {
    {"noop", "1", "do nothing", any_in, any_out, NULL, noop_run},
    {"sleep", "1", "sleep, checking for cancellation", any_in, any_out, sleep_params, sleep_run},
    {"fail", "1", "fail with a message", any_in, any_out, fail_params, fail_run},
    {"crash", "1", "crash with SIGSEGV", any_in, any_out, NULL, crash_run},
    {"die", "1", "end the process: SIGSEGV, abort() or exit(3)", any_in, any_out, die_params,
     die_run},
    {"emit", "1", "write a parameter to the output", NULL, req_out, emit_params, emit_run},
    {"echo", "1", "copy the input to the output", req_in, req_out, echo_params, echo_run},
    {"typed", "1", "typed ports", chunks_in, docs_out, NULL, typed_run},
    {"read", "1", "copy the file a path parameter names", NULL, req_out, read_params, read_run},
};

SL_PLUGIN_DEFINE("teststeps", "1.0", steps, NULL, NULL)
