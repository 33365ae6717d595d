/* Declares 'noop', which teststeps declares too: its folder comes after
 * teststeps' in the search path, so it is the one refused. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_step steps[] = {{"noop", "9", NULL, NULL, NULL, NULL, run}};
SL_PLUGIN_DEFINE("zz_dup_across", "1", steps, NULL, NULL)
