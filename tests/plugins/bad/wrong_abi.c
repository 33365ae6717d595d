/* Claims a future major ABI version. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static const sl_step steps[] = {{"future", "1", NULL, NULL, NULL, NULL, run}};
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
SL_EXPORT const sl_plugin *sluice_plugin_v1(void) {
    static const sl_plugin p = {.abi_version = (2u << 16) | 0,
                                .size = sizeof(sl_plugin),
                                .signature = SL_BUILD_SIGNATURE,
                                .name = "future",
                                .version = "1",
                                .steps = steps,
                                .n_steps = 1};
    return &p;
}
