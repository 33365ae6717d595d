/* wordpiece.c - BERT's WordPiece tokenizer; the rules are in wordpiece.h.
 *
 * The text is read once, code point by code point, and cut into words as
 * the basic tokenizer would see them after cleaning and CJK spacing; each
 * word then goes through NFC, lowercasing, accent stripping, punctuation
 * splitting and WordPiece on its own. Every code point carries the byte
 * span of the input it came from, so that each token knows its bytes. */
#include "wordpiece.h"

#include <sluice/artifacts.h>

#include <bson/bson.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100
#define DEFAULT_MAX_LENGTH 512

typedef struct slot {
    uint32_t hash, off, len;
    int32_t id; /* -1: empty */
} slot;

struct wordpiece {
    char *vocab; /* vocab.txt as read; tokens are slices of it */
    slot *slots;
    size_t mask; /* slots - 1, a power of two minus one */
    size_t lines;
    size_t max_len; /* the longest token, in bytes */
    int lower, strip, cjk;
    wordpiece_special_ids sp;
};

/* The special tokens' names, in the order of wordpiece_special_ids. */
static const char *const special_names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

static int32_t special_id(const wordpiece *wp, int i) {
    switch (i) {
    case 0:
        return wp->sp.pad;
    case 1:
        return wp->sp.unk;
    case 2:
        return wp->sp.cls;
    case 3:
        return wp->sp.sep;
    default:
        return wp->sp.mask;
    }
}

/* ---- the vocabulary: FNV-1a hashing into open addressing ---------------- */

#define FNV_INIT 2166136261u

static uint32_t fnv(uint32_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

/* The id of prefix + s[0..n) (prefix is "" or "##"), or -1. */
static int32_t lookup(const wordpiece *wp, int cont, const char *s, size_t n) {
    size_t plen = cont ? 2 : 0;
    uint32_t h = fnv(cont ? fnv(FNV_INIT, "##", 2) : FNV_INIT, s, n);
    for (size_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        const slot *e = &wp->slots[i];
        if (e->id < 0)
            return -1;
        if (e->hash == h && e->len == n + plen) {
            const char *t = wp->vocab + e->off;
            if ((!plen || (t[0] == '#' && t[1] == '#')) && memcmp(t + plen, s, n) == 0)
                return e->id;
        }
    }
}

static void insert(wordpiece *wp, uint32_t off, uint32_t len, int32_t id) {
    uint32_t h = fnv(FNV_INIT, wp->vocab + off, len);
    for (size_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
        slot *e = &wp->slots[i];
        if (e->id < 0) {
            *e = (slot){h, off, len, id};
            return;
        }
        if (e->hash == h && e->len == len &&
            memcmp(wp->vocab + e->off, wp->vocab + off, len) == 0) {
            e->id = id; /* listed twice: the last line wins, as in Python's dict */
            return;
        }
    }
}

int32_t wordpiece_token_id(const wordpiece *wp, const char *token, size_t len) {
    return lookup(wp, 0, token, len);
}

size_t wordpiece_vocab_size(const wordpiece *wp) { return wp->lines; }

wordpiece_special_ids wordpiece_specials(const wordpiece *wp) { return wp->sp; }

/* ---- loading -------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t size, const char *fmt,
                                                          ...) {
    if (!err || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
}

/* Reads a whole file into a malloc'ed, NUL-terminated buffer (the
 * vocabulary keeps it). Returns 0 or -errno. */
static int read_file(const char *path, char **out, size_t *size) {
    void *map;
    int rc = sl_file_map(path, &map, size, NULL, 0);
    if (rc)
        return rc;
    char *buf = *size < SIZE_MAX ? malloc(*size + 1) : NULL;
    if (buf && *size)
        memcpy(buf, map, *size);
    sl_file_unmap(map, *size);
    if (!buf)
        return -ENOMEM;
    buf[*size] = '\0';
    *out = buf;
    return 0;
}

static int valid_utf8(const char *s, size_t n) {
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &c);
        if (step <= 0)
            return 0;
        i += (size_t)step;
    }
    return 1;
}

/* The line that starts at text[at]: its length (without the end) into
 * *len, and where the next one starts. Lines are cut as Python's
 * readlines() in text mode cuts them: \n, \r\n and \r end a line, and a
 * last line without an end counts when it is not empty (the callers stop
 * at size). */
static size_t next_line(const char *text, size_t size, size_t at, size_t *len) {
    size_t i = at;
    while (i < size && text[i] != '\n' && text[i] != '\r')
        i++;
    *len = i - at;
    if (i < size && text[i] == '\r' && i + 1 < size && text[i + 1] == '\n')
        return i + 2;
    return i < size ? i + 1 : i;
}

static int load_vocab(wordpiece *wp, const char *dir, char *err, size_t err_size) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/vocab.txt", dir) >= sizeof(path)) {
        set_err(err, err_size, "%s/vocab.txt: path too long", dir);
        return -ENAMETOOLONG;
    }
    size_t size;
    int rc = read_file(path, &wp->vocab, &size);
    if (rc) {
        set_err(err, err_size, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (size >= UINT32_MAX) {
        set_err(err, err_size, "%s: larger than 4 GiB", path);
        return -EFBIG;
    }
    size_t lines = 0, len;
    for (size_t at = 0; at < size; lines++)
        at = next_line(wp->vocab, size, at, &len);
    if (lines > INT32_MAX) {
        set_err(err, err_size, "%s: more than %d lines", path, INT32_MAX);
        return -EFBIG;
    }
    size_t cap = 16;
    while (cap < lines * 2)
        cap *= 2;
    wp->slots = malloc(cap * sizeof(*wp->slots));
    if (!wp->slots) {
        set_err(err, err_size, "%s: out of memory", path);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cap; i++)
        wp->slots[i].id = -1;
    wp->mask = cap - 1;
    wp->lines = lines;
    size_t line = 0;
    for (size_t at = 0; at < size; line++) {
        size_t next = next_line(wp->vocab, size, at, &len);
        if (len == 0) {
            set_err(err, err_size, "%s:%zu: empty token", path, line + 1);
            return -EINVAL;
        }
        if (!valid_utf8(wp->vocab + at, len)) {
            set_err(err, err_size, "%s:%zu: invalid UTF-8", path, line + 1);
            return -EINVAL;
        }
        insert(wp, (uint32_t)at, (uint32_t)len, (int32_t)line);
        if (len > wp->max_len)
            wp->max_len = len;
        at = next;
    }
    int32_t *ids[5] = {&wp->sp.pad, &wp->sp.unk, &wp->sp.cls, &wp->sp.sep, &wp->sp.mask};
    for (int i = 0; i < 5; i++) {
        *ids[i] = lookup(wp, 0, special_names[i], strlen(special_names[i]));
        if (*ids[i] < 0 && i < 4) { /* [MASK] is optional */
            set_err(err, err_size, "%s: missing %s", path, special_names[i]);
            return -EINVAL;
        }
    }
    return 0;
}

/* Reads one optional boolean (or, with nullable, null: *value = -1). */
static int config_bool(const bson_t *doc, const char *key, int nullable, int *value,
                       const char *path, char *err, size_t err_size) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key))
        return 0;
    if (BSON_ITER_HOLDS_BOOL(&it)) {
        *value = bson_iter_bool(&it);
        return 0;
    }
    if (nullable && BSON_ITER_HOLDS_NULL(&it)) {
        *value = -1;
        return 0;
    }
    set_err(err, err_size, "%s: %s must be true or false%s", path, key, nullable ? " or null" : "");
    return -EINVAL;
}

static int load_config(wordpiece *wp, const char *dir, char *err, size_t err_size) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir) >= sizeof(path)) {
        set_err(err, err_size, "%s/tokenizer_config.json: path too long", dir);
        return -ENAMETOOLONG;
    }
    char *text;
    size_t size;
    int rc = read_file(path, &text, &size);
    if (rc == -ENOENT)
        return 0; /* no config: the defaults */
    if (rc) {
        set_err(err, err_size, "%s: %s", path, strerror(-rc));
        return rc;
    }
    bson_error_t berr;
    bson_t *doc =
        size > SSIZE_MAX ? NULL : bson_new_from_json((const uint8_t *)text, (ssize_t)size, &berr);
    free(text);
    if (!doc) {
        set_err(err, err_size, "%s: %s", path, size > SSIZE_MAX ? "too large" : berr.message);
        return -EINVAL;
    }
    int strip = -1;
    rc = config_bool(doc, "do_lower_case", 0, &wp->lower, path, err, err_size);
    if (!rc)
        rc = config_bool(doc, "strip_accents", 1, &strip, path, err, err_size);
    if (!rc)
        rc = config_bool(doc, "tokenize_chinese_chars", 0, &wp->cjk, path, err, err_size);
    bson_destroy(doc);
    /* strip_accents null follows do_lower_case, as in the original BERT. */
    wp->strip = strip < 0 ? wp->lower : strip;
    return rc;
}

int wordpiece_new(const char *dir, wordpiece **out, char *err, size_t err_size) {
    if (err && err_size)
        err[0] = '\0';
    wordpiece *wp = calloc(1, sizeof(*wp));
    if (!wp) {
        set_err(err, err_size, "%s: out of memory", dir);
        return -ENOMEM;
    }
    wp->lower = 1;
    wp->strip = 1;
    wp->cjk = 1;
    int rc = load_vocab(wp, dir, err, err_size);
    if (!rc)
        rc = load_config(wp, dir, err, err_size);
    if (rc) {
        wordpiece_free(wp);
        return rc;
    }
    *out = wp;
    return 0;
}

void wordpiece_free(wordpiece *wp) {
    if (!wp)
        return;
    free(wp->slots);
    free(wp->vocab);
    free(wp);
}

/* ---- character classes, as Hugging Face's helpers define them ----------- */

static int category(int32_t c) { return utf8proc_category(c); }

static int is_control(int32_t c) { /* _is_control: category C*, but \t \n \r */
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    switch (category(c)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

/* Whitespace after cleaning: _is_whitespace (space, \t \n \r, Zs) and the
 * two separators str.split() also splits on that cleaning keeps. */
static int is_break(int32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029 ||
           (c >= 0x80 && category(c) == UTF8PROC_CATEGORY_ZS);
}

static int is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    if (c < 0x80)
        return 0;
    switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

static int ccc(int32_t c) { return utf8proc_get_property(c)->combining_class; }

/* Python's str.lower() of one code point: the simple mapping, but for the
 * one unconditional multi-character lowercase in SpecialCasing.txt. Returns
 * how many code points it wrote to out[2]. */
static int lower_cp(int32_t c, int32_t out[2]) {
    if (c < 0x80) {
        out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        return 1;
    }
    if (c == 0x130) { /* LATIN CAPITAL LETTER I WITH DOT ABOVE */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = utf8proc_tolower(c);
    return 1;
}

/* ---- one tokenization --------------------------------------------------- */

/* Code points with the byte span [s, e) of the input each came from. */
typedef struct cpbuf {
    int32_t *cp;
    size_t *s, *e;
    size_t n, cap;
} cpbuf;

static int cpbuf_reserve(cpbuf *b, size_t need) {
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    int32_t *cp = realloc(b->cp, cap * sizeof(*cp));
    if (!cp)
        return -ENOMEM;
    b->cp = cp;
    size_t *s = realloc(b->s, cap * sizeof(*s));
    if (!s)
        return -ENOMEM;
    b->s = s;
    size_t *e = realloc(b->e, cap * sizeof(*e));
    if (!e)
        return -ENOMEM;
    b->e = e;
    b->cap = cap;
    return 0;
}

static int cpbuf_push(cpbuf *b, int32_t c, size_t s, size_t e) {
    if (b->n == b->cap && cpbuf_reserve(b, b->n + 1))
        return -ENOMEM;
    b->cp[b->n] = c;
    b->s[b->n] = s;
    b->e[b->n] = e;
    b->n++;
    return 0;
}

static void cpbuf_fini(cpbuf *b) {
    free(b->cp);
    free(b->s);
    free(b->e);
}

static void cpbuf_swap(cpbuf *a, cpbuf *b) {
    cpbuf t = *a;
    *a = *b;
    *b = t;
}

typedef struct run {
    const wordpiece *wp;
    wordpiece_tokens *out; /* NULL: only count */
    size_t n;              /* tokens so far */
    cpbuf word, tmp;
    int32_t *u32; /* NFC scratch */
    size_t u32cap;
    char *u8; /* a word as UTF-8 for the look-ups */
    size_t *at;
    size_t u8cap, atcap;
} run;

static void run_fini(run *r) {
    cpbuf_fini(&r->word);
    cpbuf_fini(&r->tmp);
    free(r->u32);
    free(r->u8);
    free(r->at);
}

static int emit(run *r, int32_t id, size_t s, size_t e) {
    wordpiece_tokens *t = r->out;
    if (t) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            int32_t *ids = realloc(t->ids, cap * sizeof(*ids));
            if (!ids)
                return -ENOMEM;
            t->ids = ids;
            size_t *st = realloc(t->start, cap * sizeof(*st));
            if (!st)
                return -ENOMEM;
            t->start = st;
            size_t *en = realloc(t->end, cap * sizeof(*en));
            if (!en)
                return -ENOMEM;
            t->end = en;
            t->cap = cap;
        }
        t->ids[t->n] = id;
        t->start[t->n] = s;
        t->end[t->n] = e;
        t->n++;
    }
    r->n++;
    return 0;
}

/* The bytes word[from..to) came from: after reordering and merging, the
 * smallest start and the largest end. */
static void span(const cpbuf *w, size_t from, size_t to, size_t *s, size_t *e) {
    *s = w->s[from];
    *e = w->e[from];
    for (size_t i = from + 1; i < to; i++) {
        if (w->s[i] < *s)
            *s = w->s[i];
        if (w->e[i] > *e)
            *e = w->e[i];
    }
}

/* NFC of in[0..n) into r->u32; *m is its length. */
static int nfc(run *r, const int32_t *in, size_t n, size_t *m) {
    uint8_t small[256];
    uint8_t *u8 = n * 4 <= sizeof(small) ? small : malloc(n * 4);
    if (!u8)
        return -ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)utf8proc_encode_char(in[i], u8 + len);
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    utf8proc_ssize_t got;
    if (r->u32cap < n * 4 + 8) { /* canonical decompositions are short */
        int32_t *grown = realloc(r->u32, (n * 4 + 8) * sizeof(*grown));
        if (!grown) {
            if (u8 != small)
                free(u8);
            return -ENOMEM;
        }
        r->u32 = grown;
        r->u32cap = n * 4 + 8;
    }
    for (;;) {
        got =
            utf8proc_decompose(u8, (utf8proc_ssize_t)len, r->u32, (utf8proc_ssize_t)r->u32cap, opt);
        if (got < 0 || (size_t)got <= r->u32cap)
            break;
        int32_t *grown = realloc(r->u32, (size_t)got * sizeof(*grown));
        if (!grown) {
            got = UTF8PROC_ERROR_NOMEM;
            break;
        }
        r->u32 = grown;
        r->u32cap = (size_t)got;
    }
    if (u8 != small)
        free(u8);
    if (got >= 0)
        got = utf8proc_normalize_utf32(r->u32, got, opt);
    if (got < 0) /* only memory: the input is valid by construction */
        return -ENOMEM;
    *m = (size_t)got;
    return 0;
}

/* Appends the NFC of word[from..to), one "unit" that composes with nothing
 * around it, to r->tmp: unchanged, each code point keeps its span; changed,
 * every code point gets the span of the whole unit. */
static int push_unit(run *r, size_t from, size_t to) {
    const cpbuf *w = &r->word;
    size_t m;
    if (nfc(r, w->cp + from, to - from, &m))
        return -ENOMEM;
    int same = m == to - from && memcmp(r->u32, w->cp + from, m * sizeof(int32_t)) == 0;
    size_t s, e;
    span(w, from, to, &s, &e);
    if (cpbuf_reserve(&r->tmp, r->tmp.n + m))
        return -ENOMEM;
    for (size_t k = 0; k < m; k++)
        cpbuf_push(&r->tmp, r->u32[k], same ? w->s[from + k] : s, same ? w->e[from + k] : e);
    return 0;
}

/* Does the starter word[i] compose with what NFC makes of word[from..i)? */
static int composes(run *r, size_t from, size_t i, int *yes) {
    size_t m;
    if (nfc(r, r->word.cp + from, i - from, &m))
        return -ENOMEM;
    int32_t pair[2] = {m ? r->u32[m - 1] : 0, r->word.cp[i]};
    if (nfc(r, pair, 2, &m))
        return -ENOMEM;
    *yes = m < 2;
    return 0;
}

/* NFC of the word, keeping spans exact wherever nothing changed. The word
 * is cut into units that normalise independently: a new unit starts at a
 * starter (combining class 0) that follows a mark (it is blocked) or that
 * does not compose with the unit before it. */
static int word_nfc(run *r) {
    cpbuf *w = &r->word;
    size_t i = 0;
    while (i < w->n && w->cp[i] < 0x300) /* below U+0300 all is NFC already */
        i++;
    if (i == w->n)
        return 0;
    size_t m;
    if (nfc(r, w->cp, w->n, &m))
        return -ENOMEM;
    if (m == w->n && memcmp(r->u32, w->cp, m * sizeof(int32_t)) == 0)
        return 0;
    r->tmp.n = 0;
    size_t from = 0;
    for (i = 1; i <= w->n; i++) {
        int cut = i == w->n;
        if (!cut && ccc(w->cp[i]) == 0) {
            if (ccc(w->cp[i - 1]) != 0) {
                cut = 1;
            } else {
                int yes;
                if (composes(r, from, i, &yes))
                    return -ENOMEM;
                cut = !yes;
            }
        }
        if (cut) {
            if (push_unit(r, from, i))
                return -ENOMEM;
            from = i;
        }
    }
    cpbuf_swap(&r->word, &r->tmp);
    return 0;
}

/* Lowercases the word again (BasicTokenizer's token.lower()). */
static int word_lower(run *r) {
    cpbuf *w = &r->word;
    size_t i = 0;
    int32_t l[2];
    for (; i < w->n; i++)
        if (lower_cp(w->cp[i], l) != 1 || l[0] != w->cp[i])
            break;
    if (i == w->n)
        return 0;
    r->tmp.n = 0;
    for (i = 0; i < w->n; i++) {
        int k = lower_cp(w->cp[i], l);
        for (int j = 0; j < k; j++)
            if (cpbuf_push(&r->tmp, l[j], w->s[i], w->e[i]))
                return -ENOMEM;
    }
    cpbuf_swap(&r->word, &r->tmp);
    return 0;
}

/* NFD, then drop category Mn (BasicTokenizer._run_strip_accents). */
static int word_strip_accents(run *r) {
    cpbuf *w = &r->word;
    size_t i = 0;
    while (i < w->n && w->cp[i] < 0xC0) /* nothing below U+00C0 decomposes or is Mn */
        i++;
    if (i == w->n)
        return 0;
    cpbuf *t = &r->tmp;
    t->n = 0;
    for (i = 0; i < w->n; i++) {
        int32_t d[16];
        utf8proc_ssize_t k = 1;
        d[0] = w->cp[i];
        if (d[0] >= 0xC0) {
            k = utf8proc_decompose_char(w->cp[i], d, 16, UTF8PROC_DECOMPOSE, NULL);
            if (k < 1 || k > 16) { /* cannot happen for valid code points */
                d[0] = w->cp[i];
                k = 1;
            }
        }
        for (utf8proc_ssize_t j = 0; j < k; j++)
            if (cpbuf_push(t, d[j], w->s[i], w->e[i]))
                return -ENOMEM;
    }
    /* No canonical reordering: the word is NFC already, so the marks that
     * decomposition brings out are all Mn and go, and what stays keeps its
     * order (checked against Python's tables for every code point). */
    size_t k = 0;
    for (i = 0; i < t->n; i++) {
        if (t->cp[i] >= 0x300 && category(t->cp[i]) == UTF8PROC_CATEGORY_MN)
            continue;
        t->cp[k] = t->cp[i];
        t->s[k] = t->s[i];
        t->e[k] = t->e[i];
        k++;
    }
    t->n = k;
    cpbuf_swap(&r->word, &r->tmp);
    return 0;
}

static int is_special_name(const cpbuf *w) {
    if (w->n != 5 && w->n != 6)
        return 0;
    for (int i = 0; i < 5; i++) {
        const char *name = special_names[i];
        if (strlen(name) != w->n)
            continue;
        size_t k = 0;
        while (k < w->n && w->cp[k] == (unsigned char)name[k])
            k++;
        if (k == w->n)
            return 1;
    }
    return 0;
}

/* WordPiece on word[from..to): greedy longest match first. */
static int wordpiece_word(run *r, size_t from, size_t to) {
    const wordpiece *wp = r->wp;
    const cpbuf *w = &r->word;
    size_t n = to - from, s, e;
    if (n == 0)
        return 0;
    if (n > MAX_WORD_CHARS) {
        span(w, from, to, &s, &e);
        return emit(r, wp->sp.unk, s, e);
    }
    if (r->u8cap < n * 4 || r->atcap < n + 1) {
        char *u8 = realloc(r->u8, n * 4);
        if (!u8)
            return -ENOMEM;
        r->u8 = u8;
        r->u8cap = n * 4;
        size_t *at = realloc(r->at, (n + 1) * sizeof(*at));
        if (!at)
            return -ENOMEM;
        r->at = at;
        r->atcap = n + 1;
    }
    size_t *at = r->at;
    at[0] = 0;
    for (size_t i = 0; i < n; i++)
        at[i + 1] = at[i] + (size_t)utf8proc_encode_char(w->cp[from + i],
                                                         (utf8proc_uint8_t *)r->u8 + at[i]);
    int32_t ids[MAX_WORD_CHARS];
    size_t ends[MAX_WORD_CHARS], pieces = 0;
    for (size_t start = 0; start < n;) {
        size_t prefix = start ? 2 : 0, end = n;
        while (end > start && at[end] - at[start] + prefix > wp->max_len)
            end--;
        int32_t id = -1;
        for (; end > start; end--)
            if ((id = lookup(wp, start > 0, r->u8 + at[start], at[end] - at[start])) >= 0)
                break;
        if (id < 0) { /* a part matches nothing: the whole word is [UNK] */
            span(w, from, to, &s, &e);
            return emit(r, wp->sp.unk, s, e);
        }
        ids[pieces] = id;
        ends[pieces++] = end;
        start = end;
    }
    for (size_t p = 0, start = 0; p < pieces; start = ends[p++]) {
        span(w, from + start, from + ends[p], &s, &e);
        if (emit(r, ids[p], s, e))
            return -ENOMEM;
    }
    return 0;
}

/* One whitespace-delimited word, cleaned and lowercased once: the rest of
 * BasicTokenizer, then WordPiece. */
static int flush(run *r) {
    if (r->word.n == 0)
        return 0;
    int rc = word_nfc(r);
    if (!rc && !is_special_name(&r->word)) { /* never_split: all special names */
        if (r->wp->lower)
            rc = word_lower(r);
        if (!rc && r->wp->strip)
            rc = word_strip_accents(r);
    }
    if (rc)
        return rc;
    cpbuf *w = &r->word;
    if (is_special_name(w)) {
        rc = wordpiece_word(r, 0, w->n);
    } else {
        size_t from = 0;
        for (size_t i = 0; i < w->n && !rc; i++) {
            if (!is_punct(w->cp[i]))
                continue;
            rc = wordpiece_word(r, from, i);
            if (!rc)
                rc = wordpiece_word(r, i, i + 1);
            from = i + 1;
        }
        if (!rc)
            rc = wordpiece_word(r, from, w->n);
    }
    w->n = 0;
    return rc;
}

/* A special token spelled at text[0..len)? */
static int match_special(const wordpiece *wp, const char *text, size_t len, int32_t *id,
                         size_t *n) {
    for (int i = 0; i < 5; i++) {
        size_t k = strlen(special_names[i]);
        if (special_id(wp, i) >= 0 && len >= k && memcmp(text, special_names[i], k) == 0) {
            *id = special_id(wp, i);
            *n = k;
            return 1;
        }
    }
    return 0;
}

/* Tokenizes text into r; stops at a word's end once more than limit tokens
 * are out. */
static int run_text(run *r, const char *text, size_t len, size_t limit) {
    const wordpiece *wp = r->wp;
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)text;
    int rc = 0;
    for (size_t i = 0; i < len && !rc && r->n <= limit;) {
        int32_t id;
        size_t k;
        if (u[i] == '[' && match_special(wp, text + i, len - i, &id, &k)) {
            rc = flush(r);
            if (!rc)
                rc = emit(r, id, i, i + k);
            i += k;
            continue;
        }
        utf8proc_int32_t c = u[i];
        size_t step = 1;
        if (c >= 0x80) {
            utf8proc_ssize_t got = utf8proc_iterate(u + i, (utf8proc_ssize_t)(len - i), &c);
            if (got <= 0) /* a bad byte reads as U+FFFD, which cleaning drops */
                c = 0xFFFD;
            else
                step = (size_t)got;
        }
        size_t s = i, e = i + step;
        i = e;
        int32_t l[2] = {c, 0};
        int nl = wp->lower ? lower_cp(c, l) : 1;
        for (int j = 0; j < nl && !rc; j++) {
            c = l[j];
            if (c < 0x80) { /* ASCII without table look-ups */
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                    rc = flush(r);
                else if (c >= 0x20 && c != 0x7F)
                    rc = cpbuf_push(&r->word, c, s, e);
                continue;
            }
            if (c == 0xFFFD || is_control(c))
                continue;
            if (is_break(c)) {
                rc = flush(r);
            } else if (wp->cjk && is_cjk(c)) {
                rc = flush(r);
                if (!rc)
                    rc = cpbuf_push(&r->word, c, s, e);
                if (!rc)
                    rc = flush(r);
            } else {
                rc = cpbuf_push(&r->word, c, s, e);
            }
        }
    }
    if (!rc && r->n <= limit)
        rc = flush(r);
    return rc;
}

static int tokenize(const wordpiece *wp, const char *text, size_t len, size_t limit,
                    wordpiece_tokens *out, size_t *n) {
    run r = {.wp = wp, .out = out};
    if (out)
        out->n = 0;
    int rc = run_text(&r, text, len, limit);
    run_fini(&r);
    if (n)
        *n = r.n;
    return rc;
}

void wordpiece_tokens_fini(wordpiece_tokens *t) {
    free(t->ids);
    free(t->start);
    free(t->end);
    *t = (wordpiece_tokens)WORDPIECE_TOKENS_INIT;
}

int wordpiece_tokenize(const wordpiece *wp, const char *text, size_t len, wordpiece_tokens *out) {
    return tokenize(wp, text, len, SIZE_MAX, out, NULL);
}

int wordpiece_count(const wordpiece *wp, const char *text, size_t len, size_t *n) {
    return tokenize(wp, text, len, SIZE_MAX, NULL, n);
}

int wordpiece_prefix_bytes(const wordpiece *wp, const char *text, size_t len, size_t max_tokens,
                           size_t *prefix_len) {
    wordpiece_tokens t = WORDPIECE_TOKENS_INIT;
    int rc = tokenize(wp, text, len, max_tokens, &t, NULL);
    if (rc) {
        wordpiece_tokens_fini(&t);
        return rc;
    }
    if (t.n <= max_tokens) {
        *prefix_len = len;
    } else {
        /* A cut before token k is clean when every token before it ends by
         * where the tokens from k on begin. Tokenizing stopped at a word's
         * end and later words start later, so the tokens at hand decide.
         * start[] becomes the suffix minimum; k = 0 is always clean. */
        for (size_t j = t.n - 1; j > 0; j--)
            if (t.start[j] < t.start[j - 1])
                t.start[j - 1] = t.start[j];
        size_t best = t.start[0], reach = 0;
        for (size_t k = 0; k <= max_tokens && k < t.n; k++) {
            if (t.start[k] >= reach)
                best = t.start[k];
            if (t.end[k] > reach)
                reach = t.end[k];
        }
        *prefix_len = best;
    }
    wordpiece_tokens_fini(&t);
    return 0;
}

/* ---- batches ------------------------------------------------------------ */

void wordpiece_batch_free(wordpiece_batch *b) {
    if (!b)
        return;
    free(b->input_ids);
    free(b->attention_mask);
    free(b->token_type_ids);
    free(b->lengths);
    free(b);
}

int wordpiece_batch_new(const wordpiece *wp, const char *const *texts, const size_t *lens, size_t n,
                        const wordpiece_encode_opts *opts, wordpiece_batch **out) {
    size_t max = opts && opts->max_length ? opts->max_length : DEFAULT_MAX_LENGTH;
    if (n == 0 || max < 2)
        return -EINVAL;
    if (n > SIZE_MAX / max / sizeof(int64_t))
        return -ENOMEM;
    wordpiece_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->rows = n;
    b->input_ids = malloc(n * max * sizeof(int64_t));
    b->lengths = malloc(n * sizeof(size_t));
    wordpiece_tokens t = WORDPIECE_TOKENS_INIT;
    int rc = b->input_ids && b->lengths ? 0 : -ENOMEM;
    size_t width = 0;
    /* Rows at the full width first; the longest decides the final one. */
    for (size_t i = 0; i < n && !rc; i++) {
        rc = tokenize(wp, texts[i], lens[i], max - 2, &t, NULL);
        if (rc)
            break;
        size_t keep = t.n < max - 2 ? t.n : max - 2;
        int64_t *row = b->input_ids + i * max;
        row[0] = wp->sp.cls;
        for (size_t k = 0; k < keep; k++)
            row[1 + k] = t.ids[k];
        row[1 + keep] = wp->sp.sep;
        b->lengths[i] = keep + 2;
        if (keep + 2 > width)
            width = keep + 2;
    }
    wordpiece_tokens_fini(&t);
    if (!rc) {
        if (opts && opts->pad_to_max)
            width = max;
        b->width = width;
        for (size_t i = 0; i < n; i++) /* width <= max: rows move down in order */
            memmove(b->input_ids + i * width, b->input_ids + i * max,
                    b->lengths[i] * sizeof(int64_t));
        b->attention_mask = malloc(n * width * sizeof(int64_t));
        b->token_type_ids = calloc(n * width, sizeof(int64_t));
        if (!b->attention_mask || !b->token_type_ids)
            rc = -ENOMEM;
    }
    if (rc) {
        wordpiece_batch_free(b);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t *ids = b->input_ids + i * width, *mask = b->attention_mask + i * width;
        for (size_t k = 0; k < width; k++) {
            mask[k] = k < b->lengths[i];
            if (k >= b->lengths[i])
                ids[k] = wp->sp.pad;
        }
    }
    *out = b;
    return 0;
}
