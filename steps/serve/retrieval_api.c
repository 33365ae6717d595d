/* retrieval_api.c - the embeddings request and answer, the RAG prompt and
 * the /rag answer (serve_retrieval_api.h). */
#include <bson/bson.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples.h"
#include "serve_retrieval_api.h"

void embed_request_free(embed_request *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->inputs[i]);
    free(r->inputs);
    free(r->lens);
    free(r->model);
    memset(r, 0, sizeof(*r));
}

/* The string at it, copied, when it is a non-empty one without NUL; else
 * NULL with *bad set (or *bad clear: out of memory). */
static char *text_of(const bson_iter_t *it, size_t *len, int *bad) {
    uint32_t n = 0;
    const char *s = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &n) : NULL;
    *bad = !s || !n || memchr(s, 0, n);
    if (*bad)
        return NULL;
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n), d[n] = 0;
    *len = n;
    return d;
}

static int add_input(embed_request *r, const bson_iter_t *it, int *bad) {
    size_t len;
    char *s = text_of(it, &len, bad);
    if (!s)
        return -1;
    /* grown one by one: at most EMBED_MAX_INPUTS, each a string of the body */
    char **in = realloc(r->inputs, (r->n + 1) * sizeof(*in));
    if (in)
        r->inputs = in;
    size_t *lens = in ? realloc(r->lens, (r->n + 1) * sizeof(*lens)) : NULL;
    if (lens)
        r->lens = lens;
    if (!in || !lens) {
        free(s);
        return -1;
    }
    r->inputs[r->n] = s;
    r->lens[r->n++] = len;
    return 0;
}

#define FAIL API_FAIL

#define OOM()                                                                                      \
    do {                                                                                           \
        snprintf(err, err_size, "out of memory");                                                  \
        rc = -ENOMEM;                                                                              \
        goto fail;                                                                                 \
    } while (0)

static int parse_input(const bson_iter_t *field, embed_request *r, const char **param, char *err,
                       size_t err_size) {
    int rc = 0, bad;
    if (BSON_ITER_HOLDS_UTF8(field)) {
        if (add_input(r, field, &bad) != 0) {
            if (bad)
                FAIL("input", "'input' must be a non-empty string (without NUL)");
            OOM();
        }
        return 0;
    }
    if (!BSON_ITER_HOLDS_ARRAY(field))
        FAIL("input", "'input' must be a string or an array of strings");
    bson_iter_t arr;
    bson_iter_recurse(field, &arr);
    while (bson_iter_next(&arr)) {
        if (BSON_ITER_HOLDS_INT32(&arr) || BSON_ITER_HOLDS_INT64(&arr) ||
            BSON_ITER_HOLDS_DOUBLE(&arr) || BSON_ITER_HOLDS_ARRAY(&arr))
            FAIL("input", "'input' as token ids is not supported: send the text itself");
        if (r->n == EMBED_MAX_INPUTS)
            FAIL("input", "'input' holds more than %d texts", EMBED_MAX_INPUTS);
        if (add_input(r, &arr, &bad) != 0) {
            if (bad)
                FAIL("input", "input[%zu] must be a non-empty string (without NUL)", r->n);
            OOM();
        }
    }
    if (r->n == 0)
        FAIL("input", "'input' is an empty array");
fail:
    return rc;
}

int embed_parse(const char *body, size_t len, embed_request *r, const char **param, char *err,
                size_t err_size) {
    memset(r, 0, sizeof(*r));
    r->dimensions = -1;
    *param = NULL;
    bson_error_t e;
    bson_t *doc = len ? bson_new_from_json((const uint8_t *)body, (ssize_t)len, &e) : NULL;
    if (!doc) {
        snprintf(err, err_size, "the body is not a JSON object: %s",
                 len ? e.message : "it is empty");
        return -EINVAL;
    }
    int rc = 0, have_input = 0, have_format = 0;
    bson_iter_t it;
    bson_iter_init(&it, doc);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (BSON_ITER_HOLDS_NULL(&it))
            continue; /* clients send null for "not given" */
        if (strcmp(key, "input") == 0) {
            if (have_input)
                FAIL("input", "'input' is given twice");
            have_input = 1;
            if ((rc = parse_input(&it, r, param, err, err_size)) != 0)
                goto fail;
        } else if (strcmp(key, "model") == 0) {
            size_t n;
            int bad;
            if (r->model)
                FAIL("model", "'model' is given twice");
            if (!(r->model = text_of(&it, &n, &bad))) {
                if (bad)
                    FAIL("model", "'model' must be a non-empty string");
                OOM();
            }
        } else if (strcmp(key, "encoding_format") == 0) {
            const char *f = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
            if (have_format)
                FAIL("encoding_format", "'encoding_format' is given twice");
            have_format = 1;
            if (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0)
                FAIL("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
            r->base64 = f[0] == 'b';
        } else if (strcmp(key, "dimensions") == 0) {
            double v = BSON_ITER_HOLDS_DOUBLE(&it)  ? bson_iter_double(&it)
                       : BSON_ITER_HOLDS_INT32(&it) ? bson_iter_int32(&it)
                       : BSON_ITER_HOLDS_INT64(&it) ? (double)bson_iter_int64(&it)
                                                    : 0;
            if (!(v >= 1 && v <= 65536) || v != floor(v))
                FAIL("dimensions", "'dimensions' must be a whole number of at least 1");
            r->dimensions = (long)v;
        }
        /* "user" and others are ignored, as for the generation routes */
    }
    if (!have_input)
        FAIL("input", "'input' is required");
    bson_destroy(doc);
    return 0;
fail:
    bson_destroy(doc);
    embed_request_free(r);
    return rc;
}

void api_buf_base64(api_buf *b, const void *data, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    char out[256];
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[k++] = digits[v >> 18];
        out[k++] = digits[(v >> 12) & 63];
        out[k++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? digits[v & 63] : '=';
        if (k + 4 > sizeof(out)) {
            api_buf_add(b, out, k);
            k = 0;
        }
    }
    api_buf_add(b, out, k);
}

void embed_answer(api_buf *b, const float *vectors, size_t n, size_t dim, int base64,
                  const char *model, long tokens) {
    api_buf_add(b, "{\"object\": \"list\", \"data\": [", 28);
    for (size_t i = 0; i < n; i++) {
        const float *v = vectors + i * dim;
        api_buf_printf(
            b, "%s{\"object\": \"embedding\", \"index\": %zu, \"embedding\": ", i ? ", " : "", i);
        if (base64) {
            /* OpenAI's bytes are little-endian float32s, encoded 48
             * floats (192 bytes, a multiple of 3: no padding but at the
             * end) at a time */
            unsigned char bytes[4 * 48];
            api_buf_add(b, "\"", 1);
            for (size_t j = 0; j < dim;) {
                size_t m = 0;
                for (; j < dim && m < sizeof(bytes); j++, m += 4) {
                    uint32_t u;
                    memcpy(&u, &v[j], 4);
                    for (int k = 0; k < 4; k++)
                        bytes[m + (size_t)k] = (unsigned char)(u >> (8 * k));
                }
                api_buf_base64(b, bytes, m);
            }
            api_buf_add(b, "\"", 1);
        } else {
            api_buf_add(b, "[", 1);
            /* %.9g: enough digits that the float reads back bit for bit */
            for (size_t j = 0; j < dim; j++)
                api_buf_printf(b, "%s%.9g", j ? ", " : "", (double)v[j]);
            api_buf_add(b, "]", 1);
        }
        api_buf_add(b, "}", 1);
    }
    api_buf_add(b, "], \"model\": ", 12);
    api_buf_json(b, model, strlen(model));
    api_buf_printf(b, ", \"usage\": {\"prompt_tokens\": %ld, \"total_tokens\": %ld}}\n", tokens,
                   tokens);
}

/* The LLM Engineer's Handbook's RAG instruction (its InferenceExecutor). */
static const char instruction[] =
    "You are a content creator. Write what the user asked you to while using the provided "
    "context as the primary source of information for the content.\n";

char *rag_prompt(const char *query, const rag_chunk *chunks, size_t n) {
    api_buf b = {0};
    api_buf_add(&b, instruction, sizeof(instruction) - 1);
    api_buf_printf(&b, "User query: %s\nContext:\n", query);
    for (size_t i = 0; i < n; i++) {
        api_buf_printf(&b, "\nChunk %zu", i + 1);
        if (*chunks[i].link)
            api_buf_printf(&b, " (%s)", chunks[i].link);
        api_buf_printf(&b, ":\n%s\n", chunks[i].text);
    }
    char *p = b.failed ? NULL : train_alpaca_prompt(b.p);
    api_buf_free(&b);
    return p;
}

void rag_context(api_buf *b, const rag_chunk *chunks, size_t n) {
    api_buf_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        api_buf_add(b, i ? ", {\"id\": " : "{\"id\": ", i ? 9 : 7);
        api_buf_json(b, chunks[i].id, strlen(chunks[i].id));
        api_buf_add(b, ", \"link\": ", 10);
        api_buf_json(b, chunks[i].link, strlen(chunks[i].link));
        api_buf_printf(b, ", \"score\": %.9g, \"text\": ", chunks[i].score);
        api_buf_json(b, chunks[i].text, strlen(chunks[i].text));
        api_buf_add(b, "}", 1);
    }
    api_buf_add(b, "]", 1);
}

void rag_answer(api_buf *b, const char *model, const rag_chunk *chunks, size_t n,
                const api_result *res) {
    api_buf_add(b, "{\"answer\": ", 11);
    api_buf_json(b, res->text, res->text_len);
    api_buf_add(b, ", \"context\": ", 13);
    rag_context(b, chunks, n);
    api_buf_printf(b, ", \"finish_reason\": \"%s\", ", res->finish_reason);
    api_usage(b, res);
    api_buf_add(b, ", \"model\": ", 11);
    api_buf_json(b, model, strlen(model));
    api_buf_add(b, "}\n", 2);
}
