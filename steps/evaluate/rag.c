/* rag.c - the rag metric (rag.h). */
#include "rag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking.h"

int rag_match_parse(const char *name, rag_match *m) {
    if (name && strcmp(name, "chunk") == 0)
        *m = RAG_MATCH_CHUNK;
    else if (name && strcmp(name, "document") == 0)
        *m = RAG_MATCH_DOCUMENT;
    else
        return -EINVAL;
    return 0;
}

void rag_map_free(rag_map *m) {
    strtab_free(&m->chunks);
    strtab_free(&m->docs);
    free(m->chunk_row);
    free(m->row_doc);
    free(m->seen);
    memset(m, 0, sizeof(*m));
}

int rag_map_build(const retriever *r, rag_map *m) {
    memset(m, 0, sizeof(*m));
    size_t n = index_size(retriever_index(r));
    m->chunk_row = malloc((n ? n : 1) * sizeof(*m->chunk_row));
    m->row_doc = malloc((n ? n : 1) * sizeof(*m->row_doc));
    if (!m->chunk_row || !m->row_doc)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        retrieved_row row;
        if (retriever_row(r, (uint32_t)i, &row) != 0)
            return -EINVAL;
        const char *doc = *row.row.document_id ? row.row.document_id : row.chunk_id;
        uint32_t before = (uint32_t)m->chunks.n, id;
        if (strtab_intern(&m->chunks, row.chunk_id, strlen(row.chunk_id), &id) != 0 ||
            strtab_intern(&m->docs, doc, strlen(doc), &m->row_doc[i]) != 0)
            return -ENOMEM;
        if (id >= before) /* a chunk id seen twice keeps its first row */
            m->chunk_row[id] = (uint32_t)i;
    }
    return (m->seen = calloc(m->docs.n ? m->docs.n : 1, sizeof(*m->seen))) ? 0 : -ENOMEM;
}

int rag_rank(const retriever *r, rag_map *m, const char *query, retrieve_mode mode, rag_match match,
             const char *extract_id, const char *document_id, size_t depth, size_t *rank, char *err,
             size_t err_size) {
    *rank = 0;
    const char *key = match == RAG_MATCH_CHUNK ? extract_id : document_id;
    const strtab *names = match == RAG_MATCH_CHUNK ? &m->chunks : &m->docs;
    uint32_t want = key ? strtab_find(names, key, strlen(key)) : STRTAB_NONE;
    if (want == STRTAB_NONE)
        return RAG_UNKNOWN;
    uint32_t *ids = malloc(depth * sizeof(*ids));
    float *scores = malloc(depth * sizeof(*scores));
    size_t count = 0;
    int rc = ids && scores ? 0 : -ENOMEM;
    if (rc)
        snprintf(err, err_size, "out of memory");
    else
        rc = retriever_search(r, query, mode, depth, NULL, ids, scores, &count, err, err_size);
    uint32_t stamp = ++m->queries;
    size_t docs = 0;
    for (size_t i = 0; rc == 0 && i < count && !*rank; i++) {
        if (match == RAG_MATCH_CHUNK) {
            if (ids[i] == m->chunk_row[want])
                *rank = i + 1;
            continue;
        }
        uint32_t doc = m->row_doc[ids[i]];
        if (m->seen[doc] == stamp)
            continue; /* a later row of a document already ranked */
        m->seen[doc] = stamp;
        docs++;
        if (doc == want)
            *rank = docs;
    }
    free(ids);
    free(scores);
    return rc;
}

void rag_scores(size_t rank, size_t k, double *recall, double *reciprocal_rank) {
    /* The list as far as the hit (rank - 1 misses, then the hit), or empty when the hit is not
     * within k. */
    unsigned char list[RAG_MAX_K] = {0};
    size_t n = rank && rank <= k && rank <= RAG_MAX_K ? rank : 0;
    if (n)
        list[n - 1] = 1;
    ranking_scores s = {0, 0, 0};
    ranking_score(list, n, 1, k, &s);
    *recall = s.recall;
    *reciprocal_rank = s.reciprocal_rank;
}
