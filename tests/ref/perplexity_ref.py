#!/usr/bin/python3
"""The evaluate step's perplexity in PyTorch (tests/e2e/test_evaluate.c):
the answers of an instruction dataset's test split given their
instructions, in the train step's SFT template, scored on the answer's
tokens and its EOS only.

    perplexity_ref.py MODEL_DIR DATASET_JSONL

MODEL_DIR is a GPT-2 Hugging Face folder of F32 weights (config.json,
model.safetensors, tokenizer.json), DATASET_JSONL instruction records
(instruction, answer, split). Prints one JSON object: "examples" (per test
example, in order: "nll", the summed negative log-probability of its
answer tokens, and "tokens", their number) and "perplexity", exp of the
summed NLL over the summed tokens.

Rebuilt here from the descriptions, sharing no code with sluice: the
Handbook's Alpaca template (prompt and answer encoded apart, EOS after the
answer, TRL's completion-only loss), a sequence longer than the model's
context cut to its first tokens (HF's truncation), the tokenizer from
bpe_ref.py and the GPT-2 forward from model_ref.py. GPT-2 has no BOS.
Computed in float32 as the model runs, summed in float64.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_ref import Tokenizer  # noqa: E402
from model_ref import gpt2_forward, read_safetensors  # noqa: E402

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{}\n\n### Response:\n")


def main():
    folder, data = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    assert c["model_type"] == "gpt2", c["model_type"]
    c.setdefault("layer_norm_epsilon", 1e-5)
    context = c["n_positions"]
    params = read_safetensors(os.path.join(folder, "model.safetensors"))
    tok = Tokenizer(os.path.join(folder, "tokenizer.json"))
    eos = c.get("eos_token_id")
    if eos is None:
        eos = tok.vocab["<|endoftext|>"]
    out, nll_sum, token_sum = [], 0.0, 0
    with open(data, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for r in records:
        if r.get("split", "train") != "test":
            continue
        prompt = tok.encode(ALPACA.format(r["instruction"]), False)
        answer = tok.encode(r.get("answer", r.get("output")), False) + [eos]
        ids = (prompt + answer)[:context]
        n_answer = len(ids) - len(prompt)
        if n_answer <= 0:
            continue
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = gpt2_forward(c, params, x)[0, :-1]
        logp = torch.log_softmax(logits, dim=-1)
        per_token = logp.gather(1, x[0, 1:].unsqueeze(1)).squeeze(1)[len(prompt) - 1:]
        nll = -float(per_token.double().sum())
        out.append({"nll": nll, "tokens": n_answer})
        nll_sum += nll
        token_sum += n_answer
    print(json.dumps({"examples": out, "perplexity": math.exp(nll_sum / token_sum)}))


if __name__ == "__main__":
    main()
