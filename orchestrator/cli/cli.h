/* cli.h - the sluice command line: global options, the command table, and
 * what the commands share. */
#ifndef SLUICE_CLI_CLI_H
#define SLUICE_CLI_CLI_H

#include <getopt.h>
#include <stddef.h>

#include "bind.h"
#include "host.h"
#include "pipeline.h"
#include "registry.h"

/* Exit statuses, fixed by the CLI contract (docs/cli.md). */
enum {
    EXIT_DONE = 0,        /* done */
    EXIT_STEP_FAILED = 1, /* the pipeline ran and a step failed */
    EXIT_BAD_INPUT = 2,   /* bad file or arguments; nothing was run */
    EXIT_INTERRUPTED = 130,
};

typedef struct cli_globals {
    const char *store; /* --store, else $SLUICE_HOME, else ./.sluice */
    int no_color;      /* --no-color or $NO_COLOR (then also set for the steps) */
} cli_globals;

typedef struct cli_command {
    const char *name;
    const char *summary; /* one line, for 'sluice --help' */
    const char *usage;   /* the whole 'sluice NAME --help' text */
    /* argv[0] is the command's name; returns an exit status. */
    int (*run)(const cli_globals *g, int argc, char **argv);
} cli_command;

extern const cli_command cli_commands[];
extern const size_t cli_n_commands;

int cmd_validate(const cli_globals *g, int argc, char **argv);
int cmd_graph(const cli_globals *g, int argc, char **argv);
int cmd_run(const cli_globals *g, int argc, char **argv);
int cmd_exec(const cli_globals *g, int argc, char **argv);
int cmd_plugins(const cli_globals *g, int argc, char **argv);
int cmd_runs(const cli_globals *g, int argc, char **argv);
int cmd_artifacts(const cli_globals *g, int argc, char **argv);
int cmd_lineage(const cli_globals *g, int argc, char **argv);
int cmd_status(const cli_globals *g, int argc, char **argv);
int cmd_resume(const cli_globals *g, int argc, char **argv);
int cmd_gc(const cli_globals *g, int argc, char **argv);
int cmd_doctor(const cli_globals *g, int argc, char **argv);
int cmd_models(const cli_globals *g, int argc, char **argv);
int cmd_report(const cli_globals *g, int argc, char **argv);
int cmd_completion(const cli_globals *g, int argc, char **argv);
/* 'sluice __complete -- WORD...' (complete.c), which the scripts of
 * 'sluice completion' call: the candidates for the last word, one a line. */
int cli_complete(const cli_globals *g, int argc, char **argv);
/* Schedules (cmd_schedule.c) and the scheduler that runs them
 * (cmd_scheduler.c); docs/schedules.md. */
int cmd_schedule(const cli_globals *g, int argc, char **argv);
int cmd_scheduler(const cli_globals *g, int argc, char **argv);
/* The dashboard (cmd_ui.c, docs/dashboard.md). */
int cmd_ui(const cli_globals *g, int argc, char **argv);
/* 'artifacts path' (cmd_artifacts_path.c): the plumbing external commands
 * call back for an artifact's object. */
int cmd_artifacts_path(const cli_globals *g, int argc, char **argv);

/* 'artifacts import' (cmd_artifacts_import.c): an outside file or folder
 * into the store. */
int cmd_artifacts_import(const cli_globals *g, int argc, char **argv);
/* 'artifacts forget' (cmd_artifacts_forget.c): undoes imports. */
int cmd_artifacts_forget(const cli_globals *g, int argc, char **argv);
/* 'artifacts export --jsonl' (dataset_jsonl.c): writes the dataset at
 * object, in the Handbook's layout, to dest as JSON Lines; prints why not.
 * Returns an exit status. */
int export_dataset_jsonl(const char *object, const char *dest);

/* External commands (external.c): the program sluice-NAME, for a NAME
 * that is no command above. cli_external_find() puts its path in path
 * (size bytes) and returns 1, or returns 0 when there is none. */
int cli_external_find(const char *name, char *path, size_t size);
/* The NAMEs of every external command found, sorted, none built in: *names
 * is the caller's, freed with cli_external_names_free(). 0 or -ENOMEM. */
int cli_external_names(char ***names, size_t *n);
void cli_external_names_free(char **names, size_t n);
/* The one-line summary 'sluice-NAME --summary' prints, into out ("" when
 * it prints none). */
void cli_external_summary(const char *name, char *out, size_t size);
/* What 'sluice-NAME ARG' prints on stdout, into out (size bytes, cut
 * there): 0, or -1 with out "" when there is no such program or it fails. */
int cli_external_output(const char *name, const char *arg, char *out, size_t size);
/* Runs the program at path with argv[1..argc) and the global options of g
 * passed on (docs/cli.md, "External commands"); returns its exit status,
 * 128 + the signal that ended it, or EXIT_BAD_INPUT (reported) when it
 * cannot be started. */
int cli_external_run(const cli_globals *g, const char *path, int argc, char **argv);

/* Prints what a run of p would do (status, run --dry-run); an exit status. */
int cli_print_plan(const pipeline *p, const char *store, int no_cache, int json);

/* getopt_long for a command: call cli_getopt_begin() once, then cli_getopt()
 * until -1. shortopts must begin with ':'. Unknown options and missing values
 * are reported as "sluice CMD: ..." on stderr, and '?' returned. */
void cli_getopt_begin(void);
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Parses a command whose only option is --json. Returns 0 with *json set and
 * optind at the first operand, or EXIT_BAD_INPUT (reported). */
int cli_json_only(int argc, char **argv, int *json);

/* The -p NAME=VALUE values gathered while parsing a command's options. */
typedef struct cli_params {
    const char **items; /* owned array; the strings are argv's, or in owned */
    size_t n;
    /* What else shapes a load: --env-file (argv's strings), --env-override,
     * and the strings this list made itself ("@/abs/path" of --params). */
    const char **env_files;
    size_t n_env_files;
    int env_override;
    char **owned;
    size_t n_owned;
} cli_params;

/* The options every command that loads a pipeline with -p takes too:
 * --params FILE (also -p @FILE), --env-file FILE, --env-override. */
enum { CLI_OPT_PARAMS = 0x1000, CLI_OPT_ENV_FILE, CLI_OPT_ENV_OVERRIDE };
#define CLI_LOAD_LONGOPTS                                                                          \
    {"params", required_argument, NULL, CLI_OPT_PARAMS},                                           \
        {"env-file", required_argument, NULL, CLI_OPT_ENV_FILE}, {                                 \
        "env-override", no_argument, NULL, CLI_OPT_ENV_OVERRIDE                                    \
    }

/* Takes option c when it is -p or one of CLI_LOAD_LONGOPTS: returns 1 when
 * taken, 0 when c is another option, -1 on an error (reported). */
int cli_load_option(cli_params *ps, int c, const char *arg);

/* Records one -p value; returns 0 or -ENOMEM (reported). */
int cli_params_add(cli_params *ps, const char *spec);
void cli_params_free(cli_params *ps);

/* The folder of the running sluice binary ("" if unknown), for finding the
 * plugins installed beside it; and the binary itself, for 'sluice exec'. */
const char *cli_exe_dir(void);
const char *cli_exe_path(void);

/* Loads the default plugin search path into reg once, printing refusals to
 * stderr. Returns 0, or EXIT_BAD_INPUT when a plugin was refused. */
int cli_load_plugins(plugin_registry *reg);

/* How a command loads a pipeline. */
typedef enum {
    LOAD_CHECK,        /* graph: unknown steps are warnings, secrets not needed */
    LOAD_STRICT_CHECK, /* validate: unknown steps are errors, secrets not needed */
    LOAD_RUN,          /* everything must resolve, secrets included */
} load_mode;

/* Loads path with the command line's -p values and binds it to the plugins
 * in reg (loading the default search path first). Prints diagnostics to
 * stderr. Returns 0 when valid, else EXIT_BAD_INPUT; *out is set only when
 * valid. */
int cli_load_pipeline(const char *path, const cli_params *ps, load_mode mode, plugin_registry *reg,
                      pipeline **out);

/* Finds the artifacts that inputs "artifact:ID" name in the store and
 * sets their hash and object path (input_artifacts.c), checking each
 * exists, is intact and has the input port's type. Prints every error
 * with its file, line and column; returns 0 or EXIT_BAD_INPUT. */
int cli_resolve_artifact_inputs(pipeline *p, const char *store);

#endif
