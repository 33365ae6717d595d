/* strtab.h - interned strings: each distinct string gets a small integer
 * id, in the order first seen, and is found again by its bytes. The
 * payload tables and the term dictionaries of the retrieval index and of
 * the built-in embedder are strtabs. */
#ifndef SLUICE_STEPS_STRTAB_H
#define SLUICE_STEPS_STRTAB_H

#include <stddef.h>
#include <stdint.h>

#define STRTAB_NONE UINT32_MAX

/* id -> string and string -> id. Zero-initialise to start empty. The
 * strings are the table's malloc'ed copies, NUL-terminated, so s[id] may be
 * used as a C string (when the bytes hold no NUL). */
typedef struct strtab {
    char **s;
    uint32_t *len;
    size_t n, cap;
    uint32_t *slots; /* id + 1, 0 empty */
    size_t nslots;   /* a power of two, or 0 */
} strtab;

/* Frees the copies and leaves t empty (reusable). */
void strtab_free(strtab *t);
/* The id of s[0, len), or STRTAB_NONE. */
uint32_t strtab_find(const strtab *t, const char *s, size_t len);
/* The id of s[0, len) in *id, added when new. 0 or -ENOMEM (t unchanged). */
int strtab_intern(strtab *t, const char *s, size_t len, uint32_t *id);

#endif
