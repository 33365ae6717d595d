/* capbuf.h - a byte buffer grown piece by piece up to a cap and kept
 * NUL-terminated: how the steps that speak HTTP (the crawler, the API
 * client) collect a response body as libcurl hands it over, refusing one
 * larger than they will hold. */
#ifndef SLUICE_STEPS_CAPBUF_H
#define SLUICE_STEPS_CAPBUF_H

#include <stddef.h>

enum { CAPBUF_OVER = 1 };

/* Appends bytes[0, n) to the buffer *data of *len bytes (NULL and 0 for an
 * empty one; *data is malloc'ed and the caller's to free), keeping a NUL
 * after the last byte. Returns 0; CAPBUF_OVER when *len + n would pass cap
 * (nothing appended); -ENOMEM (nothing appended, the buffer unchanged). */
int capbuf_append(char **data, size_t *len, size_t cap, const void *bytes, size_t n);

#endif
