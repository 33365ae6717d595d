/* main.c - sluice's entry: global options, then one command. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suggest.h"
#include "cli.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
    fprintf(out, "usage: sluice [--store DIR] [--json] [--no-color] COMMAND [ARGS]\n"
                 "\n"
                 "sluice runs LLM pipelines written as YAML DAGs of plugin steps, keeps every\n"
                 "artifact by content and records runs and lineage.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < cli_n_commands; i++)
        fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    /* Then the programs sluice-NAME found, each summarised by itself. */
    char **names, summary[256];
    size_t n;
    if (cli_external_names(&names, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            cli_external_summary(names[i], summary, sizeof(summary));
            if (summary[0])
                fprintf(out, "  %-10s %s\n", names[i], summary);
            else
                fprintf(out, "  %-10s (the program sluice-%s)\n", names[i], names[i]);
        }
        cli_external_names_free(names, n);
    }
    fprintf(out, "\n"
                 "Options:\n"
                 "  --store DIR   the store (default: $SLUICE_HOME, else ./.sluice)\n"
                 "  --json        the command's JSON output, where it has one\n"
                 "  --no-color    set NO_COLOR=1 for sluice and its steps (no-color.org)\n"
                 "  --version     print the version\n"
                 "  -h, --help    this text; 'sluice COMMAND --help' for a command\n"
                 "\n"
                 "--store, --json and --no-color may also follow the command.\n");
}

static const cli_command *find_command(const char *name) {
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

static int unknown_command(const char *name) {
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < cli_n_commands && n < 64; i++)
        names[n++] = cli_commands[i].name;
    char **external = NULL;
    size_t n_external = 0;
    if (cli_external_names(&external, &n_external) == 0)
        for (size_t i = 0; i < n_external && n < 64; i++)
            names[n++] = external[i];
    const char *hint = suggest_closest(name, names, n);
    if (hint)
        fprintf(stderr, "sluice: unknown command '%s' (did you mean '%s'?)\n", name, hint);
    else
        fprintf(stderr, "sluice: unknown command '%s' (see 'sluice --help')\n", name);
    cli_external_names_free(external, n_external);
    return EXIT_BAD_INPUT;
}

/* A command that is a program of its own (external.c), or unknown. */
static int run_external(cli_globals *g, int argc, char **argv) {
    char path[4096];
    if (!cli_external_find(argv[0], path, sizeof(path)))
        return unknown_command(argv[0]);
    return cli_external_run(g, path, argc, argv);
}

static int wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

/* Runs the command args[0] (global options taken out). */
static int dispatch(cli_globals *g, int argc, char **argv) {
    if (!g->store || !g->store[0])
        g->store = ".sluice";
    /* NO_COLOR (no-color.org): any non-empty value turns colour off. Set
     * for --no-color too, so the steps sluice starts see it as well. */
    const char *nc = getenv("NO_COLOR");
    if (nc && nc[0])
        g->no_color = 1;
    else if (g->no_color)
        setenv("NO_COLOR", "1", 1);
    if (argc == 0) {
        usage(stderr);
        return EXIT_BAD_INPUT;
    }
    if (strcmp(argv[0], "help") == 0) {
        if (argc < 2) {
            usage(stdout);
            return EXIT_DONE;
        }
        const cli_command *c = find_command(argv[1]);
        if (!c) /* 'sluice-NAME --help' */
            return run_external(g, 2, (char *[]){argv[1], "--help", NULL});
        fputs(c->usage, stdout);
        return EXIT_DONE;
    }
    if (strcmp(argv[0], "__complete") == 0) /* the completion scripts' own, not listed */
        return cli_complete(g, argc, argv);
    const cli_command *c = find_command(argv[0]);
    if (!c) /* it answers --help itself */
        return run_external(g, argc, argv);
    if (wants_help(argc, argv)) {
        fputs(c->usage, stdout);
        return EXIT_DONE;
    }
    return c->run(g, argc, argv);
}

/* Takes the global options out of argv, wherever they stand: before the
 * command, where 'sluice --help' documents them, and after it, where CI
 * scripts that append "--store X" to a command line put them. Up to "--",
 * which ends the options. A --json before the command is handed to the
 * command, which knows whether it has a JSON form. Returns -1 to go on, or
 * an exit status (--help, --version, a bad option). */
static int take_globals(int argc, char **argv, cli_globals *g, char **out, int *n_out) {
    int n = 0, json_before = 0, have_cmd = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < argc)
                out[n++] = argv[i++];
            break;
        }
        if (strcmp(a, "--store") == 0 && i + 1 < argc) {
            g->store = argv[++i];
            continue;
        }
        if (strncmp(a, "--store=", 8) == 0) {
            g->store = a + 8;
            continue;
        }
        if (strcmp(a, "--no-color") == 0) {
            g->no_color = 1;
            continue;
        }
        if (!have_cmd && a[0] == '-') {
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                usage(stdout);
                return EXIT_DONE;
            }
            if (strcmp(a, "--version") == 0) {
                printf("sluice %s\n", SLUICE_VERSION);
                return EXIT_DONE;
            }
            if (strcmp(a, "--json") == 0) {
                json_before = 1;
                continue;
            }
            fprintf(stderr, "sluice: unknown option '%s' (see 'sluice --help')\n", a);
            return EXIT_BAD_INPUT;
        }
        out[n++] = argv[i];
        if (!have_cmd && json_before)
            out[n++] = "--json";
        have_cmd = 1;
    }
    out[n] = NULL;
    *n_out = n;
    return -1;
}

int main(int argc, char **argv) {
    /* A step that exits before reading its stdin must not take sluice down:
     * the write fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    /* mongo-c-driver (the module sluice_mongo, loaded for a mongodb://
     * warehouse only) keeps counters in a /dev/shm segment named by pid,
     * which a killed process leaves behind (and a later process with that
     * pid then warns on stderr). Set before anything loads it, so that this
     * process, its steps and its `sluice exec` children, which sluice may
     * kill on a timeout, keep theirs in memory. */
    setenv("MONGOC_DISABLE_SHM", "1", 0);
    cli_globals g = {.store = getenv("SLUICE_HOME")};
    /* argv without the global options, plus room for a moved --json. */
    char **args = calloc((size_t)argc + 2, sizeof(*args));
    if (!args) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    int n, status = take_globals(argc, argv, &g, args, &n);
    if (status < 0)
        status = dispatch(&g, n, args);
    free(args);
    return status;
}
