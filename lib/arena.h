/* arena.h - a bump allocator for data that lives and dies together.
 *
 * A loaded pipeline (its YAML tree, strings, values, steps) is allocated from
 * one arena and released with one arena_free(): no node has an owner of its
 * own, which keeps the loader's error paths free of partial clean-up. */
#ifndef SLUICE_CORE_ARENA_H
#define SLUICE_CORE_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
    arena_block *head; /* newest block first */
} arena;

#define ARENA_INIT                                                                                 \
    { NULL }

/* Returns n bytes aligned for any object, or NULL when memory is exhausted.
 * The memory is valid until arena_free(). */
void *arena_alloc(arena *a, size_t n);

/* Like arena_alloc() but zero-filled; n * size is checked for overflow. */
void *arena_calloc(arena *a, size_t n, size_t size);

/* Copies len bytes of s and a terminating NUL into the arena; NULL on OOM. */
char *arena_strndup(arena *a, const char *s, size_t len);
char *arena_strdup(arena *a, const char *s);

/* printf into the arena; NULL on OOM. */
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Releases every block; the arena may be reused afterwards. */
void arena_free(arena *a);

#endif
