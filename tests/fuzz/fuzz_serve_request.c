/* fuzz_serve_request - libFuzzer target for what sluice-serve does with a
 * client's bytes before any model runs: picohttpparser's request parsing
 * (as steps/serve/http.c calls it, in pieces as they may arrive) and the
 * body read as a chat and as a text completion request (libbson, the
 * field checks, the chat template), then an answer and an error object
 * written with the request's strings (the JSON escaping of arbitrary
 * bytes). Any crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "picohttp.h"
#include "serve_api.h"

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
    api_result res = {r.prompt, strlen(r.prompt), "stop", 1, 2};
    api_answer(&b, kind, "id", 0, r.model ? r.model : "m", &res);
    api_chunk(&b, kind, "id", 0, "m", 1, r.prompt, strlen(r.prompt), NULL, NULL);
    api_chunk(&b, kind, "id", 0, "m", 0, "", 0, "length", &res);
    api_buf_free(&b);
    api_request_free(&r);
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
    return 0;
}
