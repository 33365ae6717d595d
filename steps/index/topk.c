/* topk.c - the bounded heap that keeps the best k of a scan. */
#include "index_internal.h"

static void swap(idx_topk *h, size_t a, size_t b) {
    float s = h->score[a];
    uint32_t i = h->id[a];
    h->score[a] = h->score[b];
    h->id[a] = h->id[b];
    h->score[b] = s;
    h->id[b] = i;
}

/* The worse of two heap slots is nearer the top. */
static int worse(const idx_topk *h, size_t a, size_t b) {
    return idx_better(h->score[b], h->id[b], h->score[a], h->id[a]);
}

static void sift_down(idx_topk *h, size_t i, size_t n) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(h, l, w))
            w = l;
        if (r < n && worse(h, r, w))
            w = r;
        if (w == i)
            return;
        swap(h, i, w);
        i = w;
    }
}

void idx_topk_push(idx_topk *h, float s, uint32_t id) {
    if (h->n < h->k) {
        size_t i = h->n++;
        h->score[i] = s;
        h->id[i] = id;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(h, i, p))
                break;
            swap(h, i, p);
            i = p;
        }
        return;
    }
    if (!idx_better(s, id, h->score[0], h->id[0]))
        return;
    h->score[0] = s;
    h->id[0] = id;
    sift_down(h, 0, h->n);
}

size_t idx_topk_finish(idx_topk *h) {
    /* Heap sort: moving the worst to the end leaves the best first. */
    for (size_t end = h->n; end > 1; end--) {
        swap(h, 0, end - 1);
        sift_down(h, 0, end - 1);
    }
    return h->n;
}
