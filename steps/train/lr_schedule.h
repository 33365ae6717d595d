/* lr_schedule.h - the learning rate at each optimizer step, with the
 * formulas of Hugging Face transformers' schedulers (optimization.py):
 *
 *   warmup (all):  step < W:  step / max(1, W)
 *   linear:        max(0, (N - step) / max(1, N - W))
 *                  (get_linear_schedule_with_warmup)
 *   cosine:        progress = (step - W) / max(1, N - W)
 *                  max(0, 0.5 * (1 + cos(pi * cycles * 2 * progress)))
 *                  (get_cosine_schedule_with_warmup, cycles 0.5)
 *   cosine to a floor: the cosine factor f becomes f * (1 - m) + m with
 *                  m = min_lr / lr (get_cosine_with_min_lr_schedule_with_warmup)
 *   constant:      1 (get_constant_schedule_with_warmup)
 *
 * times the peak learning rate; W warmup steps, N training steps. `step` is
 * the number of optimizer updates done before this one: HF's scheduler
 * steps after the optimizer, so its first update uses step 0 (a learning
 * rate of 0 when W > 0), and so does ours. */
#ifndef SLUICE_LR_SCHEDULE_H
#define SLUICE_LR_SCHEDULE_H

#include <stdint.h>

typedef enum lr_kind { LR_CONSTANT, LR_LINEAR, LR_COSINE } lr_kind;

typedef struct lr_schedule {
    lr_kind kind;
    double lr;     /* the peak */
    double min_lr; /* cosine's floor; 0: decay to 0 as HF's default */
    uint64_t warmup_steps, total_steps;
    double cycles; /* cosine; 0 is taken as HF's 0.5 */
} lr_schedule;

/* The factor and the learning rate (lr * factor) for the given step. */
double lr_factor(const lr_schedule *s, uint64_t step);
double lr_at(const lr_schedule *s, uint64_t step);
/* "constant", "linear", "cosine" -> kind; -1 for another name. */
int lr_kind_parse(const char *name, lr_kind *out);

#endif
