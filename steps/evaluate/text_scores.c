/* text_scores.c - ROUGE-L, BLEU, exact match and word counts (text_scores.h).
 * The tokenizers are written from the reference implementations' rules
 * (rouge_score/tokenize.py; sacrebleu/tokenizers/tokenizer_13a.py and
 * tokenizer_re.py) and checked against tests/ref/text_scores_ref.py. */
#include "text_scores.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "strtab.h"
#include "text.h"

/* A growable byte buffer. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static int sbuf_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *grown = realloc(b->s, cap);
        if (!grown)
            return -ENOMEM;
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return 0;
}

static int sbuf_ch(sbuf *b, char c) { return sbuf_put(b, &c, 1); }

/* The code point at s[*at], advancing *at; a byte that is not part of
 * valid UTF-8 is one U+FFFD. */
static long next_cp(const char *s, size_t len, size_t *at) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n =
        utf8proc_iterate((const utf8proc_uint8_t *)s + *at, (utf8proc_ssize_t)(len - *at), &cp);
    if (n <= 0) {
        (*at)++;
        return 0xFFFD;
    }
    *at += (size_t)n;
    return cp;
}

/* Token ids of a text: each distinct word an id of the pair's table. */
typedef struct words {
    uint32_t *id;
    size_t n, cap;
} words;

static int words_add(words *w, strtab *t, const char *s, size_t len) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        uint32_t *grown = realloc(w->id, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        w->id = grown;
        w->cap = cap;
    }
    return strtab_intern(t, s, len, &w->id[w->n++]) == 0 ? 0 : -ENOMEM;
}

/* The words of s split at Python's whitespace, interned in t (or only
 * counted when w is NULL). */
static int split_words(const char *s, size_t len, strtab *t, words *w, size_t *count) {
    size_t at = 0, start = 0, n = 0;
    int in_word = 0;
    while (at < len) {
        size_t here = at;
        long cp = next_cp(s, len, &at);
        if (text_is_space(cp)) {
            if (in_word && w && words_add(w, t, s + start, here - start) != 0)
                return -ENOMEM;
            n += in_word;
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            start = here;
        }
    }
    if (in_word && w && words_add(w, t, s + start, len - start) != 0)
        return -ENOMEM;
    if (count)
        *count = n + in_word;
    return 0;
}

/* ---- ROUGE-L ---- */

/* rouge_score's tokenize(): str.lower(), [^a-z0-9]+ to a space, split.
 * Only two code points outside ASCII lower-case to something holding an
 * ASCII letter: U+0130 (to "i" + U+0307, whose dot then separates) and the
 * Kelvin sign U+212A (to "k"); every other one becomes a separator. */
static int rouge_words(const char *text, strtab *t, words *w) {
    char *s;
    size_t len;
    if (text_utf8_dup(text, strlen(text), &s, &len) != 0)
        return -ENOMEM;
    sbuf word = {0};
    size_t at = 0;
    int rc = 0;
    while (rc == 0) {
        long cp = at < len ? next_cp(s, len, &at) : -1;
        char c = 0;
        int ends = 1;
        if (cp >= 'A' && cp <= 'Z')
            c = (char)(cp - 'A' + 'a'), ends = 0;
        else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9'))
            c = (char)cp, ends = 0;
        else if (cp == 0x212A)
            c = 'k', ends = 0;
        else if (cp == 0x130)
            c = 'i'; /* then the combining dot ends the word */
        if (c)
            rc = sbuf_ch(&word, c);
        if (rc == 0 && ends && word.n) {
            rc = words_add(w, t, word.s, word.n);
            word.n = 0;
        }
        if (cp < 0)
            break;
    }
    free(word.s);
    free(s);
    return rc;
}

static size_t lcs(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, size_t *row) {
    memset(row, 0, (nb + 1) * sizeof(*row));
    for (size_t i = 0; i < na; i++) {
        size_t diag = 0; /* row[j] of the previous i */
        for (size_t j = 0; j < nb; j++) {
            size_t up = row[j + 1];
            row[j + 1] = a[i] == b[j] ? diag + 1 : (up > row[j] ? up : row[j]);
            diag = up;
        }
    }
    return row[nb];
}

int textscore_rouge_l(const char *answer, const char *reference, textscore_rouge *out) {
    strtab t = {0};
    words a = {0}, r = {0};
    size_t *row = NULL;
    int rc = rouge_words(answer, &t, &a);
    if (rc == 0)
        rc = rouge_words(reference, &t, &r);
    memset(out, 0, sizeof(*out));
    if (rc == 0 && a.n && r.n) {
        if (!(row = malloc((r.n + 1) * sizeof(*row))))
            rc = -ENOMEM;
        else {
            size_t l = lcs(a.id, a.n, r.id, r.n, row);
            out->precision = (double)l / (double)a.n;
            out->recall = (double)l / (double)r.n;
            if (out->precision + out->recall > 0)
                out->f1 = 2 * out->precision * out->recall / (out->precision + out->recall);
        }
    }
    free(row);
    free(a.id);
    free(r.id);
    strtab_free(&t);
    return rc;
}

/* ---- BLEU ---- */

/* Every non-overlapping occurrence of from in s replaced by to. */
static int replace_all(sbuf *s, const char *from, const char *to) {
    if (!strstr(s->s, from))
        return 0;
    sbuf out = {0};
    size_t nf = strlen(from), nt = strlen(to);
    const char *p = s->s, *hit;
    while ((hit = strstr(p, from))) {
        if (sbuf_put(&out, p, (size_t)(hit - p)) != 0 || sbuf_put(&out, to, nt) != 0) {
            free(out.s);
            return -ENOMEM;
        }
        p = hit + nf;
    }
    if (sbuf_put(&out, p, strlen(p)) != 0) {
        free(out.s);
        return -ENOMEM;
    }
    free(s->s);
    *s = out;
    return 0;
}

/* TokenizerRegexp's first rule's class: {-~ [-` space-& (-+ :-@ / */
static int punct_13a(unsigned char c) {
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* One pass of TokenizerRegexp's rules 2 to 4 (re.sub: matches of two
 * characters, left to right, not overlapping). They look at ASCII bytes
 * only, and a byte of a multi-byte character is never a digit, "." nor
 * ",", so running them on bytes gives what Python gives on characters. */
static int regex_pass(sbuf *s, int rule) {
    sbuf out = {0};
    const unsigned char *b = (const unsigned char *)s->s;
    size_t n = s->n;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        int two = i + 1 < n;
        char c0 = (char)b[i], c1 = two ? (char)b[i + 1] : 0;
        if (rule == 2 && two && !is_digit(b[i]) && (c1 == '.' || c1 == ',')) {
            char rep[4] = {c0, ' ', c1, ' '}; /* \1 \2 + space */
            rc = sbuf_put(&out, rep, 4), i += 2;
        } else if (rule == 3 && two && (c0 == '.' || c0 == ',') && !is_digit(b[i + 1])) {
            char rep[4] = {' ', c0, ' ', c1}; /* space \1 space \2 */
            rc = sbuf_put(&out, rep, 4), i += 2;
        } else if (rule == 4 && two && is_digit(b[i]) && c1 == '-') {
            char rep[4] = {c0, ' ', '-', ' '};
            rc = sbuf_put(&out, rep, 4), i += 2;
        } else {
            rc = sbuf_ch(&out, c0), i++;
        }
    }
    if (rc == 0 && !out.s)
        rc = sbuf_put(&out, "", 0);
    if (rc != 0) {
        free(out.s);
        return rc;
    }
    free(s->s);
    *s = out;
    return 0;
}

/* sacrebleu's BLEU._preprocess_segment: rstrip, then Tokenizer13a, then
 * the words (extract_all_word_ngrams: line.split()). */
static int bleu_words(const char *text, strtab *t, words *w) {
    char *s;
    size_t len;
    if (text_utf8_dup(text, strlen(text), &s, &len) != 0)
        return -ENOMEM;
    size_t end = 0, at = 0; /* rstrip: the end of the last non-space */
    while (at < len)
        if (!text_is_space(next_cp(s, len, &at)))
            end = at;
    sbuf line = {0};
    int rc = sbuf_ch(&line, ' ');
    if (rc == 0)
        rc = sbuf_put(&line, s, end);
    free(s);
    static const char *const subs[][2] = {{"<skipped>", ""}, {"-\n", ""}, {"\n", " "}};
    for (size_t i = 0; rc == 0 && i < 3; i++)
        rc = replace_all(&line, subs[i][0], subs[i][1]);
    static const char *const ents[][2] = {
        {"&quot;", "\""}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}};
    for (size_t i = 0; rc == 0 && strchr(line.s, '&') && i < 4; i++)
        rc = replace_all(&line, ents[i][0], ents[i][1]);
    if (rc == 0)
        rc = sbuf_ch(&line, ' ');
    sbuf spaced = {0}; /* rule 1: each such character between spaces */
    for (size_t i = 0; rc == 0 && i < line.n; i++) {
        char c = line.s[i], rep[3] = {' ', c, ' '};
        rc = punct_13a((unsigned char)c) ? sbuf_put(&spaced, rep, 3) : sbuf_ch(&spaced, c);
    }
    free(line.s);
    for (int rule = 2; rc == 0 && rule <= 4; rule++)
        rc = regex_pass(&spaced, rule);
    if (rc == 0)
        rc = split_words(spaced.s, spaced.n, t, w, NULL);
    free(spaced.s);
    return rc;
}

/* How often the n-gram at a[i] occurs in b[0..nb). */
static uint64_t ngram_count(const uint32_t *g, size_t n, const uint32_t *b, size_t nb) {
    uint64_t c = 0;
    for (size_t j = 0; j + n <= nb; j++)
        c += memcmp(g, b + j, n * sizeof(*g)) == 0;
    return c;
}

int textscore_bleu_add(textscore_bleu *b, const char *answer, const char *reference) {
    strtab t = {0};
    words h = {0}, r = {0};
    int rc = bleu_words(answer, &t, &h);
    if (rc == 0)
        rc = bleu_words(reference, &t, &r);
    if (rc == 0) {
        for (size_t n = 1; n <= TEXTSCORE_BLEU_ORDER; n++) {
            for (size_t i = 0; i + n <= h.n; i++) {
                b->total[n - 1]++;
                /* each distinct n-gram once, at its first occurrence */
                if (ngram_count(h.id + i, n, h.id, i + n - 1) > 0)
                    continue;
                uint64_t in_h = ngram_count(h.id + i, n, h.id, h.n),
                         in_r = ngram_count(h.id + i, n, r.id, r.n);
                b->correct[n - 1] += in_h < in_r ? in_h : in_r;
            }
        }
        b->sys_len += h.n;
        b->ref_len += r.n;
    }
    free(h.id);
    free(r.id);
    strtab_free(&t);
    return rc;
}

double textscore_bleu_score(const textscore_bleu *b, int effective_order) {
    double bp = 1;
    if (b->sys_len < b->ref_len)
        bp = b->sys_len > 0 ? exp(1 - (double)b->ref_len / (double)b->sys_len) : 0;
    int any = 0;
    for (int n = 0; n < TEXTSCORE_BLEU_ORDER; n++)
        any |= b->correct[n] > 0;
    if (!any)
        return 0;
    double p[TEXTSCORE_BLEU_ORDER] = {0}, smooth = 1;
    int order = TEXTSCORE_BLEU_ORDER;
    for (int n = 0; n < TEXTSCORE_BLEU_ORDER; n++) {
        if (b->total[n] == 0)
            break;
        if (effective_order)
            order = n + 1;
        if (b->correct[n] == 0) {
            smooth *= 2;
            p[n] = 100.0 / (smooth * (double)b->total[n]);
        } else {
            p[n] = 100.0 * (double)b->correct[n] / (double)b->total[n];
        }
    }
    /* sacrebleu's my_log: log(0) is -9999999999 */
    double sum = 0;
    for (int n = 0; n < order; n++)
        sum += p[n] > 0 ? log(p[n]) : -9999999999.0;
    return bp * exp(sum / order);
}

/* ---- exact match and words ---- */

/* s[*start, *end): s without Python's whitespace at either end. */
static void strip(const char *s, size_t len, size_t *start, size_t *end) {
    size_t at = 0;
    *start = len, *end = 0;
    while (at < len) {
        size_t here = at;
        if (!text_is_space(next_cp(s, len, &at))) {
            if (*start == len)
                *start = here;
            *end = at;
        }
    }
    if (*start > *end)
        *start = *end = 0;
}

/* On the bytes as they are: a bad byte is no whitespace either way. */
int textscore_exact_match(const char *answer, const char *reference) {
    size_t a0, a1, r0, r1;
    strip(answer, strlen(answer), &a0, &a1);
    strip(reference, strlen(reference), &r0, &r1);
    return a1 - a0 == r1 - r0 && memcmp(answer + a0, reference + r0, a1 - a0) == 0;
}

size_t textscore_words(const char *text) {
    size_t n = 0;
    split_words(text, strlen(text), NULL, NULL, &n);
    return n;
}
