/* mask.h - secrets replaced by *** in text sluice prints or stores, as CI
 * systems mask theirs. */
#ifndef SLUICE_CORE_MASK_H
#define SLUICE_CORE_MASK_H

#include <stddef.h>

#include "buf.h"

/* Values shorter than this are left as they are: masking every "a" or
 * "42" in a message would make it unreadable and hide nothing. */
#define MASK_MIN_LEN 3

/* text with every occurrence of each secret replaced by ***. Returns text
 * itself when it holds none, else b's text (b starts empty; the caller
 * frees it with buf_free). */
const char *mask_secrets(const char *const *secrets, size_t n, const char *text, buf *b);

#endif
