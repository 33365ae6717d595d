/* A plugin built against the ABI 1.2 header (plugin_1_2.h, kept as it was
 * released): no element sizes in its descriptor, SL_E* codes -1..-5,
 * init/teardown without user data. sluice must keep loading and running it
 * (tests/e2e/test_abi.c). Do not change it to the current header. */
#include "plugin_1_2.h"

#include <stdio.h>
#include <string.h>

static int inited;

static int copy_run(sl_ctx *c) {
    if (!inited)
        return sl_fail(c, "init did not run");
    const char *suffix = sl_param_str(c, "suffix");
    int64_t times = sl_param_int(c, "times");
    FILE *in = sl_input_open(c, "in");
    FILE *out = sl_output_create(c, "out");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return SL_EIO;
    }
    char line[256];
    while (fgets(line, sizeof(line), in))
        fputs(line, out);
    for (int64_t i = 0; i < times; i++)
        fputs(suffix ? suffix : "", out);
    if (sl_input_path(c, "extra"))
        fputs(" +extra", out);
    fclose(in);
    return fclose(out) == 0 ? SL_OK : SL_EIO;
}

static int fail_run(sl_ctx *c) {
    int rc = sl_fail(c, "the old plugin failed on purpose");
    return rc == -1 ? rc : SL_EINVAL; /* 1.2's SL_EFAIL is what sl_fail gives it */
}

static int einval_run(sl_ctx *c) {
    (void)c;
    return SL_EINVAL;
}

static int init(const sl_host *host, char *err, size_t size) {
    if (host->size < offsetof(sl_host, store_dir) + sizeof(host->store_dir)) {
        snprintf(err, size, "host table too small");
        return -1;
    }
    inited = 1;
    return 0;
}

static void teardown(void) { inited = 0; }

static const sl_port copy_in[] = {
    {"in", "any", "the text to copy", 0},
    {"extra", "any", "unused but for its presence", 1},
    {NULL, NULL, NULL, 0},
};
static const sl_port copy_out[] = {
    {"out", "any", "the copy, then the suffix", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param copy_params[] = {
    {"suffix", SL_PARAM_STRING, "\"!\"", "appended after the text", 0},
    {"times", SL_PARAM_INT, "1", "how many times", 0},
    {"note", SL_PARAM_PATH, NULL, "a 1.2 kind, unused", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_step steps[] = {
    {"abi12_copy", "1", "copy a text and append a suffix", copy_in, copy_out, copy_params,
     copy_run},
    {"abi12_fail", "1", "fail with sl_fail", NULL, NULL, NULL, fail_run},
    {"abi12_einval", "1", "return 1.2's SL_EINVAL", NULL, NULL, NULL, einval_run},
};

SL_PLUGIN_DEFINE("abi12", "1.0", steps, init, teardown)
