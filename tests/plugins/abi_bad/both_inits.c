/* Gives init and init_data: which one would own teardown is unclear, so
 * it is refused, and neither runs. */
#include <sluice/plugin.h>
#include <stdlib.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static int init(const sl_host *h, char *e, size_t n) {
    (void)h, (void)e, (void)n;
    abort();
}
static int init_data(const sl_host *h, void **ud, char *e, size_t n) {
    (void)h, (void)ud, (void)e, (void)n;
    abort();
}
static const sl_step steps[] = {{"both_inits", "1", NULL, NULL, NULL, NULL, run}};
SL_EXPORT const sl_plugin *sluice_plugin_v1(void);
SL_EXPORT const sl_plugin *sluice_plugin_v1(void) {
    static const sl_plugin p = {.abi_version = SL_ABI_VERSION,
                                .size = sizeof(sl_plugin),
                                .signature = SL_BUILD_SIGNATURE,
                                .name = "both_inits",
                                .version = "1",
                                .steps = steps,
                                .n_steps = 1,
                                .init = init,
                                .step_size = sizeof(sl_step),
                                .port_size = sizeof(sl_port),
                                .param_size = sizeof(sl_param),
                                .init_data = init_data};
    return &p;
}
