/* ui_pico.h - the request parser of picohttpparser (Kazuho Oku et al.),
 * which Debian's libh2o exports (phr_parse_request) but whose header no
 * Debian package installs: its declarations, as picohttpparser.h has them. */
#ifndef SLUICE_UI_PICO_H
#define SLUICE_UI_PICO_H

#include <stddef.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The bytes the request line and headers take, -2 incomplete, -1 bad. */
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

#endif
