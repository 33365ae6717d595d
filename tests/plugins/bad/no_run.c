/* A step without a run function. */
#include <sluice/plugin.h>
static const sl_step steps[] = {{"lazy", "1", NULL, NULL, NULL, NULL, NULL}};
SL_PLUGIN_DEFINE("no_run", "1", steps, NULL, NULL)
