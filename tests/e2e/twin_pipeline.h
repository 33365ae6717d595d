/* twin_pipeline.h - the pipeline "twin" of the registry's end-to-end tests
 * (test_models.c, test_ci.c): a version of model twin per training. Include
 * after runner.h. */
#ifndef SLUICE_TESTS_TWIN_PIPELINE_H
#define SLUICE_TESTS_TWIN_PIPELINE_H

#include "tiny_model.h"

/* A pipeline "twin": a tokenizer and a tiny model trained on the demo
 * documents (seed params.seed), an evaluation (a shell step reading the
 * model) that reports perplexity params.ppl, and then the YAML of more. */
static char *twin_pipeline(const char *more) {
    char text[4096];
    snprintf(
        text, sizeof(text),
        "version: 1\npipeline: twin\nparams: {seed: 1, ppl: 50}\n"
        "steps:\n" TINY_DOCS_STEP TINY_TOKENIZER_STEP(
            300) "  train:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: docs.c, tokenizer: tok.tokenizer}\n"
                 "    with: {d_model: 16, n_layers: 1, n_heads: 2, context: 32, max_seq_len: 32, "
                 "batch_size: 2, max_steps: 2, checkpoint_every: 0, seed: '${params.seed}'}\n"
                 "  eval:\n"
                 "    uses: shell\n"
                 "    inputs: {model: train.model}\n"
                 "    with: {run: 'echo \"{\\\"name\\\": \\\"perplexity\\\", \\\"value\\\": "
                 "${params.ppl}}\" >> \"$SLUICE_METRICS\"'}\n"
                 "%s",
        more);
    return write_test_file(test_dir, "twin.yaml", text);
}

#endif
