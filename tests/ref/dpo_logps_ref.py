#!/usr/bin/python3
"""The reference model's log-probabilities of a DPO dataset in PyTorch, for
the train step's `reference` output (tests/e2e/test_train.c): what TRL's
DPOTrainer computes once with its reference model (concatenated_forward,
get_batch_logps) before the policy trains against it.

    dpo_logps_ref.py MODEL_DIR DATASET_JSONL MAX_SEQ_LEN

MODEL_DIR is a GPT-2 Hugging Face folder of F32 weights (config.json,
model.safetensors, tokenizer.json), DATASET_JSONL preference records
(instruction, chosen, rejected; optional split). Prints one JSON line per
pair of the train split: {"index", "chosen", "rejected", "chosen_tokens",
"rejected_tokens"}, the summed log-probabilities of each answer's tokens
(its EOS included) given the prompt.

Everything is rebuilt here from the descriptions, sharing no code with
sluice: the Handbook's Alpaca prompt (format_samples_dpo: the template with
an empty answer, EOS after each answer), TRL's tokenize_row (prompt and
answers encoded apart; too long a pair keeps the prompt's last
max_seq_len // 2 tokens, then the answers' first max_seq_len - that), the
tokenizer from bpe_ref.py and the GPT-2 forward from model_ref.py. GPT-2
has no BOS. Computed in float32 as the model runs, summed in float64.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_ref import Tokenizer  # noqa: E402
from model_ref import gpt2_forward, read_safetensors  # noqa: E402

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{}\n\n### Response:\n")


def main():
    folder, data, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    assert c["model_type"] == "gpt2", c["model_type"]
    c.setdefault("layer_norm_epsilon", 1e-5)
    params = read_safetensors(os.path.join(folder, "model.safetensors"))
    tok = Tokenizer(os.path.join(folder, "tokenizer.json"))
    eos = c.get("eos_token_id")
    if eos is None:
        eos = tok.vocab["<|endoftext|>"]
    max_prompt = max_len // 2
    pairs = []
    with open(data, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("split", "train") == "train":
                    pairs.append(r)
    for i, r in enumerate(pairs):
        prompt = tok.encode(ALPACA.format(r.get("instruction", r.get("prompt"))), False)
        answers = [tok.encode(r[k], False) + [eos] for k in ("chosen", "rejected")]
        longer = max(len(a) for a in answers)
        if len(prompt) + longer > max_len:
            if len(prompt) > max_prompt:
                prompt = prompt[-max_prompt:]
            if len(prompt) + longer > max_len:
                answers = [a[:max_len - max_prompt] for a in answers]
        sums, counts = [], []
        for a in answers:
            ids = torch.tensor([prompt + a])
            with torch.no_grad():
                logits = gpt2_forward(c, params, ids)[0, :-1]
            logp = torch.log_softmax(logits, dim=-1)
            targets = ids[0, 1:]
            per_token = logp.gather(1, targets.unsqueeze(1)).squeeze(1)[len(prompt) - 1:]
            sums.append(float(per_token.double().sum()))
            counts.append(len(a))
        print(json.dumps({"index": i, "chosen": sums[0], "rejected": sums[1],
                          "chosen_tokens": counts[0], "rejected_tokens": counts[1]}))


if __name__ == "__main__":
    main()
