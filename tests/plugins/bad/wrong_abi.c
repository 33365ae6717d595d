/* Claims a future major ABI version. */
#include <sluice/plugin.h>
static int run(sl_ctx *c) { (void)c; return SL_OK; }
static const sl_step steps[] = {{"future", "1", NULL, NULL, NULL, NULL, run}};
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
SL_EXPORT const sl_plugin *sluice_plugin_v1(void) {
    static const sl_plugin p = {(2u << 16) | 0, sizeof(sl_plugin), SL_BUILD_SIGNATURE, "future", "1",
                                steps, 1, NULL, NULL};
    return &p;
}
