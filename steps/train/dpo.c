/* dpo.c - TRL's DPO loss, and sequence log-probabilities (dpo.h). */
#include "dpo.h"

#include <math.h>
#include <string.h>

double dpo_logsigmoid(double x) { return (x < 0 ? x : 0) - log1p(exp(-fabs(x))); }

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

void dpo_loss(const dpo_params *p, size_t n, const double *pc, const double *pr, const double *rc,
              const double *rr, dpo_result *out, double *d_pc, double *d_pr) {
    double beta = p->beta, ls = p->label_smoothing;
    double loss = 0, chosen = 0, rejected = 0, acc = 0, margins = 0;
    for (size_t i = 0; i < n; i++) {
        double ref_c = p->reference_free || !rc ? 0 : rc[i];
        double ref_r = p->reference_free || !rr ? 0 : rr[i];
        double z = beta * ((pc[i] - pr[i]) - (ref_c - ref_r));
        loss += -dpo_logsigmoid(z) * (1 - ls) - dpo_logsigmoid(-z) * ls;
        /* d loss_i / dz = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z) */
        double dz = (-(1 - ls) * sigmoid(-z) + ls * sigmoid(z)) / (double)n;
        if (d_pc)
            d_pc[i] = dz * beta;
        if (d_pr)
            d_pr[i] = -dz * beta;
        /* TRL's rewards keep the reference even when the loss is
         * reference-free: there it passes zeros for the reference. */
        double cr = beta * (pc[i] - ref_c), rj = beta * (pr[i] - ref_r);
        chosen += cr;
        rejected += rj;
        acc += cr > rj;
        margins += cr - rj;
    }
    out->loss = loss / (double)n;
    out->rewards_chosen = chosen / (double)n;
    out->rewards_rejected = rejected / (double)n;
    out->rewards_accuracies = acc / (double)n;
    out->rewards_margins = margins / (double)n;
}

/* log_softmax(row)[target] and, when grad is set, scale * (onehot -
 * softmax) into grad. */
static double row_logprob(const float *row, size_t V, int32_t target, double scale, float *grad) {
    double max = -INFINITY, sum = 0;
    for (size_t v = 0; v < V; v++)
        if (row[v] > max)
            max = row[v];
    for (size_t v = 0; v < V; v++)
        sum += exp((double)row[v] - max);
    double lse = max + log(sum);
    if (grad) {
        for (size_t v = 0; v < V; v++)
            grad[v] = (float)(-scale * exp((double)row[v] - lse));
        grad[target] += (float)scale;
    }
    return (double)row[target] - lse;
}

double seq_logprob(const float *logits, size_t T, size_t V, const int32_t *ids, const uint8_t *mask,
                   double scale, float *dlogits, size_t *n_targets) {
    double total = 0;
    size_t count = 0;
    for (size_t t = 0; t + 1 < T; t++)
        if (mask[t + 1] && (ids[t + 1] < 0 || (size_t)ids[t + 1] >= V)) {
            if (n_targets)
                *n_targets = (size_t)-1;
            return NAN;
        }
    for (size_t t = 0; t < T; t++) {
        float *g = dlogits ? dlogits + t * V : NULL;
        if (t + 1 < T && mask[t + 1]) {
            total += row_logprob(logits + t * V, V, ids[t + 1], scale, g);
            count++;
        } else if (g) {
            memset(g, 0, V * sizeof(*g));
        }
    }
    if (n_targets)
        *n_targets = count;
    return total;
}

double lm_masked_xent(const float *logits, size_t rows, size_t T, size_t V, const int32_t *ids,
                      const uint8_t *mask, float *dlogits, size_t *n_targets) {
    size_t count = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t t = 1; t < T; t++)
            count += mask[r * T + t] != 0;
    if (n_targets)
        *n_targets = count;
    if (count == 0) {
        if (dlogits)
            memset(dlogits, 0, rows * T * V * sizeof(*dlogits));
        return 0;
    }
    /* loss = -(sum of log-probs) / count, so each row's scale is -1/count */
    double scale = -1.0 / (double)count, total = 0;
    for (size_t r = 0; r < rows; r++) {
        size_t n;
        total += seq_logprob(logits + r * T * V, T, V, ids + r * T, mask + r * T, scale,
                             dlogits ? dlogits + r * T * V : NULL, &n);
        if (n == (size_t)-1)
            return NAN;
    }
    return -total / (double)count;
}
