/* test_generate.c - what SFT teaches comes back out of `sluice model
 * generate --chat` with the real binary: a tiny model overfitted on a few
 * instructions by `sluice run` answers each of them, greedily, with its
 * training answer byte for byte (the template, BOS/EOS, the tokenizer, the
 * saved weights and the KV cache all agreeing with training); and when the
 * model's context, not EOS, ends the text, generate says so. */
#include "runner.h"
#include "tiny_model.h"

TestSuite(generate, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

static const char *const instructions[][2] = {
    {"What is sentence packing?",
     "Sentence packing splits text into sentences first, then packs whole sentences into chunks "
     "up to a maximum length, keeping the last sentence of a chunk as overlap so that ideas are "
     "not cut in half."},
    {"What is a content-addressed store?",
     "A map from hashes to byte strings with one rule: the key of a value is the hash of the "
     "value. You never choose a key, so you cannot choose a wrong one."},
    {"Why must parameters go through a canonical encoding before hashing?",
     "Two runs that pass the same settings in a different order must produce the same key, or "
     "the cache misses for no reason."},
};
#define N_INSTRUCTIONS (sizeof(instructions) / sizeof(instructions[0]))

/* Trains a GPT-2 of the given context from scratch on the instructions
 * (SFT, response-only loss) until it fits them; returns RUN:sft.model. */
static const char *overfit(int vocab, int context) {
    char data[2048] = "", line[600];
    for (size_t i = 0; i < N_INSTRUCTIONS; i++) {
        snprintf(line, sizeof(line), "{\"instruction\": \"%s\", \"answer\": \"%s\"}\n",
                 instructions[i][0], instructions[i][1]);
        strcat(data, line);
    }
    char *path = write_test_file(test_dir, "ins.jsonl", data);
    char text[2048];
    snprintf(text, sizeof(text),
             "version: 1\npipeline: g\n"
             "steps:\n" TINY_DOCS_STEP
             "  ins: {uses: shell, with: {run: 'cp %s \"$SLUICE_OUTPUT_d\"', "
             "outputs: {d: d.jsonl}}}\n"
             "  tok: {uses: train_tokenizer, inputs: {chunks: docs.c}, with: {vocab_size: %d}}\n"
             "  sft:\n"
             "    uses: train\n"
             "    inputs: {dataset: ins.d, tokenizer: tok.tokenizer}\n"
             "    with: {method: sft, d_model: 32, n_layers: 2, n_heads: 2, context: %d, "
             "max_seq_len: %d, batch_size: 3, packing: false, epochs: 150, warmup_steps: 2, "
             "learning_rate: 3.0e-3}\n",
             path, vocab, context, context);
    expect_success(RUN_PIPELINE(write_test_file(test_dir, "p.yaml", text)));
    static char spec[64];
    snprintf(spec, sizeof(spec), "%s:sft.model", last_run);
    return spec;
}

static result generate(const char *spec, const char *instruction) {
    return RUN(test_store_arg, "model", "generate", (char *)spec, (char *)instruction, "--chat",
               "--temperature", "0", "--max-tokens", "200");
}

Test(generate, chat_greedy_reproduces_the_answers_sft_fitted) {
    const char *spec = overfit(1024, 256);
    for (size_t i = 0; i < N_INSTRUCTIONS; i++) {
        result r = generate(spec, instructions[i][0]);
        cr_expect_eq(r.status, 0, "%s", r.err);
        char want[600];
        snprintf(want, sizeof(want), "%s\n", instructions[i][1]);
        cr_expect_str_eq(r.out, want, "instruction %zu", i);
        cr_expect_null(strstr(r.err, "context"), "EOS ends the answer, not the context: %s", r.err);
        result_free(&r);
    }
}

/* With a small vocabulary the template alone takes most of a 128-token
 * context: training cut the answers at max_seq_len, and generation stops at
 * the same place; the cut answer comes back as it was trained, and stderr
 * says that the context, not the model, ended it. */
Test(generate, says_when_the_context_ends_the_text) {
    const char *spec = overfit(320, 128);
    result r = generate(spec, instructions[0][0]);
    cr_expect_eq(r.status, 0, "%s", r.err);
    size_t n = strlen(r.out);
    cr_assert_gt(n, 1, "%s", r.err);
    cr_expect_lt(n - 1, strlen(instructions[0][1]), "the answer is cut: %s", r.out);
    cr_expect_eq(strncmp(r.out, instructions[0][1], n - 1), 0, "a prefix of the answer: %s", r.out);
    cr_expect_not_null(strstr(r.err, "stopped at the model's context of 128 tokens ("), "%s",
                       r.err);
    cr_expect_not_null(strstr(r.err, "before EOS"), "%s", r.err);
    result_free(&r);
    /* --max-tokens ending it first is no news */
    r = RUN(test_store_arg, "model", "generate", (char *)spec, (char *)instructions[0][0], "--chat",
            "--temperature", "0", "--max-tokens", "2");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.err, "");
    result_free(&r);
}
