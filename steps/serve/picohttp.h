/* picohttp.h - the request parser of picohttpparser (Kazuho Oku et al.),
 * which Debian's libh2o0.13 exports (phr_parse_request and friends) but
 * whose header no Debian package installs: these are the declarations of
 * picohttpparser.h as libh2o 2.2.5 builds it (lib/picohttpparser.h,
 * unchanged in shape since 2014). */
#ifndef SLUICE_PICOHTTP_H
#define SLUICE_PICOHTTP_H

#include <stddef.h>

/* A header line: name and value point into the parsed buffer (name NULL
 * for a continuation line of a multi-line header). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Parses the request line and headers at buf[0..len): returns the bytes
 * they take (the body follows), -2 when incomplete, -1 when malformed.
 * *num_headers is the room in headers on entry and the count on return;
 * last_len is the length of buf at the previous call on the same request
 * (0 the first time), to resume without rescanning. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#endif
