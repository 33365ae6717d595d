/* warehouse_query - the first step of the LLM twin's feature pipeline: the
 * documents of some authors, from the warehouse, as a documents artifact
 * (JSON Lines: id, content, platform, author_id, author_full_name, link,
 * category), as the Handbook's query_data_warehouse step gives them. */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <stdio.h>
#include <string.h>

#include "warehouse.h"

typedef struct query {
    sl_ctx *ctx;
    sl_records_writer *out;
    size_t authors;
    size_t found, written;
    int failed;
    char err[256]; /* why writing failed */
} query;

static int wanted_author(query *q, const bson_t *doc) {
    if (q->authors == 0)
        return 1;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "author_full_name") || !BSON_ITER_HOLDS_UTF8(&it))
        return 0;
    const char *name = bson_iter_utf8(&it, NULL);
    for (size_t i = 0; i < q->authors; i++) {
        const char *a = sl_param_list_item(q->ctx, "authors", i);
        if (a && strcmp(a, name) == 0)
            return 1;
    }
    return 0;
}

static int write_doc(void *ud, const char *category, const bson_t *doc) {
    query *q = ud;
    q->found++;
    if (!wanted_author(q, doc))
        return 0;
    /* The Handbook's documents carry "id" where its warehouse says "_id". */
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    bson_iter_init(&it, doc);
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "_id") == 0)
            bson_append_iter(&out, "id", 2, &it);
        else
            bson_append_iter(&out, NULL, 0, &it);
    }
    BSON_APPEND_UTF8(&out, "category", category);
    if (sl_records_write(q->out, &out, q->err, sizeof(q->err)) != 0)
        q->failed = 1;
    bson_destroy(&out);
    q->written++;
    return q->failed || sl_cancelled(q->ctx);
}

static int run(sl_ctx *ctx) {
    const char *where = sl_param_str(ctx, "warehouse");
    const char *store = sl_store_dir(ctx);
    if (!store && (!where || !*where))
        return sl_fail(ctx, "this sluice does not tell steps where its store is (needs ABI 1.1)");
    warehouse *w;
    char err[1024];
    if (warehouse_open(&w, store, where, 1, err, sizeof(err)) != 0)
        return sl_fail(ctx, "%s", err);
    query q = {.ctx = ctx, .authors = sl_param_list_len(ctx, "authors")};
    if (sl_records_create(sl_output_path(ctx, "documents"), &q.out, q.err, sizeof(q.err)) != 0) {
        warehouse_close(w);
        return sl_fail(ctx, "the documents: %s", q.err);
    }
    int rc = 0;
    size_t n_categories = sl_param_list_len(ctx, "categories");
    for (size_t i = 0; rc == 0 && i < n_categories && !q.failed; i++)
        rc = warehouse_each(w, sl_param_list_item(ctx, "categories", i), write_doc, &q);
    if (rc)
        snprintf(err, sizeof(err), "%s", warehouse_error(w));
    warehouse_close(w);
    /* After a failed write, q.err keeps that write's reason. */
    int closed = sl_records_close(q.out, q.failed ? NULL : q.err, q.failed ? 0 : sizeof(q.err));
    if (sl_cancelled(ctx))
        return SL_ECANCELLED;
    if (rc)
        return sl_fail(ctx, "%s", err);
    if (q.failed || closed)
        return sl_fail(ctx, "the documents: %s", q.err);
    sl_metric(ctx, "documents", (double)q.written, 0);
    sl_log(ctx, SL_LOG_INFO, "%zu documents of %zu in the warehouse", q.written, q.found);
    if (q.written == 0)
        return sl_fail(ctx, "the warehouse holds no documents of these authors");
    return SL_OK;
}

static const sl_port outputs[] = {
    {"documents", "documents", "the authors' documents (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"authors", SL_PARAM_LIST, "[]", "author full names; none: every author", 0},
    {"categories", SL_PARAM_LIST, "[articles, posts, repositories]", "which collections", 0},
    {"warehouse", SL_PARAM_STRING, "\"\"", "empty: the store's own warehouse; or a mongodb:// URI",
     0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"warehouse_query", "1.1", "the documents of some authors, from the warehouse", NULL, outputs,
     params, run},
};

SL_PLUGIN_DEFINE("warehouse_query", "1.1", steps, NULL, NULL)
