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

Test(artifacts_sdk, json_files_round_trip) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t *doc = BCON_NEW("model_type", BCON_UTF8("gpt2"), "n_layer", BCON_INT32(2));
    cr_assert_eq(sl_json_write(path, doc, err, sizeof(err)), 0, "%s", err);
    bson_destroy(doc);
    cr_assert_eq(sl_json_read(path, &doc, err, sizeof(err)), 0, "%s", err);
    bson_iter_t it;
    cr_assert(bson_iter_init_find(&it, doc, "n_layer") && bson_iter_int32(&it) == 2);
    bson_destroy(doc);
}

/* An empty file was handed to libbson as a NULL buffer, which aborts. */
Test(artifacts_sdk, an_empty_json_file_is_refused_not_a_crash) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/empty.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    bson_t *doc = NULL;
    cr_expect_eq(sl_json_read(path, &doc, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, path) && strstr(err, "empty"), "%s", err);
}

/* F32 tensors written, read back by name and in order; the header carries
 * the format Hugging Face's loaders require. */
Test(artifacts_sdk, tensors_round_trip_with_their_format) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1.5f, 0.25f};
    const uint64_t sa[2] = {2, 3}, sb[1] = {2};
    sl_tensors_writer *w;
    cr_assert_eq(sl_tensors_writer_new(&w, err, sizeof(err)), 0);
    cr_assert_eq(sl_tensors_add_f32(w, "wte.weight", a, 2, sa, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sl_tensors_add_f32(w, "ln_f.bias", b, 1, sb, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sl_tensors_save(w, path, err, sizeof(err)), 0, "%s", err);
    sl_tensors_writer_free(w);

    FILE *f = fopen(path, "rb");
    char head[256] = {0};
    cr_assert(f && fread(head, 1, sizeof(head) - 1, f) > 8);
    fclose(f);
    cr_expect(strstr(head + 8, "\"__metadata__\"") && strstr(head + 8, "\"pt\""), "%s", head + 8);

    sl_tensors *t;
    cr_assert_eq(sl_tensors_open(path, &t, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(sl_tensors_count(t), 2);
    const sl_tensor *x = sl_tensors_find(t, "wte.weight");
    cr_assert_not_null(x);
    cr_expect_eq(sl_tensor_dtype(x), SL_DTYPE_F32);
    cr_expect_eq(sl_tensor_ndim(x), 2);
    cr_expect_eq(sl_tensor_dim(x, 1), 3);
    cr_expect_eq(sl_tensor_dim(x, 2), 0);
    cr_expect_eq(sl_tensor_count(x), 6);
    float back[6];
    cr_assert_eq(sl_tensor_to_f32(x, back, 6, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(memcmp(back, a, sizeof(a)), 0);
    cr_expect_eq(sl_tensor_to_f32(x, back, 5, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "wte.weight") != NULL, "%s", err);
    cr_expect_str_eq(sl_tensor_name(sl_tensors_at(t, 1)), "ln_f.bias");
    cr_expect_null(sl_tensors_at(t, 2));
    cr_expect_null(sl_tensors_find(t, "lm_head.weight"));
    sl_tensors_close(t);
}

/* Half and bfloat16 weights (how most checkpoints ship) widen exactly. */
Test(artifacts_sdk, f16_and_bf16_tensors_widen_to_f32) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/half.safetensors", dir);
    const char *header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}";
    uint64_t len = strlen(header);
    /* F16: 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal); BF16: 1.0, -0.5 */
    const unsigned char data[12] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b,
                                    0x01, 0x00, 0x80, 0x3f, 0x00, 0xbf};
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned char size_le[8];
    for (int i = 0; i < 8; i++)
        size_le[i] = (unsigned char)(len >> (8 * i));
    fwrite(size_le, 1, 8, f);
    fwrite(header, 1, len, f);
    fwrite(data, 1, sizeof(data), f);
    fclose(f);
    sl_tensors *t;
    cr_assert_eq(sl_tensors_open(path, &t, err, sizeof(err)), 0, "%s", err);
    float h[4], b[2];
    cr_assert_eq(sl_tensor_to_f32(sl_tensors_find(t, "h"), h, 4, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(h[0], 1.0f);
    cr_expect_eq(h[1], -2.0f);
    cr_expect_eq(h[2], 65504.0f);
    cr_expect_eq(h[3], 0x1p-24f);
    cr_assert_eq(sl_tensor_to_f32(sl_tensors_find(t, "b"), b, 2, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(b[0], 1.0f);
    cr_expect_eq(b[1], -0.5f);
    cr_expect_str_eq(sl_dtype_name(sl_tensor_dtype(sl_tensors_find(t, "b"))), "BF16");
    sl_tensors_close(t);
}

/* sl_file_map (version 3): a file's bytes as written, an empty file as no
 * mapping, a missing one refused with its path. */
Test(artifacts_sdk, a_file_maps_whole_and_an_empty_one_maps_to_nothing) {
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/bytes", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fputs("index bytes\n", f);
    fclose(f);
    void *map;
    size_t size;
    cr_assert_eq(sl_file_map(path, &map, &size, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(size, 12);
    cr_expect_eq(memcmp(map, "index bytes\n", 12), 0);
    sl_file_unmap(map, size);
    cr_assert_eq(truncate(path, 0), 0);
    cr_assert_eq(sl_file_map(path, &map, &size, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(size, 0);
    cr_expect_null(map);
    sl_file_unmap(map, size);
    snprintf(path, sizeof(path), "%s/absent", dir);
    cr_expect_eq(sl_file_map(path, &map, &size, err, sizeof(err)), -ENOENT);
    cr_expect(strstr(err, path) != NULL, "%s", err);
    cr_expect_geq(SL_ARTIFACTS_VERSION, 3);
}
