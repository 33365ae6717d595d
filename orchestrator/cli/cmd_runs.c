/* cmd_runs.c - sluice runs list | show RUN. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"
#include "metadata/record.h"

static int print_run(void *ud, const char *key, size_t len, const bson_t *doc) {
    inspect_list *c = ud;
    if (c->json) {
        bson_t view;
        if (record_run_view(doc, &view) == 0) {
            inspect_append_item(c->array, "run", key, len, &view);
            bson_destroy(&view);
        }
        return 0;
    }
    char started[32];
    inspect_time(inspect_num(doc, "started"), started, sizeof(started));
    double end = inspect_num(doc, "finished");
    char took[32] = "-";
    if (end > 0)
        snprintf(took, sizeof(took), "%.2fs", end - inspect_num(doc, "started"));
    printf("%-24.*s %-22s %-12s %-20s %9s %5.0f\n", (int)len, key, inspect_str(doc, "pipeline", "?"),
           record_effective_status(doc), started, took, inspect_num(doc, "steps"));
    return 0;
}

typedef struct show_ctx {
    int json;
    bson_t *steps;
} show_ctx;

static void print_ports(const bson_t *doc, const char *key, const char *label) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, doc, key) || !bson_iter_recurse(&it, &sub))
        return;
    while (bson_iter_next(&sub))
        if (BSON_ITER_HOLDS_UTF8(&sub))
            printf("      %s %s: %.12s\n", label, bson_iter_key(&sub), bson_iter_utf8(&sub, NULL));
}

/* A step run's metrics: a series shows as its last value. */
static void print_metrics(const bson_t *doc) {
    bson_iter_t it, ms, m;
    if (!bson_iter_init_find(&it, doc, "metrics") || !bson_iter_recurse(&it, &ms))
        return;
    char last_key[128] = "";
    double last = 0;
    int count = 0;
    while (bson_iter_next(&ms)) {
        if (!bson_iter_recurse(&ms, &m))
            continue;
        const char *name = NULL;
        double v = 0;
        while (bson_iter_next(&m)) {
            if (strcmp(bson_iter_key(&m), "key") == 0)
                name = bson_iter_utf8(&m, NULL);
            else if (strcmp(bson_iter_key(&m), "value") == 0)
                v = bson_iter_as_double(&m);
        }
        if (!name)
            continue;
        if (last_key[0] && strcmp(last_key, name) != 0) {
            printf("      metric %s = %g%s\n", last_key, last, count > 1 ? " (last of a series)" : "");
            count = 0;
        }
        snprintf(last_key, sizeof(last_key), "%s", name);
        last = v;
        count++;
    }
    if (last_key[0])
        printf("      metric %s = %g%s\n", last_key, last, count > 1 ? " (last of a series)" : "");
}

/* Where a run came from: its git commit, tags, and the run it resumes. */
static void print_run_origin(const bson_t *run) {
    bson_iter_t it, field;
    if (bson_iter_init_find(&it, run, "git") && bson_iter_recurse(&it, &field)) {
        const char *commit = "", *branch = "";
        int dirty = 0;
        while (bson_iter_next(&field)) {
            if (strcmp(bson_iter_key(&field), "commit") == 0)
                commit = bson_iter_utf8(&field, NULL);
            else if (strcmp(bson_iter_key(&field), "branch") == 0)
                branch = bson_iter_utf8(&field, NULL);
            else if (strcmp(bson_iter_key(&field), "dirty") == 0)
                dirty = bson_iter_as_bool(&field);
        }
        printf("  git %.12s%s%s%s\n", commit, branch[0] ? " on " : "", branch,
               dirty ? " (with uncommitted changes)" : "");
    }
    if (bson_iter_init_find(&it, run, "tags") && bson_iter_recurse(&it, &field))
        while (bson_iter_next(&field))
            if (BSON_ITER_HOLDS_UTF8(&field))
                printf("  tag %s=%s\n", bson_iter_key(&field), bson_iter_utf8(&field, NULL));
    const char *resumes = inspect_str(run, "resumes", NULL);
    if (resumes)
        printf("  resumes %s\n", resumes);
}

static int print_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    show_ctx *c = ud;
    const char *slash = memchr(key, '/', len);
    const char *id = slash ? slash + 1 : key;
    int id_len = (int)(len - (size_t)(id - key));
    if (c->json) {
        inspect_append_item(c->steps, "step", id, (size_t)id_len, doc);
        return 0;
    }
    double start = inspect_num(doc, "started"), end = inspect_num(doc, "finished");
    char took[32] = "-";
    if (start > 0 && end > 0)
        snprintf(took, sizeof(took), "%.2fs", end - start);
    const char *status = inspect_str(doc, "status", "?");
    printf("  %-24.*s %-10s %8s  attempts %.0f", id_len, id, status, took,
           inspect_num(doc, "attempts"));
    const char *from = inspect_str(doc, "cached_from", NULL);
    const char *error = inspect_str(doc, "error", NULL);
    if (from)
        printf("  from %s", from);
    else if (error)
        printf("  %s", error);
    printf("\n");
    print_ports(doc, "inputs", "in ");
    print_ports(doc, "outputs", "out");
    print_metrics(doc);
    return 0;
}

int cmd_runs(const cli_globals *g, int argc, char **argv) {
    int json;
    if (cli_json_only(argc, argv, &json))
        return EXIT_BAD_INPUT;
    const char *sub = optind < argc ? argv[optind] : NULL;
    int is_list = sub && strcmp(sub, "list") == 0 && argc - optind == 1;
    int is_show = sub && strcmp(sub, "show") == 0 && argc - optind == 2;
    if (!is_list && !is_show) {
        fprintf(stderr, "sluice runs: use 'runs list' or 'runs show RUN' (see 'sluice runs --help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    int status = EXIT_DONE;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    if (is_list) {
        bson_t doc = BSON_INITIALIZER, array;
        inspect_list ctx = {json, &array};
        if (json)
            BSON_APPEND_ARRAY_BEGIN(&doc, "runs", &array);
        else
            printf("%-24s %-22s %-12s %-20s %9s %5s\n", "RUN", "PIPELINE", "STATUS", "STARTED",
                   "TOOK", "STEPS");
        meta_each(txn, m.runs, "", print_run, &ctx);
        if (json) {
            bson_append_array_end(&doc, &array);
            inspect_print_json(&doc);
        }
        bson_destroy(&doc);
    } else {
        char id[256];
        bson_t run;
        status = inspect_resolve(txn, m.runs, "run", argv[optind + 1], id, sizeof(id));
        if (status == 0 && meta_get(txn, m.runs, id, &run) == 0) {
            char prefix[300];
            snprintf(prefix, sizeof(prefix), "%s/", id);
            bson_t doc = BSON_INITIALIZER, steps;
            show_ctx ctx = {json, &steps};
            if (json) {
                BSON_APPEND_UTF8(&doc, "run", id);
                bson_t view;
                if (record_run_view(&run, &view) == 0) {
                    bson_concat(&doc, &view);
                    bson_destroy(&view);
                }
                BSON_APPEND_ARRAY_BEGIN(&doc, "step_runs", &steps);
            } else {
                char started[32];
                inspect_time(inspect_num(&run, "started"), started, sizeof(started));
                printf("run %s: pipeline %s (%s), %s, started %s\n", id,
                       inspect_str(&run, "pipeline", "?"), inspect_str(&run, "file", "?"),
                       record_effective_status(&run), started);
                print_run_origin(&run);
            }
            meta_each(txn, m.steps, prefix, print_step, &ctx);
            if (json) {
                bson_append_array_end(&doc, &steps);
                inspect_print_json(&doc);
            }
            bson_destroy(&doc);
        }
    }
    inspect_end(&m, txn);
    return status;
}
