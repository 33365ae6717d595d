/* options.c - what the commands share for their arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

void cli_getopt_begin(void) {
    optind = 0; /* glibc: 0 re-initialises the scan completely */
    opterr = 0;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts) {
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == ':') {
        fprintf(stderr, "sluice %s: option '%s' needs a value\n", argv[0], argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt)
            fprintf(stderr, "sluice %s: unknown option '-%c' (see 'sluice %s --help')\n",
                    argv[0], optopt, argv[0]);
        else
            fprintf(stderr, "sluice %s: unknown option '%s' (see 'sluice %s --help')\n", argv[0],
                    argv[optind - 1], argv[0]);
    }
    return c;
}

int cli_params_add(cli_params *ps, const char *spec) {
    const char **items = realloc(ps->items, (ps->n + 1) * sizeof(*items));
    if (!items) {
        fprintf(stderr, "sluice: out of memory\n");
        return -ENOMEM;
    }
    items[ps->n++] = spec;
    ps->items = items;
    return 0;
}

void cli_params_free(cli_params *ps) {
    free(ps->items);
    ps->items = NULL;
    ps->n = 0;
}

int cli_load_pipeline(const char *path, const cli_params *ps, pipeline **out) {
    diag_list d = DIAG_LIST_INIT;
    pipeline_options opt = {.overrides = ps ? ps->items : NULL, .n_overrides = ps ? ps->n : 0};
    pipeline *p = NULL;
    int rc = pipeline_load_file(path, &opt, &d, &p);
    diag_print(&d, stderr);
    diag_clear(&d);
    *out = NULL;
    if (rc) {
        pipeline_free(p);
        return EXIT_BAD_INPUT;
    }
    *out = p;
    return 0;
}
