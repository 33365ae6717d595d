/* Unit tests of metadata/meta.c and record.c against a real LMDB store:
 * opening (new, read-only, damaged, newer schema), records by key and by
 * prefix, and what a run writes (record.h): runs, step runs, artifacts and
 * their producers, lineage downwards, the cache index and the look-ups of
 * a cache hit, a resume and --only/--from, and the effective status of a
 * run whose process is gone. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meta.h"
#include "record.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define KEY "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static char dir[64];
static meta_db m;
/* The run the tests record: what the scheduler gives the metadata layer of
 * a pipeline 'lineage' (make -> use, both shell steps). */
static run_record lineage;

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-meta-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    lineage = (run_record){.name = "lineage", .file = "t.yaml", .dir = dir, .n_steps = 2};
    memset(&m, 0, sizeof(m));
}

static void teardown(void) {
    if (m.env)
        meta_close(&m);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(meta, .init = setup, .fini = teardown);

static void open_rw(void) { cr_assert_eq(meta_open(&m, dir, 0), 0, "%s", meta_error(&m, -1)); }

static const char *utf8_of(const bson_t *doc, const char *path) {
    bson_iter_t it;
    cr_assert(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it), "no %s", path);
    cr_assert(BSON_ITER_HOLDS_UTF8(&it), "%s is not text", path);
    return bson_iter_utf8(&it, NULL);
}

/* ---- meta.c ---- */

Test(meta, a_store_without_metadata_reads_as_enoent_and_is_made_by_a_writer) {
    meta_db ro;
    memset(&ro, 0, sizeof(ro));
    cr_expect_eq(meta_open(&ro, dir, 1), -ENOENT);
    open_rw();
    meta_close(&m);
    memset(&m, 0, sizeof(m));
    cr_assert_eq(meta_open(&m, dir, 1), 0, "read-only once it exists");
    MDB_txn *txn;
    cr_expect_neq(meta_begin(&m, 1, &txn), 0, "no write transaction read-only");
}

Test(meta, create_refuses_to_replace_a_database) {
    cr_assert_eq(meta_create(&m, dir), 0);
    meta_close(&m);
    memset(&m, 0, sizeof(m));
    cr_expect_eq(meta_create(&m, dir), -EEXIST);
}

typedef struct seen_keys {
    char keys[8][128];
    int n, stop_after;
} seen_keys;

static int each(void *ud, const char *key, size_t len, const bson_t *doc) {
    (void)doc;
    seen_keys *s = ud;
    snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%.*s", (int)len, key);
    return s->n >= s->stop_after;
}

Test(meta, records_by_key_and_by_prefix_in_key_order) {
    open_rw();
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 1, &txn), 0);
    const char *keys[] = {"r2/b", "r1/b", "r1/a", "r10/a", "s1/a"};
    for (size_t i = 0; i < 5; i++) {
        bson_t *doc = BCON_NEW("k", BCON_UTF8(keys[i]));
        cr_assert_eq(meta_put(txn, m.steps, keys[i], doc), 0);
        bson_destroy(doc);
    }
    cr_assert_eq(meta_commit(txn), 0);

    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t doc;
    cr_assert_eq(meta_get(txn, m.steps, "r1/b", &doc), 0);
    cr_expect_str_eq(utf8_of(&doc, "k"), "r1/b");
    cr_expect_eq(meta_get(txn, m.steps, "r1/c", &doc), MDB_NOTFOUND);
    cr_expect_eq(meta_get(txn, m.runs, "r1/b", &doc), MDB_NOTFOUND, "another table");

    seen_keys seen = {.stop_after = 99};
    cr_assert_eq(meta_each(txn, m.steps, "r1", each, &seen), 0);
    cr_assert_eq(seen.n, 3);
    cr_expect_str_eq(seen.keys[0], "r1/a");
    cr_expect_str_eq(seen.keys[1], "r1/b");
    cr_expect_str_eq(seen.keys[2], "r10/a");
    seen = (seen_keys){.stop_after = 1};
    cr_assert_eq(meta_each(txn, m.steps, "", each, &seen), 0);
    cr_expect_eq(seen.n, 1, "fn's nonzero stops the walk");
    seen = (seen_keys){.stop_after = 99};
    cr_assert_eq(meta_each(txn, m.steps, "zz", each, &seen), 0);
    cr_expect_eq(seen.n, 0);
    meta_abort(txn);
}

/* A transaction aborted leaves nothing behind. */
Test(meta, an_aborted_write_is_not_kept) {
    open_rw();
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 1, &txn), 0);
    bson_t *doc = BCON_NEW("x", BCON_INT32(1));
    cr_assert_eq(meta_put(txn, m.runs, "gone", doc), 0);
    bson_destroy(doc);
    meta_abort(txn);
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t got;
    cr_expect_eq(meta_get(txn, m.runs, "gone", &got), MDB_NOTFOUND);
    meta_abort(txn);
    cr_expect_eq(meta_sync(&m), 0);
}

static void write_data_file(const char *bytes, size_t n) {
    char path[160];
    snprintf(path, sizeof(path), "%s/meta", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/meta/data.mdb", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

Test(meta, a_damaged_file_is_refused_and_left_as_it_is) {
    char junk[8192];
    memset(junk, 'x', sizeof(junk));
    write_data_file(junk, sizeof(junk));
    int rc = meta_open(&m, dir, 0);
    cr_expect_eq(rc, -EUCLEAN);
    cr_expect(strstr(meta_error(&m, rc), "is damaged") != NULL, "%s", meta_error(&m, rc));
    char path[160];
    snprintf(path, sizeof(path), "%s/meta/data.mdb", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_size, sizeof(junk), "nothing is ever reset");
    memset(&m, 0, sizeof(m));
}

Test(meta, an_empty_file_is_damage_not_a_new_store) {
    write_data_file("", 0);
    cr_expect_eq(meta_open(&m, dir, 0), -EUCLEAN);
    memset(&m, 0, sizeof(m));
}

Test(meta, a_newer_schema_is_refused) {
    open_rw();
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 1, &txn), 0);
    int32_t newer = META_SCHEMA_VERSION + 1;
    MDB_val k = {6, "schema"}, v = {sizeof(newer), &newer};
    cr_assert_eq(mdb_put(txn, m.info, &k, &v, 0), 0);
    cr_assert_eq(meta_commit(txn), 0);
    meta_close(&m);
    memset(&m, 0, sizeof(m));
    int rc = meta_open(&m, dir, 0);
    cr_expect_eq(rc, -EPROTO);
    cr_expect(strstr(meta_strerror(rc), "newer") != NULL);
    memset(&m, 0, sizeof(m));
}

Test(meta, one_strerror_for_every_code) {
    cr_expect_str_eq(meta_strerror(-ENOENT), strerror(ENOENT));
    cr_expect(strstr(meta_strerror(-EUCLEAN), "damaged") != NULL);
    cr_expect(strstr(meta_strerror(MDB_MAP_FULL), "full") != NULL);
    cr_expect(strstr(meta_strerror(-EPROTO), "newer sluice") != NULL);
    cr_expect(strstr(meta_strerror(MDB_INVALID), "not an LMDB database") != NULL);
    cr_expect(strstr(meta_strerror(MDB_CORRUPTED), "damaged") != NULL);
    cr_expect(strstr(meta_strerror(MDB_VERSION_MISMATCH), "incompatible LMDB") != NULL);
    cr_expect(strstr(meta_strerror(MDB_PANIC), "failed write") != NULL);
    cr_expect_str_eq(meta_strerror(MDB_NOTFOUND), "no such record");
    cr_expect_str_eq(meta_strerror(MDB_KEYEXIST), mdb_strerror(MDB_KEYEXIST));
    memset(&m, 0, sizeof(m));
    cr_expect_str_eq(meta_error(&m, -ENOENT), strerror(ENOENT), "no why: the code's words");
}

/* The consumers of artifact hash ("RUN/STEP" keys after it), in key order. */
static seen_keys consumers_of(MDB_txn *txn, const char *hash) {
    seen_keys seen = {.stop_after = 99};
    char prefix[80];
    snprintf(prefix, sizeof(prefix), "%s/", hash);
    cr_assert_eq(meta_each(txn, m.consumers, prefix, each, &seen), 0);
    return seen;
}

/* ---- record.c ---- */

/* Records run_id: make (done, output o = H1, cacheable under KEY) and use
 * (status, reading H1, output r = H2 when done). */
static void record_two_steps(const char *run_id, const char *use_status) {
    cr_assert_eq(record_run(&m, run_id, &lineage, &(run_origin){0}, "running", 100, 0), 0);
    record_port make_out = {"o", H1, "any", 2, 0};
    step_record make = {.run_id = run_id,
                        .step_id = "make",
                        .uses = "shell",
                        .status = "done",
                        .started = 100,
                        .finished = 101,
                        .attempts = 1,
                        .cache_key = KEY,
                        .outputs = &make_out,
                        .n_outputs = 1,
                        .cacheable = 1};
    cr_assert_eq(record_step(&m, &make), 0);
    record_port use_in = {"x", H1, NULL, 0, 0}, use_out = {"r", H2, "any", 2, 0};
    int done = strcmp(use_status, "done") == 0;
    step_record use = {.run_id = run_id,
                       .step_id = "use",
                       .uses = "shell",
                       .status = use_status,
                       .started = 101,
                       .finished = 102,
                       .attempts = 1,
                       .error = done ? NULL : "the command exited with status 1",
                       .inputs = &use_in,
                       .n_inputs = 1,
                       .outputs = done ? &use_out : NULL,
                       .n_outputs = done ? 1 : 0};
    cr_assert_eq(record_step(&m, &use), 0);
    cr_assert_eq(
        record_run(&m, run_id, &lineage, &(run_origin){0}, done ? "done" : "failed", 100, 102), 0);
}

Test(meta, a_run_and_its_steps_read_back) {
    open_rw();
    const char *overrides[] = {"n=4"}, *tags[] = {"team=x"};
    run_origin origin = {overrides, 1, "20260101-000000-000aaa", tags, 1};
    cr_assert_eq(record_run(&m, "r1", &lineage, &origin, "running", 100, 0), 0);
    record_two_steps("r1", "done");
    cr_assert_eq(record_run(&m, "r1", &lineage, &origin, "done", 100, 102), 0);

    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t run, st;
    cr_assert_eq(meta_get(txn, m.runs, "r1", &run), 0);
    cr_expect_str_eq(utf8_of(&run, "pipeline"), "lineage");
    cr_expect_str_eq(utf8_of(&run, "status"), "done");
    cr_expect_str_eq(utf8_of(&run, "resumes"), "20260101-000000-000aaa");
    cr_expect_str_eq(utf8_of(&run, "overrides.0"), "n=4");
    cr_expect_str_eq(record_effective_status(&run), "done");

    cr_assert_eq(meta_get(txn, m.steps, "r1/make", &st), 0);
    cr_expect_str_eq(utf8_of(&st, "status"), "done");
    cr_expect_str_eq(utf8_of(&st, "uses"), "shell");
    cr_expect_str_eq(utf8_of(&st, "outputs.o"), H1);
    cr_expect_str_eq(utf8_of(&st, "cache_key"), KEY);
    cr_assert_eq(meta_get(txn, m.steps, "r1/use", &st), 0);
    cr_expect_str_eq(utf8_of(&st, "inputs.x"), H1);

    /* artifacts: each made once, with its producer */
    bson_t art;
    cr_assert_eq(meta_get(txn, m.artifacts, H1, &art), 0);
    cr_expect_str_eq(utf8_of(&art, "run"), "r1");
    cr_expect_str_eq(utf8_of(&art, "step"), "make");
    cr_expect_str_eq(utf8_of(&art, "output"), "o");
    cr_expect_str_eq(utf8_of(&art, "kind"), "file");
    /* lineage downwards: H1 was read by r1/use */
    seen_keys read = consumers_of(txn, H1);
    cr_assert_eq(read.n, 1);
    cr_expect_str_eq(read.keys[0], H1 "/r1/use");
    cr_expect_eq(consumers_of(txn, H2).n, 0, "nothing read r's output");
    meta_abort(txn);
}

Test(meta, the_first_producer_of_an_artifact_stays_its_producer) {
    open_rw();
    record_two_steps("r1", "done");
    record_two_steps("r2", "done");
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t art;
    cr_assert_eq(meta_get(txn, m.artifacts, H1, &art), 0);
    cr_expect_str_eq(utf8_of(&art, "run"), "r1");
    seen_keys read = consumers_of(txn, H1);
    cr_assert_eq(read.n, 2, "both consumers kept");
    cr_expect_str_eq(read.keys[0], H1 "/r1/use");
    cr_expect_str_eq(read.keys[1], H1 "/r2/use");
    meta_abort(txn);
}

Test(meta, a_failed_step_makes_no_artifact_and_no_cache_entry) {
    open_rw();
    record_two_steps("r1", "failed");
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t art;
    cr_expect_eq(meta_get(txn, m.artifacts, H2, &art), MDB_NOTFOUND);
    cr_assert_eq(meta_get(txn, m.steps, "r1/use", &art), 0);
    cr_expect_str_eq(utf8_of(&art, "error"), "the command exited with status 1");
    meta_abort(txn);
    cache_hit hit;
    cr_expect_eq(record_finished_step(&m, "r1", "use", &hit), 0, "not finished: resume runs it");
    cr_expect_eq(record_finished_step(&m, "r1", "make", &hit), 1);
    cr_expect_str_eq(hit.from, "r1/make");
    cr_expect_eq(record_finished_step(&m, "nope", "make", &hit), 0);
}

Test(meta, the_cache_index_finds_and_forgets_a_step_run) {
    open_rw();
    cache_hit hit;
    cr_expect_eq(record_cache_lookup(&m, KEY, &hit), 0);
    record_two_steps("r1", "done");
    cr_assert_eq(record_cache_lookup(&m, KEY, &hit), 1);
    cr_expect_str_eq(hit.from, "r1/make");
    cr_assert_eq(hit.n_outputs, 1);
    cr_expect_str_eq(hit.outputs[0].name, "o");
    cr_expect_str_eq(hit.outputs[0].hash, H1);
    cr_assert_eq(record_cache_forget(&m, KEY), 0);
    cr_expect_eq(record_cache_lookup(&m, KEY, &hit), 0);
    /* the step run itself stays */
    cr_expect_eq(record_finished_step(&m, "r1", "make", &hit), 1);
}

/* Not cacheable (cache: false) or no key: finished, but not in the index. */
Test(meta, a_step_not_cacheable_is_not_indexed) {
    open_rw();
    cr_assert_eq(record_run(&m, "r1", &lineage, &(run_origin){0}, "running", 100, 0), 0);
    record_port out = {"o", H1, "any", 2, 0};
    step_record rec = {.run_id = "r1",
                       .step_id = "make",
                       .uses = "shell",
                       .status = "done",
                       .started = 1,
                       .finished = 2,
                       .attempts = 1,
                       .cache_key = KEY,
                       .outputs = &out,
                       .n_outputs = 1,
                       .cacheable = 0};
    cr_assert_eq(record_step(&m, &rec), 0);
    cache_hit hit;
    cr_expect_eq(record_cache_lookup(&m, KEY, &hit), 0);
    cr_expect_eq(record_finished_step(&m, "r1", "make", &hit), 1);
}

Test(meta, the_latest_finished_step_run_of_a_pipeline) {
    open_rw();
    cache_hit hit;
    cr_expect_eq(record_latest_finished(&m, "lineage", "use", &hit), 0);
    record_two_steps("20260101-000000-000001", "done");
    record_two_steps("20260101-000000-000002", "failed");
    cr_assert_eq(record_latest_finished(&m, "lineage", "make", &hit), 1);
    cr_expect_str_eq(hit.from, "20260101-000000-000002/make", "the latest run");
    cr_assert_eq(record_latest_finished(&m, "lineage", "use", &hit), 1);
    cr_expect_str_eq(hit.from, "20260101-000000-000001/use", "the latest that finished");
    cr_expect_str_eq(hit.outputs[0].hash, H2);
    cr_expect_eq(record_latest_finished(&m, "other", "use", &hit), 0, "another pipeline's");
}

/* A run left 'running' by a process that is gone crashed; while its
 * process lives it is running. */
Test(meta, a_run_whose_process_is_gone_reads_as_crashed) {
    open_rw();
    meta_close(&m);
    memset(&m, 0, sizeof(m));
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        meta_db child;
        if (meta_open(&child, dir, 0) != 0 ||
            record_run(&child, "crashed", &lineage, &(run_origin){0}, "running", 100, 0) != 0)
            _exit(1);
        meta_close(&child);
        _exit(0); /* and never records the end */
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    open_rw();
    cr_assert_eq(record_run(&m, "alive", &lineage, &(run_origin){0}, "running", 100, 0), 0);
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t run;
    cr_assert_eq(meta_get(txn, m.runs, "crashed", &run), 0);
    cr_expect_str_eq(utf8_of(&run, "status"), "running", "as recorded");
    cr_expect_eq(record_owner_alive(&run), 0);
    cr_expect_str_eq(record_effective_status(&run), "crashed");
    bson_t view;
    cr_assert_eq(record_run_view(&run, &view), 0);
    cr_expect_str_eq(utf8_of(&view, "status"), "crashed");
    cr_expect_str_eq(utf8_of(&view, "pipeline"), "lineage");
    bson_destroy(&view);
    cr_assert_eq(meta_get(txn, m.runs, "alive", &run), 0);
    cr_expect_eq(record_owner_alive(&run), 1);
    cr_expect_str_eq(record_effective_status(&run), "running");
    meta_abort(txn);
}
