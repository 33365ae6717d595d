/* test_ranking.c - recall@k, reciprocal rank and nDCG@k (steps/evaluate/
 * ranking.c) on lists whose figures are worked out by hand. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>

#include "ranking.h"

#define EPS 1e-12

Test(ranking, a_list_with_hits_at_ranks_two_and_four) {
    /* Relevant: three items, two of them ranked 2 and 4. */
    const unsigned char hits[] = {0, 1, 0, 1, 0};
    ranking_scores s;
    cr_assert_eq(ranking_score(hits, 5, 3, 3, &s), 0);
    cr_expect_float_eq(s.recall, 1.0 / 3, EPS);
    cr_expect_float_eq(s.reciprocal_rank, 0.5, EPS);
    /* DCG@3 = 1/log2(3); IDCG@3 = 1 + 1/log2(3) + 1/log2(4). */
    cr_expect_float_eq(s.ndcg, (1 / log2(3)) / (1 + 1 / log2(3) + 0.5), EPS);
    cr_assert_eq(ranking_score(hits, 5, 3, 5, &s), 0);
    cr_expect_float_eq(s.recall, 2.0 / 3, EPS);
    cr_expect_float_eq(s.ndcg, (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3) + 0.5), EPS);
}

Test(ranking, a_perfect_list_scores_one_and_an_empty_one_zero) {
    const unsigned char hits[] = {1, 1};
    ranking_scores s;
    cr_assert_eq(ranking_score(hits, 2, 2, 10, &s), 0);
    cr_expect_float_eq(s.recall, 1, EPS);
    cr_expect_float_eq(s.reciprocal_rank, 1, EPS);
    cr_expect_float_eq(s.ndcg, 1, EPS);
    cr_assert_eq(ranking_score(NULL, 0, 4, 10, &s), 0);
    cr_expect_eq(s.recall, 0);
    cr_expect_eq(s.reciprocal_rank, 0);
    cr_expect_eq(s.ndcg, 0);
}

Test(ranking, hits_past_k_do_not_count) {
    const unsigned char hits[] = {0, 0, 1};
    ranking_scores s;
    cr_assert_eq(ranking_score(hits, 3, 1, 2, &s), 0);
    cr_expect_eq(s.recall, 0);
    cr_expect_eq(s.reciprocal_rank, 0);
    cr_expect_eq(s.ndcg, 0);
}

Test(ranking, impossible_judgements_are_refused) {
    const unsigned char hits[] = {1, 1, 1};
    ranking_scores s;
    cr_expect_eq(ranking_score(hits, 3, 2, 5, &s), -EINVAL, "more hits than relevant items");
    cr_expect_eq(ranking_score(hits, 3, 0, 5, &s), -EINVAL);
    cr_expect_eq(ranking_score(hits, 3, 3, 0, &s), -EINVAL);
}
