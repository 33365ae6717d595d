/* fuzz_serve_request - libFuzzer target for what sluice-serve does with a
 * client's bytes before any model runs: picohttpparser's request parsing
 * (as steps/serve/http.c calls it, in pieces as they may arrive; a chunked
 * body decoded the same way) and the
 * body read as a chat, a text completion, a /rag and an embeddings request
 * (libbson, the field checks, the chat template, the RAG prompt), then the
 * answers and an error object written with the request's strings (the
 * JSON escaping of arbitrary bytes, base64). Any crash, leak or sanitizer
 * report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "picohttp.h"
#include "serve_api.h"
#include "serve_retrieval_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use_body(api_kind kind, const char *body, size_t len) {
    api_request r;
    const char *param;
    char err[512];
    api_buf b = {0};
    if (api_parse(kind, body, len, &r, &param, err, sizeof(err)) != 0) {
        api_error(&b, err, "invalid_request_error", param, NULL);
        api_buf_free(&b);
        return;
    }
    if (kind == API_RAG) {
        /* the query as the chunks' texts too: they are arbitrary bytes of
         * the store's */
        rag_chunk chunks[2] = {{"c1", "", r.query, 0.5}, {r.query, r.query, "text", 0.25}};
        char *prompt = rag_prompt(r.query, chunks, 2);
        api_result res = {prompt ? prompt : "", prompt ? strlen(prompt) : 0, "stop", 1, 2};
        rag_answer(&b, r.model ? r.model : "m", chunks, (size_t)r.k < 2 ? (size_t)r.k : 2, &res);
        free(prompt);
        api_buf_free(&b);
        api_request_free(&r);
        return;
    }
    api_result res = {r.prompt, strlen(r.prompt), "stop", 1, 2};
    api_answer(&b, kind, "id", 0, r.model ? r.model : "m", &res);
    api_chunk(&b, kind, "id", 0, "m", 1, r.prompt, strlen(r.prompt), NULL, NULL);
    api_chunk(&b, kind, "id", 0, "m", 0, "", 0, "length", &res);
    api_buf_free(&b);
    api_request_free(&r);
}

/* The body as an embeddings request; its texts' bytes as the vectors. */
static void use_embeddings(const char *body, size_t len) {
    embed_request r;
    const char *param;
    char err[512];
    api_buf b = {0};
    if (embed_parse(body, len, &r, &param, err, sizeof(err)) != 0) {
        api_error(&b, err, "invalid_request_error", param, NULL);
        api_buf_free(&b);
        return;
    }
    float v[2 * 7];
    for (size_t i = 0; i < 2 * 7; i++)
        v[i] = (float)(unsigned char)r.inputs[i % r.n][i % r.lens[i % r.n]] / 7.0f;
    embed_answer(&b, v, r.n < 2 ? r.n : 2, 7, r.base64, r.model ? r.model : "m", (long)r.n);
    api_buf_base64(&b, r.inputs[0], r.lens[0]);
    api_buf_free(&b);
    embed_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    const char *method, *path;
    size_t method_len, path_len, nh;
    int minor, rc = -2;
    struct phr_header hs[64];
    /* in two pieces, resumed as the server does when a head arrives split */
    size_t first = size / 2;
    nh = 64;
    if (phr_parse_request(buf, first, &method, &method_len, &path, &path_len, &minor, hs, &nh, 0) ==
        -2) {
        nh = 64;
        rc = phr_parse_request(buf, size, &method, &method_len, &path, &path_len, &minor, hs, &nh,
                               first);
    }
    size_t at = rc > 0 ? (size_t)rc : 0;
    /* the body (or the whole input when it is no request) as both kinds */
    use_body(API_CHAT, buf + at, size - at);
    use_body(API_COMPLETION, buf + at, size - at);
    use_body(API_RAG, buf + at, size - at);
    use_embeddings(buf + at, size - at);
    /* the rest as a chunked body, decoded in place in two pieces as
     * http.c decodes one arriving in two reads */
    size_t rest = size - at;
    char *copy = malloc(rest + 1);
    if (copy) {
        memcpy(copy, buf + at, rest);
        struct phr_chunked_decoder dec;
        memset(&dec, 0, sizeof(dec));
        dec.consume_trailer = 1;
        size_t half = rest / 2, n = half;
        if (phr_decode_chunked(&dec, copy, &n) == -2) {
            size_t m = rest - half;
            memmove(copy + n, copy + half, m);
            if (phr_decode_chunked(&dec, copy + n, &m) >= 0)
                use_body(API_COMPLETION, copy, n + m);
        }
        free(copy);
    }
    return 0;
}
