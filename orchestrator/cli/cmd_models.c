/* cmd_models.c - sluice models list | show | promote | diff: the model
 * registry (metadata/modelreg.h, docs/registry.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "diff.h"
#include "fsutil.h"
#include "inspect.h"
#include "modelreg.h"

#define ALIASES_MAX 32

/* The aliases that point at version of name. */
typedef struct alias_scan {
    int version;
    char names[ALIASES_MAX][MODELREG_MAX_NAME + 1];
    size_t n;
} alias_scan;

static int scan_alias(void *ud, const char *key, size_t len, const bson_t *doc) {
    alias_scan *s = ud;
    const char *last = key + len;
    while (last > key && last[-1] != '/')
        last--;
    if ((int)inspect_num(doc, "version") == s->version && s->n < ALIASES_MAX)
        snprintf(s->names[s->n++], sizeof(s->names[0]), "%.*s", (int)(key + len - last), last);
    return 0;
}

static void find_aliases(meta_db *m, MDB_txn *txn, const char *name, int version, alias_scan *s) {
    char prefix[MODELREG_MAX_NAME + 16];
    snprintf(prefix, sizeof(prefix), "%s/alias/", name);
    s->version = version;
    s->n = 0;
    modelreg_each(m, txn, prefix, scan_alias, s);
}

/* The audit entries that concern version (it, or it as the previous). */
typedef struct audit_scan {
    int version;
    bson_t *array; /* JSON; NULL: print */
    uint32_t n;
} audit_scan;

static int scan_audit_entry(void *ud, const char *key, size_t len, const bson_t *doc) {
    audit_scan *s = ud;
    (void)key;
    (void)len;
    int v = (int)inspect_num(doc, "version"), prev = (int)inspect_num(doc, "previous");
    if (v != s->version && prev != s->version)
        return 0;
    if (s->array) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(s->n++, &k, idx, sizeof(idx));
        BSON_APPEND_DOCUMENT(s->array, k, doc);
        return 0;
    }
    char when[32];
    inspect_time(inspect_num(doc, "time"), when, sizeof(when));
    const char *reason = inspect_str(doc, "reason", "");
    if (prev)
        printf("    %s  %s: version %d -> %d  by %s%s%s\n", when, inspect_str(doc, "alias", "?"),
               prev, v, inspect_str(doc, "who", "?"), reason[0] ? ": " : "", reason);
    else
        printf("    %s  %s: -> version %d  by %s%s%s\n", when, inspect_str(doc, "alias", "?"), v,
               inspect_str(doc, "who", "?"), reason[0] ? ": " : "", reason);
    return 0;
}

/* The deployments of a version (the deploy step's records), each with
 * whether its server's pid still runs. */
typedef struct deploy_scan {
    int version;
    bson_t *array; /* JSON; NULL: print */
    uint32_t n;
} deploy_scan;

static int scan_deployment(void *ud, const char *key, size_t len, const bson_t *doc) {
    deploy_scan *s = ud;
    (void)key;
    (void)len;
    if ((int)inspect_num(doc, "version") != s->version)
        return 0;
    long pid = (long)inspect_num(doc, "pid");
    int running = process_running(pid);
    if (s->array) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(s->n++, &k, idx, sizeof(idx));
        bson_t item;
        BSON_APPEND_DOCUMENT_BEGIN(s->array, k, &item);
        bson_concat(&item, doc);
        BSON_APPEND_BOOL(&item, "running", running);
        bson_append_document_end(s->array, &item);
        return 0;
    }
    char when[32];
    inspect_time(inspect_num(doc, "time"), when, sizeof(when));
    printf("  deployed at %s as %s (%s, pid %ld, %s), %s by %s\n", inspect_str(doc, "url", "?"),
           inspect_str(doc, "alias", "?"), inspect_str(doc, "action", "?"), pid,
           running ? "running" : "not running", when, inspect_str(doc, "who", "?"));
    return 0;
}

static void find_deployments(meta_db *m, MDB_txn *txn, const char *name, int version,
                             bson_t *array) {
    char prefix[MODELREG_MAX_NAME + 16];
    snprintf(prefix, sizeof(prefix), "%s/deploy/", name);
    deploy_scan s = {version, array, 0};
    modelreg_each(m, txn, prefix, scan_deployment, &s);
}

/* A version as JSON: its record, its aliases and its metrics (and, with
 * audit, the alias changes that concern it). */
static void version_json(meta_db *m, MDB_txn *txn, const bson_t *rec, int audit, bson_t *out) {
    const char *name = inspect_str(rec, "name", "");
    int version = (int)inspect_num(rec, "version");
    bson_iter_t it;
    if (bson_iter_init(&it, rec)) {
        while (bson_iter_next(&it)) {
            if (strcmp(bson_iter_key(&it), "inputs") != 0)
                bson_append_iter(out, NULL, 0, &it);
            else
                bson_append_iter(out, "datasets", 8, &it);
        }
    }
    alias_scan as;
    find_aliases(m, txn, name, version, &as);
    bson_t arr, metrics, from;
    BSON_APPEND_ARRAY_BEGIN(out, "aliases", &arr);
    for (size_t i = 0; i < as.n; i++) {
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        BSON_APPEND_UTF8(&arr, k, as.names[i]);
    }
    bson_append_array_end(out, &arr);
    modelreg_metrics(m, txn, inspect_str(rec, "artifact", ""), &metrics, &from);
    BSON_APPEND_DOCUMENT(out, "metrics", &metrics);
    BSON_APPEND_ARRAY(out, "metrics_from", &from);
    bson_destroy(&metrics);
    bson_destroy(&from);
    if (audit) {
        char prefix[MODELREG_MAX_NAME + 16];
        snprintf(prefix, sizeof(prefix), "%s/audit/", name);
        BSON_APPEND_ARRAY_BEGIN(out, "audit", &arr);
        audit_scan s = {version, &arr, 0};
        modelreg_each(m, txn, prefix, scan_audit_entry, &s);
        bson_append_array_end(out, &arr);
        BSON_APPEND_ARRAY_BEGIN(out, "deployments", &arr);
        find_deployments(m, txn, name, version, &arr);
        bson_append_array_end(out, &arr);
    }
}

static void print_aliases(const alias_scan *as) {
    for (size_t i = 0; i < as->n; i++)
        printf("%s%s", i ? "," : "", as->names[i]);
    if (!as->n)
        printf("-");
}

/* ---- list ---------------------------------------------------------------- */

typedef struct list_ctx {
    meta_db *m;
    MDB_txn *txn;
    const char *only; /* a name, or NULL */
    bson_t *array;    /* JSON, or NULL */
} list_ctx;

static int list_version(void *ud, const char *key, size_t len, const bson_t *doc) {
    list_ctx *l = ud;
    const char *v = memchr(key, '/', len);
    if (!v || (size_t)(key + len - v) < 3 || strncmp(v, "/v/", 3) != 0)
        return 0; /* an alias or an audit entry */
    const char *name = inspect_str(doc, "name", "");
    if (l->only && strcmp(name, l->only) != 0)
        return 0;
    if (l->array) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(bson_count_keys(l->array), &k, idx, sizeof(idx));
        bson_t item;
        BSON_APPEND_DOCUMENT_BEGIN(l->array, k, &item);
        version_json(l->m, l->txn, doc, 0, &item);
        bson_append_document_end(l->array, &item);
        return 0;
    }
    alias_scan as;
    int version = (int)inspect_num(doc, "version");
    find_aliases(l->m, l->txn, name, version, &as);
    char created[32];
    inspect_time(inspect_num(doc, "created"), created, sizeof(created));
    printf("%-20s %7d  %-20s %-24s %-20s %.12s  ", name, version, created,
           inspect_str(doc, "run", "?"), inspect_str(doc, "step", "?"),
           inspect_str(doc, "artifact", "?"));
    print_aliases(&as);
    printf("\n");
    return 0;
}

static int models_list(const cli_globals *g, const char *name, int json) {
    meta_db m;
    MDB_txn *txn = NULL;
    int open = inspect_begin_ex(g->store, 1, &m, &txn);
    if (open == EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT;
    bson_t doc = BSON_INITIALIZER, arr;
    list_ctx l = {&m, txn, name, json ? &arr : NULL};
    if (json)
        BSON_APPEND_ARRAY_BEGIN(&doc, "models", &arr);
    else
        printf("%-20s %7s  %-20s %-24s %-20s %-12s  %s\n", "MODEL", "VERSION", "CREATED", "RUN",
               "STEP", "ARTIFACT", "ALIASES");
    /* Version keys are zero-padded: key order is version order. */
    if (open == 0)
        modelreg_each(&m, txn, "", list_version, &l);
    if (json) {
        bson_append_array_end(&doc, &arr);
        inspect_print_json(&doc);
    }
    bson_destroy(&doc);
    if (open == 0)
        inspect_end(&m, txn);
    return EXIT_DONE;
}

/* ---- show ---------------------------------------------------------------- */

static void print_value_lines(const bson_t *rec, const char *key, const char *label) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, rec, key) || !bson_iter_recurse(&it, &sub))
        return;
    while (bson_iter_next(&sub)) {
        char *v = diff_value_text(&sub);
        printf("  %s %s = %s\n", label, bson_iter_key(&sub), v ? v : "?");
        free(v);
    }
}

/* The next {port, artifact, type} of a version's inputs into *in
 * (borrowing the record); 0 at their end. */
static int next_input(bson_iter_t *sub, bson_t *in) {
    while (bson_iter_next(sub)) {
        uint32_t len;
        const uint8_t *data;
        if (!BSON_ITER_HOLDS_DOCUMENT(sub))
            continue;
        bson_iter_document(sub, &len, &data);
        if (bson_init_static(in, data, len))
            return 1;
    }
    return 0;
}

static void print_version(meta_db *m, MDB_txn *txn, const bson_t *rec) {
    const char *name = inspect_str(rec, "name", "");
    int version = (int)inspect_num(rec, "version");
    alias_scan as;
    find_aliases(m, txn, name, version, &as);
    char created[32];
    inspect_time(inspect_num(rec, "created"), created, sizeof(created));
    printf("model %s version %d, aliases ", name, version);
    print_aliases(&as);
    printf("\n  artifact %s\n  made by %s/%s.%s, %s\n", inspect_str(rec, "artifact", "?"),
           inspect_str(rec, "run", "?"), inspect_str(rec, "step", "?"),
           inspect_str(rec, "output", "?"), created);
    bson_iter_t it, sub;
    if (bson_iter_init_find(&it, rec, "git") && bson_iter_recurse(&it, &sub) &&
        bson_iter_find(&sub, "commit") && BSON_ITER_HOLDS_UTF8(&sub))
        printf("  git %.12s\n", bson_iter_utf8(&sub, NULL));
    print_value_lines(rec, "params", "param");
    bson_t in;
    if (bson_iter_init_find(&it, rec, "inputs") && bson_iter_recurse(&it, &sub))
        while (next_input(&sub, &in))
            printf("  input %s: %.12s (%s)\n", inspect_str(&in, "port", "?"),
                   inspect_str(&in, "artifact", "?"), inspect_str(&in, "type", "?"));
    bson_t metrics, from;
    modelreg_metrics(m, txn, inspect_str(rec, "artifact", ""), &metrics, &from);
    if (bson_iter_init(&it, &metrics))
        while (bson_iter_next(&it))
            printf("  metric %s = %g\n", bson_iter_key(&it), bson_iter_as_double(&it));
    if (bson_count_keys(&metrics) == 0)
        printf("  metrics: none yet (no evaluation has read this model)\n");
    if (bson_iter_init(&it, &from))
        while (bson_iter_next(&it))
            printf("  metrics from %s\n", bson_iter_utf8(&it, NULL));
    bson_destroy(&metrics);
    bson_destroy(&from);
    find_deployments(m, txn, name, version, NULL);
    printf("  alias changes:\n");
    char prefix[MODELREG_MAX_NAME + 16];
    snprintf(prefix, sizeof(prefix), "%s/audit/", name);
    audit_scan s = {version, NULL, 0};
    modelreg_each(m, txn, prefix, scan_audit_entry, &s);
}

/* Opens the store read-only and resolves spec; prints why not. */
static int open_version(const cli_globals *g, const char *spec, meta_db *m, MDB_txn **txn,
                        bson_t *rec) {
    if (inspect_begin(g->store, m, txn))
        return EXIT_BAD_INPUT;
    char name[MODELREG_MAX_NAME + 1], why[512] = "";
    int version;
    int rc = modelreg_resolve(m, *txn, spec, name, &version, why, sizeof(why));
    if (rc == 0 && modelreg_get_version(m, *txn, name, version, rec) != 0)
        rc = -EIO;
    if (rc) {
        fprintf(stderr, "sluice models: %s\n", rc == -EIO || !why[0] ? meta_strerror(rc) : why);
        inspect_end(m, *txn);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

static int models_show(const cli_globals *g, const char *spec, int json) {
    meta_db m;
    MDB_txn *txn;
    bson_t rec;
    if (open_version(g, spec, &m, &txn, &rec))
        return EXIT_BAD_INPUT;
    if (json) {
        bson_t out = BSON_INITIALIZER;
        version_json(&m, txn, &rec, 1, &out);
        inspect_print_json(&out);
        bson_destroy(&out);
    } else {
        print_version(&m, txn, &rec);
    }
    inspect_end(&m, txn);
    return EXIT_DONE;
}

/* ---- promote ------------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int models_promote(const cli_globals *g, const char *spec, const char *alias,
                          const cli_params *ifs, const char *better, const char *reason, int json) {
    const char *at = strchr(spec, '@');
    if (!at || !at[1]) {
        fprintf(stderr,
                "sluice models promote: name the version: NAME@VERSION or NAME@ALIAS, not "
                "'%s'\n",
                spec);
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    int rc = meta_open(&m, g->store, 0);
    if (rc) {
        fprintf(stderr, "sluice models promote: cannot open the metadata in %s: %s\n", g->store,
                meta_error(&m, rc));
        return EXIT_BAD_INPUT;
    }
    char name[MODELREG_MAX_NAME + 1], why[1024] = "";
    int version = 0, previous = 0;
    MDB_txn *txn;
    if ((rc = meta_begin(&m, 0, &txn)) == 0) {
        rc = modelreg_resolve(&m, txn, spec, name, &version, why, sizeof(why));
        meta_abort(txn);
    }
    char who[128];
    modelreg_user_name(who, sizeof(who));
    modelreg_promotion p = {.name = name,
                            .version = version,
                            .alias = alias,
                            .ifs = ifs->items,
                            .n_ifs = ifs->n,
                            .better_than = better,
                            .reason = reason,
                            .who = who,
                            .time = now_seconds()};
    if (rc == 0)
        rc = modelreg_promote(&m, &p, &version, &previous, why, sizeof(why));
    int status = rc == MODELREG_PROMOTED || rc == MODELREG_UNCHANGED ? EXIT_DONE
                 : rc == MODELREG_REFUSED                            ? EXIT_STEP_FAILED
                                                                     : EXIT_BAD_INPUT;
    if (status != EXIT_BAD_INPUT && json) {
        bson_t out = BSON_INITIALIZER, rec;
        BSON_APPEND_UTF8(&out, "alias", alias);
        BSON_APPEND_BOOL(&out, "promoted", rc == MODELREG_PROMOTED);
        BSON_APPEND_BOOL(&out, "unchanged", rc == MODELREG_UNCHANGED);
        if (rc == MODELREG_REFUSED)
            BSON_APPEND_UTF8(&out, "refused", why);
        else
            BSON_APPEND_NULL(&out, "refused");
        if (previous)
            BSON_APPEND_INT32(&out, "previous", previous);
        else
            BSON_APPEND_NULL(&out, "previous");
        if (meta_begin(&m, 0, &txn) == 0) {
            if (modelreg_get_version(&m, txn, name, version, &rec) == 0)
                version_json(&m, txn, &rec, 0, &out);
            meta_abort(txn);
        }
        inspect_print_json(&out);
        bson_destroy(&out);
    } else if (rc == MODELREG_PROMOTED) {
        if (previous)
            printf("%s@%d is now %s (it was version %d)\n", name, version, alias, previous);
        else
            printf("%s@%d is now %s\n", name, version, alias);
    } else if (rc == MODELREG_UNCHANGED) {
        printf("%s: nothing changed\n", why);
    }
    if (rc == MODELREG_REFUSED)
        fprintf(stderr, "sluice models promote: refused: %s\n", why);
    else if (status == EXIT_BAD_INPUT)
        fprintf(stderr, "sluice models promote: %s\n", why[0] ? why : meta_strerror(rc));
    meta_close(&m);
    return status;
}

/* ---- diff ---------------------------------------------------------------- */

/* A flat {NAME: value} of one of a version's fields (a document), or of its
 * inputs {port: artifact}. */
static void sub_doc(const bson_t *rec, const char *key, bson_t *out) {
    bson_iter_t it, sub;
    bson_init(out);
    if (!bson_iter_init_find(&it, rec, key) || !bson_iter_recurse(&it, &sub))
        return;
    if (strcmp(key, "inputs") != 0) {
        while (bson_iter_next(&sub))
            bson_append_iter(out, NULL, 0, &sub);
        return;
    }
    bson_t in;
    while (next_input(&sub, &in))
        BSON_APPEND_UTF8(out, inspect_str(&in, "port", "?"), inspect_str(&in, "artifact", ""));
}

static int models_diff(const cli_globals *g, const char *spec_a, const char *spec_b, int json) {
    meta_db m;
    MDB_txn *txn;
    bson_t a, b;
    if (open_version(g, spec_a, &m, &txn, &a))
        return EXIT_BAD_INPUT;
    char name[MODELREG_MAX_NAME + 1], why[512] = "";
    int version;
    int rc = modelreg_resolve(&m, txn, spec_b, name, &version, why, sizeof(why));
    if (rc == 0 && modelreg_get_version(&m, txn, name, version, &b) != 0)
        rc = -EIO;
    if (rc) {
        fprintf(stderr, "sluice models: %s\n", rc == -EIO || !why[0] ? meta_strerror(rc) : why);
        inspect_end(&m, txn);
        return EXIT_BAD_INPUT;
    }
    bson_t out = BSON_INITIALIZER, pa, pb, ma, mb, da, db, arr;
    bson_t who;
    BSON_APPEND_DOCUMENT_BEGIN(&out, "a", &who);
    BSON_APPEND_UTF8(&who, "name", inspect_str(&a, "name", ""));
    BSON_APPEND_INT32(&who, "version", (int32_t)inspect_num(&a, "version"));
    bson_append_document_end(&out, &who);
    BSON_APPEND_DOCUMENT_BEGIN(&out, "b", &who);
    BSON_APPEND_UTF8(&who, "name", inspect_str(&b, "name", ""));
    BSON_APPEND_INT32(&who, "version", (int32_t)inspect_num(&b, "version"));
    bson_append_document_end(&out, &who);
    sub_doc(&a, "params", &pa);
    sub_doc(&b, "params", &pb);
    modelreg_metrics(&m, txn, inspect_str(&a, "artifact", ""), &ma, NULL);
    modelreg_metrics(&m, txn, inspect_str(&b, "artifact", ""), &mb, NULL);
    sub_doc(&a, "inputs", &da);
    sub_doc(&b, "inputs", &db);
    const struct {
        const char *key;
        const bson_t *x, *y;
        int numeric;
    } parts[] = {{"params", &pa, &pb, 0}, {"metrics", &ma, &mb, 1}, {"datasets", &da, &db, 0}};
    if (!json)
        printf("%s@%.0f -> %s@%.0f\n", inspect_str(&a, "name", ""), inspect_num(&a, "version"),
               inspect_str(&b, "name", ""), inspect_num(&b, "version"));
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        BSON_APPEND_ARRAY_BEGIN(&out, parts[i].key, &arr);
        diff_docs(parts[i].x, parts[i].y, parts[i].numeric, &arr);
        bson_append_array_end(&out, &arr);
        if (!json) {
            bson_iter_t it;
            bson_t view;
            uint32_t len;
            const uint8_t *data;
            if (bson_iter_init_find(&it, &out, parts[i].key)) {
                bson_iter_array(&it, &len, &data);
                if (bson_init_static(&view, data, len))
                    diff_print(parts[i].key, &view);
            }
        }
    }
    if (json)
        inspect_print_json(&out);
    bson_t *all[] = {&out, &pa, &pb, &ma, &mb, &da, &db};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        bson_destroy(all[i]);
    inspect_end(&m, txn);
    return EXIT_DONE;
}

int cmd_models(const cli_globals *g, int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_IF, OPT_BETTER, OPT_REASON };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"if", required_argument, NULL, OPT_IF},
        {"better-than", required_argument, NULL, OPT_BETTER},
        {"reason", required_argument, NULL, OPT_REASON},
        {NULL, 0, NULL, 0},
    };
    cli_params ifs = {0};
    const char *better = NULL, *reason = NULL;
    int c, json = 0, bad = 0, gates = 0;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        gates |= c == OPT_IF || c == OPT_BETTER || c == OPT_REASON;
        if (c == OPT_JSON)
            json = 1;
        else if (c == OPT_IF)
            bad = cli_params_add(&ifs, optarg) != 0;
        else if (c == OPT_BETTER)
            better = optarg;
        else if (c == OPT_REASON)
            reason = optarg;
        else
            bad = 1;
    }
    const char *sub = optind < argc ? argv[optind] : "";
    int n = argc - optind;
    int status = EXIT_BAD_INPUT;
    if (bad) {
        /* reported */
    } else if (strcmp(sub, "promote") == 0 && n == 3) {
        status = models_promote(g, argv[optind + 1], argv[optind + 2], &ifs, better, reason, json);
    } else if (gates) {
        fprintf(stderr, "sluice models: --if, --better-than and --reason are for 'promote'\n");
    } else if (strcmp(sub, "list") == 0 && n <= 2) {
        status = models_list(g, n == 2 ? argv[optind + 1] : NULL, json);
    } else if (strcmp(sub, "show") == 0 && n == 2) {
        status = models_show(g, argv[optind + 1], json);
    } else if (strcmp(sub, "diff") == 0 && n == 3) {
        status = models_diff(g, argv[optind + 1], argv[optind + 2], json);
    } else {
        fprintf(stderr,
                "sluice models: use 'models list [NAME]', 'models show NAME[@VERSION|@ALIAS]', "
                "'models promote NAME@VERSION ALIAS [--if ...] [--better-than ...]' or "
                "'models diff A B' (see 'sluice models --help')\n");
    }
    cli_params_free(&ifs);
    return status;
}
