/* cmd_graph.c - sluice graph FILE: the DAG as dot, Mermaid or JSON. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "render.h"
#include "cli.h"
#include "inspect.h"
#include "run.h"

/* Makes the instances of p's 'foreach: STEP.OUTPUT' steps as run spec
 * (an id, a prefix of one, or "latest") made them. Returns 0, or
 * EXIT_BAD_INPUT after saying why. */
static int expand_as_run(const cli_globals *g, pipeline *p, const char *spec) {
    meta_db m;
    MDB_txn *txn;
    char id[256], why[1024];
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    int status = inspect_resolve(txn, m.runs, "run", spec, id, sizeof(id));
    bson_t rec;
    if (status == 0 && meta_get(txn, m.runs, id, &rec) == 0) {
        const char *name = inspect_str(&rec, "pipeline", "");
        if (strcmp(name, p->name) != 0) {
            fprintf(stderr, "sluice graph: run %s is of pipeline '%s', not '%s'\n", id, name,
                    p->name);
            status = EXIT_BAD_INPUT;
        }
    }
    meta_abort(txn);
    if (status == 0 && sched_expand_recorded(p, g->store, &m, id, why, sizeof(why)) != 0) {
        fprintf(stderr, "sluice graph: cannot make the instances of run %s: %s\n", id, why);
        status = EXIT_BAD_INPUT;
    }
    meta_close(&m);
    return status;
}

int cmd_graph(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"param", required_argument, NULL, 'p'},
        {"run", required_argument, NULL, 'r'},
        CLI_LOAD_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    cli_params ps = {0};
    const char *run = NULL;
    graph_format format = GRAPH_DOT;
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    int c, status = EXIT_BAD_INPUT;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":f:p:r:", longopts)) != -1) {
        if (cli_load_option(&ps, c, optarg) == 1)
            continue;
        if (c == 'f' && graph_format_parse(optarg, &format) == 0)
            continue;
        if (c == 'r') {
            run = optarg;
            continue;
        }
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
        if (run && expand_as_run(g, p, run) != 0) {
            pipeline_free(p);
            cli_params_free(&ps);
            registry_free(&reg);
            return EXIT_BAD_INPUT;
        }
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
