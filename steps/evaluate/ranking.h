/* ranking.h - the retrieval metrics of the evaluate step, for one ranked
 * list against its relevance judgements (binary relevance):
 *   recall@k  the share of the relevant items found in the first k;
 *   RR@k      1 / the rank of the first relevant item in the first k, else
 *             0 (averaged over queries: MRR@k);
 *   nDCG@k    DCG@k / IDCG@k, DCG@k = sum over ranks i <= k holding a
 *             relevant item of 1 / log2(i + 1), IDCG@k the DCG of a perfect
 *             list (min(k, relevant) relevant items first), as in Jarvelin
 *             and Kekalainen (2002) and trec_eval's ndcg_cut. */
#ifndef SLUICE_STEPS_RANKING_H
#define SLUICE_STEPS_RANKING_H

#include <stddef.h>

typedef struct ranking_scores {
    double recall, reciprocal_rank, ndcg;
} ranking_scores;

/* hits[i] is nonzero when the item ranked i + 1 is relevant (n items, best
 * first; a list may be shorter than k); relevant is the number of relevant
 * items there are. Returns 0, or -EINVAL when k or relevant is 0 or the
 * list holds more hits than relevant items. */
int ranking_score(const unsigned char *hits, size_t n, size_t relevant, size_t k,
                  ranking_scores *out);

#endif
