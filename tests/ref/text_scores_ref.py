#!/usr/bin/python3
"""Reference for steps/evaluate/text_scores.c (tests/unit/test_text_scores.c).

Written here from the definitions of the packages the evaluate step follows
(neither is installed): rouge-score's ROUGE-L (rouge_score/tokenize.py and
rouge_scorer._score_lcs, use_stemmer=False) and sacreBLEU's BLEU with its
defaults (tokenizers/tokenizer_13a.py, tokenizer_re.py, metrics/bleu.py:
tokenize "13a", smooth_method "exp", max n-gram order 4), using Python's
own str.lower(), re.sub() and str.split() where those packages do.

    text_scores_ref.py PAIRS.json   PAIRS.json: [[answer, reference], ...]
                                    or {"pairs": [...]}

prints one JSON object: "pairs" (per pair: rouge_l precision, recall, f1,
sentence_bleu as sacrebleu.sentence_bleu, exact_match, answer_words) and
"corpus_bleu" over all pairs.
"""
import collections
import json
import math
import re
import sys

# ---- ROUGE-L (rouge_score) ----

NON_ALPHANUM_RE = re.compile(r"[^a-z0-9]+")
SPACES_RE = re.compile(r"\s+")
VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")


def rouge_tokenize(text):
    text = text.lower()
    text = NON_ALPHANUM_RE.sub(" ", text)
    tokens = SPACES_RE.split(text)
    return [x for x in tokens if VALID_TOKEN_RE.match(x)]


def lcs_table(ref, can):
    rows, cols = len(ref), len(can)
    t = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            if ref[i - 1] == can[j - 1]:
                t[i][j] = t[i - 1][j - 1] + 1
            else:
                t[i][j] = max(t[i - 1][j], t[i][j - 1])
    return t


def rouge_l(answer, reference):
    target, prediction = rouge_tokenize(reference), rouge_tokenize(answer)
    if not target or not prediction:
        return 0.0, 0.0, 0.0
    lcs = lcs_table(target, prediction)[-1][-1]
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f

# ---- BLEU (sacreBLEU) ----


REGEXES = [
    (re.compile(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'), r' \1 '),
    (re.compile(r'([^0-9])([\.,])'), r'\1 \2 '),
    (re.compile(r'([\.,])([^0-9])'), r' \1 \2'),
    (re.compile(r'([0-9])(-)'), r'\1 \2 '),
]


def tokenize_13a(line):
    line = line.replace('<skipped>', '')
    line = line.replace('-\n', '')
    line = line.replace('\n', ' ')
    if '&' in line:
        line = line.replace('&quot;', '"')
        line = line.replace('&amp;', '&')
        line = line.replace('&lt;', '<')
        line = line.replace('&gt;', '>')
    line = f' {line} '
    for regex, repl in REGEXES:
        line = regex.sub(repl, line)
    return ' '.join(line.split())


def ngrams(line, max_order=4):
    tokens = line.split()
    counts = collections.Counter()
    for n in range(1, max_order + 1):
        for i in range(0, len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts, len(tokens)


def stats(answer, reference):
    hyp = tokenize_13a(answer.rstrip())
    ref = tokenize_13a(reference.rstrip())
    ref_ngrams, ref_len = ngrams(ref)
    hyp_ngrams, hyp_len = ngrams(hyp)
    correct, total = [0] * 4, [0] * 4
    for g, count in hyp_ngrams.items():
        n = len(g) - 1
        total[n] += count
        if g in ref_ngrams:
            correct[n] += min(count, ref_ngrams[g])
    return correct, total, hyp_len, ref_len


def my_log(x):
    return -9999999999 if x == 0.0 else math.log(x)


def compute_bleu(correct, total, sys_len, ref_len, effective_order):
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * 4
    if not any(correct):
        return 0.0
    smooth_mteval = 1.0
    eff_order = 4
    for n in range(1, 5):
        if total[n - 1] == 0:
            break
        if effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            smooth_mteval *= 2
            precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1])
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    return bp * math.exp(sum(my_log(p) for p in precisions[:eff_order]) / eff_order)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        pairs = json.load(f)
    if isinstance(pairs, dict):
        pairs = pairs["pairs"]
    out, corpus = [], [[0] * 4, [0] * 4, 0, 0]
    for answer, reference in pairs:
        p, r, f1 = rouge_l(answer, reference)
        c, t, hl, rl = stats(answer, reference)
        for n in range(4):
            corpus[0][n] += c[n]
            corpus[1][n] += t[n]
        corpus[2] += hl
        corpus[3] += rl
        out.append(dict(rouge_l=[p, r, f1],
                        sentence_bleu=compute_bleu(c, t, hl, rl, True),
                        exact_match=int(answer.strip() == reference.strip()),
                        answer_words=len(answer.split())))
    json.dump(dict(pairs=out, corpus_bleu=compute_bleu(*corpus, False)), sys.stdout)


if __name__ == "__main__":
    main()
