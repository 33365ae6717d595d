/* The train step's data side (steps/train): datasets in the Handbook's
 * layout, an artifact's and JSON Lines, the Alpaca template and loss masks
 * through a byte-level tokenizer, TRL's DPO truncation, the data order and
 * batches with resuming, and the Handbook's own datasets end to end. */
#include "batcher.h"
#include "dataset.h"
#include "examples.h"
#include "train_tests.h"

/* The Handbook's template, spelled out here independently of
 * TRAIN_ALPACA_PROMPT. */
#define ALPACA_HEAD                                                                                \
    "Below is an instruction that describes a task. Write a response that appropriately "          \
    "completes the request.\n\n### Instruction:\n"
#define ALPACA_MID "\n\n### Response:\n"

static const train_tokenizer bytes_tok = {.encode = byte_encode, .bos_id = -1, .eos_id = BYTE_EOS};

static dataset *load(const char *text, dataset_kind kind, const char *split) {
    char *path = write_temp(text), err[512];
    dataset *d;
    int rc = dataset_load(path, kind, split, &d, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    unlink(path);
    free(path);
    return d;
}

/* The error dataset_load gives for text (which must fail), path replaced
 * by FILE. */
static char *load_error(const char *text, dataset_kind kind, const char *split) {
    char *path = write_temp(text), err[512];
    dataset *d = NULL;
    int rc = dataset_load(path, kind, split, &d, err, sizeof(err));
    cr_assert_lt(rc, 0, "%s loaded", text);
    cr_assert_null(d);
    cr_assert(strstr(err, path) != NULL, "the error names the file: %s", err);
    unlink(path);
    free(path);
    return strdup(err);
}

/* ---- datasets ---- */

static const char handbook_layout[] =
    "{\n  \"id\": \"x\",\n  \"train\": {\n"
    "    \"articles\": {\"id\": \"a\", \"category\": \"articles\", \"samples\": [\n"
    "      {\"id\": \"1\", \"instruction\": \"I1\", \"answer\": \"A1\"},\n"
    "      {\"id\": \"2\", \"instruction\": \"I2\", \"answer\": \"A2\"}]},\n"
    "    \"posts\": {\"id\": \"b\", \"category\": \"posts\", \"samples\": [\n"
    "      {\"id\": \"3\", \"instruction\": \"I3\", \"answer\": \"A3\"}]}},\n"
    "  \"test\": {\"articles\": {\"samples\": [{\"instruction\": \"T1\", \"answer\": \"B1\"}]}},\n"
    "  \"test_split_size\": 0.1\n}\n";

Test(dataset, the_handbooks_layout_by_split_and_category) {
    dataset *d = load(handbook_layout, DATASET_INSTRUCTION, "train");
    cr_assert_eq(d->n, 3);
    cr_expect_str_eq(d->ex[0].a, "I1");
    cr_expect_str_eq(d->ex[1].b, "A2");
    cr_expect_str_eq(d->ex[2].a, "I3");
    cr_assert_eq(d->n_categories, 2);
    cr_expect_str_eq(d->categories[d->ex[0].category], "articles");
    cr_expect_str_eq(d->categories[d->ex[2].category], "posts");
    dataset_free(d);
    d = load(handbook_layout, DATASET_INSTRUCTION, "test");
    cr_assert_eq(d->n, 1);
    cr_expect_str_eq(d->ex[0].b, "B1");
    dataset_free(d);
}

Test(dataset, json_lines_with_splits_and_other_tools_field_names) {
    const char *jsonl = "{\"instruction\": \"q1\", \"answer\": \"a1\", \"category\": \"posts\"}\n"
                        "{\"instruction\": \"q2\", \"output\": \"a2\", \"split\": \"train\"}\n"
                        "{\"instruction\": \"q3\", \"answer\": \"a3\", \"split\": \"test\"}\n";
    dataset *d = load(jsonl, DATASET_INSTRUCTION, "train");
    cr_assert_eq(d->n, 2);
    cr_expect_str_eq(d->ex[1].b, "a2");
    cr_expect_str_eq(d->categories[d->ex[0].category], "posts");
    cr_expect_str_eq(d->categories[d->ex[1].category], "");
    dataset_free(d);
    d = load("{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n", DATASET_PREFERENCE,
             "train");
    cr_assert_eq(d->n, 1);
    cr_expect(strcmp(d->ex[0].a, "p") == 0 && strcmp(d->ex[0].b, "c") == 0 &&
              strcmp(d->ex[0].c, "r") == 0);
    dataset_free(d);
}

Test(dataset, text_from_chunks_and_from_an_artifact_file) {
    dataset *d = load("{\"id\": \"1\", \"content\": \"first chunk\", \"category\": \"articles\"}\n"
                      "{\"id\": \"2\", \"content\": \"second\"}\n",
                      DATASET_TEXT, "train");
    cr_assert_eq(d->n, 2);
    cr_expect_str_eq(d->ex[1].a, "second");
    dataset_free(d);
    d = load("{\"artifact_data\": [{\"content\": \"doc one\"}, {\"content\": \"doc two\"}]}",
             DATASET_TEXT, "train");
    cr_assert_eq(d->n, 2);
    cr_expect_str_eq(d->ex[0].a, "doc one");
    dataset_free(d);
}

Test(dataset, an_empty_dataset_is_an_error_naming_the_file) {
    char *e = load_error("", DATASET_INSTRUCTION, "train");
    cr_expect(strstr(e, "empty") != NULL, "%s", e);
    free(e);
    e = load_error("{\"train\": {\"articles\": {\"samples\": []}}}", DATASET_INSTRUCTION, "train");
    cr_expect(strstr(e, "no instruction examples in the train split") != NULL, "%s", e);
    free(e);
    e = load_error(handbook_layout, DATASET_INSTRUCTION, "validation");
    cr_expect(strstr(e, "train or test") != NULL, "%s", e);
    free(e);
}

Test(dataset, a_malformed_record_is_named_by_its_number) {
    char *e = load_error("{\"instruction\": \"q\", \"answer\": \"a\"}\n"
                         "{\"instruction\": \"q\", \"answer\": \"a\"}\n"
                         "{\"instruction\": \"q\"}\n",
                         DATASET_INSTRUCTION, "train");
    cr_expect(strstr(e, "record 3") && strstr(e, "\"answer\""), "%s", e);
    free(e);
    e = load_error("{\"instruction\": \"q\", \"answer\": \"a\"}\n{not json\n", DATASET_INSTRUCTION,
                   "train");
    cr_expect(strstr(e, "2") != NULL, "%s", e);
    free(e);
    e = load_error("{\"content\": {\"Title\": \"raw\"}}\n", DATASET_TEXT, "train");
    cr_expect(strstr(e, "record 1") && strstr(e, "not a string"), "%s", e);
    free(e);
    e = load_error("{\"train\": {\"articles\": {\"samples\": [{\"instruction\": \"q\", \"chosen\": "
                   "\"c\", \"rejected\": \"r\"}, {\"instruction\": \"q\", \"chosen\": \"c\"}]}}}",
                   DATASET_PREFERENCE, "train");
    cr_expect(strstr(e, "train/articles sample 2") && strstr(e, "\"rejected\""), "%s", e);
    free(e);
}

/* ---- templates and masks ---- */

static train_examples *build(const dataset *d, const train_tokenizer *tok, train_format f) {
    train_examples *e;
    char err[512];
    cr_assert_eq(train_examples_build(d, tok, &f, &e, err, sizeof(err)), 0, "%s", err);
    return e;
}

/* seq's ids as bytes (EOS as '$', BOS as '^') and its mask as '0'/'1'. */
static void spell(const train_seq *s, char *text, char *mask) {
    for (size_t i = 0; i < s->len; i++) {
        text[i] = s->ids[i] == BYTE_EOS ? '$' : s->ids[i] == BYTE_BOS ? '^' : (char)s->ids[i];
        mask[i] = s->mask[i] ? '1' : '0';
    }
    text[s->len] = mask[s->len] = '\0';
}

static void expect_mask(const char *mask, size_t zeros, size_t ones) {
    for (size_t i = 0; i < zeros + ones; i++)
        cr_expect_eq(mask[i], i < zeros ? '0' : '1', "mask[%zu]", i);
    cr_expect_eq(strlen(mask), zeros + ones);
}

Test(examples, sft_is_the_alpaca_template_with_eos_and_loss_on_the_response) {
    dataset *d =
        load("{\"instruction\": \"Say hi.\", \"answer\": \"Hi!\"}\n", DATASET_INSTRUCTION, "train");
    train_examples *e = build(d, &bytes_tok, (train_format){.response_only = 1});
    cr_assert_eq(e->n, 1);
    char text[1024], mask[1024];
    spell(&e->seq[0], text, mask);
    const char *prompt = ALPACA_HEAD "Say hi." ALPACA_MID;
    cr_expect_str_eq(text, ALPACA_HEAD "Say hi." ALPACA_MID "Hi!$");
    expect_mask(mask, strlen(prompt), 4);
    cr_expect_eq(e->seq[0].prompt_len, strlen(prompt));
    cr_expect_eq(e->targets, 4);
    train_examples_free(e);
    /* with BOS, and the Handbook's SFTTrainer way: every token trained */
    train_tokenizer tok = bytes_tok;
    tok.bos_id = BYTE_BOS;
    e = build(d, &tok, (train_format){.response_only = 0});
    spell(&e->seq[0], text, mask);
    cr_expect_str_eq(text, "^" ALPACA_HEAD "Say hi." ALPACA_MID "Hi!$");
    expect_mask(mask, 0, strlen(text));
    cr_expect_eq(e->targets, strlen(text) - 1, "the first token is never a target");
    train_examples_free(e);
    dataset_free(d);
}

Test(examples, over_long_examples_are_truncated_or_skipped_and_counted) {
    dataset *d = load("{\"instruction\": \"a\", \"answer\": \"0123456789\"}\n"
                      "{\"instruction\": \"b\", \"answer\": \"x\"}\n",
                      DATASET_INSTRUCTION, "train");
    size_t prompt = strlen(ALPACA_HEAD "a" ALPACA_MID), L = prompt + 5;
    train_examples *e = build(d, &bytes_tok, (train_format){.max_seq_len = L, .response_only = 1});
    cr_expect_eq(e->n, 2);
    cr_expect_eq(e->truncated, 1);
    cr_expect_eq(e->skipped, 0);
    cr_expect_eq(e->seq[0].len, L);
    cr_expect_eq(e->seq[0].ids[L - 1], '4', "the first max_seq_len tokens are kept");
    train_examples_free(e);
    e = build(d, &bytes_tok,
              (train_format){.max_seq_len = L, .overlong = TRAIN_SKIP, .response_only = 1});
    cr_expect_eq(e->n, 1);
    cr_expect_eq(e->skipped, 1);
    cr_expect_eq(e->source[0], 1, "the second example is the one kept");
    train_examples_free(e);
    /* a prompt that fills the whole length leaves nothing to learn */
    train_format f = {.max_seq_len = prompt, .response_only = 1};
    char err[512];
    cr_expect_eq(train_examples_build(d, &bytes_tok, &f, &e, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "2 of 2 left out") != NULL, "%s", err);
    dataset_free(d);
}

Test(examples, dpo_pairs_share_the_prompt_and_are_cut_as_trl_did) {
    dataset *d = load("{\"instruction\": \"Q\", \"chosen\": \"good answer\", \"rejected\": "
                      "\"bad\"}\n",
                      DATASET_PREFERENCE, "train");
    train_examples *e = build(d, &bytes_tok, (train_format){0});
    cr_assert_eq(e->n_seq, 2);
    char text[1024], mask[1024];
    const char *prompt = ALPACA_HEAD "Q" ALPACA_MID;
    spell(&e->seq[0], text, mask);
    cr_expect_str_eq(text, ALPACA_HEAD "Q" ALPACA_MID "good answer$");
    expect_mask(mask, strlen(prompt), 12);
    spell(&e->seq[1], text, mask);
    cr_expect_str_eq(text, ALPACA_HEAD "Q" ALPACA_MID "bad$");
    expect_mask(mask, strlen(prompt), 4);
    train_examples_free(e);
    /* prompt + longer answer (12) > L: the prompt keeps its last P tokens
     * ("keep_end"), then both answers their first L - P */
    size_t P = 10, L = 16;
    e = build(d, &bytes_tok, (train_format){.max_seq_len = L, .max_prompt_len = P});
    cr_expect_eq(e->truncated, 1);
    spell(&e->seq[0], text, mask);
    cr_expect_str_eq(text, "Response:\n" /* the prompt's last 10 bytes */ "good a");
    expect_mask(mask, P, L - P);
    spell(&e->seq[1], text, mask);
    cr_expect_str_eq(text, "Response:\nbad$");
    expect_mask(mask, P, 4);
    train_examples_free(e);
    dataset_free(d);
}

Test(examples, pretraining_text_is_bos_text_eos_all_targets) {
    dataset *d = load("{\"content\": \"abc\"}\n", DATASET_TEXT, "train");
    train_tokenizer tok = bytes_tok;
    tok.bos_id = BYTE_BOS;
    train_examples *e = build(d, &tok, (train_format){0});
    char text[64], mask[64];
    spell(&e->seq[0], text, mask);
    cr_expect_str_eq(text, "^abc$");
    cr_expect_str_eq(mask, "11111");
    train_examples_free(e);
    dataset_free(d);
}

/* ---- order and batches ---- */

/* n text examples "e<i>" padded to lengths 3 + i % 4 (EOS included). */
static train_examples *numbered(size_t n) {
    char *text = malloc(64 * n + 1), *at = text;
    for (size_t i = 0; i < n; i++)
        at += sprintf(at, "{\"content\": \"%c%.*s\"}\n", (char)('A' + i % 26), (int)(1 + i % 4),
                      "zzzz");
    dataset *d = load(text, DATASET_TEXT, "train");
    free(text);
    train_examples *e = build(d, &bytes_tok, (train_format){0});
    dataset_free(d);
    return e;
}

static batcher *new_batcher(const train_examples *e, batcher_opts o) {
    batcher *b;
    char err[256];
    cr_assert_eq(batcher_new(e, &o, &b, err, sizeof(err)), 0, "%s", err);
    return b;
}

Test(batcher, shuffles_are_permutations_fixed_by_seed_and_epoch) {
    size_t a[50], b[50], c[50], d[50];
    train_shuffle(a, 50, 42, 0);
    train_shuffle(b, 50, 42, 0);
    train_shuffle(c, 50, 42, 1);
    train_shuffle(d, 50, 43, 0);
    cr_expect(memcmp(a, b, sizeof(a)) == 0);
    cr_expect(memcmp(a, c, sizeof(a)) != 0, "each epoch its own order");
    cr_expect(memcmp(a, d, sizeof(a)) != 0, "each seed its own order");
    int seen[50] = {0};
    for (int i = 0; i < 50; i++)
        seen[a[i]]++;
    for (int i = 0; i < 50; i++)
        cr_expect_eq(seen[i], 1);
}

Test(batcher, an_epoch_of_padded_rows_sees_every_example_once) {
    train_examples *e = numbered(10);
    batcher *b =
        new_batcher(e, (batcher_opts){.B = 4, .T = 8, .shuffle = 1, .pad_id = 0, .seed = 3});
    cr_expect_eq(batcher_steps_per_epoch(b), 3);
    int seen[26] = {0};
    for (int step = 0; step < 3; step++) {
        const train_batch *t = batcher_next(b);
        cr_expect_eq(t->rows, step < 2 ? 4 : 2);
        cr_expect_eq(t->epoch_end, step == 2);
        for (size_t r = 0; r < t->B; r++) {
            const int32_t *ids = t->ids + r * t->T;
            const uint8_t *mask = t->mask + r * t->T;
            cr_expect_eq(mask[0], 0);
            if (r >= t->rows) {
                cr_expect_eq(t->len[r], 0);
                continue;
            }
            seen[ids[0] - 'A']++;
            cr_expect_eq(ids[t->len[r] - 1], BYTE_EOS);
            for (size_t k = t->len[r]; k < t->T; k++)
                cr_expect(ids[k] == 0 && mask[k] == 0, "padding at %zu", k);
        }
    }
    for (int i = 0; i < 10; i++)
        cr_expect_eq(seen[i], 1, "example %d", i);
    cr_expect_eq(batcher_next(b)->pos.epoch, 1);
    batcher_free(b);
    train_examples_free(e);
}

/* Batches from a batcher that went on, and from one resumed at its
 * position after `first` batches, are the same. */
static void check_resume(batcher_opts o, size_t first, size_t then) {
    train_examples *e = numbered(11);
    batcher *a = new_batcher(e, o), *b = new_batcher(e, o);
    data_pos pos = {0};
    for (size_t i = 0; i < first; i++)
        pos = batcher_next(a)->pos;
    char err[256];
    cr_assert_eq(batcher_seek(b, pos, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < then; i++) {
        const train_batch *x = batcher_next(a), *y = batcher_next(b);
        size_t cells = x->n_rows * x->T;
        cr_assert(memcmp(x->ids, y->ids, cells * sizeof(int32_t)) == 0 &&
                      memcmp(x->mask, y->mask, cells) == 0,
                  "batch %zu after resuming at %zu", i, first);
    }
    batcher_free(a);
    batcher_free(b);
    train_examples_free(e);
}

Test(batcher, resuming_from_a_position_gives_the_same_batches) {
    check_resume((batcher_opts){.B = 3, .T = 8, .shuffle = 1, .seed = 9}, 2, 9);
    check_resume((batcher_opts){.B = 3, .T = 8, .shuffle = 1, .seed = 9}, 4,
                 9); /* at an epoch end */
    check_resume((batcher_opts){.B = 2, .T = 5, .packed = 1, .shuffle = 1, .seed = 9}, 3, 12);
}

Test(batcher, packed_rows_are_the_epochs_examples_end_to_end) {
    train_examples *e = numbered(7);
    batcher *b = new_batcher(
        e, (batcher_opts){.B = 2, .T = 6, .packed = 1, .shuffle = 1, .pad_id = -1, .seed = 1});
    int32_t want[256], got[256];
    size_t nw = 0, ng = 0;
    const size_t *order = batcher_order(b, 0);
    for (size_t i = 0; i < e->n; i++)
        for (size_t k = 0; k < e->seq[order[i]].len; k++)
            want[nw++] = e->seq[order[i]].ids[k];
    size_t steps = batcher_steps_per_epoch(b);
    cr_expect_eq(steps, ((nw + 5) / 6 + 1) / 2);
    for (size_t s = 0; s < steps; s++) {
        const train_batch *t = batcher_next(b);
        for (size_t r = 0; r < t->rows; r++)
            for (size_t k = 0; k < t->len[r]; k++)
                got[ng++] = t->ids[r * t->T + k];
        cr_expect_eq(t->epoch_end, s + 1 == steps);
    }
    cr_expect_eq(ng, nw);
    cr_expect(memcmp(got, want, nw * sizeof(int32_t)) == 0, "no token lost or reordered");
    batcher_free(b);
    train_examples_free(e);
}

Test(batcher, targets_are_the_next_masked_token_or_minus_one) {
    dataset *d =
        load("{\"instruction\": \"Q\", \"answer\": \"ab\"}\n", DATASET_INSTRUCTION, "train");
    train_examples *e = build(d, &bytes_tok, (train_format){.response_only = 1});
    size_t np = e->seq[0].prompt_len, T = np + 5;
    batcher *b = new_batcher(e, (batcher_opts){.B = 2, .T = T, .pad_id = 0});
    const train_batch *t = batcher_next(b);
    int32_t targets[2 * 64 + 256];
    cr_assert_leq(2 * T, sizeof(targets) / sizeof(targets[0]));
    train_batch_targets(t, targets);
    for (size_t k = 0; k < 2 * T; k++) {
        /* row 0: the prompt's last token predicts 'a', then 'b', then EOS */
        int32_t want = k == np - 1 ? 'a' : k == np ? 'b' : k == np + 1 ? BYTE_EOS : -1;
        cr_expect_eq(targets[k], want, "position %zu", k);
    }
    batcher_free(b);
    train_examples_free(e);
    dataset_free(d);
}

Test(batcher, pairs_put_chosen_then_rejected_rows) {
    dataset *d = load("{\"instruction\": \"1\", \"chosen\": \"c1\", \"rejected\": \"r1\"}\n"
                      "{\"instruction\": \"2\", \"chosen\": \"c2\", \"rejected\": \"r2\"}\n",
                      DATASET_PREFERENCE, "train");
    train_examples *e = build(d, &bytes_tok, (train_format){0});
    size_t T = e->seq[0].len + 2;
    batcher *b = new_batcher(e, (batcher_opts){.B = 2, .T = T});
    const train_batch *t = batcher_next(b);
    cr_assert_eq(t->n_rows, 4);
    size_t p = e->seq[0].prompt_len;
    const char *want[4] = {"c1", "c2", "r1", "r2"};
    for (size_t r = 0; r < 4; r++)
        cr_expect(t->ids[r * T + p] == want[r][0] && t->ids[r * T + p + 1] == want[r][1], "row %zu",
                  r);
    char err[256];
    batcher *bad;
    cr_expect_eq(
        batcher_new(e, &(batcher_opts){.B = 2, .T = T, .packed = 1}, &bad, err, sizeof(err)),
        -EINVAL);
    cr_expect_eq(batcher_new(e, &(batcher_opts){.B = 2, .T = T - 3}, &bad, err, sizeof(err)),
                 -EINVAL);
    cr_expect(strstr(err, "example 1") != NULL, "%s", err);
    cr_expect_eq(batcher_seek(b, (data_pos){.epoch = 0, .index = 5}, err, sizeof(err)), -EINVAL);
    batcher_free(b);
    train_examples_free(e);
    dataset_free(d);
}

/* ---- the Handbook's own datasets ---- */

static const char *handbook_dir(void) {
    const char *env = getenv("SLUICE_HANDBOOK");
    return env && *env ? env : SLUICE_SOURCE_DIR "/../shared/handbook";
}

static dataset *handbook(const char *file, dataset_kind kind, const char *split) {
    char path[1024], err[512];
    snprintf(path, sizeof(path), "%s/artifacts/%s", handbook_dir(), file);
    if (access(path, R_OK) != 0)
        SKIP_UNLESS_REQUIRED(
            "the Handbook's data is not at ../shared/handbook (or $SLUICE_HANDBOOK)");
    dataset *d;
    cr_assert_eq(dataset_load(path, kind, split, &d, err, sizeof(err)), 0, "%s", err);
    return d;
}

static size_t in_category(const dataset *d, const char *name) {
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += strcmp(d->categories[d->ex[i].category], name) == 0;
    return n;
}

/* Every example renders to the template's text and is masked on exactly
 * its response and EOS. */
static void check_rendering(const dataset *d) {
    train_examples *e = build(d, &bytes_tok, (train_format){.response_only = 1});
    cr_assert_eq(e->n, d->n);
    cr_expect_eq(e->skipped + e->truncated, 0);
    for (size_t i = 0; i < e->n; i++) {
        const dataset_example *x = &d->ex[e->source[i]];
        char *prompt = train_alpaca_prompt(x->a);
        size_t np = strlen(prompt);
        for (size_t s = 0; s < e->n_seq; s++) {
            const train_seq *q = &e->seq[i * e->n_seq + s];
            const char *resp = s ? x->c : x->b;
            size_t nr = strlen(resp);
            cr_assert_eq(q->len, np + nr + 1, "example %zu", i);
            cr_assert_eq(q->prompt_len, np);
            for (size_t k = 0; k < q->len; k++) {
                int32_t want = k < np        ? (unsigned char)prompt[k]
                               : k < np + nr ? (unsigned char)resp[k - np]
                                             : BYTE_EOS;
                cr_assert_eq(q->ids[k], want, "example %zu token %zu", i, k);
                cr_assert_eq(q->mask[k], k >= np, "example %zu mask %zu", i, k);
            }
        }
        free(prompt);
    }
    train_examples_free(e);
}

Test(handbook, instruction_dataset_2250_train_250_test_all_rendered_and_masked) {
    dataset *d = handbook("instruct_datasets.json", DATASET_INSTRUCTION, "train");
    cr_expect_eq(d->n, 2250);
    cr_expect_eq(d->n_categories, 1);
    cr_expect_eq(in_category(d, "articles"), 2250);
    check_rendering(d);
    dataset_free(d);
    d = handbook("instruct_datasets.json", DATASET_INSTRUCTION, "test");
    cr_expect_eq(in_category(d, "articles"), 250);
    check_rendering(d);
    dataset_free(d);
}

Test(handbook, preference_dataset_381_train_21_test_all_rendered_and_masked) {
    dataset *d = handbook("preference_datasets.json", DATASET_PREFERENCE, "train");
    cr_expect_eq(in_category(d, "articles"), 381);
    cr_expect_eq(d->n, 381);
    check_rendering(d);
    dataset_free(d);
    d = handbook("preference_datasets.json", DATASET_PREFERENCE, "test");
    cr_expect_eq(in_category(d, "articles"), 21);
    check_rendering(d);
    dataset_free(d);
}

Test(handbook, cleaned_documents_as_pretraining_text) {
    dataset *d = handbook("cleaned_documents.json", DATASET_TEXT, "train");
    cr_expect_eq(d->n, 76);
    train_examples *e = build(d, &bytes_tok, (train_format){0});
    cr_expect_eq(e->n, 76);
    cr_expect_eq(e->targets, e->tokens - 76);
    train_examples_free(e);
    dataset_free(d);
}
