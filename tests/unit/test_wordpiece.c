/* test_wordpiece.c - the WordPiece tokenizer against an independent Python
 * reimplementation of Hugging Face's slow BertTokenizer
 * (tests/ref/wordpiece_ref.py, standard library only), on a small vocabulary
 * this suite writes itself: a battery of tricky texts and a seeded random
 * one, in three configurations (uncased; cased with a CRLF vocab.txt;
 * lowercase without accent stripping). Then offsets, prefixes, batches and
 * load errors, which need no reference. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wordpiece.h"
#include "require.h"

#define PYTHON "/usr/bin/python3"
#define REF SLUICE_SOURCE_DIR "/tests/ref/wordpiece_ref.py"

/* ---- fixtures ----------------------------------------------------------- */

/* Specials, punctuation, characters and ## pieces, some words, accented,
 * Greek, Cyrillic, Devanagari, Hangul jamo and CJK entries. Id = line. */
/* clang-format off */
static const char *const vocab_lines[] = {
    "[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "!", "\"", "#", "$", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/", ":", ";", "<",
    "=", ">", "?", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}", "~",
    "«", "»", "—", "¿", "…", "·", "、", "。",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "##0", "##1", "##2", "##4", "##9",
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
    "s", "t", "u", "v", "w", "x", "y", "z",
    "##a", "##b", "##c", "##d", "##e", "##f", "##g", "##h", "##i", "##j", "##k", "##l", "##m",
    "##n", "##o", "##p", "##q", "##r", "##s", "##t", "##u", "##v", "##w", "##x", "##y", "##z",
    "H", "W", "C", "S", "##E", "##L", "##O", "##R", "##S", "##T",
    "the", "quick", "brown", "fox", "jump", "##ed", "##ing", "un", "##aff", "##able",
    "hello", "world", "Hello", "World", "cafe", "café", "naive", "naïve", "resume", "##ume",
    "cls", "sep", "mask", "ab", "##bc", "line", "para", "next", "join",
    "é", "##é", "è", "ü", "ö", "ñ", "ç", "##\xcc\x87", "##\xcc\x81", "i\xcc\x87", "istanbul",
    "stra", "##ße", "##sse", "σ", "ς", "ο", "δ", "##σ", "##ς", "##ο", "##δ", "οδος", "οδοσ",
    "ω", "å", "ﬁ", "ᄒ", "##ᅡ", "##ᆫ", "中", "国", "日", "本", "##中", "москва", "ελλαδα",
    "हिन", "##्", "##दी",
    "[MASK]", /* listed twice: the last line's id wins, as in Python's dict */
};
/* clang-format on */
#define VOCAB_N (sizeof(vocab_lines) / sizeof(*vocab_lines))

static char root[64];

static void setup(void) {
    strcpy(root, "/tmp/sluice_wp_XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    cr_expect_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* A model folder under root: vocab.txt from vocab_lines joined by eol, and
 * tokenizer_config.json when config is not NULL. Returns a static path. */
static const char *make_model(const char *name, const char *eol, const char *config) {
    static char dir[128];
    char path[256];
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    cr_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (size_t i = 0; i < VOCAB_N; i++)
        fprintf(f, "%s%s", vocab_lines[i], eol);
    fclose(f);
    if (config) {
        snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
        write_file(path, config);
    }
    return dir;
}

static wordpiece *load(const char *dir) {
    wordpiece *wp = NULL;
    char err[512];
    int rc = wordpiece_new(dir, &wp, err, sizeof(err));
    cr_assert_eq(rc, 0, "wordpiece_new: %d %s", rc, err);
    return wp;
}

static const char *uncased(void) { return make_model("uncased", "\n", NULL); }
static const char *cased(void) {
    return make_model("cased", "\r\n", "{\"do_lower_case\": false, \"model_max_length\": 512}");
}
static const char *nostrip(void) {
    return make_model("nostrip", "\n", "{\"do_lower_case\": true, \"strip_accents\": false}");
}

static int32_t id_of(const wordpiece *wp, const char *token) {
    int32_t id = wordpiece_token_id(wp, token, strlen(token));
    cr_assert_geq(id, 0, "%s is not in the vocabulary", token);
    return id;
}

/* ---- texts -------------------------------------------------------------- */

typedef struct text {
    const char *s;
    size_t len;
} text;
#define T(lit)                                                                                     \
    { lit, sizeof(lit) - 1 }

/* clang-format off */
static const text battery[] = {
    T("Hello, World!"),
    T("HeLLo WoRLD hello world"),
    T("The quick brown fox jumped; the fox jumps."),
    T("unaffable un-affable"),
    T("Ünïcödé façade café naïve résumé CAFÉ NAÏVE"),
    T("cafe\xcc\x81 nai\xcc\x88ve e\xcc\x81\xcc\x81 a\xcc\x81\xcc\x96 x\xcc\x96\xcc\x81y"),
    T("中国人 日本語"),
    T("中文abc中国def"),
    T("emoji 🙂 fox🙂 🙂fox 👍🏽"),
    T("ctrl\x01\x7fjoin zero\xe2\x80\x8bwidth \xe2\x80\x8dzwj \xef\xbb\xbf" "bom"),
    T("bad \xff\xfe bytes \xe2\x82 cut \xc0\xaf overlong \xed\xa0\x80 surrogate ab\xf4\x90\x80\x80" "cd"),
    T("NUL\0inside \0"),
    T(""),
    T("   \t\n\r \xc2\xa0\xe3\x80\x80 "),
    T("...!!!??? a--b__c ((x)) ~`^"),
    T("## a##b ##ing #"),
    T("[CLS] hello [SEP]"),
    T("[cls] [Cls] [CLS"),
    T("a[SEP]b[MASK]c[PAD][UNK]"),
    T("[CL\xe2\x80\x8bS] [[SEP]]"),
    T("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    T("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    T("line\xe2\x80\xa8sep\xe2\x80\xa9para next\xc2\x85join ab\x1c" "cd ab\x0b" "cd ab\x0c" "cd"),
    T("\xe1\xbf\xafx \xe2\x84\xab \xe2\x84\xaa \xe2\x84\xa6 \xcd\xb4 \xcd\xbe"),
    T("ΟΔΟΣ οδος ΟΔΟΣ. Σ σ"),
    T("İstanbul İ i\xcc\x87"),
    T("Straße STRASSE straße"),
    T("ﬁne ﬁ"),
    T("«quote» —dash— ¿qué? … a·b 中、国。"),
    T("2024-07-29 3.14 1,000"),
    T("\xcc\x81" "abc \xcc\x81 !\xcc\x81"),
    T("\xee\x80\x80private \xf3\xb0\x80\x80x \xef\xb7\x90nonchar"),
    T("한국어 한 \xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"),
    T("\xef\xa4\x80 \xf0\xaf\xa0\x80 \xe3\x90\x80 \xf0\xa0\x80\x80"),
    T("a\tb\nc\rd"),
    T("ℌ𝐀𝐁 ２０２４ ＡＢＣ"),
    T("Москва Ελλάδα ΕΛΛΑΔΑ"),
    T("हिन्दी"),
    T("\xe0\xad\x87\xe0\xac\xbe \xe0\xaf\x86\xe0\xae\xbe"),
    T("İ"),
    T("Ǆ ǅ ǆ ẞ"),
    T("x\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81\xcc\x81 e\xcc\xa3\xcc\x82"),
};
/* clang-format on */
#define BATTERY_N (sizeof(battery) / sizeof(*battery))

/* A seeded random battery: pieces of text that stress the rules, glued. */
/* clang-format off */
static const char *const pool[] = {
    "a", "b", "e", "s", "x", "Z", "E", "Hello", "the", "un", "aff", "able", " ", " ", "  ", "\t",
    "\n", "\r\n", ".", ",", "!", "#", "##", "-", "[", "]", "CLS", "[CLS]", "[SEP]", "[MASK]",
    "[UNK]", "é", "É", "e\xcc\x81", "\xcc\x81", "\xcc\x88", "\xcc\x96", "\xcc\x87", "中", "国",
    "\xe3\x80\x80", "\xc2\xa0", "\xe2\x80\x8b", "\xe2\x80\xa8", "🙂", "İ", "Σ", "σ", "ß", "ﬁ",
    "Ω", "Å", "\xe1\xbf\xaf", "\xe0\xad\x87", "\xe0\xac\xbe", "\xe1\x84\x92", "\xe1\x85\xa1",
    "\xe1\x86\xab", "한", "\xff", "\xe2\x82", "\x01", "\x7f", "1", "9", "«", "—", "ΟΔΟΣ", "ελλ",
    "ᄒ", "\xef\xa4\x80", "\xc0\xaf",
};
/* clang-format on */
#define POOL_N (sizeof(pool) / sizeof(*pool))
#define FUZZ_N 300

static uint64_t rng_state;
static uint32_t rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* FUZZ_N malloc'ed texts (free with free_texts). */
static text *fuzz_texts(uint64_t seed) {
    rng_state = seed;
    text *t = calloc(FUZZ_N, sizeof(*t));
    cr_assert_not_null(t);
    for (size_t i = 0; i < FUZZ_N; i++) {
        char *s = malloc(1024);
        cr_assert_not_null(s);
        size_t len = 0, parts = rng() % 24;
        for (size_t k = 0; k < parts; k++) {
            const char *p = pool[rng() % POOL_N];
            size_t n = strlen(p);
            memcpy(s + len, p, n);
            len += n;
        }
        if (rng() % 8 == 0) /* now and then an embedded NUL */
            s[len++] = '\0';
        t[i] = (text){s, len};
    }
    return t;
}

static void free_texts(text *t) {
    for (size_t i = 0; i < FUZZ_N; i++)
        free((char *)t[i].s);
    free(t);
}

static const char *hex(const text *t) {
    static char out[8192];
    size_t k = 0;
    for (size_t i = 0; i < t->len && k + 3 < sizeof(out); i++)
        k += (size_t)snprintf(out + k, sizeof(out) - k, "%02x", (unsigned char)t->s[i]);
    out[k] = '\0';
    return out;
}

static const char *show_ids(const int32_t *ids, size_t n, char *out, size_t size) {
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && k + 16 < size; i++)
        k += (size_t)snprintf(out + k, size - k, "%s%d", i ? "," : "", ids[i]);
    return out;
}

/* ---- the reference ------------------------------------------------------ */

typedef struct idlist {
    int32_t *ids;
    size_t n;
} idlist;

/* Runs wordpiece_ref.py on dir and texts; one idlist per text. */
static idlist *run_ref(const char *dir, const text *texts, size_t n) {
    char in[] = "/tmp/sluice_wp_in_XXXXXX";
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "wb");
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "{\"hex\": \"%s\"}\n", hex(&texts[i]));
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' < '%s'", PYTHON, REF, dir, in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    idlist *out = calloc(n, sizeof(*out));
    cr_assert_not_null(out);
    char *line = NULL;
    size_t cap = 0, got = 0;
    while (getline(&line, &cap, p) > 0 && got < n) {
        idlist *l = &out[got++];
        l->ids = malloc((strlen(line) / 2 + 1) * sizeof(int32_t));
        cr_assert_not_null(l->ids);
        for (char *s = line; *s;) {
            if (*s >= '0' && *s <= '9') {
                l->ids[l->n++] = (int32_t)strtol(s, &s, 10);
                continue;
            }
            s++;
        }
    }
    free(line);
    int status = pclose(p);
    unlink(in);
    cr_assert_eq(status, 0, "%s failed with status %d", cmd, status);
    cr_assert_eq(got, n, "the reference gave %zu lines for %zu texts", got, n);
    return out;
}

static void free_ids(idlist *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(l[i].ids);
    free(l);
}

static void teardown(void);

static void need_python(void) {
    if (access(PYTHON, X_OK) != 0) {
        teardown(); /* a skipped test does not reach .fini */
        SKIP_UNLESS_REQUIRED("skipped: %s is missing, and the reference needs it\n", PYTHON);
    }
}

/* Offsets are sane: non-empty, inside the text, on code point starts. */
static void check_offsets(const text *t, const wordpiece_tokens *tok) {
    for (size_t k = 0; k < tok->n; k++) {
        cr_assert_lt(tok->start[k], tok->end[k], "token %zu of %s", k, hex(t));
        cr_assert_leq(tok->end[k], t->len, "token %zu of %s", k, hex(t));
        unsigned char c = (unsigned char)t->s[tok->start[k]];
        cr_assert((c & 0xC0) != 0x80, "token %zu of %s starts mid-character", k, hex(t));
    }
}

/* Tokenizes every text in C and in the reference; all ids must agree. */
static void check_against_ref(const char *dir, const text *texts, size_t n) {
    wordpiece *wp = load(dir);
    idlist *want = run_ref(dir, texts, n);
    wordpiece_tokens tok = WORDPIECE_TOKENS_INIT;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(wordpiece_tokenize(wp, texts[i].s, texts[i].len, &tok), 0);
        check_offsets(&texts[i], &tok);
        size_t count;
        cr_assert_eq(wordpiece_count(wp, texts[i].s, texts[i].len, &count), 0);
        cr_expect_eq(count, tok.n);
        int same = tok.n == want[i].n &&
                   (tok.n == 0 || memcmp(tok.ids, want[i].ids, tok.n * sizeof(int32_t)) == 0);
        if (!same && bad++ < 10) {
            char a[4096], b[4096];
            cr_expect_fail("text %zu (hex %s)\n  C:      [%s]\n  Python: [%s]", i, hex(&texts[i]),
                           show_ids(tok.ids, tok.n, a, sizeof(a)),
                           show_ids(want[i].ids, want[i].n, b, sizeof(b)));
        }
    }
    cr_expect_eq(bad, 0, "%zu of %zu texts differ from the reference", bad, n);
    wordpiece_tokens_fini(&tok);
    free_ids(want, n);
    wordpiece_free(wp);
}

TestSuite(wordpiece, .init = setup, .fini = teardown);

Test(wordpiece, uncased_matches_the_reference) {
    need_python();
    check_against_ref(uncased(), battery, BATTERY_N);
    text *f = fuzz_texts(1);
    check_against_ref(uncased(), f, FUZZ_N);
    free_texts(f);
}

Test(wordpiece, cased_with_crlf_vocab_matches_the_reference) {
    need_python();
    check_against_ref(cased(), battery, BATTERY_N);
    text *f = fuzz_texts(2);
    check_against_ref(cased(), f, FUZZ_N);
    free_texts(f);
}

Test(wordpiece, lowercase_without_stripping_accents_matches_the_reference) {
    need_python();
    check_against_ref(nostrip(), battery, BATTERY_N);
    text *f = fuzz_texts(3);
    check_against_ref(nostrip(), f, FUZZ_N);
    free_texts(f);
}

/* ---- behaviour spelled out (no reference needed) ------------------------ */

static void expect_tokens(const wordpiece *wp, const char *s, size_t len, const char *const *want,
                          size_t n) {
    wordpiece_tokens tok = WORDPIECE_TOKENS_INIT;
    cr_assert_eq(wordpiece_tokenize(wp, s, len, &tok), 0);
    cr_expect_eq(tok.n, n, "%s: %zu tokens, want %zu", s, tok.n, n);
    for (size_t i = 0; i < n && i < tok.n; i++)
        cr_expect_eq(tok.ids[i], id_of(wp, want[i]), "%s: token %zu is not %s", s, i, want[i]);
    wordpiece_tokens_fini(&tok);
}
#define EXPECT(wp, lit, ...)                                                                       \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__};                                                 \
        expect_tokens(wp, lit, sizeof(lit) - 1, want_, sizeof(want_) / sizeof(*want_));            \
    } while (0)

Test(wordpiece, the_rules_one_by_one) {
    wordpiece *wp = load(uncased());
    EXPECT(wp, "Hello, World!", "hello", ",", "world", "!");
    EXPECT(wp, "unaffable", "un", "##aff", "##able");
    EXPECT(wp, "CAFÉ cafe\xcc\x81", "cafe", "cafe"); /* accents go, both spellings */
    EXPECT(wp, "ΟΔΟΣ", "οδοσ");                      /* no final sigma: per character */
    EXPECT(wp, "İstanbul", "istanbul");              /* i + U+0307, then stripped */
    EXPECT(wp, "中国x", "中", "国", "x");            /* CJK stand alone */
    EXPECT(wp, "fox🙂", "[UNK]");                  /* one bad piece: the word */
    EXPECT(wp, "[CLS]x[SEP] [cls]", "[CLS]", "x", "[SEP]", "[", "cls", "]");
    EXPECT(wp, "zero\xe2\x80\x8bwidth", "z", "##e", "##r", "##o", "##w", "##i", "##d", "##t",
           "##h");                                      /* Cf dropped, words join */
    EXPECT(wp, "line\xe2\x80\xa8para", "line", "para"); /* str.split() splits on LS */
    EXPECT(wp, "\xe1\xbf\xaf", "`");                    /* NFC makes it ASCII punctuation */
    EXPECT(wp,
           "bad\xff\xe2\x82"
           "ab",
           "b", "##a", "##d", "##a", "##b"); /* U+FFFD dropped */
    EXPECT(wp, "[MASK]", "[MASK]");
    cr_expect_eq(id_of(wp, "[MASK]"), (int32_t)VOCAB_N - 1, "the last [MASK] line wins");
    cr_expect_eq(wordpiece_specials(wp).mask, (int32_t)VOCAB_N - 1);
    cr_expect_eq(wordpiece_vocab_size(wp), VOCAB_N);

    char longw[102];
    memset(longw, 'a', 101);
    longw[101] = '\0';
    const char *const unk[] = {"[UNK]"};
    expect_tokens(wp, longw, 101, unk, 1);
    wordpiece_tokens tok = WORDPIECE_TOKENS_INIT;
    cr_assert_eq(wordpiece_tokenize(wp, longw, 100, &tok), 0);
    cr_expect_eq(tok.n, 100, "100 characters are still a word");
    wordpiece_tokens_fini(&tok);
    wordpiece_free(wp);

    wp = load(cased());
    EXPECT(wp, "Hello café CAFÉ", "Hello", "café", "[UNK]"); /* no ##A: the word is [UNK] */
    wordpiece_free(wp);
}

Test(wordpiece, offsets_point_at_the_bytes_each_token_came_from) {
    wordpiece *wp = load(uncased());
    struct {
        const char *s;
        size_t n;
        size_t spans[8][2];
    } cases[] = {
        {"Hello, world", 3, {{0, 5}, {5, 6}, {7, 12}}},
        {"unaffable", 3, {{0, 2}, {2, 5}, {5, 9}}},
        {"cafe\xcc\x81!", 2, {{0, 6}, {6, 7}}},           /* the mark goes with its letter */
        {" fox\xf0\x9f\x99\x82 x", 2, {{1, 8}, {9, 10}}}, /* [UNK] spans its word */
        {"[CLS]x", 2, {{0, 5}, {5, 6}}},
        {"\xe4\xb8\xad\xe5\x9b\xbd", 2, {{0, 3}, {3, 6}}},
        {"ab\xe2\x80\x8b"
         "cd",
         3,
         {{0, 2}, {5, 6}, {6, 7}}}, /* "abcd": ab ##c ##d */
    };
    wordpiece_tokens tok = WORDPIECE_TOKENS_INIT;
    for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
        cr_assert_eq(wordpiece_tokenize(wp, cases[c].s, strlen(cases[c].s), &tok), 0);
        cr_expect_eq(tok.n, cases[c].n, "%s: %zu tokens", cases[c].s, tok.n);
        for (size_t k = 0; k < tok.n && k < cases[c].n; k++) {
            cr_expect_eq(tok.start[k], cases[c].spans[k][0], "%s: token %zu start %zu", cases[c].s,
                         k, tok.start[k]);
            cr_expect_eq(tok.end[k], cases[c].spans[k][1], "%s: token %zu end %zu", cases[c].s, k,
                         tok.end[k]);
        }
    }
    wordpiece_tokens_fini(&tok);
    wordpiece_free(wp);
}

/* The prefix contract: its tokens are the text's first k <= max tokens; all
 * of the text when everything fits; otherwise it stops where token k
 * starts, and k == max whenever every cut is clean (clean_cuts). */
static void check_prefix(const wordpiece *wp, const text *t, size_t max, int clean_cuts) {
    wordpiece_tokens all = WORDPIECE_TOKENS_INIT, pre = WORDPIECE_TOKENS_INIT;
    cr_assert_eq(wordpiece_tokenize(wp, t->s, t->len, &all), 0);
    size_t p;
    cr_assert_eq(wordpiece_prefix_bytes(wp, t->s, t->len, max, &p), 0);
    cr_assert_leq(p, t->len);
    cr_assert_eq(wordpiece_tokenize(wp, t->s, p, &pre), 0);
    cr_expect_leq(pre.n, max, "%s, max %zu: the prefix of %zu bytes has %zu tokens", hex(t), max, p,
                  pre.n);
    cr_expect_leq(pre.n, all.n);
    for (size_t k = 0; k < pre.n && k < all.n; k++)
        cr_expect_eq(pre.ids[k], all.ids[k], "%s, max %zu: token %zu differs", hex(t), max, k);
    if (all.n <= max) {
        cr_expect_eq(p, t->len, "%s, max %zu: everything fits", hex(t), max);
    } else if (pre.n < all.n) {
        cr_expect_eq(p, all.start[pre.n], "%s, max %zu: the cut is where the next token starts",
                     hex(t), max);
        if (clean_cuts)
            cr_expect_eq(pre.n, max, "%s, max %zu: one more token would not fit", hex(t), max);
    }
    wordpiece_tokens_fini(&all);
    wordpiece_tokens_fini(&pre);
}

Test(wordpiece, prefix_keeps_the_most_tokens_that_fit) {
    wordpiece *wp = load(uncased());
    static const text clean[] = {
        T("Hello, World! The quick brown fox jumped over the unaffable café."),
        T("  leading and trailing spaces   "),
        T("中国日本 mixed 中文 text"),
        T("[CLS] a [SEP] b [MASK]"),
        T("cafe\xcc\x81 nai\xcc\x88ve zero\xe2\x80\x8bwidth fox🙂 bad\xff"
          "bytes"),
        T(""),
        T("x"),
    };
    for (size_t i = 0; i < sizeof(clean) / sizeof(*clean); i++) {
        size_t n;
        cr_assert_eq(wordpiece_count(wp, clean[i].s, clean[i].len, &n), 0);
        for (size_t max = 0; max <= n + 1; max++)
            check_prefix(wp, &clean[i], max, 1);
    }
    /* The jamo pieces of one Hangul syllable share its bytes: no cut
     * between them, so fewer than max tokens may be kept. */
    static const text hangul = T("한 한");
    size_t p;
    cr_assert_eq(wordpiece_prefix_bytes(wp, hangul.s, hangul.len, 1, &p), 0);
    cr_expect_eq(p, 0);
    cr_assert_eq(wordpiece_prefix_bytes(wp, hangul.s, hangul.len, 4, &p), 0);
    cr_expect_eq(p, 4, "after the first syllable and its space");
    for (size_t max = 0; max <= 7; max++)
        check_prefix(wp, &hangul, max, 0);
    /* And the whole battery, the random texts included. */
    text *f = fuzz_texts(4);
    for (size_t i = 0; i < FUZZ_N; i++)
        check_prefix(wp, &f[i], rng() % 12, 0);
    for (size_t i = 0; i < BATTERY_N; i++)
        for (size_t max = 0; max < 12; max += 3)
            check_prefix(wp, &battery[i], max, 0);
    free_texts(f);
    wordpiece_free(wp);
}

/* ---- batches ------------------------------------------------------------ */

static void check_batch(const wordpiece *wp, const text *texts, size_t n,
                        const wordpiece_encode_opts *opts) {
    const char *s[64];
    size_t lens[64];
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) {
        s[i] = texts[i].s;
        lens[i] = texts[i].len;
    }
    wordpiece_batch *b;
    cr_assert_eq(wordpiece_batch_new(wp, s, lens, n, opts, &b), 0);
    size_t max = opts && opts->max_length ? opts->max_length : 512, longest = 0;
    wordpiece_special_ids sp = wordpiece_specials(wp);
    wordpiece_tokens tok = WORDPIECE_TOKENS_INIT;
    cr_assert_eq(b->rows, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(wordpiece_tokenize(wp, s[i], lens[i], &tok), 0);
        size_t keep = tok.n < max - 2 ? tok.n : max - 2;
        cr_expect_eq(b->lengths[i], keep + 2, "row %zu", i);
        if (keep + 2 > longest)
            longest = keep + 2;
        const int64_t *ids = b->input_ids + i * b->width;
        const int64_t *mask = b->attention_mask + i * b->width;
        cr_expect_eq(ids[0], sp.cls, "row %zu starts with [CLS]", i);
        for (size_t k = 0; k < keep; k++)
            cr_expect_eq(ids[1 + k], tok.ids[k], "row %zu, token %zu", i, k);
        cr_expect_eq(ids[keep + 1], sp.sep, "row %zu: [SEP] after the kept tokens", i);
        for (size_t k = 0; k < b->width; k++) {
            cr_expect_eq(mask[k], k < keep + 2, "row %zu, mask %zu", i, k);
            if (k >= keep + 2)
                cr_expect_eq(ids[k], sp.pad, "row %zu, pad %zu", i, k);
            cr_expect_eq(b->token_type_ids[i * b->width + k], 0);
        }
    }
    cr_expect_eq(b->width, opts && opts->pad_to_max ? max : longest);
    wordpiece_tokens_fini(&tok);
    wordpiece_batch_free(b);
}

Test(wordpiece, batches_truncate_pad_and_mask) {
    wordpiece *wp = load(uncased());
    text batch[33];
    for (size_t i = 0; i < 33; i++)
        batch[i] = battery[i % BATTERY_N];
    wordpiece_encode_opts longest8 = {8, 0}, fixed12 = {12, 1}, tiny = {2, 0};
    check_batch(wp, batch, 1, NULL);
    check_batch(wp, batch, 33, NULL);
    check_batch(wp, batch, 1, &longest8);
    check_batch(wp, batch, 33, &longest8);
    check_batch(wp, batch + 12, 1, &fixed12); /* the empty text: [CLS] [SEP] and padding */
    check_batch(wp, batch, 33, &fixed12);
    check_batch(wp, batch, 33, &tiny);

    const char *one[] = {"hello world"};
    size_t one_len[] = {11};
    wordpiece_batch *b;
    cr_assert_eq(wordpiece_batch_new(wp, one, one_len, 1, NULL, &b), 0);
    int64_t want[] = {id_of(wp, "[CLS]"), id_of(wp, "hello"), id_of(wp, "world"),
                      id_of(wp, "[SEP]")};
    cr_expect_eq(b->width, 4);
    cr_expect_arr_eq(b->input_ids, want, sizeof(want));
    wordpiece_batch_free(b);

    wordpiece_encode_opts one_wide = {1, 0};
    cr_expect_eq(wordpiece_batch_new(wp, one, one_len, 1, &one_wide, &b), -EINVAL);
    cr_expect_eq(wordpiece_batch_new(wp, one, one_len, 0, NULL, &b), -EINVAL);
    wordpiece_free(wp);
}

/* ---- errors ------------------------------------------------------------- */

static void expect_load_error(const char *dir, int code, const char *needle) {
    wordpiece *wp = NULL;
    char err[512];
    int rc = wordpiece_new(dir, &wp, err, sizeof(err));
    cr_expect_eq(rc, code, "%s: got %d (%s), want %d", dir, rc, err, code);
    cr_expect_null(wp);
    cr_expect_not_null(strstr(err, needle), "message \"%s\" lacks \"%s\"", err, needle);
}

Test(wordpiece, load_errors_name_the_file_and_line) {
    char dir[256], path[300];
    snprintf(dir, sizeof(dir), "%s/none", root);
    expect_load_error(dir, -ENOENT, "none/vocab.txt: No such file");

    snprintf(dir, sizeof(dir), "%s/bad", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    write_file(path, "[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n");
    expect_load_error(dir, -EINVAL, "bad/vocab.txt:3: empty token");
    write_file(path, "[PAD]\n[UNK]\r\nok\rbad\xff\n");
    expect_load_error(dir, -EINVAL, "bad/vocab.txt:4: invalid UTF-8");
    write_file(path, "[PAD]\n[CLS]\n[SEP]\n");
    expect_load_error(dir, -EINVAL, "bad/vocab.txt: missing [UNK]");
    write_file(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]");
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    write_file(path, "{\"do_lower_case\": \"yes\"}");
    expect_load_error(dir, -EINVAL, "tokenizer_config.json: do_lower_case must be true or false");
    write_file(path, "{\"strip_accents\": 1}");
    expect_load_error(dir, -EINVAL, "strip_accents must be true or false or null");
    write_file(path, "{\"do_lower_case\": tru");
    expect_load_error(dir, -EINVAL, "tokenizer_config.json: ");
    write_file(path, "{\"strip_accents\": null, \"added_tokens_decoder\": {\"0\": {\"a\": [1]}}}");
    wordpiece *wp = load(dir); /* the last line needs no newline */
    cr_expect_eq(wordpiece_vocab_size(wp), 4);
    cr_expect_eq(wordpiece_specials(wp).sep, 3);
    cr_expect_eq(wordpiece_specials(wp).mask, -1);
    EXPECT(wp, "[MASK]", "[UNK]", "[UNK]", "[UNK]"); /* no [MASK]: "[", "mask", "]" */
    wordpiece_free(wp);
}
