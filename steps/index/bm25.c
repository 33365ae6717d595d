/* bm25.c - the inverted index over the chunk texts and Okapi BM25. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"
#include "text.h"

typedef struct doc_terms {
    search_index *ix;
    uint32_t *ids;
    size_t n, cap;
} doc_terms;

static int intern_token(const char *tok, size_t len, void *ctx) {
    doc_terms *d = ctx;
    search_index *ix = d->ix;
    /* Room for a new term's postings first, so every term has a slot. */
    if (ix->terms.n + 1 > ix->post_cap) {
        size_t nc = ix->post_cap ? ix->post_cap * 2 : 64;
        idx_postings *np = realloc(ix->post, nc * sizeof(*np));
        if (!np)
            return -ENOMEM;
        memset(np + ix->post_cap, 0, (nc - ix->post_cap) * sizeof(*np));
        ix->post = np;
        ix->post_cap = nc;
    }
    uint32_t id;
    int rc = strtab_intern(&ix->terms, tok, len, &id);
    if (rc)
        return rc;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        uint32_t *ni = realloc(d->ids, nc * sizeof(*ni));
        if (!ni)
            return -ENOMEM;
        d->ids = ni;
        d->cap = nc;
    }
    d->ids[d->n++] = id;
    return 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int idx_bm25_add(search_index *ix, uint32_t row, const char *text) {
    doc_terms d = {.ix = ix};
    int rc = text_each_term(text, strlen(text), intern_token, &d);
    if (!rc && d.n > UINT32_MAX)
        rc = -ENOMEM;
    if (!rc) {
        if (d.n > 1)
            qsort(d.ids, d.n, sizeof(*d.ids), cmp_u32);
        for (size_t i = 0; i < d.n && !rc;) {
            size_t j = i;
            while (j < d.n && d.ids[j] == d.ids[i])
                j++;
            idx_postings *p = &ix->post[d.ids[i]];
            if (p->n == p->cap) {
                size_t nc = p->cap ? p->cap * 2 : 4;
                uint32_t *nr = realloc(p->row, nc * sizeof(*nr));
                if (!nr) {
                    rc = -ENOMEM;
                    break;
                }
                p->row = nr;
                uint32_t *nt = realloc(p->tf, nc * sizeof(*nt));
                if (!nt) {
                    rc = -ENOMEM;
                    break;
                }
                p->tf = nt;
                p->cap = nc;
            }
            p->row[p->n] = row;
            p->tf[p->n] = (uint32_t)(j - i);
            p->n++;
            i = j;
        }
    }
    if (!rc) {
        ix->doclen[row] = (uint32_t)d.n;
        ix->total_len += d.n;
    } else {
        /* Take back the postings this row got, so the index stays whole. */
        for (size_t i = 0; i < d.n; i++) {
            idx_postings *p = ix->post ? &ix->post[d.ids[i]] : NULL;
            if (p && p->n && p->row[p->n - 1] == row)
                p->n--;
        }
    }
    free(d.ids);
    return rc;
}

typedef struct query_terms {
    const search_index *ix;
    uint32_t ids[256]; /* distinct known terms; more are ignored */
    size_t n;
} query_terms;

static int find_token(const char *tok, size_t len, void *ctx) {
    query_terms *q = ctx;
    uint32_t id = strtab_find(&q->ix->terms, tok, len);
    if (id == IDX_NONE)
        return 0;
    for (size_t i = 0; i < q->n; i++)
        if (q->ids[i] == id)
            return 0;
    if (q->n < sizeof(q->ids) / sizeof(q->ids[0]))
        q->ids[q->n++] = id;
    return 0;
}

int index_bm25_search(const search_index *ix, const char *query, size_t k,
                      const index_filter *filter, uint32_t *out_ids, float *out_scores,
                      size_t *out_count, char *err, size_t errlen) {
    if (!ix || !query || !out_ids || !out_scores || !out_count)
        return errbuf_set(err, errlen, -EINVAL, "index_bm25_search: a required argument is NULL");
    if (k == 0)
        return errbuf_set(err, errlen, -EINVAL, "index_bm25_search: k must be at least 1");
    *out_count = 0;
    uint32_t fa, fc;
    if (idx_filter_resolve(ix, filter, &fa, &fc) || ix->n == 0)
        return 0;
    query_terms q = {.ix = ix};
    text_each_term(query, strlen(query), find_token, &q); /* find_token never fails */
    if (q.n == 0)
        return 0;
    double *acc = calloc(ix->n, sizeof(*acc));
    uint32_t *touched = malloc(ix->n * sizeof(*touched));
    if (!acc || !touched) {
        free(acc);
        free(touched);
        return errbuf_set(err, errlen, -ENOMEM, "index_bm25_search: out of memory");
    }
    size_t nt = 0;
    double N = (double)ix->n, avgdl = (double)ix->total_len / N;
    double k1 = ix->bm25.k1, b = ix->bm25.b;
    for (size_t t = 0; t < q.n; t++) {
        const idx_postings *p = &ix->post[q.ids[t]];
        double df = (double)p->n;
        double idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
        for (size_t i = 0; i < p->n; i++) {
            uint32_t r = p->row[i];
            double f = p->tf[i];
            double norm = avgdl > 0 ? (double)ix->doclen[r] / avgdl : 0;
            double s = idf * f * (k1 + 1) / (f + k1 * (1 - b + b * norm));
            if (acc[r] == 0)
                touched[nt++] = r;
            acc[r] += s;
        }
    }
    idx_topk h = {.k = k, .score = out_scores, .id = out_ids};
    for (size_t i = 0; i < nt; i++) {
        uint32_t r = touched[i];
        if ((fa != IDX_NONE && ix->author[r] != fa) || (fc != IDX_NONE && ix->category[r] != fc) ||
            !(acc[r] > 0))
            continue;
        idx_topk_push(&h, (float)acc[r], r);
    }
    *out_count = idx_topk_finish(&h);
    free(acc);
    free(touched);
    return 0;
}
