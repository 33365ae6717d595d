/* cmd_status.c - sluice status FILE (and run --dry-run): for every step,
 * would it run or come from the cache, and why. */
#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sched/plan.h"

int cli_print_plan(const pipeline *p, const char *store, int no_cache, int json) {
    plan_step *steps = calloc(p->n_steps + 1, sizeof(*steps));
    if (!steps) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    int rc = plan_pipeline(p, store, no_cache, steps);
    if (rc) {
        fprintf(stderr, "sluice: cannot read the store %s: %s\n", store, strerror(-rc));
        free(steps);
        return EXIT_BAD_INPUT;
    }
    size_t runs = 0;
    if (json) {
        bson_t doc = BSON_INITIALIZER, arr;
        BSON_APPEND_UTF8(&doc, "pipeline", p->name);
        BSON_APPEND_ARRAY_BEGIN(&doc, "steps", &arr);
        for (size_t i = 0; i < p->n_steps; i++) {
            char idx[16];
            const char *k;
            bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
            bson_t item;
            BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &item);
            BSON_APPEND_UTF8(&item, "step", p->steps[i].id);
            BSON_APPEND_UTF8(&item, "would", steps[i].runs ? "run" : "cache");
            if (steps[i].runs)
                BSON_APPEND_UTF8(&item, "why", steps[i].why);
            else
                BSON_APPEND_UTF8(&item, "from", steps[i].from);
            bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(&doc, &arr);
        size_t len;
        char *text = bson_as_relaxed_extended_json(&doc, &len);
        if (text)
            printf("%s\n", text);
        bson_free(text);
        bson_destroy(&doc);
    } else {
        size_t width = 4;
        for (size_t i = 0; i < p->n_steps; i++)
            if (strlen(p->steps[i].id) > width)
                width = strlen(p->steps[i].id);
        printf("%-*s  %-5s  %s\n", (int)width, "STEP", "WOULD", "WHY");
        for (size_t i = 0; i < p->n_steps; i++) {
            const plan_step *ps = &steps[i];
            if (ps->runs)
                printf("%-*s  run    %s\n", (int)width, p->steps[i].id, ps->why);
            else
                printf("%-*s  cache  from %s\n", (int)width, p->steps[i].id, ps->from);
        }
    }
    for (size_t i = 0; i < p->n_steps; i++)
        runs += (size_t)steps[i].runs;
    if (!json)
        printf("%zu of %zu steps would run\n", runs, p->n_steps);
    free(steps);
    return EXIT_DONE;
}

int cmd_status(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"param", required_argument, NULL, 'p'},
        {"no-cache", no_argument, NULL, 'N'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    cli_params ps = {0};
    int c, json = 0, no_cache = 0;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":p:", longopts)) != -1) {
        if (c == 'p' && cli_params_add(&ps, optarg) == 0)
            continue;
        if (c == 'J' || c == 'N') {
            *(c == 'J' ? &json : &no_cache) = 1;
            continue;
        }
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "sluice status: give exactly one pipeline file (see 'sluice status --help')\n");
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    plugin_registry reg = PLUGIN_REGISTRY_INIT;
    pipeline *p = NULL;
    int status = cli_load_pipeline(argv[optind], &ps, LOAD_RUN, &reg, &p);
    if (status == 0)
        status = cli_print_plan(p, g->store, no_cache, json);
    pipeline_free(p);
    registry_free(&reg);
    cli_params_free(&ps);
    return status;
}
