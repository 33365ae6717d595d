/* lr_schedule.c - HF transformers' learning-rate schedules (lr_schedule.h). */
#include "lr_schedule.h"

#include <math.h>
#include <string.h>

double lr_factor(const lr_schedule *s, uint64_t step) {
    double W = (double)s->warmup_steps, N = (double)s->total_steps, k = (double)step;
    if (step < s->warmup_steps)
        return k / fmax(1.0, W);
    switch (s->kind) {
    case LR_CONSTANT:
        return 1.0;
    case LR_LINEAR:
        return fmax(0.0, (N - k) / fmax(1.0, N - W));
    case LR_COSINE: {
        double cycles = s->cycles > 0 ? s->cycles : 0.5;
        double progress = (k - W) / fmax(1.0, N - W);
        double f = 0.5 * (1.0 + cos(M_PI * cycles * 2.0 * progress));
        if (s->min_lr > 0 && s->lr > 0) {
            double m = s->min_lr / s->lr;
            f = f * (1 - m) + m;
        }
        return fmax(0.0, f);
    }
    }
    return 1.0;
}

double lr_at(const lr_schedule *s, uint64_t step) { return s->lr * lr_factor(s, step); }

int lr_kind_parse(const char *name, lr_kind *out) {
    static const struct {
        const char *name;
        lr_kind kind;
    } kinds[] = {{"constant", LR_CONSTANT}, {"linear", LR_LINEAR}, {"cosine", LR_COSINE}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(name, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    return -1;
}
