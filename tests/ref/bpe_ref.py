#!/usr/bin/python3
"""bpe_ref.py - an independent byte-level BPE encoder for the tokenizer
tests: it reads a Hugging Face tokenizer.json and encodes texts the way
`tokenizers` does, written from its documented behaviour with Python's
`regex` module (for \\p{L}) and GPT-2's original merge loop (lowest rank
first, every occurrence of the pair at once), sharing no code with
steps/tokenizer.

    bpe_ref.py TOKENIZER_JSON TEXTS_JSON [--add-special]

TEXTS_JSON is a JSON array of strings (or {"texts": [...]}); each text's ids are printed on one
line, separated by spaces.
"""
import json
import sys
import unicodedata

import regex

GPT2_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_CHAR = bytes_to_unicode()


class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        model = tj["model"]
        assert model["type"] == "BPE"
        self.vocab = model["vocab"]
        self.ranks = {}
        for rank, m in enumerate(model["merges"]):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks[(a, b)] = rank
        self.ignore_merges = model.get("ignore_merges") or False
        self.added = []
        for t in tj.get("added_tokens") or []:
            self.added.append(dict(content=t["content"], id=t["id"],
                                   normalized=t.get("normalized", not t.get("special", False)),
                                   lstrip=t.get("lstrip", False), rstrip=t.get("rstrip", False),
                                   single_word=t.get("single_word", False)))
        norm = tj.get("normalizer")
        self.nfc = bool(norm) and norm["type"] == "NFC"
        pre = tj["pre_tokenizer"]
        steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        self.steps = []
        for s in steps:
            if s["type"] == "Split":
                pat = s["pattern"]
                rx = regex.compile(pat["Regex"] if "Regex" in pat else regex.escape(pat["String"]))
                self.steps.append(("split", rx, s["behavior"]))
            elif s["type"] == "Digits":
                rx = regex.compile(r"\p{N}" if s.get("individual_digits") else r"\p{N}+")
                self.steps.append(("split", rx, "Isolated"))
            elif s["type"] == "ByteLevel":
                rx = regex.compile(GPT2_PATTERN) if s.get("use_regex", True) else None
                self.steps.append(("bytelevel", rx, s.get("add_prefix_space", True)))
            else:
                raise ValueError(s["type"])
        self.prefix, self.suffix = [], []
        post = tj.get("post_processor")
        procs = [] if not post else post["processors"] if post["type"] == "Sequence" else [post]
        for p in procs:
            if p["type"] != "TemplateProcessing":
                continue
            seen = False
            for item in p["single"]:
                if "Sequence" in item:
                    seen = True
                else:
                    ids = p["special_tokens"][item["SpecialToken"]["id"]]["ids"]
                    (self.suffix if seen else self.prefix).extend(ids)
        self.cache = {}

    def bpe(self, word):
        """GPT-2's encoder.py bpe(): the lowest-ranked pair, all of its
        occurrences left to right, until no pair has a rank."""
        if self.ignore_merges and word in self.vocab:
            return [self.vocab[word]]
        if word in self.cache:
            return self.cache[word]
        parts = [c for c in word if c in self.vocab]
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    @staticmethod
    def split(rx, text, isolated):
        out, prev = [], 0
        for m in rx.finditer(text):
            out.append(text[prev:m.start()])
            if isolated:
                out.append(m.group())
            prev = m.end()
        out.append(text[prev:])
        return [p for p in out if p]

    def model_part(self, text):
        pieces = [text]
        for kind, rx, arg in self.steps:
            nxt = []
            for p in pieces:
                if kind == "bytelevel":
                    if arg and not p.startswith(" "):
                        p = " " + p
                    nxt.extend(self.split(rx, p, True) if rx else [p])
                else:
                    nxt.extend(self.split(rx, p, arg == "Isolated"))
            pieces = nxt
        ids = []
        for p in pieces:
            word = "".join(BYTE_CHAR[b] for b in p.encode("utf-8"))
            ids.extend(self.bpe(word))
        return ids

    def added_pass(self, text, normalized, then):
        """Leftmost match, longest there; lstrip/rstrip/single_word."""
        toks = [a for a in self.added if a["normalized"] == normalized]
        ids, start_offset, pos = [], 0, 0
        while pos < len(text):
            best = None
            for a in toks:
                if text.startswith(a["content"], pos) and (
                        best is None or len(a["content"]) > len(best["content"])):
                    best = a
            if best is None:
                pos += 1
                continue
            start, stop = pos, pos + len(best["content"])
            pos = stop
            if best["single_word"]:
                word = regex.compile(r"[\p{Alphabetic}\p{N}]")
                before = start > 0 and word.match(text[start - 1])
                after = stop < len(text) and word.match(text[stop])
                if before or after:
                    continue
            if best["lstrip"]:
                i = start
                while i > 0 and regex.match(r"\p{White_Space}", text[i - 1]):
                    i -= 1
                start = max(i, start_offset)
            if best["rstrip"]:
                while stop < len(text) and regex.match(r"\p{White_Space}", text[stop]):
                    stop += 1
                pos = stop
            if start > start_offset:
                ids.extend(then(text[start_offset:start]))
            ids.append(best["id"])
            start_offset = stop
        if start_offset < len(text):
            ids.extend(then(text[start_offset:]))
        return ids

    def encode(self, text, add_special):
        def normalized_part(piece):
            if self.nfc:
                piece = unicodedata.normalize("NFC", piece)
            return self.added_pass(piece, True, self.model_part)
        ids = self.added_pass(text, False, normalized_part)
        return self.prefix + ids + self.suffix if add_special else ids


def main():
    tok = Tokenizer(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        texts = json.load(f)
    if isinstance(texts, dict):
        texts = texts["texts"]
    add_special = "--add-special" in sys.argv[3:]
    out = sys.stdout
    for t in texts:
        out.write(" ".join(map(str, tok.encode(t, add_special))) + "\n")


if __name__ == "__main__":
    main()
