/* cmd_status.c - sluice status FILE (and run --dry-run): for every step,
 * would it run or come from the cache, and why. */
#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "buf.h"
#include "inspect.h"
#include "value_json.h"
#include "plan.h"

/* A pipeline parameter whose value differs from the newest run of the
 * pipeline: its name and both values as JSON. */
typedef struct param_change {
    const char *name; /* borrowed from the pipeline */
    char *was, *now;  /* owned */
} param_change;

/* The JSON text of a value (secrets masked); NULL when out of memory. */
static char *value_json(const value *v) {
    buf b = BUF_INIT;
    if (value_write_json(&b, v, 1) != 0) {
        buf_free(&b);
        return NULL;
    }
    char *text = strdup(buf_str(&b));
    buf_free(&b);
    return text;
}

/* The pipeline parameters of p that differ from those of run `run`. */
static size_t changed_params(const pipeline *p, const char *store, const char *run,
                             param_change *out) {
    meta_db m;
    MDB_txn *txn;
    bson_t rec, *params = NULL;
    bson_iter_t pit;
    uint32_t dlen;
    const uint8_t *data;
    if (inspect_begin_ex(store, 1, &m, &txn) != 0)
        return 0;
    if (meta_get(txn, m.runs, run, &rec) == 0 && bson_iter_init_find(&pit, &rec, "params") &&
        BSON_ITER_HOLDS_DOCUMENT(&pit)) {
        bson_iter_document(&pit, &dlen, &data);
        params = bson_new_from_data(data, dlen);
    }
    inspect_end(&m, txn);
    if (!params)
        return 0;
    size_t count = 0;
    arena a = ARENA_INIT;
    for (size_t i = 0; i < p->n_params; i++) {
        bson_iter_t it;
        value *old;
        if (!bson_iter_init_find(&it, params, p->params[i].name) ||
            value_from_bson(&a, &it, &old) != 0)
            continue;
        char *was = value_json(old), *now = value_json(p->params[i].value);
        if (was && now && strcmp(was, now) != 0) {
            out[count++] = (param_change){p->params[i].name, was, now};
            continue;
        }
        free(was);
        free(now);
    }
    arena_free(&a);
    bson_destroy(params);
    return count;
}

/* 1 when step k's 'with' reads differently in q. */
static int with_differs(const step *a, const step *b) {
    if (a->n_with != b->n_with)
        return 1;
    int differs = 0;
    for (size_t i = 0; i < a->n_with && !differs; i++) {
        char *x = value_json(a->with[i].value), *y = value_json(b->with[i].value);
        differs = !x || !y || strcmp(a->with[i].name, b->with[i].name) != 0 || strcmp(x, y) != 0;
        free(x);
        free(y);
    }
    return differs;
}

/* Which steps each changed pipeline parameter reaches: p loaded again with
 * that one parameter at its old value, the steps whose 'with' then differ.
 * uses[c * n_steps + k] is set when change c reaches step k. */
static void params_used(const pipeline *p, const param_change *changes, size_t n_changes,
                        unsigned char *uses) {
    const char **overrides = calloc(p->n_params + 1, sizeof(*overrides));
    char **texts = calloc(p->n_params + 1, sizeof(*texts));
    for (size_t c = 0; overrides && texts && c < n_changes; c++) {
        size_t n = 0;
        int ok = 1;
        for (size_t i = 0; i < p->n_params && ok; i++) {
            const char *v = NULL;
            char *now = NULL;
            if (strcmp(p->params[i].name, changes[c].name) == 0)
                v = changes[c].was;
            else
                v = now = value_json(p->params[i].value);
            size_t len = v ? strlen(p->params[i].name) + strlen(v) + 2 : 0;
            texts[n] = len ? malloc(len) : NULL;
            if (texts[n])
                snprintf(texts[n], len, "%s=%s", p->params[i].name, v);
            ok = texts[n] != NULL;
            overrides[n] = texts[n];
            n += ok;
            free(now);
        }
        pipeline_options opt = {.overrides = overrides, .n_overrides = n};
        diag_list d = DIAG_LIST_INIT;
        pipeline *q = NULL;
        if (ok)
            pipeline_load_file(p->file, &opt, &d, &q);
        for (size_t k = 0; q && q->n_steps == p->n_steps && k < p->n_steps; k++)
            uses[c * p->n_steps + k] = (unsigned char)with_differs(&p->steps[k], &q->steps[k]);
        pipeline_free(q);
        diag_clear(&d);
        for (size_t i = 0; i < n; i++)
            free(texts[i]);
    }
    free(overrides);
    free(texts);
}

/* The pipeline parameters that changed since one run, and which steps
 * each reaches (uses[c * n_steps + k]). */
typedef struct param_diff {
    char run[64];
    param_change *changes;
    size_t n;
    unsigned char *uses;
} param_diff;

static void param_diff_clear(param_diff *pd) {
    for (size_t c = 0; pd->changes && c < pd->n; c++) {
        free(pd->changes[c].was);
        free(pd->changes[c].now);
    }
    free(pd->changes);
    free(pd->uses);
    memset(pd, 0, sizeof(*pd));
}

/* Fills pd for run (kept while the next step compares with the same run). */
static void param_diff_load(param_diff *pd, const pipeline *p, const char *store, const char *run) {
    if (strcmp(pd->run, run) == 0)
        return;
    param_diff_clear(pd);
    snprintf(pd->run, sizeof(pd->run), "%s", run);
    pd->changes = calloc(p->n_params + 1, sizeof(*pd->changes));
    pd->n = pd->changes ? changed_params(p, store, run, pd->changes) : 0;
    pd->uses = pd->n ? calloc(pd->n * p->n_steps + 1, 1) : NULL;
    if (pd->uses)
        params_used(p, pd->changes, pd->n, pd->uses);
}

/* Step k's why, with the pipeline parameters behind a changed step
 * parameter named after it: "since run R: parameter 'run' changed
 * (params.greeting: "hello" -> "bye")". The plan names the parameter as the
 * step knows it; the pipeline parameters are compared with run R's. */
static const char *explain(param_diff *pd, const pipeline *p, const char *store, const char *why,
                           size_t k, buf *out) {
    const char *last = NULL;
    for (const char *at = why; (at = strstr(at, "parameter '")); at++) {
        const char *end = strstr(at, "' changed");
        if (end)
            last = end + 9;
    }
    char run[64];
    if (!last || sscanf(why, "since run %63[^:]:", run) != 1)
        return why;
    param_diff_load(pd, p, store, run);
    int any = 0;
    for (size_t c = 0; pd->uses && c < pd->n && !any; c++)
        any = pd->uses[c * p->n_steps + k];
    if (!any)
        return why;
    buf_reset(out);
    buf_printf(out, "%.*s (", (int)(last - why), why);
    const char *sep = "";
    for (size_t c = 0; c < pd->n; c++)
        if (pd->uses[c * p->n_steps + k]) {
            buf_printf(out, "%sparams.%s: %s -> %s", sep, pd->changes[c].name, pd->changes[c].was,
                       pd->changes[c].now);
            sep = "; ";
        }
    buf_printf(out, ")%s", last);
    return buf_str(out);
}

/* A fan-out step's instances (from steps[first]) as one line: whether any
 * would run, how many, and why the first of them would (all of them are in
 * --json). */
static void print_group_plan(param_diff *pd, const pipeline *p, const char *store,
                             const plan_step *steps, size_t first, int width, buf *why) {
    const step *s = &p->steps[first];
    size_t n = s->n_instances, runs = 0, first_run = first;
    for (size_t k = first + n; k-- > first;)
        if (steps[k].runs) {
            runs++;
            first_run = k;
        }
    buf label = BUF_INIT;
    step_group_label(s, &label);
    if (!runs)
        printf("%-*s  cache  all %zu instances from the cache\n", width, buf_str(&label), n);
    else
        printf("%-*s  run    %zu of %zu instances; %s: %s\n", width, buf_str(&label), runs, n,
               p->steps[first_run].id, explain(pd, p, store, steps[first_run].why, first_run, why));
    buf_free(&label);
}

int cli_print_plan(const pipeline *p, const char *store, int no_cache, int json) {
    plan_step *steps = calloc(p->n_steps + 1, sizeof(*steps));
    if (!steps) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    char err[4096 + 512];
    int rc = plan_pipeline(p, store, no_cache, steps, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "sluice: %s\n", err);
        free(steps);
        return EXIT_BAD_INPUT;
    }
    size_t runs = 0;
    param_diff pd = {0};
    buf why = BUF_INIT;
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
            if (p->steps[i].group) {
                BSON_APPEND_UTF8(&item, "group", p->steps[i].group);
                BSON_APPEND_INT32(&item, "instance", (int32_t)p->steps[i].instance);
            }
            BSON_APPEND_UTF8(&item, "would", steps[i].runs ? "run" : "cache");
            if (p->steps[i].when)
                BSON_APPEND_UTF8(&item, "when", p->steps[i].when);
            if (steps[i].runs) {
                BSON_APPEND_UTF8(&item, "why", explain(&pd, p, store, steps[i].why, i, &why));
            } else
                BSON_APPEND_UTF8(&item, "from", steps[i].from);
            bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(&doc, &arr);
        bson_t params, one;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "params", &params);
        for (size_t i = 0; i < p->n_params; i++) {
            BSON_APPEND_DOCUMENT_BEGIN(&params, p->params[i].name, &one);
            value_append_bson(&one, "value", 5, p->params[i].value, 1);
            BSON_APPEND_UTF8(&one, "origin", p->params[i].origin ? p->params[i].origin : "default");
            bson_append_document_end(&params, &one);
        }
        bson_append_document_end(&doc, &params);
        size_t len;
        char *text = bson_as_relaxed_extended_json(&doc, &len);
        if (text)
            printf("%s\n", text);
        bson_free(text);
        bson_destroy(&doc);
    } else {
        size_t width = 4;
        for (size_t i = 0; i < p->n_steps; i++) { /* [N] -> [0..N], or ID[*] */
            size_t w =
                strlen(p->steps[i].id) + (p->steps[i].group || p->steps[i].foreach_step ? 4 : 0);
            if (w > width)
                width = w;
        }
        printf("%-*s  %-5s  %s\n", (int)width, "STEP", "WOULD", "WHY");
        for (size_t i = 0; i < p->n_steps; i++) {
            const plan_step *ps = &steps[i];
            if (p->steps[i].group) {
                print_group_plan(&pd, p, store, steps, i, (int)width, &why);
                i += p->steps[i].n_instances - 1;
                continue;
            }
            if (step_is_template(&p->steps[i])) {
                buf label = BUF_INIT;
                step_group_label(&p->steps[i], &label);
                printf("%-*s  run    %s\n", (int)width, buf_str(&label), ps->why);
                buf_free(&label);
                continue;
            }
            if (ps->runs) {
                printf("%-*s  run    %s", (int)width, p->steps[i].id,
                       explain(&pd, p, store, ps->why, i, &why));
            } else
                printf("%-*s  cache  from %s", (int)width, p->steps[i].id, ps->from);
            /* Decided when the run reaches the step: it may be skipped. */
            if (p->steps[i].when)
                printf("  (when: %s)", p->steps[i].when);
            printf("\n");
        }
    }
    for (size_t i = 0; i < p->n_steps; i++)
        runs += (size_t)steps[i].runs;
    if (!json)
        printf("%zu of %zu steps would run\n", runs, p->n_steps);
    /* Each parameter's value and where it came from (default, a params
     * file's line, -p), so a surprising value can be traced. */
    for (size_t i = 0; !json && i < p->n_params; i++) {
        char *v = value_json(p->params[i].value);
        printf("param %s = %s  (%s)\n", p->params[i].name, v ? v : "?",
               p->params[i].origin ? p->params[i].origin : "default");
        free(v);
    }
    buf_free(&why);
    param_diff_clear(&pd);
    free(steps);
    return EXIT_DONE;
}

int cmd_status(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"param", required_argument, NULL, 'p'},
        {"no-cache", no_argument, NULL, 'N'},
        {"json", no_argument, NULL, 'J'},
        CLI_LOAD_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    cli_params ps = {0};
    int c, json = 0, no_cache = 0;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":p:", longopts)) != -1) {
        if (cli_load_option(&ps, c, optarg) == 1)
            continue;
        if (c == 'J' || c == 'N') {
            *(c == 'J' ? &json : &no_cache) = 1;
            continue;
        }
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    if (argc - optind != 1) {
        fprintf(stderr,
                "sluice status: give exactly one pipeline file (see 'sluice status --help')\n");
        cli_params_free(&ps);
        return EXIT_BAD_INPUT;
    }
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    pipeline *p = NULL;
    int status = cli_load_pipeline(argv[optind], &ps, LOAD_RUN, &reg, &p);
    if (status == 0)
        status = cli_resolve_artifact_inputs(p, g->store);
    if (status == 0)
        status = cli_print_plan(p, g->store, no_cache, json);
    pipeline_free(p);
    registry_free(&reg);
    cli_params_free(&ps);
    return status;
}
