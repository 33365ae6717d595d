/* cmd_resume.c - sluice resume RUN: run a failed, interrupted or crashed
 * run's pipeline again, with the same -p values and tags, reusing every step
 * that finished in it (from its records, checked against the store) and the
 * cache. A run whose process still runs is not resumed: that would run it
 * twice at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runreport.h"
#include "inspect.h"
#include "record.h"
#include "run.h"

/* The latest run that resumes `id`, found by a scan of the runs. */
typedef struct resumer {
    const char *id;
    char by[256];
    char status[32];
} resumer;

static int find_resumer(void *ud, const char *key, size_t len, const bson_t *doc) {
    resumer *r = ud;
    if (strcmp(inspect_str(doc, "resumes", ""), r->id) == 0) {
        snprintf(r->by, sizeof(r->by), "%.*s", (int)len, key);
        snprintf(r->status, sizeof(r->status), "%s", record_effective_status(doc));
    }
    return 0;
}

/* Copies the strings of the run's array or document `key` into ps: the
 * array's items, or the document's fields as KEY=VALUE. */
static int copy_strings(const bson_t *run, const char *key, cli_params *ps) {
    bson_iter_t it, items;
    if (!bson_iter_init_find(&it, run, key) || !bson_iter_recurse(&it, &items))
        return 0;
    int as_pairs = BSON_ITER_HOLDS_DOCUMENT(&it);
    while (bson_iter_next(&items)) {
        if (!BSON_ITER_HOLDS_UTF8(&items))
            continue;
        char *copy = NULL;
        const char *v = bson_iter_utf8(&items, NULL);
        if (!as_pairs)
            copy = strdup(v);
        else if ((copy = malloc(strlen(bson_iter_key(&items)) + strlen(v) + 2)))
            sprintf(copy, "%s=%s", bson_iter_key(&items), v);
        if (!copy || cli_params_add(ps, copy) != 0) {
            free(copy);
            fprintf(stderr, "sluice resume: out of memory\n");
            return EXIT_BAD_INPUT;
        }
    }
    return 0;
}

static void free_strings(cli_params *ps) {
    for (size_t i = 0; i < ps->n; i++)
        free((char *)ps->items[i]);
    cli_params_free(ps);
}

int cmd_resume(const cli_globals *g, int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_JUNIT };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"junit", required_argument, NULL, OPT_JUNIT},
        {NULL, 0, NULL, 0},
    };
    int c, json = 0;
    const char *junit = NULL;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c == OPT_JSON)
            json = 1;
        else if (c == OPT_JUNIT && runreport_junit_check(optarg) == 0)
            junit = optarg;
        else
            return EXIT_BAD_INPUT;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "sluice resume: give one run id (see 'sluice resume --help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char id[256], file[4096] = "", status[32] = "";
    int live = 0;
    cli_params ps = {0}, tags = {0};
    resumer later = {id, "", ""};
    bson_t run;
    int rc = inspect_resolve(txn, m.runs, "run", argv[optind], id, sizeof(id));
    if (rc == 0 && meta_get(txn, m.runs, id, &run) == 0) {
        snprintf(file, sizeof(file), "%s", inspect_str(&run, "file", ""));
        snprintf(status, sizeof(status), "%s", record_effective_status(&run));
        live = strcmp(status, "running") == 0 && record_owner_alive(&run) == 1;
        rc = copy_strings(&run, "overrides", &ps);
        if (rc == 0)
            rc = copy_strings(&run, "tags", &tags);
        if (rc == 0)
            meta_each(txn, m.runs, "", find_resumer, &later);
    }
    inspect_end(&m, txn);
    if (rc == 0 && live) {
        fprintf(stderr, "sluice resume: run %s is still running: resume it once it has ended\n",
                id);
        rc = EXIT_BAD_INPUT;
    } else if (rc == 0 && strcmp(status, "done") == 0) {
        printf("run %s finished: there is nothing to resume\n", id);
    } else if (rc == 0 && later.by[0] && strcmp(later.status, "done") == 0) {
        printf("run %s was already resumed by run %s, which finished: there is nothing to "
               "resume\n",
               id, later.by);
    } else if (rc == 0 && later.by[0] && strcmp(later.status, "running") == 0) {
        fprintf(stderr, "sluice resume: run %s is being resumed by run %s, still running\n", id,
                later.by);
        rc = EXIT_BAD_INPUT;
    } else if (rc == 0) {
        if (later.by[0])
            fprintf(stderr,
                    "sluice resume: run %s was already resumed by run %s (%s); resuming "
                    "it again\n",
                    id, later.by, later.status);
        plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
        pipeline *p = NULL;
        rc = cli_load_pipeline(file, &ps, LOAD_RUN, &reg, &p);
        if (rc == 0)
            rc = cli_resolve_artifact_inputs(p, g->store);
        if (rc == 0) {
            run_options o = {.store = g->store,
                             .exe = cli_exe_path(),
                             .json = json,
                             .overrides = ps.items,
                             .n_overrides = ps.n,
                             .tags = tags.items,
                             .n_tags = tags.n,
                             .resume = id};
            rc = run_pipeline(p, &o);
            if (junit)
                rc = runreport_junit(g->store, o.run_id, p->name, rc, junit);
            if (o.abandoned) /* see cmd_run: plugin code may still run */
                run_exit_abandoned(rc);
        }
        pipeline_free(p);
        registry_free(&reg);
    }
    free_strings(&ps);
    free_strings(&tags);
    return rc;
}
