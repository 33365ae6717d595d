#include <bson/bson.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "capbuf.h"
#include "records.h"
#include "text.h"
#include "require.h"

/* fn (a text rule: text_clean, text_remove_markup, ...) applied to in. */
typedef int (*text_rule)(const char *, size_t, char **, size_t *);

static char *apply(text_rule fn, const char *in) {
    char *out;
    size_t len;
    cr_assert_eq(fn(in, strlen(in), &out, &len), 0);
    cr_assert_eq(strlen(out), len);
    return out;
}

static char *clean(const char *in) { return apply(text_clean, in); }

#define expect_rule(fn, in, want)                                                                  \
    do {                                                                                           \
        char *got_ = apply(fn, in);                                                                \
        cr_expect_str_eq(got_, want);                                                              \
        free(got_);                                                                                \
    } while (0)
#define expect_clean(in, want) expect_rule(text_clean, in, want)

Test(text, clean_keeps_words_of_every_script_and_sentence_punctuation) {
    expect_clean("Hello, world! Is it?", "Hello, world! Is it?");
    expect_clean("  (LLM) #### twin: 2024-07-29  ", "LLM twin 2024 07 29");
    expect_clean("Ünïcödé façade, 東京 and Москва", "Ünïcödé façade, 東京 and Москва");
    expect_clean("snake_case stays; kebab-case splits", "snake_case stays kebab case splits");
    expect_clean("emoji 🔧 gone, math 𝐀𝐁 kept, ² kept", "emoji gone, math 𝐀𝐁 kept, ² kept");
    expect_clean("tabs\tand\nnew\u2028lines\u3000fold", "tabs and new lines fold");
    expect_clean("\u00a0nbsp\u00a0", "nbsp");
    expect_clean("", "");
    expect_clean("***", "");
}

Test(text, clean_turns_broken_utf8_into_spaces_never_into_broken_output) {
    char *got = clean("bad \xff\xfe bytes \xe2\x82 cut");
    cr_expect_str_eq(got, "bad bytes cut");
    free(got);
}

static size_t count_chunks(const char *in, size_t min, size_t max, char ***out) {
    size_t n;
    cr_assert_eq(text_chunk_article(in, strlen(in), min, max, out, &n), 0);
    return n;
}

Test(text, sentences_split_after_end_marks_but_not_after_abbreviations) {
    char **c;
    /* max 1: every sentence on its own; min 1: keep every non-empty one. */
    size_t n =
        count_chunks("Dr. Smith met Mr. Jones. It was 3.14 p.m. e.g. late! Was it? Yes", 1, 1, &c);
    /* As Python's re.split gives it with the Handbook's pattern. */
    const char *want[] = {"Dr. Smith met Mr. Jones.", "It was 3.14 p.m. e.g. late!", "Was it?",
                          "Yes"};
    cr_assert_eq(n, 4, "got %zu chunks", n);
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(c[i], want[i]);
    text_chunks_free(c, n);
}

Test(text, chunks_respect_the_bounds_in_code_points) {
    /* Sentences of 10 code points ("ééééééééé." is 10, 20 bytes). */
    char text[2000] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, "ééééééééé. ");
    char **c;
    size_t n = count_chunks(text, 30, 50, &c);
    /* 4 sentences with their spaces make 44 <= 50; the fifth would not fit:
     * 7 chunks of 4, and the last 2 sentences (22 < 30) are dropped. */
    cr_assert_eq(n, 7, "%zu", n);
    cr_expect_str_eq(c[0], "ééééééééé. ééééééééé. ééééééééé. ééééééééé.");
    text_chunks_free(c, n);
    n = count_chunks("Short. Tail.", 100, 2000, &c);
    cr_expect_eq(n, 0, "below min nothing is kept");
    text_chunks_free(c, n);
}

Test(text, chunk_ids_are_md5_uuids_version_4) {
    char id[37];
    cr_assert_eq(text_chunk_id("hello", 5, id), 0);
    /* md5("hello") = 5d41402abc4b2a76b9719d911017c592 */
    cr_expect_str_eq(id, "5d41402a-bc4b-4a76-b971-9d911017c592");
}

/* Pinned against Python's re.split with the Handbook's pattern (see
 * ../shared/handbook/README.md): abbreviations of the two shapes it knows,
 * decimals, and scripts other than Latin, whose capitals are not [A-Z]. */
Test(text, sentence_split_tricky_cases_as_the_handbooks_regex) {
    static const struct {
        const char *in;
        const char *want[6];
    } cases[] = {
        {"Dr. Smith arrived. He sat.", {"Dr. Smith arrived.", "He sat."}},
        {"Use a list, e.g. this one. Done.", {"Use a list, e.g. this one.", "Done."}},
        /* "3.5. " is word, dot, word, end mark: no break after a decimal's own dot. */
        {"3.14 is pi. It costs 3.5. Then more.", {"3.14 is pi.", "It costs 3.5. Then more."}},
        {"Это тест. Ещё один. Всё.", {"Это тест.", "Ещё один.", "Всё."}},
        {"Il est là. Élodie aussi. Ça va?", {"Il est là.", "Élodie aussi.", "Ça va?"}},
        /* \w is Unicode: Cyrillic "т.е." is an e.g.-shaped abbreviation ... */
        {"т.е. это. Да.", {"т.е. это.", "Да."}},
        /* ... but [A-Z][a-z] is ASCII: "Él." ends a sentence, "Mr." does not. */
        {"Mr. Émile. Él. Ñu.", {"Mr. Émile.", "Él.", "Ñu."}},
        /* 。 is no end mark; ! and ? are. */
        {"東京です。 大阪. Ок! Да? нет", {"東京です。 大阪.", "Ок!", "Да?", "нет"}},
        {"St. Louis. No. Ph.D. students. U.S. Army. A.I. Now",
         {"St. Louis.", "No. Ph.D. students.", "U.S. Army.", "A.I. Now"}},
        {"Café. Über alles. ΑΒ. Γ", {"Café.", "Über alles.", "ΑΒ.", "Γ"}},
        /* The e.g. shape ends in any end mark; the Mr. shape only in a dot. */
        {"Is it a.b? Yes. Mr? No! Ab! x", {"Is it a.b? Yes.", "Mr?", "No!", "Ab!", "x"}},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char **c;
        size_t n = count_chunks(cases[k].in, 1, 1, &c), want = 0;
        while (want < 6 && cases[k].want[want])
            want++;
        cr_expect_eq(n, want, "'%s': %zu sentences, not %zu", cases[k].in, n, want);
        for (size_t i = 0; i < n && i < want; i++)
            cr_expect_str_eq(c[i], cases[k].want[i], "'%s' sentence %zu", cases[k].in, i);
        text_chunks_free(c, n);
    }
}

Test(text, article_spans_are_the_chunks_place_in_the_text) {
    const char *t = "One two. Three four. Five.";
    char **c;
    text_span *sp;
    size_t n;
    cr_assert_eq(text_chunk_article_spans(t, strlen(t), 1, 1, &c, &sp, &n), 0);
    cr_assert_eq(n, 3);
    const text_span want[] = {{0, 8}, {9, 20}, {21, 26}};
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(sp[i].start, want[i].start, "chunk %zu", i);
        cr_expect_eq(sp[i].end, want[i].end, "chunk %zu", i);
        cr_expect_eq(strlen(c[i]), sp[i].end - sp[i].start);
        cr_expect_eq(memcmp(t + sp[i].start, c[i], strlen(c[i])), 0);
    }
    text_chunks_free(c, n);
    free(sp);
    /* Gathered: one chunk over the whole text, non-ASCII offsets in bytes. */
    t = "  Ещё. Всё.  ";
    cr_assert_eq(text_chunk_article_spans(t, strlen(t), 1, 100, &c, &sp, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(c[0], "Ещё. Всё.");
    cr_expect_eq(sp[0].start, 2);
    cr_expect_eq(sp[0].end, strlen(t) - 2);
    text_chunks_free(c, n);
    free(sp);
    /* Not cleaned: the chunk joins with ' ' what a line break separates, so
     * it is not the bytes of its span; the chunk step checks and refuses. */
    t = "One.\nTwo.";
    cr_assert_eq(text_chunk_article_spans(t, strlen(t), 1, 100, &c, &sp, &n), 0);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(c[0], "One. Two.");
    cr_expect_eq(sp[0].start, 0);
    cr_expect_eq(sp[0].end, 9);
    cr_expect_neq(memcmp(t, c[0], 9), 0);
    text_chunks_free(c, n);
    free(sp);
    /* Nothing kept: no spans either. */
    cr_assert_eq(text_chunk_article_spans("Short.", 6, 100, 200, &c, &sp, &n), 0);
    cr_expect_eq(n, 0);
    cr_expect_null(sp);
    text_chunks_free(c, n);
}

/* ---- windows (posts, repositories) ---- */

/* The windows of t as strings (valid UTF-8 in: the bytes themselves). */
static size_t windows(const char *t, size_t size, size_t overlap, char ***out, text_span **spans) {
    size_t n;
    text_span *sp;
    cr_assert_eq(text_chunk_window(t, strlen(t), size, overlap, &sp, &n), 0);
    char **texts = calloc(n + 1, sizeof(*texts));
    for (size_t i = 0; i < n; i++) {
        size_t len;
        cr_assert_eq(text_utf8_dup(t + sp[i].start, sp[i].end - sp[i].start, &texts[i], &len), 0);
    }
    *out = texts;
    if (spans)
        *spans = sp;
    else
        free(sp);
    return n;
}

#define expect_windows(t, size, overlap, ...)                                                      \
    do {                                                                                           \
        const char *want_[] = {__VA_ARGS__};                                                       \
        size_t nwant_ = sizeof(want_) / sizeof(want_[0]);                                          \
        char **got_;                                                                               \
        size_t n_ = windows(t, size, overlap, &got_, NULL);                                        \
        cr_expect_eq(n_, nwant_, "'%s' %d/%d: %zu windows, not %zu", t, (int)(size),               \
                     (int)(overlap), n_, nwant_);                                                  \
        for (size_t i_ = 0; i_ < n_ && i_ < nwant_; i_++)                                          \
            cr_expect_str_eq(got_[i_], want_[i_], "'%s' %d/%d window %zu", t, (int)(size),         \
                             (int)(overlap), i_);                                                  \
        text_chunks_free(got_, n_);                                                                \
    } while (0)

Test(text, windows_on_ascii_end_at_words_and_overlap_by_whole_words) {
    /* 15/5: the last 5 code points of a window start the next when they are
     * a word ("brown", "jumps"); after "over the" the 5 are "r the", and the
     * partial word "r" and its space are left out: "the". */
    expect_windows("the quick brown fox jumps over the lazy dog", 15, 5, "the quick brown",
                   "brown fox jumps", "jumps over the", "the lazy dog");
    /* A cut inside "wonderful" would leave "hello world" of 16: half full
     * and more, so the window ends there; overlap 0: windows touch. */
    expect_windows("hello world wonderful", 16, 0, "hello world", "wonderful");
    /* "aaaa" is less than half of 10: the word is cut at the 10th code
     * point, and the overlap is its cut tail, "bb". */
    expect_windows("aaaa bbbbbbbbbbbb", 10, 2, "aaaa bbbbb", "bbbbbbbbb");
    /* Whitespace is trimmed from both ends of every window. */
    expect_windows("  one two three   four  ", 9, 0, "one two", "three", "four");
    /* A run of whitespace longer than a window: the next starts after it. */
    expect_windows("aaaa bbbb                    cc", 10, 5, "aaaa bbbb", "cc");
}

Test(text, windows_always_move_on_even_with_a_large_overlap) {
    /* 10/8: after "xx aaaaa" the next window starts at "aaaaa"; ending it at
     * its space would give "aaaaa" again, nothing new, so it is cut at 10. */
    char **c;
    size_t n = windows("xx aaaaa bbbbbbbbbbbbbb", 10, 8, &c, NULL);
    cr_assert_geq(n, 3);
    cr_expect_str_eq(c[0], "xx aaaaa");
    cr_expect_str_eq(c[1], "aaaaa bbbb");
    cr_expect_str_eq(c[2], "bbbbbbbbbb");
    text_chunks_free(c, n);
    /* size 1, overlap 0: one code point each, spaces skipped. */
    expect_windows("ab c", 1, 0, "a", "b", "c");
}

Test(text, windows_count_code_points_of_every_script) {
    /* Cyrillic (2 bytes), CJK (3 bytes, no spaces: cut between code points),
     * emoji (4 bytes), combining accents (a code point each, as len()). */
    expect_windows("Привет мир как дела", 10, 3, "Привет мир", "мир как", "как дела");
    expect_windows("東京都は日本の首都です", 4, 1, "東京都は", "は日本の", "の首都で", "です");
    expect_windows("🙂🙂🙂🙂🙂🙂", 4, 1, "🙂🙂🙂🙂", "🙂🙂🙂");
    expect_windows("cafe\xcc\x81 cafe\xcc\x81", 5, 0, "cafe\xcc\x81", "cafe\xcc\x81");
    expect_windows("ça 🔧 déjà vu", 6, 2, "ça 🔧", "🔧 déjà", "vu");
    char **c;
    text_span *sp;
    size_t n = windows("🙂🙂🙂🙂🙂🙂", 4, 1, &c, &sp);
    cr_assert_eq(n, 2);
    cr_expect(sp[0].start == 0 && sp[0].end == 16 && sp[1].start == 12 && sp[1].end == 24,
              "byte offsets: [%zu,%zu) [%zu,%zu)", sp[0].start, sp[0].end, sp[1].start, sp[1].end);
    text_chunks_free(c, n);
    free(sp);
}

/* Whether s[0, len) is valid UTF-8. */
static int valid_utf8(const char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

Test(text, windows_on_broken_utf8_never_give_broken_utf8) {
    /* Bad bytes count as a code point each (U+FFFD), a truncated sequence
     * as one per byte; the cut never falls inside a valid sequence. */
    const char *t = "ab \xff\xfe cd \xe2\x82 ef \xe2\xc3\xa9 \xf0\x9f\x99\x82 gh \xf0\x9f\x99";
    for (size_t size = 1; size <= 8; size++)
        for (size_t overlap = 0; overlap < size; overlap++) {
            text_span *sp;
            size_t n;
            cr_assert_eq(text_chunk_window(t, strlen(t), size, overlap, &sp, &n), 0);
            cr_expect_gt(n, 0);
            for (size_t i = 0; i < n; i++) {
                char *w;
                size_t len;
                cr_assert_eq(text_utf8_dup(t + sp[i].start, sp[i].end - sp[i].start, &w, &len), 0);
                cr_expect(valid_utf8(w, len), "%zu/%zu window %zu is broken", size, overlap, i);
                cr_expect_eq(strlen(w), len);
                free(w);
            }
            free(sp);
        }
    /* 3/0: "\xe2\x82" is two code points, "\xe2é" two; "🙂 gh" is cut
     * inside "gh" (ending at the space would leave 1 of 3, under half);
     * the truncated emoji at the end is three. */
    expect_windows(t, 3, 0, "ab", "\xef\xbf\xbd\xef\xbf\xbd", "cd", "\xef\xbf\xbd\xef\xbf\xbd",
                   "ef", "\xef\xbf\xbd\xc3\xa9", "\xf0\x9f\x99\x82 g", "h \xef\xbf\xbd",
                   "\xef\xbf\xbd\xef\xbf\xbd");
    char *o;
    size_t len;
    cr_assert_eq(text_utf8_dup("a\xff"
                               "b\xef\xbf\xbd"
                               "c\xe2\x82",
                               9, &o, &len),
                 0);
    cr_expect_str_eq(o, "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd"
                        "c\xef\xbf\xbd\xef\xbf\xbd");
    cr_expect_eq(len, 15);
    free(o);
}

Test(text, windows_edge_cases) {
    expect_windows("short text", 250, 25, "short text");
    char **c;
    text_span *sp;
    size_t n = windows(" \t short text \n", 250, 25, &c, &sp);
    cr_assert_eq(n, 1);
    cr_expect_eq(sp[0].start, 3);
    cr_expect_eq(sp[0].end, 13);
    text_chunks_free(c, n);
    free(sp);
    sp = (text_span *)&n; /* must come back NULL */
    cr_expect_eq(text_chunk_window("", 0, 250, 25, &sp, &n), 0);
    cr_expect_eq(n, 0);
    cr_expect_null(sp);
    cr_expect_eq(text_chunk_window(" \n\u3000 ", strlen(" \n\u3000 "), 250, 25, &sp, &n), 0);
    cr_expect_eq(n, 0, "whitespace only: nothing");
    cr_expect_null(sp);
    cr_expect_eq(text_chunk_window("abc", 3, 10, 10, &sp, &n), -EINVAL, "overlap == size");
    cr_expect_null(sp);
    cr_expect_eq(text_chunk_window("abc", 3, 10, 11, &sp, &n), -EINVAL, "overlap > size");
    cr_expect_eq(text_chunk_window("abc", 3, 0, 0, &sp, &n), -EINVAL, "size 0");
    cr_expect_eq(n, 0);
}

/* Every property text.h promises of the windows of t (valid UTF-8):
 * boundaries between code points, 1 to size code points, no whitespace at
 * the ends, progress, nothing skipped, and the overlap rule. Returns the
 * number of windows. */
static size_t check_windows(const char *t, size_t len, size_t size, size_t overlap) {
    /* t as code points, with where each starts */
    long *cp = malloc((len + 1) * sizeof(*cp));
    size_t *off = malloc((len + 1) * sizeof(*off)), n = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)t + i, (utf8proc_ssize_t)(len - i), &c);
        cr_assert_gt(k, 0, "the test text must be valid UTF-8");
        off[n] = i;
        cp[n++] = c;
        i += (size_t)k;
    }
    off[n] = len;
    text_span *sp;
    size_t nw;
    cr_assert_eq(text_chunk_window(t, len, size, overlap, &sp, &nw), 0);
    size_t *s = malloc((nw + 1) * sizeof(*s)), *e = malloc((nw + 1) * sizeof(*e));
    for (size_t i = 0; i < nw; i++) { /* byte offsets to code point indexes */
        s[i] = e[i] = (size_t)-1;
        for (size_t k = 0; k <= n; k++) {
            if (off[k] == sp[i].start)
                s[i] = k;
            if (off[k] == sp[i].end)
                e[i] = k;
        }
        cr_assert(s[i] != (size_t)-1 && e[i] != (size_t)-1, "window %zu cuts a sequence", i);
        cr_assert(e[i] > s[i] && e[i] - s[i] <= size, "window %zu has %zu code points (size %zu)",
                  i, e[i] - s[i], size);
        cr_assert(!text_is_space(cp[s[i]]) && !text_is_space(cp[e[i] - 1]),
                  "window %zu is not trimmed", i);
    }
    for (size_t k = 0; k < n; k++) { /* nothing skipped */
        int covered = text_is_space(cp[k]);
        for (size_t i = 0; i < nw && !covered; i++)
            covered = k >= s[i] && k < e[i];
        cr_assert(covered, "code point %zu is in no window (%zu/%zu)", k, size, overlap);
    }
    for (size_t i = 0; i + 1 < nw; i++) {
        cr_assert(s[i + 1] > s[i] && e[i + 1] > e[i], "window %zu does not move on", i + 1);
        size_t u = e[i];
        while (u < n && text_is_space(cp[u]))
            u++;
        cr_assert(s[i + 1] <= u, "window %zu skips text", i + 1);
        size_t shared = s[i + 1] < e[i] ? e[i] - s[i + 1] : 0;
        cr_assert(shared <= overlap, "windows %zu and %zu share %zu > %zu", i, i + 1, shared,
                  overlap);
        /* The shared code points end window i and begin window i+1. */
        cr_assert(
            memcmp(t + off[e[i] - shared], t + off[s[i + 1]], off[e[i]] - off[e[i] - shared]) == 0);
        /* Where the next window starts: the first word start at or after
         * p = max(e - overlap, s + 1), or p in a cut word, or u after a
         * long gap. */
        size_t p = e[i] - s[i] > overlap ? e[i] - overlap : s[i] + 1, want = p;
        for (size_t q = p; q <= u && q < n; q++)
            if (!text_is_space(cp[q]) && (q == 0 || text_is_space(cp[q - 1]))) {
                want = q;
                break;
            }
        if (u - want >= size)
            want = u;
        cr_assert_eq(s[i + 1], want, "window %zu starts at %zu, not %zu (%zu/%zu)", i + 1, s[i + 1],
                     want, size, overlap);
        /* Exact overlap: when e - overlap is a word start inside window i,
         * window i+1 begins with window i's last `overlap` code points. */
        if (e[i] - s[i] > overlap && overlap > 0 && !text_is_space(cp[e[i] - overlap]) &&
            text_is_space(cp[e[i] - overlap - 1]) && u - (e[i] - overlap) < size)
            cr_assert_eq(shared, overlap, "window %zu: %zu shared, not %zu", i + 1, shared,
                         overlap);
    }
    free(s);
    free(e);
    free(sp);
    free(cp);
    free(off);
    return nw;
}

Test(text, window_properties_over_many_sizes_and_scripts) {
    /* A text of words of many lengths and scripts, some longer than the
     * small windows, with runs of whitespace of several kinds. */
    static const char *words[] = {"a",
                                  "tiny",
                                  "word",
                                  "Привет",
                                  "東京都は日本の首都です",
                                  "🙂🙂",
                                  "cafe\xcc\x81",
                                  "supercalifragilisticexpialidocious",
                                  "3.14",
                                  "e.g.",
                                  "Ñu",
                                  "x"};
    static const char *gaps[] = {" ", " ", " ", "  ", "\n", " \t ", "\u3000"};
    size_t cap = 1 << 16, len = 0;
    char *t = malloc(cap);
    unsigned seed = 12345;
    t[0] = '\0';
    while (len < 6000) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))];
        seed = seed * 1103515245u + 12345u;
        const char *g = gaps[(seed >> 16) % (sizeof(gaps) / sizeof(gaps[0]))];
        len += (size_t)sprintf(t + len, "%s%s", w, g);
    }
    static const size_t sizes[][2] = {{1, 0},      {2, 1},    {5, 0},      {7, 3},    {10, 9},
                                      {16, 4},     {33, 32},  {64, 10},    {250, 25}, {250, 249},
                                      {1500, 100}, {5000, 0}, {10000, 100}};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t nw = check_windows(t, len, sizes[k][0], sizes[k][1]);
        cr_expect_gt(nw, 0);
    }
    cr_expect_eq(check_windows(t, len, 10000, 100), 1, "all of it fits in one");
    free(t);
}

/* ---- conformance with the Handbook's own data ---- */

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook"

static bson_t *load_artifact(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/artifacts/%s", HANDBOOK, name);
    bson_error_t err;
    bson_json_reader_t *r = bson_json_reader_new_from_file(path, &err);
    cr_assert_not_null(r, "%s: %s", path, err.message);
    bson_t *doc = bson_new();
    cr_assert_eq(bson_json_reader_read(r, doc, &err), 1, "%s: %s", path, err.message);
    bson_json_reader_destroy(r);
    return doc;
}

static void require_handbook(void) {
    if (access(HANDBOOK "/artifacts/raw_documents.json", R_OK) != 0)
        SKIP_UNLESS_REQUIRED("the Handbook's data is not at " HANDBOOK " (../shared/handbook)");
}

Test(text, clean_reproduces_the_handbooks_cleaned_documents_76_of_76) {
    require_handbook();
    bson_t *raw = load_artifact("raw_documents.json"),
           *want = load_artifact("cleaned_documents.json");
    bson_iter_t ra, wa, r, w;
    cr_assert(bson_iter_init_find(&ra, raw, "artifact_data") && bson_iter_recurse(&ra, &r));
    cr_assert(bson_iter_init_find(&wa, want, "artifact_data") && bson_iter_recurse(&wa, &w));
    int same = 0, total = 0;
    while (bson_iter_next(&r) && bson_iter_next(&w)) {
        bson_iter_t wdoc, wcontent;
        bson_iter_recurse(&w, &wdoc);
        uint32_t dlen;
        const uint8_t *data;
        bson_iter_document(&r, &dlen, &data);
        bson_t rdoc;
        bson_init_static(&rdoc, data, dlen);
        size_t text_len;
        char *text = records_content(&rdoc, &text_len);
        cr_assert_not_null(text);
        char *cleaned;
        size_t len;
        cr_assert_eq(text_clean(text, strlen(text), &cleaned, &len), 0);
        cr_assert(bson_iter_find(&wdoc, "content") && BSON_ITER_HOLDS_UTF8(&wdoc));
        wcontent = wdoc;
        uint32_t wlen;
        const char *expected = bson_iter_utf8(&wcontent, &wlen);
        int eq = wlen == len && memcmp(expected, cleaned, len) == 0;
        cr_expect(eq, "document %d differs", total);
        same += eq;
        total++;
        free(text);
        free(cleaned);
    }
    cr_expect_eq(total, 76);
    cr_expect_eq(same, 76, "%d of %d byte for byte", same, total);
    bson_destroy(raw);
    bson_destroy(want);
}

Test(text, article_chunking_gives_the_handbooks_500_chunks) {
    require_handbook();
    if (access("/usr/bin/python3", X_OK) != 0)
        SKIP_UNLESS_REQUIRED("/usr/bin/python3 is needed for the reference chunker");
    /* The reference: the Handbook's chunk_article, run by Python's re. */
    char ref_path[] = "/tmp/sluice-chunks-XXXXXX";
    int fd = mkstemp(ref_path);
    close(fd);
    char cmd[2048];
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 -c 'import json,re,hashlib,uuid\n"
        "docs=json.load(open(\"%s/artifacts/cleaned_documents.json\"))[\"artifact_data\"]\n"
        "out=[]\n"
        "for d in docs:\n"
        "  s=re.split(r\"(?<!\\w\\.\\w.)(?<![A-Z][a-z]\\.)(?<=\\.|\\?|\\!)\\s\",d[\"content\"])\n"
        "  cur=\"\"\n"
        "  for x in s:\n"
        "    x=x.strip()\n"
        "    if not x: continue\n"
        "    if len(cur)+len(x)<=2000: cur+=x+\" \"\n"
        "    else:\n"
        "      if len(cur)>=1000: out.append(cur.strip())\n"
        "      cur=x+\" \"\n"
        "  if len(cur)>=1000: out.append(cur.strip())\n"
        "json.dump([[c,str(uuid.UUID(hex=hashlib.md5(c.encode()).hexdigest(),version=4))] for c in "
        "out],open(\"%s\",\"w\"))'",
        HANDBOOK, ref_path);
    cr_assert_eq(system(cmd), 0);
    bson_error_t err;
    bson_json_reader_t *rr = bson_json_reader_new_from_file(ref_path, &err);
    cr_assert_not_null(rr);
    bson_t ref = BSON_INITIALIZER;
    /* The reference is a top-level array: wrap it for libbson. */
    bson_json_reader_destroy(rr);
    FILE *f = fopen(ref_path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *json = malloc((size_t)size + 16);
    strcpy(json, "{\"c\":");
    cr_assert_eq(fread(json + 5, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    strcpy(json + 5 + size, "}");
    bson_t *refdoc = bson_new_from_json((const uint8_t *)json, -1, &err);
    cr_assert_not_null(refdoc, "%s", err.message);
    free(json);
    unlink(ref_path);
    bson_iter_t ri, rarr;
    cr_assert(bson_iter_init_find(&ri, refdoc, "c") && bson_iter_recurse(&ri, &rarr));

    bson_t *cleaned = load_artifact("cleaned_documents.json");
    bson_iter_t ca, c;
    cr_assert(bson_iter_init_find(&ca, cleaned, "artifact_data") && bson_iter_recurse(&ca, &c));
    size_t total = 0, same = 0;
    while (bson_iter_next(&c)) {
        bson_iter_t doc;
        bson_iter_recurse(&c, &doc);
        cr_assert(bson_iter_find(&doc, "content"));
        uint32_t len;
        const char *content = bson_iter_utf8(&doc, &len);
        char **chunks;
        size_t n;
        cr_assert_eq(text_chunk_article(content, len, 1000, 2000, &chunks, &n), 0);
        for (size_t i = 0; i < n; i++, total++) {
            bson_iter_t pair, parts;
            if (!bson_iter_next(&rarr))
                break;
            bson_iter_recurse(&rarr, &pair);
            parts = pair;
            bson_iter_next(&parts);
            const char *want = bson_iter_utf8(&parts, NULL);
            bson_iter_next(&parts);
            const char *want_id = bson_iter_utf8(&parts, NULL);
            char id[37];
            text_chunk_id(chunks[i], strlen(chunks[i]), id);
            int eq = strcmp(want, chunks[i]) == 0 && strcmp(want_id, id) == 0;
            cr_expect(eq, "chunk %zu differs", total);
            same += (size_t)eq;
        }
        text_chunks_free(chunks, n);
    }
    cr_expect_eq(total, 500, "%zu chunks", total);
    cr_expect_eq(same, 500, "%zu identical", same);
    bson_destroy(cleaned);
    bson_destroy(refdoc);
    bson_destroy(&ref);
}

Test(text, nfc_and_url_removal) {
    char *out;
    size_t len;
    cr_assert_eq(text_nfc("cafe\xcc\x81", 6, &out, &len), 0); /* e + combining acute */
    cr_expect_str_eq(out, "caf\xc3\xa9");
    free(out);
    cr_assert_eq(text_nfc("bad \xff", 5, &out, &len), 0);
    cr_expect_eq(len, 5, "invalid UTF-8 goes through unchanged");
    free(out);
    const char *t = "see https://x.org/a?b=1 and (www.y.com) or http://z but notwww.this";
    cr_assert_eq(text_remove_urls(t, strlen(t), &out, &len), 0);
    cr_expect_str_eq(out, "see  and () or  but notwww.this");
    free(out);
}

#include "dedupe.h"

Test(text, exact_and_near_duplicates) {
    const char *a =
        "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
        "and the birds sing in the tall green trees near the quiet river bank today";
    const char *b =
        "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
        "and the birds sing in the tall green trees near the quiet river bank tonight";
    const char *c = "a completely different text about language models, datasets and evaluation "
                    "metrics that shares almost no five word sequence with the others at all";
    double near = dedupe_similarity(a, strlen(a), b, strlen(b));
    double far = dedupe_similarity(a, strlen(a), c, strlen(c));
    cr_expect_gt(near, 0.8, "one word changed: %.2f", near);
    cr_expect_lt(far, 0.1, "unrelated: %.2f", far);

    dedupe *exact = dedupe_new(0, 1.0);
    cr_expect_eq(dedupe_seen(exact, a, strlen(a)), 0);
    cr_expect_eq(dedupe_seen(exact, b, strlen(b)), 0, "b differs from a");
    cr_expect_eq(dedupe_seen(exact, a, strlen(a)), 1, "a again");
    dedupe_free(exact);

    dedupe *nearly = dedupe_new(1, 0.8);
    cr_expect_eq(dedupe_seen(nearly, a, strlen(a)), 0);
    cr_expect_eq(dedupe_seen(nearly, b, strlen(b)), 1, "b is a near duplicate of a");
    cr_expect_eq(dedupe_seen(nearly, c, strlen(c)), 0);
    dedupe_free(nearly);
}

/* Enough documents that the LSH table grows several times: every one stays
 * findable across the rehashes. */
Test(dedupe, remembers_documents_across_table_growth) {
    dedupe *d = dedupe_new(1, 0.8);
    cr_assert_not_null(d);
    char text[128];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 1000; i++) {
            int n = snprintf(text, sizeof(text), "doc%d alpha%d beta%d gamma%d delta%d eps%d", i,
                             i * 7, i * 13, i * 17, i * 19, i * 23);
            cr_expect_eq(dedupe_seen(d, text, (size_t)n), pass, "document %d, pass %d", i, pass);
        }
    dedupe_free(d);
}

/* The offsets every article chunk carries: on the Handbook's cleaned
 * articles each of the 500 chunks is exactly content[start, end), in
 * order and apart; and the windows of posts and repositories keep every
 * promise of text.h on the same real text. */
Test(text, handbook_article_offsets_round_trip_and_windows_hold_on_real_text) {
    require_handbook();
    bson_t *cleaned = load_artifact("cleaned_documents.json");
    bson_iter_t ca, c;
    cr_assert(bson_iter_init_find(&ca, cleaned, "artifact_data") && bson_iter_recurse(&ca, &c));
    size_t total = 0, exact = 0, docs = 0;
    while (bson_iter_next(&c)) {
        bson_iter_t doc;
        bson_iter_recurse(&c, &doc);
        cr_assert(bson_iter_find(&doc, "content"));
        uint32_t len;
        const char *content = bson_iter_utf8(&doc, &len);
        char **chunks;
        text_span *sp;
        size_t n;
        cr_assert_eq(text_chunk_article_spans(content, len, 1000, 2000, &chunks, &sp, &n), 0);
        for (size_t i = 0; i < n; i++, total++) {
            size_t clen = strlen(chunks[i]);
            int eq = sp[i].end - sp[i].start == clen && sp[i].end <= len &&
                     memcmp(content + sp[i].start, chunks[i], clen) == 0;
            cr_expect(eq, "document %zu chunk %zu is not content[%zu:%zu]", docs, i, sp[i].start,
                      sp[i].end);
            cr_expect(i == 0 || sp[i].start > sp[i - 1].end, "document %zu chunk %zu", docs, i);
            exact += (size_t)eq;
        }
        text_chunks_free(chunks, n);
        free(sp);
        if (docs % 8 == 0) { /* the window rule, on a share of the articles */
            check_windows(content, len, 250, 25);
            check_windows(content, len, 1500, 100);
        }
        docs++;
    }
    cr_expect_eq(total, 500, "%zu chunks", total);
    cr_expect_eq(exact, 500, "%zu round-trip", exact);
    bson_destroy(cleaned);
}

#define expect_unmarked(in, want) expect_rule(text_remove_markup, in, want)

Test(text, remove_markup_drops_tags_references_and_link_syntax) {
    expect_unmarked("<p class=\"x\">Hello</p><br/>world", " Hello  world");
    expect_unmarked("a<!-- note -->b", "a b");
    expect_unmarked("fish &amp; chips &lt;3 caf&#233; &#x1F600;&nbsp;x &copy; y",
                    "fish & chips <3 caf\xc3\xa9 \xf0\x9f\x98\x80 x  y");
    expect_unmarked("see [the docs](https://x.org/d) and ![a cat](c.png)",
                    "see the docs and a cat");
    /* Not markup: kept byte for byte. */
    expect_unmarked("1 < 2 > 0, a & b, [x] (y), &#; &#0; <3", "1 < 2 > 0, a & b, [x] (y), &#;  <3");
    expect_unmarked("<unclosed tag and text", "<unclosed tag and text");
    expect_unmarked("\xff<b>\xfe</b>", "\xff \xfe ");
    expect_unmarked("", "");
}

/* The response body the crawler and the API client collect: pieces appended up to the cap, always
 * NUL-terminated; a piece that would pass the cap is refused whole and leaves the buffer as it was. */
Test(text, capbuf_grows_to_its_cap_and_refuses_past_it) {
    char *data = NULL;
    size_t len = 0;
    cr_assert_eq(capbuf_append(&data, &len, 10, "", 0), 0);
    cr_assert_str_eq(data, "", "an empty piece still gives a C string");
    cr_assert_eq(capbuf_append(&data, &len, 10, "hello", 5), 0);
    cr_assert_eq(capbuf_append(&data, &len, 10, "world", 5), 0);
    cr_assert_eq(len, 10);
    cr_assert_str_eq(data, "helloworld");
    cr_assert_eq(capbuf_append(&data, &len, 10, "!", 1), CAPBUF_OVER);
    cr_assert_eq(len, 10);
    cr_assert_str_eq(data, "helloworld");
    free(data);
    data = NULL;
    len = 0;
    cr_assert_eq(capbuf_append(&data, &len, 4, "toolong", 7), CAPBUF_OVER);
    cr_assert_null(data);
    cr_assert_eq(capbuf_append(&data, &len, (size_t)-1, "x", 1), 0, "no overflow near SIZE_MAX");
    cr_assert_eq(capbuf_append(&data, &len, 3, "yy", (size_t)-1), CAPBUF_OVER);
    cr_assert_str_eq(data, "x");
    free(data);
}
