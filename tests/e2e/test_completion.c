/* test_completion.c - `sluice completion bash|zsh|fish` and the candidates
 * its scripts ask `sluice __complete` for: commands, options and their
 * values read from each command's help, the steps and parameters of the
 * pipeline on the line, runs and artifacts of the store; then each shell's
 * script run by that shell. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "require.h"
#include "runner.h"

TestSuite(completion, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 120);

static const char pipeline_text[] =
    "version: 1\n"
    "pipeline: words\n"
    "params: {greeting: hello, times: 2}\n"
    "steps:\n"
    "  make:\n"
    "    uses: shell\n"
    "    with: {run: 'echo ${params.greeting} > \"$SLUICE_OUTPUT_text\"', "
    "outputs: {text: t.txt}}\n"
    "  count:\n"
    "    uses: shell\n"
    "    inputs: {text: make.text}\n"
    "    with: {run: 'wc -w < \"$SLUICE_INPUT_text\" > \"$SLUICE_OUTPUT_n\"', "
    "outputs: {n: n.txt}}\n";

/* The candidates for the last word of `sluice WORDS...`, one a line. */
#define COMPLETE(...)                                                                              \
    complete_line((char *[]){"sluice", "__complete", "--", "sluice", __VA_ARGS__, NULL})

static char *complete_line(char *argv[]) {
    result r = run_in(test_dir, NULL, argv);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err, "nothing on the terminal the user types in");
    free(r.err);
    return r.out;
}

/* Whether word stands as a whole line of out. */
static int has_line(const char *out, const char *word) {
    size_t len = strlen(word);
    for (const char *p = out; (p = strstr(p, word)); p++)
        if ((p == out || p[-1] == '\n') && (p[len] == '\n' || !p[len]))
            return 1;
    return 0;
}

#define EXPECT_LINES(out, ...)                                                                     \
    do {                                                                                           \
        const char *want_[] = {__VA_ARGS__};                                                       \
        for (size_t i_ = 0; i_ < sizeof(want_) / sizeof(want_[0]); i_++)                           \
            cr_expect(has_line(out, want_[i_]), "'%s' not among:\n%s", want_[i_], out);            \
    } while (0)

static char *write_pipeline(void) { return write_test_file(test_dir, "words.yaml", pipeline_text); }

Test(completion, commands_options_and_their_values_come_from_the_help) {
    char *out = COMPLETE("ru");
    EXPECT_LINES(out, "run", "runs");
    cr_expect(!has_line(out, "validate"), "%s", out);
    free(out);
    out = COMPLETE("");
    EXPECT_LINES(out, "run", "models", "completion", "help", "model", "search", "serve");
    free(out);
    out = COMPLETE("--st");
    EXPECT_LINES(out, "--store");
    free(out);
    out = COMPLETE("run", "words.yaml", "--");
    EXPECT_LINES(out, "--jobs", "--only", "--from", "--no-cache", "--dry-run", "--param", "--help");
    free(out);
    out = COMPLETE("graph", "words.yaml", "--format", "");
    EXPECT_LINES(out, "dot", "mermaid", "json");
    free(out);
    out = COMPLETE("run", "words.yaml", "--runner", "");
    EXPECT_LINES(out, "local", "slurm");
    free(out);
    out = COMPLETE("completion", "");
    EXPECT_LINES(out, "bash", "zsh", "fish");
    free(out);
    out = COMPLETE("runs", "");
    EXPECT_LINES(out, "list", "show", "diff");
    free(out);
    out = COMPLETE("help", "mo");
    EXPECT_LINES(out, "model", "models");
    free(out);
    /* an external command's, from 'sluice-serve --help' */
    out = COMPLETE("serve", "--");
    EXPECT_LINES(out, "--model", "--listen", "--parallel", "--api-key-file");
    free(out);
    out = COMPLETE("model", "");
    EXPECT_LINES(out, "info", "generate", "score");
    free(out);
    /* files are the shell's to complete: pipelines for run, folders for --store */
    out = COMPLETE("run", "");
    cr_expect_str_eq(out, ":yaml\n");
    free(out);
    out = COMPLETE("--store", "");
    cr_expect_str_eq(out, ":dirs\n");
    free(out);
}

/* Every option each command's help lists is offered after "--". */
Test(completion, every_option_of_every_command_is_offered) {
    char *names = COMPLETE("");
    size_t checked = 0;
    for (char *save, *name = strtok_r(names, "\n", &save); name;
         name = strtok_r(NULL, "\n", &save)) {
        if (strcmp(name, "help") == 0)
            continue;
        result help = RUN(name, "--help");
        cr_assert_eq(help.status, 0, "sluice %s --help: %s", name, help.err);
        char *offered = COMPLETE(name, "--");
        for (char *line = help.out; *line;) {
            char *end = line + strcspn(line, "\n");
            const char *t = line + strspn(line, " ");
            if (t > line && t[0] == '-') { /* an option list's lines only */
                if (t[1] != '-') {         /* "-p, --param": the long one */
                    const char *l = strstr(t, ", --");
                    t = l && l < end ? l + 2 : NULL;
                }
                if (t) {
                    char option[64];
                    snprintf(option, sizeof(option), "%.*s", (int)strcspn(t, " ,=\n"), t);
                    cr_expect(has_line(offered, option), "sluice %s: %s not offered:\n%s", name,
                              option, offered);
                    checked++;
                }
            }
            line = *end ? end + 1 : end;
        }
        free(offered);
        result_free(&help);
    }
    free(names);
    cr_expect_gt(checked, 30, "the option lists were read: %zu options", checked);
}

Test(completion, steps_params_runs_and_artifacts) {
    char path[512];
    snprintf(path, sizeof(path), "%s", write_pipeline());
    char *out = COMPLETE("run", "words.yaml", "--only", "");
    EXPECT_LINES(out, "make", "count");
    free(out);
    out = COMPLETE("run", "words.yaml", "--from", "c");
    cr_expect_str_eq(out, "count\n");
    free(out);
    out = COMPLETE("run", "words.yaml", "-p", "");
    EXPECT_LINES(out, "greeting=", "times=");
    free(out);
    expect_success(RUN_PIPELINE(path));
    char store[128];
    snprintf(store, sizeof(store), "%s/store", test_dir);
    out = COMPLETE("--store", store, "runs", "show", "");
    EXPECT_LINES(out, last_run, "latest");
    free(out);
    /* --store may follow the command */
    out = COMPLETE("resume", "--store", store, "");
    EXPECT_LINES(out, last_run);
    free(out);
    out = COMPLETE("--store", store, "artifacts", "show", "");
    EXPECT_LINES(out, "make.text", "count.n");
    free(out);
    out = COMPLETE("--store", store, "lineage", "co");
    cr_expect_str_eq(out, "count.n\n");
    free(out);
}

Test(completion, broken_lines_files_and_stores_give_nothing_and_no_error) {
    write_test_file(test_dir, "bad.yaml", "steps: [: oops\n  - {{\n");
    char *out = COMPLETE("run", "bad.yaml", "--only", "");
    cr_expect_str_empty(out);
    free(out);
    out = COMPLETE("--store", "/nonexistent/store", "runs", "show", "");
    cr_expect_str_empty(out);
    free(out);
    out = COMPLETE("no-such-command", "--");
    cr_expect_str_empty(out);
    free(out);
    out = COMPLETE("run", "missing.yaml", "-p", "");
    cr_expect_str_empty(out);
    free(out);
    result r = RUN("completion", "tcsh");
    expect_refused(r, 2, "no script for 'tcsh'");
    r = RUN("completion");
    cr_expect_eq(r.status, 2);
    result_free(&r);
}

/* ---- the scripts, in their shells ---------------------------------------------------------- */

static char path_env[4200];

/* Runs script (shell code) with shell, sluice first on PATH, in the test folder. */
static char *in_shell(const char *shell, const char *script) {
    if (access(shell, X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no %s to run the completion script", shell);
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s", SLUICE_BIN);
    snprintf(path_env, sizeof(path_env), "PATH=%s:/usr/bin:/bin", dirname(bin));
    run_env[1] = path_env;
    run_env[2] = NULL;
    const char *flag = strstr(shell, "zsh") ? "-fc" : "-c";
    result r =
        run_in(test_dir, NULL, (char *[]){(char *)shell, (char *)flag, (char *)script, NULL});
    run_env[1] = NULL;
    cr_assert_eq(r.status, 0, "%s: %s%s", shell, r.out, r.err);
    free(r.err);
    return r.out;
}

Test(completion, bash_script) {
    write_pipeline();
    char *out =
        in_shell("/bin/bash", "source <(sluice completion bash)\n"
                              "t() { COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; _sluice 2>/dev/null;\n"
                              "      printf '%s\\n' \"${COMPREPLY[@]}\" '--'; }\n"
                              "t 'sluice run words.yaml --only '\n"
                              "t 'sluice ru'\n"
                              "t 'sluice run '\n"
                              "t 'sluice run words.yaml -p gr'\n");
    cr_expect_str_eq(out, "count\nmake\n--\nrun\nruns\n--\nwords.yaml\n--\ngreeting=\n--\n");
    free(out);
}

Test(completion, zsh_script) {
    write_pipeline();
    /* compadd and _files stand in for zsh's completion system, which needs a terminal */
    char *out = in_shell(
        "/usr/bin/zsh",
        "autoload -U compinit; compinit -u -D\n"
        "source <(sluice completion zsh)\n"
        "print -r -- ${_comps[sluice]}\n"
        "compadd() { local -a a; a=(\"$@\"); print -l -- ${a[$(( ${a[(i)--]} + 1 )),-1]}; }\n"
        "_files() { print -r -- \"_files $*\"; }\n"
        "words=(sluice run words.yaml --only ''); CURRENT=5; _sluice\n"
        "words=(sluice run words.yaml -p ''); CURRENT=5; _sluice\n"
        "words=(sluice run ''); CURRENT=3; _sluice\n");
    cr_expect_str_eq(out, "_sluice\ncount\nmake\ngreeting=\ntimes=\n_files -g *.(yaml|yml)\n");
    free(out);
}

Test(completion, fish_script) {
    write_pipeline();
    char *out = in_shell("/usr/bin/fish", "sluice completion fish | source\n"
                                          "complete -C'sluice run words.yaml --only '\n"
                                          "complete -C'sluice ru'\n"
                                          "complete -C'sluice run wo'\n");
    cr_expect_str_eq(out, "count\nmake\nrun\nruns\nwords.yaml\n");
    free(out);
}
