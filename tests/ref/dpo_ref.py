"""The train step's losses in PyTorch, as TRL and transformers compute them,
for tests/unit/test_dpo.c (run with Debian's /usr/bin/python3 and its torch;
TRL itself is not installed, so its formulas are written out here).

    dpo_ref.py dpo FILE      cases one after the other, each: a line beta
                             label_smoothing reference_free n; then n lines:
                             policy_chosen policy_rejected reference_chosen
                             reference_rejected (summed logps).
                             Prints loss, rewards/chosen, rewards/rejected,
                             rewards/accuracies, rewards/margins, then per pair
                             d loss / d policy_chosen and d loss / d policy_rejected
                             (autograd); case after case.
    dpo_ref.py logprob FILE  first line: T V scale; then T*V logits, T ids, T mask.
                             Prints the summed log-probability, the number of
                             targets, then the T*V gradient of scale * logp
                             with respect to the logits (autograd).
    dpo_ref.py xent FILE     first line: rows T V; then rows*T*V logits,
                             rows*T ids, rows*T mask. Prints the loss, the
                             number of targets and the gradient (autograd).

    dpo_ref.py step FILE     one DPO step's gradient: first line beta n T V; then
                             2n rows (n chosen, then n rejected) of T*V policy
                             logits, T ids and T mask each; then n lines of
                             reference chosen and rejected log-probabilities.
                             Prints the loss, then the gradient of the loss
                             with respect to every logit (autograd through
                             get_batch_logps and dpo_loss).

All in float64 from the float32 inputs.
"""
import sys

import torch
import torch.nn.functional as F


def dpo_loss(beta, label_smoothing, reference_free, pc, pr, rc, rr):
    # trl/trainer/dpo_trainer.py, DPOTrainer.dpo_loss, loss_type == "sigmoid"
    pi_logratios = pc - pr
    if reference_free:
        ref_logratios = torch.tensor([0], dtype=pi_logratios.dtype)
    else:
        ref_logratios = rc - rr
    logits = pi_logratios - ref_logratios
    losses = (
        -F.logsigmoid(beta * logits) * (1 - label_smoothing)
        - F.logsigmoid(-beta * logits) * label_smoothing
    )
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return losses, chosen_rewards, rejected_rewards


def numbers(path):
    with open(path) as f:
        return f.read().split()


def run_dpo(path):
    v = numbers(path)
    k = 0
    while k < len(v):  # one case after the other
        beta, ls, free, n = float(v[k]), float(v[k + 1]), int(v[k + 2]), int(v[k + 3])
        k += 4
        rows = torch.tensor([float(x) for x in v[k:k + 4 * n]], dtype=torch.float64).view(n, 4)
        k += 4 * n
        pc = rows[:, 0].clone().requires_grad_(True)
        pr = rows[:, 1].clone().requires_grad_(True)
        rc, rr = rows[:, 2], rows[:, 3]
        if free:
            # TRL passes zeros as the reference's log-probabilities when there is none
            rc, rr = torch.zeros_like(rc), torch.zeros_like(rr)
        losses, cr, rj = dpo_loss(beta, ls, free, pc, pr, rc, rr)
        loss = losses.mean()
        loss.backward()
        # trl: metrics[f"{prefix}rewards/..."] in get_batch_loss_metrics
        print(repr(loss.item()))
        print(repr(cr.mean().item()))
        print(repr(rj.mean().item()))
        print(repr((cr > rj).double().mean().item()))
        print(repr((cr - rj).mean().item()))
        for i in range(n):
            print(repr(pc.grad[i].item()), repr(pr.grad[i].item()))


def batch_logps(logits, labels, mask):
    # trl: DPOTrainer.get_batch_logps, label_pad_token_id where mask is 0
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    loss_mask = mask[:, 1:] != 0
    labels[~loss_mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    return (per_token * loss_mask).sum(-1), loss_mask.sum(-1)


def run_logprob(path):
    v = numbers(path)
    T, V, scale = int(v[0]), int(v[1]), float(v[2])
    k = 3
    logits = torch.tensor([float(x) for x in v[k:k + T * V]], dtype=torch.float32)
    logits = logits.double().view(1, T, V).requires_grad_(True)
    k += T * V
    ids = torch.tensor([int(x) for x in v[k:k + T]]).view(1, T)
    k += T
    mask = torch.tensor([int(x) for x in v[k:k + T]]).view(1, T)
    logp, count = batch_logps(logits, ids, mask)
    (scale * logp.sum()).backward()
    print(repr(logp.item()), int(count.item()))
    for g in logits.grad.view(-1).tolist():
        print(repr(g))


def run_xent(path):
    v = numbers(path)
    R, T, V = int(v[0]), int(v[1]), int(v[2])
    k = 3
    logits = torch.tensor([float(x) for x in v[k:k + R * T * V]], dtype=torch.float32)
    logits = logits.double().view(R, T, V).requires_grad_(True)
    k += R * T * V
    ids = torch.tensor([int(x) for x in v[k:k + R * T]]).view(R, T)
    k += R * T
    mask = torch.tensor([int(x) for x in v[k:k + R * T]]).view(R, T)
    # transformers' causal-LM loss: labels -100 where not trained, shifted
    labels = ids.masked_fill(mask == 0, -100)
    shift_logits = logits[:, :-1, :].reshape(-1, V)
    shift_labels = labels[:, 1:].reshape(-1)
    count = int((shift_labels != -100).sum().item())
    loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
    loss.backward()
    print(repr(loss.item()), count)
    for g in logits.grad.view(-1).tolist():
        print(repr(g))


def run_step(path):
    v = numbers(path)
    beta, n, T, V = float(v[0]), int(v[1]), int(v[2]), int(v[3])
    k = 4
    rows, ids, masks = [], [], []
    for _ in range(2 * n):
        rows.append([float(x) for x in v[k:k + T * V]])
        k += T * V
        ids.append([int(x) for x in v[k:k + T]])
        k += T
        masks.append([int(x) for x in v[k:k + T]])
        k += T
    ref = torch.tensor([float(x) for x in v[k:k + 2 * n]], dtype=torch.float64).view(n, 2)
    logits = torch.tensor(rows, dtype=torch.float32).double().view(2 * n, T, V).requires_grad_(True)
    # DPOTrainer.concatenated_forward: chosen rows first, then rejected
    logps, _ = batch_logps(logits, torch.tensor(ids), torch.tensor(masks))
    losses, _, _ = dpo_loss(beta, 0.0, False, logps[:n], logps[n:], ref[:, 0], ref[:, 1])
    loss = losses.mean()
    loss.backward()
    print(repr(loss.item()))
    for g in logits.grad.view(-1).tolist():
        print(repr(g))


if __name__ == "__main__":
    {"dpo": run_dpo, "logprob": run_logprob, "xent": run_xent, "step": run_step}[sys.argv[1]](sys.argv[2])
