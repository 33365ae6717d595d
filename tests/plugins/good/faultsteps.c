#define _XOPEN_SOURCE 700
/* faultsteps - steps that misbehave the way plugin authors do by mistake,
 * for the store's tests: an output left open. */
#include <sluice/plugin.h>
#include <stdio.h>
#include <string.h>

/* The stream stays reachable, as a forgotten global would: the host must
 * notice the output is still open, not a leak checker. */
static FILE *left_open;

/* Writes 'bytes' bytes to its output and returns without closing it: what
 * does not fill stdio's buffer never reaches the file. */
static int unclosed_run(sl_ctx *ctx) {
    FILE *f = sl_output_create(ctx, "out");
    if (!f)
        return sl_fail(ctx, "cannot create the output");
    int64_t bytes = sl_param_int(ctx, "bytes");
    for (int64_t i = 0; i < bytes; i++)
        fputc('a' + (int)(i % 26), f);
    left_open = f;
    return SL_OK;
}

static const sl_port out[] = {{"out", "any", "a file", 0}, {NULL, NULL, NULL, 0}};
static const sl_param unclosed_params[] = {
    {"bytes", SL_PARAM_INT, "13893", "how much to write", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_step steps[] = {
    {"unclosed", "1", "write the output and never close it", NULL, out, unclosed_params,
     unclosed_run},
};

SL_PLUGIN_DEFINE("faultsteps", "1.0", steps, NULL, NULL)
