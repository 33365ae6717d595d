/* Declares the same step twice. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_step steps[] = {
    {"twin", "1", NULL, NULL, NULL, NULL, run},
    {"twin", "2", NULL, NULL, NULL, NULL, run},
};
SL_PLUGIN_DEFINE("twice", "1", steps, NULL, NULL)
