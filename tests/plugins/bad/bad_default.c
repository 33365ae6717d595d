/* A default that does not fit its parameter's kind. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_param params[] = {{"size", SL_PARAM_INT, "big", NULL, 0}, {NULL, 0, NULL, NULL, 0}};
static const sl_step steps[] = {{"sized", "1", NULL, NULL, NULL, params, run}};
SL_PLUGIN_DEFINE("bad_default", "1", steps, NULL, NULL)
