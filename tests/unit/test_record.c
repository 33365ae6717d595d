/* Unit tests of metadata/record.c: how a run's owner tells a live run from
 * a crashed one. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record.h"

/* A run record with status and an owner (pid, start, host); start < 0 and
 * host NULL leave the field out, pid 0 the whole owner. */
static bson_t *run_doc(const char *status, long pid, long long start, const char *host) {
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "status", status);
    if (pid) {
        bson_t owner;
        BSON_APPEND_DOCUMENT_BEGIN(doc, "owner", &owner);
        BSON_APPEND_INT64(&owner, "pid", pid);
        if (start >= 0)
            BSON_APPEND_INT64(&owner, "start", start);
        if (host)
            BSON_APPEND_UTF8(&owner, "host", host);
        bson_append_document_end(doc, &owner);
    }
    return doc;
}

static const char *here(void) {
    static char host[256];
    gethostname(host, sizeof(host) - 1);
    return host;
}

/* This process's start time, as the 22nd field of /proc/self/stat. */
static long long my_start(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    cr_assert_not_null(f);
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strrchr(text, ')');
    for (int field = 3; at && field <= 22; field++)
        at = strchr(at, ' ') ? strchr(at, ' ') + 1 : NULL;
    cr_assert_not_null(at);
    return atoll(at);
}

/* The pid of a process that has ended and been reaped. */
static long dead_pid(void) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

Test(record, a_running_run_whose_owner_lives_is_running) {
    bson_t *doc = run_doc("running", getpid(), my_start(), here());
    cr_expect_eq(record_owner_alive(doc), 1);
    cr_expect_str_eq(record_effective_status(doc), "running");
    bson_destroy(doc);
}

Test(record, a_running_run_whose_owner_is_gone_crashed) {
    bson_t *doc = run_doc("running", dead_pid(), 12345, here());
    cr_expect_eq(record_owner_alive(doc), 0);
    cr_expect_str_eq(record_effective_status(doc), "crashed");
    bson_destroy(doc);
}

Test(record, a_reused_pid_is_not_the_owner) {
    bson_t *doc = run_doc("running", getpid(), my_start() + 1, here());
    cr_expect_eq(record_owner_alive(doc), 0);
    cr_expect_str_eq(record_effective_status(doc), "crashed");
    bson_destroy(doc);
}

Test(record, another_hosts_run_or_one_without_owner_cannot_be_judged) {
    bson_t *other = run_doc("running", dead_pid(), 1, "not-this-host.invalid");
    bson_t *none = run_doc("running", 0, -1, NULL);
    cr_expect_eq(record_owner_alive(other), -1);
    cr_expect_eq(record_owner_alive(none), -1);
    cr_expect_str_eq(record_effective_status(other), "running");
    cr_expect_str_eq(record_effective_status(none), "running");
    bson_destroy(other);
    bson_destroy(none);
}

Test(record, only_a_running_run_can_have_crashed) {
    bson_t *doc = run_doc("failed", dead_pid(), 1, here());
    cr_expect_str_eq(record_effective_status(doc), "failed");
    bson_t view;
    cr_assert_eq(record_run_view(doc, &view), 0);
    bson_iter_t it;
    cr_expect(bson_iter_init_find(&it, &view, "status") &&
              strcmp(bson_iter_utf8(&it, NULL), "failed") == 0);
    bson_destroy(&view);
    bson_destroy(doc);
}

Test(record, the_view_of_a_crashed_run_says_crashed_and_keeps_the_rest) {
    bson_t *doc = run_doc("running", dead_pid(), 1, here());
    bson_t view;
    cr_assert_eq(record_run_view(doc, &view), 0);
    bson_iter_t it;
    cr_expect(bson_iter_init_find(&it, &view, "status") &&
              strcmp(bson_iter_utf8(&it, NULL), "crashed") == 0);
    cr_expect(bson_iter_init_find(&it, &view, "owner"));
    bson_destroy(&view);
    bson_destroy(doc);
}
