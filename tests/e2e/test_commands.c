/* test_commands.c - external commands (docs/cli.md, "External commands"):
 * `sluice NAME` runs the program sluice-NAME found beside the binary or in
 * its libexec folder, never on PATH, with the global options passed on and
 * its exit status passed back. A copy of the sluice binary in a folder of
 * the test's own, with a shell script as the program, shows each rule. */
#include <sys/stat.h>

#include "runner.h"

TestSuite(commands, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 60);

static char bin[128], sluice_copy[160];

/* The script prints what it was given, one line each, and exits as told. */
#define SCRIPT                                                                                     \
    "#!/bin/sh\n"                                                                                  \
    "if [ \"$1\" = --summary ]; then echo 'say what you were given'; exit 0; fi\n"                 \
    "if [ \"$1\" = die ]; then kill -KILL $$; fi\n"                                                \
    "if [ \"$1\" = exit ]; then exit \"$2\"; fi\n"                                                 \
    "for a; do echo \"arg=$a\"; done\n"                                                            \
    "echo \"home=$SLUICE_HOME\"\n"                                                                 \
    "echo \"no_color=$NO_COLOR\"\n"                                                                \
    "[ -x \"$SLUICE_EXE\" ] && echo \"exe=$(basename \"$SLUICE_EXE\")\"\n"                         \
    "exit 0\n"

static void write_program(const char *folder, const char *name, const char *text, mode_t mode) {
    char *path = write_test_file(folder, name, text);
    cr_assert_eq(chmod(path, mode), 0, "%s", path);
}

/* test_dir/bin/sluice, a copy of the binary, with sluice-hello beside it. */
static void copy_sluice(void) {
    snprintf(bin, sizeof(bin), "%s/bin", test_dir);
    cr_assert_eq(mkdir(bin, 0755), 0);
    snprintf(sluice_copy, sizeof(sluice_copy), "%s/sluice", bin);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", SLUICE_BIN, sluice_copy);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    write_program(bin, "sluice-hello", SCRIPT, 0755);
}

#define RUN_COPY(...) run_in(NULL, NULL, (char *[]){sluice_copy, __VA_ARGS__, NULL})

static void expect_line(const result *r, const char *line) {
    char needle[256];
    snprintf(needle, sizeof(needle), "%s\n", line);
    cr_expect(r->out && strstr(r->out, needle) != NULL, "no line '%s' in:\n%s%s", line,
              r->out ? r->out : "", r->err ? r->err : "");
}

Test(commands, a_program_beside_the_binary_is_a_command_and_gets_the_global_options) {
    copy_sluice();
    result r = RUN_COPY("--store", "/tmp/the-store", "hello", "a", "--json", "b");
    cr_expect_eq(r.status, 0, "%s", r.err);
    expect_line(&r, "arg=a\narg=--json\narg=b");
    expect_line(&r, "home=/tmp/the-store");
    expect_line(&r, "exe=sluice");
    result_free(&r);

    /* The global options anywhere, as for every command: --store after
     * the command, --json before it (handed to the command as for the
     * built-in ones), --no-color as NO_COLOR. */
    r = RUN_COPY("--json", "--no-color", "hello", "x", "--store=/tmp/other");
    cr_expect_eq(r.status, 0, "%s", r.err);
    expect_line(&r, "arg=--json\narg=x");
    expect_line(&r, "home=/tmp/other");
    expect_line(&r, "no_color=1");
    result_free(&r);

    /* After "--" nothing is sluice's. */
    r = RUN_COPY("hello", "--", "--store", "kept");
    cr_expect_eq(r.status, 0, "%s", r.err);
    expect_line(&r, "arg=--\narg=--store\narg=kept");
    result_free(&r);
}

Test(commands, the_exit_status_passes_through_and_a_signal_is_128_plus_it) {
    copy_sluice();
    result r = RUN_COPY("hello", "exit", "3");
    cr_expect_eq(r.status, 3);
    result_free(&r);
    r = RUN_COPY("hello", "exit", "0");
    cr_expect_eq(r.status, 0);
    result_free(&r);
    r = RUN_COPY("hello", "die");
    cr_expect_eq(r.status, 128 + SIGKILL, "%d", r.status);
    result_free(&r);
}

Test(commands, help_lists_the_programs_found_and_asks_them_for_their_own) {
    copy_sluice();
    result r = RUN_COPY("--help");
    cr_expect_eq(r.status, 0);
    expect_line(&r, "  hello      say what you were given");
    cr_expect(strstr(r.out, "supervise") == NULL, "a helper is no command:\n%s", r.out);
    result_free(&r);
    r = RUN_COPY("help", "hello");
    cr_expect_eq(r.status, 0, "%s", r.err);
    expect_line(&r, "arg=--help");
    result_free(&r);
    r = RUN_COPY("hello", "--help");
    expect_line(&r, "arg=--help");
    result_free(&r);
}

Test(commands, the_installed_libexec_folder_is_looked_in_after_the_binarys_own) {
    copy_sluice();
    char libexec[256];
    snprintf(libexec, sizeof(libexec), "%s/libexec", test_dir);
    cr_assert_eq(mkdir(libexec, 0755), 0);
    snprintf(libexec, sizeof(libexec), "%s/libexec/sluice", test_dir);
    cr_assert_eq(mkdir(libexec, 0755), 0);
    write_program(libexec, "sluice-other", SCRIPT, 0755);
    /* The same name in both: the one beside the binary wins. */
    write_program(libexec, "sluice-hello", "#!/bin/sh\necho libexec\n", 0755);
    result r = RUN_COPY("other", "y");
    cr_expect_eq(r.status, 0, "%s", r.err);
    expect_line(&r, "arg=y");
    result_free(&r);
    r = RUN_COPY("hello", "z");
    expect_line(&r, "arg=z");
    result_free(&r);
}

Test(commands, an_unknown_command_is_refused_with_a_suggestion_and_path_is_not_searched) {
    copy_sluice();
    result r = RUN_COPY("helo");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "sluice: unknown command 'helo' (did you mean 'hello'?)") != NULL, "%s",
              r.err);
    result_free(&r);

    /* A program on PATH is not a command; nor is a file that cannot run,
     * a helper, or a name that is a path. */
    char on_path[256], path_var[600];
    snprintf(on_path, sizeof(on_path), "%s/path", test_dir);
    cr_assert_eq(mkdir(on_path, 0755), 0);
    write_program(on_path, "sluice-elsewhere", SCRIPT, 0755);
    snprintf(path_var, sizeof(path_var), "PATH=%s:/usr/bin:/bin", on_path);
    run_env[1] = path_var;
    run_env[2] = NULL;
    r = RUN_COPY("elsewhere");
    expect_refused(r, 2, "unknown command 'elsewhere'");
    run_env[1] = NULL;
    write_program(bin, "sluice-plain", "#!/bin/sh\necho ran\n", 0644);
    r = RUN_COPY("plain");
    expect_refused(r, 2, "unknown command 'plain'");
    write_program(bin, "sluice-supervise", "#!/bin/sh\necho ran\n", 0755);
    r = RUN_COPY("supervise");
    expect_refused(r, 2, "unknown command 'supervise'");
    r = RUN_COPY("../bin/sluice-hello");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.out, "arg=") == NULL, "%s", r.out);
    result_free(&r);
}

/* The step families' own programs, beside the real binary. */
Test(commands, search_and_warehouse_are_programs_of_their_own) {
    result r = RUN("--help");
    cr_expect_eq(r.status, 0);
    expect_line(&r, "  search     query a retrieval index: dense, BM25 or both fused");
    expect_line(&r, "  warehouse  move the document warehouse in and out of the Handbook's "
                    "export format");
    result_free(&r);
    r = RUN(test_store_arg, "warehouse", "import", test_dir, "--json");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "{ \"users\" : 0, \"documents\" : 0 }\n");
    result_free(&r);
    r = RUN("warehouse", "--frobnicate");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "sluice warehouse: unknown option '--frobnicate' (see 'sluice "
                            "warehouse --help')") != NULL,
              "%s", r.err);
    result_free(&r);
}

/* The plumbing external commands call back: an artifact's object, its
 * hash checked; with --type, a step's newest artifact of that type. */
Test(commands, artifacts_path_prints_a_checked_object_and_takes_a_step_with_a_type) {
    char *p =
        write_test_file(test_dir, "p.yaml",
                        "pipeline: p\n"
                        "steps:\n"
                        "  load: {uses: shell, with: {run: 'echo hi > o', outputs: {o: o}}}\n");
    result r = RUN(test_store_arg, "run", p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "path", "load.o");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char object[512];
    snprintf(object, sizeof(object), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    result_free(&r);
    char *text = slurp(object);
    cr_expect_str_eq(text ? text : "", "hi\n", "%s", object);
    free(text);
    r = RUN(test_store_arg, "artifacts", "path", "--type", "any", "load");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(r.out && strncmp(r.out, object, strlen(object)) == 0, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "artifacts", "path", "--type", "index", "load");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "'load' is not an artifact id, nor a step that made an artifact of "
                            "type 'index'") != NULL,
              "%s", r.err);
    result_free(&r);

    /* A changed object is refused, not named. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "chmod u+w '%s' && echo ho > '%s'", object, object);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    r = RUN(test_store_arg, "artifacts", "path", "load.o");
    cr_expect_eq(r.status, 2);
    cr_expect_str_eq(r.out, "");
    cr_expect(strstr(r.err, "is missing or corrupt: its content no longer matches its hash") !=
                  NULL,
              "%s", r.err);
    result_free(&r);
}
