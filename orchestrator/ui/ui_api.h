/* ui_api.h - the dashboard's JSON API under /api/ and its pages
 * (docs/dashboard.md): what 'sluice ui' serves, from the store's metadata
 * (read-only transactions, one a request, so a running pipeline's writes
 * show at the next request). */
#ifndef SLUICE_UI_API_H
#define SLUICE_UI_API_H

#include <bson/bson.h>

#include "meta.h"
#include "ui_http.h"

typedef struct ui_ctx {
    const char *store;   /* borrowed: the store's root */
    const char *api_key; /* borrowed: the key writes need, or NULL (read-only) */
    meta_db m;           /* opened at the first request that finds the store */
    int have_meta;
    void *gvc; /* Graphviz's context (GVC_t *), made at the first graph */
} ui_ctx;

/* The request handler (ui_handler) for a ui_ctx. */
void ui_api_handle(void *ctx, const ui_request *req, ui_response *res);
/* Frees what the handler made in ctx (the metadata, Graphviz). */
void ui_api_close(ui_ctx *ctx);

/* ---- shared by the API's files ---- */

/* A JSON error response: {"error": message}. */
void ui_error(ui_response *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* doc as JSON into res (200). */
void ui_json(ui_response *res, const bson_t *doc);
/* A read transaction on the store's metadata; on failure res holds the
 * error (503 no store yet) and -1 is returned. */
int ui_begin(ui_ctx *c, MDB_txn **txn, ui_response *res);
/* Resolves a run id, a unique prefix of one, or "latest" into out; 0, or
 * -1 with res holding 404. */
int ui_resolve_run(ui_ctx *c, MDB_txn *txn, const char *spec, char *out, size_t size,
                   ui_response *res);
/* ui_begin, ui_resolve_run and the run's record (borrowed from *txn) into
 * *run, its id into id; 0, or -1 with res holding the error and no
 * transaction left open. */
int ui_open_run(ui_ctx *c, const char *spec, MDB_txn **txn, char *id, size_t size, bson_t *run,
                ui_response *res);
/* A string or number field of doc. */
const char *ui_str(const bson_t *doc, const char *key, const char *fallback);
double ui_num(const bson_t *doc, const char *key);
/* Appends doc to array as its next element. */
void ui_array_add(bson_t *array, const bson_t *doc);

/* The run's step states as Graphviz laid them out: SVG (ui_graph.c). */
void ui_graph_svg(ui_ctx *c, const char *run, ui_response *res);
/* The lineage graph of an artifact as SVG (ui_graph.c). */
void ui_lineage_svg(ui_ctx *c, const char *spec, ui_response *res);
/* Artifacts, lineage, models, schedules, traces (ui_store.c). */
void ui_artifact(ui_ctx *c, const char *spec, const char *query, ui_response *res);
void ui_lineage(ui_ctx *c, const char *spec, ui_response *res);
/* The lineage as nodes and edges, for JSON and the graph: adds to out
 * {"artifact": hash, "nodes": [...], "edges": [...]}; 0 or -1 (res set). */
int ui_lineage_doc(ui_ctx *c, MDB_txn *txn, const char *spec, bson_t *out, ui_response *res);
void ui_models(ui_ctx *c, ui_response *res);
void ui_schedules(ui_ctx *c, ui_response *res);
void ui_traces(ui_ctx *c, const char *query, ui_response *res);

/* The static pages (ui_assets.c, generated from assets/ at build time). */
typedef struct ui_asset {
    const char *path; /* "/", "/assets/app.js" */
    const char *type;
    const unsigned char *data;
    size_t len;
} ui_asset;
extern const ui_asset ui_assets[];
extern const size_t ui_n_assets;

#endif
