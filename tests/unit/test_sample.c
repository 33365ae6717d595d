/* Sampling (steps/model/sample.h): the PRNG against its authors' reference
 * outputs, each processor on small vectors, all of them against HF's code
 * in torch (tests/ref/sample_ref.py), draws, determinism, and stop strings
 * held back from a stream. */
#include "sample.h"
#include "train_tests.h"

#include <math.h>

Test(sample, splitmix64_and_xoshiro256starstar_give_their_reference_outputs) {
    /* splitmix64.c (Vigna) from state 0 */
    uint64_t state = 0;
    cr_expect_eq(sample_splitmix64(&state), 0xe220a8397b1dcdafull);
    /* xoshiro256** from the state {1, 2, 3, 4}: the sequence the reference
     * implementation gives (as rand_xoshiro's tests list it) */
    sample_rng r = {{1, 2, 3, 4}};
    const uint64_t want[] = {11520ull, 0ull, 1509978240ull, 1215971899390074240ull};
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(sample_rng_next(&r), want[i], "output %zu", i);
}

Test(sample, below_stays_in_range_and_covers_it_evenly) {
    sample_rng r;
    sample_rng_seed(&r, 7);
    size_t counts[6] = {0};
    for (int i = 0; i < 60000; i++) {
        uint64_t x = sample_rng_below(&r, 6);
        cr_assert_lt(x, 6);
        counts[x]++;
    }
    for (int k = 0; k < 6; k++) /* 10000 expected, sd ~91 */
        cr_expect(counts[k] > 9500 && counts[k] < 10500, "value %d drawn %zu times", k, counts[k]);
    double u = sample_rng_uniform(&r);
    cr_expect(u >= 0 && u < 1);
}

Test(sample, repetition_penalty_divides_positive_and_multiplies_negative_once) {
    float l[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    const int32_t hist[] = {0, 1, 1, 7, -1, 0};
    sample_repetition_penalty(l, 4, hist, 6, 2.0f);
    cr_expect_eq(l[0], 1.0f);
    cr_expect_eq(l[1], -4.0f, "penalised once though seen twice");
    cr_expect_eq(l[2], 1.0f);
    cr_expect_eq(l[3], 0.5f);
}

static size_t kept(const float *l, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += l[i] != -INFINITY;
    return k;
}

Test(sample, top_k_keeps_ties_at_the_cut) {
    size_t order[5];
    float l[5] = {1, 3, 3, 2, 0};
    sample_top_k(l, 5, 2, 1, order);
    cr_expect(l[1] == 3 && l[2] == 3 && kept(l, 5) == 2);
    float m[5] = {1, 3, 3, 2, 0};
    sample_top_k(m, 5, 1, 3, order); /* raised to min_keep 3 */
    cr_expect(kept(m, 5) == 3 && m[3] == 2);
}

Test(sample, top_p_keeps_the_smallest_set_reaching_p) {
    size_t order[4];
    const double p[4] = {0.15, 0.5, 0.05, 0.3};
    struct {
        float top_p;
        size_t want;
    } cases[] = {{0.75f, 2}, {0.85f, 3}, {0.4f, 1}, {0.99f, 4}, {0.5f, 1}, {0.51f, 2}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        float l[4];
        for (int i = 0; i < 4; i++)
            l[i] = (float)log(p[i]);
        sample_top_p(l, 4, cases[c].top_p, 1, order);
        cr_expect_eq(kept(l, 4), cases[c].want, "top_p %g keeps %zu", (double)cases[c].top_p,
                     kept(l, 4));
        cr_expect(l[1] != -INFINITY, "the most probable always stays");
    }
}

Test(sample, min_p_cuts_relative_to_the_largest_probability) {
    size_t order[4];
    const double p[4] = {0.1, 0.6, 0.05, 0.25};
    float l[4];
    for (int i = 0; i < 4; i++)
        l[i] = (float)log(p[i]);
    sample_min_p(l, 4, 0.2f, 1, order); /* threshold 0.12 */
    cr_expect(l[1] != -INFINITY && l[3] != -INFINITY && kept(l, 4) == 2);
    for (int i = 0; i < 4; i++)
        l[i] = (float)log(p[i]);
    sample_min_p(l, 4, 0.9f, 3, order); /* would keep one; min_keep 3 */
    cr_expect(kept(l, 4) == 3 && l[2] == -INFINITY);
}

/* Random vectors through every processor, against HF's code in torch. */
Test(sample, the_processors_in_hfs_order_match_transformers) {
    require_torch();
    enum { V = 40, CASES = 12 };
    sample_rng r;
    sample_rng_seed(&r, 11);
    struct {
        float pen, temp;
        size_t k;
        float top_p, min_p;
        size_t keep;
    } params[CASES] = {
        {1.3f, 1.0f, 0, 1.0f, 0.0f, 1},    {1.0f, 0.7f, 5, 1.0f, 0.0f, 1},
        {1.0f, 1.0f, 0, 0.9f, 0.0f, 1},    {1.0f, 1.0f, 0, 1.0f, 0.1f, 1},
        {1.2f, 0.8f, 10, 0.95f, 0.05f, 1}, {1.0f, 1.5f, 0, 0.5f, 0.0f, 3},
        {1.0f, 1.0f, 0, 1.0f, 0.3f, 4},    {2.0f, 0.5f, 20, 0.8f, 0.02f, 1},
        {1.1f, 1.0f, 3, 1.0f, 0.0f, 5},    {1.0f, 0.3f, 0, 0.7f, 0.0f, 1},
        {1.0f, 1.0f, 0, 0.2f, 0.0f, 1},    {1.5f, 2.0f, 8, 0.99f, 0.2f, 2},
    };
    float logits[CASES][V], got[CASES][V];
    int32_t hist[CASES][6];
    char *text = malloc(64 * 1024), *at = text;
    at += sprintf(at, "%d %d\n", CASES, V);
    for (int c = 0; c < CASES; c++) {
        at += sprintf(at, "%.9g %.9g %zu %.9g %.9g %zu 6\n", (double)params[c].pen,
                      (double)params[c].temp, params[c].k, (double)params[c].top_p,
                      (double)params[c].min_p, params[c].keep);
        for (int i = 0; i < V; i++) {
            logits[c][i] = (float)(6 * sample_rng_uniform(&r) - 3);
            at += sprintf(at, "%.9g ", (double)logits[c][i]);
        }
        at += sprintf(at, "\n");
        for (int i = 0; i < 6; i++) {
            hist[c][i] = (int32_t)sample_rng_below(&r, V);
            at += sprintf(at, "%d ", hist[c][i]);
        }
        at += sprintf(at, "\n");
        sample_params p = sample_params_default();
        p.repetition_penalty = params[c].pen;
        p.temperature = params[c].temp;
        p.top_k = params[c].k;
        p.top_p = params[c].top_p;
        p.min_p = params[c].min_p;
        p.min_tokens_to_keep = params[c].keep;
        sampler *s;
        char err[256];
        cr_assert_eq(sampler_new(&p, V, &s, err, sizeof(err)), 0, "%s", err);
        memcpy(got[c], logits[c], sizeof(got[c]));
        int32_t tok = sampler_next(s, got[c], hist[c], 6);
        cr_expect(tok >= 0 && tok < V && got[c][tok] != -INFINITY, "case %d drew a removed token",
                  c);
        sampler_free(s);
    }
    char *path = write_temp(text);
    static double want[CASES * V];
    size_t n = 0;
    {
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/ref/sample_ref.py %s",
                 SLUICE_SOURCE_DIR, path);
        FILE *py = popen(cmd, "r");
        cr_assert_not_null(py);
        char word[64];
        while (n < CASES * V && fscanf(py, "%63s", word) == 1)
            want[n++] = strcmp(word, "-inf") == 0 ? -INFINITY : strtod(word, NULL);
        cr_assert_eq(pclose(py), 0);
    }
    cr_assert_eq(n, (size_t)CASES * V);
    for (int c = 0; c < CASES; c++) {
        size_t k = 0;
        for (int i = 0; i < V; i++) {
            double w = want[c * V + i], g = got[c][i];
            if (w == -INFINITY || g == -INFINITY)
                cr_expect(w == g, "case %d token %d: ours %g, HF %g", c, i, g, w);
            else
                cr_expect(fabs(g - w) < 1e-5 * fmax(1, fabs(w)), "case %d token %d: %g vs %g", c, i,
                          g, w);
            k += w != -INFINITY;
        }
        cr_expect(k >= params[c].keep, "case %d keeps at least min_keep", c);
    }
    unlink(path);
    free(path);
    free(text);
}

Test(sample, greedy_takes_the_first_largest_after_the_penalty) {
    sample_params p = sample_params_default();
    p.temperature = 0;
    p.repetition_penalty = 2.0f;
    sampler *s;
    cr_assert_eq(sampler_new(&p, 4, &s, NULL, 0), 0);
    float l[4] = {1, 3, 3, 2.5f};
    cr_expect_eq(sampler_next(s, l, NULL, 0), 1, "ties go to the first, as torch.argmax");
    float m[4] = {1, 3, 3, 2.5f};
    const int32_t hist[] = {1, 2};
    cr_expect_eq(sampler_next(s, m, hist, 2), 3, "3/2 < 2.5 once 1 and 2 are penalised");
    sampler_free(s);
}

Test(sample, draws_follow_the_kept_distribution) {
    enum { V = 5, N = 40000 };
    const double p[V] = {0.4, 0.3, 0.2, 0.06, 0.04};
    sample_params sp = sample_params_default();
    sp.top_k = 3;
    sp.seed = 99;
    sampler *s;
    cr_assert_eq(sampler_new(&sp, V, &s, NULL, 0), 0);
    size_t counts[V] = {0};
    for (int i = 0; i < N; i++) {
        float l[V];
        for (int j = 0; j < V; j++)
            l[j] = (float)log(p[j]);
        counts[sampler_next(s, l, NULL, 0)]++;
    }
    sampler_free(s);
    cr_expect(counts[3] == 0 && counts[4] == 0, "top-k removed tokens are never drawn");
    for (int j = 0; j < 3; j++) { /* renormalised over 0.9; sd < 0.003 */
        double f = (double)counts[j] / N, want = p[j] / 0.9;
        cr_expect(fabs(f - want) < 0.015, "token %d drawn %.4f, expected %.4f", j, f, want);
    }
}

static void draw_sequence(uint64_t seed, int32_t *out, size_t n) {
    enum { V = 50 };
    sample_params sp = sample_params_default();
    sp.temperature = 0.9f;
    sp.top_p = 0.95f;
    sp.seed = seed;
    sampler *s;
    cr_assert_eq(sampler_new(&sp, V, &s, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) {
        float l[V];
        for (int j = 0; j < V; j++)
            l[j] = (float)((j * 37 + i * 11) % 17) / 4.0f;
        out[i] = sampler_next(s, l, out, i);
    }
    sampler_free(s);
}

Test(sample, the_same_seed_gives_the_same_tokens) {
    int32_t a[64], b[64], c[64];
    draw_sequence(42, a, 64);
    draw_sequence(42, b, 64);
    draw_sequence(43, c, 64);
    cr_expect(memcmp(a, b, sizeof(a)) == 0);
    cr_expect(memcmp(a, c, sizeof(a)) != 0, "another seed, other tokens");
}

Test(sample, bad_parameters_are_refused_by_name) {
    sample_params p = sample_params_default();
    sampler *s;
    char err[256];
    p.top_p = 0;
    cr_expect_eq(sampler_new(&p, 10, &s, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "top_p") != NULL, "%s", err);
    p = sample_params_default();
    p.min_p = 1.5f;
    cr_expect_eq(sampler_new(&p, 10, &s, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "min_p") != NULL, "%s", err);
    p = sample_params_default();
    p.repetition_penalty = -1;
    cr_expect_eq(sampler_new(&p, 10, &s, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "repetition_penalty") != NULL, "%s", err);
}

/* ---- stop strings ---- */

/* Feeds piece and checks what is released, what is held and the result. */
static void feed(stop_matcher *m, const char *piece, const char *released, size_t held,
                 int stopped) {
    const char *out;
    size_t len;
    int rc = stop_matcher_feed(m, piece, strlen(piece), &out, &len);
    cr_expect_eq(rc, stopped, "feeding \"%s\"", piece);
    cr_expect(len == strlen(released) && memcmp(out, released, len) == 0,
              "feeding \"%s\" released \"%.*s\", expected \"%s\"", piece, (int)len, out, released);
    cr_expect_eq(stop_matcher_held(m), held, "feeding \"%s\"", piece);
}

static stop_matcher *matcher(const char *const *stops, size_t n) {
    stop_matcher *m;
    cr_assert_eq(stop_matcher_new(stops, n, &m, NULL, 0), 0);
    return m;
}

Test(stop, a_partial_stop_string_is_held_until_it_is_decided) {
    const char *stops[] = {"###"};
    stop_matcher *m = matcher(stops, 1);
    feed(m, "Hello #", "Hello ", 1, 0);
    feed(m, "# wor", "## wor", 0, 0); /* "## " is not a stop after all */
    feed(m, "ld ##", "ld ", 2, 0);
    feed(m, "#tail", "", 0, 1); /* completed across pieces: nothing more */
    feed(m, "more", "", 0, 1);
    stop_matcher_free(m);
}

Test(stop, a_stop_string_inside_one_piece_cuts_there) {
    const char *stops[] = {"</s>", ""};
    stop_matcher *m = matcher(stops, 2);
    feed(m, "xx</s>yy", "xx", 0, 1);
    stop_matcher_free(m);
}

Test(stop, the_earliest_of_several_wins) {
    const char *stops[] = {"END", "D!"};
    stop_matcher *m = matcher(stops, 2);
    feed(m, "AND! END", "AN", 0, 1);
    stop_matcher_free(m);
}

Test(stop, half_a_utf8_character_is_held) {
    stop_matcher *m = matcher(NULL, 0);
    feed(m, "caf\xc3", "caf", 1, 0);
    feed(m, "\xa9 \xe6\x9d", "\xc3\xa9 ", 2, 0);
    feed(m, "\xb1", "\xe6\x9d\xb1", 0, 0);
    stop_matcher_free(m);
}

Test(stop, flush_releases_what_was_held_when_no_stop_came) {
    const char *stops[] = {"###", "\n\n### Instruction"};
    stop_matcher *m = matcher(stops, 2);
    feed(m, "end\n\n##", "end", 4, 0);
    const char *out;
    size_t len;
    stop_matcher_flush(m, &out, &len);
    cr_expect(len == 4 && memcmp(out, "\n\n##", 4) == 0);
    cr_expect_eq(stop_matcher_held(m), 0);
    stop_matcher_free(m);
}
