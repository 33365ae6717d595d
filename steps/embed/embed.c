/* embed - the LLM twin's embed step: one unit vector per chunk, from a
 * Hugging Face BERT model (all-MiniLM-L6-v2 and its kind) when `model`
 * names its folder, else from the built-in TF-IDF + SVD model fitted here on
 * the chunks themselves. Either way the model is an output too, so that the
 * index and the queries later are embedded by exactly what embedded the
 * chunks, and lineage says which.
 *
 * The embeddings output is a folder:
 *   vectors.slmx  the float32 matrix, a row per chunk (<sluice/artifacts.h>)
 *   rows.jsonl    per row: id, document_id, author_full_name, category, link */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <bson/bson.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "embedder.h"
#include "records.h"
#include "step_output.h"

/* Texts per call to the embedder: progress and cancellation between. */
#define BATCH 64

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The built-in model's parameters, checked. */
static int builtin_params(sl_ctx *ctx, tfidf_params *p) {
    *p = tfidf_defaults();
    int64_t dim = sl_param_int(ctx, "dim"), min_df = sl_param_int(ctx, "min_df");
    int64_t max_terms = sl_param_int(ctx, "max_terms");
    if (dim < 1 || dim > 4096)
        return sl_fail(ctx, "dim is %lld: it must be from 1 to 4096", (long long)dim);
    if (min_df < 1)
        return sl_fail(ctx, "min_df is %lld: it must be at least 1", (long long)min_df);
    if (max_terms < 1 || max_terms > 1 << 24)
        return sl_fail(ctx, "max_terms is %lld: it must be from 1 to 16777216",
                       (long long)max_terms);
    p->dim = (size_t)dim;
    p->min_df = (size_t)min_df;
    p->max_terms = (size_t)max_terms;
    return SL_OK;
}

static int embed_all(sl_ctx *ctx, const embedder *e, const chunk_table *t, size_t max_tokens,
                     float *vectors) {
    size_t dim = embedder_dim(e);
    char err[512];
    for (size_t i = 0; i < t->n; i += BATCH) {
        if (sl_cancelled(ctx))
            return SL_ECANCELLED;
        size_t n = t->n - i < BATCH ? t->n - i : BATCH;
        if (embedder_embed(e, (const char *const *)t->content + i, t->content_len + i, n,
                           max_tokens, vectors + i * dim, err, sizeof(err)) != 0)
            return sl_fail(ctx, "embedding chunks %zu to %zu: %s", i + 1, i + n, err);
        sl_progress(ctx, i + n, t->n);
    }
    return SL_OK;
}

static int run(sl_ctx *ctx) {
    const char *in = sl_input_path(ctx, "chunks"), *model_dir = sl_param_str(ctx, "model");
    int64_t max_tokens = sl_param_int(ctx, "max_tokens");
    if (max_tokens < 0 || max_tokens == 1 || max_tokens == 2 || max_tokens > 1 << 20)
        return sl_fail(ctx,
                       "max_tokens is %lld: it must be 0 (the model's limit) or from 3 to "
                       "1048576 ([CLS] and [SEP] included)",
                       (long long)max_tokens);
    tfidf_params tp;
    int rc = builtin_params(ctx, &tp);
    if (rc != SL_OK)
        return rc;
    chunk_table t;
    if ((rc = chunk_table_read(ctx, in, "input 'chunks'", 1, &t)) != SL_OK) {
        chunk_table_free(&t);
        return rc;
    }
    char err[512];
    embedder *e = NULL;
    float *vectors = NULL;
    const char *emb_dir, *model_out;
    double t0 = seconds();
    if (model_dir && *model_dir) {
        if (embedder_load(model_dir, &e, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "model: %s", err);
    } else if (t.n == 0) {
        rc = sl_fail(ctx, "input 'chunks' is empty: the built-in model needs chunks to fit on");
    } else if (embedder_fit((const char *const *)t.content, t.content_len, t.n, &tp, &e, err,
                            sizeof(err)) != 0) {
        rc = sl_fail(ctx, "fitting the built-in model on %zu chunks: %s", t.n, err);
    } else {
        sl_log(ctx, SL_LOG_INFO,
               "built-in model: %zu terms, %zu dimensions, %.1f%% of the variance",
               tfidf_terms(embedder_tfidf(e)), embedder_dim(e),
               100 * tfidf_explained_variance(embedder_tfidf(e)));
        sl_metric(ctx, "terms", (double)tfidf_terms(embedder_tfidf(e)), -1);
        sl_metric(ctx, "explained_variance", tfidf_explained_variance(embedder_tfidf(e)), -1);
    }
    size_t dim = e ? embedder_dim(e) : 0, limit = e ? embedder_max_tokens(e) : 0;
    if (limit && (max_tokens == 0 || (size_t)max_tokens > limit)) {
        if (max_tokens)
            sl_log(ctx, SL_LOG_INFO, "max_tokens %lld is past the model's %zu positions: %zu",
                   (long long)max_tokens, limit, limit);
        max_tokens = (int64_t)limit;
    }
    if (rc == SL_OK && t.n > SIZE_MAX / sizeof(float) / dim)
        rc = sl_fail(ctx, "%zu chunks of %zu dimensions do not fit in memory", t.n, dim);
    if (rc == SL_OK && !(vectors = malloc((t.n ? t.n : 1) * dim * sizeof(*vectors))))
        rc = sl_fail(ctx, "out of memory for %zu vectors of %zu dimensions", t.n, dim);
    double t1 = seconds(); /* embedding alone, after loading or fitting */
    if (rc == SL_OK)
        rc = embed_all(ctx, e, &t, (size_t)max_tokens, vectors);
    double elapsed = seconds() - t1;
    if (rc == SL_OK)
        sl_metric(ctx, "seconds", seconds() - t0, -1);
    if (rc == SL_OK)
        rc = step_output_folder(ctx, "embeddings", &emb_dir);
    if (rc == SL_OK) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/vectors.slmx", emb_dir);
        if (sl_matrix_write(path, vectors, t.n, dim, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "embeddings: %s", err);
    }
    if (rc == SL_OK) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/rows.jsonl", emb_dir);
        rc = chunk_table_write_rows(ctx, &t, path, "embeddings");
    }
    if (rc == SL_OK)
        rc = step_output_folder(ctx, "model", &model_out);
    if (rc == SL_OK && embedder_save(e, model_out, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "model: %s", err);
    if (rc == SL_OK) {
        sl_metric(ctx, "embedded", (double)t.n, -1);
        sl_metric(ctx, "dim", (double)dim, -1);
        if (elapsed > 0)
            sl_metric(ctx, "chunks_per_second", (double)t.n / elapsed, -1);
    }
    free(vectors);
    embedder_free(e);
    chunk_table_free(&t);
    return rc;
}

static const sl_port inputs[] = {
    {"chunks", "chunks", "chunks with their content and payload (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"embeddings", "embeddings",
     "a folder: vectors.slmx (a float32 row per chunk, unit length) and rows.jsonl (id, "
     "document_id, author_full_name, category, link)",
     0},
    {"model", "model", "the model that embedded them, as a folder embed, index and search can load",
     0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"model", SL_PARAM_PATH, "\"\"",
     "a Hugging Face BERT model folder (config.json, model.safetensors, vocab.txt), such as "
     "all-MiniLM-L6-v2; empty: the built-in TF-IDF + SVD model, fitted on the chunks",
     0},
    {"max_tokens", SL_PARAM_INT, "256",
     "BERT: tokens per chunk, [CLS] and [SEP] included (0: the model's limit)", 0},
    {"dim", SL_PARAM_INT, "256", "built-in model: dimensions (fewer when the corpus is smaller)",
     0},
    {"min_df", SL_PARAM_INT, "1", "built-in model: a term must be in at least this many chunks", 0},
    {"max_terms", SL_PARAM_INT, "50000", "built-in model: the vocabulary's size at most", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"embed", "1.0",
     "embed chunks with a BERT model or the built-in TF-IDF + SVD model, and keep the model",
     inputs, outputs, params, run},
};

SL_PLUGIN_DEFINE("embed", "1.0", steps, NULL, NULL)
