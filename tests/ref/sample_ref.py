"""Hugging Face transformers' logits processors, as generate() applies them
for sampling (repetition penalty, then temperature, top-k, top-p, min-p),
transcribed from src/transformers/generation/logits_process.py for
tests/unit/test_sample.c (transformers is not installed; torch is).

    sample_ref.py FILE
FILE: first line "cases V"; per case a line "penalty temperature top_k top_p
min_p min_keep n_history", a line of V logits, a line of the history's ids.
Prints, per case, the V processed scores (-inf where removed).
"""
import sys

import torch


def repetition_penalty(input_ids, scores, penalty):
    # RepetitionPenaltyLogitsProcessor.__call__
    score = torch.gather(scores, 1, input_ids)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return scores.scatter(1, input_ids, score)


def top_k(scores, k, min_tokens_to_keep, filter_value=-float("inf")):
    # TopKLogitsWarper.__call__
    k = min(max(k, min_tokens_to_keep), scores.size(-1))
    indices_to_remove = scores < torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(indices_to_remove, filter_value)


def top_p(scores, p, min_tokens_to_keep, filter_value=-float("inf")):
    # TopPLogitsWarper.__call__
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_indices_to_remove = cumulative_probs <= (1 - p)
    sorted_indices_to_remove[..., -min_tokens_to_keep:] = 0
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    return scores.masked_fill(indices_to_remove, filter_value)


def min_p(scores, mp, min_tokens_to_keep, filter_value=-float("inf")):
    # MinPLogitsWarper.__call__
    probs = torch.softmax(scores, dim=-1)
    top_probs, _ = probs.max(dim=-1, keepdim=True)
    scaled_min_p = mp * top_probs
    tokens_to_remove = probs < scaled_min_p
    sorted_indices = torch.argsort(scores, descending=True, dim=-1)
    sorted_indices_to_remove = torch.gather(tokens_to_remove, dim=-1, index=sorted_indices)
    sorted_indices_to_remove[..., :min_tokens_to_keep] = False
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    return scores.masked_fill(indices_to_remove, filter_value)


lines = open(sys.argv[1]).read().split("\n")
cases, V = map(int, lines[0].split())
k = 1
for _ in range(cases):
    pen, temp, tk, tp, mp, keep, nh = lines[k].split()
    pen, temp, tk, tp, mp, keep, nh = float(pen), float(temp), int(tk), float(tp), float(mp), int(keep), int(nh)
    # float64 so that both sides agree to rounding; the cuts are HF's
    scores = torch.tensor([[float(x) for x in lines[k + 1].split()]], dtype=torch.float64)
    hist = [int(x) for x in lines[k + 2].split()] if nh else []
    k += 3
    # GenerationMixin._get_logits_processor / _get_logits_warper build these only when set
    if pen != 1.0 and hist:
        scores = repetition_penalty(torch.tensor([hist]), scores, pen)
    if temp != 1.0:
        scores = scores / temp
    if tk != 0:
        scores = top_k(scores, tk, keep)
    if tp < 1.0:
        scores = top_p(scores, tp, keep)
    if mp > 0:
        scores = min_p(scores, mp, keep)
    print(" ".join(repr(x) for x in scores[0].tolist()))
