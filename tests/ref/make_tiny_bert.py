#!/usr/bin/python3
"""Writes a tiny BERT with random weights as a Hugging Face folder, for the
tests of steps/embed/bert.c (and bert_ref.py, which reads it back):

    /usr/bin/python3 make_tiny_bert.py OUT_DIR [--prefix] [--seed N] [--variant V]

OUT_DIR gets config.json (hidden 32, 2 layers, 4 heads, intermediate 64,
64 positions, 2 token types, GELU), model.safetensors (F32, BertModel's
tensor names; --prefix puts "bert." before each, as BertForMaskedLM and
friends save them), vocab.txt ([PAD] [UNK] [CLS] [SEP] [MASK], some words,
single letters and ##pieces) and tokenizer_config.json.

The safetensors file is written by hand (struct + json), as the format
describes it: an 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and [begin, end) data offsets, then the data.

--variant breaks one thing, for the refusal tests:
    missing     drops encoder.layer.1.attention.self.key.weight
    shape       encoder.layer.0.output.dense.weight is [32, 63]
    dtype       embeddings.LayerNorm.weight is F16
    act         config.json's hidden_act is "relu"
    noconfig    config.json lacks num_attention_heads
    heads       num_attention_heads 5 does not divide hidden_size 32
    nan         encoder.layer.1.output.dense.weight[3, 5] is NaN
    huge        layer 0's query and key weights times 1e19: finite, but the
                attention scores overflow to infinities (and NaN in softmax)
Needs numpy."""
import json
import os
import struct
import sys

import numpy as np

HIDDEN, LAYERS, HEADS, INTER, POSITIONS, TYPES = 32, 2, 4, 64, 64, 2

WORDS = """the quick brown fox jumps over lazy dog hello world a is of to and
in it that was for on are with as his they be at one have this from or had by
not but what all were we when your can said there use an each which she do how
their if will up other about out many then them these so some her would make
like him into time has look two more write go see number no way could people my
than first water been call who oil its now find long down day did get come made
may part over new sound take only little work know place year live me back give
most very after thing our just name good sentence man think say great where help
through much before line right too mean old any same tell boy follow came want
show also around form three small set put end does another well large must big
even such because turn here why ask went men read need land different home us
move try kind hand picture again change off play spell air away animal house
point page letter mother answer found study still learn should america embed
token model vector search pipeline sluice cat sat mat un""".split()
PIECES = "##s ##ed ##ing ##er ##ly ##able ##ize ##tion ##al ##ness ##ment".split()
PUNCT = list(".,!?;:'\"()-")


def vocab():
    v = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(v)
    for w in WORDS + PIECES + PUNCT + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
            ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789"):
        if w not in seen:
            seen.add(w)
            v.append(w)
    return v


def tensors(rng, vocab_size):
    def w(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(name):
        return [(name + ".weight", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)),
                (name + ".bias", w(HIDDEN, scale=0.1))]

    out = [("embeddings.word_embeddings.weight", w(vocab_size, HIDDEN, scale=0.5)),
           ("embeddings.position_embeddings.weight", w(POSITIONS, HIDDEN, scale=0.5)),
           ("embeddings.token_type_embeddings.weight", w(TYPES, HIDDEN, scale=0.5))]
    out += ln("embeddings.LayerNorm")
    for i in range(LAYERS):
        p = "encoder.layer.%d." % i
        for part in ("query", "key", "value"):
            out += [(p + "attention.self.%s.weight" % part, w(HIDDEN, HIDDEN)),
                    (p + "attention.self.%s.bias" % part, w(HIDDEN, scale=0.1))]
        out += [(p + "attention.output.dense.weight", w(HIDDEN, HIDDEN)),
                (p + "attention.output.dense.bias", w(HIDDEN, scale=0.1))]
        out += ln(p + "attention.output.LayerNorm")
        out += [(p + "intermediate.dense.weight", w(INTER, HIDDEN)),
                (p + "intermediate.dense.bias", w(INTER, scale=0.1)),
                (p + "output.dense.weight", w(HIDDEN, INTER)),
                (p + "output.dense.bias", w(HIDDEN, scale=0.1))]
        out += ln(p + "output.LayerNorm")
    # An unrelated tensor, as real checkpoints carry (the pooler): ignored.
    out += [("pooler.dense.weight", w(HIDDEN, HIDDEN)), ("pooler.dense.bias", w(HIDDEN))]
    return out


def write_safetensors(path, items):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in items:
        data = arr.astype("<" + arr.dtype.str[1:]).tobytes()
        dtype = {"float32": "F32", "float16": "F16"}[arr.dtype.name]
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(argv):
    args = argv[1:]
    out = args.pop(0)
    prefix, seed, variant = "", 1234, None
    while args:
        a = args.pop(0)
        if a == "--prefix":
            prefix = "bert."
        elif a == "--seed":
            seed = int(args.pop(0))
        elif a == "--variant":
            variant = args.pop(0)
        else:
            sys.exit("unknown option " + a)
    os.makedirs(out, exist_ok=True)
    v = vocab()
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(t + "\n" for t in v))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": POSITIONS}, f)
    vocab_size = len(v) + 3  # a model may have more rows than vocab.txt has lines
    config = {"architectures": ["BertModel"], "model_type": "bert",
              "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "intermediate_size": INTER,
              "max_position_embeddings": POSITIONS, "type_vocab_size": TYPES,
              "vocab_size": vocab_size, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "pad_token_id": 0, "position_embedding_type": "absolute"}
    if variant == "act":
        config["hidden_act"] = "relu"
    elif variant == "noconfig":
        del config["num_attention_heads"]
    elif variant == "heads":
        config["num_attention_heads"] = 5
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    items = tensors(np.random.default_rng(seed), vocab_size)
    if variant == "missing":
        items = [(n, a) for n, a in items if n != "encoder.layer.1.attention.self.key.weight"]
    elif variant == "shape":
        items = [(n, a[:, :63] if n == "encoder.layer.0.output.dense.weight" else a)
                 for n, a in items]
    elif variant == "dtype":
        items = [(n, a.astype(np.float16) if n == "embeddings.LayerNorm.weight" else a)
                 for n, a in items]
    elif variant == "huge":
        for n, a in items:
            if n in ("encoder.layer.0.attention.self.query.weight",
                     "encoder.layer.0.attention.self.key.weight"):
                a *= np.float32(1e19)
    elif variant == "nan":
        for n, a in items:
            if n == "encoder.layer.1.output.dense.weight":
                a[3, 5] = np.nan
    elif variant not in (None, "act", "noconfig", "heads"):
        sys.exit("unknown variant " + variant)
    write_safetensors(os.path.join(out, "model.safetensors"),
                      [(prefix + n, np.ascontiguousarray(a)) for n, a in items])


if __name__ == "__main__":
    main(sys.argv)
