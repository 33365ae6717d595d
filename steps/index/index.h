/* index.h - the retrieval index of the LLM twin (issue 6): exact dense
 * search over L2-normalised embeddings, Okapi BM25 over the chunk texts,
 * and their fusion by Reciprocal Rank Fusion, as the LLM Engineer's
 * Handbook's RAG retrieval step does it (filtered vector search on author
 * and category, then hybrid ranking).
 *
 * An index holds n rows. Row i has a float32 vector of `dim` components
 * (L2-normalised by the caller, so that the inner product is the cosine),
 * the chunk text, and three payload strings: author, category and
 * document id. The payload strings are interned: each row stores small
 * integer ids, so filters compare integers.
 *
 * Errors: every function returning int returns 0 or a negative errno
 * (-EINVAL bad argument or malformed file, -ENOMEM, -EPERM, or a system
 * error such as -ENOENT), and when err is not NULL writes a NUL-terminated
 * message of at most errlen bytes into it. On error no output is valid
 * and the index is left as it was.
 *
 * Threads: an index may be searched from several threads at once; adding
 * rows needs exclusive access.
 *
 * File format (index_save / index_load), version 2, little-endian:
 *
 *   offset size
 *   0      8    magic "SLUIDX1\n"
 *   8      4    u32 format version (2; 1 is still read)
 *   12     4    u32 dim
 *   16     8    u64 n, the number of rows
 *   24     8    u64 vec_off: offset of the vectors, a multiple of 64
 *   32     8    u64 meta_off: offset of the metadata (vec_off + n*dim*4)
 *   40     8    u64 meta_len: its length in bytes
 *   48     8    u64 file size (meta_off + meta_len)
 *   56     8    zero (reserved)
 *   vec_off     n*dim f32, row-major (zero padding before it)
 *   meta_off    three string tables, authors, categories and document
 *               ids, each a u32 count and then per string a u32 byte
 *               length and its bytes (no NUL); then per row three u32
 *               (author, category, document id: indexes into the
 *               tables); then per row a u32 length and the text's bytes;
 *               then (version 2) the BM25 postings: a string table of the
 *               terms, per term a u32 count and count pairs of u32 (row,
 *               term count in it), rows increasing, and per row a u32
 *               length in terms (the sum of its counts).
 *
 * index_load() maps the file and reads the vectors in place (mmap, never
 * copied) and the postings as written, checked (a 20,000-chunk index opens
 * in milliseconds where tokenising its texts again took most of a second);
 * for a version 1 file it rebuilds the postings from the texts. A change of
 * the tokenisation is a new version. A file whose sizes do not match, that
 * is truncated, holds postings that do not add up, or has another magic or
 * version is refused with -EINVAL. */
#ifndef SLUICE_STEPS_INDEX_H
#define SLUICE_STEPS_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct search_index search_index;

/* Equality filter on payload strings: NULL is "any". A name that no row
 * has selects nothing (an empty result, not an error). Both set: both
 * must match. Borrowed for the call only. */
typedef struct index_filter {
    const char *author;
    const char *category;
} index_filter;

/* BM25 parameters; index_new() sets k1 = 1.2 and b = 0.75. */
typedef struct index_bm25_params {
    double k1, b;
} index_bm25_params;

/* A row's payload, borrowed from the index until the next index_add() or
 * index_free(). */
typedef struct index_row {
    const float *vector; /* dim floats */
    const char *text, *author, *category, *document_id;
} index_row;

/* An empty index for vectors of dim components (1 <= dim <= 65536).
 * *out is the caller's; free with index_free(). */
int index_new(size_t dim, search_index **out, char *err, size_t errlen);
void index_free(search_index *ix);

/* Appends one row; its id is the number of rows before it. vector (dim
 * floats, finite) and the strings are copied; any string may be NULL,
 * which stores "". Refused with -EPERM on an index from index_load()
 * (its vectors are a read-only mapping). */
int index_add(search_index *ix, const float *vector, size_t dim, const char *text,
              const char *author, const char *category, const char *document_id, char *err,
              size_t errlen);

size_t index_size(const search_index *ix);
size_t index_dim(const search_index *ix);
/* Sets the BM25 parameters; -EINVAL unless k1 >= 0 and 0 <= b <= 1. */
int index_set_bm25(search_index *ix, index_bm25_params p);
/* Row id's payload; -EINVAL when id >= index_size(). */
int index_get(const search_index *ix, size_t id, index_row *row);

/* Exact top-k by inner product for q queries (queries: q rows of dim
 * floats, row-major, finite). For query j, out_ids[j*k .. j*k+k) and
 * out_scores[...] (caller's arrays of q*k) receive the best rows, best
 * first; equal scores rank the lower row id first, so the result is
 * deterministic. out_counts[j] is how many were found: min(k, rows that
 * pass the filter); unused slots hold UINT32_MAX and -INFINITY. filter may
 * be NULL. One query scans with cblas_sgemv, several with cblas_sgemm in
 * blocks of 4096 rows (scratch memory is bounded, whatever n and q).
 * Refuses k == 0, q == 0 and dim != index_dim() with -EINVAL. */
int index_search(const search_index *ix, const float *queries, size_t q, size_t dim, size_t k,
                 const index_filter *filter, uint32_t *out_ids, float *out_scores,
                 size_t *out_counts, char *err, size_t errlen);

/* Okapi BM25 top-k for a query text. Tokens are maximal runs of word
 * characters (text_is_word: Python's \w), each code point lower-cased
 * (utf8proc_tolower); bad UTF-8 bytes separate tokens. Each distinct query
 * term t contributes, for a row D holding it f times,
 *   idf(t) * f * (k1 + 1) / (f + k1 * (1 - b + b * |D| / avgdl)),
 *   idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))
 * (N rows, n_t rows holding t, |D| D's token count, avgdl the mean |D|;
 * Lucene's non-negative idf). Only rows with a score > 0 are returned.
 * out_ids/out_scores: the caller's arrays of k; *out_count receives the
 * number found. Ties rank the lower id first. Refuses k == 0. */
int index_bm25_search(const search_index *ix, const char *query, size_t k,
                      const index_filter *filter, uint32_t *out_ids, float *out_scores,
                      size_t *out_count, char *err, size_t errlen);

/* Reciprocal Rank Fusion of nlists ranked lists of ids (lists[i] has
 * lens[i] ids, best first): score(d) = sum over the lists holding d of
 * 1 / (rrf_k + rank), rank counting from 1 (an id repeated within one list
 * counts at its first rank only). Writes the best min(k, distinct ids) to
 * out_ids / out_scores (caller's arrays of k), ties by lower id, and their
 * number to *out_count. rrf_k is usually 60. Refuses k == 0. */
int index_rrf(const uint32_t *const *lists, const size_t *lens, size_t nlists, double rrf_k,
              size_t k, uint32_t *out_ids, float *out_scores, size_t *out_count, char *err,
              size_t errlen);

/* Hybrid search: the dense top-`depth` for vector (dim floats) and the
 * BM25 top-`depth` for text, both under filter, fused by RRF with
 * rrf_k = 60; the best k go to out_ids / out_scores (caller's arrays of k),
 * their number to *out_count. depth 0 means max(k, 100). vector or text
 * may be NULL to leave that ranking out. */
int index_hybrid_search(const search_index *ix, const float *vector, size_t dim, const char *text,
                        size_t k, size_t depth, const index_filter *filter, uint32_t *out_ids,
                        float *out_scores, size_t *out_count, char *err, size_t errlen);

/* Writes the index to path (see the format above) through a temporary
 * file renamed into place, so a reader never sees half a file. */
int index_save(const search_index *ix, const char *path, char *err, size_t errlen);
/* Maps the file at path. *out is the caller's; free with index_free(). */
int index_load(const char *path, search_index **out, char *err, size_t errlen);

#endif
