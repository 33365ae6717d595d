/* A plugin of the current ABI with user data (SL_PLUGIN_DEFINE_DATA): its
 * run checks it gets what init_data made, in process and in a child
 * (tests/e2e/test_abi.c); teardown_data frees it, which LeakSanitizer sees. */
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>

#define MAGIC 0x5eed

typedef struct state {
    int magic;
} state;

static int open_state(const sl_host *host, void **user_data, char *err, size_t size) {
    (void)host;
    state *s = malloc(sizeof(*s));
    if (!s) {
        snprintf(err, size, "out of memory");
        return -1;
    }
    s->magic = MAGIC;
    *user_data = s;
    return 0;
}

static void close_state(void *user_data) {
    state *s = user_data;
    s->magic = 0;
    free(s);
}

static int run(sl_ctx *c) {
    const state *s = sl_user_data(c);
    if (!s || s->magic != MAGIC)
        return sl_fail(c, "run did not get init_data's pointer");
    FILE *out = sl_output_create(c, "out");
    if (!out)
        return SL_EIO;
    fprintf(out, "magic %x", s->magic);
    return fclose(out) == 0 ? SL_OK : SL_EIO;
}

static const sl_port outs[] = {{"out", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
static const sl_step steps[] = {
    {"abi13_data", "1", "write what init_data made", NULL, outs, NULL, run},
};

SL_PLUGIN_DEFINE_DATA("abi13data", "1.0", steps, open_state, close_state)
