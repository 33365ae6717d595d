/* dedupe.h - exact and near-duplicate detection over documents' texts.
 *
 * Exact: the SHA-256 of the text. Near: MinHash signatures (128 hashes of
 * the text's 5-word shingles, case and . , ! ? ignored) estimating Jaccard
 * similarity, with banded
 * locality-sensitive hashing (32 bands of 4) to find candidates without
 * comparing every pair; a candidate is a duplicate when its estimated
 * similarity reaches the threshold. */
#ifndef SLUICE_STEPS_DEDUPE_H
#define SLUICE_STEPS_DEDUPE_H

#include <stddef.h>

typedef struct dedupe dedupe;

/* near: 0 for exact duplicates only, else near-duplicates at threshold
 * (0 < threshold <= 1). NULL on OOM. */
dedupe *dedupe_new(int near, double threshold);
void dedupe_free(dedupe *d);

/* 1 when text duplicates one seen before (it is then not remembered), 0
 * when it is new (and remembered), -ENOMEM. */
int dedupe_seen(dedupe *d, const char *text, size_t len);

/* The estimated Jaccard similarity of two texts' shingles (for tests). */
double dedupe_similarity(const char *a, size_t alen, const char *b, size_t blen);

#endif
