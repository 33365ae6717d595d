/* A port without a type. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_port outs[] = {{"result", NULL, NULL, 0}, {NULL, NULL, NULL, 0}};
static const sl_step steps[] = {{"untyped", "1", NULL, NULL, outs, NULL, run}};
SL_PLUGIN_DEFINE("bad_port", "1", steps, NULL, NULL)
