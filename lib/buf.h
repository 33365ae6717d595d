/* buf.h - a growable byte buffer, always NUL-terminated.
 *
 * Failure is sticky (as in curl's dynbuf): after an allocation fails every
 * later append is a no-op returning -ENOMEM, so a writer can append freely
 * and check once at the end with buf_failed(). */
#ifndef SLUICE_CORE_BUF_H
#define SLUICE_CORE_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len, cap;
    int failed;
} buf;

#define BUF_INIT                                                                                   \
    { NULL, 0, 0, 0 }

int buf_append(buf *b, const void *p, size_t n);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_failed(const buf *b);

/* The contents as a C string ("" when empty); borrowed until the next append. */
const char *buf_str(const buf *b);

/* Hands the contents to the caller, who frees them with free(); the buffer is
 * reset. NULL if the buffer failed. */
char *buf_detach(buf *b);

void buf_reset(buf *b); /* keeps the memory, empties the contents */
void buf_free(buf *b);

#endif
