/* End-to-end tests of fan-out steps (foreach, matrix) with the real
 * binary: instances run, each is cached on its own, a downstream step
 * receives their outputs as a list in item order, and validate refuses the
 * bad forms with located errors. */
#include "runner.h"

TestSuite(foreach, .init = test_dir_setup, .fini = test_dir_teardown);

static const char fanout_pipeline[] =
    "version: 1\n"
    "pipeline: fan\n"
    "params:\n"
    "  words: [alpha, beta, gamma]\n"
    "steps:\n"
    "  each:\n"
    "    uses: shell\n"
    "    foreach: ${params.words}\n"
    "    with:\n"
    "      run: echo ${item} > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n"
    "  grid:\n"
    "    uses: shell\n"
    "    matrix: {size: [s, m], lr: [1, 2]}\n"
    "    with:\n"
    "      run: echo ${item.size}-${item.lr} > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n"
    "  join:\n"
    "    uses: shell\n"
    "    inputs: {x: each.o, g: grid.o}\n"
    "    with:\n"
    "      run: |\n"
    "        while read -r f; do cat \"$f\"; done < \"$SLUICE_INPUT_x\" > all.txt\n"
    "        cat \"$SLUICE_INPUT_g_0\" \"$SLUICE_INPUT_g_1\" \"$SLUICE_INPUT_g_2\" "
    "\"$SLUICE_INPUT_g_3\" > grid.txt\n"
    "      outputs: {all: all.txt, grid: grid.txt}\n";

/* The status of step id in `runs show --json` output, or NULL. */
static char *step_status(const char *json, const char *id) {
    char needle[96];
    snprintf(needle, sizeof(needle), "\"step\" : \"%s\", \"uses\" : \"shell\", \"status\" : \"",
             id);
    const char *at = strstr(json, needle);
    if (!at)
        return NULL;
    at += strlen(needle);
    return strndup(at, strcspn(at, "\""));
}

static void expect_status(const char *json, const char *id, const char *want) {
    char *got = step_status(json, id);
    cr_expect(got && strcmp(got, want) == 0, "step %s: %s, not %s, in %s", id,
              got ? got : "(missing)", want, json);
    free(got);
}

/* Each of the n instances of fan-out step group has status want. */
static void expect_instances(const char *json, const char *group, int n, const char *want) {
    for (int i = 0; i < n; i++) {
        char id[80];
        snprintf(id, sizeof(id), "%s[%d]", group, i);
        expect_status(json, id, want);
    }
}

Test(foreach, instances_run_and_a_downstream_step_reads_their_list_in_item_order) {
    const char *file = write_test_file(test_dir, "fan.yaml", fanout_pipeline);
    expect_success(RUN_PIPELINE((char *)file));
    char *all = last_output("all");
    cr_expect_str_eq(all, "alpha\nbeta\ngamma\n");
    free(all);
    char *grid = last_output("grid");
    cr_expect_str_eq(grid, "s-1\ns-2\nm-1\nm-2\n", "the first matrix key varies slowest");
    free(grid);
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    expect_instances(show.out, "each", 3, "done");
    expect_status(show.out, "grid[3]", "done");
    cr_expect(strstr(show.out, "\"x_0\" : \"") && strstr(show.out, "\"x_2\" : \"") &&
                  strstr(show.out, "\"g_3\" : \""),
              "each item of a list input is recorded as PORT_i: %s", show.out);
    result_free(&show);
}

Test(foreach, changing_one_item_reruns_only_its_instance) {
    const char *file = write_test_file(test_dir, "fan.yaml", fanout_pipeline);
    expect_success(RUN_PIPELINE((char *)file));
    expect_success(RUN_PIPELINE((char *)file, "-p", "words=[alpha, BETA, gamma]"));
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    expect_status(show.out, "each[0]", "cached");
    expect_status(show.out, "each[1]", "done");
    expect_status(show.out, "each[2]", "cached");
    expect_instances(show.out, "grid", 4, "cached");
    expect_status(show.out, "join", "done");
    result_free(&show);
    char *all = last_output("all");
    cr_expect_str_eq(all, "alpha\nBETA\ngamma\n");
    free(all);
    /* status says the same before a run. */
    result st = RUN(test_store_arg, "status", "--json", (char *)file, "-p",
                    "words=[alpha, beta, "
                    "gamma]");
    cr_assert_eq(st.status, 0, "%s%s", st.out, st.err);
    cr_expect(strstr(st.out, "{ \"step\" : \"each[0]\", \"group\" : \"each\", \"instance\" : 0, "
                             "\"would\" : \"cache\""),
              "%s", st.out);
    cr_expect(strstr(st.out, "{ \"step\" : \"each[1]\", \"group\" : \"each\", \"instance\" : 1, "
                             "\"would\" : \"cache\""),
              "the first run made beta: %s", st.out);
    result_free(&st);
}

Test(foreach, graph_and_status_show_the_instances) {
    const char *file = write_test_file(test_dir, "fan.yaml", fanout_pipeline);
    result g = RUN(test_store_arg, "graph", "--format", "json", (char *)file);
    cr_assert_eq(g.status, 0, "%s", g.err);
    cr_expect(strstr(g.out, "\"id\" : \"each[2]\", \"uses\" : \"shell\", \"group\" : \"each\", "
                            "\"instance\" : 2"),
              "%s", g.out);
    cr_expect(strstr(g.out, "\"needs\" : [ \"each[0]\", \"each[1]\", \"each[2]\", \"grid[0]\""),
              "%s", g.out);
    result_free(&g);
    result dot = RUN(test_store_arg, "graph", (char *)file);
    cr_assert_eq(dot.status, 0, "%s", dot.err);
    cr_expect(strstr(dot.out, "subgraph \"cluster_grid\" {\n    label=\"grid[0..3]\";"), "%s",
              dot.out);
    result_free(&dot);
    /* status and runs show: one line for a fan-out step, each instance in --json. */
    result st = RUN(test_store_arg, "status", (char *)file);
    cr_assert_eq(st.status, 0, "%s", st.err);
    cr_expect(strstr(st.out, "\neach[0..2]   run    3 of 3 instances; each[0]: "), "%s", st.out);
    cr_expect(!strstr(st.out, "grid[3]"), "%s", st.out);
    cr_expect(strstr(st.out, "8 of 8 steps would run"), "%s", st.out);
    result_free(&st);
    expect_success(RUN_PIPELINE((char *)file, "-p", "words=[alpha, beta, delta]"));
    result show = RUN(test_store_arg, "runs", "show", last_run);
    cr_assert_eq(show.status, 0, "%s", show.err);
    cr_expect(strstr(show.out, "  each[0..2]               3 instances: 3 done, 0 cached\n"), "%s",
              show.out);
    result_free(&show);
    expect_success(RUN_PIPELINE((char *)file));
    st = RUN(test_store_arg, "status", (char *)file);
    cr_assert_eq(st.status, 0, "%s", st.err);
    cr_expect(strstr(st.out, "\ngrid[0..3]   cache  all 4 instances from the cache\n"), "%s",
              st.out);
    result_free(&st);
    show = RUN(test_store_arg, "runs", "show", last_run);
    cr_assert_eq(show.status, 0, "%s", show.err);
    cr_expect(strstr(show.out, "  each[0..2]               3 instances: 1 done, 2 cached\n"), "%s",
              show.out);
    result_free(&show);
}

Test(foreach, a_failed_instance_is_shown_in_full_under_its_group) {
    const char *file = write_test_file(test_dir, "fail.yaml",
                                       "version: 1\n"
                                       "pipeline: fail\n"
                                       "steps:\n"
                                       "  each:\n"
                                       "    uses: shell\n"
                                       "    foreach: [0, 3, 0]\n"
                                       "    with: {run: \"exit ${item}\"}\n");
    result r = RUN_PIPELINE((char *)file);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
    result show = RUN(test_store_arg, "runs", "show", last_run);
    cr_assert_eq(show.status, 0, "%s", show.err);
    cr_expect(strstr(show.out, "  each[0..2]               3 instances: 2 done, 0 cached, 1 other\n"
                               "  each[1]                  failed"),
              "%s", show.out);
    cr_expect(strstr(show.out, "exited with status 3"), "%s", show.out);
    result_free(&show);
}

Test(foreach, validate_refuses_the_bad_forms_with_their_location) {
    const char *file = write_test_file(test_dir, "bad.yaml",
                                       "version: 1\n"
                                       "pipeline: bad\n"
                                       "params: {one: x, none: []}\n"
                                       "steps:\n"
                                       "  a:\n"
                                       "    uses: shell\n"
                                       "    foreach: ${params.one}\n"
                                       "    with: {run: \"echo ${item}\"}\n"
                                       "  b:\n"
                                       "    uses: shell\n"
                                       "    foreach: ${params.none}\n"
                                       "    with: {run: \"echo ${item}\"}\n"
                                       "  c:\n"
                                       "    uses: shell\n"
                                       "    with: {run: \"echo ${item}\"}\n"
                                       "  d:\n"
                                       "    uses: shell\n"
                                       "    matrix: {x: 1}\n"
                                       "    with: {run: \"echo ${item.x}\"}\n");
    result r = RUN(test_store_arg, "validate", (char *)file);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    const char *all = r.err && *r.err ? r.err : r.out;
    cr_expect(strstr(all, "bad.yaml:7:14: error: 'foreach' of step 'a' must be a list"), "%s", all);
    cr_expect(strstr(all, "bad.yaml:11:14: error: 'foreach' of step 'b' is an empty list"), "%s",
              all);
    cr_expect(strstr(all, "bad.yaml:15:17: error: '${item}' is only defined in 'with' of a step "
                          "with 'foreach' or 'matrix'"),
              "%s", all);
    cr_expect(strstr(all, "bad.yaml:18:17: error: matrix key 'x' of step 'd' must be a list"), "%s",
              all);
    cr_expect_eq(count(all, "error:"), 4, "one error each, none repeated per instance: %s", all);
    result_free(&r);
}

Test(foreach, only_with_the_fan_out_id_runs_every_instance) {
    const char *file = write_test_file(test_dir, "fan.yaml", fanout_pipeline);
    expect_success(RUN_PIPELINE((char *)file, "--only", "each"));
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    expect_instances(show.out, "each", 3, "done");
    char *grid = step_status(show.out, "grid[0]"), *join = step_status(show.out, "join");
    cr_expect(!grid || strcmp(grid, "done"), "grid was not selected: %s", show.out);
    cr_expect(!join || strcmp(join, "done"), "join was not selected: %s", show.out);
    free(grid);
    free(join);
    result_free(&show);
    expect_success(RUN_PIPELINE((char *)file, "--only", "each[1]"));
    show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    char *other = step_status(show.out, "each[0]");
    cr_expect(!other || strcmp(other, "done"), "each[0] was not selected: %s", show.out);
    free(other);
    result_free(&show);
}

/* A plugin reads a list input through the SDK: input_path("in") is the
 * listing, one path a line in item order; a typed port refuses the list. */
Test(foreach, a_plugin_reads_the_list_as_a_listing_and_a_typed_port_refuses_it) {
    const char *file = write_test_file(test_dir, "plug.yaml",
                                       "version: 1\n"
                                       "pipeline: plug\n"
                                       "steps:\n"
                                       "  each:\n"
                                       "    uses: shell\n"
                                       "    foreach: [one, two, three]\n"
                                       "    with:\n"
                                       "      run: echo ${item} > \"$SLUICE_OUTPUT_o\"\n"
                                       "      outputs: {o: o.txt}\n"
                                       "  list: {uses: echo, inputs: {in: each.o}, with: {prefix: "
                                       "\"\"}}\n"
                                       "  show:\n"
                                       "    uses: shell\n"
                                       "    inputs: {l: list.out}\n"
                                       "    with:\n"
                                       "      run: while read -r f; do cat \"$f\"; done < "
                                       "\"$SLUICE_INPUT_l\" > all.txt\n"
                                       "      outputs: {all: all.txt}\n");
    expect_success(RUN_PIPELINE((char *)file));
    char *all = last_output("all");
    cr_expect_str_eq(all, "one\ntwo\nthree\n");
    free(all);
    const char *typed = write_test_file(test_dir, "typed.yaml",
                                        "version: 1\n"
                                        "pipeline: typed\n"
                                        "steps:\n"
                                        "  each:\n"
                                        "    uses: shell\n"
                                        "    foreach: [1, 2]\n"
                                        "    with: {run: x, outputs: {o: o.txt}}\n"
                                        "  t: {uses: typed, inputs: {chunks: each.o}}\n");
    result r = RUN(test_store_arg, "validate", (char *)typed);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "typed.yaml:8:37: error: input 'chunks' of step 't' takes one chunks, "
                            "but 'each' fans out into 2 instances"),
              "%s", r.err);
    result_free(&r);
}
