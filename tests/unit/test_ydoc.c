#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "ydoc.h"

static arena A;
static diag_list D;

static void setup(void) {
    A = (arena)ARENA_INIT;
    D = (diag_list)DIAG_LIST_INIT;
}

static void teardown(void) {
    arena_free(&A);
    diag_clear(&D);
}

TestSuite(ydoc, .init = setup, .fini = teardown);

static int parse(const char *text, ynode **root) {
    return ydoc_parse(&A, text, strlen(text), "y.yaml", NULL, &D, root);
}

Test(ydoc, positions_are_one_based_in_characters) {
    ynode *root;
    cr_assert_eq(parse("a: 1\nbé: [x, \"y\"]\n", &root), 0);
    cr_assert_eq(root->kind, YNODE_MAP);
    cr_assert_eq(root->u.map.n, 2);
    ynode *k = root->u.map.pairs[1].key, *v = root->u.map.pairs[1].value;
    cr_expect_eq(k->line, 2);
    cr_expect_eq(k->col, 1);
    cr_expect_eq(v->kind, YNODE_SEQ);
    cr_expect_eq(v->col, 5, "the é counts as one column, got %u", v->col);
    cr_expect_eq(v->u.seq.items[1]->quoted, 1);
    cr_expect_eq(v->u.seq.items[0]->quoted, 0);
}

Test(ydoc, empty_stream_gives_no_root) {
    ynode *root = (ynode *)1;
    cr_assert_eq(parse("# only a comment\n", &root), 0);
    cr_expect_null(root);
}

Test(ydoc, duplicate_keys_are_reported_and_the_later_dropped) {
    ynode *root;
    cr_assert_eq(parse("a: 1\nb: 2\na: 3\n", &root), 0);
    cr_expect_eq(D.errors, 1);
    expect_diag(&D, 3, 1, "duplicate key 'a' (first given at line 1)");
    cr_expect_eq(root->u.map.n, 2);
    cr_expect_str_eq(ynode_get(root, "a")->u.scalar.text, "1");
}

Test(ydoc, duplicate_keys_in_large_mappings_use_the_index) {
    buf b = BUF_INIT;
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "k%d: %d\n", i, i);
    buf_puts(&b, "k57: again\n");
    ynode *root;
    cr_assert_eq(parse(buf_str(&b), &root), 0);
    expect_diag(&D, 101, 1, "duplicate key 'k57' (first given at line 58)");
    cr_expect_eq(root->u.map.n, 100);
    buf_free(&b);
}

Test(ydoc, merge_keys_fill_in_what_is_not_given) {
    ynode *root;
    cr_assert_eq(parse("base: &b {x: 1, y: 2}\n"
                       "more: &m {z: 3}\n"
                       "use: {<<: [*b, *m], y: 9}\n",
                       &root),
                 0);
    cr_expect_eq(D.errors, 0, "%s", all_diags(&D));
    ynode *use = ynode_get(root, "use");
    cr_assert_eq(use->u.map.n, 3);
    cr_expect_str_eq(ynode_get(use, "y")->u.scalar.text, "9", "explicit keys win");
    cr_expect_str_eq(ynode_get(use, "x")->u.scalar.text, "1");
    cr_expect_str_eq(ynode_get(use, "z")->u.scalar.text, "3");
}

Test(ydoc, a_quoted_merge_key_is_an_ordinary_key) {
    ynode *root;
    cr_assert_eq(parse("'<<': {x: 1}\n", &root), 0);
    cr_expect_not_null(ynode_get(root, "<<"));
}

Test(ydoc, merge_of_a_scalar_is_an_error) {
    ynode *root;
    cr_assert_eq(parse("a: {<<: 3}\n", &root), 0);
    expect_diag(&D, 1, 9, "merge key '<<' needs a mapping or a list of mappings");
}

Test(ydoc, aliases_share_the_anchored_node) {
    ynode *root;
    cr_assert_eq(parse("a: &x [1, 2]\nb: *x\n", &root), 0);
    cr_expect_eq(ynode_get(root, "a"), ynode_get(root, "b"));
}

Test(ydoc, an_alias_bomb_is_refused_quickly) {
    const char *bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                       "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                       "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                       "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                       "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    ynode *root;
    cr_assert_eq(parse(bomb, &root), -EINVAL);
    cr_expect_eq(D.errors, 1);
    expect_diag(&D, 5, 29, "aliases expand to more than 100000 nodes");
}

Test(ydoc, deep_nesting_is_refused) {
    size_t depth = 100000;
    char *text = malloc(2 * depth + 8);
    memcpy(text, "a: ", 3);
    memset(text + 3, '[', depth);
    memset(text + 3 + depth, ']', depth);
    text[3 + 2 * depth] = '\0';
    ynode *root;
    cr_assert_eq(parse(text, &root), -EINVAL);
    expect_diag(&D, 1, 67, "nesting is deeper than the limit of 64 levels");
    free(text);
}

Test(ydoc, huge_scalars_are_refused) {
    ydoc_limits lim = ydoc_default_limits;
    lim.max_scalar = 16;
    ynode *root;
    const char *text = "short: abc\nlong: abcdefghijklmnopqrstuvwxyz\n";
    cr_assert_eq(ydoc_parse(&A, text, strlen(text), "y.yaml", &lim, &D, &root), -EINVAL);
    expect_diag(&D, 2, 7, "string of 26 bytes is longer than the limit of 16");
}

Test(ydoc, malformed_yaml_names_the_place_and_the_context) {
    ynode *root;
    cr_assert_eq(parse("steps:\n  a: {uses: x\n", &root), -EINVAL);
    expect_diag(&D, 3, 1, "malformed YAML: did not find expected ',' or '}'");
    expect_diag(&D, 3, 1, "while parsing a flow mapping at line 2, column 6");
}

Test(ydoc, bad_indentation_is_malformed) {
    ynode *root;
    cr_assert_eq(parse("a:\n  b: 1\n c: 2\n", &root), -EINVAL);
    cr_expect_eq(D.errors, 1);
    cr_expect(strstr(D.items[0].msg, "malformed YAML") != NULL);
    cr_expect_eq(D.items[0].line, 3);
}

Test(ydoc, invalid_utf8_is_refused_with_its_position) {
    ynode *root;
    cr_assert_eq(parse("a: ok\nb: \xff\xfe bad\n", &root), -EINVAL);
    cr_assert_eq(D.n, 1);
    cr_expect(strstr(D.items[0].msg, "malformed YAML") != NULL, "%s", D.items[0].msg);
    cr_expect_eq(D.items[0].line, 2);
    cr_expect_eq(D.items[0].col, 4);
}

Test(ydoc, nul_in_a_string_is_refused) {
    ynode *root;
    cr_assert_eq(parse("a: \"x\\0y\"\n", &root), -EINVAL);
    expect_diag(&D, 1, 4, "NUL");
}

Test(ydoc, a_second_document_is_refused) {
    ynode *root;
    cr_assert_eq(parse("a: 1\n---\nb: 2\n", &root), -EINVAL);
    expect_diag(&D, 2, 1, "one YAML document");
}

Test(ydoc, unknown_and_recursive_aliases_are_refused) {
    ynode *root;
    cr_assert_eq(parse("a: *nope\n", &root), -EINVAL);
    expect_diag(&D, 1, 4, "alias '*nope' names no anchor");
    diag_clear(&D);
    cr_assert_eq(parse("a: &r [1, *r]\n", &root), -EINVAL);
    expect_diag(&D, 1, 11, "alias '*r' refers to a node that contains it");
}

Test(ydoc, collection_keys_are_refused) {
    ynode *root;
    cr_assert_eq(parse("? [a, b]\n: 1\n", &root), -EINVAL);
    expect_diag(&D, 1, 3, "mapping keys must be strings, not a list");
}

Test(ydoc, tags) {
    ynode *root;
    cr_assert_eq(parse("a: !!str 12\nb: !!int 3\n", &root), 0);
    cr_expect_eq(ynode_get(root, "a")->quoted, 1);
    cr_expect_eq(ynode_get(root, "b")->quoted, 0);
    cr_assert_eq(parse("c: !custom x\n", &root), -EINVAL);
    expect_diag(&D, 1, 4, "unsupported YAML tag '!custom'");
}
