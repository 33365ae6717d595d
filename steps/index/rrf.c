/* rrf.c - Reciprocal Rank Fusion of ranked lists. */
#include <errno.h>
#include <stdlib.h>

#include "index_internal.h"

typedef struct entry {
    uint32_t id;
    uint32_t list;
    size_t rank; /* from 1 */
} entry;

static int by_id_list_rank(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    if (x->list != y->list)
        return x->list < y->list ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

int index_rrf(const uint32_t *const *lists, const size_t *lens, size_t nlists, double rrf_k,
              size_t k, uint32_t *out_ids, float *out_scores, size_t *out_count, char *err,
              size_t errlen) {
    if ((nlists && (!lists || !lens)) || !out_ids || !out_scores || !out_count)
        return errbuf_set(err, errlen, -EINVAL, "index_rrf: a required argument is NULL");
    if (k == 0)
        return errbuf_set(err, errlen, -EINVAL, "index_rrf: k must be at least 1");
    if (!(rrf_k >= 0))
        return errbuf_set(err, errlen, -EINVAL, "index_rrf: rrf_k must be >= 0");
    size_t total = 0;
    for (size_t l = 0; l < nlists; l++) {
        if (lens[l] && !lists[l])
            return errbuf_set(err, errlen, -EINVAL, "index_rrf: list %zu is NULL", l);
        total += lens[l];
    }
    *out_count = 0;
    if (total == 0)
        return 0;
    entry *e = malloc(total * sizeof(*e));
    if (!e)
        return errbuf_set(err, errlen, -ENOMEM, "index_rrf: out of memory");
    size_t n = 0;
    for (size_t l = 0; l < nlists; l++)
        for (size_t i = 0; i < lens[l]; i++)
            e[n++] = (entry){lists[l][i], (uint32_t)l, i + 1};
    qsort(e, n, sizeof(*e), by_id_list_rank);
    idx_topk h = {.k = k, .score = out_scores, .id = out_ids};
    for (size_t i = 0; i < n;) {
        double s = 0;
        size_t j = i;
        for (; j < n && e[j].id == e[i].id; j++)
            if (j == i || e[j].list != e[j - 1].list) /* first rank in each list */
                s += 1.0 / (rrf_k + (double)e[j].rank);
        idx_topk_push(&h, (float)s, e[i].id);
        i = j;
    }
    *out_count = idx_topk_finish(&h);
    free(e);
    return 0;
}
