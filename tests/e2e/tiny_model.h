/* tiny_model.h - the first steps of the test pipelines that train a tiny
 * model on the demo data (pipelines/demo/datasets), as YAML lines to paste
 * under `steps:`. */
#ifndef SLUICE_TESTS_TINY_MODEL_H
#define SLUICE_TESTS_TINY_MODEL_H

#define DEMO_DATA SLUICE_SOURCE_DIR "/pipelines/demo/datasets"

/* docs.c: the demo's documents. */
#define TINY_DOCS_STEP                                                                             \
    "  docs: {uses: shell, with: {run: 'cp " DEMO_DATA "/documents.jsonl \"$SLUICE_OUTPUT_c\"', "  \
    "outputs: {c: c.jsonl}}}\n"

/* tok.tokenizer: a byte-level BPE of vocab ids (a literal number) trained on docs.c. */
#define TINY_TOKENIZER_STEP(vocab)                                                                 \
    "  tok: {uses: train_tokenizer, inputs: {chunks: docs.c}, with: {vocab_size: " #vocab "}}\n"

#endif
