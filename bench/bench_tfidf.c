/* bench_tfidf - the built-in embedder (steps/embed/tfidf.c): fitting
 * TF-IDF + a 256-component randomised SVD and embedding every chunk, beside
 * scikit-learn doing the same (TfidfVectorizer with sublinear tf and a
 * word-run token pattern, TruncatedSVD with 5 randomised power iterations,
 * then L2 normalisation) on the same texts in the same run, when Debian's
 * python3-sklearn is there.
 *
 * The corpus: the LLM Engineer's Handbook's 76 cleaned articles cut into
 * their 500 chunks (../shared/handbook), and a larger one of 10,000 texts
 * each made of the first half of one chunk and the second half of another,
 * so that the vocabulary stays real.
 *
 *     bench_tfidf [HANDBOOK_CLEANED_DOCUMENTS_JSON] */
#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/artifacts.h>

#include "bench.h"
#include "text.h"
#include "tfidf.h"

#define ROUNDS 3
#define MIXED 10000

typedef struct corpus {
    char **texts;
    size_t *lens, n;
} corpus;

static void corpus_add(corpus *c, char *text, size_t len) {
    c->texts = realloc(c->texts, (c->n + 1) * sizeof(*c->texts));
    c->lens = realloc(c->lens, (c->n + 1) * sizeof(*c->lens));
    if (!c->texts || !c->lens) {
        fprintf(stderr, "bench_tfidf: out of memory\n");
        exit(1);
    }
    c->texts[c->n] = text;
    c->lens[c->n++] = len;
}

/* The Handbook's article chunks, from its cleaned documents. */
static int handbook_chunks(const char *path, corpus *c) {
    bson_t *doc;
    char err[512];
    if (sl_json_read(path, &doc, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_tfidf: %s\n", err);
        return -1;
    }
    bson_iter_t it, arr, item;
    if (bson_iter_init_find(&it, doc, "artifact_data") && bson_iter_recurse(&it, &arr))
        while (bson_iter_next(&arr))
            if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &item) &&
                bson_iter_find(&item, "content") && BSON_ITER_HOLDS_UTF8(&item)) {
                uint32_t len;
                const char *content = bson_iter_utf8(&item, &len);
                char **chunks;
                size_t n;
                if (text_chunk_article(content, len, 1000, 2000, &chunks, &n) != 0)
                    continue;
                for (size_t i = 0; i < n; i++)
                    corpus_add(c, chunks[i], strlen(chunks[i]));
                free(chunks);
            }
    bson_destroy(doc);
    return c->n ? 0 : -1;
}

/* MIXED texts: the first half of chunk i, the second half of another. */
static void mixed(const corpus *base, corpus *c) {
    for (size_t k = 0; k < MIXED; k++) {
        size_t a = k % base->n, b = (k * 7 + k / base->n + 1) % base->n;
        size_t la = base->lens[a] / 2, lb = base->lens[b] - base->lens[b] / 2;
        char *t = malloc(la + lb + 2);
        if (!t)
            exit(1);
        memcpy(t, base->texts[a], la);
        t[la] = ' ';
        memcpy(t + la + 1, base->texts[b] + base->lens[b] / 2, lb);
        t[la + 1 + lb] = '\0';
        corpus_add(c, t, la + 1 + lb);
    }
}

/* Best of ROUNDS: fit and embed every text. */
static double time_sluice(const corpus *c, size_t *dim, double *explained) {
    tfidf_params p = tfidf_defaults();
    double best = 1e9;
    for (int r = 0; r < ROUNDS; r++) {
        tfidf_model *m;
        char err[512];
        double t0 = now();
        if (tfidf_fit((const char *const *)c->texts, c->lens, c->n, &p, &m, err, sizeof(err))) {
            fprintf(stderr, "bench_tfidf: %s\n", err);
            exit(1);
        }
        float *v = malloc(c->n * tfidf_dim(m) * sizeof(*v));
        if (!v || tfidf_embed(m, (const char *const *)c->texts, c->lens, c->n, v, NULL, 0) != 0)
            exit(1);
        double t = now() - t0;
        best = t < best ? t : best;
        *dim = tfidf_dim(m);
        *explained = tfidf_explained_variance(m);
        free(v);
        tfidf_free(m);
    }
    return best;
}

static const char *const peer =
    "import json, sys, time\n"
    "import numpy as np\n"
    "from sklearn.feature_extraction.text import TfidfVectorizer\n"
    "from sklearn.decomposition import TruncatedSVD\n"
    "texts = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]\n"
    "best = 1e9\n"
    "for r in range(3):\n"
    "    t = time.perf_counter()\n"
    "    x = TfidfVectorizer(token_pattern=r'(?u)\\w+', sublinear_tf=True).fit_transform(texts)\n"
    "    k = min(int(sys.argv[2]), min(x.shape) - 1)\n"
    "    svd = TruncatedSVD(n_components=k, algorithm='randomized', n_iter=5, random_state=42)\n"
    "    e = svd.fit_transform(x)\n"
    "    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)\n"
    "    best = min(best, time.perf_counter() - t)\n"
    "print(best, svd.explained_variance_ratio_.sum())\n";

/* scikit-learn's best of 3 on the same texts, or a negative time. */
static double time_sklearn(const corpus *c, size_t dim, double *explained) {
    if (system("/usr/bin/python3 -c 'import sklearn' 2>/dev/null") != 0)
        return -1;
    char texts[] = "/tmp/sluice-bench-tfidf-XXXXXX", script[64];
    int fd = mkstemp(texts);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < c->n; i++) {
        char *escaped = bson_utf8_escape_for_json(c->texts[i], (ssize_t)c->lens[i]);
        fprintf(f, "\"%s\"\n", escaped ? escaped : "");
        bson_free(escaped);
    }
    fclose(f);
    snprintf(script, sizeof(script), "%s.py", texts);
    f = fopen(script, "w");
    fputs(peer, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %zu", script, texts, dim);
    FILE *p = popen(cmd, "r");
    double t = -1;
    if (p && fscanf(p, "%lf %lf", &t, explained) != 2)
        t = -1;
    if (p)
        pclose(p);
    unlink(texts);
    unlink(script);
    return t;
}

static void report(const char *name, const corpus *c) {
    size_t dim;
    double ev, ev_peer = 0; /* scikit-learn's is of centred variance: not printed beside ours */
    double t = time_sluice(c, &dim, &ev);
    printf("  %-22s %6zu texts  sluice %8.3f s (%9.0f texts/s, %zu dims, variance kept %.3f)\n",
           name, c->n, t, (double)c->n / t, dim, ev);
    double tp = time_sklearn(c, dim, &ev_peer);
    if (tp > 0)
        printf("  %-22s %6s        scikit-learn %8.3f s: sluice is %.2fx faster\n", "", "", tp,
               tp / t);
    else
        printf("  %-22s scikit-learn not installed (apt-get install python3-sklearn)\n", "");
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1]
                                : SLUICE_SOURCE_DIR
                           "/../shared/handbook/artifacts/cleaned_documents.json";
    corpus base = {0}, big = {0};
    if (handbook_chunks(path, &base) != 0) {
        printf("bench_tfidf: skipped, needs the Handbook's cleaned documents (%s)\n", path);
        return 0;
    }
    mixed(&base, &big);
    printf(
        "bench_tfidf: the built-in embedder, fit (TF-IDF + randomised SVD) and embed, best of %d\n",
        ROUNDS);
    report("Handbook chunks", &base);
    report("mixed chunks", &big);
    for (size_t i = 0; i < base.n; i++)
        free(base.texts[i]);
    for (size_t i = 0; i < big.n; i++)
        free(big.texts[i]);
    free(base.texts);
    free(base.lens);
    free(big.texts);
    free(big.lens);
    return 0;
}
