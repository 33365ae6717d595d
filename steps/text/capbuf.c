#include "capbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int capbuf_append(char **data, size_t *len, size_t cap, const void *bytes, size_t n) {
    if (n > cap || *len > cap - n)
        return CAPBUF_OVER;
    char *grown = realloc(*data, *len + n + 1);
    if (!grown)
        return -ENOMEM;
    if (n)
        memcpy(grown + *len, bytes, n);
    *len += n;
    grown[*len] = '\0';
    *data = grown;
    return 0;
}
