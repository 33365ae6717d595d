/* The .env reader: the accepted forms and each refused line, located. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "authoring.h"

static pipeline *P;
static diag_list D;

static void setup(void) {
    P = calloc(1, sizeof(*P));
    cr_assert_not_null(P);
    D = (diag_list)DIAG_LIST_INIT;
}

static void teardown(void) {
    pipeline_free(P);
    diag_clear(&D);
}

TestSuite(envfile, .init = setup, .fini = teardown);

static void parse(const char *text) {
    cr_assert_eq(dotenv_parse(P, text, strlen(text), ".env", &D), 0);
}

static void expect_var(const char *name, const char *want) {
    const char *got = dotenv_get(P, name);
    cr_expect(got && strcmp(got, want) == 0, "%s: '%s', not '%s'", name, got ? got : "(unset)",
              want);
}

Test(envfile, forms) {
    parse("# a comment\n"
          "\n"
          "   \n"
          "PLAIN=value\n"
          "export EXPORTED=yes\n"
          "  INDENTED=1\n"
          "TRAIL=with spaces   \n"
          "COMMENTED=v # gone\n"
          "HASH=a#b\n"
          "EMPTY=\n"
          "SINGLE='no $escape \\n here' # c\n"
          "DOUBLE=\"tab\\there\\nline \\\"q\\\" \\$x\"\n"
          "MULTI=\"one\n"
          "two\"\n"
          "AFTER=3\r\n"
          "PLAIN=replaced\n");
    cr_expect_eq(D.errors, 0);
    expect_var("PLAIN", "replaced");
    expect_var("EXPORTED", "yes");
    expect_var("INDENTED", "1");
    expect_var("TRAIL", "with spaces");
    expect_var("COMMENTED", "v");
    expect_var("HASH", "a#b");
    expect_var("EMPTY", "");
    expect_var("SINGLE", "no $escape \\n here");
    expect_var("DOUBLE", "tab\there\nline \"q\" $x");
    expect_var("MULTI", "one\ntwo");
    expect_var("AFTER", "3");
    cr_expect_null(dotenv_get(P, "MISSING"));
}

/* The one error text holds want, at line:col. */
static void expect_error(const char *text, unsigned line, unsigned col, const char *want) {
    diag_clear(&D);
    D = (diag_list)DIAG_LIST_INIT;
    parse(text);
    cr_assert_eq(D.errors, 1, "for %s", text);
    cr_expect_eq(D.items[0].line, line, "line of %s: %s", text, D.items[0].msg);
    cr_expect_eq(D.items[0].col, col, "col of %s: %s", text, D.items[0].msg);
    cr_expect(strstr(D.items[0].msg, want), "%s", D.items[0].msg);
}

Test(envfile, bad_lines) {
    expect_error("A=1\nNO_EQUALS\n", 2, 10, "expected '=' right after the name 'NO_EQUALS'");
    expect_error("A = 1\n", 1, 2, "no spaces around '='");
    expect_error("1A=x\n", 1, 1, "expected KEY=VALUE");
    expect_error("=x\n", 1, 1, "expected KEY=VALUE");
    expect_error("A='open\n", 1, 3, "opens a single quote that is never closed");
    expect_error("A=\"x\" y\n", 1, 7, "unexpected text after the quoted value of 'A'");
    expect_error("A=\"\\q\"\n", 1, 3, "unknown escape '\\q'");
    /* A bad line does not stop the lines after it. */
    diag_clear(&D);
    D = (diag_list)DIAG_LIST_INIT;
    parse("BAD LINE\nGOOD=1\n");
    cr_expect_eq(D.errors, 1);
    expect_var("GOOD", "1");
}
