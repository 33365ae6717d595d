#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "duration.h"
#include "value.h"

static arena A;

static void setup(void) { A = (arena)ARENA_INIT; }
static void teardown(void) { arena_free(&A); }

TestSuite(value, .init = setup, .fini = teardown);

static value *plain(const char *text) {
    value *v = NULL;
    cr_assert_eq(value_from_plain(&A, text, strlen(text), &v), 0, "typing '%s'", text);
    return v;
}

Test(value, core_schema_typing) {
    const struct {
        const char *text;
        value_kind kind;
    } cases[] = {
        {"", VAL_NULL},        {"~", VAL_NULL},     {"null", VAL_NULL},
        {"NULL", VAL_NULL},    {"true", VAL_BOOL},  {"False", VAL_BOOL},
        {"yes", VAL_STR},      {"no", VAL_STR},     {"on", VAL_STR},
        {"0", VAL_INT},        {"-12", VAL_INT},    {"+7", VAL_INT},
        {"0x1F", VAL_INT},     {"0o17", VAL_INT},   {"1.5", VAL_FLOAT},
        {"3.", VAL_FLOAT},     {".5", VAL_FLOAT},   {"1e3", VAL_FLOAT},
        {"2.0e-6", VAL_FLOAT}, {".inf", VAL_FLOAT}, {"-.Inf", VAL_FLOAT},
        {".NaN", VAL_FLOAT},   {"1e", VAL_STR},     {"1.2.3", VAL_STR},
        {"0x", VAL_STR},       {"12abc", VAL_STR},  {"nulls", VAL_STR},
        {"-", VAL_STR},        {".", VAL_STR},      {"Maxime Labonne", VAL_STR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        value *v = plain(cases[i].text);
        cr_expect_eq(v->kind, cases[i].kind, "'%s' typed as %s", cases[i].text,
                     value_kind_name(v->kind));
    }
    cr_expect_eq(plain("0x1F")->u.integer, 31);
    cr_expect_eq(plain("0o17")->u.integer, 15);
    cr_expect_eq(plain("-12")->u.integer, -12);
    cr_expect_eq(plain("true")->u.boolean, 1);
    cr_expect_float_eq(plain("2.0e-6")->u.real, 2e-6, 1e-18);
    cr_expect(isinf(plain("-.Inf")->u.real) && plain("-.Inf")->u.real < 0);
    cr_expect(isnan(plain(".nan")->u.real));
}

Test(value, integers_out_of_range_are_refused) {
    value *v;
    cr_expect_eq(value_from_plain(&A, "9223372036854775807", 19, &v), 0);
    cr_expect_eq(value_from_plain(&A, "9223372036854775808", 19, &v), -ERANGE);
}

static const char *flow(const value *v) {
    static buf b;
    buf_reset(&b);
    value_write_flow(&b, v);
    return buf_str(&b);
}

Test(value, flow_syntax_quotes_what_would_read_back_differently) {
    cr_expect_str_eq(flow(plain("abc")), "abc");
    cr_expect_str_eq(flow(value_new_str(&A, "true", 4)), "\"true\"");
    cr_expect_str_eq(flow(value_new_str(&A, "12", 2)), "\"12\"");
    cr_expect_str_eq(flow(value_new_str(&A, "", 0)), "\"\"");
    cr_expect_str_eq(flow(value_new_str(&A, "a, b", 4)), "\"a, b\"");
    cr_expect_str_eq(flow(value_new_str(&A, "say \"hi\"\n", 9)), "\"say \\\"hi\\\"\\n\"");
    cr_expect_str_eq(flow(plain("1.5")), "1.5");
    cr_expect_str_eq(flow(plain("1e3")), "1e+03");
    cr_expect_str_eq(flow(plain("2")), "2");
    cr_expect_str_eq(flow(plain("2.0")), "2.0");
    cr_expect_str_eq(flow(plain("0.1")), "0.1");
    cr_expect_str_eq(flow(plain("~")), "null");
    value *secret = value_new_str(&A, "hunter2", 7);
    secret->secret = 1;
    cr_expect_str_eq(flow(secret), "\"***\"");
}

Test(value, coercion_is_lossless_or_refused) {
    value *out;
    value *like_str = value_new_str(&A, "x", 1), *like_float = plain("1.0"),
          *like_list = value_new(&A, VAL_LIST), *like_int = plain("1");
    cr_assert_eq(value_coerce(&A, plain("1.10"), "1.10", like_str, &out), 0);
    cr_expect_str_eq(out->u.str.s, "1.10", "a version stays as written");
    cr_assert_eq(value_coerce(&A, plain("3"), NULL, like_float, &out), 0);
    cr_expect_eq(out->kind, VAL_FLOAT);
    cr_expect_float_eq(out->u.real, 3.0, 1e-12);
    cr_assert_eq(value_coerce(&A, plain("Paul"), NULL, like_list, &out), 0);
    cr_expect_eq(out->kind, VAL_LIST);
    cr_expect_eq(out->u.list.n, 1);
    cr_expect_eq(value_coerce(&A, plain("1.5"), NULL, like_int, &out), -EINVAL);
    cr_expect_eq(value_coerce(&A, plain("abc"), NULL, like_int, &out), -EINVAL);
    cr_expect_eq(value_coerce(&A, like_list, NULL, like_str, &out), -EINVAL);
}

Test(value, durations) {
    const struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"0", 0},           {"250ms", 250},    {"90s", 90000},    {"10m", 600000},
              {"1h30m", 5400000}, {"1.5h", 5400000}, {"2d", 172800000}, {"1m30s500ms", 90500}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = -1;
        const char *why = NULL;
        cr_expect_eq(duration_parse(ok[i].text, strlen(ok[i].text), &ms, &why), 0, "%s: %s",
                     ok[i].text, why ? why : "");
        cr_expect_eq(ms, ok[i].ms, "%s gave %lld", ok[i].text, (long long)ms);
    }
    const char *bad[] = {"", "10", "10x", "s", "1.2.3s", "h1", "400d", "5 m", "-3s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms;
        const char *why = NULL;
        cr_expect_eq(duration_parse(bad[i], strlen(bad[i]), &ms, &why), -EINVAL, "'%s'", bad[i]);
        cr_expect_not_null(why);
    }
    char out[32];
    duration_format(5400000, out, sizeof(out));
    cr_expect_str_eq(out, "1h30m");
    duration_format(250, out, sizeof(out));
    cr_expect_str_eq(out, "250ms");
    duration_format(0, out, sizeof(out));
    cr_expect_str_eq(out, "0s");
}
