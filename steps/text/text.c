#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int text_is_space(long c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

int text_is_word(long c) {
    if (c < 0x80) /* most text: no table look-up */
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (c < 0 || c > 0x10FFFF)
        return 0;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

/* Decoded text: code points and where each starts in the UTF-8 it is kept
 * as (valid input as it was; a bad byte as U+FFFD). */
typedef struct decoded {
    long *cp;
    size_t n;
} decoded;

/* The code point at byte i of s (len bytes, i < len) into *c; returns its
 * length in bytes. A byte that does not begin a valid sequence reads as
 * U+FFFD and is one byte long, so the next read starts at the next byte. */
static size_t next_cp(const utf8proc_uint8_t *s, size_t len, size_t i, long *c) {
    if (s[i] < 0x80) { /* ASCII needs no decoding */
        *c = s[i];
        return 1;
    }
    utf8proc_int32_t v;
    utf8proc_ssize_t step = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &v);
    if (step <= 0) {
        *c = 0xFFFD;
        return 1;
    }
    *c = v;
    return (size_t)step;
}

static int decode(const char *in, size_t len, decoded *d) {
    d->cp = malloc((len + 1) * sizeof(*d->cp));
    d->n = 0;
    if (!d->cp)
        return -ENOMEM;
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)in;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) { /* the common case, inline */
            d->cp[d->n++] = s[i++];
            continue;
        }
        i += next_cp(s, len, i, &d->cp[d->n++]);
    }
    return 0;
}

/* Where each of the code points of in starts, as decode() reads them, and
 * off[n] = len: a malloc'ed array of n + 1 offsets, or NULL. */
static size_t *cp_offsets(const char *in, size_t len, size_t n) {
    size_t *off = malloc((n + 1) * sizeof(*off));
    if (!off)
        return NULL;
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)in;
    size_t k = 0;
    for (size_t i = 0; i < len && k < n;) {
        long c;
        off[k++] = i;
        i += next_cp(s, len, i, &c);
    }
    off[n] = len;
    return off;
}

/* Appends code points [from, to) to b as UTF-8; returns -ENOMEM on failure. */
static int encode(const decoded *d, size_t from, size_t to, char **out, size_t *cap, size_t *len) {
    if (!*out) { /* room for the terminator even when nothing is encoded */
        if (!(*out = malloc(256)))
            return -ENOMEM;
        *cap = 256;
    }
    for (size_t i = from; i < to; i++) {
        if (*len + 5 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            while (*len + 5 > ncap)
                ncap *= 2;
            char *grown = realloc(*out, ncap);
            if (!grown)
                return -ENOMEM;
            *out = grown;
            *cap = ncap;
        }
        *len += (size_t)utf8proc_encode_char((utf8proc_int32_t)d->cp[i],
                                             (utf8proc_uint8_t *)*out + *len);
    }
    (*out)[*len] = '\0';
    return 0;
}

int text_clean(const char *in, size_t len, char **out, size_t *out_len) {
    decoded d;
    if (decode(in, len, &d))
        return -ENOMEM;
    /* Keep word characters and . , ! ?; everything else is a space, and a
     * run of spaces is one, none at the ends. */
    size_t k = 0;
    int pending_space = 0;
    for (size_t i = 0; i < d.n; i++) {
        long c = d.cp[i];
        int keep = text_is_word(c) || c == '.' || c == ',' || c == '!' || c == '?';
        if (!keep) {
            pending_space = k > 0;
            continue;
        }
        if (pending_space)
            d.cp[k++] = ' ';
        pending_space = 0;
        d.cp[k++] = c;
    }
    char *text = NULL;
    size_t cap = 0, n = 0;
    int rc = encode(&d, 0, k, &text, &cap, &n);
    free(d.cp);
    if (rc) {
        free(text);
        return rc;
    }
    *out = text;
    *out_len = n;
    return 0;
}

static int is_upper_ascii(long c) { return c >= 'A' && c <= 'Z'; }
static int is_lower_ascii(long c) { return c >= 'a' && c <= 'z'; }

/* Whether the whitespace at i ends a sentence: the Handbook's
 * (?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?|\!)\s at code point i. */
static int sentence_break(const decoded *d, size_t i) {
    if (!text_is_space(d->cp[i]) || i == 0)
        return 0;
    long prev = d->cp[i - 1];
    if (prev != '.' && prev != '?' && prev != '!')
        return 0;
    /* "e.g. ": word, '.', word, then the end mark (never a newline). */
    if (i >= 4 && text_is_word(d->cp[i - 4]) && d->cp[i - 3] == '.' && text_is_word(d->cp[i - 2]))
        return 0;
    /* "Mr. ": an ASCII capital, an ASCII small letter, '.'. */
    if (i >= 3 && is_upper_ascii(d->cp[i - 3]) && is_lower_ascii(d->cp[i - 2]) && prev == '.')
        return 0;
    return 1;
}

/* [from, to) without surrounding whitespace. */
static void strip(const decoded *d, size_t *from, size_t *to) {
    while (*from < *to && text_is_space(d->cp[*from]))
        (*from)++;
    while (*to > *from && text_is_space(d->cp[*to - 1]))
        (*to)--;
}

typedef struct chunker {
    const decoded *d;
    size_t min;
    char **chunks;
    text_span *spans; /* code point ranges until the end, then byte ranges */
    size_t n, cap;
    /* The chunk being built, as code points: sentences each followed by a
     * space, as the Handbook's current_chunk += sentence + " ". */
    long *cur;
    size_t cur_len;
    size_t cur_from, cur_to; /* its code point range in d */
} chunker;

static int emit(chunker *c) {
    /* len(current_chunk) counts the trailing space; the kept text is stripped. */
    if (c->cur_len < c->min)
        return 0;
    decoded view = {c->cur, c->cur_len};
    size_t from = 0, to = c->cur_len;
    strip(&view, &from, &to);
    char *text = NULL;
    size_t cap = 0, len = 0;
    if (encode(&view, from, to, &text, &cap, &len)) {
        free(text);
        return -ENOMEM;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        char **grown = realloc(c->chunks, ncap * sizeof(*grown));
        if (!grown) {
            free(text);
            return -ENOMEM;
        }
        c->chunks = grown;
        text_span *sgrown = realloc(c->spans, ncap * sizeof(*sgrown));
        if (!sgrown) {
            free(text);
            return -ENOMEM;
        }
        c->spans = sgrown;
        c->cap = ncap;
    }
    c->spans[c->n] = (text_span){c->cur_from, c->cur_to};
    c->chunks[c->n++] = text;
    return 0;
}

int text_chunk_article_spans(const char *in, size_t len, size_t min, size_t max, char ***chunks,
                             text_span **spans, size_t *n) {
    decoded d;
    *chunks = NULL;
    if (spans)
        *spans = NULL;
    *n = 0;
    if (decode(in, len, &d))
        return -ENOMEM;
    chunker c = {&d, min, NULL, NULL, 0, 0, malloc((d.n + 2) * sizeof(long)), 0, 0, 0};
    int rc = c.cur ? 0 : -ENOMEM;
    size_t start = 0;
    for (size_t i = 0; rc == 0 && i <= d.n; i++) {
        if (i < d.n && !sentence_break(&d, i))
            continue;
        size_t from = start, to = i;
        strip(&d, &from, &to);
        start = i + 1; /* the split consumes the one whitespace character */
        if (from == to)
            continue;
        size_t slen = to - from;
        if (c.cur_len + slen > max) {
            rc = emit(&c);
            c.cur_len = 0;
        }
        if (c.cur_len == 0)
            c.cur_from = from;
        c.cur_to = to;
        memcpy(c.cur + c.cur_len, d.cp + from, slen * sizeof(long));
        c.cur_len += slen;
        c.cur[c.cur_len++] = ' ';
    }
    if (rc == 0)
        rc = emit(&c);
    free(c.cur);
    if (rc == 0 && spans && c.n > 0) { /* code point ranges to byte ranges */
        size_t *off = cp_offsets(in, len, d.n);
        if (!off)
            rc = -ENOMEM;
        for (size_t i = 0; off && i < c.n; i++)
            c.spans[i] = (text_span){off[c.spans[i].start], off[c.spans[i].end]};
        free(off);
    }
    free(d.cp);
    if (rc) {
        text_chunks_free(c.chunks, c.n);
        free(c.spans);
        return rc;
    }
    *chunks = c.chunks;
    if (spans)
        *spans = c.spans;
    else
        free(c.spans);
    *n = c.n;
    return 0;
}

int text_sentence_spans(const char *in, size_t len, text_span **spans, size_t *n) {
    decoded d;
    *spans = NULL;
    *n = 0;
    if (decode(in, len, &d))
        return -ENOMEM;
    /* At most one sentence per code point and one more. */
    text_span *out = malloc((d.n + 1) * sizeof(*out));
    size_t *off = out ? cp_offsets(in, len, d.n) : NULL;
    if (!off) {
        free(out);
        free(d.cp);
        return -ENOMEM;
    }
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= d.n; i++) {
        if (i < d.n && !sentence_break(&d, i))
            continue;
        size_t from = start, to = i;
        strip(&d, &from, &to);
        start = i + 1;
        if (from < to)
            out[k++] = (text_span){off[from], off[to]};
    }
    free(off);
    free(d.cp);
    if (k == 0) {
        free(out);
        return 0;
    }
    *spans = out;
    *n = k;
    return 0;
}

int text_chunk_article(const char *in, size_t len, size_t min, size_t max, char ***chunks,
                       size_t *n) {
    return text_chunk_article_spans(in, len, min, max, chunks, NULL, n);
}

/* The code points of a text as the window rule sees them: where each
 * starts in the bytes (off, n + 1 entries, off[n] = len) and whether it is
 * whitespace. */
typedef struct windowed {
    size_t *off;
    unsigned char *space;
    size_t n;
} windowed;

static int windowed_read(const char *in, size_t len, windowed *w) {
    w->off = malloc((len + 1) * sizeof(*w->off));
    w->space = malloc(len + 1);
    w->n = 0;
    if (!w->off || !w->space) {
        free(w->off);
        free(w->space);
        return -ENOMEM;
    }
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)in;
    for (size_t i = 0; i < len;) {
        long c;
        size_t step = next_cp(s, len, i, &c);
        w->off[w->n] = i;
        w->space[w->n++] = (unsigned char)text_is_space(c);
        i += step;
    }
    w->off[w->n] = len;
    return 0;
}

/* Where window s ends (text.h, steps 1 to 4); prev_end is the previous
 * window's end (0 for the first). */
static size_t window_end(const windowed *w, size_t s, size_t size, size_t prev_end) {
    size_t e;
    if (size >= w->n - s) { /* 1: the rest fits (written so s + size cannot overflow) */
        e = w->n;
    } else {
        size_t lim = s + size;
        e = lim;
        if (!w->space[lim - 1] && !w->space[lim]) { /* 3: lim is inside a word */
            size_t ws = lim - 1;
            while (ws > s && !w->space[ws])
                ws--;
            if (ws > s) { /* the last whitespace in (s, lim) */
                size_t ew = ws;
                while (ew > s && w->space[ew - 1])
                    ew--;
                if (ew - s >= size - size / 2 && ew > prev_end)
                    e = ew;
            }
        }
    }
    while (e > s && w->space[e - 1]) /* 4 */
        e--;
    return e;
}

/* Where the window after [s, e) starts (text.h); u is the first
 * non-whitespace code point at or after e, where the text not yet in any
 * window begins. */
static size_t window_next(const windowed *w, size_t s, size_t e, size_t u, size_t size,
                          size_t overlap) {
    size_t p = e - s > overlap ? e - overlap : s + 1, next = p; /* p inside a word cut at e */
    for (size_t q = p; q <= u && q < w->n; q++)
        if (!w->space[q] && (q == 0 || w->space[q - 1])) {
            next = q; /* the first word start in [p, u] */
            break;
        }
    /* A window from next must reach u, or it would hold nothing new. */
    return u - next >= size ? u : next;
}

int text_chunk_window(const char *in, size_t len, size_t size, size_t overlap, text_span **spans,
                      size_t *n) {
    *spans = NULL;
    *n = 0;
    if (size == 0 || overlap >= size)
        return -EINVAL;
    windowed w;
    if (windowed_read(in, len, &w))
        return -ENOMEM;
    text_span *out = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    size_t s = 0, prev_end = 0;
    while (s < w.n && w.space[s])
        s++;
    while (s < w.n) {
        size_t e = window_end(&w, s, size, prev_end);
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            text_span *grown = realloc(out, ncap * sizeof(*grown));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            out = grown;
            cap = ncap;
        }
        out[count++] = (text_span){w.off[s], w.off[e]};
        size_t u = e;
        while (u < w.n && w.space[u])
            u++;
        if (u == w.n) /* only whitespace is left */
            break;
        prev_end = e;
        s = window_next(&w, s, e, u, size, overlap);
    }
    free(w.off);
    free(w.space);
    if (rc) {
        free(out);
        return rc;
    }
    if (count == 0) {
        free(out);
        out = NULL;
    }
    *spans = out;
    *n = count;
    return 0;
}

int text_utf8_dup(const char *in, size_t len, char **out, size_t *out_len) {
    /* At most 3 bytes (U+FFFD) for each input byte. */
    char *o = len < ((size_t)-1) / 4 ? malloc(len * 3 + 1) : NULL;
    if (!o)
        return -ENOMEM;
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)in;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        long c;
        size_t step = next_cp(s, len, i, &c);
        if (c == 0xFFFD && step == 1) { /* a bad byte (a real U+FFFD is 3 bytes) */
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
        } else {
            memcpy(o + k, in + i, step);
            k += step;
        }
        i += step;
    }
    o[k] = '\0';
    *out = o;
    *out_len = k;
    return 0;
}

void text_chunks_free(char **chunks, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(chunks[i]);
    free(chunks);
}

int text_chunk_id(const char *text, size_t len, char out[37]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(text, len, md, &md_len, EVP_md5(), NULL) != 1 || md_len != 16)
        return -ENOMEM;
    md[6] = (unsigned char)((md[6] & 0x0F) | 0x40); /* version 4 */
    md[8] = (unsigned char)((md[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[md[i] >> 4];
        out[k++] = hex[md[i] & 15];
    }
    out[k] = '\0';
    return 0;
}

int text_nfc(const char *in, size_t len, char **out, size_t *out_len) {
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, in, len);
    copy[len] = '\0';
    utf8proc_uint8_t *nfc = memchr(in, '\0', len) ? NULL : utf8proc_NFC((utf8proc_uint8_t *)copy);
    if (!nfc) { /* invalid UTF-8 (or a NUL inside): left as it is */
        *out = copy;
        *out_len = len;
        return 0;
    }
    free(copy);
    *out = (char *)nfc;
    *out_len = strlen(*out);
    return 0;
}

static int url_at(const char *s, size_t left) {
    return (left >= 7 && strncmp(s, "http://", 7) == 0) ||
           (left >= 8 && strncmp(s, "https://", 8) == 0) ||
           (left >= 4 && strncmp(s, "www.", 4) == 0);
}

int text_remove_urls(const char *in, size_t len, char **out, size_t *out_len) {
    char *o = malloc(len + 1);
    if (!o)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        /* A URL starts a word: at the start or after whitespace or an opening mark. */
        int boundary = i == 0 || strchr(" \t\n\r([<\"'", in[i - 1]) != NULL;
        if (boundary && url_at(in + i, len - i)) {
            while (i < len && !strchr(" \t\n\r)]>\"'", in[i]))
                i++;
            continue;
        }
        o[k++] = in[i++];
    }
    o[k] = '\0';
    *out = o;
    *out_len = k;
    return 0;
}

/* The length of an HTML tag or comment at s, or 0. */
static size_t tag_at(const char *s, size_t n) {
    if (n < 3 || s[0] != '<' || !(isalpha((unsigned char)s[1]) || s[1] == '/' || s[1] == '!'))
        return 0;
    if (n >= 4 && memcmp(s, "<!--", 4) == 0) {
        for (size_t i = 4; i + 2 < n && i < 1024; i++)
            if (memcmp(s + i, "-->", 3) == 0)
                return i + 3;
        return 0;
    }
    for (size_t i = 1; i < n && i < 1024; i++) {
        if (s[i] == '>')
            return i + 1;
        if (s[i] == '<')
            return 0;
    }
    return 0;
}

/* Decodes a character reference at s into buf (UTF-8); returns its length
 * in s and sets *w to the bytes written, or returns 0. */
static size_t entity_at(const char *s, size_t n, char buf[8], size_t *w) {
    static const struct {
        const char *name, *text;
    } named[] = {
        {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "},
    };
    size_t i = 1;
    if (n < 3 || s[0] != '&')
        return 0;
    if (s[1] == '#') {
        int hex = n > 2 && (s[2] == 'x' || s[2] == 'X');
        uint32_t cp = 0;
        size_t digits = 0;
        for (i = hex ? 3 : 2; i < n && digits < 8; i++, digits++) {
            int c = (unsigned char)s[i];
            int d = isdigit(c) ? c - '0' : hex && isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
            if (d < 0)
                break;
            cp = cp * (hex ? 16 : 10) + (uint32_t)d;
        }
        if (!digits || i >= n || s[i] != ';')
            return 0;
        utf8proc_ssize_t k =
            cp && utf8proc_codepoint_valid((utf8proc_int32_t)cp)
                ? utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf)
                : 0;
        *w = (size_t)k;
        return i + 1;
    }
    while (i < n && i < 32 && isalnum((unsigned char)s[i]))
        i++;
    if (i == 1 || i >= n || s[i] != ';')
        return 0;
    *w = 0;
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++)
        if (strlen(named[k].name) == i - 1 && memcmp(s + 1, named[k].name, i - 1) == 0) {
            *w = strlen(named[k].text);
            memcpy(buf, named[k].text, *w);
        }
    return i + 1;
}

/* A Markdown link or image at s: sets the text's span and returns the
 * whole length, or 0. */
static size_t md_link_at(const char *s, size_t n, size_t *text_start, size_t *text_len) {
    size_t i = s[0] == '!' ? 1 : 0;
    if (i >= n || s[i] != '[')
        return 0;
    size_t open = i + 1, close = open;
    while (close < n && close - open < 1024 && s[close] != ']' && s[close] != '\n')
        close++;
    if (close >= n || s[close] != ']' || close + 1 >= n || s[close + 1] != '(')
        return 0;
    size_t end = close + 2;
    while (end < n && end - close < 2048 && s[end] != ')' && !isspace((unsigned char)s[end]))
        end++;
    if (end >= n || s[end] != ')')
        return 0;
    *text_start = open;
    *text_len = close - open;
    return end + 1;
}

int text_remove_markup(const char *in, size_t len, char **out, size_t *out_len) {
    char *o = malloc(len + 1); /* nothing grows: a reference is longer than its text */
    if (!o)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        size_t n, ts, tl, w;
        char buf[8];
        if ((n = tag_at(in + i, len - i))) {
            o[k++] = ' ';
        } else if ((n = entity_at(in + i, len - i, buf, &w))) {
            memcpy(o + k, buf, w);
            k += w;
        } else if ((in[i] == '[' || in[i] == '!') && (n = md_link_at(in + i, len - i, &ts, &tl))) {
            memcpy(o + k, in + i + ts, tl);
            k += tl;
        } else {
            o[k++] = in[i];
            n = 1;
        }
        i += n;
    }
    o[k] = '\0';
    *out = o;
    *out_len = k;
    return 0;
}

int text_each_term(const char *text, size_t len, text_term_fn fn, void *ctx) {
    char small[256];
    char *buf = small;
    size_t cap = sizeof(small), n = 0;
    int rc = 0;
    for (size_t i = 0; i <= len;) {
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t step = 0;
        if (i < len) {
            step = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i),
                                    &cp);
            if (step < 1) { /* a bad byte: U+FFFD, not a word character */
                step = 1;
                cp = 0xFFFD;
            }
        }
        if (i < len && text_is_word(cp)) {
            if (n + 4 > cap) {
                size_t nc = cap * 2;
                char *nb = buf == small ? malloc(nc) : realloc(buf, nc);
                if (!nb) {
                    rc = -ENOMEM;
                    break;
                }
                if (buf == small)
                    memcpy(nb, small, n);
                buf = nb;
                cap = nc;
            }
            n += (size_t)utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)buf + n);
        } else if (n) {
            rc = fn(buf, n, ctx);
            n = 0;
            if (rc)
                break;
        }
        if (i == len)
            break;
        i += (size_t)step;
    }
    if (buf != small)
        free(buf);
    return rc;
}
