/* cmd_graph.c - sluice graph FILE: the DAG as dot, Mermaid or JSON. */
#include <stdio.h>

#include "check.h"
#include "render.h"
#include "cli.h"

int cmd_graph(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"param", required_argument, NULL, 'p'},
        CLI_LOAD_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    (void)g;
    cli_params ps = {0};
    graph_format format = GRAPH_DOT;
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    int c, status = EXIT_BAD_INPUT;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":f:p:", longopts)) != -1) {
        if (cli_load_option(&ps, c, optarg) == 1)
            continue;
        if (c == 'f' && graph_format_parse(optarg, &format) == 0)
            continue;
        if (c == 'f')
            fprintf(stderr, "sluice graph: unknown format '%s' (use dot, mermaid or json)\n",
                    optarg);
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    if (argc - optind != 1) {
        fprintf(stderr,
                "sluice graph: give exactly one pipeline file (see 'sluice graph --help')\n");
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    pipeline *p;
    if (cli_load_pipeline(argv[optind], &ps, LOAD_CHECK, &reg, &p) == 0) {
        dag d;
        buf out = BUF_INIT;
        int rc = pipeline_dag(p, &d);
        if (rc == 0) {
            rc = pipeline_render(p, &d, format, &out);
            dag_free(&d);
        }
        if (rc == 0) {
            fwrite(out.data, 1, out.len, stdout);
            status = fflush(stdout) == 0 ? EXIT_DONE : EXIT_BAD_INPUT;
        } else {
            fprintf(stderr, "sluice graph: out of memory\n");
        }
        buf_free(&out);
        pipeline_free(p);
    }
    cli_params_free(&ps);
    registry_free(&reg);
    return status;
}
