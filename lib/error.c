#include "error.h"

#include <lmdb.h>
#include <sluice/plugin.h>
#include <string.h>
#include <uv.h>

#define UV_OWN_FIRST (-3000)
#define UV_OWN_LAST (-4095)

/* Whether libuv names code: uv_strerror() allocates (and leaks) a message
 * for a code it does not know, so only known ones are passed to it. */
static int uv_knows(int code) {
#define KNOWN(name, msg)                                                                           \
    if (code == UV_##name)                                                                         \
        return 1;
    UV_ERRNO_MAP(KNOWN)
#undef KNOWN
    return 0;
}

const char *sluice_strerror(int code) {
    if (code == 0)
        return "success";
    if (code <= SL_ERANGE_BEGIN && code >= SL_ERANGE_END)
        return sl_strerror(code);
    if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE)
        return mdb_strerror(code);
    if (code <= UV_OWN_FIRST && code >= UV_OWN_LAST)
        return uv_knows(code) ? uv_strerror(code) : "unknown error code";
    if (code < 0 && code > UV_OWN_FIRST)
        return strerror(-code);
    return "unknown error code";
}
