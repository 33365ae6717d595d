/* index - the LLM twin's index step: the chunks, their embeddings and the
 * model that made them, as one searchable folder:
 *   index.sluidx  vectors, texts and payload (steps/index/index.h's format)
 *   rows.jsonl    per row: chunk id, document_id, author_full_name, category, link
 *   model/        the embedder, so that a query is embedded as the chunks were
 * which `sluice search` and the evaluate step open. */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "embedder.h"
#include "index.h"
#include "records.h"
#include "step_output.h"

/* The embeddings folder against the chunks: the same rows, in order. */
static int check_rows(sl_ctx *ctx, const chunk_table *rows, const chunk_table *chunks,
                      const sl_matrix *m) {
    if (sl_matrix_rows(m) != rows->n)
        return sl_fail(ctx, "embeddings: vectors.slmx has %llu rows but rows.jsonl %zu",
                       (unsigned long long)sl_matrix_rows(m), rows->n);
    if (rows->n != chunks->n)
        return sl_fail(ctx,
                       "the embeddings have %zu rows but the chunks are %zu: they must come "
                       "from the same chunk step",
                       rows->n, chunks->n);
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->id[i], chunks->id[i]) != 0)
            return sl_fail(ctx,
                           "embedding row %zu is chunk '%s' but chunk %zu is '%s': they "
                           "must come from the same chunk step",
                           i + 1, rows->id[i], i + 1, chunks->id[i]);
    return SL_OK;
}

static int build(sl_ctx *ctx, const sl_matrix *m, const chunk_table *rows,
                 const chunk_table *chunks, const char *path) {
    char err[512];
    search_index *ix = NULL;
    size_t cols = (size_t)sl_matrix_cols(m);
    const float *data = sl_matrix_data(m);
    if (index_new(cols, &ix, err, sizeof(err)) != 0)
        return sl_fail(ctx, "%s", err);
    int rc = SL_OK;
    for (size_t i = 0; rc == SL_OK && i < rows->n; i++) {
        if (index_add(ix, data + i * cols, cols, chunks->content[i], rows->author[i],
                      rows->category[i], rows->document_id[i], err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "embedding row %zu: %s", i + 1, err);
        else if (i % 1024 == 0 && sl_cancelled(ctx))
            rc = SL_ECANCELLED;
    }
    if (rc == SL_OK && index_save(ix, path, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "%s", err);
    index_free(ix);
    return rc;
}

static int run(sl_ctx *ctx) {
    const char *emb = sl_input_path(ctx, "embeddings"), *model_dir = sl_input_path(ctx, "model");
    const char *chunks_path = sl_input_path(ctx, "chunks"), *out = sl_output_path(ctx, "index");
    char path[4096], err[512];
    chunk_table rows = {0}, chunks = {0};
    sl_matrix *m = NULL;
    embedder *e = NULL;
    snprintf(path, sizeof(path), "%s/vectors.slmx", emb);
    int rc = SL_OK;
    if (sl_matrix_open(path, &m, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "embeddings: %s", err);
    snprintf(path, sizeof(path), "%s/rows.jsonl", emb);
    if (rc == SL_OK)
        rc = chunk_table_read(ctx, path, "embeddings' rows.jsonl", 0, &rows);
    if (rc == SL_OK)
        rc = chunk_table_read(ctx, chunks_path, "input 'chunks'", 1, &chunks);
    if (rc == SL_OK)
        rc = check_rows(ctx, &rows, &chunks, m);
    if (rc == SL_OK && embedder_load(model_dir, &e, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "model: %s", err);
    if (rc == SL_OK && embedder_dim(e) != sl_matrix_cols(m))
        rc = sl_fail(ctx,
                     "the model makes %zu dimensions but the embeddings have %llu: they must "
                     "come from the same embed step",
                     embedder_dim(e), (unsigned long long)sl_matrix_cols(m));
    if (rc == SL_OK && sl_matrix_cols(m) == 0)
        rc = sl_fail(ctx, "embeddings: vectors.slmx has no columns");
    if (rc == SL_OK)
        rc = step_output_folder(ctx, "index", &out);
    snprintf(path, sizeof(path), "%s/index.sluidx", out);
    if (rc == SL_OK)
        rc = build(ctx, m, &rows, &chunks, path);
    snprintf(path, sizeof(path), "%s/rows.jsonl", out);
    if (rc == SL_OK)
        rc = chunk_table_write_rows(ctx, &rows, path, "index");
    snprintf(path, sizeof(path), "%s/model", out);
    if (rc == SL_OK && mkdir(path, 0755) != 0 && errno != EEXIST)
        rc = sl_fail(ctx, "cannot create %s: %s", path, strerror(errno));
    if (rc == SL_OK && embedder_save(e, path, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "index model: %s", err);
    if (rc == SL_OK)
        sl_metric(ctx, "indexed", (double)rows.n, -1);
    embedder_free(e);
    sl_matrix_close(m);
    chunk_table_free(&rows);
    chunk_table_free(&chunks);
    return rc;
}

static const sl_port inputs[] = {
    {"embeddings", "embeddings", "the embed step's vectors and rows", 0},
    {"chunks", "chunks", "the chunks that were embedded, for their texts (BM25)", 0},
    {"model", "model", "the embed step's model, kept in the index to embed queries", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"index", "index",
     "a folder: index.sluidx (vectors, texts, author/category/document payload) and model/", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"index", "1.0",
     "build the retrieval index (exact dense search, BM25, hybrid) over embedded chunks", inputs,
     outputs, params, run},
};

SL_PLUGIN_DEFINE("index", "1.0", steps, NULL, NULL)
