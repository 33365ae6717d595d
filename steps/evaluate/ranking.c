#include "ranking.h"

#include <errno.h>
#include <math.h>

int ranking_score(const unsigned char *hits, size_t n, size_t relevant, size_t k,
                  ranking_scores *out) {
    if (k == 0 || relevant == 0)
        return -EINVAL;
    size_t found = 0, all_hits = 0;
    double dcg = 0, ideal = 0;
    out->reciprocal_rank = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hits[i])
            continue;
        all_hits++;
        if (i >= k)
            continue;
        found++;
        dcg += 1.0 / log2((double)i + 2.0);
        if (out->reciprocal_rank == 0)
            out->reciprocal_rank = 1.0 / ((double)i + 1.0);
    }
    if (all_hits > relevant)
        return -EINVAL;
    for (size_t i = 0; i < k && i < relevant; i++)
        ideal += 1.0 / log2((double)i + 2.0);
    out->recall = (double)found / (double)relevant;
    out->ndcg = dcg / ideal;
    return 0;
}
