/* Its init refuses to start; teardown must then not run. */
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>
static int run(sl_ctx *c) {
    (void)c;
    return SL_OK;
}
static int init(const sl_host *host, char *err, size_t size) {
    snprintf(err, size, "no licence found (host ABI %u)", host->abi_version >> 16);
    return -1;
}
static void teardown(void) { abort(); }
static const sl_step steps[] = {{"licensed", "1", NULL, NULL, NULL, NULL, run}};
SL_PLUGIN_DEFINE("init_fails", "1", steps, init, teardown)
