/* Steps' conditions: the parser's precedence and errors, the checker's
 * located type errors, and evaluation over parameters and metrics. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "when.h"

static arena A;

static void setup(void) { A = (arena)ARENA_INIT; }
static void teardown(void) { arena_free(&A); }

TestSuite(when, .init = setup, .fini = teardown);

/* Loads a pipeline whose step 'b' runs after 'a' and has condition cond;
 * params are declared as given. */
static pipeline *load(const char *params, const char *cond, diag_list *d) {
    char text[2048];
    snprintf(text, sizeof(text),
             "pipeline: t\n"
             "params: %s\n"
             "steps:\n"
             "  a: {uses: shell, with: {run: x}}\n"
             "  b:\n"
             "    uses: shell\n"
             "    after: a\n"
             "    when: '%s'\n"
             "    with: {run: y}\n",
             params, cond);
    pipeline *p = NULL;
    pipeline_load_buffer(text, strlen(text), "t.yaml", NULL, NULL, d, &p);
    cr_assert_not_null(p);
    return p;
}

static double metric_value;
static int metric_known;

static int metric(void *ud, uint32_t index, const char *name, double *out) {
    (void)ud;
    cr_expect_eq(index, 0, "the metric is step a's");
    cr_expect_str_eq(name, "score");
    *out = metric_value;
    return metric_known;
}

/* The value of cond (a valid one) with params. */
static int eval_with(const char *params, const char *cond) {
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = load(params, cond, &d);
    if (d.n)
        cr_assert_fail("%s: %s:%u:%u: %s", cond, d.items[0].file, d.items[0].line, d.items[0].col,
                       d.items[0].msg);
    char why[256] = "";
    int v = when_eval(p, &p->steps[1], metric, NULL, why, sizeof(why));
    pipeline_free(p);
    diag_clear(&d);
    return v;
}

Test(when, evaluates) {
    const char *ps = "{deploy: true, n: 3, x: 2.5, stage: prod, tags: [a, b], cfg: {lr: 0.1}}";
    metric_known = 1;
    metric_value = 0.42;
    const struct {
        const char *cond;
        int want;
    } cases[] = {
        {"${params.deploy}", 1},
        {"${params.deploy} == true", 1},
        {"${params.deploy} != true", 0},
        {"!${params.deploy}", 0},
        {"!!${params.deploy}", 1},
        {"${params.n} == 3", 1},
        {"${params.n} == 3.0", 1},
        {"${params.n} < ${params.x}", 0},
        {"${params.n} >= 3 && ${params.x} <= 2.5", 1},
        {"${params.n} > 3 || ${params.stage} == \"prod\"", 1},
        {"false || true && false", 0}, /* && binds tighter */
        {"(false || true) && false", 0},
        {"(false || true) && true", 1},
        {"${params.stage} in [\"dev\", \"prod\"]", 1},
        {"!(${params.stage} in [\"dev\"])", 1},
        {"\"a\" in ${params.tags}", 1},
        {"\"c\" in ${params.tags}", 0},
        {"${params.tags} == [\"a\", \"b\"]", 1},
        {"${params.cfg.lr} < 0.5", 1},
        {"\"abc\" < \"abd\"", 1},
        {"null == null", 1},
        {"${params.stage} != null", 1},
        {"${steps.a.metrics.score} > 0.3", 1},
        {"${steps.a.metrics.score} > 0.5", 0},
        {"-1 < 1e-3", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(eval_with(ps, cases[i].cond), cases[i].want, "%s", cases[i].cond);
}

Test(when, environment_values_are_text_or_null) {
    setenv("SLUICE_WHEN_TEST_SET", "prod", 1);
    unsetenv("SLUICE_WHEN_TEST_UNSET");
    cr_expect_eq(eval_with("{}", "${env.SLUICE_WHEN_TEST_SET} == \"prod\""), 1);
    cr_expect_eq(eval_with("{}", "${env.SLUICE_WHEN_TEST_SET} in [\"dev\", \"qa\"]"), 0);
    cr_expect_eq(eval_with("{}", "${env.SLUICE_WHEN_TEST_UNSET} == null"), 1);
    cr_expect_eq(eval_with("{}", "${env.SLUICE_WHEN_TEST_UNSET} != \"prod\""), 1);
}

Test(when, a_metric_not_reported_is_undecided) {
    metric_known = 0;
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = load("{}", "${steps.a.metrics.score} > 0.3", &d);
    cr_assert_eq(d.n, 0);
    char why[256] = "";
    cr_expect_eq(when_eval(p, &p->steps[1], metric, NULL, why, sizeof(why)), -1);
    cr_expect(strstr(why, "reads metric 'score' of step 'a', which that step did not report"), "%s",
              why);
    /* Short-circuit: a metric on the side not needed is not read. */
    pipeline_free(p);
    p = load("{}", "true || ${steps.a.metrics.score} > 0.3", &d);
    cr_expect_eq(when_eval(p, &p->steps[1], metric, NULL, why, sizeof(why)), 1);
    pipeline_free(p);
    diag_clear(&d);
}

/* cond is refused with want at column col of line 8 (the quote is at 11). */
static void expect_error(const char *cond, unsigned col, const char *want) {
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = load("{n: 3, s: x, m: {k: 1}}", cond, &d);
    cr_assert(d.errors >= 1, "%s was accepted", cond);
    cr_expect_eq(d.items[0].line, 8, "%s", cond);
    cr_expect_eq(d.items[0].col, col, "%s: %s at %u", cond, d.items[0].msg, d.items[0].col);
    cr_expect(strstr(d.items[0].msg, want), "%s: %s", cond, d.items[0].msg);
    pipeline_free(p);
    diag_clear(&d);
}

Test(when, errors_are_located) {
    expect_error("${params.n} = 3", 24, "unknown operator");
    expect_error("${params.n} ==", 26, "the condition ends where a value is expected");
    expect_error("(${params.n} == 3", 29, "a ')' is missing");
    expect_error("${params.n} == yes", 27, "unknown word 'yes'");
    expect_error("${params.n} == 3 == 3", 29, "comparisons do not chain");
    expect_error("${params.nn} == 3", 12, "unknown parameter 'nn' (did you mean 'n'?)");
    expect_error("${params.m.q} == 3", 12, "'params.m' has no key 'q'");
    expect_error("${params.m} == 3", 12, "is a mapping");
    expect_error("${params.n} == \"x\"", 24, "'==' compares a number with text");
    expect_error("${params.s} > 3", 24, "'>' orders two numbers or two texts");
    expect_error("${params.n} && true", 24, "'&&' needs booleans");
    expect_error("!${params.s}", 12, "'!' needs a boolean, not text");
    expect_error("3 in 4", 14, "'in' needs a list on its right");
    expect_error("${params.n}", 12, "is a number, not true or false");
    expect_error("${item} == 1", 12, "unknown reference '${item}'");
    expect_error("${steps.b.metrics.x} > 1", 12, "cannot read its own metrics");
    expect_error("${steps.zz.metrics.x} > 1", 12, "names no step 'zz'");
    expect_error("${steps.a.score} > 1", 12, "write ${steps.ID.metrics.NAME}");
}
