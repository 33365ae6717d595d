#!/usr/bin/python3
"""bpe_train_ref.py - an independent byte-level BPE trainer for the tokenizer
tests, the slow obvious way: after every merge, count every adjacent pair of
every word again; take the most frequent pair and, among pairs as frequent,
the one with the smaller (left id, right id), the order Hugging Face's
BpeTrainer uses; ids are the special tokens, then GPT-2's 256 byte
characters in code point order, then one per merge.

    bpe_train_ref.py TEXTS_JSON VOCAB_SIZE [SPECIAL...]

prints the merges, one "a b" per line.
"""
import collections
import json
import sys

import regex

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bpe_ref import BYTE_CHAR, GPT2_PATTERN  # noqa: E402


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        texts = json.load(f)
    if isinstance(texts, dict):
        texts = texts["texts"]
    vocab_size = int(sys.argv[2])
    specials = sys.argv[3:]
    words = collections.Counter()
    rx = regex.compile(GPT2_PATTERN)
    for t in texts:
        for m in rx.finditer(t):
            words[m.group()] += 1
    ids = {}
    for s in specials + sorted(BYTE_CHAR.values()):
        ids.setdefault(s, len(ids))
    seqs = {w: [BYTE_CHAR[b] for b in w.encode("utf-8")] for w in words}
    merges = []
    while len(ids) < vocab_size:
        counts = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                counts[(a, b)] += n
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -ids[p[0]], -ids[p[1]]))
        merged = best[0] + best[1]
        ids.setdefault(merged, len(ids))
        merges.append(best)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    for a, b in merges:
        print(a, b)


if __name__ == "__main__":
    main()
