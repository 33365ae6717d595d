/* test_tfidf.c - the built-in embedder (steps/embed/tfidf.c): its model and
 * vectors against an independent NumPy reference (tests/ref/tfidf_ref.py:
 * the TF-IDF matrix from the formulas, numpy.linalg.svd), the randomised
 * sketch's accuracy on a corpus larger than the sketch, and the model
 * folder: round trip and refusals. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/artifacts.h>

#include "embedder.h"
#include "tfidf.h"
#include "require.h"

#define PYTHON "/usr/bin/python3"
#define REF SLUICE_SOURCE_DIR "/tests/ref/tfidf_ref.py"

static char dir[64];

static void remove_dir(void) {
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    dir[0] = '\0';
}

static void make_dir(void) {
    strcpy(dir, "/tmp/sluice_tfidf_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

TestSuite(tfidf, .fini = remove_dir);

static const char *const words[] = {
    "pipeline", "vector", "index", "chunk",   "embed",  "model",   "train", "token",
    "search",   "query",  "store", "hash",    "crawl",  "clean",   "graph", "cache",
    "retry",    "slurm",  "lmdb",  "lineage", "metric", "dataset", "run",   "step",
    "plugin",   "yaml",   "json",  "matrix",  "gpu",    "batch",   "loss",  "adam"};
#define NWORDS (sizeof(words) / sizeof(words[0]))

/* n deterministic texts of Zipf-like word draws, with topics: text i
 * leans on a band of the vocabulary, so the matrix has structure. */
static char **make_texts(size_t n, size_t len, size_t **lens_out) {
    char **t = calloc(n, sizeof(*t));
    size_t *lens = calloc(n, sizeof(*lens));
    cr_assert(t && lens);
    uint64_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        t[i] = malloc(len * 12 + 1);
        cr_assert_not_null(t[i]);
        size_t k = 0;
        for (size_t w = 0; w < len; w++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t r = (size_t)(s >> 33);
            size_t band = (i % 4) * 8, pick = r % 3 ? band + r % 8 : (r >> 4) % NWORDS;
            k += (size_t)sprintf(t[i] + k, "%s%s", w ? " " : "", words[pick % NWORDS]);
        }
        lens[i] = k;
    }
    *lens_out = lens;
    return t;
}

static void free_texts(char **t, size_t *lens, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
    free(lens);
}

/* Fits, saves the model, the texts and their embeddings into dir, and runs
 * the reference on them; returns its exit status. */
static int check_against_reference(const char *mode, size_t n, size_t len, size_t dim) {
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import numpy' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("the reference needs %s with numpy (Debian's python3-numpy)", PYTHON);
    size_t *lens;
    char **texts = make_texts(n, len, &lens);
    tfidf_params p = tfidf_defaults();
    p.dim = dim;
    tfidf_model *m;
    char err[512];
    cr_assert_eq(tfidf_fit((const char *const *)texts, lens, n, &p, &m, err, sizeof(err)), 0, "%s",
                 err);
    make_dir();
    cr_assert_eq(tfidf_save(m, dir, err, sizeof(err)), 0, "%s", err);
    float *emb = malloc(n * tfidf_dim(m) * sizeof(*emb));
    cr_assert_not_null(emb);
    cr_assert_eq(tfidf_embed(m, (const char *const *)texts, lens, n, emb, err, sizeof(err)), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/embeddings.slmx", dir);
    cr_assert_eq(sl_matrix_write(path, emb, n, tfidf_dim(m), err, sizeof(err)), 0, "%s", err);
    snprintf(path, sizeof(path), "%s/texts.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\"%s\"", i ? ",\n" : "[", texts[i]);
    fputs("]\n", f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s %s %s %s", PYTHON, REF, mode, dir);
    int status = system(cmd);
    free(emb);
    tfidf_free(m);
    free_texts(texts, lens, n);
    return status;
}

Test(tfidf, the_model_and_vectors_equal_numpys_svd_when_the_sketch_spans_the_corpus) {
    /* 12 texts, 6 components: the sketch (6 + 10 columns, at most 12) holds
     * the whole row space, so the result is exact up to rounding. */
    cr_expect_eq(check_against_reference("exact", 12, 40, 6), 0);
}

Test(tfidf, a_sketch_smaller_than_the_corpus_keeps_nearly_the_optimal_variance) {
    cr_expect_eq(check_against_reference("sketch", 400, 30, 12), 0);
}

Test(tfidf, fitting_is_deterministic_and_vectors_are_unit_or_zero) {
    size_t *lens;
    char **texts = make_texts(50, 20, &lens);
    tfidf_params p = tfidf_defaults();
    p.dim = 8;
    tfidf_model *a, *b;
    cr_assert_eq(tfidf_fit((const char *const *)texts, lens, 50, &p, &a, NULL, 0), 0);
    cr_assert_eq(tfidf_fit((const char *const *)texts, lens, 50, &p, &b, NULL, 0), 0);
    cr_assert_eq(tfidf_dim(a), 8);
    const char *probe[] = {texts[3], "nothing known here at all", ""};
    size_t probe_lens[] = {lens[3], strlen(probe[1]), 0};
    float va[3 * 8], vb[3 * 8];
    cr_assert_eq(tfidf_embed(a, probe, probe_lens, 3, va, NULL, 0), 0);
    cr_assert_eq(tfidf_embed(b, probe, probe_lens, 3, vb, NULL, 0), 0);
    cr_expect_eq(memcmp(va, vb, sizeof(va)), 0, "two fits of one corpus differ");
    double norm = 0;
    for (size_t i = 0; i < 8; i++)
        norm += (double)va[i] * va[i];
    cr_expect_float_eq(norm, 1.0, 1e-5);
    for (size_t i = 8; i < 24; i++)
        cr_expect_eq(va[i], 0.0f, "a text without known terms embeds as zero");
    tfidf_free(a);
    tfidf_free(b);
    free_texts(texts, lens, 50);
}

Test(tfidf, the_dimension_is_capped_by_the_corpus_and_the_vocabulary_by_max_terms) {
    const char *texts[] = {"alpha beta", "beta gamma", "gamma delta alpha"};
    size_t lens[] = {10, 10, 17};
    tfidf_params p = tfidf_defaults();
    p.max_terms = 3;
    tfidf_model *m;
    cr_assert_eq(tfidf_fit(texts, lens, 3, &p, &m, NULL, 0), 0);
    cr_expect_eq(tfidf_dim(m), 3, "three texts give at most three components");
    cr_expect_eq(tfidf_terms(m), 3);
    tfidf_free(m);
}

Test(tfidf, a_corpus_of_one_text_repeated_has_rank_one_and_still_fits) {
    const char *texts[] = {"same words here", "same words here", "same words here",
                           "same words here"};
    size_t lens[] = {15, 15, 15, 15};
    tfidf_params p = tfidf_defaults();
    tfidf_model *m;
    char err[256];
    cr_assert_eq(tfidf_fit(texts, lens, 4, &p, &m, err, sizeof(err)), 0, "%s", err);
    float v[2 * 8];
    cr_assert_eq(tfidf_dim(m), 1, "a corpus of rank one has one component");
    cr_assert_eq(tfidf_embed(m, texts, lens, 2, v, NULL, 0), 0);
    cr_expect_eq(memcmp(v, v + tfidf_dim(m), tfidf_dim(m) * sizeof(float)), 0);
    cr_expect_float_eq(tfidf_explained_variance(m), 1.0, 1e-6, "one direction holds it all");
    tfidf_free(m);
}

Test(tfidf, duplicates_and_texts_without_terms_leave_orthonormal_components_only) {
    /* Ten texts of rank six: the sketch (ten columns) has four directions
     * of nothing, which must not become components. */
    const char *texts[] = {"alpha beta gamma", "delta epsilon",    "zeta eta theta iota",
                           "kappa lambda",     "mu nu xi omicron", "pi rho sigma",
                           "alpha beta gamma", "delta epsilon",    "kappa lambda",
                           "!!! ???"};
    size_t lens[10];
    for (size_t i = 0; i < 10; i++)
        lens[i] = strlen(texts[i]);
    tfidf_params p = tfidf_defaults();
    tfidf_model *m;
    char err[256];
    cr_assert_eq(tfidf_fit(texts, lens, 10, &p, &m, err, sizeof(err)), 0, "%s", err);
    size_t d = tfidf_dim(m);
    cr_expect_eq(d, 6, "the corpus' rank is 6, not %zu", d);
    make_dir();
    cr_assert_eq(tfidf_save(m, dir, err, sizeof(err)), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    sl_tensors *st;
    cr_assert_eq(sl_tensors_open(path, &st, err, sizeof(err)), 0, "%s", err);
    const sl_tensor *t = sl_tensors_find(st, "components");
    cr_assert_not_null(t);
    const float *comp = sl_tensor_data(t);
    size_t V = (size_t)sl_tensor_dim(t, 0);
    for (size_t a = 0; a < d; a++)
        for (size_t b = a; b < d; b++) {
            double dot = 0;
            for (size_t r = 0; r < V; r++)
                dot += (double)comp[r * d + a] * comp[r * d + b];
            cr_expect_float_eq(dot, a == b ? 1.0 : 0.0, 1e-5, "components %zu . %zu = %g", a, b,
                               dot);
        }
    sl_tensors_close(st);
    tfidf_free(m);
}

Test(tfidf, nothing_to_fit_on_is_refused_with_a_reason) {
    char err[256];
    tfidf_params p = tfidf_defaults();
    tfidf_model *m;
    cr_expect_eq(tfidf_fit(NULL, NULL, 0, &p, &m, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "no texts") != NULL, "%s", err);
    const char *texts[] = {"... !!! ???", "--"};
    size_t lens[] = {11, 2};
    cr_expect_eq(tfidf_fit(texts, lens, 2, &p, &m, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "no term") != NULL, "%s", err);
    p.dim = 0;
    cr_expect_eq(tfidf_fit(texts, lens, 2, &p, &m, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "dim") != NULL, "%s", err);
}

/* ---- the folder --------------------------------------------------------- */

static tfidf_model *small_model(void) {
    const char *texts[] = {"red apples and green pears", "green tea and red wine",
                           "apples pears tea wine"};
    size_t lens[] = {strlen(texts[0]), strlen(texts[1]), strlen(texts[2])};
    tfidf_params p = tfidf_defaults();
    tfidf_model *m;
    cr_assert_eq(tfidf_fit(texts, lens, 3, &p, &m, NULL, 0), 0);
    return m;
}

Test(tfidf, a_saved_model_loads_back_and_embeds_the_same_through_the_embedder) {
    tfidf_model *m = small_model();
    make_dir();
    char err[512];
    cr_assert_eq(tfidf_save(m, dir, err, sizeof(err)), 0, "%s", err);
    embedder *e;
    cr_assert_eq(embedder_load(dir, &e, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(embedder_kind(e), TFIDF_MODEL_TYPE);
    cr_assert_eq(embedder_dim(e), tfidf_dim(m));
    const char *q = "green apples";
    size_t qlen = strlen(q);
    float a[8], b[8];
    cr_assert_eq(tfidf_embed(m, &q, &qlen, 1, a, NULL, 0), 0);
    cr_assert_eq(embedder_embed(e, &q, &qlen, 1, 0, b, NULL, 0), 0);
    cr_expect_eq(memcmp(a, b, tfidf_dim(m) * sizeof(float)), 0);
    embedder_free(e);
    tfidf_free(m);
}

/* Saves the small model, lets edit break one file, and expects tfidf_load
 * to refuse it with a message holding want. */
static void expect_refusal(void (*edit)(void), const char *want) {
    tfidf_model *m = small_model();
    make_dir();
    cr_assert_eq(tfidf_save(m, dir, NULL, 0), 0);
    tfidf_free(m);
    edit();
    char err[512] = "";
    tfidf_model *back = NULL;
    cr_expect_eq(tfidf_load(dir, &back, err, sizeof(err)), -EINVAL, "%s", err);
    cr_expect(strstr(err, want) != NULL, "'%s' does not say '%s'", err, want);
    cr_expect_null(back);
}

static void write_file(const char *name, const char *text) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void other_type(void) {
    write_file("config.json", "{\"model_type\": \"bert\", \"dim\": 2, \"terms\": 8}");
}
static void twice(void) { write_file("vocab.txt", "red\nred\n"); }
static void fewer_terms(void) { write_file("vocab.txt", "red\ngreen\n"); }
static void bad_shape(void) {
    float z[4] = {0};
    uint64_t shape[1] = {4};
    char path[128];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    sl_tensors_writer *w;
    cr_assert_eq(sl_tensors_writer_new(&w, NULL, 0), 0);
    cr_assert_eq(sl_tensors_add_f32(w, "idf", z, 1, shape, NULL, 0), 0);
    cr_assert_eq(sl_tensors_add_f32(w, "components", z, 1, shape, NULL, 0), 0);
    cr_assert_eq(sl_tensors_save(w, path, NULL, 0), 0);
    sl_tensors_writer_free(w);
}

Test(tfidf, a_folder_of_another_model_type_is_refused) { expect_refusal(other_type, "model_type"); }
Test(tfidf, a_term_listed_twice_is_refused) { expect_refusal(twice, "is there twice"); }
Test(tfidf, a_vocabulary_shorter_than_the_config_is_refused) {
    expect_refusal(fewer_terms, "terms, config.json says");
}
Test(tfidf, weights_of_the_wrong_shape_are_refused) {
    expect_refusal(bad_shape, "does not have the shape");
}
