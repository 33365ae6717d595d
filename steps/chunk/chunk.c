/* chunk - the LLM twin's chunk step for articles: sentences gathered into
 * chunks of min_length to max_length code points, as the Handbook does, each
 * chunk a record with a deterministic id (steps/text/text.h). */
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"
#include "text.h"

typedef struct bounds {
    int64_t min, max;
} bounds;

static int chunk_one(sl_ctx *ctx, const bson_t *in, uint64_t index, void *ud,
                     int (*emit)(void *, const bson_t *), void *sink) {
    const bounds *b = ud;
    uint32_t len;
    const char *content = records_str(in, "content", &len);
    if (!content)
        return sl_fail(ctx, "document %llu has no cleaned text content (run clean first)",
                       (unsigned long long)index + 1);
    const char *category = records_str(in, "category", NULL);
    if (category && strcmp(category, "articles") != 0)
        return sl_fail(ctx, "document %llu is of category '%s': this version chunks articles only",
                       (unsigned long long)index + 1, category);
    char **chunks;
    size_t n;
    if (text_chunk_article(content, len, (size_t)b->min, (size_t)b->max, &chunks, &n) != 0)
        return sl_fail(ctx, "out of memory chunking document %llu", (unsigned long long)index + 1);
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char id[37];
        text_chunk_id(chunks[i], strlen(chunks[i]), id);
        bson_t out = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&out, "id", id);
        BSON_APPEND_UTF8(&out, "content", chunks[i]);
        const char *fields[] = {"platform", "author_id", "author_full_name", "link"};
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            const char *v = records_str(in, fields[f], NULL);
            if (v)
                BSON_APPEND_UTF8(&out, fields[f], v);
        }
        const char *doc_id = records_str(in, "id", NULL);
        if (doc_id)
            BSON_APPEND_UTF8(&out, "document_id", doc_id);
        BSON_APPEND_UTF8(&out, "category", category ? category : "articles");
        BSON_APPEND_INT64(&out, "index", (int64_t)i);
        rc = emit(sink, &out);
        bson_destroy(&out);
    }
    text_chunks_free(chunks, n);
    return rc;
}

static int run(sl_ctx *ctx) {
    bounds b = {sl_param_int(ctx, "min_length"), sl_param_int(ctx, "max_length")};
    if (b.min < 0 || b.max < 1 || b.min > b.max)
        return sl_fail(ctx, "min_length %lld and max_length %lld do not make a range",
                       (long long)b.min, (long long)b.max);
    return records_map(ctx, "documents", "chunks", "chunks", chunk_one, &b);
}

static const sl_port inputs[] = {
    {"documents", "documents", "cleaned documents (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"chunks", "chunks", "id, content, document_id, author, category, index (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"min_length", SL_PARAM_INT, "1000", "shorter chunks are dropped (code points)", 0},
    {"max_length", SL_PARAM_INT, "2000", "sentences are gathered up to this length (code points)", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"chunk", "1.0", "chunk articles by sentences, as the LLM Engineer's Handbook does", inputs,
     outputs, params, run},
};

SL_PLUGIN_DEFINE("chunk", "1.0", steps, NULL, NULL)
