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

/* The state of a chunked body's decoding: zeroed (consume_trailer set to
 * skip trailers) before its first byte. The reserved room is for the
 * counters later picohttpparsers add at its end; 2.2.5's has none. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
    unsigned long long _reserved[4];
};

/* Decodes buf[0..*bufsz) in place: *bufsz becomes the decoded bytes (at
 * buf). Returns -2 when more is needed, -1 when malformed, else the bytes
 * after the body's end that are not its own (they follow the *bufsz
 * decoded bytes). */
long phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
