/* test_mongo.c - the MongoDB warehouse against a real server: the
 * Handbook's export imported (twice: the counts stay), exported, and
 * compared with what the LMDB warehouse exports of the same data.
 *
 * Runs only when SLUICE_TEST_MONGO_URI names a server (any mongodb:// URI;
 * its database part is replaced); otherwise each test says so on stderr and
 * is skipped. Each test works in a database of its own with a random name,
 * dropped by the fixture's teardown. */
#include <criterion/criterion.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner.h"

#define DATA_DIR SLUICE_SOURCE_DIR "/../shared/handbook/data_warehouse_raw_data"

static const char *const collections[] = {"users", "articles", "posts", "repositories"};
static const char *const export_files[] = {"UserDocument.json", "ArticleDocument.json",
                                           "PostDocument.json", "RepositoryDocument.json"};

static char db_name[64];  /* this test's database, "" until made */
static char *db_uri;      /* the server's URI naming db_name */
static char work_dir[64]; /* a scratch folder, "" until made */

/* Skips the running test, saying why on stderr. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "skipped: " __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                                       \
        cr_skip_test(__VA_ARGS__);                                                                 \
    } while (0)

/* base with its database part (between the hosts' '/' and '?') replaced by
 * name; the caller frees it. A password cannot hold an unescaped '/', so the
 * first '/' after the scheme begins the database. */
static char *uri_with_database(const char *base, const char *name) {
    const char *hosts = strstr(base, "://");
    cr_assert_not_null(hosts, "SLUICE_TEST_MONGO_URI: not a mongodb:// URI: %s", base);
    hosts += 3;
    size_t host_len = strcspn(hosts, "/?");
    const char *rest = hosts + host_len; /* "", "/db...", "?opts" */
    const char *query = strchr(rest, '?');
    size_t prefix = (size_t)(hosts - base) + host_len;
    size_t size = strlen(base) + strlen(name) + 2;
    char *uri = malloc(size);
    cr_assert_not_null(uri);
    snprintf(uri, size, "%.*s/%s%s", (int)prefix, base, name, query ? query : "");
    return uri;
}

/* Makes this test's database name, URI and scratch folder, or skips. */
static void live_setup(void) {
    const char *base = getenv("SLUICE_TEST_MONGO_URI");
    if (!base || !*base)
        SKIP("SLUICE_TEST_MONGO_URI is not set");
    struct stat st;
    if (stat(DATA_DIR "/UserDocument.json", &st) != 0)
        SKIP("the Handbook's export is not at %s", DATA_DIR);
    unsigned char bytes[6];
    FILE *f = fopen("/dev/urandom", "rb");
    cr_assert(f && fread(bytes, 1, sizeof(bytes), f) == sizeof(bytes));
    fclose(f);
    snprintf(db_name, sizeof(db_name), "sluice_test_%02x%02x%02x%02x%02x%02x", bytes[0], bytes[1],
             bytes[2], bytes[3], bytes[4], bytes[5]);
    db_uri = uri_with_database(base, db_name);
    snprintf(work_dir, sizeof(work_dir), "/tmp/sluice-mongo-XXXXXX");
    cr_assert_not_null(mkdtemp(work_dir));
}

/* A client for the checks and the clean-up (the caller destroys it). */
static mongoc_client_t *connect_client(void) {
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(getenv("SLUICE_TEST_MONGO_URI"), &error);
    cr_assert_not_null(uri, "SLUICE_TEST_MONGO_URI: %s", error.message);
    mongoc_client_t *client = mongoc_client_new_from_uri_with_error(uri, &error);
    mongoc_uri_destroy(uri);
    cr_assert_not_null(client, "%s", error.message);
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    return client;
}

static void live_teardown(void) {
    if (*db_name) {
        mongoc_client_t *client = connect_client();
        mongoc_database_t *db = mongoc_client_get_database(client, db_name);
        bson_error_t error;
        cr_expect(mongoc_database_drop(db, &error), "dropping %s: %s", db_name, error.message);
        mongoc_database_destroy(db);
        mongoc_client_destroy(client);
        *db_name = '\0';
    }
    free(db_uri);
    db_uri = NULL;
    if (*work_dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work_dir);
        cr_expect_eq(system(cmd), 0);
        *work_dir = '\0';
    }
}

/* Each test runs in a process of its own: the driver is set up and torn
 * down around it, and teardown drops the database whether the test passed,
 * failed or was skipped. */
static void live_init(void) { mongoc_init(); }

static void live_fini(void) {
    live_teardown();
    mongoc_cleanup();
}

TestSuite(mongo, .init = live_init, .fini = live_fini);

/* The number of documents in each collection of this test's database. */
static void count_collections(int64_t counts[4]) {
    mongoc_client_t *client = connect_client();
    for (int i = 0; i < 4; i++) {
        mongoc_collection_t *coll = mongoc_client_get_collection(client, db_name, collections[i]);
        bson_t filter = BSON_INITIALIZER;
        bson_error_t error;
        counts[i] = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, &error);
        cr_assert_geq(counts[i], 0, "counting %s: %s", collections[i], error.message);
        bson_destroy(&filter);
        mongoc_collection_destroy(coll);
    }
    mongoc_client_destroy(client);
}

/* The documents in an export file, as the elements of {"a": [...]}. */
static bson_t *read_export(const char *dir, const char *file) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    char *json = slurp(path);
    cr_assert_not_null(json, "%s is missing", path);
    size_t size = strlen(json) + 8;
    char *wrapped = malloc(size);
    cr_assert_not_null(wrapped);
    snprintf(wrapped, size, "{\"a\":%s}", json);
    free(json);
    bson_error_t error;
    bson_t *all = bson_new_from_json((const uint8_t *)wrapped, -1, &error);
    free(wrapped);
    cr_assert_not_null(all, "%s: %s", path, error.message);
    return all;
}

/* doc with its "_id" first: MongoDB stores "_id" first whatever the order
 * it was given in, while LMDB keeps a document's bytes as they came. */
static void id_first(const bson_t *doc, bson_t *out) {
    bson_iter_t it;
    bson_init(out);
    if (bson_iter_init_find(&it, doc, "_id"))
        cr_assert(bson_append_iter(out, "_id", 3, &it));
    cr_assert(bson_iter_init(&it, doc));
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "_id") != 0)
            cr_assert(bson_append_iter(out, NULL, 0, &it));
}

/* Asserts the two exports of file hold the same documents in the same order,
 * field order within a document aside from where "_id" is. */
static void expect_same_export(const char *mongo_dir, const char *lmdb_dir, const char *file) {
    bson_t *a = read_export(mongo_dir, file), *b = read_export(lmdb_dir, file);
    bson_iter_t ia, ib, ea, eb;
    cr_assert(bson_iter_init_find(&ia, a, "a") && bson_iter_recurse(&ia, &ea));
    cr_assert(bson_iter_init_find(&ib, b, "a") && bson_iter_recurse(&ib, &eb));
    size_t index = 0;
    for (;;) {
        int more_a = bson_iter_next(&ea), more_b = bson_iter_next(&eb);
        cr_assert_eq(more_a, more_b, "%s: the exports differ in length at element %zu", file,
                     index);
        if (!more_a)
            break;
        uint32_t len_a, len_b;
        const uint8_t *data_a, *data_b;
        bson_iter_document(&ea, &len_a, &data_a);
        bson_iter_document(&eb, &len_b, &data_b);
        bson_t doc_a, doc_b, norm_a, norm_b;
        cr_assert(bson_init_static(&doc_a, data_a, len_a) &&
                  bson_init_static(&doc_b, data_b, len_b));
        id_first(&doc_a, &norm_a);
        id_first(&doc_b, &norm_b);
        if (!bson_equal(&norm_a, &norm_b)) {
            char *ja = bson_as_relaxed_extended_json(&norm_a, NULL);
            char *jb = bson_as_relaxed_extended_json(&norm_b, NULL);
            cr_expect_fail("%s element %zu: MongoDB's %.300s... LMDB's %.300s...", file, index, ja,
                           jb);
            bson_free(ja);
            bson_free(jb);
        }
        bson_destroy(&norm_a);
        bson_destroy(&norm_b);
        index++;
    }
    bson_destroy(a);
    bson_destroy(b);
}

/* Runs 'sluice warehouse VERB DIR' against store (and MongoDB when uri is
 * given) and asserts it succeeds. */
static void warehouse_run(const char *store, const char *verb, const char *dir, const char *uri) {
    char store_arg[128];
    snprintf(store_arg, sizeof(store_arg), "--store=%s", store);
    result r =
        uri ? RUN(store_arg, "warehouse", (char *)verb, (char *)dir, "--warehouse", (char *)uri)
            : RUN(store_arg, "warehouse", (char *)verb, (char *)dir);
    cr_assert_eq(r.status, 0, "sluice warehouse %s %s: exit %d: %s", verb, dir, r.status, r.err);
    result_free(&r);
}

Test(mongo, import_twice_keeps_the_counts) {
    live_setup();
    char store[128];
    snprintf(store, sizeof(store), "%s/store", work_dir);
    cr_assert_eq(mkdir(store, 0755), 0);

    warehouse_run(store, "import", DATA_DIR, db_uri);
    int64_t first[4], second[4];
    count_collections(first);
    cr_expect_gt(first[0], 0, "no users after the import");
    cr_expect_gt(first[1], 0, "no articles after the import");

    warehouse_run(store, "import", DATA_DIR, db_uri);
    count_collections(second);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(second[i], first[i],
                     "%s: %lld documents after the first import, %lld after "
                     "the second",
                     collections[i], (long long)first[i], (long long)second[i]);
}

Test(mongo, export_matches_lmdb) {
    live_setup();
    char store[128], mongo_out[128], lmdb_out[128];
    snprintf(store, sizeof(store), "%s/store", work_dir);
    snprintf(mongo_out, sizeof(mongo_out), "%s/mongo", work_dir);
    snprintf(lmdb_out, sizeof(lmdb_out), "%s/lmdb", work_dir);
    cr_assert_eq(mkdir(store, 0755), 0);

    warehouse_run(store, "import", DATA_DIR, db_uri);
    warehouse_run(store, "export", mongo_out, db_uri);
    warehouse_run(store, "import", DATA_DIR, NULL);
    warehouse_run(store, "export", lmdb_out, NULL);
    for (size_t i = 0; i < sizeof(export_files) / sizeof(*export_files); i++)
        expect_same_export(mongo_out, lmdb_out, export_files[i]);
}
