/* errbuf.h - the message half of the steps' error convention: a function
 * returns 0 or a negative errno, and says why in a buffer its caller gave
 * (err, err_size; err may be NULL or err_size 0 when nobody will read it). */
#ifndef SLUICE_STEPS_ERRBUF_H
#define SLUICE_STEPS_ERRBUF_H

#include <stddef.h>

/* Formats the message into err (NUL-terminated, cut to err_size) and
 * returns rc, so that `return errbuf_set(err, size, -EINVAL, ...);` says
 * and fails in one statement. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int errbuf_set(char *err, size_t err_size, int rc, const char *fmt, ...);

#endif
