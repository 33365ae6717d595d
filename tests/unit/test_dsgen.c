/* The dataset_gen step's parts (steps/dataset_gen): the offline generator
 * on the demo articles and on the Handbook's 76 articles, the checks, the
 * split, the Handbook layout read back by the train step's reader, and the
 * API path's prompts and answer reading. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "dsgen.h"
#include "dsgen_offline.h"
#include "dsgen_prompt.h"
#include "require.h"
#include "text.h"

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook"
#define DEMO SLUICE_SOURCE_DIR "/pipelines/demo/datasets/documents.jsonl"

/* Extracts as the pipeline makes them: each document's text cleaned, then
 * cut into articles' chunks of 1,000 to 2,000 code points. */
typedef struct corpus {
    char **text;
    char **id;
    dsgen_extract *ex;
    size_t n;
} corpus;

static void corpus_add_document(corpus *c, const char *content, size_t len) {
    char *cleaned, **chunks;
    size_t clen, n;
    cr_assert_eq(text_clean(content, len, &cleaned, &clen), 0);
    cr_assert_eq(text_chunk_article(cleaned, clen, 1000, 2000, &chunks, &n), 0);
    free(cleaned);
    c->text = realloc(c->text, (c->n + n) * sizeof(char *));
    c->id = realloc(c->id, (c->n + n) * sizeof(char *));
    cr_assert(c->text && c->id);
    for (size_t i = 0; i < n; i++) {
        c->text[c->n] = chunks[i];
        c->id[c->n] = malloc(37);
        cr_assert_eq(text_chunk_id(chunks[i], strlen(chunks[i]), c->id[c->n]), 0);
        c->n++;
    }
    free(chunks);
}

static void corpus_finish(corpus *c) {
    c->ex = calloc(c->n ? c->n : 1, sizeof(*c->ex));
    for (size_t i = 0; i < c->n; i++)
        c->ex[i] = (dsgen_extract){c->text[i], strlen(c->text[i]), c->id[i], "articles"};
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->text[i]);
        free(c->id[i]);
    }
    free(c->text);
    free(c->id);
    free(c->ex);
}

/* The Handbook's 76 cleaned articles (already cleaned: cleaning again
 * changes nothing). */
static void handbook_corpus(corpus *c) {
    if (access(HANDBOOK "/artifacts/cleaned_documents.json", R_OK) != 0)
        SKIP_UNLESS_REQUIRED("the Handbook's data is not at " HANDBOOK);
    bson_error_t err;
    bson_json_reader_t *r =
        bson_json_reader_new_from_file(HANDBOOK "/artifacts/cleaned_documents.json", &err);
    cr_assert_not_null(r, "%s", err.message);
    bson_t doc = BSON_INITIALIZER;
    cr_assert_eq(bson_json_reader_read(r, &doc, &err), 1, "%s", err.message);
    bson_json_reader_destroy(r);
    bson_iter_t a, d;
    cr_assert(bson_iter_init_find(&a, &doc, "artifact_data") && bson_iter_recurse(&a, &d));
    memset(c, 0, sizeof(*c));
    while (bson_iter_next(&d)) {
        bson_iter_t f;
        cr_assert(bson_iter_recurse(&d, &f) && bson_iter_find(&f, "content"));
        uint32_t len;
        const char *content = bson_iter_utf8(&f, &len);
        corpus_add_document(c, content, len);
    }
    bson_destroy(&doc);
    corpus_finish(c);
}

/* The six demo articles (pipelines/demo/datasets/documents.jsonl). */
static void demo_corpus(corpus *c) {
    bson_error_t err;
    bson_json_reader_t *r = bson_json_reader_new_from_file(DEMO, &err);
    cr_assert_not_null(r, "%s", err.message);
    memset(c, 0, sizeof(*c));
    bson_t doc = BSON_INITIALIZER;
    while (bson_json_reader_read(r, &doc, &err) == 1) {
        bson_iter_t f;
        cr_assert(bson_iter_init_find(&f, &doc, "content"));
        uint32_t len;
        const char *content = bson_iter_utf8(&f, &len);
        corpus_add_document(c, content, len);
        bson_reinit(&doc);
    }
    bson_destroy(&doc);
    bson_json_reader_destroy(r);
    corpus_finish(c);
}

/* The whole file dsgen_write gives, malloc'ed. */
static char *written(const dsgen_set *set, double test_size, uint64_t seed, const char *path) {
    unsigned char *is_test = malloc(set->n ? set->n : 1);
    cr_assert_eq(dsgen_split(set, test_size, seed, is_test), 0);
    char err[256];
    cr_assert_eq(dsgen_write(set, is_test, test_size, NULL, path, err, sizeof(err)), 0, "%s", err);
    free(is_test);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void generate(const corpus *c, dsgen_kind kind, uint64_t seed, dsgen_set *set) {
    dsgen_set_init(set, kind, 10, 100);
    dsgen_offline_stats st;
    memset(&st, 0, sizeof(st));
    cr_assert_eq(dsgen_offline(set, c->ex, c->n, 5, seed, &st), 0);
    if (kind == DSGEN_PREFERENCE)
        cr_expect_eq(
            st.rejected_other + st.rejected_truncated + st.rejected_shuffled,
            (long)set->n + set->dropped[DSGEN_DROP_DUPLICATE] +
                set->dropped[DSGEN_DROP_SHORT_ANSWER] + set->dropped[DSGEN_DROP_ANSWER_FORMAT] +
                set->dropped[DSGEN_DROP_SHORT_INSTRUCTION] + set->dropped[DSGEN_DROP_MISSING_FIELD],
            "one degraded answer per sample tried");
}

/* What every offline dataset must hold: answers (chosen) are verbatim
 * spans of their extract made of whole sentences, instructions are all
 * different, rejected answers differ from chosen ones, at most 5 samples
 * per extract, at least one from every extract long enough to give one. */
static void check_offline(const corpus *c, const dsgen_set *set) {
    cr_assert_gt(set->n, 0);
    size_t *per = calloc(c->n, sizeof(*per));
    for (size_t i = 0; i < set->n; i++) {
        const dsgen_sample *s = &set->s[i];
        cr_assert_lt(s->source, c->n);
        per[s->source]++;
        const char *x = c->text[s->source];
        const char *at = strstr(x, s->answer);
        cr_expect_not_null(at, "sample %zu: the answer is not in its extract: %s", i, s->answer);
        if (at) { /* whole sentences: from the extract's start or after ". " */
            cr_expect(at == x || (at[-1] == ' ' && strchr(".!?", at[-2])),
                      "sample %zu starts inside a sentence", i);
        }
        if (s->rejected)
            cr_expect_str_neq(s->rejected, s->answer, "sample %zu", i);
        for (size_t j = 0; j < i; j++)
            cr_expect_str_neq(set->s[j].instruction, s->instruction, "samples %zu and %zu", j, i);
    }
    size_t none = 0;
    for (size_t e = 0; e < c->n; e++) {
        cr_expect_leq(per[e], 5, "extract %zu", e);
        none += per[e] == 0;
    }
    /* Every extract is 1,000 code points or more, so it has a run of 100:
     * only a duplicate instruction or the answer's format drops all. */
    cr_expect_leq(none, (size_t)(set->dropped[DSGEN_DROP_DUPLICATE] +
                                 set->dropped[DSGEN_DROP_ANSWER_FORMAT] +
                                 set->dropped[DSGEN_DROP_NO_TOPIC]));
    cr_expect_eq(set->dropped[DSGEN_DROP_SHORT_EXTRACT], 0);
    free(per);
}

static void offline_both_kinds(const corpus *c, const char *tag) {
    for (int k = 0; k < 2; k++) {
        dsgen_kind kind = k ? DSGEN_PREFERENCE : DSGEN_INSTRUCTION;
        dsgen_set a, b, other;
        generate(c, kind, 42, &a);
        generate(c, kind, 42, &b);
        generate(c, kind, 7, &other);
        check_offline(c, &a);
        char pa[64], pb[64], po[64];
        snprintf(pa, sizeof(pa), "/tmp/dsgen_%s_%d_%d_a.json", tag, k, (int)getpid());
        snprintf(pb, sizeof(pb), "/tmp/dsgen_%s_%d_%d_b.json", tag, k, (int)getpid());
        snprintf(po, sizeof(po), "/tmp/dsgen_%s_%d_%d_o.json", tag, k, (int)getpid());
        char *fa = written(&a, 0.1, 42, pa), *fb = written(&b, 0.1, 42, pb),
             *fo = written(&other, 0.1, 7, po);
        cr_expect_str_eq(fa, fb, "same input and seed, same bytes");
        cr_expect_str_neq(fa, fo, "another seed, another dataset");
        /* The train step reads it: every sample, in the split it was put in. */
        dataset *train = NULL, *test = NULL;
        char err[256];
        dataset_kind dk = k ? DATASET_PREFERENCE : DATASET_INSTRUCTION;
        cr_assert_eq(dataset_load(pa, dk, "train", &train, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(dataset_load(pa, dk, "test", &test, err, sizeof(err)), 0, "%s", err);
        size_t want_test = (a.n + 9) / 10;
        cr_expect_eq(test->n, want_test);
        cr_expect_eq(train->n + test->n, a.n);
        for (size_t i = 0; i < train->n; i++) /* b: chosen; c: rejected */
            cr_expect_not_null(strstr(fa, train->ex[i].a));
        dataset_free(train);
        dataset_free(test);
        free(fa);
        free(fb);
        free(fo);
        unlink(pa);
        unlink(pb);
        unlink(po);
        dsgen_set_free(&a);
        dsgen_set_free(&b);
        dsgen_set_free(&other);
    }
}

Test(dsgen, offline_on_the_demo_articles_both_kinds) {
    corpus c;
    demo_corpus(&c);
    cr_assert_gt(c.n, 0);
    offline_both_kinds(&c, "demo");
    corpus_free(&c);
}

Test(dsgen, offline_on_the_handbooks_articles_both_kinds) {
    corpus c;
    handbook_corpus(&c);
    cr_assert_eq(c.n, 500, "the Handbook's 500 extracts");
    offline_both_kinds(&c, "handbook");
    corpus_free(&c);
}

Test(dsgen, an_extract_too_short_and_no_extracts_at_all) {
    dsgen_extract ex[] = {{"Too short. Really.", 18, "a", "articles"}};
    dsgen_set set;
    dsgen_set_init(&set, DSGEN_INSTRUCTION, 10, 100);
    dsgen_offline_stats st;
    memset(&st, 0, sizeof(st));
    cr_assert_eq(dsgen_offline(&set, ex, 1, 5, 1, &st), 0);
    cr_expect_eq(set.n, 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_SHORT_EXTRACT], 1);
    cr_assert_eq(dsgen_offline(&set, NULL, 0, 5, 1, &st), 0);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/dsgen_empty_%d.json", (int)getpid());
    char *f = written(&set, 0.1, 1, path);
    bson_t doc;
    bson_error_t err;
    cr_expect(bson_init_from_json(&doc, f, -1, &err), "%s", err.message);
    bson_destroy(&doc);
    dataset *d = NULL;
    char e[256];
    cr_expect_neq(dataset_load(path, DATASET_INSTRUCTION, "train", &d, e, sizeof(e)), 0,
                  "an empty dataset is refused by train");
    dataset_free(d);
    free(f);
    unlink(path);
    dsgen_set_free(&set);
}

Test(dsgen, checks_drop_and_count_by_reason) {
    dsgen_set set;
    dsgen_set_init(&set, DSGEN_PREFERENCE, 10, 20);
    const char *good = "A verbatim answer that is long enough.";
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Explain the thing.", good, "Worse."), 1);
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Short.", good, "Worse."), 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_SHORT_INSTRUCTION], 1);
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Explain another thing.", "Too short.", "x"),
                 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_SHORT_ANSWER], 1);
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Explain another thing.",
                               "lower case start of an answer that is long.", "x"),
                 0);
    dsgen_set ins;
    dsgen_set_init(&ins, DSGEN_INSTRUCTION, 10, 20);
    cr_expect_eq(dsgen_set_add(&ins, 0, "articles", "Explain another thing.",
                               "lower case start of an answer that is long", NULL),
                 1, "the format rule is for chosen answers, as the Handbook's");
    dsgen_set_free(&ins);
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Explain another thing.",
                               "An answer that stops without its mark", "x"),
                 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_ANSWER_FORMAT], 2);
    cr_expect_eq(dsgen_set_add(&set, 0, "articles", "Explain another thing.", good, good), 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_MISSING_FIELD], 1, "rejected the same as chosen");
    cr_expect_eq(dsgen_set_add(&set, 0, "posts", "Explain the thing.", good, "Worse."), 0);
    cr_expect_eq(set.dropped[DSGEN_DROP_DUPLICATE], 1);
    cr_expect_eq(dsgen_set_add(&set, 1, "posts", "Explain (quoted) thing.",
                               "A quoted answer that ends \"inside quotes.\"", "Worse."),
                 1);
    cr_expect_eq(set.n, 2);
    cr_expect_eq(set.categories.n, 2);
    dsgen_set_free(&set);
}

Test(dsgen, split_per_category_by_seed) {
    dsgen_set set;
    dsgen_set_init(&set, DSGEN_INSTRUCTION, 1, 1);
    char ins[32];
    for (int i = 0; i < 25; i++) {
        snprintf(ins, sizeof(ins), "Instruction %d", i);
        cr_assert_eq(dsgen_set_add(&set, 0, i % 5 ? "articles" : "posts", ins, "Answer.", NULL), 1);
    }
    snprintf(ins, sizeof(ins), "Alone");
    cr_assert_eq(dsgen_set_add(&set, 0, "repositories", ins, "Answer.", NULL), 1);
    unsigned char a[26], b[26], c[26];
    cr_assert_eq(dsgen_split(&set, 0.25, 1, a), 0);
    cr_assert_eq(dsgen_split(&set, 0.25, 1, b), 0);
    cr_assert_eq(dsgen_split(&set, 0.25, 2, c), 0);
    cr_expect_eq(memcmp(a, b, 26), 0);
    cr_expect_neq(memcmp(a, c, 26), 0);
    size_t test[3] = {0, 0, 0};
    for (size_t i = 0; i < 26; i++)
        test[set.s[i].category] += a[i];
    cr_expect_eq(test[0], 2, "posts (seen first): ceil(0.25 * 5)");
    cr_expect_eq(test[1], 5, "articles: 0.25 * 20");
    cr_expect_eq(test[2], 0, "one sample alone stays in train");
    cr_assert_eq(dsgen_split(&set, 0, 1, a), 0);
    for (size_t i = 0; i < 26; i++)
        cr_expect_eq(a[i], 0);
    dsgen_set_free(&set);
}

Test(dsgen, prompts_ask_for_the_kinds_fields_with_the_extract_last) {
    const char *x = "An extract about \"schedulers\".";
    char *p = dsgen_user_prompt(DSGEN_INSTRUCTION, 5, x);
    cr_assert_not_null(p);
    cr_expect_not_null(strstr(p, "generate 5 instruction-answer pairs"));
    cr_expect_not_null(strstr(p, "\"instruction\": \"...\", \"answer\": \"...\""));
    size_t n = strlen(p);
    cr_expect_str_eq(p + n - strlen(x) - 1 - strlen("Extract:\n"),
                     "Extract:\nAn extract about \"schedulers\".\n");
    free(p);
    p = dsgen_user_prompt(DSGEN_PREFERENCE, 3, x);
    cr_expect_not_null(strstr(p, "generate 3 instruction-answer triples"));
    cr_expect_not_null(strstr(p, "\"chosen\""));
    cr_expect_not_null(strstr(p, "verbatim"));
    free(p);
    cr_expect_not_null(strstr(dsgen_system_prompt(DSGEN_PREFERENCE), "triples"));
    cr_expect_not_null(strstr(dsgen_system_prompt(DSGEN_INSTRUCTION), "pairs"));
}

static long parse(dsgen_set *set, const char *content, dsgen_parsed *out) {
    cr_assert_eq(
        dsgen_parse_response(set, 3, "articles", content, "The extract. It says things.", out), 0);
    return out->kept;
}

Test(dsgen, responses_bare_wrapped_fenced_or_broken) {
    dsgen_set set;
    dsgen_set_init(&set, DSGEN_INSTRUCTION, 5, 10);
    dsgen_parsed r;
    cr_expect_eq(parse(&set,
                       "[{\"instruction\": \"Explain one.\", \"answer\": \"One is a number.\"},"
                       " {\"instruction\": \"Explain two.\", \"answer\": \"Two is more.\"}]",
                       &r),
                 2);
    cr_expect_eq(r.items, 2);
    cr_expect_eq(set.s[0].source, 3);
    cr_expect_eq(parse(&set,
                       "{\"samples\": [{\"instruction\": \"Explain three.\", \"answer\": "
                       "\"Three is odd.\"}]}",
                       &r),
                 1, "the list inside an object, as JSON modes answer");
    cr_expect_eq(parse(&set,
                       "```json\n[{\"instruction\": \"Explain four.\", \"answer\": \"Four "
                       "is even.\"}]\n```",
                       &r),
                 1, "a fenced list");
    cr_expect_eq(
        parse(&set, "{\"instruction\": \"Explain five.\", \"answer\": \"Five is odd.\"}", &r), 1,
        "one object alone");
    cr_expect_eq(set.n, 5);
    parse(&set, "Sure! Here are your pairs: [", &r);
    parse(&set, "[{\"instruction\": \"Explain six.\"", &r);
    cr_expect_eq(set.dropped[DSGEN_DROP_NOT_JSON], 1);
    cr_expect_eq(set.dropped[DSGEN_DROP_TRUNCATED], 1, "a list that never closes");
    parse(&set, "{\"a\": 1}", &r);
    parse(&set, "{\"a\": [], \"b\": []}", &r);
    parse(&set, "[\"Explain.\", 3]", &r);
    cr_expect_eq(set.dropped[DSGEN_DROP_WRONG_SHAPE], 4, "two objects, two items");
    parse(
        &set,
        "[{\"instruction\": \"Explain six.\"}, {\"instruction\": \"\", \"answer\": \"An answer.\"},"
        " {\"instruction\": 6, \"answer\": \"An answer.\"}]",
        &r);
    cr_expect_eq(set.dropped[DSGEN_DROP_MISSING_FIELD], 3);
    parse(&set, "[{\"instruction\": \"Explain one.\", \"answer\": \"One is a number again.\"}]",
          &r);
    cr_expect_eq(set.dropped[DSGEN_DROP_DUPLICATE], 1);
    cr_expect_eq(set.n, 5);
    dsgen_set_free(&set);

    dsgen_set_init(&set, DSGEN_PREFERENCE, 5, 10);
    parse(&set,
          "{\"triples\": [{\"instruction\": \"Explain it.\", \"rejected\": \"It is a thing.\", "
          "\"chosen\": \"The extract. It says things.\"}, {\"instruction\": \"Explain more.\", "
          "\"rejected\": \"More.\", \"chosen\": \"Not in the extract at all.\"}, "
          "{\"instruction\": \"Explain less.\", \"chosen\": \"It says things.\"}]}",
          &r);
    cr_expect_eq(r.kept, 2);
    cr_expect_eq(r.not_verbatim, 1);
    cr_expect_eq(set.dropped[DSGEN_DROP_MISSING_FIELD], 1);
    dsgen_set_free(&set);
}

/* With its extracts' sources, each sample names its chunk and document, and the train step's
 * reader gives them back; without, the file is the Handbook's layout as before. */
Test(dsgen, samples_name_their_extract_and_document) {
    corpus c;
    demo_corpus(&c);
    dsgen_set set;
    generate(&c, DSGEN_INSTRUCTION, 42, &set);
    dsgen_source *src = calloc(c.n, sizeof(*src));
    char(*docs)[32] = calloc(c.n, sizeof(*docs));
    cr_assert(src && docs);
    for (size_t e = 0; e < c.n; e++) {
        snprintf(docs[e], sizeof(docs[e]), "doc-%zu", e / 3);
        src[e] = (dsgen_source){c.id[e], docs[e]};
    }
    unsigned char *is_test = malloc(set.n);
    cr_assert_eq(dsgen_split(&set, 0.2, 42, is_test), 0);
    char path[64], plain[64], err[256];
    snprintf(path, sizeof(path), "/tmp/dsgen_src_%d.json", (int)getpid());
    snprintf(plain, sizeof(plain), "/tmp/dsgen_plain_%d.json", (int)getpid());
    cr_assert_eq(dsgen_write(&set, is_test, 0.2, src, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(dsgen_write(&set, is_test, 0.2, NULL, plain, err, sizeof(err)), 0, "%s", err);
    for (int t = 0; t < 2; t++) {
        dataset *d = NULL, *p = NULL;
        const char *split = t ? "test" : "train";
        cr_assert_eq(dataset_load(path, DATASET_INSTRUCTION, split, &d, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_eq(dataset_load(plain, DATASET_INSTRUCTION, split, &p, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_eq(d->n, p->n);
        for (size_t i = 0; i < d->n; i++) {
            size_t k = 0; /* the sample, found by its instruction */
            while (k < set.n && strcmp(set.s[k].instruction, d->ex[i].a) != 0)
                k++;
            cr_assert_lt(k, set.n);
            cr_assert_str_eq(d->ex[i].extract_id, c.id[set.s[k].source], "%s sample %zu", split, i);
            cr_assert_str_eq(d->ex[i].document_id, docs[set.s[k].source]);
            cr_assert_null(p->ex[i].extract_id, "no sources given, none written");
            cr_assert_str_eq(p->ex[i].a, d->ex[i].a, "the same samples in the same order");
        }
        dataset_free(d);
        dataset_free(p);
    }
    unlink(path);
    unlink(plain);
    free(is_test);
    free(src);
    free(docs);
    dsgen_set_free(&set);
    corpus_free(&c);
}
