/* cmd_validate.c - sluice validate FILE...: every error of every file. */
#include <stdio.h>

#include "cli.h"

int cmd_validate(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"param", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"strict", no_argument, NULL, 's'},
        CLI_LOAD_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    (void)g;
    cli_params ps = {0};
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    int quiet = 0, c, status = EXIT_DONE;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":p:qs", longopts)) != -1) {
        if (cli_load_option(&ps, c, optarg) == 1)
            continue;
        /* --strict is what validate always does now; still taken, for old scripts. */
        if (c == 'q' || c == 's') {
            quiet |= c == 'q';
            continue;
        }
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    if (optind >= argc) {
        fprintf(stderr, "sluice validate: no pipeline file given (see 'sluice validate --help')\n");
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    for (int i = optind; i < argc; i++) {
        pipeline *p;
        if (cli_load_pipeline(argv[i], &ps, LOAD_STRICT_CHECK, &reg, &p) != 0) {
            status = EXIT_BAD_INPUT;
            continue;
        }
        if (!quiet)
            printf("%s: ok: pipeline '%s', %zu step%s\n", argv[i], p->name, p->n_steps,
                   p->n_steps == 1 ? "" : "s");
        for (size_t k = 0; !quiet && k < p->n_steps; k++)
            if (step_is_template(&p->steps[k]))
                printf("%s: note: step '%s' fans out over the rows of %s.%s: how many instances "
                       "it has is known when the pipeline runs\n",
                       argv[i], p->steps[k].id, p->steps[k].foreach_step,
                       p->steps[k].foreach_output);
        pipeline_free(p);
    }
    cli_params_free(&ps);
    registry_free(&reg);
    return status;
}
