/* fuzz_tokenizer - libFuzzer target for the tokenizer.json reader
 * (steps/tokenizer), which reads a user's Hugging Face folder: the input is
 * the file. A tokenizer that loads then encodes a fixed text with its added
 * tokens and the input's first bytes (when UTF-8), and decodes the ids. Any
 * crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void encode_decode(tok_tokenizer *t, const char *text, size_t len) {
    tok_ids ids = {0};
    char err[256];
    if (tok_encode(t, text, len, 1, &ids, err, sizeof(err)) == 0) {
        char *out;
        size_t n;
        if (tok_decode(t, ids.ids, ids.n, 1, &out, &n, err, sizeof(err)) == 0)
            free(out);
    }
    tok_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tok_tokenizer *t;
    char err[512];
    if (tok_load_json((const char *)data, size, "fuzz.json", &t, err, sizeof(err)) != 0)
        return 0;
    static const char text[] = "Hello <|endoftext|> world's 12345  \r\n\tcaf\xc3\xa9 <mask> LLM "
                               "\xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x94\xa7 aaaaaaaaaaaaaaaaaaaaaaaa";
    encode_decode(t, text, sizeof(text) - 1);
    encode_decode(t, (const char *)data, size < 256 ? size : 256);
    (void)tok_token_id(t, "a");
    (void)tok_token_str(t, 0);
    tok_free(t);
    return 0;
}
