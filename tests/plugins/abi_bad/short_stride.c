/* Its descriptor claims ports of 8 bytes, less than any ABI's sl_port: a
 * descriptor not written by SL_PLUGIN_DEFINE, to be refused before its
 * arrays are walked. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_port outs[] = {{"out", "any", NULL, 0}, {NULL, NULL, NULL, 0}};
static const sl_step steps[] = {{"short_stride", "1", NULL, NULL, outs, NULL, run}};
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
SL_EXPORT const sl_plugin *sluice_plugin_v1(void) {
    static const sl_plugin p = {.abi_version = SL_ABI_VERSION,
                                .size = sizeof(sl_plugin),
                                .signature = SL_BUILD_SIGNATURE,
                                .name = "short_stride",
                                .version = "1",
                                .steps = steps,
                                .n_steps = 1,
                                .step_size = sizeof(sl_step),
                                .port_size = 8,
                                .param_size = sizeof(sl_param)};
    return &p;
}
