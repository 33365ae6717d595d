/* tfidf.c - the built-in embedder: TF-IDF and a randomised truncated SVD. */
#include "tfidf.h"

#include <sluice/artifacts.h>
#include <bson/bson.h>
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "lapack.h"
#include "strtab.h"
#include "text.h"

/* Extra sketch columns beyond the components kept: they absorb the tail of
 * the spectrum so the kept ones converge (Halko et al. suggest 5 to 10). */
#define OVERSAMPLE 10

struct tfidf_model {
    strtab vocab;
    float *idf;  /* vocab.n */
    float *comp; /* vocab.n x dim, row-major */
    size_t dim, documents, min_df;
    double explained;
};

tfidf_params tfidf_defaults(void) { return (tfidf_params){256, 1, 50000, 5, 42}; }

void tfidf_free(tfidf_model *m) {
    if (!m)
        return;
    strtab_free(&m->vocab);
    free(m->idf);
    free(m->comp);
    free(m);
}

size_t tfidf_dim(const tfidf_model *m) { return m->dim; }
size_t tfidf_terms(const tfidf_model *m) { return m->vocab.n; }
double tfidf_explained_variance(const tfidf_model *m) { return m->explained; }

/* ---- term counts -------------------------------------------------------- */

/* The distinct terms of one text, with their counts: a dense counter per
 * term id, and the ids touched, so that clearing costs the text's length
 * and not the vocabulary's. */
typedef struct bag {
    uint32_t *count; /* per term id */
    uint32_t *ids;   /* the ids with count > 0 */
    size_t n, cap, terms_cap;
} bag;

static void bag_free(bag *b) {
    free(b->count);
    free(b->ids);
}

static void bag_clear(bag *b) {
    for (size_t i = 0; i < b->n; i++)
        b->count[b->ids[i]] = 0;
    b->n = 0;
}

static int bag_add(bag *b, uint32_t id) {
    if (id >= b->terms_cap) {
        size_t nc = b->terms_cap ? b->terms_cap : 1024;
        while (nc <= id)
            nc *= 2;
        uint32_t *grown = realloc(b->count, nc * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        memset(grown + b->terms_cap, 0, (nc - b->terms_cap) * sizeof(*grown));
        b->count = grown;
        b->terms_cap = nc;
    }
    if (b->count[id]++ == 0) {
        if (b->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 256;
            uint32_t *grown = realloc(b->ids, nc * sizeof(*grown));
            if (!grown) {
                b->count[id] = 0;
                return -ENOMEM;
            }
            b->ids = grown;
            b->cap = nc;
        }
        b->ids[b->n++] = id;
    }
    return 0;
}

/* Fitting's first pass: every term, interned. */
static int add_any_term(const char *term, size_t len, void *ctx) {
    void **c = ctx;
    uint32_t id;
    int rc = strtab_intern(c[0], term, len, &id);
    return rc ? rc : bag_add(c[1], id);
}

/* Later passes: the vocabulary's terms only. */
static int add_known_term(const char *term, size_t len, void *ctx) {
    void **c = ctx;
    uint32_t id = strtab_find(c[0], term, len);
    return id == STRTAB_NONE ? 0 : bag_add(c[1], id);
}

/* ---- the vocabulary ----------------------------------------------------- */

/* A candidate term, for ranking by document frequency, then bytes. */
typedef struct ranked {
    uint32_t df, len;
    const char *s;
    uint32_t id;
} ranked;

static int by_df_then_bytes(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->df != y->df)
        return x->df > y->df ? -1 : 1;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ---- the TF-IDF matrix -------------------------------------------------- */

/* N x V in compressed rows; every non-empty row has unit L2 norm. */
typedef struct csr {
    size_t rows, cols, nnz, cap;
    size_t *start; /* rows + 1 */
    uint32_t *col;
    double *val;
} csr;

static void csr_free(csr *x) {
    free(x->start);
    free(x->col);
    free(x->val);
}

/* The weighted, normalised row of the bag b into w (b->n values, in the
 * order of b->ids). Returns the row's norm before normalising. */
static double weigh(const bag *b, const float *idf, double *w) {
    double norm = 0;
    for (size_t i = 0; i < b->n; i++) {
        w[i] = (1.0 + log((double)b->count[b->ids[i]])) * idf[b->ids[i]];
        norm += w[i] * w[i];
    }
    norm = sqrt(norm);
    for (size_t i = 0; norm > 0 && i < b->n; i++)
        w[i] /= norm;
    return norm;
}

static int csr_append_row(csr *x, const bag *b, const float *idf) {
    if (b->n == 0) { /* no known term: an empty row (and no NULL to memcpy) */
        x->start[++x->rows] = x->nnz;
        return 0;
    }
    if (x->nnz + b->n > x->cap) {
        size_t nc = x->cap ? x->cap : 4096;
        while (nc < x->nnz + b->n)
            nc *= 2;
        uint32_t *col = realloc(x->col, nc * sizeof(*col));
        if (col)
            x->col = col;
        double *val = col ? realloc(x->val, nc * sizeof(*val)) : NULL;
        if (!val)
            return -ENOMEM;
        x->val = val;
        x->cap = nc;
    }
    weigh(b, idf, x->val + x->nnz);
    memcpy(x->col + x->nnz, b->ids, b->n * sizeof(*b->ids));
    x->nnz += b->n;
    x->start[++x->rows] = x->nnz;
    return 0;
}

/* Z (rows x l) = X Q, Q being cols x l; both row-major. */
static void mul_x(const csr *x, const double *q, size_t l, double *z) {
    memset(z, 0, x->rows * l * sizeof(*z));
    for (size_t i = 0; i < x->rows; i++)
        for (size_t p = x->start[i]; p < x->start[i + 1]; p++)
            cblas_daxpy((int)l, x->val[p], q + (size_t)x->col[p] * l, 1, z + i * l, 1);
}

/* Y (cols x l) = X^T Z, Z being rows x l; both row-major. */
static void mul_xt(const csr *x, const double *z, size_t l, double *y) {
    memset(y, 0, x->cols * l * sizeof(*y));
    for (size_t i = 0; i < x->rows; i++)
        for (size_t p = x->start[i]; p < x->start[i + 1]; p++)
            cblas_daxpy((int)l, x->val[p], z + i * l, 1, y + (size_t)x->col[p] * l, 1);
}

/* ---- the randomised SVD ------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal values by Box-Muller, from a seeded generator. */
static void gaussian(double *out, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix64(&s) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
        double u2 = (double)(splitmix64(&s) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        out[i] = r * cos(2 * M_PI * u2);
        if (i + 1 < n)
            out[i + 1] = r * sin(2 * M_PI * u2);
    }
}

/* Replaces the m x l row-major matrix a (m >= l) with an orthonormal basis
 * of its columns, through LAPACK's Householder QR. LAPACK is column-major,
 * and a row-major m x l matrix is a column-major l x m one, hence the
 * transposes through tmp (m * l doubles). */
static int orthonormalize(double *a, size_t m, size_t l, double *tmp, double *tau, char *err,
                          size_t err_size) {
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < l; j++)
            tmp[j * m + i] = a[i * l + j];
    int im = (int)m, il = (int)l, info = 0, lwork = -1;
    double query;
    dgeqrf_(&im, &il, tmp, &im, tau, &query, &lwork, &info);
    lwork = (int)query;
    double q2;
    int lwork2 = -1;
    dorgqr_(&im, &il, &il, tmp, &im, tau, &q2, &lwork2, &info);
    if ((int)q2 > lwork)
        lwork = (int)q2;
    double *work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(*work));
    if (!work)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory for the QR factorisation");
    dgeqrf_(&im, &il, tmp, &im, tau, work, &lwork, &info);
    if (info == 0)
        dorgqr_(&im, &il, &il, tmp, &im, tau, work, &lwork, &info);
    free(work);
    if (info != 0)
        return errbuf_set(err, err_size, -EIO, "LAPACK's QR factorisation failed (info %d)", info);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < l; j++)
            a[i * l + j] = tmp[j * m + i];
    return 0;
}

/* The same by Cholesky QR, twice (Fukaya et al. 2014): G = A^T A, G =
 * U^T U, A := A U^{-1}, all Level 3 BLAS, several times faster than
 * Householder on tall sketches. One pass is orthonormal to about
 * cond(A)^2 * eps, the second to eps, as long as G is numerically positive
 * definite, which the sketches here are (cond(A) is at most that of X once
 * the other sketch was orthonormalised); when it is not, Householder. */
static int orthonormalize_fast(double *a, size_t m, size_t l, double *tmp, double *tau, char *err,
                               size_t err_size) {
    int n = (int)l, info = 0;
    double *g = tau + l; /* l * l, after the l of tau */
    for (int pass = 0; pass < 2 && info == 0; pass++) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, (int)m, 1.0, a, n, 0.0, g, n);
        /* Row-major upper is column-major lower: LAPACK's L is our U^T. */
        dpotrf_("L", &n, g, &n, &info, 1);
        /* A rank-deficient sketch (duplicate texts, texts without a known
         * term) can still pass dpotrf on rounding-sized pivots, and would
         * come out far from orthonormal: the pivots' spread is about
         * 1 / cond(A), so past 1e6 Householder takes over. */
        double lo = INFINITY, hi = 0;
        for (size_t j = 0; info == 0 && j < l; j++) {
            lo = fmin(lo, g[j * l + j]);
            hi = fmax(hi, g[j * l + j]);
        }
        if (info == 0 && !(lo > 1e-6 * hi))
            info = -1;
        if (info == 0)
            cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)m,
                        n, 1.0, g, n, a, n);
    }
    return info == 0 ? 0 : orthonormalize(a, m, l, tmp, tau, err, err_size);
}

/* Eigenvalues (ascending) and eigenvectors (columns, column-major, in g) of
 * the symmetric l x l matrix g. */
static int symmetric_eigen(double *g, size_t l, double *w, char *err, size_t err_size) {
    int n = (int)l, info = 0, lwork = -1, liwork = -1, iquery;
    double query;
    dsyevd_("V", "U", &n, g, &n, w, &query, &lwork, &iquery, &liwork, &info, 1, 1);
    lwork = (int)query;
    liwork = iquery;
    double *work = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof(*work));
    int *iwork = malloc((size_t)(liwork > 1 ? liwork : 1) * sizeof(*iwork));
    if (work && iwork)
        dsyevd_("V", "U", &n, g, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (!work || !iwork)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory for the eigendecomposition");
    if (info != 0)
        return errbuf_set(err, err_size, -EIO, "LAPACK's eigendecomposition failed (info %d)",
                          info);
    return 0;
}

/* The top *d right singular vectors of x into comp (V x *d, row-major,
 * float), sketching with l >= *d columns. Directions whose singular value
 * is nil next to the largest (a corpus of rank below *d) are not
 * components: *d shrinks to the rank, at least 1. */
static int truncated_svd(const csr *x, size_t *dims, size_t l, const tfidf_params *p, float *comp,
                         double *explained, char *err, size_t err_size) {
    size_t d = *dims;
    size_t V = x->cols, N = x->rows, big = V > N ? V : N;
    double *y = malloc(V * l * sizeof(*y)), *z = malloc(N * l * sizeof(*z));
    double *tmp = malloc(big * l * sizeof(*tmp)), *tau = malloc((l + l * l) * sizeof(*tau));
    double *g = malloc(l * l * sizeof(*g)), *w = malloc(l * sizeof(*w));
    double *vecs = malloc(V * d * sizeof(*vecs)), *sel = malloc(l * d * sizeof(*sel));
    int rc = 0;
    if (!y || !z || !tmp || !tau || !g || !w || !vecs || !sel) {
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory for the SVD of a %zu x %zu matrix",
                        N, V);
        goto out;
    }
    /* Range of X^T: Y = X^T Omega, then power iterations Y = X^T (X Y).
     * Each round re-orthonormalises one of the two sketches, so that small
     * singular values survive in double precision: the one with fewer rows
     * (the QR costs rows * l^2), and Y, whatever its size, at the end. */
    int orth_z = N <= V;
    gaussian(z, N * l, p->seed);
    mul_xt(x, z, l, y);
    for (unsigned it = 0; it < p->power_iters; it++) {
        if (!orth_z && (rc = orthonormalize_fast(y, V, l, tmp, tau, err, err_size)))
            goto out;
        mul_x(x, y, l, z);
        if (orth_z && (rc = orthonormalize_fast(z, N, l, tmp, tau, err, err_size)))
            goto out;
        mul_xt(x, z, l, y);
    }
    if ((rc = orthonormalize_fast(y, V, l, tmp, tau, err, err_size)))
        goto out;
    /* B = X Q; the eigenvectors W of B^T B rotate Q onto the singular
     * vectors: X ~ U S (Q W)^T. */
    mul_x(x, y, l, z);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)l, (int)l, (int)N, 1.0, z, (int)l, z,
                (int)l, 0.0, g, (int)l);
    if ((rc = symmetric_eigen(g, l, w, err, err_size)))
        goto out;
    /* Eigenvalues are squared singular values: below 1e-12 of the largest
     * is a singular value below 1e-6 of the largest, which in double
     * precision after the power iterations is rounding, not the corpus. */
    while (d > 1 && !(w[l - d] > 1e-12 * w[l - 1]))
        d--;
    *dims = d;
    /* Column c of sel is the eigenvector of the c-th largest eigenvalue
     * (g holds them column-major, ascending). */
    double kept = 0;
    for (size_t c = 0; c < d; c++) {
        size_t e = l - 1 - c;
        for (size_t r = 0; r < l; r++)
            sel[r * d + c] = g[e * l + r];
        kept += w[e] > 0 ? w[e] : 0;
    }
    double total = 0;
    for (size_t i = 0; i < x->nnz; i++)
        total += x->val[i] * x->val[i];
    *explained = total > 0 ? fmin(1.0, kept / total) : 0;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)V, (int)d, (int)l, 1.0, y, (int)l,
                sel, (int)d, 0.0, vecs, (int)d);
    /* A singular vector's sign is arbitrary: fix it, so the model does not
     * depend on LAPACK's choice. */
    for (size_t c = 0; c < d; c++) {
        size_t arg = 0;
        for (size_t r = 1; r < V; r++)
            if (fabs(vecs[r * d + c]) > fabs(vecs[arg * d + c]))
                arg = r;
        double sign = vecs[arg * d + c] < 0 ? -1.0 : 1.0;
        for (size_t r = 0; r < V; r++)
            comp[r * d + c] = (float)(sign * vecs[r * d + c]);
    }
out:
    free(y);
    free(z);
    free(tmp);
    free(tau);
    free(g);
    free(w);
    free(vecs);
    free(sel);
    return rc;
}

/* ---- fitting ------------------------------------------------------------ */

static int check_params(const tfidf_params *p, char *err, size_t err_size) {
    if (p->dim < 1 || p->dim > 4096)
        return errbuf_set(err, err_size, -EINVAL, "dim is %zu: it must be from 1 to 4096", p->dim);
    if (p->min_df < 1)
        return errbuf_set(err, err_size, -EINVAL, "min_df must be at least 1");
    if (p->max_terms < 1 || p->max_terms > (1u << 24))
        return errbuf_set(err, err_size, -EINVAL, "max_terms is %zu: it must be from 1 to 16777216",
                          p->max_terms);
    if (p->power_iters > 20)
        return errbuf_set(err, err_size, -EINVAL, "power_iters is %u: at most 20", p->power_iters);
    return 0;
}

/* The vocabulary: the terms of at least min_df texts, the max_terms most
 * frequent; into m->vocab and m->idf. */
static int choose_vocabulary(const char *const *texts, const size_t *lens, size_t n,
                             const tfidf_params *p, tfidf_model *m, char *err, size_t err_size) {
    strtab all = {0};
    bag b = {0};
    uint32_t *df = NULL;
    ranked *order = NULL;
    size_t df_cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bag_clear(&b);
        void *ctx[2] = {&all, &b};
        if ((rc = text_each_term(texts[i] ? texts[i] : "", lens[i], add_any_term, ctx)))
            break;
        if (all.n > df_cap) {
            size_t nc = all.n * 2;
            uint32_t *grown = realloc(df, nc * sizeof(*grown));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            memset(grown + df_cap, 0, (nc - df_cap) * sizeof(*grown));
            df = grown;
            df_cap = nc;
        }
        for (size_t k = 0; k < b.n; k++)
            df[b.ids[k]]++;
    }
    if (rc) {
        rc = errbuf_set(err, err_size, rc, "out of memory counting terms");
        goto out;
    }
    size_t kept = 0;
    order = malloc((all.n ? all.n : 1) * sizeof(*order));
    if (!order) {
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory ranking terms");
        goto out;
    }
    for (uint32_t t = 0; t < all.n; t++)
        if (df[t] >= p->min_df)
            order[kept++] = (ranked){df[t], all.len[t], all.s[t], t};
    if (kept == 0) {
        rc = errbuf_set(err, err_size, -EINVAL,
                        "no term is in at least %zu of the %zu texts: nothing to fit on", p->min_df,
                        n);
        goto out;
    }
    qsort(order, kept, sizeof(*order), by_df_then_bytes);
    if (kept > p->max_terms)
        kept = p->max_terms;
    m->idf = malloc(kept * sizeof(*m->idf));
    if (!m->idf) {
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory for %zu terms", kept);
        goto out;
    }
    for (size_t k = 0; k < kept; k++) {
        uint32_t t = order[k].id, id;
        if ((rc = strtab_intern(&m->vocab, all.s[t], all.len[t], &id))) {
            rc = errbuf_set(err, err_size, rc, "out of memory for %zu terms", kept);
            goto out;
        }
        m->idf[k] = (float)(log((1.0 + (double)n) / (1.0 + df[t])) + 1.0);
    }
out:
    strtab_free(&all);
    bag_free(&b);
    free(df);
    free(order);
    return rc;
}

int tfidf_fit(const char *const *texts, const size_t *lens, size_t n, const tfidf_params *p,
              tfidf_model **out, char *err, size_t err_size) {
    int rc = check_params(p, err, err_size);
    if (rc)
        return rc;
    if (n == 0)
        return errbuf_set(err, err_size, -EINVAL, "no texts to fit the embedder on");
    tfidf_model *m = calloc(1, sizeof(*m));
    if (!m)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    m->documents = n;
    m->min_df = p->min_df;
    csr x = {.cols = 0};
    bag b = {0};
    if ((rc = choose_vocabulary(texts, lens, n, p, m, err, err_size)))
        goto out;
    x.cols = m->vocab.n;
    if (!(x.start = calloc(n + 1, sizeof(*x.start)))) {
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bag_clear(&b);
        void *ctx[2] = {&m->vocab, &b};
        if ((rc = text_each_term(texts[i] ? texts[i] : "", lens[i], add_known_term, ctx)) ||
            (rc = csr_append_row(&x, &b, m->idf))) {
            rc = errbuf_set(err, err_size, rc, "out of memory building the TF-IDF matrix");
            goto out;
        }
    }
    size_t smaller = n < x.cols ? n : x.cols;
    size_t l = p->dim + OVERSAMPLE < smaller ? p->dim + OVERSAMPLE : smaller;
    m->dim = p->dim < l ? p->dim : l;
    if (!(m->comp = malloc(x.cols * m->dim * sizeof(*m->comp)))) {
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory for %zu x %zu components", x.cols,
                        m->dim);
        goto out;
    }
    rc = truncated_svd(&x, &m->dim, l, p, m->comp, &m->explained, err, err_size);
out:
    csr_free(&x);
    bag_free(&b);
    if (rc)
        tfidf_free(m);
    else
        *out = m;
    return rc;
}

/* ---- embedding ---------------------------------------------------------- */

int tfidf_embed(const tfidf_model *m, const char *const *texts, const size_t *lens, size_t n,
                float *out, char *err, size_t err_size) {
    bag b = {0};
    double *w = NULL;
    size_t w_cap = 0;
    int rc = 0;
    size_t i = 0;
    for (; i < n && rc == 0; i++) {
        float *row = out + i * m->dim;
        memset(row, 0, m->dim * sizeof(*row));
        bag_clear(&b);
        void *ctx[2] = {(void *)&m->vocab, &b};
        if ((rc = text_each_term(texts[i] ? texts[i] : "", lens[i], add_known_term, ctx)))
            break;
        if (b.n > w_cap) {
            double *grown = realloc(w, b.n * sizeof(*grown));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            w = grown;
            w_cap = b.n;
        }
        weigh(&b, m->idf, w);
        for (size_t k = 0; k < b.n; k++)
            cblas_saxpy((int)m->dim, (float)w[k], m->comp + (size_t)b.ids[k] * m->dim, 1, row, 1);
        float norm = cblas_snrm2((int)m->dim, row, 1);
        if (norm > 0)
            cblas_sscal((int)m->dim, 1.0f / norm, row, 1);
    }
    bag_free(&b);
    free(w);
    return rc ? errbuf_set(err, err_size, rc, "out of memory embedding text %zu of %zu", i + 1, n)
              : 0;
}

/* ---- the folder --------------------------------------------------------- */

int tfidf_save(const tfidf_model *m, const char *dir, char *err, size_t err_size) {
    char path[4096];
    bson_t config = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&config, "model_type", TFIDF_MODEL_TYPE);
    BSON_APPEND_INT64(&config, "dim", (int64_t)m->dim);
    BSON_APPEND_INT64(&config, "terms", (int64_t)m->vocab.n);
    BSON_APPEND_INT64(&config, "documents", (int64_t)m->documents);
    BSON_APPEND_INT64(&config, "min_df", (int64_t)m->min_df);
    BSON_APPEND_UTF8(&config, "tf", "1 + ln(count)");
    BSON_APPEND_UTF8(&config, "idf", "ln((1 + documents) / (1 + df)) + 1");
    BSON_APPEND_UTF8(&config, "terms_rule", "lower-cased runs of Unicode word characters");
    BSON_APPEND_DOUBLE(&config, "explained_variance", m->explained);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    int rc = sl_json_write(path, &config, err, err_size);
    bson_destroy(&config);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return errbuf_set(err, err_size, -errno, "%s: %s", path, strerror(errno));
    for (size_t t = 0; t < m->vocab.n; t++) {
        fwrite(m->vocab.s[t], 1, m->vocab.len[t], f);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return errbuf_set(err, err_size, -EIO, "%s: write error", path);
    uint64_t idf_shape[1] = {m->vocab.n}, comp_shape[2] = {m->vocab.n, m->dim};
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    sl_tensors_writer *w;
    if ((rc = sl_tensors_writer_new(&w, err, err_size)))
        return rc;
    if (!(rc = sl_tensors_add_f32(w, "idf", m->idf, 1, idf_shape, err, err_size)) &&
        !(rc = sl_tensors_add_f32(w, "components", m->comp, 2, comp_shape, err, err_size)))
        rc = sl_tensors_save(w, path, err, err_size);
    sl_tensors_writer_free(w);
    return rc;
}

static int config_count(const bson_t *c, const char *key, int64_t min, int64_t max, size_t *out,
                        const char *path, char *err, size_t err_size) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, c, key) || !BSON_ITER_HOLDS_INT(&it) ||
        bson_iter_as_int64(&it) < min || bson_iter_as_int64(&it) > max)
        return errbuf_set(err, err_size, -EINVAL,
                          "%s: %s is missing or not an integer from %lld to %lld", path, key,
                          (long long)min, (long long)max);
    *out = (size_t)bson_iter_as_int64(&it);
    return 0;
}

static int read_config(const char *dir, tfidf_model *m, size_t *terms, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t *c;
    int rc = sl_json_read(path, &c, err, err_size);
    if (rc)
        return rc;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, c, "model_type") || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), TFIDF_MODEL_TYPE) != 0)
        rc = errbuf_set(err, err_size, -EINVAL, "%s: model_type is not \"" TFIDF_MODEL_TYPE "\"",
                        path);
    if (!rc)
        rc = config_count(c, "dim", 1, 4096, &m->dim, path, err, err_size);
    if (!rc)
        rc = config_count(c, "terms", 1, 1 << 24, terms, path, err, err_size);
    if (!rc && bson_iter_init_find(&it, c, "documents") && BSON_ITER_HOLDS_INT(&it))
        m->documents = (size_t)bson_iter_as_int64(&it);
    if (!rc && bson_iter_init_find(&it, c, "min_df") && BSON_ITER_HOLDS_INT(&it))
        m->min_df = (size_t)bson_iter_as_int64(&it);
    if (!rc && bson_iter_init_find(&it, c, "explained_variance") && BSON_ITER_HOLDS_NUMBER(&it))
        m->explained = bson_iter_as_double(&it);
    bson_destroy(c);
    return rc;
}

static int read_vocab(const char *dir, tfidf_model *m, size_t terms, char *err, size_t err_size) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errbuf_set(err, err_size, -errno, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        uint32_t id;
        size_t before = m->vocab.n;
        if (len == 0)
            rc = errbuf_set(err, err_size, -EINVAL, "%s:%zu: an empty term", path, before + 1);
        else if (m->vocab.n == terms)
            rc = errbuf_set(err, err_size, -EINVAL, "%s: more than the %zu terms of config.json",
                            path, terms);
        else if ((rc = strtab_intern(&m->vocab, line, (size_t)len, &id)))
            rc = errbuf_set(err, err_size, rc, "%s: out of memory", path);
        else if (m->vocab.n == before)
            rc = errbuf_set(err, err_size, -EINVAL, "%s:%zu: '%.*s' is there twice", path,
                            before + 1, (int)len, line);
    }
    free(line);
    fclose(f);
    if (rc == 0 && m->vocab.n != terms)
        rc = errbuf_set(err, err_size, -EINVAL, "%s: %zu terms, config.json says %zu", path,
                        m->vocab.n, terms);
    return rc;
}

/* A copy of tensor name, which must be F32 of the given shape and finite. */
static int read_tensor(const sl_tensors *st, const char *path, const char *name, size_t ndim,
                       const uint64_t *shape, float **out, char *err, size_t err_size) {
    const sl_tensor *t = sl_tensors_find(st, name);
    if (!t)
        return errbuf_set(err, err_size, -EINVAL, "%s: no tensor '%s'", path, name);
    if (sl_tensor_dtype(t) != SL_DTYPE_F32)
        return errbuf_set(err, err_size, -EINVAL, "%s: tensor '%s' is %s; F32 expected", path, name,
                          sl_dtype_name(sl_tensor_dtype(t)));
    int same = sl_tensor_ndim(t) == ndim;
    for (size_t i = 0; same && i < ndim; i++)
        same = sl_tensor_dim(t, i) == shape[i];
    if (!same)
        return errbuf_set(err, err_size, -EINVAL,
                          "%s: tensor '%s' does not have the shape that config.json implies", path,
                          name);
    uint64_t nbytes = sl_tensor_nbytes(t);
    if (!(*out = malloc(nbytes ? nbytes : 1)))
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
    memcpy(*out, sl_tensor_data(t), nbytes);
    for (size_t i = 0; i < nbytes / sizeof(float); i++)
        if (!isfinite((*out)[i]))
            return errbuf_set(err, err_size, -EINVAL,
                              "%s: tensor '%s' holds a value that is not finite", path, name);
    return 0;
}

int tfidf_load(const char *dir, tfidf_model **out, char *err, size_t err_size) {
    tfidf_model *m = calloc(1, sizeof(*m));
    if (!m)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    size_t terms = 0;
    int rc = read_config(dir, m, &terms, err, err_size);
    if (!rc)
        rc = read_vocab(dir, m, terms, err, err_size);
    if (!rc) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        sl_tensors *st;
        if (!(rc = sl_tensors_open(path, &st, err, err_size))) {
            uint64_t idf_shape[1] = {terms}, comp_shape[2] = {terms, m->dim};
            rc = read_tensor(st, path, "idf", 1, idf_shape, &m->idf, err, err_size);
            if (!rc)
                rc = read_tensor(st, path, "components", 2, comp_shape, &m->comp, err, err_size);
            sl_tensors_close(st);
        }
    }
    if (rc)
        tfidf_free(m);
    else
        *out = m;
    return rc;
}
