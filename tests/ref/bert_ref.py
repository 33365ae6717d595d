#!/usr/bin/python3
"""An independent reference for steps/embed/bert.c: BERT's forward pass
(transformers' BertModel in eval mode) with sentence-transformers' mean
pooling and L2 normalisation, in NumPy, in float64:

    /usr/bin/python3 bert_ref.py MODEL_DIR < ids

MODEL_DIR is a Hugging Face folder (config.json, model.safetensors with F32
tensors, names with or without "bert."). Each line of stdin is one text's
token ids as a JSON list, [CLS] and [SEP] included, unpadded: each sequence
runs alone, so no attention mask is needed and the C side's padding is
checked, not copied. Each line of stdout is the text's embedding as a JSON
list of floats.
The safetensors file is read by hand (sluice_files.py)."""
import json
import math
import os
import sys

import numpy as np

from sluice_files import read_safetensors


def load_safetensors(path):
    return {(name[5:] if name.startswith("bert.") else name): arr
            for name, arr in read_safetensors(path).items()}


def layer_norm(x, g, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def embed(w, cfg, ids):
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps, T = H // nh, cfg["layer_norm_eps"], len(ids)
    ids = np.asarray(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:T]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i

        def lin(name, v):
            return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q = lin("attention.self.query", x).reshape(T, nh, dh).transpose(1, 0, 2)
        k = lin("attention.self.key", x).reshape(T, nh, dh).transpose(1, 0, 2)
        v = lin("attention.self.value", x).reshape(T, nh, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(T, H)
        a = layer_norm(lin("attention.output.dense", ctx) + x,
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], eps)
        f = lin("output.dense", gelu(lin("intermediate.dense", a)))
        x = layer_norm(f + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                       eps)
    pooled = x.mean(0)
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def main(argv):
    d = argv[1]
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    w = load_safetensors(os.path.join(d, "model.safetensors"))
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(json.dumps([float(v) for v in embed(w, cfg, json.loads(line))]))


if __name__ == "__main__":
    main(sys.argv)
