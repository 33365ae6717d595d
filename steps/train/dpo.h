/* dpo.h - the losses of the train step that do not depend on the model:
 * TRL's DPO loss with its metrics, and the log-probabilities of token
 * sequences from logits, with their gradients to chain into the model's
 * backward pass.
 *
 * DPO follows TRL's DPOTrainer.dpo_loss (trl/trainer/dpo_trainer.py,
 * loss_type "sigmoid"), per pair i, with the policy's and the reference
 * model's summed response log-probabilities (get_batch_logps):
 *
 *   logits_i  = (pc_i - pr_i) - (rc_i - rr_i)       (reference_free: rc = rr = 0)
 *   loss_i    = -logsigmoid(beta * logits_i) * (1 - ls)
 *               - logsigmoid(-beta * logits_i) * ls  (ls: label_smoothing, cDPO)
 *   loss      = mean_i loss_i
 *   chosen_rewards_i   = beta * (pc_i - rc_i)        (detached)
 *   rejected_rewards_i = beta * (pr_i - rr_i)
 *   rewards/chosen     = mean chosen_rewards
 *   rewards/rejected   = mean rejected_rewards
 *   rewards/accuracies = mean (chosen_rewards > rejected_rewards)
 *   rewards/margins    = mean (chosen_rewards - rejected_rewards)
 *
 * TRL's default beta is 0.1; the Handbook trains with 0.5. Computed in
 * double; logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)), stable for any x. */
#ifndef SLUICE_TRAIN_DPO_H
#define SLUICE_TRAIN_DPO_H

#include <stddef.h>
#include <stdint.h>

#define DPO_DEFAULT_BETA 0.1

typedef struct dpo_params {
    double beta;
    double label_smoothing; /* 0: the plain sigmoid loss */
    int reference_free;
} dpo_params;

typedef struct dpo_result {
    double loss;
    double rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins;
} dpo_result;

/* The loss and metrics over n pairs of summed log-probabilities (policy
 * chosen pc, policy rejected pr, reference chosen rc, reference rejected
 * rr; rc and rr may be NULL when reference_free). When d_pc and d_pr are
 * not NULL they receive d loss / d pc_i and d loss / d pr_i. n > 0. */
void dpo_loss(const dpo_params *p, size_t n, const double *pc, const double *pr, const double *rc,
              const double *rr, dpo_result *out, double *d_pc, double *d_pr);

/* log sigmoid(x), stable. */
double dpo_logsigmoid(double x);

/* The summed log-probability of a sequence's targets under logits, TRL's
 * get_batch_logps for one row: logits[t*V .. t*V+V) (row t of a [T, V]
 * matrix) scores the token at t + 1; the sum runs over t + 1 < T with
 * mask[t + 1] set, of log_softmax(logits[t])[ids[t + 1]]. Returns the sum
 * and stores the number of targets in *n_targets (may be NULL).
 *
 * When dlogits is not NULL it receives scale * d sum / d logits, that is
 * scale * (onehot(ids[t+1]) - softmax(logits[t])) on the target rows and 0
 * on the others (row T - 1 included); scale is the upstream gradient
 * d loss / d sum (dpo_loss's d_pc or d_pr). Ids outside [0, V) are refused
 * with -1 in *n_targets and a NaN sum. */
double seq_logprob(const float *logits, size_t T, size_t V, const int32_t *ids, const uint8_t *mask,
                   double scale, float *dlogits, size_t *n_targets);

/* The masked mean cross-entropy of a batch of rows ([rows*T, V] logits),
 * HF's causal-LM loss with labels -100 where mask is 0: the sum of
 * -log p(target) over all targets of all rows divided by their count;
 * dlogits (optional) gets its gradient. 0 targets: 0 loss, zero gradient. */
double lm_masked_xent(const float *logits, size_t rows, size_t T, size_t V, const int32_t *ids,
                      const uint8_t *mask, float *dlogits, size_t *n_targets);

#endif
