/* The train step's losses (steps/train/dpo.h) against PyTorch: TRL's DPO
 * loss and metrics, sequence log-probabilities and the causal-LM loss, and
 * their gradients against autograd (tests/ref/dpo_ref.py). */
#include "dpo.h"
#include "sample.h"
#include "train_tests.h"

#include <math.h>

/* Fixed pseudo-random inputs from the seeded PRNG. */
static double uniform(sample_rng *r, double lo, double hi) {
    return lo + (hi - lo) * sample_rng_uniform(r);
}

/* The pairs of a case: fixed pseudo-random summed log-probabilities. */
typedef struct dpo_case {
    dpo_params p;
    size_t n;
    double pc[32], pr[32], rc[32], rr[32];
} dpo_case;

static void make_case(dpo_case *c, dpo_params p, size_t n, uint64_t seed) {
    sample_rng r;
    sample_rng_seed(&r, seed);
    c->p = p;
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        c->pc[i] = uniform(&r, -80, -5);
        c->pr[i] = uniform(&r, -80, -5);
        c->rc[i] = uniform(&r, -80, -5);
        c->rr[i] = uniform(&r, -80, -5);
        if (i == 3) /* a tie of rewards: not an accurate pair (strict >) */
            c->pr[i] = c->pc[i] - c->rc[i] + c->rr[i];
    }
}

/* TRL's default beta, the Handbook's 0.5, label smoothing (cDPO) and the
 * reference-free loss, in one run of the reference. */
Test(dpo, sigmoid_loss_metrics_and_gradients_match_trl) {
    require_torch();
    static dpo_case cases[4];
    make_case(&cases[0], (dpo_params){.beta = DPO_DEFAULT_BETA}, 16, 1);
    make_case(&cases[1], (dpo_params){.beta = 0.5}, 9, 2);
    make_case(&cases[2], (dpo_params){.beta = 0.2, .label_smoothing = 0.15}, 7, 3);
    make_case(&cases[3], (dpo_params){.beta = 0.1, .reference_free = 1}, 5, 4);
    char *text = malloc(64 * 1024), *at = text;
    size_t expected = 0;
    for (int k = 0; k < 4; k++) {
        const dpo_case *c = &cases[k];
        at += sprintf(at, "%.17g %.17g %d %zu\n", c->p.beta, c->p.label_smoothing,
                      c->p.reference_free, c->n);
        for (size_t i = 0; i < c->n; i++)
            at += sprintf(at, "%.17g %.17g %.17g %.17g\n", c->pc[i], c->pr[i], c->rc[i], c->rr[i]);
        expected += 5 + 2 * c->n;
    }
    char *path = write_temp(text), args[256];
    snprintf(args, sizeof(args), "dpo %s", path);
    static double want_all[512];
    cr_assert_eq(run_ref("dpo_ref.py", args, want_all, expected), expected);
    const double *want = want_all;
    const double tol = 1e-9; /* the issue asks 1e-6; both sides are float64 */
    for (int k = 0; k < 4; k++) {
        const dpo_case *c = &cases[k];
        dpo_result got;
        double d_pc[32], d_pr[32];
        dpo_loss(&c->p, c->n, c->pc, c->pr, c->rc, c->rr, &got, d_pc, d_pr);
        const double mine[5] = {got.loss, got.rewards_chosen, got.rewards_rejected,
                                got.rewards_accuracies, got.rewards_margins};
        static const char *const names[5] = {"loss", "rewards/chosen", "rewards/rejected",
                                             "rewards/accuracies", "rewards/margins"};
        for (int m = 0; m < 5; m++)
            cr_expect(fabs(mine[m] - want[m]) < tol, "case %d %s %.17g, torch %.17g", k, names[m],
                      mine[m], want[m]);
        for (size_t i = 0; i < c->n; i++) {
            cr_expect(fabs(d_pc[i] - want[5 + 2 * i]) < tol,
                      "case %d d/d policy_chosen[%zu] %.17g vs %.17g", k, i, d_pc[i],
                      want[5 + 2 * i]);
            cr_expect(fabs(d_pr[i] - want[6 + 2 * i]) < tol,
                      "case %d d/d policy_rejected[%zu] %.17g vs %.17g", k, i, d_pr[i],
                      want[6 + 2 * i]);
        }
        want += 5 + 2 * c->n;
    }
    unlink(path);
    free(path);
    free(text);
}

Test(dpo, stays_finite_far_in_either_direction) {
    /* beta * logits of +-2000: a naive log(sigmoid) gives -inf, exp overflows */
    double pc[2] = {0, -20000}, pr[2] = {-20000, 0}, rc[2] = {0, 0}, rr[2] = {0, 0};
    dpo_result r;
    double d_pc[2], d_pr[2];
    dpo_loss(&(dpo_params){.beta = 0.1}, 2, pc, pr, rc, rr, &r, d_pc, d_pr);
    cr_assert(isfinite(r.loss));
    /* pair 0 is won (loss ~0), pair 1 lost by 2000 (loss ~2000): mean ~1000 */
    cr_expect(fabs(r.loss - 1000.0) < 1e-9, "%.17g", r.loss);
    cr_expect(fabs(d_pc[0]) < 1e-300 && fabs(d_pc[1] + 0.05) < 1e-12, "%g %g", d_pc[0], d_pc[1]);
    cr_expect_eq(r.rewards_accuracies, 0.5);
}

/* Random logits in [-4, 4), ids in [0, V) and a mask with gaps. */
static void fill_case(sample_rng *r, float *logits, size_t n_logits, int32_t *ids, uint8_t *mask,
                      size_t n_tokens, size_t V) {
    for (size_t i = 0; i < n_logits; i++)
        logits[i] = (float)uniform(r, -4, 4);
    for (size_t t = 0; t < n_tokens; t++) {
        ids[t] = (int32_t)sample_rng_below(r, V);
        mask[t] = sample_rng_below(r, 3) != 0;
    }
}

static char *case_text(const char *head, const float *logits, size_t n_logits, const int32_t *ids,
                       const uint8_t *mask, size_t n_tokens) {
    char *text = malloc(32 * (n_logits + 2 * n_tokens) + 256), *at = text;
    at += sprintf(at, "%s\n", head);
    for (size_t i = 0; i < n_logits; i++)
        at += sprintf(at, "%.9g\n", (double)logits[i]);
    for (size_t t = 0; t < n_tokens; t++)
        at += sprintf(at, "%d\n", ids[t]);
    for (size_t t = 0; t < n_tokens; t++)
        at += sprintf(at, "%d\n", mask[t]);
    return text;
}

Test(dpo, sequence_logprob_and_its_gradient_match_autograd) {
    require_torch();
    enum { T = 9, V = 13 };
    sample_rng r;
    sample_rng_seed(&r, 5);
    float logits[T * V], grad[T * V];
    int32_t ids[T];
    uint8_t mask[T];
    fill_case(&r, logits, T * V, ids, mask, T, V);
    mask[0] = 1; /* never a target: nothing precedes it */
    mask[4] = 0;
    const double scale = -0.37;
    char head[64];
    snprintf(head, sizeof(head), "%d %d %.17g", T, V, scale);
    char *text = case_text(head, logits, T * V, ids, mask, T), *path = write_temp(text);
    char args[256];
    snprintf(args, sizeof(args), "logprob %s", path);
    double want[2 + T * V];
    cr_assert_eq(run_ref("dpo_ref.py", args, want, 2 + T * V), 2 + T * V);
    size_t count;
    double logp = seq_logprob(logits, T, V, ids, mask, scale, grad, &count);
    cr_expect(fabs(logp - want[0]) < 1e-6 * fabs(want[0]), "logp %.17g, torch %.17g", logp,
              want[0]);
    cr_expect_eq(count, (size_t)want[1]);
    for (size_t i = 0; i < T * V; i++)
        cr_expect(fabs(grad[i] - want[2 + i]) < 1e-6, "dlogits[%zu] %.9g, torch %.9g", i,
                  (double)grad[i], want[2 + i]);
    unlink(path);
    free(path);
    free(text);
}

Test(dpo, masked_cross_entropy_matches_transformers_causal_lm_loss) {
    require_torch();
    enum { R = 3, T = 7, V = 11 };
    sample_rng r;
    sample_rng_seed(&r, 6);
    float logits[R * T * V], grad[R * T * V];
    int32_t ids[R * T];
    uint8_t mask[R * T];
    fill_case(&r, logits, R * T * V, ids, mask, R * T, V);
    memset(mask + T, 0, T); /* a row of padding only */
    char head[64];
    snprintf(head, sizeof(head), "%d %d %d", R, T, V);
    char *text = case_text(head, logits, R * T * V, ids, mask, R * T), *path = write_temp(text);
    char args[256];
    snprintf(args, sizeof(args), "xent %s", path);
    double want[2 + R * T * V];
    cr_assert_eq(run_ref("dpo_ref.py", args, want, 2 + R * T * V), 2 + R * T * V);
    size_t count;
    double loss = lm_masked_xent(logits, R, T, V, ids, mask, grad, &count);
    cr_expect(fabs(loss - want[0]) < 1e-6, "loss %.17g, torch %.17g", loss, want[0]);
    cr_expect_eq(count, (size_t)want[1]);
    for (size_t i = 0; i < R * T * V; i++)
        cr_expect(fabs(grad[i] - want[2 + i]) < 1e-7, "dlogits[%zu] %.9g, torch %.9g", i,
                  (double)grad[i], want[2 + i]);
    unlink(path);
    free(path);
    free(text);
}

Test(dpo, an_id_outside_the_vocabulary_is_refused) {
    float logits[2 * 3] = {0};
    int32_t ids[2] = {0, 3};
    uint8_t mask[2] = {0, 1};
    size_t count;
    cr_expect(isnan(seq_logprob(logits, 2, 3, ids, mask, 1, NULL, &count)));
    cr_expect_eq(count, (size_t)-1);
    ids[1] = 2;
    cr_expect(fabs(seq_logprob(logits, 2, 3, ids, mask, 1, NULL, &count) + log(3.0)) < 1e-12);
    cr_expect_eq(count, 1);
}

/* One DPO step's gradient with respect to the policy's logits: the
 * log-probabilities of chosen and rejected rows, the loss's gradient with
 * respect to them, chained back through seq_logprob, against autograd
 * through TRL's get_batch_logps and dpo_loss. */
Test(dpo, one_steps_gradient_through_the_logprobs_matches_autograd) {
    require_torch();
    enum { N = 2, T = 6, V = 7 };
    const double beta = 0.5;
    sample_rng r;
    sample_rng_seed(&r, 8);
    static float logits[2 * N][T * V], grad[2 * N][T * V];
    int32_t ids[2 * N][T];
    uint8_t mask[2 * N][T];
    double rc[N], rr[N];
    char *text = malloc(256 * 1024), *at = text;
    at += sprintf(at, "%.17g %d %d %d\n", beta, N, T, V);
    for (int row = 0; row < 2 * N; row++) {
        fill_case(&r, logits[row], T * V, ids[row], mask[row], T, V);
        mask[row][1] = 1; /* at least one target */
        for (int i = 0; i < T * V; i++)
            at += sprintf(at, "%.9g\n", (double)logits[row][i]);
        for (int t = 0; t < T; t++)
            at += sprintf(at, "%d\n", ids[row][t]);
        for (int t = 0; t < T; t++)
            at += sprintf(at, "%d\n", mask[row][t]);
    }
    for (int i = 0; i < N; i++) {
        rc[i] = uniform(&r, -20, -5);
        rr[i] = uniform(&r, -20, -5);
        at += sprintf(at, "%.17g %.17g\n", rc[i], rr[i]);
    }
    char *path = write_temp(text), args[256];
    snprintf(args, sizeof(args), "step %s", path);
    static double want[1 + 2 * N * T * V];
    cr_assert_eq(run_ref("dpo_ref.py", args, want, 1 + 2 * N * T * V), 1 + 2 * N * T * V);
    double pc[N], pr[N], d_pc[N], d_pr[N];
    for (int i = 0; i < N; i++) {
        pc[i] = seq_logprob(logits[i], T, V, ids[i], mask[i], 0, NULL, NULL);
        pr[i] = seq_logprob(logits[N + i], T, V, ids[N + i], mask[N + i], 0, NULL, NULL);
    }
    dpo_result res;
    dpo_loss(&(dpo_params){.beta = beta}, N, pc, pr, rc, rr, &res, d_pc, d_pr);
    cr_expect(fabs(res.loss - want[0]) < 1e-6, "loss %.17g, torch %.17g", res.loss, want[0]);
    for (int i = 0; i < N; i++) {
        seq_logprob(logits[i], T, V, ids[i], mask[i], d_pc[i], grad[i], NULL);
        seq_logprob(logits[N + i], T, V, ids[N + i], mask[N + i], d_pr[i], grad[N + i], NULL);
    }
    for (int row = 0; row < 2 * N; row++)
        for (int i = 0; i < T * V; i++) {
            double w = want[1 + row * T * V + i];
            cr_expect(fabs(grad[row][i] - w) < 1e-7, "row %d logit %d: %.9g, torch %.9g", row, i,
                      (double)grad[row][i], w);
        }
    unlink(path);
    free(path);
    free(text);
}
