/* test_tokenizer.c - byte-level BPE (steps/tokenizer) against an
 * independent Python implementation (tests/ref/bpe_ref.py) on the
 * Handbook's articles, for a tokenizer trained here and for GPT-2-, Llama-3-
 * and Qwen2-style files built from it; round trips; added tokens; refusals. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "require.h"
#include "tokenizer.h"

/* ../shared/handbook beside the checkout, or beside the folder of
 * worktrees that holds it. */
static const char *handbook(void) {
    static const char *const dirs[] = {SLUICE_SOURCE_DIR "/../shared/handbook",
                                       SLUICE_SOURCE_DIR "/../../shared/handbook"};
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/artifacts/raw_documents.json", dirs[i]);
        if (access(path, R_OK) == 0)
            return dirs[i];
    }
    return NULL;
}
#define PYTHON "/usr/bin/python3"
#define REF SLUICE_SOURCE_DIR "/tests/ref/bpe_ref.py"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, k;
    char *p = malloc(cap);
    while ((k = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

static void write_all(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- the Handbook's articles ---- */

typedef struct texts {
    char **v;
    size_t n;
} texts;

static void texts_add(texts *t, const char *s, size_t len) {
    t->v = realloc(t->v, (t->n + 1) * sizeof(*t->v));
    t->v[t->n] = malloc(len + 1);
    memcpy(t->v[t->n], s, len);
    t->v[t->n++][len] = '\0';
}

static void texts_free(texts *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
}

static void require_handbook(void) {
    if (!handbook())
        SKIP_UNLESS_REQUIRED("the Handbook's data is not at ../shared/handbook");
}

static void require_reference(void) {
    if (system(PYTHON " -c 'import regex' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED(PYTHON " with the regex module is needed for the BPE reference");
}

/* Every article: the cleaned documents' content, and the raw documents'
 * string fields (titles, markdown with newlines, links and emoji). */
static texts handbook_texts(void) {
    texts t = {0};
    const char *files[] = {"cleaned_documents.json", "raw_documents.json"};
    for (int f = 0; f < 2; f++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/artifacts/%s", handbook(), files[f]);
        size_t len;
        char *json = read_all(path, &len);
        bson_error_t err;
        bson_t *doc = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &err);
        cr_assert_not_null(doc, "%s: %s", path, err.message);
        bson_iter_t it, a, d;
        cr_assert(bson_iter_init_find(&it, doc, "artifact_data") && bson_iter_recurse(&it, &a));
        while (bson_iter_next(&a)) {
            cr_assert(bson_iter_recurse(&a, &d) && bson_iter_find(&d, "content"));
            uint32_t n;
            if (BSON_ITER_HOLDS_UTF8(&d)) {
                const char *s = bson_iter_utf8(&d, &n);
                texts_add(&t, s, n);
            } else if (BSON_ITER_HOLDS_DOCUMENT(&d)) {
                bson_iter_t c;
                bson_iter_recurse(&d, &c);
                while (bson_iter_next(&c))
                    if (BSON_ITER_HOLDS_UTF8(&c)) {
                        const char *s = bson_iter_utf8(&c, &n);
                        texts_add(&t, s, n);
                    }
            }
        }
        bson_destroy(doc);
        free(json);
    }
    cr_assert_gt(t.n, 150, "the Handbook's 76 articles, twice");
    return t;
}

/* Each text of a between before and after. */
static texts wrapped(const texts *a, const char *before, const char *after) {
    texts t = {0};
    for (size_t i = 0; i < a->n; i++) {
        size_t len = strlen(before) + strlen(a->v[i]) + strlen(after) + 1;
        char *s = malloc(len);
        snprintf(s, len, "%s%s%s", before, a->v[i], after);
        texts_add(&t, s, len - 1);
        free(s);
    }
    return t;
}

/* A tokenizer.json trained here on every article. */
static char *train(const texts *t, size_t vocab_size) {
    const char *specials[] = {"<|endoftext|>"};
    tok_trainer *tr;
    char err[256];
    cr_assert_eq(tok_trainer_new(vocab_size, specials, 1, 0, &tr, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < t->n; i++)
        cr_assert_eq(tok_trainer_feed(tr, t->v[i], strlen(t->v[i]), err, sizeof(err)), 0, "%s",
                     err);
    char *json;
    size_t len;
    cr_assert_eq(tok_trainer_json(tr, &json, &len, err, sizeof(err)), 0, "%s", err);
    tok_trainer_free(tr);
    return json;
}

static tok_tokenizer *load(const char *json) {
    tok_tokenizer *tok;
    char err[512];
    cr_assert_eq(tok_load_json(json, strlen(json), "test.json", &tok, err, sizeof(err)), 0, "%s",
                 err);
    return tok;
}

/* The trained file with everything before "model" replaced by head, and
 * ignore_merges set as asked. */
static char *variant(const char *trained, const char *head, int ignore_merges) {
    const char *model = strstr(trained, "\"model\":");
    cr_assert_not_null(model);
    size_t n = strlen(head) + strlen(model) + 8;
    char *out = malloc(n);
    snprintf(out, n, "%s%s", head, model);
    if (ignore_merges) {
        char *im = strstr(out, "\"ignore_merges\":false");
        cr_assert_not_null(im);
        memcpy(im, "\"ignore_merges\":true ", strlen("\"ignore_merges\":true "));
    }
    return out;
}

/* The texts as {"texts": [...]}, which the references read. */
static void write_texts(const char *path, const texts *t) {
    bson_t arr, wrap = BSON_INITIALIZER;
    bson_append_array_begin(&wrap, "texts", -1, &arr);
    for (size_t i = 0; i < t->n; i++) {
        char key[24];
        snprintf(key, sizeof(key), "%zu", i);
        bson_append_utf8(&arr, key, -1, t->v[i], -1);
    }
    bson_append_array_end(&wrap, &arr);
    size_t jlen;
    char *j = bson_as_relaxed_extended_json(&wrap, &jlen);
    write_all(path, j, jlen);
    bson_free(j);
    bson_destroy(&wrap);
}

/* Encodes every text with the C library and the Python reference and
 * counts the texts whose ids differ (the first few are reported). */
static void expect_same_as_reference(const char *json, const texts *t, int add_special) {
    char dir[] = "/tmp/sluice-tok-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char tok_path[64], texts_path[64], out_path[64];
    snprintf(tok_path, sizeof(tok_path), "%s/tokenizer.json", dir);
    snprintf(texts_path, sizeof(texts_path), "%s/texts.json", dir);
    snprintf(out_path, sizeof(out_path), "%s/ids.txt", dir);
    write_all(tok_path, json, strlen(json));
    write_texts(texts_path, t);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), PYTHON " %s %s %s %s > %s", REF, tok_path, texts_path,
             add_special ? "--add-special" : "", out_path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *ref = read_all(out_path, NULL);
    tok_tokenizer *tok = load(json);
    tok_ids ids = {0};
    char err[256];
    char *line = ref;
    size_t differ = 0, total_ids = 0;
    for (size_t i = 0; i < t->n; i++) {
        char *end = strchr(line, '\n');
        cr_assert_not_null(end, "the reference printed %zu lines, not %zu", i, t->n);
        *end = '\0';
        ids.n = 0;
        cr_assert_eq(tok_encode(tok, t->v[i], strlen(t->v[i]), add_special, &ids, err, sizeof(err)),
                     0, "%s", err);
        total_ids += ids.n;
        size_t k = 0;
        int same = 1;
        for (char *p = line; *p;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            if (k >= ids.n || ids.ids[k] != v)
                same = 0;
            k++;
            p = q;
        }
        if (k != ids.n)
            same = 0;
        if (!same && differ++ < 3)
            cr_log_error("text %zu (\"%.60s...\"): %zu ids, the reference %zu", i, t->v[i], ids.n,
                         k);
        line = end + 1;
    }
    cr_expect_eq(differ, 0, "%zu of %zu texts encode differently from the reference", differ, t->n);
    cr_expect_gt(total_ids, t->n, "not a comparison of empty lists");
    tok_ids_free(&ids);
    tok_free(tok);
    free(ref);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static char *trained_cache;
static texts articles;

/* The articles and a 2,000-token vocabulary trained on them, once per
 * test (criterion runs each in its own process). */
static void setup_trained(void) {
    require_handbook();
    articles = handbook_texts();
    trained_cache = train(&articles, 2000);
}

static void teardown_trained(void) {
    free(trained_cache);
    texts_free(&articles);
}

Test(tokenizer, trained_file_matches_the_reference_on_every_article) {
    require_reference();
    setup_trained();
    expect_same_as_reference(trained_cache, &articles, 1);
    teardown_trained();
}

Test(tokenizer, trained_file_round_trips_every_article_byte_for_byte) {
    setup_trained();
    tok_tokenizer *tok = load(trained_cache);
    cr_expect_eq(tok_vocab_size(tok), 2000);
    tok_ids ids = {0};
    char err[256];
    size_t bytes = 0;
    for (size_t i = 0; i < articles.n; i++) {
        size_t len = strlen(articles.v[i]);
        ids.n = 0;
        cr_assert_eq(tok_encode(tok, articles.v[i], len, 1, &ids, err, sizeof(err)), 0, "%s", err);
        char *back;
        size_t back_len;
        cr_assert_eq(tok_decode(tok, ids.ids, ids.n, 0, &back, &back_len, err, sizeof(err)), 0);
        cr_expect(back_len == len && memcmp(back, articles.v[i], len) == 0,
                  "article %zu does not round-trip", i);
        cr_expect_lt(ids.n, len, "article %zu: merges make fewer tokens than bytes", i);
        bytes += len;
        free(back);
    }
    cr_expect_gt(bytes, 2000000);
    tok_ids_free(&ids);
    tok_free(tok);
    teardown_trained();
}

Test(tokenizer, training_is_deterministic_and_fills_the_vocabulary) {
    setup_trained();
    char *again = train(&articles, 2000);
    cr_expect_str_eq(again, trained_cache, "two trainings on the same corpus differ");
    tok_tokenizer *tok = load(trained_cache);
    cr_expect_eq(tok_token_id(tok, "<|endoftext|>"), 0, "special tokens come first");
    cr_expect(tok_is_special(tok, 0));
    /* the alphabet in code point order: '!' is the first, U+0100 (byte 0) after 'ÿ' */
    cr_expect_eq(tok_token_id(tok, "!"), 1);
    cr_expect_eq(tok_token_id(tok, "\xc4\x80"), 1 + 188);
    cr_expect_eq(tok_token_id(tok, "\xc4\xa0"), 1 + 188 + 32, "Ġ, the space");
    cr_expect_gt(tok_token_id(tok, "\xc4\xa0the"), 256, "\" the\" is merged");
    tok_free(tok);
    free(again);
    teardown_trained();
}

/* A corpus small enough to work out by hand: in "aaab", " aaab" and " ab"
 * aa occurs 4 times, ab 3, Ġa 2; merging aa leaves (aa,a) 2 and ab 3, so ab
 * comes next, then (aa,ab) twice: "aaab" is one token. */
Test(tokenizer, training_merges_the_most_frequent_pair_first) {
    tok_trainer *tr;
    char err[256];
    cr_assert_eq(tok_trainer_new(256 + 3, NULL, 0, 0, &tr, err, sizeof(err)), 0, "%s", err);
    const char *corpus = "aaab aaab ab";
    cr_assert_eq(tok_trainer_feed(tr, corpus, strlen(corpus), err, sizeof(err)), 0);
    char *json;
    size_t len;
    cr_assert_eq(tok_trainer_json(tr, &json, &len, err, sizeof(err)), 0);
    tok_trainer_free(tr);
    /* the words are "aaab", " aaab" and " ab" */
    cr_expect_not_null(strstr(json, "\"merges\":[\"a a\",\"a b\""), "%s", strstr(json, "merges"));
    tok_tokenizer *tok = load(json);
    tok_ids ids = {0};
    cr_assert_eq(tok_encode(tok, "aaab", 4, 0, &ids, err, sizeof(err)), 0);
    cr_expect_eq(ids.n, 1, "aaab is one token after three merges");
    tok_ids_free(&ids);
    tok_free(tok);
    free(json);
}

static const char LLAMA3_HEAD[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
    "{\"id\":2000,\"content\":\"<|begin_of_text|>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":2001,\"content\":\"<|end_of_text|>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":true},"
    "{\"id\":2002,\"content\":\"<|start_header_id|>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2003,\"content\":\"<|end_header_id|>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2004,\"content\":\"<|eot_id|>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2005,\"content\":\"<|eot\",\"special\":true,\"normalized\":false},"
    "{\"id\":2006,\"content\":\"<mask>\",\"special\":true,\"normalized\":false,\"lstrip\":true,"
    "\"rstrip\":true},"
    "{\"id\":2007,\"content\":\"LLM\",\"special\":false,\"normalized\":true,"
    "\"single_word\":true},"
    "{\"id\":2008,\"content\":\" fine\",\"special\":false,\"normalized\":true}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
    "{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,"
    "3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":"
    "false,"
    "\"trim_offsets\":true,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},"
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|begin_of_text|>\","
    "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":"
    "{\"<|begin_of_text|>\":{\"id\":\"<|begin_of_text|>\",\"ids\":[2000],\"tokens\":"
    "[\"<|begin_of_text|>\"]}}}]},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
    "\"use_regex\":true},";

/* The articles as chat turns: Llama 3's header tokens around them, <mask>
 * with spaces to strip, "LLM" alone and inside words, CRLF, digits. */
static texts chat_texts(const texts *a) {
    return wrapped(a,
                   "<|start_header_id|>user<|end_header_id|>\r\n\r\nIt's 12345 LLMs or LLM?  "
                   "<mask>  x <|eot<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                   "<|eot_id|>");
}

Test(tokenizer, llama3_style_file_matches_the_reference) {
    require_reference();
    setup_trained();
    char *json = variant(trained_cache, LLAMA3_HEAD, 1);
    texts chat = chat_texts(&articles);
    expect_same_as_reference(json, &chat, 1);
    expect_same_as_reference(json, &articles, 0);
    texts_free(&chat);
    free(json);
    teardown_trained();
}

Test(tokenizer, llama3_style_special_tokens_template_and_ignore_merges) {
    setup_trained();
    char *json = variant(trained_cache, LLAMA3_HEAD, 1);
    tok_tokenizer *tok = load(json);
    tok_ids ids = {0};
    char err[256];
    const char *text = "<|start_header_id|>user<|end_header_id|> a  <mask>  b<|eot_id|>";
    cr_assert_eq(tok_encode(tok, text, strlen(text), 1, &ids, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(ids.n, 6);
    cr_expect_eq(ids.ids[0], 2000, "the template's <|begin_of_text|>");
    cr_expect_eq(ids.ids[1], 2002);
    cr_expect_eq(ids.ids[ids.n - 1], 2004, "<|eot_id|>, the longest match, not <|eot");
    int mask_at = -1;
    for (size_t i = 0; i < ids.n; i++)
        if (ids.ids[i] == 2006)
            mask_at = (int)i;
    cr_assert_geq(mask_at, 0);
    char *back;
    size_t len;
    cr_assert_eq(tok_decode(tok, ids.ids, ids.n, 1, &back, &len, err, sizeof(err)), 0);
    cr_expect_str_eq(back, "user ab", "lstrip/rstrip ate the spaces; specials skipped");
    free(back);
    /* ignore_merges: a word that is a token is that token, whatever the
     * merges would make of its bytes */
    size_t single = 0;
    for (int32_t id = 257; id < 2000; id++) {
        cr_assert_eq(tok_decode(tok, &id, 1, 0, &back, &len, err, sizeof(err)), 0);
        ids.n = 0;
        int rc = tok_encode(tok, back, len, 0, &ids, err, sizeof(err));
        free(back);
        if (rc == -EILSEQ) /* a piece of a character */
            continue;
        cr_assert_eq(rc, 0, "%s", err);
        if (ids.n == 1 && ids.ids[0] < 2000) /* not "LLM" or " fine", the added tokens */
            cr_expect_eq(ids.ids[0], id, "a one-word token encodes as itself");
        single += ids.n == 1;
    }
    cr_expect_gt(single, 1500, "most tokens are one word of the pattern: %zu", single);
    tok_ids_free(&ids);
    tok_free(tok);
    free(json);
    teardown_trained();
}

/* The pieces the heads below share, as `tokenizers` writes them. */
#define ENDOFTEXT(normalized)                                                                      \
    "{\"id\":0,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,"              \
    "\"rstrip\":false,\"normalized\":" normalized ",\"special\":true}"
#define BYTELEVEL(prefix, trim, regex)                                                             \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":" prefix ",\"trim_offsets\":" trim               \
    ",\"use_regex\":" regex "}"
#define HEAD(added, normalizer, pre, post, decoder)                                                \
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[" added           \
    "],\"normalizer\":" normalizer ",\"pre_tokenizer\":" pre ",\"post_processor\":" post           \
    ",\"decoder\":" decoder ","

static const char GPT2_HEAD[] =
    HEAD(ENDOFTEXT("true"), "null", BYTELEVEL("true", "true", "true"),
         BYTELEVEL("true", "false", "true"), BYTELEVEL("true", "true", "true"));

Test(tokenizer, gpt2_style_file_with_prefix_space_matches_the_reference) {
    require_reference();
    setup_trained();
    char *json = variant(trained_cache, GPT2_HEAD, 0);
    texts mixed = wrapped(&articles, "", "<|endoftext|>x<|endoftext|>");
    expect_same_as_reference(json, &mixed, 1);
    texts_free(&mixed);
    free(json);
    teardown_trained();
}

static const char QWEN2_HEAD[] = HEAD(
    ENDOFTEXT("false"), "{\"type\":\"NFC\"}",
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
    "{\"Regex\":\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
    "\"behavior\":\"Isolated\",\"invert\":false}," BYTELEVEL("false", "false", "false") "]}",
    BYTELEVEL("false", "false", "false"), BYTELEVEL("false", "false", "false"));

static const char SMOLLM_HEAD[] =
    HEAD(ENDOFTEXT("false"), "null",
         "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":"
         "true}," BYTELEVEL("false", "true", "true") "]}",
         "{\"type\":\"ByteLevel\"}", "{\"type\":\"ByteLevel\"}");

/* SmolLM's (and StarCoder's) Digits pre-tokenizer before ByteLevel. */
Test(tokenizer, smollm_style_file_with_digits_matches_the_reference) {
    require_reference();
    setup_trained();
    char *json = variant(trained_cache, SMOLLM_HEAD, 0);
    texts t = wrapped(&articles, "In 2024, 3.14159 and \xd9\xa3\xd9\xa4 (Arabic-Indic) ", "");
    expect_same_as_reference(json, &t, 0);
    tok_tokenizer *tok = load(json);
    tok_ids ids = {0};
    char err[256];
    cr_assert_eq(tok_encode(tok, "2024", 4, 0, &ids, err, sizeof(err)), 0);
    cr_expect_eq(ids.n, 4, "one id per digit");
    tok_ids_free(&ids);
    tok_free(tok);
    texts_free(&t);
    free(json);
    teardown_trained();
}

Test(tokenizer, qwen2_style_file_with_nfc_matches_the_reference) {
    require_reference();
    setup_trained();
    char *json = variant(trained_cache, QWEN2_HEAD, 0);
    /* e + U+0301 composes into U+00E9 under NFC */
    texts t = wrapped(&articles, "Cafe\xcc\x81 2024 ", "");
    expect_same_as_reference(json, &t, 0);
    tok_tokenizer *tok = load(json);
    tok_ids a = {0}, b = {0};
    char err[256];
    cr_assert_eq(tok_encode(tok, "Cafe\xcc\x81", 6, 0, &a, err, sizeof(err)), 0);
    cr_assert_eq(tok_encode(tok, "Caf\xc3\xa9", 5, 0, &b, err, sizeof(err)), 0);
    cr_expect(a.n == b.n && memcmp(a.ids, b.ids, a.n * 4) == 0, "NFC makes both the same");
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_free(tok);
    texts_free(&t);
    free(json);
    teardown_trained();
}

/* ---- a tiny hand-written vocabulary ---- */

#define TINY_MODEL(merges)                                                                         \
    "{\"added_tokens\":[],\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"  \
    "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1," \
    "\"c\":2,\"ab\":3,\"abc\":4,\"\xc4\xa0\":5,\"\xc4\xa0"                                         \
    "a\":6},\"merges\":" merges "}}"

Test(tokenizer, merges_in_string_and_pair_form_are_the_same) {
    tok_tokenizer *s = load(TINY_MODEL("[\"a b\",\"ab c\",\"\xc4\xa0 a\"]"));
    tok_tokenizer *p = load(TINY_MODEL("[[\"a\",\"b\"],[\"ab\",\"c\"],[\"\xc4\xa0\",\"a\"]]"));
    const char *text = "abc ab ca";
    tok_ids a = {0}, b = {0};
    char err[256];
    cr_assert_eq(tok_encode(s, text, strlen(text), 0, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(tok_encode(p, text, strlen(text), 0, &b, err, sizeof(err)), 0, "%s", err);
    /* "abc" -> abc; " ab" -> Ġa b (merge Ġ a ranks after a b? no: "a b" is
     * rank 0, so Ġ a b -> Ġ ab); " ca" -> Ġ c a, whose Ġ a is not adjacent */
    int32_t want[] = {4, 5, 3, 5, 2, 0};
    cr_assert_eq(a.n, 6);
    cr_expect(memcmp(a.ids, want, sizeof(want)) == 0);
    cr_expect(b.n == a.n && memcmp(a.ids, b.ids, a.n * 4) == 0);
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_free(s);
    tok_free(p);
}

static void expect_refused(const char *json, int rc, const char *needle) {
    tok_tokenizer *tok = NULL;
    char err[512] = "";
    cr_expect_eq(tok_load_json(json, strlen(json), "bad/tokenizer.json", &tok, err, sizeof(err)),
                 rc, "%s", err);
    cr_expect_null(tok);
    cr_expect_not_null(strstr(err, "bad/tokenizer.json"), "the file is named: %s", err);
    cr_expect_not_null(strstr(err, needle), "\"%s\" in: %s", needle, err);
}

Test(tokenizer, bad_files_are_refused_naming_the_file_and_the_field) {
    expect_refused("{\"model\": ", -EINVAL, "not a JSON object");
    expect_refused("", -EINVAL, "not a JSON object");
    expect_refused(TINY_MODEL("[\"a x\"]"), -EINVAL,
                   "model.merges[0]: \"x\" is not in model.vocab");
    expect_refused(TINY_MODEL("[\"b c\"]"), -EINVAL, "merged token \"bc\"");
    expect_refused(TINY_MODEL("[\"abc\"]"), -EINVAL, "model.merges[0]");
    expect_refused(TINY_MODEL("[[\"a\"]]"), -EINVAL, "model.merges[0]");
    expect_refused("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", -ENOTSUP,
                   "model.type: \"WordPiece\" is not supported");
    expect_refused("{\"model\":{\"type\":\"Unigram\"}}", -ENOTSUP, "model.type");
    expect_refused("{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{},\"merges\":[]}}",
                   -ENOTSUP, "model.dropout");
    expect_refused("{\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":"
                   "\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
                   "\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   -ENOTSUP, "normalizer: type \"Lowercase\"");
    expect_refused("{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"decoder\":{\"type\":"
                   "\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   -ENOTSUP, "pre_tokenizer: type \"Whitespace\"");
    expect_refused("{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":"
                   "\"WordPiece\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   -ENOTSUP, "decoder");
    expect_refused(
        "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":"
        "\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}",
        -EINVAL, "out of range");
    expect_refused("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
                   "\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},{\"type\":"
                   "\"ByteLevel\"}]},\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
                   "\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                   -ENOTSUP, "pattern does not compile");
}

Test(tokenizer, bad_input_text_and_ids_are_errors) {
    tok_tokenizer *tok = load(TINY_MODEL("[\"a b\"]"));
    tok_ids ids = {0};
    char err[256];
    cr_expect_eq(tok_encode(tok, "ab\xff", 3, 0, &ids, err, sizeof(err)), -EILSEQ);
    cr_expect_not_null(strstr(err, "byte 2"), "%s", err);
    cr_expect_eq(ids.n, 0);
    char *out;
    size_t len;
    cr_expect_eq(tok_decode(tok, (int32_t[]){0, 99}, 2, 0, &out, &len, err, sizeof(err)), -EINVAL);
    cr_expect_eq(tok_encode(tok, "", 0, 1, &ids, err, sizeof(err)), 0);
    cr_expect_eq(ids.n, 0, "nothing in, nothing out");
    tok_ids_free(&ids);
    tok_free(tok);
    tok_trainer *tr;
    cr_expect_eq(tok_trainer_new(100, NULL, 0, 0, &tr, err, sizeof(err)), -EINVAL);
}

Test(tokenizer, files_are_written_and_read_back) {
    tok_trainer *tr;
    char err[256];
    const char *sp[] = {"<|endoftext|>", "<pad>"};
    cr_assert_eq(tok_trainer_new(300, sp, 2, 2, &tr, err, sizeof(err)), 0);
    const char *corpus = "the cat sat on the mat; the cat ate the rat. \xe6\x9d\xb1\xe4\xba\xac!";
    cr_assert_eq(tok_trainer_feed(tr, corpus, strlen(corpus), err, sizeof(err)), 0);
    char path[] = "/tmp/sluice-tok-file-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(tok_trainer_save(tr, path, err, sizeof(err)), 0, "%s", err);
    tok_trainer_free(tr);
    tok_tokenizer *tok;
    cr_assert_eq(tok_load(path, &tok, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(tok_token_id(tok, "<pad>"), 1);
    cr_expect_lt(tok_vocab_size(tok), 300, "min_frequency 2 stops before 300");
    tok_ids ids = {0};
    cr_assert_eq(tok_encode(tok, corpus, strlen(corpus), 0, &ids, err, sizeof(err)), 0);
    char *back;
    size_t len;
    cr_assert_eq(tok_decode(tok, ids.ids, ids.n, 0, &back, &len, err, sizeof(err)), 0);
    cr_expect_str_eq(back, corpus);
    free(back);
    tok_ids_free(&ids);
    tok_free(tok);
    unlink(path);
    cr_expect_eq(tok_load("/nonexistent/tokenizer.json", &tok, err, sizeof(err)), -ENOENT);
    cr_expect_not_null(strstr(err, "/nonexistent/tokenizer.json"));
}

/* "abc" is in the vocabulary, but the merges make a + bc of it: only
 * ignore_merges (Llama 3) gives the one token. */
#define IGNORE_MERGES_MODEL(flag)                                                                  \
    "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"decoder\":{"         \
    "\"type\":"                                                                                    \
    "\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"ignore_merges\":" flag ",\"vocab\":{\"a\":0,"    \
    "\"b\":1,\"c\":2,\"bc\":3,\"ab\":4,\"abc\":5,\"\xc4\xa0\":6},\"merges\":[\"b c\",\"a b\"]}}"

Test(tokenizer, ignore_merges_takes_a_word_that_is_a_token_whole) {
    tok_tokenizer *with = load(IGNORE_MERGES_MODEL("true"));
    tok_tokenizer *without = load(IGNORE_MERGES_MODEL("false"));
    tok_ids a = {0}, b = {0};
    char err[256];
    cr_assert_eq(tok_encode(with, "abc abc", 7, 0, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(tok_encode(without, "abc abc", 7, 0, &b, err, sizeof(err)), 0, "%s", err);
    int32_t want_with[] = {5, 6, 0, 3}, want_without[] = {0, 3, 6, 0, 3};
    cr_assert_eq(a.n, 4);
    cr_expect(memcmp(a.ids, want_with, sizeof(want_with)) == 0);
    cr_assert_eq(b.n, 5);
    cr_expect(memcmp(b.ids, want_without, sizeof(want_without)) == 0);
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_free(with);
    tok_free(without);
    require_reference();
    texts t = {0};
    texts_add(&t, "abc abc", 7);
    texts_add(&t, "cab", 3);
    expect_same_as_reference(IGNORE_MERGES_MODEL("true"), &t, 0);
    expect_same_as_reference(IGNORE_MERGES_MODEL("false"), &t, 0);
    texts_free(&t);
}

/* The fuzz seeds (tests/fuzz/seeds/tokenizer) are tokenizers that load and
 * encode: GPT-2-, Llama-3- and Qwen2-shaped, with an unk_token and a
 * Removed split. */
Test(tokenizer, fuzz_seeds_load_and_encode) {
    const char *names[] = {"gpt2_tiny", "llama3_tiny", "qwen2_tiny"};
    /* gpt2: " abc", " ab" (the prefix space) -> Ġ abc, Ġ ab, then <|endoftext|>;
     * llama3: BOS, "abc" whole (ignore_merges), " ab" -> Ġ ab, the rest
     * of bytes it has no token for dropped; qwen2: split on spaces, which
     * go, and the unknown bytes of "<|endoftext|>" fused into one unk. */
    static const int32_t want[3][8] = {{5, 4, 5, 3, 7}, {8, 4, 5, 3}, {0, 1, 2, 0, 1, 2}};
    static const size_t want_n[] = {5, 4, 6};
    for (size_t i = 0; i < 3; i++) {
        char path[512], err[512];
        snprintf(path, sizeof(path), SLUICE_SOURCE_DIR "/tests/fuzz/seeds/tokenizer/%s.json",
                 names[i]);
        tok_tokenizer *tok;
        cr_assert_eq(tok_load(path, &tok, err, sizeof(err)), 0, "%s", err);
        tok_ids ids = {0};
        cr_assert_eq(tok_encode(tok, "abc ab<|endoftext|>", 19, 1, &ids, err, sizeof(err)), 0, "%s",
                     err);
        cr_expect_eq(ids.n, want_n[i], "%s: %zu ids", names[i], ids.n);
        cr_expect(ids.n == want_n[i] && memcmp(ids.ids, want[i], ids.n * 4) == 0, "%s", names[i]);
        tok_ids_free(&ids);
        tok_free(tok);
    }
}

/* The merges of a tokenizer trained here equal those of an independent
 * trainer that counts every pair again after each merge
 * (tests/ref/bpe_train_ref.py), ties going to the smaller id pair. */
Test(tokenizer, training_matches_the_reference_trainer) {
    require_reference();
    require_handbook();
    texts all = handbook_texts(), t = {0};
    for (size_t i = 0; i < 30; i++)
        texts_add(&t, all.v[i], strlen(all.v[i]));
    texts_free(&all);
    char *json = train(&t, 700);
    char dir[] = "/tmp/sluice-toktrain-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char texts_path[64], out_path[64], cmd[512];
    snprintf(texts_path, sizeof(texts_path), "%s/texts.json", dir);
    snprintf(out_path, sizeof(out_path), "%s/merges.txt", dir);
    write_texts(texts_path, &t);
    snprintf(cmd, sizeof(cmd), PYTHON " %s/tests/ref/bpe_train_ref.py %s 700 '<|endoftext|>' > %s",
             SLUICE_SOURCE_DIR, texts_path, out_path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *ref = read_all(out_path, NULL);
    bson_error_t berr;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &berr);
    cr_assert_not_null(doc, "%s", berr.message);
    bson_iter_t it, m;
    cr_assert(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "model.merges", &m) &&
              BSON_ITER_HOLDS_ARRAY(&m) && bson_iter_recurse(&m, &it));
    size_t n = 0, same = 0;
    char *line = ref;
    while (bson_iter_next(&it)) {
        char *end = strchr(line, '\n');
        cr_assert_not_null(end, "the reference made %zu merges, sluice more", n);
        *end = '\0';
        int eq = strcmp(bson_iter_utf8(&it, NULL), line) == 0;
        if (!eq && n - same < 3)
            cr_log_error("merge %zu: sluice \"%s\", the reference \"%s\"", n,
                         bson_iter_utf8(&it, NULL), line);
        same += eq;
        n++;
        line = end + 1;
    }
    cr_expect_eq(*line, '\0', "the reference made more merges than sluice's %zu", n);
    cr_expect_eq(n, 700 - 257, "the vocabulary is filled");
    cr_expect_eq(same, n, "%zu of %zu merges equal", same, n);
    bson_destroy(doc);
    free(ref);
    free(json);
    texts_free(&t);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
