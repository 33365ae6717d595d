/* suggest.h - "did you mean" for misspelt keys and names. */
#ifndef SLUICE_CORE_SUGGEST_H
#define SLUICE_CORE_SUGGEST_H

#include <stddef.h>

/* Returns the candidate closest to word by edit distance when it is close
 * enough to be a likely typo (at most 2 edits, and fewer edits than the word has letters),
 * else NULL. The result is one of the candidates (borrowed). */
const char *suggest_closest(const char *word, const char *const *candidates, size_t n);

#endif
