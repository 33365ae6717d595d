#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "require.h"
#include "formats.h"

static char dir[64];
static char err[512];

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-formats-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(formats, .init = setup, .fini = teardown);

static char *path_of(const char *name) {
    static char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *name, const void *data, size_t len) {
    FILE *f = fopen(path_of(name), "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

Test(formats, jsonl_round_trip) {
    jsonl_writer w;
    cr_assert_eq(jsonl_create(&w, path_of("r.jsonl"), err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < 3; i++) {
        bson_t *doc = BCON_NEW("id", BCON_INT32(i), "text", BCON_UTF8("héllo \"wörld\"\n"), "tags",
                               "[", BCON_UTF8("a"), BCON_UTF8("b"), "]");
        cr_assert_eq(jsonl_write(&w, doc, err, sizeof(err)), 0, "%s", err);
        bson_destroy(doc);
    }
    cr_assert_eq(jsonl_close(&w, err, sizeof(err)), 0);
    jsonl_reader r;
    cr_assert_eq(jsonl_open(&r, path_of("r.jsonl"), err, sizeof(err)), 0, "%s", err);
    bson_t doc;
    int n = 0;
    while (jsonl_next(&r, &doc, err, sizeof(err)) == 1) {
        bson_iter_t it;
        cr_assert(bson_iter_init_find(&it, &doc, "text"));
        cr_expect_str_eq(bson_iter_utf8(&it, NULL), "héllo \"wörld\"\n");
        cr_assert(bson_iter_init_find(&it, &doc, "id"));
        cr_expect_eq(bson_iter_as_int64(&it), n);
        bson_destroy(&doc);
        n++;
    }
    cr_expect_eq(n, 3);
    jsonl_close_reader(&r);
}

Test(formats, jsonl_names_the_bad_record) {
    const char *text = "{\"a\": 1}\n{\"a\": 2}\n{\"a\": \n";
    write_bytes("bad.jsonl", text, strlen(text));
    jsonl_reader r;
    cr_assert_eq(jsonl_open(&r, path_of("bad.jsonl"), err, sizeof(err)), 0);
    bson_t doc;
    cr_assert_eq(jsonl_next(&r, &doc, err, sizeof(err)), 1);
    bson_destroy(&doc);
    cr_assert_eq(jsonl_next(&r, &doc, err, sizeof(err)), 1);
    bson_destroy(&doc);
    cr_expect_eq(jsonl_next(&r, &doc, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "record 3 is not JSON") != NULL, "%s", err);
    jsonl_close_reader(&r);
}

/* A line that is not JSON after good ones: every good one is read first
 * (libbson's stream reader lost the one before), and the bad one is named
 * by its own number; blank lines are skipped. */
Test(formats, jsonl_reads_every_record_before_a_bad_line) {
    const char *text = "{\"a\": 1}\n\n{\"a\": 2}\nnot json\n{\"a\": 4}\n";
    write_bytes("bad2.jsonl", text, strlen(text));
    jsonl_reader r;
    cr_assert_eq(jsonl_open(&r, path_of("bad2.jsonl"), err, sizeof(err)), 0);
    bson_t doc;
    bson_iter_t it;
    for (int want = 1; want <= 2; want++) {
        cr_assert_eq(jsonl_next(&r, &doc, err, sizeof(err)), 1, "record %d: %s", want, err);
        cr_expect(bson_iter_init_find(&it, &doc, "a") && bson_iter_as_int64(&it) == want);
        bson_destroy(&doc);
    }
    cr_expect_eq(jsonl_next(&r, &doc, err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "record 4 is not JSON") != NULL, "%s", err);
    jsonl_close_reader(&r);
    cr_expect_eq(jsonl_open(&r, path_of("none.jsonl"), err, sizeof(err)), -ENOENT);
}

Test(formats, matrix_round_trip_and_refusals) {
    float data[6] = {1, 2, 3, 4.5f, -5, 6e-3f};
    cr_assert_eq(matrix_write(path_of("m"), data, 2, 3, err, sizeof(err)), 0, "%s", err);
    matrix m;
    cr_assert_eq(matrix_open(&m, path_of("m"), err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(m.rows, 2);
    cr_expect_eq(m.cols, 3);
    cr_expect_eq(memcmp(m.data, data, sizeof(data)), 0);
    matrix_close(&m);

    /* Truncated: a value short. */
    FILE *f = fopen(path_of("m"), "rb");
    unsigned char bytes[64];
    size_t len = fread(bytes, 1, sizeof(bytes), f);
    fclose(f);
    write_bytes("short", bytes, len - 4);
    cr_expect_eq(matrix_open(&m, path_of("short"), err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "a 2x3 matrix needs more bytes than the file holds") != NULL, "%s", err);
    /* Trailing bytes. */
    bytes[len] = 0;
    write_bytes("long", bytes, len + 1);
    cr_expect_eq(matrix_open(&m, path_of("long"), err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "does not match its header") != NULL, "%s", err);
    /* A header claiming more rows than any file could hold. */
    memset(bytes + 16, 0xFF, 8);
    write_bytes("huge", bytes, len);
    cr_expect_eq(matrix_open(&m, path_of("huge"), err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "needs more bytes than the file holds") != NULL, "%s", err);
    write_bytes("notmatrix", "hello", 5);
    cr_expect_eq(matrix_open(&m, path_of("notmatrix"), err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "not a sluice matrix") != NULL, "%s", err);
    /* Another version (found by fuzz_models: the message once read the
     * header after unmapping it). */
    bytes[4] = 7;
    write_bytes("version", bytes, len);
    cr_expect_eq(matrix_open(&m, path_of("version"), err, sizeof(err)), -EINVAL);
    cr_expect(strstr(err, "matrix version 7, dtype 1") != NULL, "%s", err);
}

Test(formats, safetensors_round_trip) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[2] = {-1, 0.25f};
    uint64_t sa[2] = {2, 3}, sb[1] = {2};
    st_write_tensor ts[2] = {{"layer.weight", a, 2, sa}, {"layer.bias", b, 1, sb}};
    cr_assert_eq(safetensors_write(path_of("m.safetensors"), ts, 2, err, sizeof(err)), 0, "%s",
                 err);
    safetensors st;
    cr_assert_eq(safetensors_open(&st, path_of("m.safetensors"), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.n, 2);
    const st_tensor *w = safetensors_find(&st, "layer.weight");
    cr_assert_not_null(w);
    cr_expect_eq(w->dtype, ST_F32);
    cr_expect_eq(w->ndim, 2);
    cr_expect_eq(w->shape[1], 3);
    cr_expect_eq(memcmp(w->data, a, sizeof(a)), 0);
    cr_expect_eq((uintptr_t)w->data % 8, 0, "data is 8-byte aligned");
    const st_tensor *bias = safetensors_find(&st, "layer.bias");
    cr_expect_eq(memcmp(bias->data, b, sizeof(b)), 0);
    cr_expect_null(safetensors_find(&st, "nope"));
    safetensors_close(&st);
}

/* A safetensors file from a header text and a data size (zero bytes). */
static void write_st(const char *name, const char *header, size_t data) {
    size_t hl = strlen(header);
    unsigned char *buf = calloc(1, 8 + hl + data);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(name, buf, 8 + hl + data);
    free(buf);
}

static void expect_refused(const char *name, const char *needle) {
    safetensors st;
    int rc = safetensors_open(&st, path_of(name), err, sizeof(err));
    cr_expect_eq(rc, -EINVAL, "%s: %d", name, rc);
    cr_expect(strstr(err, needle) != NULL, "%s: '%s' not in '%s'", name, needle, err);
}

Test(formats, safetensors_refusals) {
    write_bytes("tiny", "abc", 3);
    expect_refused("tiny", "too short for a safetensors file");
    write_bytes("hugeheader", "\xff\xff\xff\xff\x00\x00\x00\x00{}", 10);
    expect_refused("hugeheader", "the header claims 4294967295 bytes");
    write_st("notjson", "{not json", 0);
    expect_refused("notjson", "the header is not a JSON object");
    write_st("dtype", "{\"t\": {\"dtype\": \"F7\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_refused("dtype", "tensor 't' has unknown dtype 'F7'");
    write_st("shape", "{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8);
    expect_refused("shape", "tensor 't' is 8 bytes, but its shape and dtype F32 need 12");
    write_st("past", "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8);
    expect_refused("past", "ends at byte 16, past the 8 bytes of data (truncated?)");
    write_st("overlap",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12);
    expect_refused("overlap", "two tensors overlap");
    write_st("negative", "{\"t\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
             4);
    expect_refused("negative", "has a bad shape");
    write_st("missing", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
    expect_refused("missing", "lacks dtype, shape or data_offsets");
    write_st("reversed", "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}",
             4);
    expect_refused("reversed", "bad data_offsets");
}

Test(formats, safetensors_written_by_an_independent_writer) {
    if (access("/usr/bin/python3", X_OK) != 0)
        SKIP_UNLESS_REQUIRED("/usr/bin/python3 is not installed");
    /* The format as its specification describes it, written with Python's
     * struct and json modules only. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,struct\n"
             "vals=[0.5,-1.5,2.0,3.25]\n"
             "data=struct.pack(\"<4f\",*vals)+struct.pack(\"<2q\",7,-9)\n"
             "h=json.dumps({\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\","
             "\"shape\":[2,2],"
             "\"data_offsets\":[0,16]},\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":["
             "16,32]}}).encode()\n"
             "open(\"%s\",\"wb\").write(struct.pack(\"<Q\",len(h))+h+data)'",
             path_of("py.safetensors"));
    cr_assert_eq(system(cmd), 0);
    safetensors st;
    cr_assert_eq(safetensors_open(&st, path_of("py.safetensors"), err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.n, 2);
    const st_tensor *w = safetensors_find(&st, "w");
    const float *f = w->data;
    cr_expect(f[0] == 0.5f && f[1] == -1.5f && f[3] == 3.25f);
    const st_tensor *ids = safetensors_find(&st, "ids");
    cr_expect_eq(ids->dtype, ST_I64);
    int64_t v[2];
    memcpy(v, ids->data, sizeof(v));
    cr_expect(v[0] == 7 && v[1] == -9);
    safetensors_close(&st);
}
