/* test_index - the retrieval index (steps/index): dense top-k against a
 * scalar reference, ties, filters, BM25 against hand values and an
 * independent Python implementation, RRF, the file round trip and refusals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "require.h"

static char err[256];

/* Deterministic random normalised vectors. */
static unsigned seed_ = 7;
static float frand(void) {
    seed_ = seed_ * 1103515245u + 12345u;
    return (float)((seed_ >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}
static void random_unit(float *v, size_t d) {
    double s = 0;
    for (size_t i = 0; i < d; i++) {
        v[i] = frand();
        s += (double)v[i] * v[i];
    }
    for (size_t i = 0; i < d; i++)
        v[i] = (float)(v[i] / sqrt(s));
}

static const char *const AUTHORS[] = {"ana", "bo", "chen"};
static const char *const CATS[] = {"posts", "articles", "repositories", "notes"};

/* n random rows; row r has author r % 3, category r % 4. *vecs is malloc'ed. */
static search_index *make_random(size_t n, size_t d, float **vecs) {
    search_index *ix;
    cr_assert_eq(index_new(d, &ix, err, sizeof(err)), 0, "%s", err);
    float *v = malloc(n * d * sizeof(float));
    cr_assert(v);
    for (size_t r = 0; r < n; r++) {
        random_unit(v + r * d, d);
        char doc[32];
        snprintf(doc, sizeof(doc), "doc-%zu", r / 5);
        cr_assert_eq(index_add(ix, v + r * d, d, "some text", AUTHORS[r % 3], CATS[r % 4], doc, err,
                               sizeof(err)),
                     0, "%s", err);
    }
    *vecs = v;
    return ix;
}

typedef struct ref {
    double s;
    uint32_t id;
} ref;
static int ref_cmp(const void *a, const void *b) {
    const ref *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The scalar reference for one query: all passing rows, best first. */
static size_t brute(const float *v, size_t n, size_t d, const float *qv, int author, int cat,
                    ref *out) {
    size_t m = 0;
    for (size_t r = 0; r < n; r++) {
        if ((author >= 0 && (int)(r % 3) != author) || (cat >= 0 && (int)(r % 4) != cat))
            continue;
        double s = 0;
        for (size_t i = 0; i < d; i++)
            s += (double)v[r * d + i] * qv[i];
        out[m++] = (ref){s, (uint32_t)r};
    }
    qsort(out, m, sizeof(*out), ref_cmp);
    return m;
}

/* Checks one query's result against the reference: the same scores (to
 * float rounding) and the same ids wherever the order is not a near tie. */
static void check_query(const uint32_t *ids, const float *sc, size_t got, size_t k, const ref *want,
                        size_t m) {
    size_t expect = k < m ? k : m;
    cr_assert_eq(got, expect, "got %zu of %zu", got, expect);
    for (size_t i = 0; i < got; i++) {
        cr_assert(fabs(sc[i] - want[i].s) < 1e-5, "rank %zu: %g vs %g", i, sc[i], want[i].s);
        int near_tie = (i > 0 && want[i - 1].s - want[i].s < 1e-5) ||
                       (i + 1 < m && want[i].s - want[i + 1].s < 1e-5);
        if (!near_tie)
            cr_assert_eq(ids[i], want[i].id, "rank %zu: id %u vs %u", i, ids[i], want[i].id);
        if (i > 0)
            cr_assert(sc[i] <= sc[i - 1]);
    }
    for (size_t i = got; i < k; i++) {
        cr_assert_eq(ids[i], UINT32_MAX);
        cr_assert(isinf(sc[i]) && sc[i] < 0);
    }
}

static void run_dense(size_t n, size_t d, size_t q, size_t k, const index_filter *f, int fa,
                      int fc) {
    float *v;
    search_index *ix = make_random(n, d, &v);
    float *qs = malloc(q * d * sizeof(float));
    uint32_t *ids = malloc(q * k * sizeof(uint32_t));
    float *sc = malloc(q * k * sizeof(float));
    size_t *cnt = malloc(q * sizeof(size_t));
    ref *want = malloc(n * sizeof(ref));
    for (size_t j = 0; j < q; j++)
        random_unit(qs + j * d, d);
    cr_assert_eq(index_search(ix, qs, q, d, k, f, ids, sc, cnt, err, sizeof(err)), 0, "%s", err);
    for (size_t j = 0; j < q; j++) {
        size_t m = brute(v, n, d, qs + j * d, fa, fc, want);
        check_query(ids + j * k, sc + j * k, cnt[j], k, want, m);
    }
    free(qs);
    free(ids);
    free(sc);
    free(cnt);
    free(want);
    free(v);
    index_free(ix);
}

Test(dense, topk_matches_bruteforce) {
    const size_t n = 5000, d = 24; /* more than one 4096-row block */
    size_t ks[] = {1, 10, n};
    size_t qs[] = {1, 33};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            run_dense(n, d, qs[b], ks[a], NULL, -1, -1);
}

Test(dense, k_beyond_rows) { run_dense(7, 8, 3, 10, NULL, -1, -1); }

Test(dense, filters) {
    index_filter fa = {.author = "bo"};
    run_dense(600, 16, 1, 10, &fa, 1, -1);
    run_dense(600, 16, 33, 10, &fa, 1, -1);
    index_filter fc = {.category = "repositories"};
    run_dense(600, 16, 33, 600, &fc, -1, 2);
    index_filter both = {.author = "chen", .category = "notes"};
    run_dense(600, 16, 5, 1000, &both, 2, 3);
}

Test(dense, filter_selects_nothing) {
    float *v;
    search_index *ix = make_random(50, 8, &v);
    uint32_t ids[5 * 2];
    float sc[5 * 2];
    size_t cnt[2] = {9, 9};
    index_filter f = {.author = "nobody"};
    cr_assert_eq(index_search(ix, v, 2, 8, 5, &f, ids, sc, cnt, err, sizeof(err)), 0);
    cr_assert_eq(cnt[0], 0);
    cr_assert_eq(cnt[1], 0);
    cr_assert_eq(ids[0], UINT32_MAX);
    /* A known author with an unknown category. */
    index_filter g = {.author = "ana", .category = "none"};
    cr_assert_eq(index_search(ix, v, 1, 8, 5, &g, ids, sc, cnt, err, sizeof(err)), 0);
    cr_assert_eq(cnt[0], 0);
    free(v);
    index_free(ix);
}

Test(dense, ties_by_lower_id) {
    search_index *ix;
    cr_assert_eq(index_new(4, &ix, err, sizeof(err)), 0);
    float same[4] = {0.5f, 0.5f, 0.5f, 0.5f}, other[4] = {1, 0, 0, 0};
    for (int r = 0; r < 20; r++)
        cr_assert_eq(
            index_add(ix, r % 4 == 3 ? other : same, 4, NULL, NULL, NULL, NULL, err, sizeof(err)),
            0);
    float q[33 * 4];
    for (int j = 0; j < 33; j++)
        memcpy(q + 4 * j, same, sizeof(same));
    uint32_t ids[33 * 6];
    float sc[33 * 6];
    size_t cnt[33];
    for (size_t nq = 1; nq <= 33; nq += 32) {
        cr_assert_eq(index_search(ix, q, nq, 4, 6, NULL, ids, sc, cnt, err, sizeof(err)), 0);
        uint32_t want[6] = {0, 1, 2, 4, 5, 6};
        for (size_t j = 0; j < nq; j++)
            for (int i = 0; i < 6; i++)
                cr_assert_eq(ids[j * 6 + i], want[i], "q %zu rank %d: %u", j, i, ids[j * 6 + i]);
    }
    index_free(ix);
}

Test(dense, bad_inputs) {
    float *v;
    search_index *ix = make_random(10, 8, &v);
    uint32_t ids[4];
    float sc[4];
    size_t cnt[1];
    cr_assert_eq(index_search(ix, v, 1, 8, 0, NULL, ids, sc, cnt, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "k must"), "%s", err);
    cr_assert_eq(index_search(ix, v, 1, 7, 4, NULL, ids, sc, cnt, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "components"), "%s", err);
    cr_assert_eq(index_search(ix, v, 0, 8, 4, NULL, ids, sc, cnt, err, sizeof(err)), -EINVAL);
    cr_assert_eq(index_add(ix, v, 9, "x", NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
    float nan_v[8] = {NAN};
    cr_assert_eq(index_add(ix, nan_v, 8, "x", NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
    cr_assert_eq(index_search(ix, nan_v, 1, 8, 4, NULL, ids, sc, cnt, err, sizeof(err)), -EINVAL);
    cr_assert_eq(index_size(ix), 10);
    search_index *bad;
    cr_assert_eq(index_new(0, &bad, err, sizeof(err)), -EINVAL);
    cr_assert_eq(index_bm25_search(ix, "text", 0, NULL, ids, sc, cnt, err, sizeof(err)), -EINVAL);
    free(v);
    index_free(ix);
}

/* ---- BM25 ---- */

static search_index *make_corpus(const char *const *docs, size_t n) {
    search_index *ix;
    cr_assert_eq(index_new(2, &ix, err, sizeof(err)), 0);
    float v[2] = {1, 0};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(
            index_add(ix, v, 2, docs[i], i % 2 ? "odd" : "even", "c", NULL, err, sizeof(err)), 0,
            "%s", err);
    return ix;
}

Test(bm25, hand_computed_three_documents) {
    const char *docs[] = {"The cat sat.", "the DOG sat down", "cat, cat; dog!"};
    search_index *ix = make_corpus(docs, 3);
    uint32_t ids[3];
    float sc[3];
    size_t n;
    /* N = 3, lengths 3, 4, 3, avgdl = 10/3; "cat" is in 2 rows:
     * idf = ln(1 + 1.5/2.5) = ln 1.6.
     * row 0: f = 1, |D|/avgdl = 0.9: 1*2.2 / (1 + 1.2*(0.25 + 0.675)) = 2.2/2.11
     * row 2: f = 2: 2*2.2 / (2 + 1.11) = 4.4/3.11 */
    cr_assert_eq(index_bm25_search(ix, "CAT", 3, NULL, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(ids[1], 0);
    cr_assert_float_eq(sc[0], log(1.6) * 4.4 / 3.11, 1e-6);
    cr_assert_float_eq(sc[1], log(1.6) * 2.2 / 2.11, 1e-6);
    /* "down sat": down in row 1 only (idf ln(1 + 2.5/1.5)), sat in rows 0, 1
     * (idf ln 1.6). Row 1, |D|/avgdl = 1.2: denominator 1 + 1.2*(0.25 + 0.9) = 2.38. */
    cr_assert_eq(index_bm25_search(ix, "down sat sat", 3, NULL, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 1);
    cr_assert_float_eq(sc[0], (log(1 + 2.5 / 1.5) + log(1.6)) * 2.2 / 2.38, 1e-6);
    cr_assert_eq(ids[1], 0);
    cr_assert_float_eq(sc[1], log(1.6) * 2.2 / 2.11, 1e-6);
    /* Filter, unknown words, k = 1. */
    index_filter f = {.author = "even"};
    cr_assert_eq(index_bm25_search(ix, "dog", 3, &f, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 2);
    cr_assert_eq(index_bm25_search(ix, "zebra ...", 3, NULL, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(index_bm25_search(ix, "cat", 1, NULL, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 2);
    /* k1 = 0: term frequency and length no longer count, only idf. */
    cr_assert_eq(index_set_bm25(ix, (index_bm25_params){-1, 0.75}), -EINVAL);
    cr_assert_eq(index_set_bm25(ix, (index_bm25_params){1.2, 1.5}), -EINVAL);
    cr_assert_eq(index_set_bm25(ix, (index_bm25_params){0, 0.75}), 0);
    cr_assert_eq(index_bm25_search(ix, "cat", 3, NULL, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 0); /* equal scores: the lower id */
    cr_assert_float_eq(sc[0], log(1.6), 1e-6);
    cr_assert_float_eq(sc[1], log(1.6), 1e-6);
    index_free(ix);
}

/* The same formula written independently in Python (re's \w, str.lower). */
Test(bm25, matches_python) {
    if (access("/usr/bin/python3", X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no /usr/bin/python3");
    const char *docs[] = {
        "Fine-tuning LLMs on an author's articles: the data pipeline.",
        "Retrieval-augmented generation (RAG) retrieves chunks; the LLM answers.",
        "Naïve façade: Ünïcode words such as 東京 and Москва count too, москва.",
        "The pipeline crawls posts, articles and repositories into a warehouse.",
        "snake_case_words and numbers like 3.14 or 42 are tokens; x2 too",
        "Embeddings of chunks are stored in a vector index with a payload.",
        "articles articles articles about the the the data",
        "",
    };
    size_t n = sizeof(docs) / sizeof(docs[0]);
    const char *queries[] = {"the articles pipeline", "москва ÜNÏCODE naïve", "42 x2 chunks",
                             "LLM data the", "zzz"};
    search_index *ix = make_corpus(docs, n);
    char path[] = "/tmp/sluice-test-bm25-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", docs[i]);
    fclose(f);
    for (size_t qi = 0; qi < sizeof(queries) / sizeof(queries[0]); qi++) {
        char cmd[2048];
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c '\n"
                 "import re, math, sys\n"
                 "tok = lambda s: [w.lower() for w in re.findall(r\"\\w+\", s)]\n"
                 "docs = [tok(l) for l in open(sys.argv[1], "
                 "encoding=\"utf-8\").read().split(\"\\n\")[:-1]]\n"
                 "N = len(docs); avg = sum(map(len, docs)) / N\n"
                 "q = []\n"
                 "[q.append(t) for t in tok(sys.argv[2]) if t not in q]\n"
                 "for i, d in enumerate(docs):\n"
                 "    s = 0.0\n"
                 "    for t in q:\n"
                 "        df = sum(1 for e in docs if t in e); f = d.count(t)\n"
                 "        if f: s += math.log(1 + (N - df + 0.5) / (df + 0.5)) * f * 2.2 / (f + "
                 "1.2 * (0.25 + 0.75 * len(d) / avg))\n"
                 "    print(i, repr(s))\n"
                 "' %s '%s'",
                 path, queries[qi]);
        FILE *py = popen(cmd, "r");
        cr_assert(py);
        double want[16] = {0};
        int i;
        double s;
        size_t lines = 0;
        while (fscanf(py, "%d %lf", &i, &s) == 2 && i >= 0 && i < 16) {
            want[i] = s;
            lines++;
        }
        cr_assert_eq(pclose(py), 0);
        cr_assert_eq(lines, n);
        uint32_t ids[16];
        float sc[16];
        size_t got;
        cr_assert_eq(index_bm25_search(ix, queries[qi], 16, NULL, ids, sc, &got, err, sizeof(err)),
                     0);
        size_t positive = 0;
        for (size_t d = 0; d < n; d++)
            positive += want[d] > 0;
        cr_assert_eq(got, positive, "query %zu: %zu rows vs Python's %zu", qi, got, positive);
        for (size_t r = 0; r < got; r++)
            cr_assert(fabs(sc[r] - want[ids[r]]) < 1e-5 * (1 + want[ids[r]]),
                      "query '%s' row %u: %.7f vs Python %.7f", queries[qi], ids[r], sc[r],
                      want[ids[r]]);
    }
    unlink(path);
    index_free(ix);
}

/* ---- RRF ---- */

Test(rrf, hand_example) {
    uint32_t a[] = {1, 2, 3}, b[] = {3, 1, 4};
    const uint32_t *lists[] = {a, b};
    size_t lens[] = {3, 3};
    uint32_t ids[4];
    float sc[4];
    size_t n;
    cr_assert_eq(index_rrf(lists, lens, 2, 60, 4, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 4);
    uint32_t want[] = {1, 3, 2, 4};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ids[i], want[i], "rank %d: %u", i, ids[i]);
    cr_assert_float_eq(sc[0], 1.0 / 61 + 1.0 / 62, 1e-7);
    cr_assert_float_eq(sc[1], 1.0 / 63 + 1.0 / 61, 1e-7);
    cr_assert_float_eq(sc[2], 1.0 / 62, 1e-7);
    cr_assert_float_eq(sc[3], 1.0 / 63, 1e-7);
    /* Equal fused scores: the lower id first; k cuts the list. */
    uint32_t c[] = {9}, d[] = {5};
    const uint32_t *l2[] = {c, d};
    size_t len2[] = {1, 1};
    cr_assert_eq(index_rrf(l2, len2, 2, 60, 1, ids, sc, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 5);
    cr_assert_eq(index_rrf(l2, len2, 2, 60, 0, ids, sc, &n, err, sizeof(err)), -EINVAL);
}

Test(rrf, hybrid) {
    const char *docs[] = {"alpha beta", "gamma delta", "alpha gamma", "epsilon"};
    search_index *ix;
    cr_assert_eq(index_new(2, &ix, err, sizeof(err)), 0);
    float vs[4][2] = {{1, 0}, {0, 1}, {0.6f, 0.8f}, {-1, 0}};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(index_add(ix, vs[i], 2, docs[i], NULL, NULL, NULL, err, sizeof(err)), 0);
    /* Dense for (0, 1): 1, 2, 0, 3 (rows 0 and 3 tie at 0: lower id
     * first). BM25 for "alpha": 0 and 2 (equal scores, equal lengths), so
     * 0, 2. Fused: 0 (1/63 + 1/61 = 0.0322664), 2 (1/62 + 1/62 =
     * 0.0322581), 1 (1/61), 3 (1/64). */
    float q[2] = {0, 1};
    uint32_t ids[4];
    float sc[4];
    size_t n;
    cr_assert_eq(index_hybrid_search(ix, q, 2, "alpha", 4, 0, NULL, ids, sc, &n, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(n, 4);
    uint32_t want[] = {0, 2, 1, 3};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(ids[i], want[i], "rank %d: %u", i, ids[i]);
    index_free(ix);
}

/* ---- the file ---- */

static char *tmp_path(void) {
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/sluice-test-index-%d", (int)getpid());
    return path;
}

Test(store, round_trip) {
    float *v;
    search_index *ix = make_random(300, 12, &v);
    const char *path = tmp_path();
    cr_assert_eq(index_save(ix, path, err, sizeof(err)), 0, "%s", err);
    search_index *back;
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(index_size(back), 300);
    cr_assert_eq(index_dim(back), 12);
    for (size_t r = 0; r < 300; r++) {
        index_row a, b;
        cr_assert_eq(index_get(ix, r, &a), 0);
        cr_assert_eq(index_get(back, r, &b), 0);
        cr_assert_eq(memcmp(a.vector, b.vector, 12 * sizeof(float)), 0);
        cr_assert_str_eq(a.text, b.text);
        cr_assert_str_eq(a.author, b.author);
        cr_assert_str_eq(a.category, b.category);
        cr_assert_str_eq(a.document_id, b.document_id);
    }
    uint32_t i1[33 * 7], i2[33 * 7];
    float s1[33 * 7], s2[33 * 7];
    size_t c1[33], c2[33];
    index_filter f = {.category = "posts"};
    cr_assert_eq(index_search(ix, v, 33, 12, 7, &f, i1, s1, c1, err, sizeof(err)), 0);
    cr_assert_eq(index_search(back, v, 33, 12, 7, &f, i2, s2, c2, err, sizeof(err)), 0);
    cr_assert_eq(memcmp(i1, i2, sizeof(i1)), 0);
    cr_assert_eq(memcmp(s1, s2, sizeof(s1)), 0);
    size_t n1, n2;
    cr_assert_eq(index_bm25_search(ix, "text", 7, &f, i1, s1, &n1, err, sizeof(err)), 0);
    cr_assert_eq(index_bm25_search(back, "text", 7, &f, i2, s2, &n2, err, sizeof(err)), 0);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(i1, i2, n1 * sizeof(uint32_t)), 0);
    /* The loaded index is read-only. */
    cr_assert_eq(index_add(back, v, 12, "x", NULL, NULL, NULL, err, sizeof(err)), -EPERM);
    index_free(back);
    unlink(path);
    free(v);
    index_free(ix);
}

Test(store, empty_index_round_trip) {
    search_index *ix, *back;
    cr_assert_eq(index_new(3, &ix, err, sizeof(err)), 0);
    const char *path = tmp_path();
    cr_assert_eq(index_save(ix, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(index_size(back), 0);
    float q[3] = {1, 0, 0};
    uint32_t id;
    float s;
    size_t c;
    cr_assert_eq(index_search(back, q, 1, 3, 1, NULL, &id, &s, &c, err, sizeof(err)), 0);
    cr_assert_eq(c, 0);
    index_free(back);
    index_free(ix);
    unlink(path);
}

Test(store, refuses_bad_files) {
    float *v;
    search_index *ix = make_random(40, 8, &v);
    const char *path = tmp_path();
    cr_assert_eq(index_save(ix, path, err, sizeof(err)), 0, "%s", err);
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)size);
    cr_assert_eq(fread(bytes, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    search_index *back = NULL;
    /* Truncated at several places: header, vectors, metadata, last byte. */
    long cuts[] = {0, 10, 63, 64 + 100, 64 + 40 * 8 * 4 + 5, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        f = fopen(path, "wb");
        cr_assert_eq(fwrite(bytes, 1, (size_t)cuts[i], f), (size_t)cuts[i]);
        fclose(f);
        cr_assert_eq(index_load(path, &back, err, sizeof(err)), -EINVAL, "cut at %ld", cuts[i]);
        cr_assert(strstr(err, "trunc"), "cut at %ld: %s", cuts[i], err);
    }
    /* Header consistent with a shorter file: the metadata is cut. */
    unsigned char *copy = malloc((size_t)size);
    memcpy(copy, bytes, (size_t)size);
    long short_size = size - 3;
    for (int b = 0; b < 8; b++) {
        copy[48 + b] = (unsigned char)((uint64_t)short_size >> (8 * b));
        copy[40 + b] = (unsigned char)((uint64_t)(short_size - (64 + 40 * 8 * 4)) >> (8 * b));
    }
    f = fopen(path, "wb");
    fwrite(copy, 1, (size_t)short_size, f);
    fclose(f);
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "malformed"), "%s", err);
    /* Postings that do not add up: the last row's length (the file's last
     * u32) one more than its term counts. */
    memcpy(copy, bytes, (size_t)size);
    copy[size - 4]++;
    f = fopen(path, "wb");
    fwrite(copy, 1, (size_t)size, f);
    fclose(f);
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "malformed"), "%s", err);
    /* Another magic. */
    memcpy(copy, bytes, (size_t)size);
    copy[0] = 'X';
    f = fopen(path, "wb");
    fwrite(copy, 1, (size_t)size, f);
    fclose(f);
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "magic"), "%s", err);
    unlink(path);
    cr_assert_eq(index_load(path, &back, err, sizeof(err)), -ENOENT);
    cr_assert_null(back);
    free(copy);
    free(bytes);
    free(v);
    index_free(ix);
}

/* tests/data/index/v1.sluidx: two rows written by the version 1 writer,
 * whose file held no postings; they are rebuilt from the texts, and the
 * index saved again is version 2 with the same rankings. */
Test(store, a_version_1_file_is_still_read) {
    search_index *v1, *v2;
    cr_assert_eq(index_load(SLUICE_SOURCE_DIR "/tests/data/index/v1.sluidx", &v1, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(index_size(v1), 2);
    uint32_t ids[2];
    float scores[2];
    size_t n;
    cr_assert_eq(index_bm25_search(v1, "pipeline", 2, NULL, ids, scores, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 1);
    /* index_save writes from the rows: copy them into a new index. */
    search_index *copy;
    cr_assert_eq(index_new(index_dim(v1), &copy, err, sizeof(err)), 0);
    for (size_t r = 0; r < 2; r++) {
        index_row row;
        cr_assert_eq(index_get(v1, r, &row), 0);
        cr_assert_eq(index_add(copy, row.vector, index_dim(v1), row.text, row.author, row.category,
                               row.document_id, err, sizeof(err)),
                     0);
    }
    const char *path = tmp_path();
    cr_assert_eq(index_save(copy, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(index_load(path, &v2, err, sizeof(err)), 0, "%s", err);
    FILE *f = fopen(path, "rb");
    unsigned char head[12];
    cr_assert_eq(fread(head, 1, 12, f), 12);
    fclose(f);
    cr_expect_eq(head[8], 2, "written as version 2");
    float s2[2];
    cr_assert_eq(index_bm25_search(v2, "pipeline", 2, NULL, ids, s2, &n, err, sizeof(err)), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(s2[0], scores[0]);
    unlink(path);
    index_free(v2);
    index_free(copy);
    index_free(v1);
}
