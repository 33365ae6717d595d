#!/usr/bin/python3
"""The built-in embedder (steps/embed/tfidf.c) checked against NumPy.

usage: tfidf_ref.py exact DIR       DIR holds texts.json, the model the C code
                                    fitted (config.json, vocab.txt,
                                    model.safetensors) and embeddings.slmx
       tfidf_ref.py sketch DIR      the same, for a model whose sketch is
                                    smaller than the corpus: its explained
                                    variance against the exact optimum

Written from the formulas in steps/embed/tfidf.h, not from the C code:
terms are re.findall(r"\\w+") of the lower-cased text, tf-idf rows are
(1 + ln tf) * (ln((1 + N) / (1 + df)) + 1), L2-normalised, and the
components are the top right singular vectors (numpy.linalg.svd), each
signed so that its largest-magnitude entry is positive. Exits 0 when all
agree, else prints what differs and exits 1."""
import json
import re
import sys

import numpy as np

from sluice_files import read_matrix, read_safetensors

TOL = 1e-4


def tfidf(texts):
    docs = [re.findall(r"\w+", t.lower()) for t in texts]
    df = {}
    for d in docs:
        for term in set(d):
            df[term] = df.get(term, 0) + 1
    vocab = sorted(df, key=lambda t: (-df[t], t.encode()))
    index = {t: i for i, t in enumerate(vocab)}
    n = len(texts)
    idf = np.array([np.log((1 + n) / (1 + df[t])) + 1 for t in vocab])
    x = np.zeros((n, len(vocab)))
    for i, d in enumerate(docs):
        for term in set(d):
            x[i, index[term]] = (1 + np.log(d.count(term))) * idf[index[term]]
        norm = np.linalg.norm(x[i])
        if norm > 0:
            x[i] /= norm
    return vocab, idf, x


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    texts = json.load(open(folder + "/texts.json"))
    config = json.load(open(folder + "/config.json"))
    vocab_c = open(folder + "/vocab.txt", encoding="utf-8").read().split("\n")[:-1]
    tensors = read_safetensors(folder + "/model.safetensors")
    emb_c = read_matrix(folder + "/embeddings.slmx")
    vocab, idf, x = tfidf(texts)
    bad = []
    if vocab_c != vocab:
        bad.append("vocabulary differs: %r... vs %r..." % (vocab_c[:8], vocab[:8]))
    elif np.max(np.abs(tensors["idf"] - idf)) > TOL:
        bad.append("idf differs by %g" % np.max(np.abs(tensors["idf"] - idf)))
    dim = config["dim"]
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    best = float(np.sum(s[:dim] ** 2) / np.sum(s ** 2))
    if mode == "exact" and not bad:
        comp = vt[:dim].T.copy()
        for c in range(dim):
            if comp[np.argmax(np.abs(comp[:, c])), c] < 0:
                comp[:, c] = -comp[:, c]
        diff = np.max(np.abs(tensors["components"] - comp))
        if diff > TOL:
            bad.append("components differ by %g" % diff)
        emb = x @ comp
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = np.where(norms > 0, emb / np.where(norms > 0, norms, 1), 0)
        diff = np.max(np.abs(emb_c - emb))
        if diff > TOL:
            bad.append("embeddings differ by %g" % diff)
        if abs(config["explained_variance"] - best) > TOL:
            bad.append("explained variance %g, exact %g" % (config["explained_variance"], best))
    if mode == "sketch":
        got = config["explained_variance"]
        print("explained variance: sketch %.5f, exact optimum %.5f" % (got, best))
        if got < 0.99 * best or got > best + TOL:
            bad.append("the sketch keeps %.5f of the variance; the optimum is %.5f" % (got, best))
    for b in bad:
        print(b)
    sys.exit(1 if bad else 0)


main()
