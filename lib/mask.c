#include "mask.h"

#include <string.h>

const char *mask_secrets(const char *const *secrets, size_t n, const char *text, buf *b) {
    const char *out = text;
    for (size_t i = 0; i < n; i++) {
        const char *secret = secrets[i];
        size_t len = secret ? strlen(secret) : 0;
        if (len < MASK_MIN_LEN || !strstr(out, secret))
            continue;
        buf next = BUF_INIT;
        for (const char *at = out, *hit; *at; at = hit + len) {
            hit = strstr(at, secret);
            if (!hit) {
                buf_puts(&next, at);
                break;
            }
            buf_append(&next, at, (size_t)(hit - at));
            buf_puts(&next, "***");
        }
        buf_free(b);
        *b = next;
        out = buf_str(b);
    }
    return out;
}
