/* index_internal.h - what the index's files share; not for callers. */
#ifndef SLUICE_STEPS_INDEX_INTERNAL_H
#define SLUICE_STEPS_INDEX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"
#include "index.h"
#include "strtab.h"

#define IDX_NONE STRTAB_NONE

/* One term's postings: rows in increasing order and the term's count in each. */
typedef struct idx_postings {
    uint32_t *row, *tf;
    size_t n, cap;
} idx_postings;

struct search_index {
    size_t dim, n, cap;
    float *vec; /* n*dim; heap (cap rows) or inside map */
    void *map;  /* index_load's mapping, or NULL */
    size_t map_len;
    uint32_t *author, *category, *docid; /* per row, ids into the tables */
    char **text;                         /* per row, malloc'ed */
    strtab authors, categories, docids;
    /* BM25 */
    strtab terms;
    idx_postings *post; /* terms.n of them, post_cap allocated */
    size_t post_cap;
    uint32_t *doclen; /* per row, in tokens */
    uint64_t total_len;
    index_bm25_params bm25;
};

/* Grows the per-row arrays to hold at least `rows`. 0 or -ENOMEM. */
int idx_reserve_rows(search_index *ix, size_t rows, int with_vectors);

/* Resolves a filter: *author / *category get the id to match or IDX_NONE
 * for any. Returns 0, or 1 when a named value is unknown (nothing passes). */
int idx_filter_resolve(const search_index *ix, const index_filter *f, uint32_t *author,
                       uint32_t *category);

/* Adds row `row`'s text to the postings (row == ix->n before the caller
 * counts it). 0 or -ENOMEM; on error the postings may hold part of the
 * row, so the caller treats it as fatal for the index (add) or the load. */
int idx_bm25_add(search_index *ix, uint32_t row, const char *text);

/* Top-k selection: a heap of at most k (score, id), the worst at the top;
 * a candidate beats another with a higher score, or an equal one and a
 * lower id. */
typedef struct idx_topk {
    size_t k, n;
    float *score;
    uint32_t *id;
} idx_topk;

static inline int idx_better(float s1, uint32_t i1, float s2, uint32_t i2) {
    return s1 > s2 || (s1 == s2 && i1 < i2);
}
void idx_topk_push(idx_topk *h, float s, uint32_t id);
/* Sorts the heap best first into its arrays; returns the count. */
size_t idx_topk_finish(idx_topk *h);

#endif
