/* rag.h - the evaluate step's rag metric: the twin's retrieval measured on
 * its own data. Each test example that dataset_gen made from an extract
 * records the extract's chunk id and document id (docs/dataset_gen.md);
 * its instruction is run as a query against the index (retriever.h), and
 * the rank at which the extract comes back gives recall@k and the
 * reciprocal rank (ranking.h, one relevant item).
 *
 * What counts as finding the extract (rag_match):
 *   chunk     the index row whose chunk id is the extract's: the index
 *             was built from the chunks dataset_gen read;
 *   document  any row of the extract's document, documents ranked at
 *             their first row (as the retrieval mode ranks them): the
 *             index was chunked otherwise (feature_engineering's chunks). */
#ifndef SLUICE_STEPS_RAG_H
#define SLUICE_STEPS_RAG_H

#include <stddef.h>
#include <stdint.h>

#include "retriever.h"
#include "strtab.h"

typedef enum rag_match { RAG_MATCH_CHUNK, RAG_MATCH_DOCUMENT } rag_match;

/* "chunk" or "document" into *m; -EINVAL otherwise. */
int rag_match_parse(const char *name, rag_match *m);

/* The index's chunk ids and documents, looked up by their names. */
typedef struct rag_map {
    strtab chunks; /* chunk id -> its first row */
    uint32_t *chunk_row;
    strtab docs;       /* document id (or the chunk id of a row without one) */
    uint32_t *row_doc; /* per row: its document */
    uint32_t *seen;    /* per document: the query that last ranked it, + 1 */
    uint32_t queries;
} rag_map;

/* Reads every row of r's index into m (the caller's; rag_map_free() it
 * either way). 0, -ENOMEM or -EINVAL (a row that cannot be read). */
int rag_map_build(const retriever *r, rag_map *m);
void rag_map_free(rag_map *m);

enum { RAG_UNKNOWN = 1 };

/* Runs query against r (mode, the first depth rows) and says in *rank at
 * which rank (from 1; 0: not within depth) the source comes back, as
 * match says. Returns 0; RAG_UNKNOWN when the index holds no such chunk
 * (chunk) or document (document), so that no rank can be had; or a
 * negative errno with err filled. */
int rag_rank(const retriever *r, rag_map *m, const char *query, retrieve_mode mode, rag_match match,
             const char *extract_id, const char *document_id, size_t depth, size_t *rank, char *err,
             size_t err_size);

/* recall@k and RR@k of an example found at rank (0: not found), from
 * ranking_score with one relevant item; k from 1 to RAG_MAX_K. */
#define RAG_MAX_K 1000
void rag_scores(size_t rank, size_t k, double *recall, double *reciprocal_rank);

#endif
