/* End-to-end tests of 'sluice artifacts import' and 'export --jsonl', and
 * of pipelines whose inputs name artifacts in the store (artifact:ID): the
 * real binary on the Handbook's datasets. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner.h"
#include "tiny_model.h"

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook/artifacts"
#define INSTRUCT HANDBOOK "/instruct_datasets.json"
#define PREFERENCE HANDBOOK "/preference_datasets.json"
#define DEMO SLUICE_SOURCE_DIR "/pipelines/demo/datasets"

TestSuite(import, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* The hash of an 'import --json' output (a static copy). */
static const char *hash_of(const char *json) {
    static char hash[65];
    const char *at = strstr(json, "\"hash\" : \"");
    cr_assert_not_null(at, "%s", json);
    snprintf(hash, sizeof(hash), "%.64s", at + 10);
    return hash;
}

/* Imports path as type with --json, asserting success; its hash. */
static const char *import_ok(char *path, char *type) {
    result r = RUN(test_store_arg, "artifacts", "import", path, "--type", type, "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *hash = hash_of(r.out);
    result_free(&r);
    return hash;
}

/* The number of entries in the store's objects/ fans and in tmp/. */
static size_t store_entries(const char *sub) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "find '%s/store/%s' -mindepth %d 2>/dev/null | wc -l", test_dir, sub,
             strcmp(sub, "objects") == 0 ? 2 : 1);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = 0;
    cr_assert_eq(fscanf(f, "%zu", &n), 1);
    pclose(f);
    return n;
}

Test(import, a_file_twice_is_one_artifact_and_says_so) {
    char real[PATH_MAX];
    cr_assert_not_null(realpath(INSTRUCT, real));
    char first[65];
    snprintf(first, sizeof(first), "%s", import_ok(INSTRUCT, "dataset"));
    result r = RUN(test_store_arg, "artifacts", "import", INSTRUCT, "--type", "dataset");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "already in the store") && strstr(r.out, first), "%s", r.out);
    result_free(&r);
    cr_expect_eq(store_entries("objects"), 1);
    /* Its content is the file's, byte for byte. */
    char out[256], cmd[600];
    snprintf(out, sizeof(out), "%s/copy.json", test_dir);
    expect_success(RUN(test_store_arg, "artifacts", "export", first, out));
    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", INSTRUCT, out);
    cr_expect_eq(system(cmd), 0);
    r = RUN(test_store_arg, "artifacts", "list");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "dataset") && strstr(r.out, "imported from") && strstr(r.out, real),
              "%s", r.out);
    result_free(&r);
    /* Another type for the same content is refused, and nothing changes. */
    r = RUN(test_store_arg, "artifacts", "import", INSTRUCT, "--type", "model");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, INSTRUCT) && strstr(r.err, "of type dataset"), "%s", r.err);
    result_free(&r);
}

Test(import, a_folder_with_a_name) {
    char dir[256], cmd[700];
    snprintf(dir, sizeof(dir), "%s/docs", test_dir);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s/sub' && printf one > '%s/a' && printf three > '%s/sub/b'", dir, dir,
             dir);
    cr_assert_eq(system(cmd), 0);
    result r = RUN(test_store_arg, "artifacts", "import", dir, "--type", "documents", "--name",
                   "my-docs", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"kind\" : \"folder\"") && strstr(r.out, "\"name\" : \"my-docs\""),
              "%s", r.out);
    result_free(&r);
    /* The name is an id; the folder comes back whole. */
    r = RUN(test_store_arg, "artifacts", "show", "my-docs");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "folder of 8 bytes") && strstr(r.out, "as my-docs"), "%s", r.out);
    result_free(&r);
    char out[256];
    snprintf(out, sizeof(out), "%s/back", test_dir);
    expect_success(RUN(test_store_arg, "artifacts", "export", "my-docs", out));
    snprintf(cmd, sizeof(cmd), "diff -r '%s' '%s'", dir, out);
    cr_expect_eq(system(cmd), 0);
}

Test(import, lineage_says_where_from_and_gc_keeps_it) {
    char real[PATH_MAX];
    cr_assert_not_null(realpath(PREFERENCE, real));
    char hash[65];
    snprintf(hash, sizeof(hash), "%s", import_ok(PREFERENCE, "dataset"));
    result r = RUN(test_store_arg, "lineage", hash);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char needle[PATH_MAX + 32];
    snprintf(needle, sizeof(needle), "imported from %s on 20", real);
    cr_expect(strstr(r.out, needle), "%s", r.out);
    cr_expect_eq(count(r.out, "step run"), 0, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "lineage", hash, "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(needle, sizeof(needle), "\"path\" : \"%s\"", real);
    cr_expect(strstr(r.out, "\"imports\" : [") && strstr(r.out, needle), "%s", r.out);
    result_free(&r);
    /* The import's record roots it, even with no grace at all. */
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "0 objects removed, 1 kept"), "%s", r.out);
    result_free(&r);
    expect_success(RUN(test_store_arg, "artifacts", "path", hash));
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "0 problems"), "%s", r.out);
    result_free(&r);
}

/* Runs an import expected to fail with exit 2 and words in its error; the
 * store keeps no object and no copy. */
static void expect_import_refused(char *path, char *type, const char *words) {
    result r = RUN(test_store_arg, "artifacts", "import", path, "--type", type);
    cr_expect_eq(r.status, 2, "%s: %s%s", path, r.out, r.err);
    cr_expect(strstr(r.err, path) || strstr(r.err, type), "%s", r.err);
    cr_expect(strstr(r.err, words), "wanted '%s' in: %s", words, r.err);
    result_free(&r);
    cr_expect_eq(store_entries("objects"), 0, "%s", path);
    cr_expect_eq(store_entries("tmp"), 0, "%s", path);
}

Test(import, bad_paths_are_refused_by_name_and_leave_nothing) {
    char path[256], cmd[700];
    snprintf(path, sizeof(path), "%s/missing.json", test_dir);
    expect_import_refused(path, "dataset", "no such file or folder");
    snprintf(path, sizeof(path), "%s/fifo", test_dir);
    cr_assert_eq(mkfifo(path, 0644), 0);
    expect_import_refused(path, "dataset", "it is a FIFO");
    expect_import_refused("/dev/null", "dataset", "a character device");
    snprintf(path, sizeof(path), "%s/loop1", test_dir);
    snprintf(cmd, sizeof(cmd), "cd '%s' && ln -s loop2 loop1 && ln -s loop1 loop2", test_dir);
    cr_assert_eq(system(cmd), 0);
    expect_import_refused(path, "dataset", "symbolic link loop");
    /* In a folder: a link, a FIFO, named with their path. */
    snprintf(path, sizeof(path), "%s/tree", test_dir);
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s/in' && printf x > '%s/ok' && ln -s /etc/passwd '%s/in/l'", path, path,
             path);
    cr_assert_eq(system(cmd), 0);
    expect_import_refused(path, "dataset", "tree/in/l is a symbolic link");
    snprintf(cmd, sizeof(cmd), "rm '%s/in/l' && mkfifo '%s/in/p'", path, path);
    cr_assert_eq(system(cmd), 0);
    expect_import_refused(path, "dataset", "tree/in/p is a FIFO");
    /* Unreadable: root reads everything, so only a user can see it. */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/secret", test_dir);
        snprintf(cmd, sizeof(cmd), "printf x > '%s' && chmod 000 '%s'", path, path);
        cr_assert_eq(system(cmd), 0);
        expect_import_refused(path, "dataset", "cannot be read");
    }
    /* The type is checked as a port's; --type is required. */
    expect_import_refused(INSTRUCT, "Dataset", "no artifact type");
    expect_import_refused(INSTRUCT, "data-set", "no artifact type");
    result r = RUN(test_store_arg, "artifacts", "import", INSTRUCT);
    expect_refused(r, 2, "--type TYPE");
}

/* The lines of file that hold needle. */
static size_t lines_with(const char *file, const char *needle) {
    char *text = slurp(file);
    cr_assert_not_null(text, "%s", file);
    size_t n = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        n += strstr(line, needle) != NULL;
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return n;
}

/* Exports the Handbook dataset file as JSON Lines and checks its rows. */
static void export_counts(char *file, size_t train, size_t test, const char *field) {
    char hash[65], out[256];
    snprintf(hash, sizeof(hash), "%s", import_ok(file, "dataset"));
    snprintf(out, sizeof(out), "%s/%.8s.jsonl", test_dir, hash);
    result r = RUN(test_store_arg, "artifacts", "export", hash, out, "--jsonl");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char said[128];
    snprintf(said, sizeof(said), "wrote %zu rows", train + test);
    cr_expect(strstr(r.out, said), "%s", r.out);
    result_free(&r);
    cr_expect_eq(lines_with(out, "{"), train + test);
    cr_expect_eq(lines_with(out, "\"split\" : \"train\""), train);
    cr_expect_eq(lines_with(out, "\"split\" : \"test\""), test);
    cr_expect_eq(lines_with(out, "\"category\" : \"articles\""), train + test);
    cr_expect_eq(lines_with(out, field), train + test);
    /* The file exists now: never overwritten. */
    r = RUN(test_store_arg, "artifacts", "export", hash, out, "--format", "jsonl");
    expect_refused(r, 2, "exists already");
}

Test(import, export_jsonl_of_the_handbooks_datasets) {
    export_counts(INSTRUCT, 2250, 250, "\"answer\" : ");
    export_counts(PREFERENCE, 381, 21, "\"rejected\" : ");
    /* Not a dataset: refused, and no file is left. */
    char path[256], out[256];
    snprintf(path, sizeof(path), "%s/plain.json", test_dir);
    write_test_file(test_dir, "plain.json", "{\"a\": 1}\n");
    snprintf(out, sizeof(out), "%s/plain.jsonl", test_dir);
    import_ok(path, "config");
    result r = RUN(test_store_arg, "artifacts", "export", "latest-none", out, "--jsonl");
    cr_expect_eq(r.status, 2);
    result_free(&r);
    char hash[65];
    snprintf(hash, sizeof(hash), "%s", import_ok(path, "config"));
    r = RUN(test_store_arg, "artifacts", "export", hash, out, "--jsonl");
    expect_refused(r, 2, "not a dataset in the Handbook's layout");
    cr_expect_eq(access(out, F_OK), -1);
}

Test(import, a_pipeline_starts_from_an_imported_artifact) {
    import_ok(INSTRUCT, "dataset");
    /* By name too: --name. */
    expect_success(RUN(test_store_arg, "artifacts", "import", INSTRUCT, "--type", "dataset",
                       "--name", "instruct"));
    char *p = write_test_file(test_dir, "p.yaml",
                              "pipeline: fromimport\n"
                              "steps:\n"
                              "  count:\n"
                              "    uses: shell\n"
                              "    inputs: {dataset: \"artifact:instruct\"}\n"
                              "    with:\n"
                              "      run: grep -c '\"instruction\"' \"$SLUICE_INPUT_dataset\" > "
                              "\"$SLUICE_OUTPUT_n\"\n"
                              "      outputs: {n: n.txt}\n");
    expect_success(RUN(test_store_arg, "validate", p));
    expect_success(RUN_PIPELINE(p));
    result n = RUN(test_store_arg, "artifacts", "cat", "count.n");
    cr_assert_eq(n.status, 0, "%s", n.err);
    cr_expect_str_eq(n.out, "2500\n");
    result_free(&n);
    /* The artifact's hash is in the cache key: a second run reuses it. */
    result r = RUN_PIPELINE(p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"status\" : \"cached\""), "%s", r.out);
    result_free(&r);
    /* Lineage downwards: the step runs that read it. */
    r = RUN(test_store_arg, "lineage", "instruct", "--down");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "/count (shell"), 2, "%s", r.out);
    result_free(&r);
    /* Another content under the name: the newest import wins, the key changes. */
    expect_success(RUN(test_store_arg, "artifacts", "import", PREFERENCE, "--type", "dataset",
                       "--name", "instruct"));
    r = RUN(test_store_arg, "status", p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "input 'dataset' changed"), "%s", r.out);
    result_free(&r);
}

Test(import, an_artifact_input_that_is_missing_or_of_another_type_is_refused) {
    char *p =
        write_test_file(test_dir, "p.yaml",
                        "pipeline: bad\n"
                        "steps:\n"
                        "  a: {uses: shell, inputs: {x: \"artifact:nosuch\"}, with: {run: "
                        "'true'}}\n"
                        "  b: {uses: shell, inputs: {x: \"artifact:\"}, with: {run: 'true'}}\n");
    result r = RUN(test_store_arg, "validate", p);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.out, "p.yaml:4:") || strstr(r.err, "p.yaml:4:"), "%s%s", r.out, r.err);
    result_free(&r);
    p = write_test_file(
        test_dir, "p.yaml",
        "pipeline: bad\n"
        "steps:\n"
        "  a: {uses: shell, inputs: {x: \"artifact:nosuch\"}, with: {run: 'true'}}\n");
    import_ok(INSTRUCT, "dataset");
    r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "p.yaml:3:") && strstr(r.err, "artifact:nosuch is not in the store"),
              "%s", r.err);
    cr_expect_eq(count(r.out, "started"), 0, "%s", r.out);
    result_free(&r);
    /* A port's type is checked against the artifact's. */
    char text[1024];
    snprintf(text, sizeof(text),
             "pipeline: bad\n"
             "steps:\n"
             "  t:\n"
             "    uses: train\n"
             "    inputs: {dataset: \"artifact:%.12s\", tokenizer: \"artifact:%.12s\"}\n",
             import_ok(INSTRUCT, "dataset"), import_ok(INSTRUCT, "dataset"));
    p = write_test_file(test_dir, "p.yaml", text);
    r = RUN(test_store_arg, "run", p);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "input 'tokenizer' of step 't' takes tokenizer, but artifact:"), "%s",
              r.err);
    result_free(&r);
}

/* The use case: a train step on the Handbook's own instruction dataset,
 * imported, not made by a step. */
Test(import, sft_trains_on_the_handbooks_imported_dataset) {
    expect_success(RUN(test_store_arg, "artifacts", "import", INSTRUCT, "--type", "dataset",
                       "--name", "handbook-instruct"));
    char *p = write_test_file(
        test_dir, "p.yaml",
        "version: 1\npipeline: t\n"
        "steps:\n" TINY_DOCS_STEP TINY_TOKENIZER_STEP(
            320) "  sft:\n"
                 "    uses: train\n"
                 "    inputs: {dataset: \"artifact:handbook-instruct\", tokenizer: tok.tokenizer}\n"
                 "    with: {method: sft, d_model: 32, n_layers: 1, n_heads: 2, context: 64, "
                 "max_seq_len: 64, batch_size: 4, max_steps: 2, warmup_steps: 0}\n");
    expect_success(RUN_PIPELINE(p));
    char log_path[512];
    snprintf(log_path, sizeof(log_path), "%s/store/runs/%s/steps/sft.log", test_dir, last_run);
    char *log = slurp(log_path);
    cr_assert_not_null(log, "%s", log_path);
    cr_expect(strstr(log, ": 2250 examples"), "%s", log);
    free(log);
    result r = RUN(test_store_arg, "lineage", "sft.model", "--up");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "imported from") && strstr(r.out, "instruct_datasets.json"), "%s",
              r.out);
    result_free(&r);
}

/* 'artifacts forget': by name (every import under it, on any artifact), by
 * ID with --path, kept while something else roots the artifact, and the
 * object left to gc once nothing does. */
Test(import, forget_undoes_imports_and_lets_gc_remove_the_object) {
    char a[256], b[256], c[256], cmd[900];
    snprintf(a, sizeof(a), "%s/a.txt", test_dir);
    snprintf(b, sizeof(b), "%s/b.txt", test_dir);
    snprintf(c, sizeof(c), "%s/c.txt", test_dir);
    snprintf(cmd, sizeof(cmd), "printf one > '%s' && printf one > '%s' && printf two > '%s'", a, b,
             c);
    cr_assert_eq(system(cmd), 0);
    char one[65], two[65];
    snprintf(one, sizeof(one), "%s", import_ok(a, "text"));
    expect_success(RUN(test_store_arg, "artifacts", "import", b, "--type", "text"));
    /* "ds" on both contents: forgetting it forgets both, and one stays by b */
    expect_success(RUN(test_store_arg, "artifacts", "import", a, "--type", "text", "--name", "ds"));
    result r =
        RUN(test_store_arg, "artifacts", "import", c, "--type", "text", "--name", "ds", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(two, sizeof(two), "%s", hash_of(r.out));
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "forget", "ds", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"removed\" : true") && strstr(r.out, two), "c's is gone: %s", r.out);
    cr_expect(strstr(r.out, "\"removed\" : false") &&
                  strstr(r.out, "\"kept_by\" : \"imported from"),
              "a's stays, imported without the name: %s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "show", "ds");
    cr_expect_eq(r.status, 2, "the name names nothing: %s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "show", one);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, a) && strstr(r.out, b), "a's first import and b's: %s", r.out);
    result_free(&r);
    /* By ID, one path at a time; a path with no import of it is refused */
    r = RUN(test_store_arg, "artifacts", "forget", one, "--path", c);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "has no import from"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "forget", one, "--path", a);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "forgot 1 import of artifact") && strstr(r.out, "it stays, imported "
                                                                            "from"),
              "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "1 object removed, 1 kept"), "c's object goes: %s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "doctor");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "forget", one, "--path", b);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "its record is removed"), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect(strstr(r.out, "1 object removed, 0 kept"), "%s", r.out);
    result_free(&r);
    cr_expect_eq(store_entries("objects"), 0);
    r = RUN(test_store_arg, "artifacts", "forget", one);
    cr_expect_eq(r.status, 2, "nothing left to forget: %s", r.out);
    result_free(&r);
}

/* A step output imported too keeps its record (its run made it), and a
 * run in progress holds forget off. */
Test(import, forget_keeps_what_a_run_made_and_waits_for_runs) {
    char *p =
        write_test_file(test_dir, "p.yaml",
                        "pipeline: made\nsteps:\n"
                        "  a: {uses: shell, with: {run: 'printf made > o', outputs: {o: o}}}\n"
                        "  w: {uses: shell, after: [a], with: {run: 'while [ ! -e @/go ]; "
                        "do sleep 0.05; done'}}\n");
    char made[256], go[256], cmd[600];
    snprintf(made, sizeof(made), "%s/made.txt", test_dir);
    snprintf(go, sizeof(go), "%s/go", test_dir);
    snprintf(cmd, sizeof(cmd), "printf made > '%s'", made);
    cr_assert_eq(system(cmd), 0);
    pid_t run = start_sluice_run(p);
    /* a's output recorded: the run holds the store's lock until it ends */
    for (int i = 0;; i++) {
        result s = RUN(test_store_arg, "artifacts", "path", "a.o");
        int done = s.status == 0;
        result_free(&s);
        if (done)
            break;
        cr_assert_lt(i, 1500, "a's output never showed up");
        nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    expect_success(
        RUN(test_store_arg, "artifacts", "import", made, "--type", "any", "--name", "mine"));
    result r = RUN(test_store_arg, "artifacts", "forget", "mine");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "runs are in progress"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "show", "mine");
    cr_expect_eq(r.status, 0, "nothing changed: %s", r.err);
    result_free(&r);
    FILE *f = fopen(go, "w");
    cr_assert_not_null(f);
    fclose(f);
    int ws;
    waitpid(run, &ws, 0);
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    r = RUN(test_store_arg, "artifacts", "forget", "mine");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "it stays, made by run"), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "gc", "--grace", "0");
    cr_expect(strstr(r.out, "0 objects removed"), "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "show", "a.o");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_null(strstr(r.out, "imported"), "%s", r.out);
    result_free(&r);
}
