/* diag.h - located diagnostics, collected so that every error of a file is
 * reported in one pass, and printed as FILE:LINE:COL: error: MESSAGE. */
#ifndef SLUICE_CORE_DIAG_H
#define SLUICE_CORE_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { DIAG_ERROR, DIAG_WARNING } diag_level;

typedef struct diag {
    char *file;         /* owned copy; NULL for messages about no file */
    unsigned line, col; /* 1-based; line 0 means "no position" */
    diag_level level;
    char *msg;  /* owned */
    size_t seq; /* insertion order, to keep sorting stable */
} diag;

/* Beyond this many, diagnostics are counted but not kept: a hostile file must
 * not turn error reporting into its own denial of service. */
#define DIAG_MAX_KEPT 1000

typedef struct diag_list {
    diag *items; /* owned */
    size_t n, cap;
    size_t errors, warnings; /* counted even when not kept */
    size_t dropped;          /* not kept: over the limit or out of memory */
} diag_list;

#define DIAG_LIST_INIT                                                                             \
    { NULL, 0, 0, 0, 0, 0 }

/* A diagnostic the same as one kept (file, position, level and message) is
 * counted but not kept twice: the instances of a fan-out step share their
 * source text, so one mistake in it is shown once. */
void diag_add(diag_list *d, diag_level level, const char *file, unsigned line, unsigned col,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void diag_vadd(diag_list *d, diag_level level, const char *file, unsigned line, unsigned col,
               const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

/* Sorts by file (in first-seen order), line and column, then prints each as
 * "FILE:LINE:COL: error: MESSAGE" (or "FILE: error: ..." without a line). */
void diag_print(diag_list *d, FILE *out);

/* diag_print, with every secret replaced by *** in the files and messages:
 * a secret may stand in a path that could not be read. */
void diag_print_masked(diag_list *d, FILE *out, const char *const *secrets, size_t n_secrets);

/* Frees the messages and empties the list. */
void diag_clear(diag_list *d);

#endif
