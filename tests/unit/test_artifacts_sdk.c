/* <sluice/artifacts.h> through the shared library a plugin links: records
 * and matrices written and read back, and bad files refused with the file
 * named. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sluice/artifacts.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-sdk-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(artifacts_sdk, .init = make_dir, .fini = remove_dir);

Test(artifacts_sdk, records_round_trip) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/docs.jsonl", dir);
    sl_records_writer *w;
    cr_assert_eq(sl_records_create(path, &w, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < 3; i++) {
        bson_t *doc = BCON_NEW("id", BCON_INT32(i), "text", BCON_UTF8(i == 1 ? "b" : "a"));
        cr_assert_eq(sl_records_write(w, doc, err, sizeof(err)), 0, "%s", err);
        bson_destroy(doc);
    }
    cr_assert_eq(sl_records_close(w, err, sizeof(err)), 0, "%s", err);
    sl_records_reader *r;
    cr_assert_eq(sl_records_open(path, &r, err, sizeof(err)), 0, "%s", err);
    bson_t doc;
    int n = 0, rc;
    while ((rc = sl_records_next(r, &doc, err, sizeof(err))) == 1) {
        bson_iter_t it;
        cr_expect(bson_iter_init_find(&it, &doc, "id") && bson_iter_as_int64(&it) == n);
        cr_expect(bson_iter_init_find(&it, &doc, "text") &&
                  strcmp(bson_iter_utf8(&it, NULL), n == 1 ? "b" : "a") == 0);
        bson_destroy(&doc);
        n++;
    }
    cr_expect_eq(rc, 0, "%s", err);
    cr_expect_eq(n, 3);
    sl_records_free(r);
}

Test(artifacts_sdk, a_record_that_is_not_json_is_named) {
    char path[128], err[256] = "";
    snprintf(path, sizeof(path), "%s/bad.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("{\"a\": 1}\n{not json\n", f);
    fclose(f);
    sl_records_reader *r;
    cr_assert_eq(sl_records_open(path, &r, err, sizeof(err)), 0, "%s", err);
    bson_t doc;
    cr_assert_eq(sl_records_next(r, &doc, err, sizeof(err)), 1);
    bson_destroy(&doc);
    cr_expect_eq(sl_records_next(r, &doc, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, path) && strstr(err, "record 2"), "%s", err);
    sl_records_free(r);
}

Test(artifacts_sdk, matrices_round_trip_and_a_short_one_is_refused) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/m.bin", dir);
    const float v[6] = {1, 2, 3, 4, 5, 6.5f};
    cr_assert_eq(sl_matrix_write(path, v, 2, 3, err, sizeof(err)), 0, "%s", err);
    sl_matrix *m;
    cr_assert_eq(sl_matrix_open(path, &m, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sl_matrix_rows(m), 2);
    cr_expect_eq(sl_matrix_cols(m), 3);
    cr_expect_eq(memcmp(sl_matrix_data(m), v, sizeof(v)), 0);
    sl_matrix_close(m);
    cr_assert_eq(truncate(path, 40), 0); /* the header and 2 of 6 values */
    cr_expect_lt(sl_matrix_open(path, &m, err, sizeof(err)), 0);
    cr_expect_null(m);
    cr_expect(strstr(err, path) != NULL, "%s", err);
}
