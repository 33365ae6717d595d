/* cmd_runs.c - sluice runs list | show RUN. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diff.h"
#include "inspect.h"
#include "run_steps.h"
#include "record.h"
#include "check.h"

/* A run's status and its JSON form, as readers see them: the one place to
 * ask, so that whatever the record says (done, failed, interrupted, a run
 * whose process is gone) is shown alike by list, its --status and show. */
static const char *run_status(const bson_t *run) { return record_effective_status(run); }

static void append_run_fields(bson_t *doc, const bson_t *run) {
    bson_t view;
    if (record_run_view(run, &view) == 0) {
        bson_concat(doc, &view);
        bson_destroy(&view);
    }
}

static void print_run(const char *key, const bson_t *doc) {
    char started[32];
    inspect_time(inspect_num(doc, "started"), started, sizeof(started));
    double end = inspect_num(doc, "finished");
    char took[32] = "-";
    if (end > 0)
        snprintf(took, sizeof(took), "%.2fs", end - inspect_num(doc, "started"));
    printf("%-24s %-22s %-12s %-20s %9s %5.0f\n", key, inspect_str(doc, "pipeline", "?"),
           run_status(doc), started, took, inspect_num(doc, "steps"));
}

/* What 'runs list' keeps: --pipeline, --status, --tag K=V (all must hold). */
typedef struct run_filter {
    const char *pipeline, *status;
    cli_params tags;
    char **keys; /* the matching run ids, oldest first; owned */
    size_t n;
    int failed;
} run_filter;

static int keep_run(void *ud, const char *key, size_t len, const bson_t *doc) {
    run_filter *f = ud;
    if (f->pipeline && strcmp(inspect_str(doc, "pipeline", ""), f->pipeline) != 0)
        return 0;
    if (f->status && strcmp(run_status(doc), f->status) != 0)
        return 0;
    for (size_t i = 0; i < f->tags.n; i++)
        if (!record_has_tag(doc, f->tags.items[i]))
            return 0;
    char **keys = realloc(f->keys, (f->n + 1) * sizeof(*keys));
    char *copy = keys ? strndup(key, len) : NULL;
    if (keys)
        f->keys = keys;
    if (!copy) {
        f->failed = 1;
        return 1;
    }
    f->keys[f->n++] = copy;
    return 0;
}

/* sluice runs list [--pipeline NAME] [--status S] [--tag K=V]... [--limit N]:
 * newest first. A store with no runs yet is an empty list, not an error, so
 * that CI can ask before the first run. */
static int runs_list(const cli_globals *g, int json, run_filter *f, long limit) {
    meta_db m;
    MDB_txn *txn = NULL;
    int open = inspect_begin_ex(g->store, 1, &m, &txn);
    if (open == EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT;
    if (open == 0 && meta_each(txn, m.runs, "", keep_run, f) != 0 && !f->failed) {
        fprintf(stderr, "sluice runs: cannot read the metadata in %s\n", g->store);
        f->failed = 1;
    }
    if (f->failed) {
        if (open == 0)
            inspect_end(&m, txn);
        return EXIT_BAD_INPUT;
    }
    bson_t doc = BSON_INITIALIZER, array;
    if (json)
        BSON_APPEND_ARRAY_BEGIN(&doc, "runs", &array);
    else
        printf("%-24s %-22s %-12s %-20s %9s %5s\n", "RUN", "PIPELINE", "STATUS", "STARTED", "TOOK",
               "STEPS");
    for (size_t i = f->n; i > 0 && (limit < 0 || (long)(f->n - i) < limit); i--) {
        bson_t run;
        if (meta_get(txn, m.runs, f->keys[i - 1], &run) != 0)
            continue;
        if (json) {
            char idx[16];
            const char *k;
            bson_uint32_to_string(bson_count_keys(&array), &k, idx, sizeof(idx));
            bson_t item;
            BSON_APPEND_DOCUMENT_BEGIN(&array, k, &item);
            BSON_APPEND_UTF8(&item, "run", f->keys[i - 1]);
            append_run_fields(&item, &run);
            bson_append_document_end(&array, &item);
        } else {
            print_run(f->keys[i - 1], &run);
        }
    }
    if (json) {
        bson_append_array_end(&doc, &array);
        inspect_print_json(&doc);
    }
    bson_destroy(&doc);
    if (open == 0)
        inspect_end(&m, txn);
    return EXIT_DONE;
}

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
            printf("      metric %s = %g%s\n", last_key, last,
                   count > 1 ? " (last of a series)" : "");
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
    /* What started it: a schedule's fire, a commit, an artifact. */
    if (bson_iter_init_find(&it, run, "cause") && bson_iter_recurse(&it, &field)) {
        printf("  cause");
        while (bson_iter_next(&field))
            if (BSON_ITER_HOLDS_UTF8(&field))
                printf(" %s=%s", bson_iter_key(&field), bson_iter_utf8(&field, NULL));
        printf("\n");
    }
}

static void print_step(const char *key, const bson_t *doc) {
    const char *slash = strchr(key, '/');
    const char *id = slash ? slash + 1 : key;
    double start = inspect_num(doc, "started"), end = inspect_num(doc, "finished");
    char took[32] = "-";
    if (start > 0 && end > 0)
        snprintf(took, sizeof(took), "%.2fs", end - start);
    const char *status = inspect_str(doc, "status", "?");
    printf("  %-24s %-10s %8s  attempts %.0f", id, status, took, inspect_num(doc, "attempts"));
    const char *from = inspect_str(doc, "cached_from", NULL);
    const char *error = inspect_str(doc, "error", NULL);
    if (from)
        printf("  from %s", from);
    else if (error)
        printf("  %s", error);
    printf("\n");
    const char *job = inspect_str(doc, "job_id", NULL), *node = inspect_str(doc, "node", NULL);
    if (job)
        printf("    slurm job %s%s%s\n", job, node ? " on " : "", node ? node : "");
    print_ports(doc, "inputs", "in ");
    print_ports(doc, "outputs", "out");
    print_metrics(doc);
}

/* The run's pipeline parameters, one per line, values as JSON. */
static void print_params(const bson_t *run) {
    bson_iter_t it;
    bson_t params;
    uint32_t len;
    const uint8_t *data;
    if (!bson_iter_init_find(&it, run, "params") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&params, data, len) || bson_count_keys(&params) == 0)
        return;
    /* Each value alone, as the JSON of a one-field document, cut to its value. */
    bson_iter_t p;
    bson_iter_init(&p, &params);
    while (bson_iter_next(&p)) {
        bson_t one = BSON_INITIALIZER;
        bson_append_iter(&one, "v", 1, &p);
        size_t n;
        char *json = bson_as_relaxed_extended_json(&one, &n);
        const char *v = json ? strstr(json, "\"v\" : ") : NULL;
        if (v && n > 2) {
            v += 6;
            const char *origin = NULL;
            bson_iter_t o;
            if (bson_iter_init_find(&o, run, "param_origins") && BSON_ITER_HOLDS_DOCUMENT(&o)) {
                bson_iter_t f;
                if (bson_iter_recurse(&o, &f) && bson_iter_find(&f, bson_iter_key(&p)) &&
                    BSON_ITER_HOLDS_UTF8(&f))
                    origin = bson_iter_utf8(&f, NULL);
            }
            printf("  param %s = %.*s%s%s%s\n", bson_iter_key(&p), (int)(json + n - 2 - v), v,
                   origin ? "  (" : "", origin ? origin : "", origin ? ")" : "");
        }
        bson_free(json);
        bson_destroy(&one);
    }
}

/* The length of the fan-out step ID (ID[i] as recorded) row's key names. */
static size_t group_len(const char *key) {
    const char *slash = strchr(key, '/'), *id = slash ? slash + 1 : key;
    const char *open = strrchr(id, '[');
    size_t len = strlen(id);
    if (!open || open == id || id[len - 1] != ']' ||
        strspn(open + 1, "0123456789") != (size_t)(id + len - 1 - open - 1))
        return 0;
    return (size_t)(open - key);
}

/* How many rows from the first are instances of one fan-out step (0 when
 * the first is an ordinary step). */
static size_t instance_rows(const step_row *rows, size_t n) {
    size_t len = group_len(rows[0].key), k = 1;
    if (!len)
        return 0;
    while (k < n && group_len(rows[k].key) == len && strncmp(rows[k].key, rows[0].key, len) == 0)
        k++;
    return k;
}

/* A fan-out step's instances as one line, "ID[0..N-1]  N instances: 2 done,
 * 1 cached", then each instance that did not succeed, in full (all of them
 * are in --json). */
static void print_instances(MDB_txn *txn, const meta_db *m, const step_row *rows, size_t n) {
    const char *id = strchr(rows[0].key, '/') + 1;
    size_t len = group_len(rows[0].key) - (size_t)(id - rows[0].key);
    size_t done = 0, cached = 0, low = SIZE_MAX, high = 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = strtoul(strrchr(rows[i].key, '[') + 1, NULL, 10);
        low = at < low ? at : low;
        high = at > high ? at : high;
        bson_t rec;
        if (meta_get(txn, m->steps, rows[i].key, &rec) != 0)
            continue;
        const char *status = inspect_str(&rec, "status", "?");
        done += strcmp(status, "done") == 0;
        cached += strcmp(status, "cached") == 0;
    }
    char label[PIPELINE_MAX_ID + 48];
    snprintf(label, sizeof(label), "%.*s[%zu..%zu]", (int)len, id, low, high);
    printf("  %-24s %zu instance%s: %zu done, %zu cached", label, n, n == 1 ? "" : "s", done,
           cached);
    if (done + cached < n)
        printf(", %zu other", n - done - cached);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        bson_t rec;
        if (meta_get(txn, m->steps, rows[i].key, &rec) != 0)
            continue;
        const char *status = inspect_str(&rec, "status", "?");
        if (strcmp(status, "done") && strcmp(status, "cached"))
            print_step(rows[i].key, &rec);
    }
}

static int runs_show(const cli_globals *g, int json, const char *spec) {
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char id[256];
    bson_t run;
    step_rows steps = {0};
    int status = inspect_resolve(txn, m.runs, "run", spec, id, sizeof(id));
    if (status == 0 && (meta_get(txn, m.runs, id, &run) != 0 ||
                        run_steps_collect(txn, &m, id, &run, &steps) != 0)) {
        fprintf(stderr, "sluice runs: cannot read run %s in %s\n", id, g->store);
        status = EXIT_BAD_INPUT;
    }
    if (status == 0 && json) {
        bson_t doc = BSON_INITIALIZER, arr;
        BSON_APPEND_UTF8(&doc, "run", id);
        append_run_fields(&doc, &run);
        BSON_APPEND_ARRAY_BEGIN(&doc, "step_runs", &arr);
        for (size_t i = 0; i < steps.n; i++) {
            bson_t rec;
            const char *sid = strchr(steps.rows[i].key, '/') + 1;
            if (meta_get(txn, m.steps, steps.rows[i].key, &rec) == 0)
                inspect_append_item(&arr, "step", sid, strlen(sid), &rec);
        }
        bson_append_array_end(&doc, &arr);
        inspect_print_json(&doc);
        bson_destroy(&doc);
    } else if (status == 0) {
        char started[32];
        inspect_time(inspect_num(&run, "started"), started, sizeof(started));
        printf("run %s: pipeline %s (%s), %s, started %s\n", id, inspect_str(&run, "pipeline", "?"),
               inspect_str(&run, "file", "?"), run_status(&run), started);
        print_run_origin(&run);
        print_params(&run);
        for (size_t i = 0; i < steps.n;) {
            size_t n = instance_rows(steps.rows + i, steps.n - i);
            if (n) {
                print_instances(txn, &m, steps.rows + i, n);
                i += n;
                continue;
            }
            bson_t rec;
            if (meta_get(txn, m.steps, steps.rows[i].key, &rec) == 0)
                print_step(steps.rows[i].key, &rec);
            i++;
        }
    }
    run_steps_free(&steps);
    inspect_end(&m, txn);
    return status;
}

/* ---- diff ----------------------------------------------------------------- */

/* What 'runs diff' compares of a run, each flat: params {NAME, STEP.NAME},
 * metrics {STEP.KEY: the last value}, artifacts {STEP.OUTPUT: hash}. */
typedef struct run_sides {
    bson_t params, metrics, artifacts;
    bson_t origins; /* NAME: where the run's parameter came from */
} run_sides;

static void flat_append(bson_t *out, const char *prefix, const bson_t *doc, const char *key) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, doc, key) || !bson_iter_recurse(&it, &sub))
        return;
    while (bson_iter_next(&sub)) {
        if (!strcmp(key, "outputs") && !BSON_ITER_HOLDS_UTF8(&sub))
            continue;
        char name[512];
        snprintf(name, sizeof(name), "%s%s%s", prefix ? prefix : "", prefix ? "." : "",
                 bson_iter_key(&sub));
        bson_append_iter(out, name, -1, &sub);
    }
}

static int side_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    run_sides *s = ud;
    const char *slash = memchr(key, '/', len);
    char id[300];
    snprintf(id, sizeof(id), "%.*s", slash ? (int)(key + len - slash - 1) : (int)len,
             slash ? slash + 1 : key);
    flat_append(&s->params, id, doc, "params");
    flat_append(&s->artifacts, id, doc, "outputs");
    /* A series counts by its last point, as 'runs show' prints it. */
    bson_t last;
    record_last_metrics(doc, &last);
    bson_t wrapped = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT(&wrapped, "m", &last);
    flat_append(&s->metrics, id, &wrapped, "m");
    bson_destroy(&wrapped);
    bson_destroy(&last);
    return 0;
}

static int read_sides(MDB_txn *txn, const meta_db *m, const char *id, run_sides *s) {
    bson_init(&s->params);
    bson_init(&s->metrics);
    bson_init(&s->artifacts);
    bson_init(&s->origins);
    bson_t run;
    if (meta_get(txn, m->runs, id, &run) != 0)
        return -1;
    flat_append(&s->params, NULL, &run, "params");
    flat_append(&s->origins, NULL, &run, "param_origins");
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s/", id);
    return meta_each(txn, m->steps, prefix, side_step, s);
}

static void free_sides(run_sides *s) {
    bson_destroy(&s->params);
    bson_destroy(&s->metrics);
    bson_destroy(&s->artifacts);
    bson_destroy(&s->origins);
}

/* The diff entries of pipeline parameters with where each side's value
 * came from (a_origin, b_origin), for runs that recorded it. */
static void with_origins(const bson_t *entries, const run_sides *a, const run_sides *b,
                         bson_t *out) {
    bson_iter_t it, e, o;
    bson_iter_init(&it, entries);
    while (bson_iter_next(&it)) {
        bson_t one;
        if (!bson_iter_recurse(&it, &e))
            continue;
        BSON_APPEND_DOCUMENT_BEGIN(out, bson_iter_key(&it), &one);
        const char *name = NULL;
        while (bson_iter_next(&e)) {
            if (strcmp(bson_iter_key(&e), "name") == 0 && BSON_ITER_HOLDS_UTF8(&e))
                name = bson_iter_utf8(&e, NULL);
            bson_append_iter(&one, NULL, 0, &e);
        }
        const run_sides *sides[2] = {a, b};
        for (int k = 0; name && k < 2; k++)
            if (bson_iter_init_find(&o, &sides[k]->origins, name) && BSON_ITER_HOLDS_UTF8(&o))
                BSON_APPEND_UTF8(&one, k ? "b_origin" : "a_origin", bson_iter_utf8(&o, NULL));
        bson_append_document_end(out, &one);
    }
}

static int runs_diff(const cli_globals *g, int json, const char *spec_a, const char *spec_b) {
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char a[256], b[256];
    run_sides sa, sb;
    int status = inspect_resolve(txn, m.runs, "run", spec_a, a, sizeof(a));
    if (status == 0)
        status = inspect_resolve(txn, m.runs, "run", spec_b, b, sizeof(b));
    if (status) {
        inspect_end(&m, txn);
        return status;
    }
    if (read_sides(txn, &m, a, &sa) != 0 || read_sides(txn, &m, b, &sb) != 0) {
        fprintf(stderr, "sluice runs: cannot read runs %s and %s in %s\n", a, b, g->store);
        status = EXIT_BAD_INPUT;
    }
    bson_t out = BSON_INITIALIZER, arr;
    BSON_APPEND_UTF8(&out, "a", a);
    BSON_APPEND_UTF8(&out, "b", b);
    const struct {
        const char *key;
        const bson_t *x, *y;
    } parts[] = {{"params", &sa.params, &sb.params},
                 {"metrics", &sa.metrics, &sb.metrics},
                 {"artifacts", &sa.artifacts, &sb.artifacts}};
    if (status == 0 && !json)
        printf("run %s -> run %s\n", a, b);
    for (size_t i = 0; status == 0 && i < sizeof(parts) / sizeof(parts[0]); i++) {
        bson_t one = BSON_INITIALIZER;
        diff_docs(parts[i].x, parts[i].y, i == 1, &one);
        if (i == 0) {
            bson_t annotated = BSON_INITIALIZER;
            with_origins(&one, &sa, &sb, &annotated);
            bson_destroy(&one);
            bson_copy_to(&annotated, &one);
            bson_destroy(&annotated);
        }
        BSON_APPEND_ARRAY(&out, parts[i].key, &one);
        if (!json)
            diff_print(parts[i].key, &one);
        bson_destroy(&one);
    }
    (void)arr;
    if (status == 0 && json)
        inspect_print_json(&out);
    bson_destroy(&out);
    free_sides(&sa);
    free_sides(&sb);
    inspect_end(&m, txn);
    return status;
}

int cmd_runs(const cli_globals *g, int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_PIPELINE, OPT_STATUS, OPT_TAG, OPT_LIMIT };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"status", required_argument, NULL, OPT_STATUS},
        {"tag", required_argument, NULL, OPT_TAG},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {NULL, 0, NULL, 0},
    };
    run_filter f = {0};
    long limit = -1;
    int c, json = 0, bad = 0, filtered = 0;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        char *end;
        filtered |= c != OPT_JSON;
        switch (c) {
        case OPT_JSON:
            json = 1;
            break;
        case OPT_PIPELINE:
            f.pipeline = optarg;
            break;
        case OPT_STATUS:
            f.status = optarg;
            break;
        case OPT_TAG:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                fprintf(stderr, "sluice runs: --tag takes KEY=VALUE, not '%s'\n", optarg);
                bad = 1;
            } else {
                bad = cli_params_add(&f.tags, optarg) != 0;
            }
            break;
        case OPT_LIMIT:
            limit = strtol(optarg, &end, 10);
            if (*end || !*optarg || limit < 0) {
                fprintf(stderr, "sluice runs: --limit takes a number from 0, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        default:
            bad = 1;
        }
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    int is_list = sub && strcmp(sub, "list") == 0 && argc - optind == 1;
    int is_show = sub && strcmp(sub, "show") == 0 && argc - optind == 2 && !filtered;
    int is_diff = sub && strcmp(sub, "diff") == 0 && argc - optind == 3 && !filtered;
    int status = EXIT_BAD_INPUT;
    if (!bad && !is_list && !is_show && !is_diff)
        fprintf(stderr, "sluice runs: use 'runs list [--pipeline NAME] [--status S] [--tag K=V]... "
                        "[--limit N]', 'runs show RUN' or 'runs diff RUN_A RUN_B' (see 'sluice "
                        "runs --help')\n");
    else if (!bad && is_diff)
        status = runs_diff(g, json, argv[optind + 1], argv[optind + 2]);
    else if (!bad && is_list)
        status = runs_list(g, json, &f, limit);
    else if (!bad)
        status = runs_show(g, json, argv[optind + 1]);
    for (size_t i = 0; i < f.n; i++)
        free(f.keys[i]);
    free(f.keys);
    cli_params_free(&f.tags);
    return status;
}
