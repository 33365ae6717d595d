/* test_bert.c - the BERT encoder (steps/embed/bert.c) against an independent
 * NumPy reference (tests/ref/bert_ref.py, float64, each text run alone and
 * unpadded) on a tiny random model that tests/ref/make_tiny_bert.py writes;
 * and bert_load's refusals of broken models, which the same script writes.
 * The token ids come from the C tokenizer (checked on its own by
 * test_wordpiece), so only the encoder is compared. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert.h"
#include "require.h"

#define PYTHON "/usr/bin/python3"
#define MAKE SLUICE_SOURCE_DIR "/tests/ref/make_tiny_bert.py"
#define REF SLUICE_SOURCE_DIR "/tests/ref/bert_ref.py"
#define TOL 1e-4
#define HIDDEN 32

static char dir[64];

static void remove_dir(void) {
    if (!dir[0])
        return;
    const char *files[] = {"config.json", "model.safetensors", "vocab.txt",
                           "tokenizer_config.json"};
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    dir[0] = '\0';
}

static void need_numpy(void) {
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import numpy' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED(
            "skipped: the reference needs %s with numpy (Debian's python3-numpy)\n", PYTHON);
}

/* Writes the tiny model into a new temporary dir; args go to the script. */
static void make_model(const char *args) {
    need_numpy();
    strcpy(dir, "/tmp/sluice_bert_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' %s", PYTHON, MAKE, dir, args);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

TestSuite(bert, .fini = remove_dir);

/* ---- against the reference ---------------------------------------------- */

#define NTEXTS 33

static const char *const words[] = {
    "the",      "quick",      "brown", "fox",      "jumps",  "over",      "the",        "lazy",
    "dog",      ",",          "hello", "world",    "!",      "embedding", "tokenizers", "sluice",
    "pipeline", "unplayable", "Zebra", "日本",     "café",   "number",    "42",         "?",
    "(",        "kind",       ")",     "searched", "vector", "models"};

/* 33 texts of 0 to ~90 words: the empty text, short ones, padding within
 * each batch and one longer than the model's 64 positions. */
static char *texts[NTEXTS];
static size_t lens[NTEXTS];

static void make_texts(void) {
    const size_t nw = sizeof(words) / sizeof(words[0]);
    for (size_t i = 0; i < NTEXTS; i++) {
        size_t count = i == 7 ? 90 : (i * 7) % 23;
        char *s = malloc(count * 16 + 1);
        cr_assert_not_null(s);
        size_t k = 0;
        for (size_t w = 0; w < count; w++)
            k += (size_t)sprintf(s + k, "%s%s", w ? " " : "", words[(i * 5 + w * 3) % nw]);
        s[k] = '\0';
        texts[i] = s;
        lens[i] = k;
    }
}

static void free_texts(void) {
    for (size_t i = 0; i < NTEXTS; i++)
        free(texts[i]);
}

/* Runs bert_ref.py on the batch's unpadded rows; rows x HIDDEN values. */
static double *run_ref(const wordpiece_batch *b) {
    char in[] = "/tmp/sluice_bert_in_XXXXXX";
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    for (size_t r = 0; r < b->rows; r++) {
        fputc('[', f);
        for (size_t t = 0; t < b->lengths[r]; t++)
            fprintf(f, "%s%lld", t ? ", " : "", (long long)b->input_ids[r * b->width + t]);
        fputs("]\n", f);
    }
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' < '%s'", PYTHON, REF, dir, in);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    double *out = calloc(b->rows * HIDDEN, sizeof(double));
    cr_assert_not_null(out);
    char *line = NULL;
    size_t cap = 0, got = 0;
    while (getline(&line, &cap, p) > 0 && got < b->rows) {
        size_t j = 0;
        for (char *s = line; *s && j < HIDDEN;) {
            if (*s == '-' || (*s >= '0' && *s <= '9')) {
                out[got * HIDDEN + j++] = strtod(s, &s);
                continue;
            }
            s++;
        }
        cr_assert_eq(j, HIDDEN, "line %zu of the reference has %zu values", got, j);
        got++;
    }
    free(line);
    int status = pclose(p);
    unlink(in);
    cr_assert_eq(status, 0, "%s failed with status %d", cmd, status);
    cr_assert_eq(got, b->rows);
    return out;
}

static double compare(const char *what, const float *c, const double *ref, size_t rows) {
    double max = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < HIDDEN; j++) {
            double e = fabs((double)c[r * HIDDEN + j] - ref[r * HIDDEN + j]);
            cr_assert(e <= TOL, "%s: text %zu, component %zu: C %.8f, reference %.8f", what, r, j,
                      (double)c[r * HIDDEN + j], ref[r * HIDDEN + j]);
            if (e > max)
                max = e;
        }
    return max;
}

static void check_against_ref(const char *args, size_t max_length) {
    make_model(args);
    make_texts();
    bert_model *m = NULL;
    char err[512];
    int rc = bert_load(dir, &m, err, sizeof(err));
    cr_assert_eq(rc, 0, "bert_load: %s", err);
    cr_assert_eq(bert_model_config(m)->hidden_size, HIDDEN);

    /* The ids the C tokenizer gives, the same whatever the batching. */
    wordpiece_encode_opts opts = {max_length ? max_length : 64, 0};
    wordpiece_batch *b = NULL;
    cr_assert_eq(wordpiece_batch_new(bert_model_tokenizer(m), (const char *const *)texts, lens,
                                     NTEXTS, &opts, &b),
                 0);
    int truncated = 0, padded = 0;
    for (size_t r = 0; r < b->rows; r++) {
        truncated |= b->lengths[r] == opts.max_length;
        padded |= b->lengths[r] < b->width;
    }
    cr_assert(truncated && padded, "the texts should exercise truncation and padding");
    double *ref = run_ref(b);

    float all[NTEXTS * HIDDEN], one[NTEXTS * HIDDEN];
    rc = bert_embed(m, (const char *const *)texts, lens, NTEXTS, max_length, all, err, sizeof(err));
    cr_assert_eq(rc, 0, "bert_embed: %s", err);
    for (size_t i = 0; i < NTEXTS; i++) {
        const char *t = texts[i];
        rc = bert_embed(m, &t, &lens[i], 1, max_length, one + i * HIDDEN, err, sizeof(err));
        cr_assert_eq(rc, 0, "bert_embed: %s", err);
    }
    double e33 = compare("batch of 33", all, ref, NTEXTS);
    double e1 = compare("one by one", one, ref, NTEXTS);
    for (size_t r = 0; r < NTEXTS; r++) {
        double norm = 0;
        for (size_t j = 0; j < HIDDEN; j++)
            norm += (double)all[r * HIDDEN + j] * all[r * HIDDEN + j];
        cr_assert(fabs(norm - 1) < 1e-5, "text %zu: norm^2 %g", r, norm);
    }
    fprintf(stderr, "bert %s max_length %zu: max abs error %.3g (batch of 33), %.3g (one by one)\n",
            args, opts.max_length, e33, e1);

    free(ref);
    wordpiece_batch_free(b);
    bert_free(m);
    free_texts();
}

Test(bert, matches_reference) { check_against_ref("", 0); }

Test(bert, matches_reference_prefixed_truncated) { check_against_ref("--prefix", 8); }

Test(bert, zero_texts_and_bad_max_length) {
    make_model("");
    bert_model *m = NULL;
    char err[512];
    cr_assert_eq(bert_load(dir, &m, err, sizeof(err)), 0, "%s", err);
    float out[HIDDEN];
    cr_assert_eq(bert_embed(m, NULL, NULL, 0, 0, out, err, sizeof(err)), 0);
    const char *t = "hello";
    size_t len = 5;
    cr_assert_eq(bert_embed(m, &t, &len, 1, 65, out, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "max_length 65"), "%s", err);
    cr_assert_eq(bert_embed(m, &t, &len, 1, 1, out, err, sizeof(err)), -EINVAL);
    bert_free(m);
}

/* ---- refusals ------------------------------------------------------------ */

static void refused(const char *variant, const char *want1, const char *want2) {
    char args[64];
    snprintf(args, sizeof(args), "--variant %s", variant);
    make_model(args);
    bert_model *m = (bert_model *)1;
    char err[512];
    int rc = bert_load(dir, &m, err, sizeof(err));
    cr_assert_eq(rc, -EINVAL, "%s: rc %d", variant, rc);
    cr_assert_null(m);
    cr_assert(strstr(err, want1), "%s: '%s' lacks '%s'", variant, err, want1);
    cr_assert(strstr(err, want2), "%s: '%s' lacks '%s'", variant, err, want2);
}

Test(bert, refuses_missing_tensor) {
    refused("missing", "missing tensor 'encoder.layer.1.attention.self.key.weight'",
            "model.safetensors");
}

Test(bert, refuses_wrong_shape) {
    refused("shape", "'encoder.layer.0.output.dense.weight' has shape [32, 63]",
            "expected [32, 64]");
}

Test(bert, refuses_wrong_dtype) {
    refused("dtype", "'embeddings.LayerNorm.weight' is F16", "only F32");
}

Test(bert, refuses_other_activation) { refused("act", "hidden_act is 'relu'", "config.json"); }

Test(bert, refuses_missing_config_key) {
    refused("noconfig", "missing num_attention_heads", "config.json");
}

Test(bert, refuses_heads_not_dividing_hidden) { refused("heads", "not a multiple", "5"); }

/* A NaN weight would turn every embedding to NaN (and exp's float-to-int
 * conversion of it is undefined): refused at load, naming the tensor. */
Test(bert, refuses_non_finite_weight) {
    refused("nan", "'encoder.layer.1.output.dense.weight' holds a non-finite value", "at [3, 5]");
}

/* Finite weights whose attention scores overflow: the exp kernel meets NaN
 * (its float-to-int conversion was undefined, which UBSan reports under
 * dev-asan) and the output is refused instead of stored. */
Test(bert, weights_that_overflow_give_an_error_not_nan_vectors) {
    make_model("--variant huge");
    bert_model *m = NULL;
    char err[512];
    cr_assert_eq(bert_load(dir, &m, err, sizeof(err)), 0, "%s", err);
    const char *texts[] = {"the quick brown fox", "hello world"};
    size_t lens[] = {19, 11};
    float out[2 * HIDDEN];
    cr_expect_eq(bert_embed(m, texts, lens, 2, 0, out, err, sizeof(err)), -ERANGE);
    cr_expect(strstr(err, "text 0: the model's output is not finite"), "%s", err);
    bert_free(m);
}

Test(bert, refuses_missing_folder) {
    bert_model *m = NULL;
    char err[512];
    int rc = bert_load("/nonexistent/sluice-bert", &m, err, sizeof(err));
    cr_assert_eq(rc, -ENOENT, "rc %d: %s", rc, err);
    cr_assert(strstr(err, "/nonexistent/sluice-bert/config.json"), "%s", err);
    cr_assert_null(m);
}
