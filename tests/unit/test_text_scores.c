/* The evaluate step's text scores (steps/evaluate/text_scores.h): ROUGE-L,
 * BLEU, exact match and word counts on fixed pairs, against the Python
 * reference written from rouge-score's and sacreBLEU's definitions
 * (tests/ref/text_scores_ref.py), to 1e-9; and the values the definitions
 * fix by hand. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "require.h"
#include "text_scores.h"

#define PYTHON "/usr/bin/python3"
#define REF SLUICE_SOURCE_DIR "/tests/ref/text_scores_ref.py"

/* answer, reference: the edge cases each rule has */
static const char *const pairs[][2] = {
    {"The cat sat on the mat.", "The cat sat on the mat."},
    {"", "some reference answer"},
    {"some answer", ""},
    {"", ""},
    {"alpha beta gamma", "delta epsilon"},
    {"Hello, world! It's 3.14 -- isn't it?", "hello world, it is 3.14; isn't it."},
    {"In 1,000 cases (2019-2020) prices rose 5.5%.",
     "Prices rose 5.5% in 1,000 cases between 2019 and 2020."},
    {"Ça coûte 10 € — très cher…", "Ça coute 10€, tres cher."},
    {"İstanbul is 300 K warm" /* U+0130, U+212A (Kelvin) */, "istanbul is 300 k warm"},
    {"a &amp; b &lt;c&gt; <skipped> x-\ny \"q\" &amp;lt;", "a & b <c> xy \"q\" <"},
    {"  spaced\xc2\xa0out\ttext \n", "spaced out text"},
    {"深度学习 is deep learning", "deep learning 深度学习"},
    {"the the the the the the the", "the cat is on the mat"},
    {"well-known 3-4 items.", "well known 3 - 4 items ."},
    {".,5 a.b 1.5, x,y z. .a", ". , 5 a . b 1.5 , x , y"},
    {"x,5 and y.6 or 7,8 9-a", "x , 5 and y . 6 or 7,8 9 - a"},
    {"Great job 👍🏽!", "great job!"},
    {"  Yes.\n", "Yes."},
    {"{braces} [brackets] ~tilde~ `tick` a/b c:d e@f g+h",
     "braces brackets tilde tick a b c d e f g h"},
    {"Sentence packing splits text into sentences first, then packs whole sentences into "
     "chunks up to a maximum length.",
     "Sentence packing splits text into sentences first, then packs whole sentences into "
     "chunks up to a maximum length, keeping the last sentence of a chunk as overlap so that "
     "ideas are not cut in half."},
    {"Embedding models read a few hundred tokens and the retriever returns the passage.",
     "Embedding models only read a few hundred tokens and truncate the rest, and one vector "
     "for a long document averages too many ideas."},
};
#define N_PAIRS (sizeof(pairs) / sizeof(pairs[0]))

TestSuite(text_scores);

Test(text_scores, values_fixed_by_the_definitions) {
    textscore_rouge r;
    cr_assert_eq(textscore_rouge_l(pairs[0][0], pairs[0][1], &r), 0);
    cr_expect_float_eq(r.f1, 1.0, 1e-12);
    textscore_bleu b = {0};
    cr_assert_eq(textscore_bleu_add(&b, pairs[0][0], pairs[0][1]), 0);
    cr_expect_float_eq(textscore_bleu_score(&b, 0), 100.0, 1e-9);
    /* empty answer: no word, no n-gram, BP 0 */
    cr_assert_eq(textscore_rouge_l("", "a b", &r), 0);
    cr_expect_eq(r.f1, 0.0);
    textscore_bleu e = {0};
    cr_assert_eq(textscore_bleu_add(&e, "", "a b"), 0);
    cr_expect_eq(textscore_bleu_score(&e, 0), 0.0);
    cr_expect_eq(e.sys_len, 0);
    cr_expect_eq(e.ref_len, 2);
    /* no word in common */
    cr_assert_eq(textscore_rouge_l("alpha beta", "gamma", &r), 0);
    cr_expect_eq(r.f1, 0.0);
    /* LCS 2 of "a b c d" in "a x c": P 2/3, R 2/4 */
    cr_assert_eq(textscore_rouge_l("A x, c!", "a b c d", &r), 0);
    cr_expect_float_eq(r.precision, 2.0 / 3.0, 1e-12);
    cr_expect_float_eq(r.recall, 0.5, 1e-12);
    cr_expect_float_eq(r.f1, 4.0 / 7.0, 1e-12);
    /* 13a: "3.14" stays one token, "it." is two */
    textscore_bleu t = {0};
    cr_assert_eq(textscore_bleu_add(&t, "pi is 3.14.", "x"), 0);
    cr_expect_eq(t.sys_len, 4);
    cr_expect_eq(textscore_exact_match("  Yes.\n", "Yes."), 1);
    cr_expect_eq(textscore_exact_match("yes.", "Yes."), 0);
    cr_expect_eq(textscore_words(" a\xc2\xa0"
                                 "b\tc \xe3\x80\x80 "),
                 3);
    cr_expect_eq(textscore_words(""), 0);
}

static double num(bson_iter_t *it) {
    cr_assert(BSON_ITER_HOLDS_NUMBER(it), "not a number: %s", bson_iter_key(it));
    return bson_iter_as_double(it);
}

Test(text_scores, equal_the_python_reference_to_1e_9) {
    if (access(PYTHON, X_OK) != 0)
        SKIP_UNLESS_REQUIRED(PYTHON " is needed for the reference");
    char in[] = "/tmp/text_scores_XXXXXX";
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    bson_t doc = BSON_INITIALIZER, list, pair;
    BSON_APPEND_ARRAY_BEGIN(&doc, "pairs", &list);
    for (size_t i = 0; i < N_PAIRS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%zu", i);
        bson_append_array_begin(&list, key, -1, &pair);
        BSON_APPEND_UTF8(&pair, "0", pairs[i][0]);
        BSON_APPEND_UTF8(&pair, "1", pairs[i][1]);
        bson_append_array_end(&list, &pair);
    }
    bson_append_array_end(&doc, &list);
    size_t len;
    char *json = bson_as_relaxed_extended_json(&doc, &len);
    cr_assert_eq(write(fd, json, len), (ssize_t)len);
    close(fd);
    bson_free(json);
    bson_destroy(&doc);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), PYTHON " " REF " %s", in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char *out = NULL;
    size_t cap = 0, n = 0, k;
    char chunk[4096];
    while ((k = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        out = realloc(out, cap = n + k + 1);
        memcpy(out + n, chunk, k);
        n += k;
        out[n] = '\0';
    }
    cr_assert_eq(pclose(p), 0, "the reference failed");
    unlink(in);
    (void)cap;
    bson_error_t err;
    bson_t *ref = bson_new_from_json((const uint8_t *)out, (ssize_t)n, &err);
    cr_assert_not_null(ref, "%s: %s", err.message, out);
    free(out);

    bson_iter_t it, rows, row, f, v;
    cr_assert(bson_iter_init_find(&it, ref, "pairs") && bson_iter_recurse(&it, &rows));
    textscore_bleu corpus = {0};
    size_t i = 0;
    while (bson_iter_next(&rows)) {
        cr_assert_lt(i, N_PAIRS);
        const char *a = pairs[i][0], *r = pairs[i][1];
        textscore_rouge rg;
        textscore_bleu one = {0};
        cr_assert_eq(textscore_rouge_l(a, r, &rg), 0);
        cr_assert_eq(textscore_bleu_add(&one, a, r), 0);
        cr_assert_eq(textscore_bleu_add(&corpus, a, r), 0);
        cr_assert(bson_iter_recurse(&rows, &row));
        cr_assert(bson_iter_find_descendant(&row, "rouge_l", &f) && bson_iter_recurse(&f, &v));
        double want[3], got[3] = {rg.precision, rg.recall, rg.f1};
        for (int j = 0; j < 3; j++) {
            cr_assert(bson_iter_next(&v));
            want[j] = num(&v);
            cr_expect(fabs(got[j] - want[j]) <= 1e-9, "pair %zu rouge_l[%d]: %.12f, want %.12f", i,
                      j, got[j], want[j]);
        }
        cr_assert(bson_iter_recurse(&rows, &row) && bson_iter_find(&row, "sentence_bleu"));
        double sb = num(&row);
        cr_expect(fabs(textscore_bleu_score(&one, 1) - sb) <= 1e-9,
                  "pair %zu bleu: %.12f, want %.12f", i, textscore_bleu_score(&one, 1), sb);
        cr_assert(bson_iter_recurse(&rows, &row) && bson_iter_find(&row, "exact_match"));
        cr_expect_eq(textscore_exact_match(a, r), (int)num(&row), "pair %zu exact_match", i);
        cr_assert(bson_iter_recurse(&rows, &row) && bson_iter_find(&row, "answer_words"));
        cr_expect_eq(textscore_words(a), (size_t)num(&row), "pair %zu words", i);
        i++;
    }
    cr_expect_eq(i, N_PAIRS);
    cr_assert(bson_iter_init_find(&it, ref, "corpus_bleu"));
    double cb = num(&it);
    cr_expect(fabs(textscore_bleu_score(&corpus, 0) - cb) <= 1e-9, "corpus bleu %.12f, want %.12f",
              textscore_bleu_score(&corpus, 0), cb);
    cr_expect_gt(cb, 0.0, "the corpus has matches: a figure that can fail");
    bson_destroy(ref);
}
