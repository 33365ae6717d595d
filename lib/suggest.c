#include "suggest.h"

#include <string.h>

#define SUGGEST_MAX_LEN 64

static size_t min3(size_t a, size_t b, size_t c) {
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* Edit distance counting a swap of neighbours as one edit (optimal string
 * alignment), the commonest typo; three rows suffice. Words past
 * SUGGEST_MAX_LEN are never typos worth suggesting for. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
    size_t rows[3][SUGGEST_MAX_LEN + 1];
    size_t *older = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            cur[j] = min3(prev[j - 1] + (a[i - 1] != b[j - 1]), prev[j] + 1, cur[j - 1] + 1);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                older[j - 2] + 1 < cur[j])
                cur[j] = older[j - 2] + 1;
        }
        size_t *t = older;
        older = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *suggest_closest(const char *word, const char *const *candidates, size_t n) {
    size_t lw = strlen(word);
    if (lw == 0 || lw > SUGGEST_MAX_LEN)
        return NULL;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t lc = strlen(candidates[i]);
        if (lc > SUGGEST_MAX_LEN)
            continue;
        size_t d = edit_distance(word, lw, candidates[i], lc);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (best_d == 0 || best_d > 2 || best_d >= lw)
        return NULL;
    return best;
}
