/* End-to-end tests of 'foreach: STEP.OUTPUT' with the real binary: one
 * instance per JSON Lines row of another step's output, made when that
 * step has finished; each instance cached on its own (a changed row reruns
 * one), a downstream step given their outputs in row order, a resumed run
 * made again from the recorded rows, a bad row or no rows a located
 * failure, and validate's refusals before anything runs. */
#include "runner.h"

TestSuite(foreach_rows, .init = test_dir_setup, .fini = test_dir_teardown);

/* list writes five rows, the third from a parameter; each runs once per
 * row; join reads their outputs in row order, and fails until @/go exists
 * (for the resume). */
static const char rows_pipeline[] =
    "version: 1\n"
    "pipeline: rows\n"
    "params:\n"
    "  third: c\n"
    "steps:\n"
    "  list:\n"
    "    uses: shell\n"
    "    with:\n"
    "      run: |\n"
    "        for w in a b ${params.third} d e; do\n"
    "          printf '{\"w\": \"%s\", \"n\": 1}\\n' \"$w\"\n"
    "        done > \"$SLUICE_OUTPUT_rows\"\n"
    "      outputs: {rows: rows.jsonl}\n"
    "  each:\n"
    "    uses: shell\n"
    "    foreach: list.rows\n"
    "    with:\n"
    "      run: echo ${item.w}${item.n} > \"$SLUICE_OUTPUT_o\"\n"
    "      outputs: {o: o.txt}\n"
    "  join:\n"
    "    uses: shell\n"
    "    inputs: {x: each.o}\n"
    "    with:\n"
    "      run: |\n"
    "        test -e @/go\n"
    "        while read -r f; do cat \"$f\"; done < \"$SLUICE_INPUT_x\" > all.txt\n"
    "      outputs: {all: all.txt}\n";

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

static char *show_last(void) {
    result show = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_assert_eq(show.status, 0, "%s", show.err);
    free(show.err);
    return show.out;
}

static void touch_go(void) { write_test_file(test_dir, "go", ""); }

Test(foreach_rows, one_instance_per_row_cached_each_on_its_own) {
    touch_go();
    const char *file = write_test_file(test_dir, "rows.yaml", rows_pipeline);
    result g = RUN(test_store_arg, "graph", (char *)file);
    cr_expect(strstr(g.out, "\"each\" [label=\"each[*]\n") &&
                  strstr(g.out, "\"list\" -> \"each\" [label=\"foreach rows\""),
              "before a run the count is unknown: %s", g.out);
    result_free(&g);

    expect_success(RUN_PIPELINE((char *)file));
    char *all = last_output("all");
    cr_expect_str_eq(all, "a1\nb1\nc1\nd1\ne1\n", "in row order");
    free(all);
    char *json = show_last();
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "each[%d]", i);
        expect_status(json, id, "done");
    }
    cr_expect(!strstr(json, "each[5]"), "%s", json);
    free(json);
    g = RUN(test_store_arg, "graph", (char *)file, "--run", last_run);
    cr_expect(strstr(g.out, "label=\"each[0..4]\";") &&
                  strstr(g.out, "\"list\" -> \"each[4]\" [label=\"foreach rows\"") &&
                  strstr(g.out, "\"each[4]\" -> \"join\" [label=\"x\"]") &&
                  !strstr(g.out, "each[*]"),
              "after the run, as it made them: %s", g.out);
    result_free(&g);
    result text = RUN(test_store_arg, "runs", "show", last_run);
    cr_expect(strstr(text.out, "  each[0..4]  ") && strstr(text.out, "5 instances: 5 done"), "%s",
              text.out);
    result_free(&text);

    /* The same rows: every instance from the cache. */
    expect_success(RUN_PIPELINE((char *)file));
    json = show_last();
    expect_status(json, "list", "cached");
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "each[%d]", i);
        expect_status(json, id, "cached");
    }
    expect_status(json, "join", "cached");
    free(json);

    /* One row changed: its instance alone runs. */
    expect_success(RUN_PIPELINE((char *)file, "-p", "third=C"));
    json = show_last();
    expect_status(json, "list", "done");
    expect_status(json, "each[0]", "cached");
    expect_status(json, "each[1]", "cached");
    expect_status(json, "each[2]", "done");
    expect_status(json, "each[3]", "cached");
    expect_status(json, "each[4]", "cached");
    expect_status(json, "join", "done");
    free(json);
    all = last_output("all");
    cr_expect_str_eq(all, "a1\nb1\nC1\nd1\ne1\n");
    free(all);
}

Test(foreach_rows, a_resumed_run_makes_the_instances_again_from_the_recorded_rows) {
    const char *file = write_test_file(test_dir, "rows.yaml", rows_pipeline);
    result r = RUN_PIPELINE((char *)file, "--no-cache");
    cr_expect_eq(r.status, 1, "join fails without @/go: %s%s", r.out, r.err);
    result_free(&r);
    char first[32];
    snprintf(first, sizeof(first), "%s", last_run);
    touch_go();
    r = RUN(test_store_arg, "resume", first, "--json");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    const char *id = strstr(r.out, "\"run\" : \"");
    cr_assert_not_null(id, "%s", r.out);
    snprintf(last_run, sizeof(last_run), "%.*s", (int)strcspn(id + 9, "\""), id + 9);
    result_free(&r);
    char *json = show_last();
    expect_status(json, "list", "cached");
    expect_status(json, "each[0]", "cached");
    expect_status(json, "each[4]", "cached");
    expect_status(json, "join", "done");
    free(json);
    char *all = last_output("all");
    cr_expect_str_eq(all, "a1\nb1\nc1\nd1\ne1\n");
    free(all);
}

/* A shell step writing rows as given (printf's format: "\n" a line end). */
static const char *rows_from(const char *name, const char *rows) {
    char text[1024];
    snprintf(text, sizeof(text),
             "version: 1\n"
             "pipeline: bad\n"
             "steps:\n"
             "  list:\n"
             "    uses: shell\n"
             "    with: {run: \"printf '%s' > \\\"$SLUICE_OUTPUT_rows\\\"\", outputs: {rows: "
             "r.jsonl}}\n"
             "  each:\n"
             "    uses: shell\n"
             "    foreach: list.rows\n"
             "    with: {run: \"echo ${item.w}\"}\n"
             "  after_each: {uses: shell, after: each, with: {run: \"true\"}}\n",
             rows);
    return write_test_file(test_dir, name, text);
}

Test(foreach_rows, a_bad_row_fails_the_step_naming_the_artifact_and_line) {
    result r = RUN_PIPELINE((char *)rows_from("bad.yaml", "{\\\"w\\\": 1}\\n\\n{\\\"w\\\": 2\\n"));
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
    char *json = show_last();
    expect_status(json, "list", "done");
    expect_status(json, "each", "failed");
    expect_status(json, "after_each", "skipped");
    cr_expect(strstr(json, "list.rows (artifact ") && strstr(json, "), line 3: not a JSON object"),
              "the line counts blank ones: %s", json);
    free(json);

    r = RUN_PIPELINE((char *)rows_from("scalar.yaml", "7\\n"));
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "line 1: not a JSON object (each row is one {...} on its line)"), "%s",
              r.out);
    result_free(&r);

    r = RUN_PIPELINE((char *)rows_from("empty.yaml", ""));
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "has no rows: a fan-out needs at least one"), "%s", r.out);
    result_free(&r);

    r = RUN_PIPELINE((char *)rows_from("field.yaml", "{\\\"v\\\": 1}\\n"));
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "field.yaml:10:17: the item has no field 'w' (it has: v)"), "%s",
              r.out);
    result_free(&r);
}

Test(foreach_rows, validate_checks_the_reference_its_type_and_the_graph) {
    const char *file = write_test_file(test_dir, "v.yaml",
                                       "version: 1\n"
                                       "pipeline: v\n"
                                       "steps:\n"
                                       "  a:\n"
                                       "    uses: shell\n"
                                       "    inputs: {x: loop.o}\n"
                                       "    with: {run: x, outputs: {o: o.jsonl}}\n"
                                       "  loop:\n"
                                       "    uses: shell\n"
                                       "    foreach: a.o\n"
                                       "    with: {run: \"echo ${item.k}\", outputs: {o: o}}\n"
                                       "  wc: {uses: wordcount, inputs: {text: a.o}}\n"
                                       "  u1: {uses: shell, foreach: nosuch.o, with: {run: x}}\n"
                                       "  u2: {uses: shell, foreach: a.nope, with: {run: x}}\n"
                                       "  u3: {uses: shell, foreach: wc.counts, with: {run: x}}\n"
                                       "  t: {uses: typed, inputs: {chunks: loop.o}}\n");
    result r = RUN(test_store_arg, "validate", (char *)file);
    cr_expect_eq(r.status, 2, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "v.yaml:4:3: error: cycle: a -> loop -> a"), "%s", r.err);
    cr_expect(strstr(r.err, "v.yaml:13:30: error: 'foreach' of step 'u1' names unknown step "
                            "'nosuch'"),
              "%s", r.err);
    cr_expect(strstr(r.err, "v.yaml:14:30: error: step 'a' has no output 'nope'"), "%s", r.err);
    cr_expect(strstr(r.err, "v.yaml:15:30: error: 'foreach' of step 'u3' reads 'wc.counts', "
                            "which is report: one instance per row needs JSON Lines"),
              "%s", r.err);
    cr_expect(strstr(r.err, "v.yaml:16:37: error: input 'chunks' of step 't' takes one chunks, "
                            "but 'loop' fans out over the rows of 'a.o' when the pipeline runs"),
              "%s", r.err);
    result_free(&r);

    const char *ok = write_test_file(test_dir, "ok.yaml", rows_pipeline);
    r = RUN(test_store_arg, "validate", (char *)ok);
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "note: step 'each' fans out over the rows of list.rows: how many "
                            "instances it has is known when the pipeline runs"),
              "%s", r.out);
    result_free(&r);
}

Test(foreach_rows, a_source_skipped_by_its_condition_skips_the_fan_out) {
    const char *file =
        write_test_file(test_dir, "when.yaml",
                        "version: 1\n"
                        "pipeline: when\n"
                        "steps:\n"
                        "  list:\n"
                        "    uses: shell\n"
                        "    when: \"1 == 2\"\n"
                        "    with: {run: \"true\", outputs: {rows: r.jsonl}}\n"
                        "  each: {uses: shell, foreach: list.rows, with: {run: x}}\n");
    expect_success(RUN_PIPELINE((char *)file));
    char *json = show_last();
    expect_status(json, "each", "skipped");
    cr_expect(strstr(json, "it fans out over the rows of list.rows, and step 'list' was skipped"),
              "%s", json);
    free(json);
}

Test(foreach_rows, more_rows_than_the_instance_limit_fail_the_step) {
    const char *file =
        write_test_file(test_dir, "many.yaml",
                        "version: 1\n"
                        "pipeline: many\n"
                        "steps:\n"
                        "  list:\n"
                        "    uses: shell\n"
                        "    with:\n"
                        "      run: |\n"
                        "        seq 1001 | sed 's/.*/{\"i\": &}/' > \"$SLUICE_OUTPUT_rows\"\n"
                        "      outputs: {rows: r.jsonl}\n"
                        "  each: {uses: shell, foreach: list.rows, with: {run: x}}\n");
    result r = RUN_PIPELINE((char *)file);
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "has more than 1000 rows, the limit of instances of a step"), "%s",
              r.out);
    cr_expect(!strstr(r.out, "each[0]"), "no instance was made: %s", r.out);
    result_free(&r);
}
