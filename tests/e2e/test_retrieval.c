/* test_retrieval.c - the back of the feature pipeline end to end, with the
 * real binary: the Handbook's 76 articles imported into the warehouse,
 * pipelines/feature_engineering.yaml (query, clean, chunk, embed, index,
 * evaluate) on them, then `sluice search` on the index it built; the
 * evaluation gate; a Hugging Face BERT folder (a tiny random one) as the
 * embedding model; and the search command's refusals. */
#include <math.h>

#include "runner.h"
#include "require.h"

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook/data_warehouse_raw_data"
#define FEATURES SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml"
#define PYTHON "/usr/bin/python3"

TestSuite(retrieval, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

static void import_handbook(void) {
    if (access(HANDBOOK, R_OK) != 0)
        SKIP_UNLESS_REQUIRED("needs ../shared/handbook");
    result r = RUN(test_store_arg, "warehouse", "import", HANDBOOK);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
}

/* The number after "key" : in JSON text, or NAN. */
static double json_number(const char *text, const char *key) {
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\" : ", key);
    const char *at = text ? strstr(text, needle) : NULL;
    return at ? strtod(at + strlen(needle), NULL) : NAN;
}

/* The string after the first "key" : " in text, into out. */
static const char *json_string(const char *text, const char *key, char *out, size_t size) {
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\" : \"", key);
    const char *at = text ? strstr(text, needle) : NULL;
    snprintf(out, size, "%.*s", at ? (int)strcspn(at + strlen(needle), "\"") : 0,
             at ? at + strlen(needle) : "");
    return out;
}

Test(retrieval, the_feature_pipeline_on_the_handbooks_articles_then_search) {
    import_handbook();
    result r = RUN_PIPELINE(FEATURES, "-p", "queries=queries/handbook.jsonl");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *at = strstr(r.out, "\"index\" : \"");
    cr_assert_not_null(at, "%s", r.out);
    /* "index" : "STORE/objects/ab/HASH": the hash after the last '/'. */
    const char *end = strchr(at + 12, '"'), *slash = end;
    while (slash > at && slash[-1] != '/')
        slash--;
    char index_id[16];
    snprintf(index_id, sizeof(index_id), "%.12s", slash);
    result_free(&r);

    /* The index by its artifact id, and by its folder. */
    r = RUN(test_store_arg, "search", index_id, "GraphSAGE", "-k", "1");
    cr_expect_eq(r.status, 0, "%s: %s", index_id, r.err);
    cr_expect(strstr(r.out, "graphsage") != NULL, "%s", r.out);
    result_free(&r);

    /* The 28 judged queries: every relevant article in the first five. */
    char *metrics = last_output("metrics");
    cr_expect_eq(json_number(metrics, "queries"), 28, "%s", metrics);
    cr_expect_geq(json_number(metrics, "recall@5"), 0.9, "%s", metrics);
    cr_expect_geq(json_number(metrics, "mrr@10"), 0.8, "%s", metrics);
    free(metrics);

    /* The index by the id of the step that built it. */
    r = RUN(test_store_arg, "search", "index",
            "abliteration: removing the refusal direction from a model's residual stream", "-k",
            "3", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char doc[64];
    cr_expect_str_eq(json_string(r.out, "document_id", doc, sizeof(doc)),
                     "5a56c009-565d-4dc4-9bd5-d2b1be2ca2d4", "%s", r.out);
    cr_expect_eq(count(r.out, "\"rank\" : "), 3, "%s", r.out);
    result_free(&r);

    /* The Handbook's filtered search: one author's chunks only. */
    r = RUN(test_store_arg, "search", "index", "fine-tuning a language model", "-k", "10",
            "--filter", "author=Paul Iusztin", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "\"author\" : \"Paul Iusztin\""), 10, "%s", r.out);
    cr_expect_eq(count(r.out, "Maxime Labonne"), 0);
    result_free(&r);
    r = RUN(test_store_arg, "search", "index", "fine-tuning", "--filter", "category=posts");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "no match\n", "the Handbook's data has no posts");
    result_free(&r);

    /* Each ranking on its own, in plain text. */
    const char *modes[] = {"dense", "bm25", "hybrid"};
    for (size_t i = 0; i < 3; i++) {
        r = RUN(test_store_arg, "search", "index", "GPTQ 4-bit quantization", "--mode",
                (char *)modes[i], "-k", "2");
        cr_expect_eq(r.status, 0, "%s: %s", modes[i], r.err);
        cr_expect(strncmp(r.out, " 1. ", 4) == 0 && strstr(r.out, "\n 2. ") != NULL, "%s: %s",
                  modes[i], r.out);
        cr_expect(strstr(r.out, "4-bit-quantization-with-gptq") != NULL, "%s: %s", modes[i], r.out);
        result_free(&r);
    }
}

Test(retrieval, the_embeddings_artifact_is_a_unit_row_per_chunk_with_its_payload) {
    import_handbook();
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import numpy' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("needs %s with numpy", PYTHON);
    result r = RUN_PIPELINE(FEATURES, "-p", "queries=queries/handbook.jsonl");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    char hash[80], folder[160];
    const char *at = strstr(r.out, "\"embeddings\" : \"");
    cr_assert_not_null(at, "%s", r.out);
    snprintf(hash, sizeof(hash), "%.*s", (int)strcspn(at + 16, "\""), at + 16);
    result_free(&r);
    snprintf(folder, sizeof(folder), "%s/embeddings", test_dir);
    r = RUN(test_store_arg, "artifacts", "export", strrchr(hash, '/') + 1, folder);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             PYTHON
             " -c 'import json,struct,sys,numpy as np\n"
             "raw=open(sys.argv[1]+\"/vectors.slmx\",\"rb\").read()\n"
             "rows,cols=struct.unpack(\"<QQ\",raw[16:32])\n"
             "v=np.frombuffer(raw[32:],dtype=\"<f4\").reshape(rows,cols)\n"
             "meta=[json.loads(l) for l in open(sys.argv[1]+\"/rows.jsonl\")]\n"
             "assert raw[:4]==b\"SLMX\" and rows==500 and len(meta)==500, (rows, len(meta))\n"
             "assert np.allclose(np.linalg.norm(v,axis=1),1,atol=1e-5)\n"
             "assert all(m[\"author_full_name\"] in (\"Paul Iusztin\",\"Maxime Labonne\") and "
             "m[\"category\"]==\"articles\" and len(m[\"document_id\"])==36 and m[\"link\"] "
             "for m in meta)' %s",
             folder);
    cr_expect_eq(system(cmd), 0, "the embeddings folder holds 500 unit rows and their payload");
}

Test(retrieval, a_document_named_several_ways_is_one_relevant_document) {
    import_handbook();
    /* The abliteration article by its id (twice), its link and its link's
     * path; and an entry the index does not hold, which halves recall. */
    char *q = write_test_file(
        test_dir, "queries.jsonl",
        "{\"query\": \"abliteration refusal direction\", \"relevant\": "
        "[\"5a56c009-565d-4dc4-9bd5-d2b1be2ca2d4\", \"5a56c009-565d-4dc4-9bd5-d2b1be2ca2d4\", "
        "\"https://maximelabonne.substack.com/p/uncensor-any-llm-with-abliteration-d30148b7d43e\", "
        "\"/p/uncensor-any-llm-with-abliteration-d30148b7d43e\"]}\n"
        "{\"query\": \"abliteration refusal direction\", \"relevant\": "
        "[\"5a56c009-565d-4dc4-9bd5-d2b1be2ca2d4\", \"no-such-document\"], "
        "\"filter\": {\"author\": \"Maxime Labonne\"}}\n");
    char param[300];
    snprintf(param, sizeof(param), "queries=%s", q);
    result r = RUN_PIPELINE(FEATURES, "-p", param, "-p", "min_recall_at_5=0");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "names no document of the index") != NULL, "%s", r.out);
    result_free(&r);
    char *report = last_output("report");
    cr_expect(strstr(report, "\"recall@1\" : 1.0,") != NULL, "the first query: %s", report);
    cr_expect(strstr(report, "\"recall@1\" : 0.5,") != NULL, "the second query: %s", report);
    cr_expect(strstr(report, "\"ranked\" : [ \"5a56c009-565d-4dc4-9bd5-d2b1be2ca2d4\", \"") != NULL,
              "what was found, best first: %s", report);
    free(report);
}

Test(retrieval, the_evaluation_gate_fails_the_run_below_its_threshold) {
    import_handbook();
    result r =
        RUN_PIPELINE(FEATURES, "-p", "queries=queries/handbook.jsonl", "-p", "min_recall_at_5=1.5");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "below the threshold 1.5") != NULL, "%s", r.out);
    result_free(&r);
}

Test(retrieval, a_hugging_face_bert_folder_embeds_indexes_and_searches) {
    if (access(PYTHON, X_OK) != 0 || system(PYTHON " -c 'import numpy' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("needs %s with numpy", PYTHON);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), PYTHON " %s/tests/ref/make_tiny_bert.py %s/bert", SLUICE_SOURCE_DIR,
             test_dir);
    cr_assert_eq(system(cmd), 0);
    write_test_file(
        test_dir, "chunks.jsonl",
        "{\"id\": \"c1\", \"content\": \"the quick brown fox\", \"document_id\": \"d1\", "
        "\"author_full_name\": \"Ada\", \"category\": \"posts\"}\n"
        "{\"id\": \"c2\", \"content\": \"hello world\", \"document_id\": \"d2\", "
        "\"author_full_name\": \"Ada\", \"category\": \"posts\"}\n"
        "{\"id\": \"c3\", \"content\": \"vector search models\", \"document_id\": "
        "\"d3\", \"author_full_name\": \"Bob\", \"category\": \"articles\"}\n");
    char *p = write_test_file(
        test_dir, "bert.yaml",
        "pipeline: bert_index\n"
        "steps:\n"
        "  load: {uses: shell, with: {run: 'cp @/chunks.jsonl c', outputs: {c: c}}}\n"
        "  embed: {uses: embed, inputs: {chunks: load.c}, with: {model: @/bert}}\n"
        "  index:\n"
        "    uses: index\n"
        "    inputs: {embeddings: embed.embeddings, chunks: load.c, model: embed.model}\n");
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "\"key\" : \"dim\", \"value\" : 32") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "search", "index", "brown fox", "--mode", "dense", "-k", "3", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "\"rank\" : "), 3, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "search", "index", "brown fox", "--filter", "author=Bob", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char doc[16];
    cr_expect_str_eq(json_string(r.out, "document_id", doc, sizeof(doc)), "d3", "%s", r.out);
    result_free(&r);
}

Test(retrieval, search_refuses_what_it_cannot_use_and_says_why) {
    result r = RUN(test_store_arg, "search", "index", "anything");
    expect_refused(r, 2, "no runs in");
    char folder[128];
    snprintf(folder, sizeof(folder), "%s", test_dir);
    r = RUN(test_store_arg, "search", folder, "anything");
    expect_refused(r, 2, "index.sluidx");
    r = RUN(test_store_arg, "search", folder, "q", "--filter", "colour=red");
    expect_refused(r, 2, "use author=NAME or category=NAME");
    r = RUN(test_store_arg, "search", folder, "q", "-k", "0");
    expect_refused(r, 2, "a number from 1 to 10000");
    r = RUN(test_store_arg, "search", folder, "q", "--mode", "fuzzy");
    expect_refused(r, 2, "use hybrid, dense or bm25");
}

/* An index object edited in place in the store is refused, as 'artifacts
 * cat' refuses any changed object, instead of being served. */
Test(retrieval, search_refuses_an_index_object_changed_in_the_store) {
    write_test_file(
        test_dir, "chunks.jsonl",
        "{\"id\": \"c1\", \"content\": \"the quick brown fox\", \"document_id\": \"d1\", "
        "\"author_full_name\": \"Ada\", \"category\": \"posts\"}\n"
        "{\"id\": \"c2\", \"content\": \"hello world\", \"document_id\": \"d2\", "
        "\"author_full_name\": \"Bob\", \"category\": \"posts\"}\n");
    char *p = write_test_file(
        test_dir, "small.yaml",
        "pipeline: small_index\n"
        "steps:\n"
        "  load: {uses: shell, with: {run: 'cp @/chunks.jsonl c', outputs: {c: c}}}\n"
        "  embed: {uses: embed, inputs: {chunks: load.c}}\n"
        "  index:\n"
        "    uses: index\n"
        "    inputs: {embeddings: embed.embeddings, chunks: load.c, model: embed.model}\n");
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *at = strstr(r.out, "\"index\" : \"");
    cr_assert_not_null(at, "%s", r.out);
    char object[512];
    snprintf(object, sizeof(object), "%.*s", (int)strcspn(at + 11, "\""), at + 11);
    result_free(&r);
    r = RUN(test_store_arg, "search", "index", "brown fox", "-k", "1");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "Ada") != NULL, "%s", r.out);
    result_free(&r);

    /* One byte of the index file changed, where a row's text is. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && sed -i 's/quick/QUICK/' '%s/index.sluidx'",
             object, object);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    r = RUN(test_store_arg, "search", "index", "brown fox", "-k", "1");
    cr_expect_eq(r.status, 2, "%s", r.out);
    cr_expect(strstr(r.err, "is missing or corrupt: its content no longer matches its hash") !=
                  NULL,
              "%s", r.err);
    cr_expect(strstr(r.out, "QUICK") == NULL, "%s", r.out);
    result_free(&r);
}
