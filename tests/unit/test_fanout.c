/* Fan-out steps (foreach, matrix) as the pipeline loader expands them:
 * instance counts and ids, ${item} substitution, inputs and 'after' that
 * name a fan-out step, and every refusal located. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "support.h"

static diag_list D;
static pipeline *P;

static void setup(void) {
    D = (diag_list)DIAG_LIST_INIT;
    P = NULL;
}

static void teardown(void) {
    pipeline_free(P);
    diag_clear(&D);
}

TestSuite(fanout, .init = setup, .fini = teardown);

static int load(const char *text) { return load_text(text, NULL, &D, &P); }

static const step *step_named(const char *id) {
    long i = pipeline_find_step(P, id);
    cr_assert(i >= 0, "no step '%s'; got:\n%s", id, all_diags(&D));
    return &P->steps[i];
}

/* The text of a shell step's 'run' after substitution. */
static const char *run_of(const char *id) {
    const step *s = step_named(id);
    for (size_t i = 0; i < s->n_with; i++)
        if (strcmp(s->with[i].name, "run") == 0 && s->with[i].value->kind == VAL_STR)
            return s->with[i].value->u.str.s;
    return NULL;
}

Test(fanout, foreach_over_a_list_parameter_makes_one_instance_per_item_in_order) {
    cr_assert_eq(load("pipeline: p\n"
                      "params: {names: [ann, bob, cy]}\n"
                      "steps:\n"
                      "  greet:\n"
                      "    uses: shell\n"
                      "    foreach: ${params.names}\n"
                      "    with: {run: \"echo hi ${item}\", outputs: {o: o.txt}}\n"
                      "  all:\n"
                      "    uses: shell\n"
                      "    inputs: {x: greet.o}\n"
                      "    after: greet\n"
                      "    with: {run: cat $SLUICE_INPUT_x}\n"),
                 0, "%s", all_diags(&D));
    cr_assert_eq(P->n_steps, 4);
    cr_expect_eq(pipeline_find_step(P, "greet"), -1, "the group itself is no step");
    const char *want[] = {"echo hi ann", "echo hi bob", "echo hi cy"};
    for (size_t i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "greet[%zu]", i);
        const step *s = step_named(id);
        cr_expect_str_eq(s->group, "greet");
        cr_expect_eq(s->instance, i);
        cr_expect_eq(s->n_instances, 3);
        cr_expect_eq(pipeline_find_step(P, id), (long)i, "instances keep the file's order");
        cr_expect_str_eq(run_of(id), want[i]);
    }
    const step *all = step_named("all");
    cr_assert_eq(all->n_inputs, 3, "one input per instance");
    cr_assert_eq(all->n_after, 3, "'after' waits for every instance");
    for (size_t i = 0; i < 3; i++) {
        cr_expect_str_eq(all->inputs[i].port, "x");
        cr_expect_eq(all->inputs[i].from, (uint32_t)i);
        cr_expect_eq(all->inputs[i].index, i);
        cr_expect_eq(all->inputs[i].list_len, 3);
        cr_expect_eq(all->after[i].from, (uint32_t)i);
    }
}

Test(fanout, matrix_is_the_cartesian_product_in_the_order_written) {
    cr_assert_eq(load("pipeline: p\n"
                      "steps:\n"
                      "  t:\n"
                      "    uses: shell\n"
                      "    matrix: {lr: [0.1, 0.01], size: [s, m, l]}\n"
                      "    with:\n"
                      "      run: train ${item.lr} ${item.size}\n"
                      "      env: {LR: \"${item.lr}\"}\n"),
                 0, "%s", all_diags(&D));
    cr_assert_eq(P->n_steps, 6);
    const char *want[] = {"train 0.1 s",  "train 0.1 m",  "train 0.1 l",
                          "train 0.01 s", "train 0.01 m", "train 0.01 l"};
    for (size_t i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "t[%zu]", i);
        cr_expect_str_eq(run_of(id), want[i]);
    }
    /* A whole-value ${item.lr} keeps its type, as ${params.x} does. */
    const step *s = step_named("t[3]");
    cr_assert_eq(s->n_with, 2);
    cr_assert_eq(s->with[1].value->kind, VAL_MAP);
    cr_expect_eq(s->with[1].value->u.map.vals[0]->kind, VAL_FLOAT);
}

Test(fanout, foreach_over_mappings_reads_fields_and_keeps_types) {
    cr_assert_eq(load("pipeline: p\n"
                      "params:\n"
                      "  runs: [{name: a, n: 3}, {name: b, n: 5}]\n"
                      "steps:\n"
                      "  r:\n"
                      "    uses: shell\n"
                      "    foreach: ${params.runs}\n"
                      "    with:\n"
                      "      run: go ${item.name} ${item.n}\n"
                      "      env: {N: \"${item.n}\"}\n"),
                 0, "%s", all_diags(&D));
    cr_assert_eq(P->n_steps, 2);
    cr_expect_str_eq(run_of("r[1]"), "go b 5");
    const value *env = step_named("r[1]")->with[1].value;
    cr_assert_eq(env->kind, VAL_MAP);
    cr_expect_eq(env->u.map.vals[0]->kind, VAL_INT);
    cr_expect_eq(env->u.map.vals[0]->u.integer, 5);
    cr_expect_eq(step_named("r[1]")->item->kind, VAL_MAP);
}

Test(fanout, a_literal_list_and_an_override_both_fan_out) {
    static const char *const over[] = {"xs=[1, 2, 3, 4]"};
    pipeline_options opt = {.overrides = over, .n_overrides = 1};
    cr_assert_eq(load_text("pipeline: p\n"
                           "params: {xs: [1]}\n"
                           "steps:\n"
                           "  a: {uses: shell, foreach: [x, y], with: {run: \"echo ${item}\"}}\n"
                           "  b: {uses: shell, foreach: \"${params.xs}\", with: {run: \"echo "
                           "${item}\"}}\n",
                           &opt, &D, &P),
                 0, "%s", all_diags(&D));
    cr_expect_eq(P->n_steps, 6);
    cr_expect_str_eq(run_of("a[1]"), "echo y");
    cr_expect_str_eq(run_of("b[3]"), "echo 4");
}

Test(fanout, every_refusal_is_located) {
    cr_assert_neq(load("pipeline: p\n"                                                     /* 1 */
                       "params: {one: x, none: []}\n"                                      /* 2 */
                       "steps:\n"                                                          /* 3 */
                       "  a: {uses: shell, foreach: \"${params.one}\", with: {run: x}}\n"  /* 4 */
                       "  b: {uses: shell, foreach: \"${params.none}\", with: {run: x}}\n" /* 5 */
                       "  c: {uses: shell, with: {run: \"echo ${item}\"}}\n"               /* 6 */
                       "  d: {uses: shell, matrix: {x: 1}, with: {run: x}}\n"              /* 7 */
                       "  e: {uses: shell, foreach: c.out, with: {run: x}}\n"              /* 8 */
                       "  f: {uses: shell, foreach: [1], matrix: {x: [1]}, with: {run: x}}\n"
                       "  g: {uses: shell, foreach: [1, 2], with: {run: \"${item.k}\"}}\n"
                       "  h: {uses: shell, foreach: [{k: 1}], with: {run: \"${item.j}\"}}\n"
                       "  i: {uses: shell, foreach: [1], description: \"${item}\", with: {run: "
                       "x}}\n"
                       "  j: {uses: shell, matrix: {x: []}, with: {run: x}}\n"),
                  0);
    expect_diag(&D, 4, 29, "'foreach' of step 'a' must be a list");
    expect_diag(&D, 5, 29, "'foreach' of step 'b' is an empty list");
    expect_diag(&D, 6, 32, "'${item}' is only defined in 'with' of a step with 'foreach'");
    expect_diag(&D, 7, 32, "matrix key 'x' of step 'd' must be a list of values");
    expect_diag(&D, 8, 29,
                "'foreach' of step 'e' reads 'c.out', but shell step 'c' declares no "
                "outputs");
    expect_diag(&D, 9, 42, "step 'f' has both 'foreach' and 'matrix'");
    expect_diag(&D, 10, 49, "'${item.k}' reads a field, but the item is an integer");
    expect_diag(&D, 11, 51, "the item has no field 'j' (it has: k)");
    expect_diag(&D, 12, 47, "'${item}' is only defined in 'with'");
    expect_diag(&D, 13, 32, "matrix key 'x' of step 'j' is an empty list");
    /* g's two instances share one mistake: it is shown once. */
    size_t seen = 0;
    for (size_t i = 0; i < D.n; i++)
        seen += D.items[i].line == 10;
    cr_expect_eq(seen, 1, "got:\n%s", all_diags(&D));
}

Test(fanout, the_instance_cap_is_an_error_at_the_fan_out) {
    /* 10 x 10 x 11 = 1100 instances, past PIPELINE_MAX_INSTANCES. */
    cr_assert_eq(PIPELINE_MAX_INSTANCES, 1000);
    cr_assert_neq(load("pipeline: p\n"
                       "steps:\n"
                       "  m:\n"
                       "    uses: shell\n"
                       "    matrix:\n"
                       "      a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                       "      b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                       "      c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
                       "    with: {run: x}\n"),
                  0);
    expect_diag(&D, 6, 7, "'matrix' of step 'm' expands to more than 1000 instances");
    cr_expect_eq(P->n_steps, 1, "a refused fan-out stands as one step");
    pipeline_free(P);
    P = NULL;
    diag_clear(&D);
    /* 1000 exactly is allowed. */
    cr_expect_eq(load("pipeline: p\n"
                      "steps:\n"
                      "  m:\n"
                      "    uses: shell\n"
                      "    matrix:\n"
                      "      a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                      "      b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                      "      c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
                      "    with: {run: \"${item.a}${item.b}${item.c}\"}\n"),
                 0, "%s", all_diags(&D));
    cr_expect_eq(P->n_steps, 1000);
    cr_expect_str_eq(run_of("m[999]"), "999");
    cr_expect_str_eq(run_of("m[123]"), "123");
}

Test(fanout, a_literal_shell_item_variable_is_written_with_two_dollars) {
    cr_assert_eq(load("pipeline: p\n"
                      "steps:\n"
                      "  a: {uses: shell, with: {run: \"for item in 1 2; do echo $${item}; "
                      "done\"}}\n"),
                 0, "%s", all_diags(&D));
    cr_expect_str_eq(run_of("a"), "for item in 1 2; do echo ${item}; done");
}

Test(fanout, an_input_may_not_take_the_name_of_a_list_item) {
    cr_assert_neq(load("pipeline: p\n"
                       "steps:\n"
                       "  a: {uses: shell, foreach: [1, 2], with: {run: x, outputs: {o: o}}}\n"
                       "  b: {uses: shell, with: {run: x, outputs: {o: o}}}\n"
                       "  c: {uses: shell, inputs: {x: a.o, x_1: b.o}, with: {run: x}}\n"),
                  0);
    expect_diag(&D, 5, 42,
                "input 'x_1' of step 'c' has the name of item 1 of list input 'x': rename it");
}

Test(fanout, a_pipeline_expands_to_at_most_its_step_limit) {
    cr_assert_eq(PIPELINE_MAX_STEPS, 10000);
    buf text = BUF_INIT;
    buf_puts(&text, "pipeline: p\nsteps:\n");
    for (int i = 0; i < 11; i++) /* 11 x 1000 instances */
        buf_printf(&text,
                   "  s%d:\n    uses: shell\n    matrix: {a: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "
                   "b: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}\n"
                   "    with: {run: x}\n",
                   i);
    cr_assert_neq(load(buf_str(&text)), 0);
    buf_free(&text);
    /* The 11th step is the one past the limit, at its id (line 3 + 4 * 10). */
    expect_diag(&D, 43, 3, "step 's10' takes the pipeline past 10000 steps");
    cr_expect_eq(P->n_steps, 10001, "the ten before it expanded, it stands as one");
}

/* ---- foreach: STEP.OUTPUT, expanded when the pipeline runs ---- */

static const char rows_pipeline[] =
    "pipeline: p\n"
    "steps:\n"
    "  list: {uses: shell, with: {run: x, outputs: {rows: r.jsonl}}}\n"
    "  each:\n"
    "    uses: shell\n"
    "    foreach: list.rows\n"
    "    with: {run: \"echo ${item.name}\", outputs: {o: o.txt}}\n"
    "  join: {uses: shell, inputs: {x: each.o}, after: each, with: {run: x}}\n";

/* Rows as read from JSON Lines: {name: NAME} mappings, in P's arena. */
static value *rows_of(const char *const *names, size_t n) {
    value *list = value_new(&P->arena, VAL_LIST);
    value **items = arena_calloc(&P->arena, n + 1, sizeof(*items));
    cr_assert(list && items);
    for (size_t i = 0; i < n; i++) {
        value *m = value_new(&P->arena, VAL_MAP);
        const char **keys = arena_calloc(&P->arena, 1, sizeof(*keys));
        value **vals = arena_calloc(&P->arena, 1, sizeof(*vals));
        cr_assert(m && keys && vals);
        keys[0] = "name";
        vals[0] = value_new_str(&P->arena, names[i], strlen(names[i]));
        m->u.map.keys = keys;
        m->u.map.vals = vals;
        m->u.map.n = 1;
        items[i] = m;
    }
    list->u.list.items = items;
    list->u.list.n = n;
    return list;
}

Test(fanout, foreach_over_an_output_stands_as_one_template_with_an_edge_to_its_source) {
    cr_assert_eq(load(rows_pipeline), 0, "%s", all_diags(&D));
    const step *t = step_named("each");
    cr_expect(step_is_template(t));
    cr_expect_str_eq(t->foreach_step, "list");
    cr_expect_str_eq(t->foreach_output, "rows");
    cr_expect_eq(t->foreach_from, (uint32_t)pipeline_find_step(P, "list"));
    cr_expect_eq(P->n_steps, 3);
    cr_expect_geq(P->cap_steps, 3 + PIPELINE_MAX_INSTANCES, "room for its instances");
    buf label = BUF_INIT;
    step_group_label(t, &label);
    cr_expect_str_eq(buf_str(&label), "each[*]");
    buf_free(&label);
    dag g;
    cr_assert_eq(pipeline_dag(P, &g), 0);
    long e = pipeline_find_step(P, "each");
    cr_expect_eq(g.pred_start[e + 1] - g.pred_start[e], 1, "each waits for list");
    dag_free(&g);
}

Test(fanout, expanding_rows_makes_instances_and_rewrites_the_steps_reading_the_template) {
    cr_assert_eq(load(rows_pipeline), 0, "%s", all_diags(&D));
    static const char *const names[] = {"ann", "bo", "cy"};
    uint32_t tpl = (uint32_t)pipeline_find_step(P, "each");
    cr_assert_eq(pipeline_expand_rows(P, tpl, rows_of(names, 3), &D), 0, "%s", all_diags(&D));
    cr_expect_eq(P->n_steps, 6);
    cr_expect_str_eq(run_of("each[0]"), "echo ann");
    cr_expect_str_eq(run_of("each[2]"), "echo cy");
    const step *i1 = step_named("each[1]");
    cr_expect_str_eq(i1->group, "each");
    cr_expect_eq(i1->n_instances, 3);
    cr_expect(!step_is_template(i1));
    cr_expect_eq(i1->n_args, i1->n_with, "bound as the template is");
    const step *join = step_named("join");
    cr_assert_eq(join->n_inputs, 3);
    for (size_t j = 0; j < 3; j++) {
        char key[8], id[16];
        snprintf(key, sizeof(key), "x_%zu", j);
        snprintf(id, sizeof(id), "each[%zu]", j);
        cr_expect_str_eq(step_input_key(&join->inputs[j]), key);
        cr_expect_eq(join->inputs[j].from, (uint32_t)pipeline_find_step(P, id));
        cr_expect_eq(join->inputs[j].list_len, 3);
    }
    cr_assert_eq(join->n_after, 3);
    cr_expect_eq(join->after[2].from, (uint32_t)pipeline_find_step(P, "each[2]"));
}

Test(fanout, a_row_without_the_field_read_is_refused_and_makes_nothing) {
    cr_assert_eq(load(rows_pipeline), 0, "%s", all_diags(&D));
    value *rows = rows_of((const char *const[]){"ann"}, 1);
    rows->u.list.items[0]->u.map.keys[0] = "nom";
    uint32_t tpl = (uint32_t)pipeline_find_step(P, "each");
    cr_expect_eq(pipeline_expand_rows(P, tpl, rows, &D), -EINVAL);
    expect_diag(&D, 7, 17, "the item has no field 'name' (it has: nom)");
    cr_expect_eq(P->n_steps, 3);
    cr_expect_eq(pipeline_find_step(P, "each[0]"), -1);
    cr_expect_eq(step_named("join")->n_inputs, 1, "the template is still read");
}

Test(fanout, foreach_over_an_output_is_checked_before_anything_runs) {
    cr_assert_neq(load("pipeline: p\n"
                       "steps:\n"
                       "  a: {uses: shell, with: {run: x, outputs: {o: o.jsonl}}}\n"
                       "  b: {uses: shell, foreach: nosuch.o, with: {run: x}}\n"
                       "  c: {uses: shell, foreach: a.nope, with: {run: x}}\n"
                       "  d: {uses: shell, foreach: d.o, with: {run: x, outputs: {o: o}}}\n"
                       "  e: {uses: shell, foreach: a.o, with: {run: \"${item.x-y}\"}}\n"
                       "  f: {uses: shell, foreach: [1, 2], with: {run: x, outputs: {o: o}}}\n"
                       "  g: {uses: shell, foreach: f.o, with: {run: x}}\n"),
                  0);
    expect_diag(&D, 4, 29, "'foreach' of step 'b' names unknown step 'nosuch'");
    expect_diag(&D, 5, 29, "step 'a' has no output 'nope' (it declares: o)");
    expect_diag(&D, 6, 29, "step 'd' cannot fan out over its own output 'o'");
    expect_diag(&D, 7, 46, "bad name in '${item.x-y}'");
    expect_diag(&D, 9, 29, "but 'f' is a fan-out step");
}
