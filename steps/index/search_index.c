/* search_index.c - rows, payload interning and the exact dense search. */
#include "index.h"

#include <cblas.h>
#include <sluice/artifacts.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_internal.h"

/* Rows scored per BLAS call, and queries per sgemm: the score block is at
 * most BLOCK_ROWS * BLOCK_QUERIES floats (4 MiB). */
#define BLOCK_ROWS 4096
#define BLOCK_QUERIES 256

/* ---- the index ---- */

int index_new(size_t dim, search_index **out, char *err, size_t errlen) {
    if (!out)
        return errbuf_set(err, errlen, -EINVAL, "index_new: out is NULL");
    if (dim < 1 || dim > 65536)
        return errbuf_set(err, errlen, -EINVAL, "index_new: dimension %zu is not in 1..65536", dim);
    search_index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return errbuf_set(err, errlen, -ENOMEM, "index_new: out of memory");
    ix->dim = dim;
    ix->bm25.k1 = 1.2;
    ix->bm25.b = 0.75;
    *out = ix;
    return 0;
}

void index_free(search_index *ix) {
    if (!ix)
        return;
    if (ix->map)
        sl_file_unmap(ix->map, ix->map_len);
    else
        free(ix->vec);
    for (size_t i = 0; i < ix->n; i++)
        free(ix->text[i]);
    free(ix->text);
    free(ix->author);
    free(ix->category);
    free(ix->docid);
    free(ix->doclen);
    strtab_free(&ix->authors);
    strtab_free(&ix->categories);
    strtab_free(&ix->docids);
    for (size_t i = 0; ix->post && i < ix->terms.n; i++) {
        free(ix->post[i].row);
        free(ix->post[i].tf);
    }
    free(ix->post);
    strtab_free(&ix->terms);
    free(ix);
}

size_t index_size(const search_index *ix) { return ix ? ix->n : 0; }
size_t index_dim(const search_index *ix) { return ix ? ix->dim : 0; }
int index_set_bm25(search_index *ix, index_bm25_params p) {
    if (!ix || !(p.k1 >= 0) || !(p.b >= 0 && p.b <= 1))
        return -EINVAL;
    ix->bm25 = p;
    return 0;
}

int index_get(const search_index *ix, size_t id, index_row *row) {
    if (!ix || !row || id >= ix->n)
        return -EINVAL;
    row->vector = ix->vec + id * ix->dim;
    row->text = ix->text[id];
    row->author = ix->authors.s[ix->author[id]];
    row->category = ix->categories.s[ix->category[id]];
    row->document_id = ix->docids.s[ix->docid[id]];
    return 0;
}

#define GROW(p, n)                                                                                 \
    do {                                                                                           \
        void *np_ = realloc((p), (n) * sizeof(*(p)));                                              \
        if (!np_)                                                                                  \
            return -ENOMEM;                                                                        \
        (p) = np_;                                                                                 \
    } while (0)

int idx_reserve_rows(search_index *ix, size_t rows, int with_vectors) {
    if (rows <= ix->cap)
        return 0;
    size_t nc = ix->cap ? ix->cap : 64;
    while (nc < rows)
        nc *= 2;
    if (nc > UINT32_MAX - 1 || nc > SIZE_MAX / sizeof(float) / ix->dim)
        return -ENOMEM;
    if (with_vectors)
        GROW(ix->vec, nc * ix->dim);
    GROW(ix->author, nc);
    GROW(ix->category, nc);
    GROW(ix->docid, nc);
    GROW(ix->text, nc);
    GROW(ix->doclen, nc);
    ix->cap = nc;
    return 0;
}

int index_add(search_index *ix, const float *vector, size_t dim, const char *text,
              const char *author, const char *category, const char *document_id, char *err,
              size_t errlen) {
    if (!ix || !vector)
        return errbuf_set(err, errlen, -EINVAL, "index_add: index or vector is NULL");
    if (ix->map)
        return errbuf_set(err, errlen, -EPERM, "index_add: a loaded index is read-only");
    if (dim != ix->dim)
        return errbuf_set(err, errlen, -EINVAL,
                          "index_add: vector has %zu components, the index %zu", dim, ix->dim);
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(vector[i]))
            return errbuf_set(err, errlen, -EINVAL, "index_add: component %zu is not finite", i);
    if (ix->n >= UINT32_MAX - 1)
        return errbuf_set(err, errlen, -ENOMEM, "index_add: too many rows");
    int rc = idx_reserve_rows(ix, ix->n + 1, 1);
    uint32_t a, c, d;
    const char *t = text ? text : "";
    const char *au = author ? author : "", *ca = category ? category : "";
    const char *di = document_id ? document_id : "";
    if (!rc)
        rc = strtab_intern(&ix->authors, au, strlen(au), &a);
    if (!rc)
        rc = strtab_intern(&ix->categories, ca, strlen(ca), &c);
    if (!rc)
        rc = strtab_intern(&ix->docids, di, strlen(di), &d);
    char *copy = NULL;
    if (!rc) {
        copy = strdup(t);
        if (!copy)
            rc = -ENOMEM;
    }
    /* Interned payload strings stay even if this add fails: harmless. */
    if (!rc)
        rc = idx_bm25_add(ix, (uint32_t)ix->n, t);
    if (rc) {
        free(copy);
        return errbuf_set(err, errlen, rc, "index_add: out of memory");
    }
    size_t r = ix->n;
    memcpy(ix->vec + r * dim, vector, dim * sizeof(float));
    ix->author[r] = a;
    ix->category[r] = c;
    ix->docid[r] = d;
    ix->text[r] = copy;
    ix->n++;
    return 0;
}

int idx_filter_resolve(const search_index *ix, const index_filter *f, uint32_t *author,
                       uint32_t *category) {
    *author = *category = IDX_NONE;
    if (!f)
        return 0;
    if (f->author) {
        *author = strtab_find(&ix->authors, f->author, strlen(f->author));
        if (*author == IDX_NONE)
            return 1;
    }
    if (f->category) {
        *category = strtab_find(&ix->categories, f->category, strlen(f->category));
        if (*category == IDX_NONE)
            return 1;
    }
    return 0;
}

/* ---- dense search ---- */

int index_search(const search_index *ix, const float *queries, size_t q, size_t dim, size_t k,
                 const index_filter *filter, uint32_t *out_ids, float *out_scores,
                 size_t *out_counts, char *err, size_t errlen) {
    if (!ix || !queries || !out_ids || !out_scores || !out_counts)
        return errbuf_set(err, errlen, -EINVAL, "index_search: a required argument is NULL");
    if (k == 0)
        return errbuf_set(err, errlen, -EINVAL, "index_search: k must be at least 1");
    if (q == 0)
        return errbuf_set(err, errlen, -EINVAL, "index_search: no queries");
    if (dim != ix->dim)
        return errbuf_set(err, errlen, -EINVAL,
                          "index_search: queries have %zu components, the index %zu", dim, ix->dim);
    if (q > SIZE_MAX / dim || k > SIZE_MAX / sizeof(float) / q)
        return errbuf_set(err, errlen, -EINVAL, "index_search: q * k or q * dim overflows");
    for (size_t i = 0; i < q * dim; i++)
        if (!isfinite(queries[i]))
            return errbuf_set(err, errlen, -EINVAL,
                              "index_search: query %zu component %zu is not finite", i / dim,
                              i % dim);
    size_t kk = k < ix->n ? k : ix->n; /* heap size */
    for (size_t i = 0; i < q * k; i++) {
        out_ids[i] = IDX_NONE;
        out_scores[i] = -INFINITY;
    }
    uint32_t fa, fc;
    if (idx_filter_resolve(ix, filter, &fa, &fc) || kk == 0) {
        memset(out_counts, 0, q * sizeof(*out_counts));
        return 0;
    }
    int filtered = fa != IDX_NONE || fc != IDX_NONE;
    size_t qb = q < BLOCK_QUERIES ? q : BLOCK_QUERIES;
    size_t rb = ix->n < BLOCK_ROWS ? ix->n : BLOCK_ROWS;
    float *scores = malloc(rb * qb * sizeof(float));
    idx_topk *heaps = calloc(qb, sizeof(*heaps));
    if (!scores || !heaps) {
        free(scores);
        free(heaps);
        return errbuf_set(err, errlen, -ENOMEM, "index_search: out of memory");
    }
    const int d = (int)dim;
    for (size_t q0 = 0; q0 < q; q0 += qb) {
        size_t nq = q - q0 < qb ? q - q0 : qb;
        /* Each query's heap lives in its own slots of the output. */
        for (size_t j = 0; j < nq; j++) {
            heaps[j].k = kk;
            heaps[j].n = 0;
            heaps[j].score = out_scores + (q0 + j) * k;
            heaps[j].id = out_ids + (q0 + j) * k;
        }
        const float *Q = queries + q0 * dim;
        for (size_t r0 = 0; r0 < ix->n; r0 += rb) {
            size_t nr = ix->n - r0 < rb ? ix->n - r0 : rb;
            const float *V = ix->vec + r0 * dim;
            if (nq == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, d, 1.0f, V, d, Q, 1, 0.0f, scores,
                            1);
            else /* scores[r][j] = V[r] . Q[j] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nq, d, 1.0f, V,
                            d, Q, d, 0.0f, scores, (int)nq);
            for (size_t r = 0; r < nr; r++) {
                uint32_t row = (uint32_t)(r0 + r);
                if (filtered && ((fa != IDX_NONE && ix->author[row] != fa) ||
                                 (fc != IDX_NONE && ix->category[row] != fc)))
                    continue;
                const float *s = scores + r * nq;
                for (size_t j = 0; j < nq; j++) {
                    idx_topk *h = &heaps[j];
                    if (h->n == h->k && !idx_better(s[j], row, h->score[0], h->id[0]))
                        continue; /* the common case, without a call */
                    idx_topk_push(h, s[j], row);
                }
            }
        }
        for (size_t j = 0; j < nq; j++) {
            size_t got = idx_topk_finish(&heaps[j]);
            out_counts[q0 + j] = got;
            for (size_t i = got; i < k; i++) {
                heaps[j].id[i] = IDX_NONE;
                heaps[j].score[i] = -INFINITY;
            }
        }
    }
    free(scores);
    free(heaps);
    return 0;
}

/* ---- hybrid ---- */

int index_hybrid_search(const search_index *ix, const float *vector, size_t dim, const char *text,
                        size_t k, size_t depth, const index_filter *filter, uint32_t *out_ids,
                        float *out_scores, size_t *out_count, char *err, size_t errlen) {
    if (!ix || !out_ids || !out_scores || !out_count)
        return errbuf_set(err, errlen, -EINVAL, "index_hybrid_search: a required argument is NULL");
    if (k == 0)
        return errbuf_set(err, errlen, -EINVAL, "index_hybrid_search: k must be at least 1");
    if (depth == 0)
        depth = k > 100 ? k : 100;
    if (depth > SIZE_MAX / 2 / sizeof(float))
        return errbuf_set(err, errlen, -EINVAL, "index_hybrid_search: depth too large");
    uint32_t *ids = malloc(2 * depth * sizeof(*ids));
    float *sc = malloc(2 * depth * sizeof(*sc));
    if (!ids || !sc) {
        free(ids);
        free(sc);
        return errbuf_set(err, errlen, -ENOMEM, "index_hybrid_search: out of memory");
    }
    const uint32_t *lists[2];
    size_t lens[2], nl = 0;
    int rc = 0;
    if (vector) {
        size_t got = 0;
        rc = index_search(ix, vector, 1, dim, depth, filter, ids, sc, &got, err, errlen);
        lists[nl] = ids;
        lens[nl++] = got;
    }
    if (!rc && text) {
        size_t got = 0;
        rc = index_bm25_search(ix, text, depth, filter, ids + depth, sc + depth, &got, err, errlen);
        lists[nl] = ids + depth;
        lens[nl++] = got;
    }
    if (!rc)
        rc = index_rrf(lists, lens, nl, 60.0, k, out_ids, out_scores, out_count, err, errlen);
    free(ids);
    free(sc);
    return rc;
}
