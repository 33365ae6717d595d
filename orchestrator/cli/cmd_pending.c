/* cmd_pending.c - the commands of the contract that this build does not
 * carry yet: they say so, and what they wait for, instead of failing in
 * some less clear way. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *command, *needs;
} pending[] = {
    {"serve", "the deploy step"},
};

int cmd_pending(const cli_globals *g, int argc, char **argv) {
    (void)g;
    (void)argc;
    const char *needs = "a later part of sluice";
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
        if (strcmp(pending[i].command, argv[0]) == 0)
            needs = pending[i].needs;
    fprintf(
        stderr,
        "sluice %s: not available in this version of sluice yet: it needs %s.\n"
        "Meanwhile 'sluice validate FILE' checks a pipeline and 'sluice graph FILE' shows it.\n",
        argv[0], needs);
    return EXIT_BAD_INPUT;
}
