/* fail.c - the warehouse's error message, in the library and in the
 * MongoDB module alike (a module cannot call back into its host). */
#include <stdarg.h>
#include <stdio.h>

#include "backend.h"

int warehouse_fail(warehouse *w, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof(w->err), fmt, ap);
    va_end(ap);
    return code;
}
