/* retrieval.c - the index sluice-serve loads and the jobs of its routes
 * (serve_retrieval.h). Retrieval is `sluice search`'s default: the query
 * embedded by the index's model, dense and BM25 rankings fused by
 * reciprocal rank (retriever_search, RETRIEVE_HYBRID), so that /rag's
 * context is what `sluice search INDEX QUERY -k K` lists. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "retriever.h"
#include "serve_retrieval.h"
#include "serve_retrieval_api.h"

/* Shared by the server and each job that uses it (refs), so that a reload
 * may swap in another while the jobs it took finish on this one. */
struct serve_index {
    retriever *r;
    atomic_int refs;
};

int serve_index_open(const char *folder, serve_index **out, char *err, size_t err_size) {
    serve_index *ix = calloc(1, sizeof(*ix));
    if (!ix) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    int rc = retriever_open(folder, &ix->r, err, err_size);
    if (rc) {
        free(ix);
        return rc;
    }
    atomic_init(&ix->refs, 1);
    *out = ix;
    return 0;
}

void serve_index_close(serve_index *ix) {
    /* a job's reference may go on a slot's thread: atomic */
    if (!ix || atomic_fetch_sub(&ix->refs, 1) > 1)
        return;
    retriever_close(ix->r);
    free(ix);
}

/* A job's own part (gen_job.extra). */
typedef struct index_work {
    serve_index *ix; /* a reference, dropped with the work */
    int rag;
    /* embeddings */
    embed_request embed;
    float *vectors; /* embed.n rows of dim */
    size_t dim;
    long tokens;
    /* rag: the chunks, borrowed from the index */
    rag_chunk chunks[API_RAG_MAX_K];
    size_t n_chunks;
} index_work;

static void work_free(void *p) {
    index_work *w = p;
    if (!w)
        return;
    embed_request_free(&w->embed);
    free(w->vectors);
    serve_index_close(w->ix);
    free(w);
}

static int embed_prepare(gen_job *j, char *message, size_t size) {
    index_work *w = j->extra;
    const embedder *e = retriever_embedder(w->ix->r);
    if (!(w->vectors = malloc(w->embed.n * w->dim * sizeof(float)))) {
        snprintf(message, size, "out of memory");
        return 500;
    }
    if (embedder_embed(e, (const char *const *)w->embed.inputs, w->embed.lens, w->embed.n, 0,
                       w->vectors, message, size) != 0)
        return 500;
    for (size_t i = 0; i < w->embed.n; i++) {
        size_t n;
        if (embedder_count_tokens(e, w->embed.inputs[i], w->embed.lens[i], &n) != 0) {
            snprintf(message, size, "out of memory");
            return 500;
        }
        w->tokens += (long)n;
    }
    return GEN_PREPARED;
}

static int rag_prepare(gen_job *j, char *message, size_t size) {
    index_work *w = j->extra;
    uint32_t ids[API_RAG_MAX_K];
    float scores[API_RAG_MAX_K];
    size_t count = 0;
    index_filter filter = {j->req.filter_author, j->req.filter_category};
    if (retriever_search(w->ix->r, j->req.query, RETRIEVE_HYBRID, (size_t)j->req.k, &filter, ids,
                         scores, &count, message, size) != 0)
        return 500;
    for (size_t i = 0; i < count; i++) {
        retrieved_row row;
        if (retriever_row(w->ix->r, ids[i], &row) != 0)
            continue; /* not expected: the ids are the index's own */
        rag_chunk *c = &w->chunks[w->n_chunks++];
        c->id = row.chunk_id;
        c->link = row.link;
        c->text = row.row.text;
        c->score = scores[i];
    }
    if (!(j->req.prompt = rag_prompt(j->req.query, w->chunks, w->n_chunks))) {
        snprintf(message, size, "out of memory");
        return 500;
    }
    return 0;
}

int serve_index_job(serve_index *ix, int rag, const char *body, size_t len, gen_job *j,
                    const char **param, char *err, size_t err_size) {
    index_work *w = calloc(1, sizeof(*w));
    if (!w) {
        *param = NULL;
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    w->ix = ix;
    atomic_fetch_add(&ix->refs, 1);
    w->rag = rag;
    j->extra = w;
    j->extra_free = work_free;
    j->prepare = rag ? rag_prepare : embed_prepare;
    if (rag)
        return api_parse(API_RAG, body, len, &j->req, param, err, err_size);
    int rc = embed_parse(body, len, &w->embed, param, err, err_size);
    if (rc)
        return rc;
    w->dim = embedder_dim(retriever_embedder(ix->r));
    if (w->embed.dimensions >= 0 && (size_t)w->embed.dimensions != w->dim) {
        *param = "dimensions";
        snprintf(err, err_size,
                 "'dimensions' %ld: the index's embedding model makes %zu and cannot shorten them",
                 w->embed.dimensions, w->dim);
        return -EINVAL;
    }
    return 0;
}

size_t serve_index_context_ids(const gen_job *j, const char **ids, size_t max) {
    const index_work *w = j->extra;
    size_t n = 0;
    for (; w && w->rag && n < w->n_chunks && n < max; n++)
        ids[n] = w->chunks[n].id;
    return n;
}

void serve_index_answer(api_buf *b, const gen_job *j, const char *model_name,
                        const api_result *res) {
    const index_work *w = j->extra;
    if (w->rag) {
        rag_answer(b, model_name, w->chunks, w->n_chunks, res);
        return;
    }
    const char *name =
        w->embed.model ? w->embed.model : embedder_kind(retriever_embedder(w->ix->r));
    embed_answer(b, w->vectors, w->embed.n, w->dim, w->embed.base64, name, w->tokens);
}

void serve_index_context_event(api_buf *b, const gen_job *j, const char *id, const char *name) {
    const index_work *w = j->extra;
    api_buf_printf(b, "data: {\"id\": \"%s\", \"object\": \"rag.context\", \"model\": ", id);
    api_buf_json(b, name, strlen(name));
    api_buf_add(b, ", \"context\": ", 13);
    rag_context(b, w->chunks, w->n_chunks);
    api_buf_add(b, "}\n\n", 3);
}

void serve_index_retrieved(api_buf *b, const gen_job *j) {
    const index_work *w = j->extra;
    api_buf_add(b, "{\"answer\": null, \"context\": ", 28);
    rag_context(b, w->chunks, w->n_chunks);
    api_buf_add(b, ", \"finish_reason\": null, \"model\": null}\n", 40);
}
