/* retriever.h - search over an index folder as the index step writes it
 * (index.sluidx, rows.jsonl and the model/ that embedded its chunks): a query text is
 * embedded by that model and ranked by dense search, BM25, or both fused
 * (the default, as the LLM Engineer's Handbook's RAG retrieval does).
 * `sluice search` and the evaluate step's retrieval mode both use it.
 *
 * A retriever is immutable once open; threads may share one. Errors: 0 or
 * a negative errno, with a message in err naming the file at fault. */
#ifndef SLUICE_STEPS_RETRIEVER_H
#define SLUICE_STEPS_RETRIEVER_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

typedef enum { RETRIEVE_HYBRID, RETRIEVE_DENSE, RETRIEVE_BM25 } retrieve_mode;

/* "hybrid", "dense" or "bm25" into *mode; -EINVAL for anything else. */
int retrieve_mode_parse(const char *name, retrieve_mode *mode);
const char *retrieve_mode_name(retrieve_mode mode);

typedef struct retriever retriever;

/* Opens folder/index.sluidx (mapped), folder/rows.jsonl and folder/model. *out is the
 * caller's: close with retriever_close(). */
int retriever_open(const char *folder, retriever **out, char *err, size_t err_size);
void retriever_close(retriever *r);

/* Borrowed, valid until retriever_close(). */
const search_index *retriever_index(const retriever *r);
/* The model that embedded the chunks (and embeds the queries); borrowed
 * likewise. */
const struct embedder *retriever_embedder(const retriever *r);

/* Row id's payload (index_get) and, from rows.jsonl, its chunk id and its
 * document's link ("" when unknown). -EINVAL for an id out of range. */
typedef struct retrieved_row {
    index_row row;
    const char *chunk_id, *link;
} retrieved_row;
int retriever_row(const retriever *r, uint32_t id, retrieved_row *out);

/* The best k rows for query under filter (NULL: all rows), best first:
 * ids and scores are the caller's arrays of k, *count gets how many. A
 * query that the model embeds as the zero vector (no term it knows) has no
 * dense ranking: dense mode finds nothing, hybrid mode is BM25's. */
int retriever_search(const retriever *r, const char *query, retrieve_mode mode, size_t k,
                     const index_filter *filter, uint32_t *ids, float *scores, size_t *count,
                     char *err, size_t err_size);

#endif
