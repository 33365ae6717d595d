#include "step_output.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int step_output_folder(sl_ctx *ctx, const char *port, const char **path) {
    *path = sl_output_path(ctx, port);
    if (!*path)
        return sl_fail(ctx, "no output '%s'", port);
    if (mkdir(*path, 0755) != 0 && errno != EEXIST)
        return sl_fail(ctx, "cannot create output '%s' (%s): %s", port, *path, strerror(errno));
    return SL_OK;
}
