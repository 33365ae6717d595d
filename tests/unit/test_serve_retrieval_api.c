/* test_serve_retrieval_api.c - the JSON of sluice-serve's retrieval routes
 * (steps/serve/serve_retrieval_api.h) without a server: base64 against
 * RFC 4648's vectors and across the pieces embed_answer encodes a vector
 * in, the RAG prompt as the Alpaca template wraps the Handbook's
 * instruction, and what embed_parse refuses. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "examples.h"
#include "serve_retrieval_api.h"

static char *b64(const void *data, size_t n) {
    api_buf b = {0};
    api_buf_add(&b, "", 0);
    api_buf_base64(&b, data, n);
    cr_assert(!b.failed);
    return b.p;
}

Test(serve_retrieval_api, base64_is_rfc_4648s) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *s = b64(in[i], strlen(in[i]));
        cr_expect_str_eq(s, out[i], "%s", in[i]);
        free(s);
    }
    /* longer than the encoder's own buffer */
    unsigned char zeros[300] = {0};
    char *s = b64(zeros, sizeof(zeros));
    cr_expect_eq(strlen(s), 400);
    cr_expect_eq(strspn(s, "A"), 400);
    free(s);
}

/* A vector of 100 floats is encoded 48 at a time: the pieces must join to
 * the encoding of all its bytes (no padding inside). */
Test(serve_retrieval_api, a_base64_embedding_is_its_float32_bytes_whole) {
    float v[2 * 100];
    unsigned char bytes[4 * 100];
    for (int i = 0; i < 200; i++)
        v[i] = (float)i / 3.0f - 17.25f;
    for (int i = 0; i < 100; i++) { /* little-endian, whatever this machine is */
        uint32_t u;
        memcpy(&u, &v[100 + i], 4);
        for (int k = 0; k < 4; k++)
            bytes[4 * i + k] = (unsigned char)(u >> (8 * k));
    }
    char *want = b64(bytes, sizeof(bytes));
    api_buf b = {0};
    embed_answer(&b, v, 2, 100, 1, "m", 5);
    cr_assert(!b.failed);
    const char *second = strstr(b.p, "\"index\": 1, \"embedding\": \"");
    cr_assert_not_null(second, "%s", b.p);
    second += strlen("\"index\": 1, \"embedding\": \"");
    cr_expect_eq(strcspn(second, "\""), strlen(want));
    cr_expect(strncmp(second, want, strlen(want)) == 0, "%s\n%s", second, want);
    cr_expect_not_null(strstr(b.p, "\"usage\": {\"prompt_tokens\": 5, \"total_tokens\": 5}"));
    api_buf_free(&b);
    free(want);
}

Test(serve_retrieval_api, the_rag_prompt_is_the_handbooks_instruction_in_the_alpaca_template) {
    rag_chunk chunks[2] = {{"c1", "https://a.example/x", "First chunk.", 0.5},
                           {"c2", "", "Second chunk.", 0.25}};
    char *p = rag_prompt("What is GPTQ?", chunks, 2);
    char *want = train_alpaca_prompt(
        "You are a content creator. Write what the user asked you to while using the provided "
        "context as the primary source of information for the content.\n"
        "User query: What is GPTQ?\nContext:\n"
        "\nChunk 1 (https://a.example/x):\nFirst chunk.\n"
        "\nChunk 2:\nSecond chunk.\n");
    cr_assert_not_null(p);
    cr_expect_str_eq(p, want);
    free(p);
    free(want);
}

Test(serve_retrieval_api, embed_parse_reads_and_refuses) {
    embed_request r;
    const char *param;
    char err[256];
    const char *ok =
        "{\"input\": [\"a\", \"b c\"], \"model\": \"x\", \"encoding_format\": \"base64\", "
        "\"user\": \"u\"}";
    cr_assert_eq(embed_parse(ok, strlen(ok), &r, &param, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(r.n, 2);
    cr_expect_str_eq(r.inputs[1], "b c");
    cr_expect_eq(r.lens[1], 3);
    cr_expect(r.base64);
    cr_expect_str_eq(r.model, "x");
    embed_request_free(&r);
    const struct {
        const char *body, *param, *says;
    } bad[] = {
        {"{\"input\": [1, 2]}", "input", "token ids"},
        {"{\"input\": \"\"}", "input", "non-empty"},
        {"{\"input\": \"a\", \"input\": \"b\"}", "input", "given twice"},
        {"{\"input\": \"a\", \"encoding_format\": 1}", "encoding_format", "base64"},
        {"{\"input\": \"a\", \"dimensions\": 0}", "dimensions", "at least 1"},
        {"{\"model\": \"m\"}", "input", "required"},
        {"{\"input\": ", NULL, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(embed_parse(bad[i].body, strlen(bad[i].body), &r, &param, err, sizeof(err)),
                     -EINVAL, "%s", bad[i].body);
        if (bad[i].param)
            cr_expect_str_eq(param, bad[i].param, "%s", bad[i].body);
        cr_expect_not_null(strstr(err, bad[i].says), "%s: %s", bad[i].body, err);
    }
}
