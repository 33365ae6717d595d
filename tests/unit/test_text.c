#include <bson/bson.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records.h"
#include "text.h"

static char *clean(const char *in) {
    char *out;
    size_t len;
    cr_assert_eq(text_clean(in, strlen(in), &out, &len), 0);
    cr_assert_eq(strlen(out), len);
    return out;
}

#define expect_clean(in, want)                                                                \
    do {                                                                                      \
        char *got_ = clean(in);                                                               \
        cr_expect_str_eq(got_, want);                                                         \
        free(got_);                                                                           \
    } while (0)

Test(text, clean_keeps_words_of_every_script_and_sentence_punctuation) {
    expect_clean("Hello, world! Is it?", "Hello, world! Is it?");
    expect_clean("  (LLM) #### twin: 2024-07-29  ", "LLM twin 2024 07 29");
    expect_clean("Ünïcödé façade, 東京 and Москва", "Ünïcödé façade, 東京 and Москва");
    expect_clean("snake_case stays; kebab-case splits", "snake_case stays kebab case splits");
    expect_clean("emoji 🔧 gone, math 𝐀𝐁 kept, ² kept", "emoji gone, math 𝐀𝐁 kept, ² kept");
    expect_clean("tabs\tand\nnew\u2028lines\u3000fold", "tabs and new lines fold");
    expect_clean("\u00a0nbsp\u00a0", "nbsp");
    expect_clean("", "");
    expect_clean("***", "");
}

Test(text, clean_turns_broken_utf8_into_spaces_never_into_broken_output) {
    char *got = clean("bad \xff\xfe bytes \xe2\x82 cut");
    cr_expect_str_eq(got, "bad bytes cut");
    free(got);
}

static size_t count_chunks(const char *in, size_t min, size_t max, char ***out) {
    size_t n;
    cr_assert_eq(text_chunk_article(in, strlen(in), min, max, out, &n), 0);
    return n;
}

Test(text, sentences_split_after_end_marks_but_not_after_abbreviations) {
    char **c;
    /* max 1: every sentence on its own; min 1: keep every non-empty one. */
    size_t n = count_chunks("Dr. Smith met Mr. Jones. It was 3.14 p.m. e.g. late! Was it? Yes", 1,
                            1, &c);
    /* As Python's re.split gives it with the Handbook's pattern. */
    const char *want[] = {"Dr. Smith met Mr. Jones.", "It was 3.14 p.m. e.g. late!", "Was it?",
                          "Yes"};
    cr_assert_eq(n, 4, "got %zu chunks", n);
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(c[i], want[i]);
    text_chunks_free(c, n);
}

Test(text, chunks_respect_the_bounds_in_code_points) {
    /* Sentences of 10 code points ("ééééééééé." is 10, 20 bytes). */
    char text[2000] = "";
    for (int i = 0; i < 30; i++)
        strcat(text, "ééééééééé. ");
    char **c;
    size_t n = count_chunks(text, 30, 50, &c);
    /* 4 sentences with their spaces make 44 <= 50; the fifth would not fit:
     * 7 chunks of 4, and the last 2 sentences (22 < 30) are dropped. */
    cr_assert_eq(n, 7, "%zu", n);
    cr_expect_str_eq(c[0], "ééééééééé. ééééééééé. ééééééééé. ééééééééé.");
    text_chunks_free(c, n);
    n = count_chunks("Short. Tail.", 100, 2000, &c);
    cr_expect_eq(n, 0, "below min nothing is kept");
    text_chunks_free(c, n);
}

Test(text, chunk_ids_are_md5_uuids_version_4) {
    char id[37];
    cr_assert_eq(text_chunk_id("hello", 5, id), 0);
    /* md5("hello") = 5d41402abc4b2a76b9719d911017c592 */
    cr_expect_str_eq(id, "5d41402a-bc4b-4a76-b971-9d911017c592");
}

/* ---- conformance with the Handbook's own data ---- */

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook"

static bson_t *load_artifact(const char *name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/artifacts/%s", HANDBOOK, name);
    bson_error_t err;
    bson_json_reader_t *r = bson_json_reader_new_from_file(path, &err);
    cr_assert_not_null(r, "%s: %s", path, err.message);
    bson_t *doc = bson_new();
    cr_assert_eq(bson_json_reader_read(r, doc, &err), 1, "%s: %s", path, err.message);
    bson_json_reader_destroy(r);
    return doc;
}

static void require_handbook(void) {
    if (access(HANDBOOK "/artifacts/raw_documents.json", R_OK) != 0)
        cr_skip_test("the Handbook's data is not at " HANDBOOK " (../shared/handbook)");
}

Test(text, clean_reproduces_the_handbooks_cleaned_documents_76_of_76) {
    require_handbook();
    bson_t *raw = load_artifact("raw_documents.json"), *want = load_artifact("cleaned_documents.json");
    bson_iter_t ra, wa, r, w;
    cr_assert(bson_iter_init_find(&ra, raw, "artifact_data") && bson_iter_recurse(&ra, &r));
    cr_assert(bson_iter_init_find(&wa, want, "artifact_data") && bson_iter_recurse(&wa, &w));
    int same = 0, total = 0;
    while (bson_iter_next(&r) && bson_iter_next(&w)) {
        bson_iter_t wdoc, wcontent;
        bson_iter_recurse(&w, &wdoc);
        uint32_t dlen;
        const uint8_t *data;
        bson_iter_document(&r, &dlen, &data);
        bson_t rdoc;
        bson_init_static(&rdoc, data, dlen);
        size_t text_len;
        char *text = records_content(&rdoc, &text_len);
        cr_assert_not_null(text);
        char *cleaned;
        size_t len;
        cr_assert_eq(text_clean(text, strlen(text), &cleaned, &len), 0);
        cr_assert(bson_iter_find(&wdoc, "content") && BSON_ITER_HOLDS_UTF8(&wdoc));
        wcontent = wdoc;
        uint32_t wlen;
        const char *expected = bson_iter_utf8(&wcontent, &wlen);
        int eq = wlen == len && memcmp(expected, cleaned, len) == 0;
        cr_expect(eq, "document %d differs", total);
        same += eq;
        total++;
        free(text);
        free(cleaned);
    }
    cr_expect_eq(total, 76);
    cr_expect_eq(same, 76, "%d of %d byte for byte", same, total);
    bson_destroy(raw);
    bson_destroy(want);
}

Test(text, article_chunking_gives_the_handbooks_500_chunks) {
    require_handbook();
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("/usr/bin/python3 is needed for the reference chunker");
    /* The reference: the Handbook's chunk_article, run by Python's re. */
    char ref_path[] = "/tmp/sluice-chunks-XXXXXX";
    int fd = mkstemp(ref_path);
    close(fd);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,re,hashlib,uuid\n"
             "docs=json.load(open(\"%s/artifacts/cleaned_documents.json\"))[\"artifact_data\"]\n"
             "out=[]\n"
             "for d in docs:\n"
             "  s=re.split(r\"(?<!\\w\\.\\w.)(?<![A-Z][a-z]\\.)(?<=\\.|\\?|\\!)\\s\",d[\"content\"])\n"
             "  cur=\"\"\n"
             "  for x in s:\n"
             "    x=x.strip()\n"
             "    if not x: continue\n"
             "    if len(cur)+len(x)<=2000: cur+=x+\" \"\n"
             "    else:\n"
             "      if len(cur)>=1000: out.append(cur.strip())\n"
             "      cur=x+\" \"\n"
             "  if len(cur)>=1000: out.append(cur.strip())\n"
             "json.dump([[c,str(uuid.UUID(hex=hashlib.md5(c.encode()).hexdigest(),version=4))] for c in out],open(\"%s\",\"w\"))'",
             HANDBOOK, ref_path);
    cr_assert_eq(system(cmd), 0);
    bson_error_t err;
    bson_json_reader_t *rr = bson_json_reader_new_from_file(ref_path, &err);
    cr_assert_not_null(rr);
    bson_t ref = BSON_INITIALIZER;
    /* The reference is a top-level array: wrap it for libbson. */
    bson_json_reader_destroy(rr);
    FILE *f = fopen(ref_path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *json = malloc((size_t)size + 16);
    strcpy(json, "{\"c\":");
    cr_assert_eq(fread(json + 5, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    strcpy(json + 5 + size, "}");
    bson_t *refdoc = bson_new_from_json((const uint8_t *)json, -1, &err);
    cr_assert_not_null(refdoc, "%s", err.message);
    free(json);
    unlink(ref_path);
    bson_iter_t ri, rarr;
    cr_assert(bson_iter_init_find(&ri, refdoc, "c") && bson_iter_recurse(&ri, &rarr));

    bson_t *cleaned = load_artifact("cleaned_documents.json");
    bson_iter_t ca, c;
    cr_assert(bson_iter_init_find(&ca, cleaned, "artifact_data") && bson_iter_recurse(&ca, &c));
    size_t total = 0, same = 0;
    while (bson_iter_next(&c)) {
        bson_iter_t doc;
        bson_iter_recurse(&c, &doc);
        cr_assert(bson_iter_find(&doc, "content"));
        uint32_t len;
        const char *content = bson_iter_utf8(&doc, &len);
        char **chunks;
        size_t n;
        cr_assert_eq(text_chunk_article(content, len, 1000, 2000, &chunks, &n), 0);
        for (size_t i = 0; i < n; i++, total++) {
            bson_iter_t pair, parts;
            if (!bson_iter_next(&rarr))
                break;
            bson_iter_recurse(&rarr, &pair);
            parts = pair;
            bson_iter_next(&parts);
            const char *want = bson_iter_utf8(&parts, NULL);
            bson_iter_next(&parts);
            const char *want_id = bson_iter_utf8(&parts, NULL);
            char id[37];
            text_chunk_id(chunks[i], strlen(chunks[i]), id);
            int eq = strcmp(want, chunks[i]) == 0 && strcmp(want_id, id) == 0;
            cr_expect(eq, "chunk %zu differs", total);
            same += (size_t)eq;
        }
        text_chunks_free(chunks, n);
    }
    cr_expect_eq(total, 500, "%zu chunks", total);
    cr_expect_eq(same, 500, "%zu identical", same);
    bson_destroy(cleaned);
    bson_destroy(refdoc);
    bson_destroy(&ref);
}

Test(text, nfc_and_url_removal) {
    char *out;
    size_t len;
    cr_assert_eq(text_nfc("cafe\xcc\x81", 6, &out, &len), 0); /* e + combining acute */
    cr_expect_str_eq(out, "caf\xc3\xa9");
    free(out);
    cr_assert_eq(text_nfc("bad \xff", 5, &out, &len), 0);
    cr_expect_eq(len, 5, "invalid UTF-8 goes through unchanged");
    free(out);
    const char *t = "see https://x.org/a?b=1 and (www.y.com) or http://z but notwww.this";
    cr_assert_eq(text_remove_urls(t, strlen(t), &out, &len), 0);
    cr_expect_str_eq(out, "see  and () or  but notwww.this");
    free(out);
}

#include "dedupe.h"

Test(text, exact_and_near_duplicates) {
    const char *a = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
                    "and the birds sing in the tall green trees near the quiet river bank today";
    const char *b = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
                    "and the birds sing in the tall green trees near the quiet river bank tonight";
    const char *c = "a completely different text about language models, datasets and evaluation "
                    "metrics that shares almost no five word sequence with the others at all";
    double near = dedupe_similarity(a, strlen(a), b, strlen(b));
    double far = dedupe_similarity(a, strlen(a), c, strlen(c));
    cr_expect_gt(near, 0.8, "one word changed: %.2f", near);
    cr_expect_lt(far, 0.1, "unrelated: %.2f", far);

    dedupe *exact = dedupe_new(0, 1.0);
    cr_expect_eq(dedupe_seen(exact, a, strlen(a)), 0);
    cr_expect_eq(dedupe_seen(exact, b, strlen(b)), 0, "b differs from a");
    cr_expect_eq(dedupe_seen(exact, a, strlen(a)), 1, "a again");
    dedupe_free(exact);

    dedupe *nearly = dedupe_new(1, 0.8);
    cr_expect_eq(dedupe_seen(nearly, a, strlen(a)), 0);
    cr_expect_eq(dedupe_seen(nearly, b, strlen(b)), 1, "b is a near duplicate of a");
    cr_expect_eq(dedupe_seen(nearly, c, strlen(c)), 0);
    dedupe_free(nearly);
}

/* Enough documents that the LSH table grows several times: every one stays
 * findable across the rehashes. */
Test(dedupe, remembers_documents_across_table_growth) {
    dedupe *d = dedupe_new(1, 0.8);
    cr_assert_not_null(d);
    char text[128];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 1000; i++) {
            int n = snprintf(text, sizeof(text), "doc%d alpha%d beta%d gamma%d delta%d eps%d", i,
                             i * 7, i * 13, i * 17, i * 19, i * 23);
            cr_expect_eq(dedupe_seen(d, text, (size_t)n), pass, "document %d, pass %d", i, pass);
        }
    dedupe_free(d);
}
