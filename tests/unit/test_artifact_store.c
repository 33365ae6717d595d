/* Unit tests of artifacts/store.c: the content-addressed store's contract
 * (store.h): ingest moves a file or folder in under its SHA-256, the same
 * content is one object, links, special files and outputs still open for
 * writing are refused, verify tells a sound object from a missing or
 * altered one, and the lock keeps gc and runs apart. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"

/* sha256("hello\n"), as sha256sum prints it. */
#define HELLO_HASH "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

static char dir[64];
static artifact_store st;
static char why[512];

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char root[128];
    snprintf(root, sizeof(root), "%s/store", dir);
    cr_assert_eq(store_open(&st, root), 0);
}

static void teardown(void) {
    store_close(&st);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", dir, dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(artifact_store, .init = setup, .fini = teardown);

/* Writes dir/name (static path) with text. */
static const char *make_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const char *make_dir(const char *name) {
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(mkdir(path, 0755), 0);
    return path;
}

static char *text_of(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char text[256];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

Test(artifact_store, open_makes_the_objects_folder_and_an_absolute_root) {
    char objects[160];
    snprintf(objects, sizeof(objects), "%s/store/objects", dir);
    struct stat s;
    cr_expect_eq(stat(objects, &s), 0);
    cr_expect(S_ISDIR(s.st_mode));
    cr_expect_eq(st.root[0], '/');
    cr_expect_str_eq(st.objects + strlen(st.root), "/objects");
}

Test(artifact_store, open_on_a_file_fails_with_errno) {
    artifact_store other;
    const char *file = make_file("plain", "x");
    char root[300];
    snprintf(root, sizeof(root), "%s/sub", file);
    cr_expect_eq(store_open(&other, root), -ENOTDIR);
}

Test(artifact_store, a_file_goes_in_under_its_hash_read_only) {
    const char *path = make_file("out.txt", "hello\n");
    char src[256];
    snprintf(src, sizeof(src), "%s", path);
    object_info info;
    cr_assert_eq(store_ingest(&st, src, &info, why, sizeof(why)), 0, "%s", why);
    cr_expect_str_eq(info.hash, HELLO_HASH);
    cr_expect_eq(info.size, 6);
    cr_expect_eq(info.is_dir, 0);
    cr_expect_neq(access(src, F_OK), 0, "the output is gone: its content is the object");

    char obj[4096];
    store_object_path(&st, info.hash, obj, sizeof(obj));
    char want[4096];
    snprintf(want, sizeof(want), "%s/58/%s", st.objects, HELLO_HASH);
    cr_expect_str_eq(obj, want);
    cr_expect_str_eq(text_of(obj), "hello\n");
    struct stat s;
    cr_assert_eq(stat(obj, &s), 0);
    cr_expect_eq(s.st_mode & 0222, 0, "objects are never changed once in place");
    cr_expect_eq(store_verify(&st, info.hash), 0);
}

Test(artifact_store, the_same_content_twice_is_one_object) {
    object_info a, b;
    char first[256];
    snprintf(first, sizeof(first), "%s", make_file("one", "hello\n"));
    cr_assert_eq(store_ingest(&st, first, &a, why, sizeof(why)), 0, "%s", why);
    char second[256];
    snprintf(second, sizeof(second), "%s", make_file("two", "hello\n"));
    cr_assert_eq(store_ingest(&st, second, &b, why, sizeof(why)), 0, "%s", why);
    cr_expect_str_eq(a.hash, b.hash);
    cr_expect_neq(access(second, F_OK), 0, "the duplicate is removed");
    char fan[300];
    snprintf(fan, sizeof(fan), "ls '%s/58' | wc -l | grep -qx 1", st.objects);
    cr_expect_eq(system(fan), 0, "one object in its fan-out folder");
}

/* A folder's hash covers its names and contents, not when or in which
 * order they were made. */
Test(artifact_store, folders_with_the_same_tree_are_one_object) {
    const char *d1 = make_dir("d1");
    char p1[256];
    snprintf(p1, sizeof(p1), "%s", d1);
    make_file("d1/a", "A");
    make_dir("d1/sub");
    make_file("d1/sub/b", "B");
    const char *d2 = make_dir("d2");
    char p2[256];
    snprintf(p2, sizeof(p2), "%s", d2);
    make_dir("d2/sub");
    make_file("d2/sub/b", "B");
    make_file("d2/a", "A");
    const char *d3 = make_dir("d3");
    char p3[256];
    snprintf(p3, sizeof(p3), "%s", d3);
    make_file("d3/a", "A");
    make_file("d3/b", "B"); /* same files, another tree */

    object_info i1, i2, i3;
    cr_assert_eq(store_ingest(&st, p1, &i1, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(store_ingest(&st, p2, &i2, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(store_ingest(&st, p3, &i3, why, sizeof(why)), 0, "%s", why);
    cr_expect(i1.is_dir && i3.is_dir);
    cr_expect_str_eq(i1.hash, i2.hash);
    cr_expect_str_neq(i1.hash, i3.hash);
    cr_expect_eq(store_verify(&st, i1.hash), 0);
    cr_expect_eq(store_verify(&st, i3.hash), 0);
    char obj[4096];
    store_object_path(&st, i1.hash, obj, sizeof(obj));
    strcat(obj, "/sub/b");
    cr_expect_str_eq(text_of(obj), "B");
}

Test(artifact_store, a_link_is_refused_and_left_in_place) {
    char link_path[256];
    snprintf(link_path, sizeof(link_path), "%s/link", dir);
    cr_assert_eq(symlink("/etc/hostname", link_path), 0);
    object_info info;
    cr_expect_eq(store_ingest(&st, link_path, &info, why, sizeof(why)), -ELOOP);
    cr_expect(strstr(why, "link") != NULL, "%s", why);
    struct stat s;
    cr_expect_eq(lstat(link_path, &s), 0, "nothing is lost");
}

Test(artifact_store, a_folder_holding_a_link_is_refused) {
    char d[256];
    snprintf(d, sizeof(d), "%s", make_dir("withlink"));
    make_file("withlink/ok", "fine");
    char link_path[300];
    snprintf(link_path, sizeof(link_path), "%s/l", d);
    cr_assert_eq(symlink("ok", link_path), 0);
    object_info info;
    cr_expect_eq(store_ingest(&st, d, &info, why, sizeof(why)), -ELOOP);
    cr_expect(strstr(why, "never links") != NULL, "%s", why);
}

Test(artifact_store, a_special_file_is_refused) {
    char fifo[256];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    object_info info;
    cr_expect_eq(store_ingest(&st, fifo, &info, why, sizeof(why)), -EINVAL);
    cr_expect(why[0] != '\0');
}

Test(artifact_store, a_missing_output_fails_with_enoent) {
    object_info info;
    char path[256];
    snprintf(path, sizeof(path), "%s/none", dir);
    cr_expect_eq(store_ingest(&st, path, &info, why, sizeof(why)), -ENOENT);
    cr_expect_str_eq(why, strerror(ENOENT));
}

/* A step that returned with its output still open may not have written
 * all of it: the output is refused, not stored truncated. */
Test(artifact_store, an_output_still_open_for_writing_is_refused) {
    char path[256];
    snprintf(path, sizeof(path), "%s", make_file("open", "partial"));
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    object_info info;
    cr_expect_eq(store_ingest(&st, path, &info, why, sizeof(why)), -EBUSY);
    cr_expect(strstr(why, "still open for writing") != NULL, "%s", why);
    cr_expect_eq(access(path, F_OK), 0, "left where it was");
    close(fd);
    /* closed, it goes in */
    cr_expect_eq(store_ingest(&st, path, &info, why, sizeof(why)), 0, "%s", why);
}

Test(artifact_store, verify_tells_missing_from_altered) {
    cr_expect_eq(store_verify(&st, HELLO_HASH), -ENOENT);
    char path[256];
    snprintf(path, sizeof(path), "%s", make_file("h", "hello\n"));
    object_info info;
    cr_assert_eq(store_ingest(&st, path, &info, why, sizeof(why)), 0, "%s", why);
    char obj[4096];
    store_object_path(&st, info.hash, obj, sizeof(obj));
    cr_assert_eq(chmod(obj, 0644), 0);
    FILE *f = fopen(obj, "a");
    cr_assert_not_null(f);
    fputs("tampered", f);
    fclose(f);
    cr_expect_eq(store_verify(&st, info.hash), -EBADMSG);
}

Test(artifact_store, an_object_that_is_a_link_is_not_sound) {
    char fan[4096], obj[4096];
    snprintf(fan, sizeof(fan), "%s/58", st.objects);
    cr_assert_eq(mkdir(fan, 0755), 0);
    store_object_path(&st, HELLO_HASH, obj, sizeof(obj));
    const char *target = make_file("target", "hello\n");
    cr_assert_eq(symlink(target, obj), 0);
    cr_expect_eq(store_verify(&st, HELLO_HASH), -EBADMSG, "a link is never content");
}

/* Ingesting content whose object was altered puts a sound copy back. */
Test(artifact_store, an_altered_object_is_replaced_by_the_next_ingest) {
    char path[256];
    snprintf(path, sizeof(path), "%s", make_file("h1", "hello\n"));
    object_info info;
    cr_assert_eq(store_ingest(&st, path, &info, why, sizeof(why)), 0, "%s", why);
    char obj[4096];
    store_object_path(&st, info.hash, obj, sizeof(obj));
    cr_assert_eq(chmod(obj, 0644), 0);
    FILE *f = fopen(obj, "w");
    cr_assert_not_null(f);
    fputs("HELLO\n", f);
    fclose(f);
    cr_assert_eq(store_verify(&st, info.hash), -EBADMSG);
    snprintf(path, sizeof(path), "%s", make_file("h2", "hello\n"));
    cr_assert_eq(store_ingest(&st, path, &info, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(store_verify(&st, info.hash), 0);
    cr_expect_str_eq(text_of(obj), "hello\n");
}

/* The lock from another process (flock locks belong to open files, so a
 * second store handle would do too; a child is what runs and gc are). */
static int child_lock(int exclusive) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        artifact_store other;
        char root[128];
        snprintf(root, sizeof(root), "%s/store", dir);
        if (store_open(&other, root) != 0)
            _exit(100);
        int rc = store_lock(&other, exclusive, 0);
        store_close(&other);
        _exit(rc == 0 ? 0 : rc == -EWOULDBLOCK ? 1 : 2);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

Test(artifact_store, runs_share_the_lock_and_gc_excludes_them) {
    cr_assert_eq(store_lock(&st, 0, 0), 0);
    cr_expect_eq(child_lock(0), 0, "another run shares it");
    cr_expect_eq(child_lock(1), 1, "gc is refused while a run holds it");
    /* taken exclusive (as gc does), a run is refused until it is released */
    cr_assert_eq(store_lock(&st, 1, 0), 0);
    cr_expect_eq(child_lock(0), 1);
    store_close(&st);
    cr_expect_eq(child_lock(1), 0, "released by store_close");
    char root[128];
    snprintf(root, sizeof(root), "%s/store", dir);
    cr_assert_eq(store_open(&st, root), 0);
}
