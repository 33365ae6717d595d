/* text_scores.h - scores of a generated answer against its reference
 * answer, as the evaluate step's model mode reports them: ROUGE-L as the
 * rouge-score package computes it, BLEU as sacreBLEU does by default,
 * exact match and word counts. Texts are UTF-8; a byte that is not part of
 * valid UTF-8 reads as U+FFFD (what Python sees after decoding with
 * errors="replace"). Each function that allocates returns 0 or -ENOMEM.
 *
 * ROUGE-L (rouge_score.rouge_scorer, use_stemmer=False): each text is
 * lower-cased as Python's str.lower() does, every run of characters that
 * are not ASCII letters or digits becomes a space, and the words are what
 * remains between spaces (so "don't" is "don", "t", and a word in another
 * script is no word at all). With LCS the length of the longest common
 * subsequence of the two word lists: precision = LCS / answer words,
 * recall = LCS / reference words, F1 = 2PR / (P + R); all 0 when either
 * list is empty or nothing is shared.
 *
 * BLEU (sacrebleu.corpus_bleu with its defaults: tokenize "13a",
 * smooth_method "exp", lowercase off, max n-gram order 4): each text is
 * right-stripped, then tokenized by the 13a rules (mteval-v13a: "<skipped>"
 * and "-\n" removed, line breaks to spaces, &quot; &amp; &lt; &gt;
 * unescaped; punctuation other than ' - . , set apart; "." and "," set
 * apart unless between digits; "-" set apart after a digit), and split at
 * Python's whitespace. For n = 1..4 the clipped n-gram matches and the
 * answer's n-grams are summed over the corpus; p_n = matches / n-grams in
 * percent, a p_n with no match is 100 / (2^k * n-grams) for the k-th such
 * order (exp smoothing), an order with no n-gram at all, or a corpus
 * without a single match, gives 0. BLEU = BP * exp(mean of log p_n), with
 * BP = exp(1 - ref_len / sys_len) when the answers are shorter than the
 * references (0 when they are empty), else 1. On sacreBLEU's 0-100 scale. */
#ifndef SLUICE_TEXT_SCORES_H
#define SLUICE_TEXT_SCORES_H

#include <stddef.h>
#include <stdint.h>

#define TEXTSCORE_BLEU_ORDER 4

typedef struct textscore_rouge {
    double precision, recall, f1;
} textscore_rouge;

/* ROUGE-L of answer against reference (both NUL-terminated). */
int textscore_rouge_l(const char *answer, const char *reference, textscore_rouge *out);

/* BLEU's sufficient statistics, summed over the pairs added. Zero-initialise
 * to start. */
typedef struct textscore_bleu {
    uint64_t correct[TEXTSCORE_BLEU_ORDER], total[TEXTSCORE_BLEU_ORDER];
    uint64_t sys_len, ref_len;
} textscore_bleu;

/* Adds one pair's statistics to b (unchanged on failure). */
int textscore_bleu_add(textscore_bleu *b, const char *answer, const char *reference);

/* BLEU from the statistics, 0 to 100. effective_order 0 is corpus_bleu's
 * default; 1 is what sacrebleu.sentence_bleu uses for one pair (the mean
 * runs over the orders up to the last one the answer has n-grams of). */
double textscore_bleu_score(const textscore_bleu *b, int effective_order);

/* 1 when the two texts are equal once Python's whitespace is stripped
 * from both ends of each (str.strip()), else 0. */
int textscore_exact_match(const char *answer, const char *reference);

/* The number of words of text split at Python's whitespace (str.split()). */
size_t textscore_words(const char *text);

#endif
