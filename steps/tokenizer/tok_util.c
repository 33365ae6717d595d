/* tok_util.c - the tokenizer's small parts: GPT-2's byte alphabet, byte
 * buffers, the string hash map, UTF-8 and regex compilation. */
#include "tok_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

uint16_t tok_byte_char[256];
int16_t tok_char_byte[324];

static pthread_once_t bytemap_once = PTHREAD_ONCE_INIT;

/* GPT-2's bytes_to_unicode(): the printable Latin-1 bytes stand for
 * themselves, the other 68 take 256, 257, ... in byte order. */
static void bytemap_build(void) {
    for (int c = 0; c < 324; c++)
        tok_char_byte[c] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        tok_byte_char[b] = (uint16_t)(printable ? b : 256 + n++);
        tok_char_byte[tok_byte_char[b]] = (int16_t)b;
    }
}

void tok_bytemap_init(void) { pthread_once(&bytemap_once, bytemap_build); }

int tok_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int tok_buf_reserve(tok_buf *b, size_t more) {
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_add(tok_buf *b, const void *data, size_t len) {
    if (tok_buf_reserve(b, len) != 0)
        return -ENOMEM;
    if (len)
        memcpy(b->p + b->n, data, len);
    b->n += len;
    b->p[b->n] = '\0';
    return 0;
}

int tok_buf_printf(tok_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || tok_buf_reserve(b, (size_t)n) != 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return 0;
}

int tok_buf_json_str(tok_buf *b, const char *s, size_t len) {
    if (tok_buf_reserve(b, len + 2) != 0)
        return -ENOMEM;
    b->p[b->n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        const char *e = NULL;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                e = esc;
            }
        }
        if (e ? tok_buf_add(b, e, strlen(e)) : tok_buf_add(b, &s[i], 1))
            return -ENOMEM;
    }
    return tok_buf_add(b, "\"", 1);
}

int tok_buf_utf8(tok_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tok_buf_add(b, u, n);
}

size_t tok_utf8_invalid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF)
            n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (len - i < n)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return len;
}

uint32_t tok_utf8_next(const char *str, size_t *i) {
    const unsigned char *s = (const unsigned char *)str + *i;
    uint32_t c = s[0];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    if (c < 0xE0) {
        *i += 2;
        return (c & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *i += 3;
        return (c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *i += 4;
    return (c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
           (s[3] & 0x3F);
}

uint32_t tok_hash(const void *p, size_t len) {
    /* FNV-1a: words are short, and a stronger hash would cost more than the
     * collisions it saves. */
    const unsigned char *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

static int smap_grow(tok_smap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    tok_smap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tok_smap_put(tok_smap *m, const char *key, size_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && smap_grow(m) != 0)
        return -ENOMEM;
    uint32_t h = tok_hash(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        tok_smap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            s->val = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (tok_smap_slot){.key = key, .len = (uint32_t)len, .hash = h, .val = val};
    m->n++;
    return 0;
}

int32_t tok_smap_get(const tok_smap *m, const char *key, size_t len) {
    if (!m->cap)
        return -1;
    uint32_t h = tok_hash(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        const tok_smap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return s->val;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_smap_free(tok_smap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

int tok_regex_compile(const char *pattern, int literal, pcre2_code **re, const char *what,
                      char *err, size_t err_size) {
    int code;
    PCRE2_SIZE at;
    /* PCRE2_LITERAL takes no UCP, which a literal does not need. */
    uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return errbuf_set(err, err_size, -ENOTSUP,
                          "%s: the pattern does not compile at offset %zu: %s", what, (size_t)at,
                          (const char *)msg);
    }
    /* Without JIT (some hardened kernels forbid it) the interpreter gives
     * the same matches, slower. */
    (void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
    return 0;
}

int tok_regex_split(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t len,
                    int isolated, int (*fn)(void *ctx, size_t off, size_t len), void *ctx,
                    char *err, size_t err_size) {
    PCRE2_SPTR subj = (PCRE2_SPTR)s;
    size_t pos = 0, prev = 0;
    int rc;
    while (pos <= len) {
        rc = pcre2_match(re, subj, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return errbuf_set(err, err_size, -EINVAL, "pre-tokenizer pattern: %s",
                              (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if ((start > prev && (rc = fn(ctx, prev, start - prev))) ||
            (isolated && end > start && (rc = fn(ctx, start, end - start))))
            return rc;
        prev = end;
        if (end > start) {
            pos = end;
        } else { /* an empty match: go on after the next character */
            if (start >= len)
                break;
            pos = start + 1;
            while (pos < len && (subj[pos] & 0xC0) == 0x80)
                pos++;
        }
    }
    return prev < len ? fn(ctx, prev, len - prev) : 0;
}
