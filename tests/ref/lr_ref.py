"""Learning-rate schedules as Hugging Face transformers defines them
(src/transformers/optimization.py, the lr_lambda of each get_*_schedule*),
for tests/unit/test_train_ckpt.c. transformers is not installed; the
lambdas are written out as its source has them.

    lr_ref.py KIND WARMUP TOTAL LR MIN_LR STEPS...
KIND: constant, linear, cosine. Prints lr * lambda(step) per step.
"""
import math
import sys


def constant_with_warmup(step, num_warmup_steps):
    if step < num_warmup_steps:
        return float(step) / float(max(1.0, num_warmup_steps))
    return 1.0


def linear_with_warmup(current_step, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def cosine_with_warmup(current_step, num_warmup_steps, num_training_steps, num_cycles=0.5):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def cosine_with_min_lr(current_step, num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr_rate=0.0):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


kind, warmup, total, lr, min_lr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
for s in sys.argv[6:]:
    step = int(s)
    if kind == "constant":
        f = constant_with_warmup(step, warmup)
    elif kind == "linear":
        f = linear_with_warmup(step, warmup, total)
    elif min_lr > 0:
        f = cosine_with_min_lr(step, warmup, total, min_lr_rate=min_lr / lr)
    else:
        f = cosine_with_warmup(step, warmup, total)
    print(repr(lr * f))
