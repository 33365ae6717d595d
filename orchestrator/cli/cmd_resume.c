/* cmd_resume.c - sluice resume RUN: run a failed or interrupted run's
 * pipeline again, with the same -p values, reusing every step that finished
 * in it (from its records, checked against the store) and the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"
#include "sched/run.h"

int cmd_resume(const cli_globals *g, int argc, char **argv) {
    int json;
    if (cli_json_only(argc, argv, &json))
        return EXIT_BAD_INPUT;
    if (argc - optind != 1) {
        fprintf(stderr, "sluice resume: give one run id (see 'sluice resume --help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char id[256], file[4096] = "", status[32] = "";
    cli_params ps = {0};
    bson_t run;
    int rc = inspect_resolve(txn, m.runs, "run", argv[optind], id, sizeof(id));
    if (rc == 0 && meta_get(txn, m.runs, id, &run) == 0) {
        snprintf(file, sizeof(file), "%s", inspect_str(&run, "file", ""));
        snprintf(status, sizeof(status), "%s", inspect_str(&run, "status", ""));
        bson_iter_t it, items;
        if (bson_iter_init_find(&it, &run, "overrides") && bson_iter_recurse(&it, &items))
            while (rc == 0 && bson_iter_next(&items))
                if (BSON_ITER_HOLDS_UTF8(&items)) {
                    char *copy = strdup(bson_iter_utf8(&items, NULL));
                    rc = copy ? cli_params_add(&ps, copy) : EXIT_BAD_INPUT;
                }
    }
    inspect_end(&m, txn);
    if (rc == 0 && strcmp(status, "done") == 0) {
        printf("run %s finished: there is nothing to resume\n", id);
    } else if (rc == 0) {
        plugin_registry reg = PLUGIN_REGISTRY_INIT;
        pipeline *p = NULL;
        rc = cli_load_pipeline(file, &ps, LOAD_RUN, &reg, &p);
        if (rc == 0) {
            run_options o = {.store = g->store,
                             .exe = cli_exe_path(),
                             .json = json,
                             .overrides = ps.items,
                             .n_overrides = ps.n,
                             .resume = id};
            rc = run_pipeline(p, &o);
            if (o.abandoned) /* see cmd_run: plugin code may still run */
                run_exit_abandoned(rc);
        }
        pipeline_free(p);
        registry_free(&reg);
    }
    for (size_t i = 0; i < ps.n; i++)
        free((char *)ps.items[i]);
    cli_params_free(&ps);
    return rc;
}
