#!/usr/bin/python3
"""An independent reference for steps/text/wordpiece.c: BERT's tokenizer as
Hugging Face's slow BertTokenizer runs it, written from the algorithm with
the standard library only (unicodedata, json), so that it can run where
transformers is not installed.

    /usr/bin/python3 wordpiece_ref.py MODEL_DIR < texts

MODEL_DIR holds vocab.txt and, optionally, tokenizer_config.json. Each line
of stdin is one text, as a JSON string, or as {"hex": "..."}: raw bytes,
decoded as UTF-8 with errors="replace" (how invalid UTF-8 reaches the
tokenizer from Python). Each line of stdout is the JSON list of the text's
token ids, without [CLS]/[SEP].

What it does, as PreTrainedTokenizer.tokenize + BertTokenizer._tokenize do:
 1. with do_lower_case, every character that is not part of a special token
    is lowercased on its own (the slow tokenizer's regex over ".+?");
 2. the special tokens spelled in the text are cut out (those the vocabulary
    has: a special absent from it is where this and Hugging Face part);
 3. each piece between goes through BasicTokenizer (clean, CJK spacing, NFC,
    str.split, lower + strip accents unless a special name, punctuation
    split) and WordpieceTokenizer (greedy longest match, "##", 100 chars).
"""
import json
import os
import sys
import unicodedata

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_CHARS = 100


def load_vocab(path):
    # Text mode: universal newlines, as load_vocab in transformers reads it.
    vocab = {}
    with open(path, "r", encoding="utf-8") as f:
        for index, line in enumerate(f.readlines()):
            vocab[line.rstrip("\n")] = index
    return vocab


def load_config(model_dir):
    cfg = {}
    path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as f:
            cfg = json.load(f)
    return (cfg.get("do_lower_case", True), cfg.get("strip_accents", None),
            cfg.get("tokenize_chinese_chars", True))


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


class Tokenizer:
    def __init__(self, model_dir):
        self.vocab = load_vocab(os.path.join(model_dir, "vocab.txt"))
        self.lower, strip, self.cjk = load_config(model_dir)
        self.strip = self.lower if strip is None else strip
        self.specials = [s for s in SPECIALS if s in self.vocab]

    def split_specials(self, text):
        """[(is_special, str)], leftmost special first."""
        out, buf, i = [], [], 0
        while i < len(text):
            hit = next((s for s in self.specials if text.startswith(s, i)), None)
            if hit is None:
                buf.append(text[i])
                i += 1
                continue
            if buf:
                out.append((False, "".join(buf)))
                buf = []
            out.append((True, hit))
            i += len(hit)
        if buf:
            out.append((False, "".join(buf)))
        return out

    def basic(self, text):
        cleaned = []
        for ch in text:
            if ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
                continue
            cleaned.append(" " if is_whitespace(ch) else ch)
        text = "".join(cleaned)
        if self.cjk:
            text = "".join(" %s " % ch if is_cjk(ch) else ch for ch in text)
        text = unicodedata.normalize("NFC", text)
        words = []
        for word in text.split():
            if word not in SPECIALS:
                if self.lower:
                    word = word.lower()
                if self.strip:
                    word = "".join(c for c in unicodedata.normalize("NFD", word)
                                   if unicodedata.category(c) != "Mn")
            words.extend(self.split_punct(word))
        return " ".join(words).split()

    @staticmethod
    def split_punct(word):
        if word in SPECIALS:
            return [word]
        pieces, fresh = [], True
        for ch in word:
            if is_punctuation(ch):
                pieces.append(ch)
                fresh = True
            else:
                if fresh:
                    pieces.append("")
                pieces[-1] += ch
                fresh = False
        return pieces

    def wordpiece(self, word):
        if len(word) > MAX_CHARS:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def ids(self, text):
        out = []
        for special, part in self.split_specials(text):
            if special:
                out.append(self.vocab[part])
                continue
            if self.lower:
                part = "".join(ch.lower() for ch in part)
            for word in self.basic(part):
                for piece in self.wordpiece(word):
                    out.append(self.vocab.get(piece, self.vocab["[UNK]"]))
        return out


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: wordpiece_ref.py MODEL_DIR < texts\n")
        return 2
    tok = Tokenizer(sys.argv[1])
    for line in sys.stdin.buffer.read().decode("utf-8").split("\n"):
        if not line.strip():
            continue
        item = json.loads(line)
        if isinstance(item, dict):
            item = bytes.fromhex(item["hex"]).decode("utf-8", errors="replace")
        sys.stdout.write(json.dumps(tok.ids(item)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
