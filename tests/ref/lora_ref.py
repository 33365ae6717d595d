#!/usr/bin/python3
"""PyTorch reference for the LoRA adapters of steps/model (tests/unit/test_model.c).

Builds model_ref.py's tiny GPT-2 or Llama case, puts LoRA adapters on the
named target modules (matched by the module name's last component, as PEFT
does) and, for the same batch, dumps sluice's checks: logits, loss, the
adapters' gradients, that the base gets none, and 10 AdamW steps over the
adapters only. The adapted layer is written from PEFT's definition,
y = x W^T + b + (alpha / r) * dropout(x) A^T B^T (dropout 0 here), with
GPT-2's Conv1D weight (in, out) as PEFT's fan_in_fan_out; A and B are
random (B nonzero so the adapter contributes) and written to
lora.safetensors under the module's name (e.g.
h.0.attn.c_attn.lora_A.weight) for sluice to load.

    lora_ref.py OUTDIR CASE   CASE: gpt2 or llama
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_ref as mr  # noqa: E402

R, ALPHA = 4, 8.0
TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"],
           "llama": ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]}


def adapted(c, base, lora, forward, tok):
    """forward with each adapted weight's layer computing x W^T + s (x A^T) B^T:
    done here by a linear map per layer wrapped around the base weight."""
    gpt2 = c["model_type"] == "gpt2"
    s = ALPHA / R
    p = dict(base)
    for mod in {k.rsplit(".lora_", 1)[0] for k in lora}:
        A, B = lora[mod + ".lora_A.weight"], lora[mod + ".lora_B.weight"]
        delta = s * (B @ A)  # (out, in)
        w = base[mod + ".weight"]
        p[mod + ".weight"] = w + (delta.T if gpt2 else delta)
    return forward(c, p, tok)


def main():
    outdir, name = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    c = mr.CASES[name]
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    seed = 4321
    g = torch.Generator().manual_seed(seed)
    gpt2 = c["model_type"] == "gpt2"
    base = mr.gpt2_params(c, g) if gpt2 else mr.llama_params(c, g)
    forward = mr.gpt2_forward if gpt2 else mr.llama_forward
    V = c["vocab_size"]
    import json
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    mr.write_safetensors(os.path.join(d, "model.safetensors"), base)

    lora = {}
    for k, w in base.items():
        mod = k[:-len(".weight")] if k.endswith(".weight") else None
        if mod is None or w.dim() != 2 or mod.rsplit(".", 1)[-1] not in TARGETS[name]:
            continue
        fin, fout = (w.shape[0], w.shape[1]) if gpt2 else (w.shape[1], w.shape[0])
        lora[mod + ".lora_A.weight"] = torch.randn(R, fin, generator=g) * 0.2
        lora[mod + ".lora_B.weight"] = torch.randn(fout, R, generator=g) * 0.2
    mr.write_safetensors(os.path.join(d, "lora.safetensors"), lora)

    tok = torch.randint(0, V, (mr.B, mr.T + 1), generator=g)
    tokens, targets = tok[:, :-1].contiguous(), tok[:, 1:].clone()
    targets[0, :3] = -1
    mask = torch.ones(mr.B, mr.T)
    mask[1, 5:] = 0
    masked = targets.clone()
    masked[mask == 0] = -1

    bp = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    lp = {k: v.clone().requires_grad_(True) for k, v in lora.items()}
    logits = adapted(c, bp, lp, forward, tokens)
    loss = F.cross_entropy(logits.reshape(-1, V), masked.reshape(-1), ignore_index=-1)
    # gradients of the adapters only: the base is frozen
    grads = torch.autograd.grad(loss, list(lp.values()))
    out = {"tokens": tokens.float(), "targets": targets.float(), "mask": mask,
           "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for k, gr in zip(lp, grads):
        out["grad." + k] = gr

    lp = {k: v.clone().requires_grad_(True) for k, v in lora.items()}
    opt = mr.adamw(lp)
    losses = []
    for _ in range(mr.STEPS):
        opt.zero_grad()
        lo = F.cross_entropy(adapted(c, base, lp, forward, tokens).reshape(-1, V),
                             masked.reshape(-1), ignore_index=-1)
        lo.backward()
        opt.step()
        losses.append(lo.item())
    out["losses"] = torch.tensor(losses)
    mr.write_safetensors(os.path.join(d, "ref.safetensors"), out)


if __name__ == "__main__":
    main()
