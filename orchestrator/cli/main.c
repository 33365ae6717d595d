/* main.c - sluice's entry: global options, then one command. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/suggest.h"
#include "cli.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

static void usage(FILE *out) {
    fprintf(out, "usage: sluice [--store DIR] COMMAND [ARGS]\n"
                 "\n"
                 "sluice runs LLM pipelines written as YAML DAGs of plugin steps, keeps every\n"
                 "artifact by content and records runs and lineage.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < cli_n_commands; i++)
        fprintf(out, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(out, "\n"
                 "Options:\n"
                 "  --store DIR   the store (default: $SLUICE_HOME, else ./.sluice)\n"
                 "  --version     print the version\n"
                 "  -h, --help    this text; 'sluice COMMAND --help' for a command\n");
}

static const cli_command *find_command(const char *name) {
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

static int unknown_command(const char *name) {
    const char *names[32];
    size_t n = 0;
    for (size_t i = 0; i < cli_n_commands && n < 32; i++)
        names[n++] = cli_commands[i].name;
    const char *hint = suggest_closest(name, names, n);
    if (hint)
        fprintf(stderr, "sluice: unknown command '%s' (did you mean '%s'?)\n", name, hint);
    else
        fprintf(stderr, "sluice: unknown command '%s' (see 'sluice --help')\n", name);
    return EXIT_BAD_INPUT;
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
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_DONE;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("sluice %s\n", SLUICE_VERSION);
            return EXIT_DONE;
        }
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            g.store = argv[++i];
        } else if (strncmp(argv[i], "--store=", 8) == 0) {
            g.store = argv[i] + 8;
        } else {
            fprintf(stderr, "sluice: unknown option '%s' (see 'sluice --help')\n", argv[i]);
            return EXIT_BAD_INPUT;
        }
    }
    if (!g.store || !g.store[0])
        g.store = ".sluice";
    if (i >= argc) {
        usage(stderr);
        return EXIT_BAD_INPUT;
    }
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return EXIT_DONE;
        }
        const cli_command *c = find_command(argv[i + 1]);
        if (!c)
            return unknown_command(argv[i + 1]);
        fputs(c->usage, stdout);
        return EXIT_DONE;
    }
    const cli_command *c = find_command(argv[i]);
    if (!c)
        return unknown_command(argv[i]);
    if (wants_help(argc - i, argv + i)) {
        fputs(c->usage, stdout);
        return EXIT_DONE;
    }
    return c->run(&g, argc - i, argv + i);
}
