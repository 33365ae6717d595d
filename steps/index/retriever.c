/* retriever.c - an index folder, its model, and a query's ranking. */
#include "retriever.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>
#include <sluice/artifacts.h>

#include "embedder.h"
#include "strtab.h"
#include "errbuf.h"

struct retriever {
    search_index *ix;
    embedder *model;
    strtab chunk_ids, links;   /* interned strings */
    uint32_t *chunk_id, *link; /* per row, ids into them */
};

static const char *const mode_names[] = {"hybrid", "dense", "bm25"};

int retrieve_mode_parse(const char *name, retrieve_mode *mode) {
    for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *mode = (retrieve_mode)i;
            return 0;
        }
    return -EINVAL;
}

const char *retrieve_mode_name(retrieve_mode mode) { return mode_names[mode]; }

void retriever_close(retriever *r) {
    if (!r)
        return;
    index_free(r->ix);
    embedder_free(r->model);
    strtab_free(&r->chunk_ids);
    strtab_free(&r->links);
    free(r->chunk_id);
    free(r->link);
    free(r);
}

static int intern_field(strtab *t, const bson_t *doc, const char *key, uint32_t *id) {
    bson_iter_t it;
    const char *s = "";
    uint32_t len = 0;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        s = bson_iter_utf8(&it, &len);
    return strtab_intern(t, s, len, id);
}

/* rows.jsonl: a chunk id and a link per row of the index. */
static int read_rows(retriever *r, const char *path, char *err, size_t err_size) {
    size_t n = index_size(r->ix);
    r->chunk_id = malloc((n ? n : 1) * sizeof(*r->chunk_id));
    r->link = malloc((n ? n : 1) * sizeof(*r->link));
    if (!r->chunk_id || !r->link)
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
    sl_records_reader *rd = NULL;
    int rc = sl_records_open(path, &rd, err, err_size);
    size_t i = 0;
    while (rc == 0) {
        bson_t doc;
        int got = sl_records_next(rd, &doc, err, err_size);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (i == n)
            rc = errbuf_set(err, err_size, -EINVAL, "%s: more rows than the index's %zu", path, n);
        else if (intern_field(&r->chunk_ids, &doc, "id", &r->chunk_id[i]) ||
                 intern_field(&r->links, &doc, "link", &r->link[i]))
            rc = errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
        i++;
        bson_destroy(&doc);
    }
    sl_records_free(rd);
    if (rc == 0 && i != n)
        rc = errbuf_set(err, err_size, -EINVAL, "%s: %zu rows, the index has %zu", path, i, n);
    return rc;
}

int retriever_open(const char *folder, retriever **out, char *err, size_t err_size) {
    retriever *r = calloc(1, sizeof(*r));
    if (!r)
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    char path[4096];
    snprintf(path, sizeof(path), "%s/index.sluidx", folder);
    int rc = index_load(path, &r->ix, err, err_size);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/rows.jsonl", folder);
        rc = read_rows(r, path, err, err_size);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/model", folder);
        rc = embedder_load(path, &r->model, err, err_size);
    }
    if (rc == 0 && embedder_dim(r->model) != index_dim(r->ix))
        rc = errbuf_set(err, err_size, -EINVAL,
                        "%s: the model makes %zu dimensions but the index holds %zu", folder,
                        embedder_dim(r->model), index_dim(r->ix));
    if (rc)
        retriever_close(r);
    else
        *out = r;
    return rc;
}

const search_index *retriever_index(const retriever *r) { return r->ix; }

const embedder *retriever_embedder(const retriever *r) { return r->model; }

int retriever_row(const retriever *r, uint32_t id, retrieved_row *out) {
    int rc = index_get(r->ix, id, &out->row);
    if (rc)
        return rc;
    out->chunk_id = r->chunk_ids.s[r->chunk_id[id]];
    out->link = r->links.s[r->link[id]];
    return 0;
}

int retriever_search(const retriever *r, const char *query, retrieve_mode mode, size_t k,
                     const index_filter *filter, uint32_t *ids, float *scores, size_t *count,
                     char *err, size_t err_size) {
    *count = 0;
    float *vector = NULL;
    int rc = 0;
    if (mode != RETRIEVE_BM25) {
        size_t dim = embedder_dim(r->model), len = strlen(query);
        if (!(vector = malloc(dim * sizeof(*vector))))
            return errbuf_set(err, err_size, -ENOMEM, "out of memory");
        rc = embedder_embed(r->model, &query, &len, 1, 0, vector, err, err_size);
        int zero = 1;
        for (size_t i = 0; rc == 0 && zero && i < dim; i++)
            zero = vector[i] == 0.0f;
        if (rc == 0 && zero) {
            free(vector);
            vector = NULL;
        }
    }
    if (rc == 0 && mode == RETRIEVE_DENSE && vector)
        rc = index_search(r->ix, vector, 1, index_dim(r->ix), k, filter, ids, scores, count, err,
                          err_size);
    else if (rc == 0 && mode == RETRIEVE_BM25)
        rc = index_bm25_search(r->ix, query, k, filter, ids, scores, count, err, err_size);
    else if (rc == 0 && mode == RETRIEVE_HYBRID)
        rc = index_hybrid_search(r->ix, vector, index_dim(r->ix), query, k, 0, filter, ids, scores,
                                 count, err, err_size);
    free(vector);
    return rc;
}
