#include <criterion/criterion.h>
#include <errno.h>
#include <lmdb.h>
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "diag.h"
#include "error.h"
#include "fsutil.h"
#include "hmap.h"
#include "suggest.h"

#include <uv.h>

/* Every domain's codes by their own names; none falls through to the C
 * library's "Unknown error N". */
Test(error, names_every_domain) {
    cr_expect_str_eq(sluice_strerror(0), "success");
    cr_expect_str_eq(sluice_strerror(-ENOENT), strerror(ENOENT));
    cr_expect_str_eq(sluice_strerror(UV_ENOENT), strerror(ENOENT));
    cr_expect_str_eq(sluice_strerror(UV_EOF), uv_strerror(UV_EOF));
    cr_expect_str_eq(sluice_strerror(UV_EAI_NONAME), uv_strerror(UV_EAI_NONAME));
    cr_expect_str_eq(sluice_strerror(SL_EINVAL), sl_strerror(SL_EINVAL));
    cr_expect_str_eq(sluice_strerror(SL_ECANCELLED), "cancelled");
    cr_expect_str_eq(sluice_strerror(MDB_MAP_FULL), mdb_strerror(MDB_MAP_FULL));
    cr_expect_str_eq(sluice_strerror(MDB_KEYEXIST), mdb_strerror(MDB_KEYEXIST));
    cr_expect_str_eq(sluice_strerror(MDB_LAST_ERRCODE), mdb_strerror(MDB_LAST_ERRCODE));
    int codes[] = {-ENOMEM, -EUCLEAN, UV_ECHARSET, UV_EAI_AGAIN, SL_EFAIL, SL_EIO, MDB_CORRUPTED};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        cr_expect_null(strstr(sluice_strerror(codes[i]), "Unknown"), "%d: %s", codes[i],
                       sluice_strerror(codes[i]));
}

/* The ranges are apart: a code between them, or positive, is no code. */
Test(error, refuses_codes_of_no_domain) {
    cr_expect_str_eq(sluice_strerror(-3500), "unknown error code");
    cr_expect_str_eq(sluice_strerror(-10000), "unknown error code");
    cr_expect_str_eq(sluice_strerror(SL_ERANGE_END - 1), "unknown error code");
    cr_expect_str_eq(sluice_strerror(MDB_KEYEXIST - 1), "unknown error code");
    cr_expect_str_eq(sluice_strerror(MDB_LAST_ERRCODE + 1), "unknown error code");
    cr_expect_str_eq(sluice_strerror(5), "unknown error code");
}

Test(arena, allocations_are_aligned_and_large_ones_work) {
    arena a = ARENA_INIT;
    for (int i = 1; i < 2000; i += 37) {
        void *p = arena_alloc(&a, (size_t)i);
        cr_assert_not_null(p);
        cr_expect_eq((uintptr_t)p % 16, 0);
        memset(p, 0xAB, (size_t)i);
    }
    char *big = arena_alloc(&a, 1 << 20);
    cr_assert_not_null(big);
    memset(big, 1, 1 << 20);
    cr_expect_str_eq(arena_printf(&a, "%s-%d", "x", 42), "x-42");
    cr_expect_null(arena_alloc(&a, SIZE_MAX - 4), "an impossible size fails cleanly");
    cr_expect_null(arena_calloc(&a, SIZE_MAX / 2, 4));
    arena_free(&a);
}

Test(buf, appends_and_detaches) {
    buf b = BUF_INIT;
    cr_expect_str_eq(buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    cr_expect_eq(buf_failed(&b), 0);
    cr_expect(strncmp(buf_str(&b), "0,1,2,", 6) == 0);
    char *s = buf_detach(&b);
    cr_expect_eq(strlen(s), 3890);
    free(s);
    cr_expect_eq(b.len, 0);
}

Test(hmap, put_get_and_growth) {
    hmap m = HMAP_INIT;
    char keys[5000][8];
    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%u", i);
        cr_assert_eq(hmap_put(&m, keys[i], strlen(keys[i]), i, NULL), 0);
    }
    uint32_t v, existing = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        cr_assert(hmap_get(&m, keys[i], strlen(keys[i]), &v));
        cr_assert_eq(v, i);
    }
    cr_expect_eq(hmap_put(&m, "k7", 2, 99, &existing), 1);
    cr_expect_eq(existing, 7);
    cr_expect_eq(hmap_set(&m, "k7", 2, 99), 0);
    cr_expect(hmap_get(&m, "k7", 2, &v) && v == 99);
    cr_expect_not(hmap_get(&m, "nope", 4, &v));
    hmap_free(&m);
}

Test(suggest, close_words_only) {
    const char *keys[] = {"uses", "with", "inputs", "after", "retries", "timeout"};
    cr_expect_str_eq(suggest_closest("usse", keys, 6), "uses");
    cr_expect_str_eq(suggest_closest("input", keys, 6), "inputs");
    cr_expect_str_eq(suggest_closest("retires", keys, 6), "retries");
    cr_expect_null(suggest_closest("zzz", keys, 6));
    cr_expect_null(suggest_closest("uses", keys, 6), "an exact match is no typo");
    cr_expect_null(suggest_closest("ab", keys, 6));
}

Test(diag, printed_sorted_by_position_within_each_file) {
    diag_list d = DIAG_LIST_INIT;
    diag_add(&d, DIAG_ERROR, "b.yaml", 9, 1, "late");
    diag_add(&d, DIAG_ERROR, "b.yaml", 2, 5, "early %d", 1);
    diag_add(&d, DIAG_WARNING, "a.yaml", 1, 1, "other file");
    diag_add(&d, DIAG_ERROR, NULL, 0, 0, "no file");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    diag_print(&d, f);
    fclose(f);
    cr_expect_str_eq(out, "b.yaml:2:5: error: early 1\n"
                          "b.yaml:9:1: error: late\n"
                          "a.yaml:1:1: warning: other file\n"
                          "sluice: error: no file\n");
    cr_expect_eq(d.errors, 3);
    cr_expect_eq(d.warnings, 1);
    free(out);
    diag_clear(&d);
}

Test(diag, a_flood_is_counted_not_kept) {
    diag_list d = DIAG_LIST_INIT;
    for (int i = 0; i < DIAG_MAX_KEPT + 10; i++)
        diag_add(&d, DIAG_ERROR, "f", 1, 1, "e %d", i);
    cr_expect_eq(d.n, DIAG_MAX_KEPT);
    cr_expect_eq(d.errors, DIAG_MAX_KEPT + 10);
    cr_expect_eq(d.dropped, 10);
    diag_clear(&d);
}

/* The instances of a fan-out step share their source: one mistake in it is
 * kept once, however many instances report it (and still counted). */
Test(diag, the_same_diagnostic_is_kept_once) {
    diag_list d = DIAG_LIST_INIT;
    for (int i = 0; i < 3; i++) {
        diag_add(&d, DIAG_ERROR, "f", 4, 2, "same");
        diag_add(&d, DIAG_ERROR, "f", 4, 2, "other %d", i);
    }
    diag_add(&d, DIAG_WARNING, "f", 4, 2, "same");
    diag_add(&d, DIAG_ERROR, "g", 4, 2, "same");
    diag_add(&d, DIAG_ERROR, "f", 4, 3, "same");
    cr_expect_eq(d.n, 7,
                 "one 'same', three 'other', and the three that differ in level, file or "
                 "place");
    cr_expect_eq(d.errors, 8);
    cr_expect_eq(d.dropped, 0);
    diag_clear(&d);
}

/* ---- fs_walk, copy_tree, remove_tree ---- */

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static int record(const char *path, const char *rel, fs_visit what, void *ctx) {
    (void)path;
    char *log = ctx;
    size_t n = strlen(log);
    snprintf(log + n, 512 - n, "%s%s ",
             what == FS_FILE        ? "f:"
             : what == FS_DIR_ENTER ? "+"
                                    : "-",
             *rel ? rel : ".");
    return 0;
}

Test(fsutil, trees_are_walked_in_name_order_copied_and_removed_read_only_parts_too) {
    char root[] = "/tmp/sluice-fsutil-XXXXXX", src[64], copy[64], sub[96], path[128];
    cr_assert_not_null(mkdtemp(root));
    snprintf(src, sizeof(src), "%s/src", root);
    snprintf(copy, sizeof(copy), "%s/copy", root);
    cr_assert_eq(mkdir(src, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/b", src);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(path, sizeof(path), "%s/z.txt", src);
    put(path, "zed");
    snprintf(path, sizeof(path), "%s/a.txt", src);
    put(path, "ay");
    snprintf(path, sizeof(path), "%s/inner", sub);
    put(path, "in");
    char log[512] = "";
    cr_assert_eq(fs_walk(src, record, log), 0);
    cr_expect_str_eq(log, "+. f:a.txt +b f:b/inner -b f:z.txt -. ");
    cr_assert_eq(copy_tree(src, copy), 0);
    snprintf(path, sizeof(path), "%s/b/inner", copy);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char got[8] = "";
    cr_expect_not_null(fgets(got, sizeof(got), f));
    fclose(f);
    cr_expect_str_eq(got, "in");
    cr_expect_eq(copy_tree(src, sub), -EINVAL, "a copy into itself");
    /* The store's objects are read-only: removing them must still work. */
    snprintf(path, sizeof(path), "%s/b", copy);
    cr_assert_eq(chmod(path, 0555), 0);
    cr_expect_eq(remove_tree(copy), 0);
    cr_expect_eq(path_exists(copy), 0);
    cr_expect_eq(remove_tree(root), 0);
    cr_expect_eq(path_exists(root), 0);
    cr_expect_eq(remove_tree(root), -ENOENT);
}
