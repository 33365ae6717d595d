/* serve_retrieval_api.h - the JSON of sluice-serve's retrieval routes:
 * POST /v1/embeddings as OpenAI's API defines it (the request read, the
 * vectors written as floats or base64), and POST /rag's prompt and answer
 * (its request is api_parse's API_RAG). Pure functions, as serve_api.h's:
 * nothing here touches the network, the index or a model (the fuzz target
 * runs them on arbitrary bytes). */
#ifndef SLUICE_SERVE_RETRIEVAL_API_H
#define SLUICE_SERVE_RETRIEVAL_API_H

#include <stddef.h>

#include "serve_api.h"

#define EMBED_MAX_INPUTS 2048 /* OpenAI's limit on an array of inputs */

/* An embeddings request. Strings are the request's own
 * (embed_request_free). */
typedef struct embed_request {
    char *model;   /* as the client named it; NULL when absent */
    char **inputs; /* n texts, each non-empty and NUL-free */
    size_t *lens;
    size_t n;
    int base64;      /* encoding_format "base64": little-endian float32 bytes */
    long dimensions; /* -1 when absent */
} embed_request;

/* Parses body[0..len): "input" a string or an array of 1 to
 * EMBED_MAX_INPUTS strings (arrays of token ids are refused: -EINVAL
 * saying to send text), "model" any string, "encoding_format" float or
 * base64, "dimensions" a whole number; other fields are ignored. -EINVAL
 * with a message and *param (static, may be NULL) naming the field,
 * -ENOMEM. On failure r holds nothing to free. */
int embed_parse(const char *body, size_t len, embed_request *r, const char **param, char *err,
                size_t err_size);
void embed_request_free(embed_request *r);

/* OpenAI's answer: {"object": "list", "data": [{"object": "embedding",
 * "index", "embedding"}], "model", "usage": {"prompt_tokens",
 * "total_tokens"}} for n vectors of dim floats (row-major). */
void embed_answer(api_buf *b, const float *vectors, size_t n, size_t dim, int base64,
                  const char *model, long tokens);

/* data[0..n) in standard base64 with padding (RFC 4648), unquoted. */
void api_buf_base64(api_buf *b, const void *data, size_t n);

/* One retrieved chunk, borrowed from the index. */
typedef struct rag_chunk {
    const char *id, *link, *text;
    double score;
} rag_chunk;

/* The prompt for query answered from n chunks: the LLM Engineer's
 * Handbook's RAG instruction (its InferenceExecutor's: write what the user
 * asks with the context as the primary source, the query, then each chunk
 * numbered with its link), as the instruction of the Alpaca template the
 * sft method trains with (train_alpaca_prompt), so that a twin SFT-trained
 * by sluice reads it as it was trained. NULL when out of memory. */
char *rag_prompt(const char *query, const rag_chunk *chunks, size_t n);

/* The chunks as /rag's "context" array: [{"id", "link", "score", "text"}]. */
void rag_context(api_buf *b, const rag_chunk *chunks, size_t n);

/* The /rag answer: {"answer", "context": [{"id", "link", "score",
 * "text"}], "finish_reason", "usage", "model"}; res as api_answer takes it. */
void rag_answer(api_buf *b, const char *model, const rag_chunk *chunks, size_t n,
                const api_result *res);

#endif
