/* tfidf.h - the built-in embedder, which needs no download: latent semantic
 * analysis fitted on the chunk corpus inside the pipeline.
 *
 * Fitting: the terms of every text (text_each_term: lower-cased runs of
 * word characters) are counted; the vocabulary is the terms found in at
 * least min_df texts, the max_terms most frequent (by document frequency,
 * then bytes, so it is deterministic). A text's vector is its TF-IDF row,
 *   w(t) = (1 + ln tf(t)) * idf(t),  idf(t) = ln((1 + N) / (1 + df(t))) + 1
 * (scikit-learn's smooth idf with sublinear tf), L2-normalised. The
 * components are the top `dim` right singular vectors of the N x V TF-IDF
 * matrix, computed by a randomised SVD (Halko, Martinsson and Tropp 2011:
 * a Gaussian sketch from a seeded generator, power iterations that
 * re-orthonormalise the smaller sketch each round (Cholesky QR twice, or
 * Householder QR where that fails), then the eigenvectors of the small
 * Gram matrix through LAPACK), each signed so that its largest component is positive. The
 * same corpus and parameters give the same model, byte for byte, on the
 * same machine.
 *
 * Embedding: the TF-IDF row times the components (a V x dim matrix), then
 * L2-normalised, so inner products are cosines. A text with no term of the
 * vocabulary embeds as the zero vector.
 *
 * On disk (tfidf_save / tfidf_load), a folder loadable by other tools:
 *   config.json        {"model_type": "sluice_tfidf_svd", "dim", "terms",
 *                       "documents", "min_df", "explained_variance", ...}
 *   vocab.txt          the V terms, one per line, in row order
 *   model.safetensors  "idf" [V] and "components" [V, dim], F32
 *
 * A model is immutable once fitted or loaded; threads may share one. */
#ifndef SLUICE_STEPS_TFIDF_H
#define SLUICE_STEPS_TFIDF_H

#include <stddef.h>
#include <stdint.h>

#define TFIDF_MODEL_TYPE "sluice_tfidf_svd"

typedef struct tfidf_params {
    size_t dim;           /* components wanted; fewer when the corpus has fewer texts or terms */
    size_t min_df;        /* at least 1 */
    size_t max_terms;     /* vocabulary cap, at least 1 */
    unsigned power_iters; /* 4 to 7 is plenty for text */
    uint64_t seed;
} tfidf_params;

/* dim 256, min_df 1, max_terms 50000, power_iters 5, seed 42. */
tfidf_params tfidf_defaults(void);

typedef struct tfidf_model tfidf_model;

/* Fits a model on n texts (texts[i] of lens[i] bytes). -EINVAL with a
 * message when there is no text or no term, or a parameter is out of
 * range; -ENOMEM; -EIO when LAPACK fails. *out is the caller's: free with
 * tfidf_free(). */
int tfidf_fit(const char *const *texts, const size_t *lens, size_t n, const tfidf_params *p,
              tfidf_model **out, char *err, size_t err_size);

/* Writes the three files into the existing folder dir. */
int tfidf_save(const tfidf_model *m, const char *dir, char *err, size_t err_size);
/* Reads a folder tfidf_save() wrote, checking that the files agree
 * (terms, shapes, dtypes, finite values) and naming the file at fault. */
int tfidf_load(const char *dir, tfidf_model **out, char *err, size_t err_size);
void tfidf_free(tfidf_model *m);

size_t tfidf_dim(const tfidf_model *m);
size_t tfidf_terms(const tfidf_model *m);
/* The share of the TF-IDF matrix's squared norm that the components keep,
 * in [0, 1] (0 for a loaded model that did not record it). */
double tfidf_explained_variance(const tfidf_model *m);

/* Embeds n texts into out (n rows of tfidf_dim() floats). 0 or -ENOMEM. */
int tfidf_embed(const tfidf_model *m, const char *const *texts, const size_t *lens, size_t n,
                float *out, char *err, size_t err_size);

#endif
