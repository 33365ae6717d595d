/* End-to-end tests of the sluice binary: exit statuses, messages, and the
 * data-driven cases under tests/data/validate (NAME.yaml is validated and
 * its stderr must equal NAME.err, as curl's tests/data cases do). */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "require.h"
#include "runner.h"

static const char *const shipped[] = {
    "digital_data_etl", "feature_engineering", "examples/word_stats", "examples/twin_chunks",
    "training",         "generate_datasets",   "evaluating",          "end_to_end"};

Test(cli, the_shipped_pipelines_are_valid) {
    for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/pipelines/%s.yaml", SLUICE_SOURCE_DIR, shipped[i]);
        result r = RUN("validate", path);
        cr_expect_eq(r.status, 0, "%s: %s", shipped[i], r.err);
        cr_expect(strstr(r.out, ": ok: pipeline '") != NULL, "%s", r.out);
        cr_expect_str_eq(r.err, "", "%s", shipped[i]);
        result_free(&r);
    }
}

/* Each NAME.yaml under tests/data/validate against NAME.err and NAME.status. */
Test(cli, data_driven_validation_cases) {
    const char *dir = SLUICE_SOURCE_DIR "/tests/data/validate";
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        char base[256], expect_path[512];
        snprintf(base, sizeof(base), "%.*s", (int)(len - 5), e->d_name);
        snprintf(expect_path, sizeof(expect_path), "%s/%s.err", dir, base);
        char *expected = slurp(expect_path);
        cr_expect_not_null(expected, "%s has no .err file", e->d_name);
        if (!expected)
            continue;
        result r = run_in(dir, NULL, (char *[]){"sluice", "validate", "-q", e->d_name, NULL});
        cr_expect_eq(r.status, expected[0] ? 2 : 0, "%s: exit %d", e->d_name, r.status);
        cr_expect_str_eq(r.err, expected, "%s: stderr differs:\n%s", e->d_name, r.err);
        result_free(&r);
        free(expected);
        cases++;
    }
    closedir(d);
    cr_expect_geq(cases, 8, "only %d cases found", cases);
}

Test(cli, validate_reports_all_files_and_fails_if_any_fails) {
    result r = RUN("validate", SLUICE_SOURCE_DIR "/pipelines/examples/word_stats.yaml",
                   "/nonexistent.yaml");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.out, "word_stats.yaml: ok") != NULL);
    cr_expect_str_eq(r.err, "/nonexistent.yaml: error: cannot read: No such file or directory\n");
    result_free(&r);
}

Test(cli, overrides_from_the_command_line) {
    const char *fe = SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml";
    result r =
        RUN("validate", "-p", "max_tokens=128", "-p", "author_full_names=[A, B]", (char *)fe);
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN("validate", "-p", "max_tokens=lots", (char *)fe);
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "command line: error: -p max_tokens=lots: parameter 'max_tokens' "
                            "expects an integer, got a string\n");
    result_free(&r);
}

static int have(const char *path) { return access(path, X_OK) == 0; }

Test(cli, graph_dot_renders_with_graphviz) {
    if (!have("/usr/bin/dot"))
        SKIP_UNLESS_REQUIRED("graphviz's dot is not installed (apt-get install graphviz)");
    char dot_path[] = "/tmp/sluice-test-dot-XXXXXX";
    int fd = mkstemp(dot_path);
    close(fd);
    result g = RUN("graph", SLUICE_SOURCE_DIR "/pipelines/end_to_end.yaml", "--format", "dot");
    cr_assert_eq(g.status, 0, "%s", g.err);
    FILE *f = fopen(dot_path, "w");
    fputs(g.out, f);
    fclose(f);
    cr_expect(strstr(g.out, "\"chunk\" -> \"embed\" [label=\"chunks\"];") != NULL, "%s", g.out);
    cr_expect(strstr(g.out, "\"evaluate\" -> \"deploy\" [style=dashed];") != NULL);
    result svg = run_in(NULL, dot_path, (char *[]){"/usr/bin/dot", "-Tsvg", NULL});
    cr_expect_eq(svg.status, 0, "dot failed: %s", svg.err);
    cr_expect(strstr(svg.out, "<svg") != NULL);
    cr_expect(strstr(svg.out, "crawl_paul") != NULL);
    unlink(dot_path);
    result_free(&g);
    result_free(&svg);
}

Test(cli, graph_json_is_valid_and_ordered) {
    result r =
        RUN("graph", "--format=json", SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml");
    cr_assert_eq(r.status, 0, "%s", r.err);
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, &error);
    cr_assert_not_null(doc, "not JSON: %s", error.message);
    bson_iter_t it, child;
    cr_assert(bson_iter_init_find(&it, doc, "order") && bson_iter_recurse(&it, &child));
    const char *order[8];
    int n = 0;
    while (bson_iter_next(&child) && n < 8)
        order[n++] = bson_iter_utf8(&child, NULL);
    cr_assert_eq(n, 7);
    cr_expect_str_eq(order[0], "query");
    cr_expect_str_eq(order[4], "index");
    cr_expect_str_eq(order[6], "evaluate");
    cr_assert(bson_iter_init_find(&it, doc, "levels"));
    cr_expect_eq(bson_iter_int32(&it), 6);
    bson_destroy(doc);
    result_free(&r);
}

Test(cli, graph_mermaid) {
    result r =
        RUN("graph", "-f", "mermaid", SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "flowchart LR\n", 13) == 0);
    cr_expect(strstr(r.out, "  s0 -->|documents| s1\n") != NULL, "%s", r.out);
    result_free(&r);
}

/* "artifact:ID" inputs are source nodes, one per ID however many steps
 * (or fan-out instances) read it, in every format. */
Test(cli, graph_draws_artifact_inputs) {
    char dir[] = "/tmp/sluice-test-graph-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("pipeline: arts\nsteps:\n"
          "  tok: {uses: shell, with: {run: 'echo t > t', outputs: {tokenizer: t}}}\n"
          "  sft:\n    uses: shell\n"
          "    inputs: {dataset: \"artifact:handbook-instruct\", tokenizer: tok.tokenizer}\n"
          "    with: {run: 'true'}\n"
          "  each:\n    uses: shell\n    matrix: {n: [1, 2]}\n"
          "    inputs: {data: \"artifact:handbook-instruct\", extra: \"artifact:0123abcd\"}\n"
          "    with: {run: 'true'}\n",
          f);
    fclose(f);
    result r = RUN("graph", path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *node = "  \"artifact:handbook-instruct\" [shape=cylinder, style=solid, "
                       "class=\"artifact\"];\n";
    cr_expect(strstr(r.out, node) && !strstr(strstr(r.out, node) + 1, node),
              "one node for the ID two steps read: %s", r.out);
    cr_expect(strstr(r.out, "\"artifact:handbook-instruct\" -> \"sft\" [label=\"dataset\"];"), "%s",
              r.out);
    cr_expect(strstr(r.out, "\"artifact:handbook-instruct\" -> \"each[1]\" [label=\"data\"];"),
              "to each instance: %s", r.out);
    cr_expect(strstr(r.out, "\"artifact:0123abcd\" -> \"each[0]\" [label=\"extra\"];"), "%s",
              r.out);
    if (have("/usr/bin/dot")) {
        char dot_path[80];
        snprintf(dot_path, sizeof(dot_path), "%s/g.dot", dir);
        f = fopen(dot_path, "w");
        fputs(r.out, f);
        fclose(f);
        result svg = run_in(NULL, dot_path, (char *[]){"/usr/bin/dot", "-Tsvg", NULL});
        cr_expect_eq(svg.status, 0, "dot failed: %s", svg.err);
        cr_expect(strstr(svg.out, "artifact:handbook&#45;instruct"), "%s", svg.out);
        result_free(&svg);
        unlink(dot_path);
    }
    result_free(&r);
    r = RUN("graph", "-f", "mermaid", path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "  a0[(\"artifact:handbook-instruct\")]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  a1[(\"artifact:0123abcd\")]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  a0 -->|dataset| s1\n"), "%s", r.out);
    cr_expect(strstr(r.out, "  a1 -->|extra| s3\n"), "%s", r.out);
    result_free(&r);
    r = RUN("graph", "-f", "json", path);
    cr_assert_eq(r.status, 0, "%s", r.err);
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, -1, &error);
    cr_assert_not_null(doc, "not JSON: %s", error.message);
    bson_iter_t it;
    cr_expect(bson_iter_init(&it, doc) &&
              bson_iter_find_descendant(&it, "artifacts.0.artifact", &it) &&
              !strcmp(bson_iter_utf8(&it, NULL), "handbook-instruct"));
    cr_expect(bson_iter_init(&it, doc) &&
                  bson_iter_find_descendant(&it, "artifacts.0.to.2.step", &it) &&
                  !strcmp(bson_iter_utf8(&it, NULL), "each[1]"),
              "%s", r.out);
    cr_expect(bson_iter_init(&it, doc) &&
              bson_iter_find_descendant(&it, "artifacts.1.to.0.input", &it) &&
              !strcmp(bson_iter_utf8(&it, NULL), "extra"));
    cr_expect(bson_iter_init(&it, doc) && !bson_iter_find_descendant(&it, "edges.1", &it),
              "artifact inputs are not edges between steps: %s", r.out);
    bson_destroy(doc);
    result_free(&r);
    unlink(path);
    rmdir(dir);
}

Test(cli, usage_errors_exit_2) {
    result r = RUN("graph", "--format", "png", SLUICE_SOURCE_DIR "/pipelines/end_to_end.yaml");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "sluice graph: unknown format 'png' (use dot, mermaid or json)\n");
    result_free(&r);
    r = RUN("valdate", "x.yaml");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "sluice: unknown command 'valdate' (did you mean 'validate'?)\n");
    result_free(&r);
    r = RUN("validate", "--bogus", "x.yaml");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err,
                     "sluice validate: unknown option '--bogus' (see 'sluice validate --help')\n");
    result_free(&r);
    r = RUN("validate");
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = RUN("graph", "-f");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.err, "sluice graph: option '-f' needs a value\n");
    result_free(&r);
    r = run_in(NULL, NULL, (char *[]){"sluice", NULL});
    expect_refused(r, 2, "usage: sluice");
}

Test(cli, every_command_has_help) {
    const char *cmds[] = {"run",     "validate", "status", "graph",  "runs",  "resume", "artifacts",
                          "lineage", "plugins",  "gc",     "search", "serve", "traces"};
    result top = RUN("--help");
    cr_expect_eq(top.status, 0);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        result r = RUN((char *)cmds[i], "--help");
        cr_expect_eq(r.status, 0, "%s --help", cmds[i]);
        cr_expect(strstr(r.out, "usage: sluice ") != NULL, "%s --help: %s", cmds[i], r.out);
        cr_expect(strstr(top.out, cmds[i]) != NULL, "%s missing from sluice --help", cmds[i]);
        result_free(&r);
    }
    result_free(&top);
    result v = RUN("--version");
    cr_expect_eq(v.status, 0);
    cr_expect(strncmp(v.out, "sluice ", 7) == 0);
    result_free(&v);
}

Test(cli, serve_is_the_program_sluice_serve) {
    result r = RUN("serve");
    expect_refused(r, 2, "sluice serve: give --model DIR");
}

Test(cli, running_a_pipeline_whose_steps_are_missing_is_refused_before_anything_runs) {
    char dir[] = "/tmp/sluice-test-missing-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/p.yaml", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    static const char text[] = "version: 1\npipeline: p\nsteps:\n"
                               "  a: {uses: shell, with: {run: 'true'}}\n"
                               "  b:\n    uses: deploy_twice\n    after: [a]\n";
    cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    result r = RUN("--store=/tmp/sluice-test-unused-store", "run", path);
    unlink(path);
    rmdir(dir);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, ":6:11: error: no plugin declares step 'deploy_twice'") != NULL, "%s",
              r.err);
    cr_expect_neq(access("/tmp/sluice-test-unused-store", F_OK), 0, "nothing was created");
    result_free(&r);
}

Test(cli, the_example_pipeline_runs_end_to_end) {
    char store[] = "/tmp/sluice-test-store-XXXXXX";
    cr_assert_not_null(mkdtemp(store));
    char arg[64];
    snprintf(arg, sizeof(arg), "--store=%s", store);
    /* The default store, ./.sluice, is relative: run from inside the folder. */
    result r =
        run_in(store, NULL,
               (char *[]){"sluice", "run", SLUICE_SOURCE_DIR "/pipelines/examples/word_stats.yaml",
                          "-p", "top=3", NULL});
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "step report done") != NULL, "%s", r.out);
    char *report = strstr(r.out, "report.report: ");
    cr_assert_not_null(report, "%s", r.out);
    char path[512];
    cr_assert_eq(sscanf(report, "report.report: %511s", path), 1);
    char *text = slurp(path);
    cr_expect_str_eq(text, "lines: 24\nmost frequent words:\n  that\t6\n  model\t5\n  with\t5\n");
    free(text);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", store);
    cr_expect_eq(system(cmd), 0);
    result_free(&r);
}

/* ---- global options, runs ---- */

static const char *word_stats = SLUICE_SOURCE_DIR "/pipelines/examples/word_stats.yaml";

Test(cli, global_options_are_taken_after_the_command_too, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char store[128];
    snprintf(store, sizeof(store), "%s/store", test_dir);
    result r = RUN("run", (char *)word_stats, "--store", store, "--no-color", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"event\" : \"run_finished\"") != NULL, "%s", r.out);
    result_free(&r);
    /* The run went into that store: list it from there, options anywhere. */
    const char *forms[][5] = {{"runs", "list", "--json", test_store_arg, NULL},
                              {"--json", "runs", "list", test_store_arg, NULL},
                              {"runs", "--store", store, "list", "--json"},
                              {"--no-color", test_store_arg, "runs", "list", "--json"}};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        r = run_in(NULL, NULL,
                   (char *[]){"sluice", (char *)forms[i][0], (char *)forms[i][1],
                              (char *)forms[i][2], (char *)forms[i][3], (char *)forms[i][4], NULL});
        cr_expect_eq(r.status, 0, "form %zu: %s", i, r.err);
        cr_expect(strstr(r.out, "\"pipeline\" : \"word_stats\"") != NULL, "form %zu: %s", i, r.out);
        result_free(&r);
    }
    /* After "--", nothing is an option any more. */
    r = RUN("validate", "--", "--store");
    expect_refused(r, 2, "--store: error: cannot read");
}

Test(cli, listing_a_store_with_no_runs_is_empty, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    result r = RUN(test_store_arg, "runs", "list", "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "{ \"runs\" : [  ] }\n");
    cr_expect_str_eq(r.err, "");
    result_free(&r);
    r = RUN(test_store_arg, "runs", "list");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "RUN ", 4) == 0 && count(r.out, "\n") == 1, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "list", "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "{ \"artifacts\" : [  ] }\n");
    result_free(&r);
    /* Listing made nothing. */
    char store[128];
    snprintf(store, sizeof(store), "%s/store", test_dir);
    cr_expect_neq(access(store, F_OK), 0, "%s was created", store);
}

/* The ids of the runs 'runs list ARGS' prints, in its order, joined by spaces. */
static void listed_runs(char *const argv[], char *out, size_t size) {
    result r = run_in(NULL, NULL, argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    out[0] = '\0';
    for (char *line = strchr(r.out, '\n'); line && line[1]; line = strchr(line + 1, '\n'))
        snprintf(out + strlen(out), size - strlen(out), "%s%.22s", out[0] ? " " : "", line + 1);
    result_free(&r);
}

Test(cli, runs_list_is_newest_first_and_filters, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char ids[3][32], got[256], want[256];
    const char *tops[] = {"top=1", "top=2", "top=3"};
    const char *tags[] = {"ci=1", "ci=2", "ci=1"};
    for (int i = 0; i < 3; i++) {
        result r = RUN_PIPELINE((char *)word_stats, "-p", (char *)tops[i], "--tag", (char *)tags[i],
                                "--tag", "kind=nightly");
        cr_assert_eq(r.status, 0, "%s", r.err);
        snprintf(ids[i], sizeof(ids[i]), "%s", last_run);
        result_free(&r);
    }
    listed_runs((char *[]){"sluice", test_store_arg, "runs", "list", NULL}, got, sizeof(got));
    snprintf(want, sizeof(want), "%s %s %s", ids[2], ids[1], ids[0]);
    cr_expect_str_eq(got, want);
    listed_runs((char *[]){"sluice", test_store_arg, "runs", "list", "--tag", "ci=1", "--tag",
                           "kind=nightly", NULL},
                got, sizeof(got));
    snprintf(want, sizeof(want), "%s %s", ids[2], ids[0]);
    cr_expect_str_eq(got, want);
    listed_runs((char *[]){"sluice", test_store_arg, "runs", "list", "--limit", "1", "--status",
                           "done", "--pipeline", "word_stats", NULL},
                got, sizeof(got));
    cr_expect_str_eq(got, ids[2]);
    listed_runs((char *[]){"sluice", test_store_arg, "runs", "list", "--pipeline", "other", NULL},
                got, sizeof(got));
    cr_expect_str_eq(got, "");
    listed_runs((char *[]){"sluice", test_store_arg, "runs", "list", "--status", "failed", NULL},
                got, sizeof(got));
    cr_expect_str_eq(got, "");
    result r = RUN(test_store_arg, "runs", "list", "--tag", "nokey");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}

Test(cli, runs_show_gives_parameters_and_steps_in_dag_order, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    result r = RUN_PIPELINE((char *)word_stats, "-p", "top=4");
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    /* 'latest' names the newest run. */
    r = RUN(test_store_arg, "runs", "show", "latest");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char head[64];
    snprintf(head, sizeof(head), "run %s: pipeline word_stats", last_run);
    cr_expect(strncmp(r.out, head, strlen(head)) == 0, "%s", r.out);
    cr_expect(strstr(r.out, "  param top = 4  (-p)\n") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "  param source = \"../demo/twin_notes.md\"  (default)\n") != NULL,
              "%s", r.out);
    /* File order where the DAG allows it: gather, words, lines, report. */
    const char *order[] = {"\n  gather ", "\n  words ", "\n  lines ", "\n  report "};
    for (int i = 0; i < 3; i++) {
        const char *a = strstr(r.out, order[i]), *b = strstr(r.out, order[i + 1]);
        cr_expect(a && b && a < b, "%s before%s in:\n%s", order[i], order[i + 1], r.out);
    }
    result_free(&r);
    r = RUN(test_store_arg, "runs", "show", "latest", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *w = strstr(r.out, "\"step\" : \"words\""),
               *rep = strstr(r.out, "\"step\" : \"report\"");
    cr_expect(w && rep && w < rep, "%s", r.out);
    result_free(&r);
    /* resume takes it too (the run finished: nothing to do). */
    r = RUN(test_store_arg, "resume", "latest");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, last_run) != NULL, "%s", r.out);
    result_free(&r);
    r = RUN("--store=/nonexistent-store", "runs", "show", "latest");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}

/* ---- artifacts by name ---- */

Test(cli, artifacts_are_named_by_run_step_and_output, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char first[32];
    result r = RUN_PIPELINE((char *)word_stats, "-p", "top=1");
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(first, sizeof(first), "%s", last_run);
    result_free(&r);
    r = RUN_PIPELINE((char *)word_stats, "-p", "top=2");
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char *newest = last_output("counts");
    /* STEP.OUTPUT is the newest run's; RUN:STEP.OUTPUT that run's. */
    result cat = RUN(test_store_arg, "artifacts", "cat", "words.counts");
    cr_expect_eq(cat.status, 0, "%s", cat.err);
    cr_expect_str_eq(cat.out, newest);
    result_free(&cat);
    char spec[64];
    snprintf(spec, sizeof(spec), "%s:words.counts", first);
    cat = RUN(test_store_arg, "artifacts", "cat", spec);
    cr_expect_eq(cat.status, 0, "%s", cat.err);
    cr_expect_eq(count(cat.out, "\n"), count(newest, "\n") - 1, "top=1 vs top=2:\n%s", cat.out);
    result_free(&cat);
    cat = RUN(test_store_arg, "artifacts", "show", "latest:words.counts", "--json");
    cr_expect_eq(cat.status, 0, "%s", cat.err);
    cr_expect(strstr(cat.out, "\"output\" : \"counts\"") != NULL, "%s", cat.out);
    result_free(&cat);
    /* lineage takes the same names. */
    r = RUN(test_store_arg, "lineage", "report.report", "--up");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "* artifact ") != NULL && strstr(r.out, "words.counts") != NULL, "%s",
              r.out);
    result_free(&r);
    /* search takes the same names, through the same resolver. */
    r = RUN(test_store_arg, "search", "words.nope", "query");
    expect_refused(r, 2, "step 'words' has no output 'nope'");
    /* Names that match nothing say what is missing. */
    const char *bad[][2] = {{"words.nope", "step 'words' has no output 'nope'"},
                            {"nostep.counts", "no step 'nostep'"},
                            {"zzzz:words.counts", "no run matches 'zzzz'"},
                            {".counts", "is not an artifact id"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = RUN(test_store_arg, "artifacts", "cat", (char *)bad[i][0]);
        cr_expect_eq(r.status, 2, "%s", bad[i][0]);
        cr_expect(strstr(r.err, bad[i][1]) != NULL, "%s: %s", bad[i][0], r.err);
        result_free(&r);
    }
    free(newest);
}

Test(cli, artifacts_export_into_a_folder_works_like_cp, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char *yaml =
        write_test_file(test_dir, "tree.yaml",
                        "version: 1\npipeline: tree\nsteps:\n  make:\n    uses: shell\n"
                        "    with:\n      run: mkdir -p out/sub && printf hello > out/a.txt"
                        " && printf world! > out/sub/b.txt && printf x > one.txt\n"
                        "      outputs: {tree: out, one: one.txt}\n");
    result r = RUN_PIPELINE(yaml);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    char into[256], path[512];
    snprintf(into, sizeof(into), "%s/into", test_dir);
    cr_assert_eq(mkdir(into, 0755), 0);
    r = RUN(test_store_arg, "artifacts", "export", "make.tree", into);
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "export", "make.one", into);
    cr_expect_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    snprintf(path, sizeof(path), "%s/tree/sub/b.txt", into);
    char *text = slurp(path);
    cr_expect_str_eq(text ? text : "(missing)", "world!");
    free(text);
    snprintf(path, sizeof(path), "%s/one", into);
    text = slurp(path);
    cr_expect_str_eq(text ? text : "(missing)", "x");
    free(text);
    /* A folder's size is what its files hold: 5 + 6 bytes. */
    r = RUN(test_store_arg, "artifacts", "show", "make.tree", "--json");
    cr_expect(strstr(r.out, "\"size\" : 11") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "list");
    cr_expect(strstr(r.out, "folder           11  ") != NULL, "%s", r.out);
    result_free(&r);
}

/* ---- plugins ---- */

Test(cli, plugins_describe_shell) {
    result r = RUN("plugins", "describe", "shell");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "shell builtin", 13) == 0, "%s", r.out);
    cr_expect(strstr(r.out, "  run              string   required") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN("plugins", "describe", "shell", "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "{ \"name\" : \"run\", \"kind\" : \"string\", \"required\" : true") !=
                  NULL,
              "%s", r.out);
    result_free(&r);
    r = RUN("plugins", "describe", "shel");
    expect_refused(r, 2, "(did you mean 'shell'?)");
}

Test(cli, plugins_take_a_pipelines_plugin_folders, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    run_env[0] = NULL; /* the test plugins only through the pipeline */
    char *yaml = write_test_file(test_dir, "own.yaml",
                                 "version: 1\npipeline: own\nplugins: [" SLUICE_TEST_PLUGINS
                                 "/good]\nsteps:\n  a: {uses: emit, with: {text: hi}}\n");
    result r = RUN("plugins", "describe", "emit");
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = RUN("plugins", "list", "--pipeline", yaml);
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\nemit ") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN("plugins", "describe", "emit", "--pipeline", yaml, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "\"name\" : \"emit\"") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN("plugins", "list", "--pipeline", "/nonexistent.yaml");
    expect_refused(r, 2, "/nonexistent.yaml: error: cannot read");
}

/* ---- status ---- */

Test(cli, status_names_the_pipeline_parameter_that_changed, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char *yaml =
        write_test_file(test_dir, "greet.yaml",
                        "version: 1\npipeline: greet\n"
                        "params: {greeting: hello, name: world, n: 1}\nsteps:\n"
                        "  say:\n    uses: shell\n    with:\n"
                        "      run: echo \"${params.greeting}, ${params.name}\" > out.txt\n"
                        "      outputs: {text: out.txt}\n"
                        "  count:\n    uses: shell\n    inputs: {text: say.text}\n"
                        "    with:\n      run: echo ${params.n} > n.txt\n"
                        "      outputs: {n: n.txt}\n");
    result r = RUN_PIPELINE(yaml);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "status", yaml, "-p", "n=3");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "say    cache  from ") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, ": parameter 'run' changed (params.n: 1 -> 3)\n") != NULL, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "status", yaml, "-p", "name=you", "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(
        strstr(r.out, "parameter 'run' changed (params.name: \\\"world\\\" -> \\\"you\\\")\"") !=
            NULL,
        "%s", r.out);
    cr_expect(strstr(r.out, "params.greeting") == NULL, "%s", r.out);
    result_free(&r);
}

/* --no-color reaches the steps as NO_COLOR=1 (no-color.org), so that the
 * tools they start print no colour either. */
Test(cli, no_color_reaches_the_steps, .init = test_dir_setup, .fini = test_dir_teardown) {
    char *yaml = write_test_file(test_dir, "env.yaml",
                                 "version: 1\npipeline: env\nsteps:\n  show:\n    uses: shell\n"
                                 "    with:\n      run: printf '[%s]' \"${NO_COLOR:-}\" > env.txt\n"
                                 "      outputs: {env: env.txt}\n    cache: false\n");
    result r = RUN_PIPELINE(yaml, "--no-color");
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "cat", "show.env");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "[1]");
    result_free(&r);
}

/* The live view draws colour only on a terminal, and never under NO_COLOR:
 * script(1) gives the run a terminal, so both halves are seen. */
static char *run_on_a_terminal(const char *yaml, const char *env) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && %s %s script -qec \"'%s' '%s' run '%s'\" /dev/null > tty.out 2>&1",
             test_dir, test_plugin_path, env, SLUICE_BIN, test_store_arg, yaml);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char path[256];
    snprintf(path, sizeof(path), "%s/tty.out", test_dir);
    char *out = slurp(path);
    cr_assert_not_null(out);
    return out;
}

Test(cli, no_color_turns_the_live_views_colour_off, .init = test_dir_setup,
     .fini = test_dir_teardown) {
    char *yaml = write_test_file(test_dir, "one.yaml",
                                 "version: 1\npipeline: one\nsteps:\n  a:\n    uses: shell\n"
                                 "    with: {run: 'true'}\n    cache: false\n");
    char *coloured = run_on_a_terminal(yaml, "");
    cr_expect_not_null(strstr(coloured, "\033[32m"), "no colour on a terminal: %s", coloured);
    char *plain = run_on_a_terminal(yaml, "NO_COLOR=1");
    cr_expect_null(strstr(plain, "\033[3"), "colour under NO_COLOR: %s", plain);
    cr_expect_not_null(strstr(plain, "a done"), "%s", plain);
    free(coloured);
    free(plain);
}

Test(cli, jobs_zero_means_every_core, .init = test_dir_setup, .fini = test_dir_teardown) {
    char *yaml = write_test_file(test_dir, "one.yaml",
                                 "version: 1\npipeline: one\nsteps:\n  a:\n    uses: shell\n"
                                 "    with: {run: 'true'}\n");
    result r = RUN_PIPELINE(yaml, "-j", "0");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char want[64];
    snprintf(want, sizeof(want), "\"jobs\" : %ld", sysconf(_SC_NPROCESSORS_ONLN));
    cr_expect_not_null(strstr(r.out, want), "%s in %s", want, r.out);
    result_free(&r);
    r = RUN_PIPELINE(yaml, "-j", "-1");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}
