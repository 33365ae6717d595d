#include "modelreg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pwd.h>

#define VERSION_KEY "%s/v/%010d"
#define ALIAS_KEY "%s/alias/%s"
#define AUDIT_KEY "%s/audit/%010d"
#define DEPLOY_KEY "%s/deploy/%s"

int modelreg_name_ok(const char *s) {
    size_t n = 0;
    for (; s && s[n]; n++)
        if (!(islower((unsigned char)s[n]) || isdigit((unsigned char)s[n]) || s[n] == '_' ||
              s[n] == '-'))
            return 0;
    return n > 0 && n <= MODELREG_MAX_NAME;
}

/* An alias begins with a letter, so that NAME@3 is always a version. */
int modelreg_alias_ok(const char *s) { return modelreg_name_ok(s) && islower((unsigned char)s[0]); }

static const char *str_field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

static int int_field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)
               ? (int)bson_iter_as_int64(&it)
               : 0;
}

int modelreg_each(const meta_db *m, MDB_txn *txn, const char *prefix, meta_each_fn fn, void *ud) {
    return m->has_models ? meta_each(txn, m->models, prefix, fn, ud) : 0;
}

/* The versions of a name: the newest number, and the one of an artifact. */
typedef struct version_scan {
    const char *artifact; /* or NULL */
    int newest, found;
} version_scan;

static int scan_version(void *ud, const char *key, size_t len, const bson_t *doc) {
    version_scan *s = ud;
    (void)key;
    (void)len;
    int v = int_field(doc, "version");
    if (v > s->newest)
        s->newest = v;
    const char *a = str_field(doc, "artifact");
    if (s->artifact && a && strcmp(a, s->artifact) == 0)
        s->found = v;
    return 0;
}

static int scan_versions(const meta_db *m, MDB_txn *txn, const char *name, version_scan *s) {
    char prefix[MODELREG_MAX_NAME + 8];
    snprintf(prefix, sizeof(prefix), "%s/v/", name);
    return modelreg_each(m, txn, prefix, scan_version, s);
}

int modelreg_register(meta_db *m, MDB_txn *txn, const char *name, const char *artifact,
                      const char *output, const step_record *rec, int *version) {
    if (!modelreg_name_ok(name))
        return -EINVAL;
    if (!m->has_models)
        return -ENOENT; /* a read-only handle of an old store: no writer gets here */
    version_scan s = {artifact, 0, 0};
    int rc = scan_versions(m, txn, name, &s);
    if (rc)
        return rc;
    if (s.found) {
        *version = s.found;
        return 0;
    }
    *version = s.newest + 1;
    bson_t doc = BSON_INITIALIZER, inputs;
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_INT32(&doc, "version", *version);
    BSON_APPEND_UTF8(&doc, "artifact", artifact);
    /* The artifact's producer is the run that made it, also when this
     * step run reused it from the cache. */
    bson_t art;
    const char *run = rec->run_id, *step = rec->step_id;
    if (meta_get(txn, m->artifacts, artifact, &art) == 0 && str_field(&art, "run") &&
        str_field(&art, "step")) {
        run = str_field(&art, "run");
        step = str_field(&art, "step");
    }
    BSON_APPEND_UTF8(&doc, "run", run);
    BSON_APPEND_UTF8(&doc, "step", step);
    BSON_APPEND_UTF8(&doc, "output", output);
    if (rec->uses)
        BSON_APPEND_UTF8(&doc, "uses", rec->uses);
    if (rec->params) {
        BSON_APPEND_DOCUMENT(&doc, "params", rec->params);
    } else {
        bson_t empty = BSON_INITIALIZER;
        BSON_APPEND_DOCUMENT(&doc, "params", &empty);
    }
    BSON_APPEND_ARRAY_BEGIN(&doc, "inputs", &inputs);
    for (size_t i = 0, n = 0; i < rec->n_inputs; i++) {
        if (!rec->inputs[i].hash)
            continue;
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)n++, &k, idx, sizeof(idx));
        bson_t in, a;
        BSON_APPEND_DOCUMENT_BEGIN(&inputs, k, &in);
        BSON_APPEND_UTF8(&in, "port", rec->inputs[i].name);
        BSON_APPEND_UTF8(&in, "artifact", rec->inputs[i].hash);
        const char *type = meta_get(txn, m->artifacts, rec->inputs[i].hash, &a) == 0
                               ? str_field(&a, "type")
                               : NULL;
        BSON_APPEND_UTF8(&in, "type", type ? type : "any");
        bson_append_document_end(&inputs, &in);
    }
    bson_append_array_end(&doc, &inputs);
    bson_t run_doc;
    bson_iter_t it;
    if (meta_get(txn, m->runs, run, &run_doc) == 0 && bson_iter_init_find(&it, &run_doc, "git") &&
        BSON_ITER_HOLDS_DOCUMENT(&it))
        bson_append_iter(&doc, "git", 3, &it);
    BSON_APPEND_DOUBLE(&doc, "created", rec->finished);
    char key[MODELREG_MAX_NAME + 32];
    snprintf(key, sizeof(key), VERSION_KEY, name, *version);
    rc = meta_put(txn, m->models, key, &doc);
    bson_destroy(&doc);
    return rc;
}

int modelreg_version_of(const meta_db *m, MDB_txn *txn, const char *name, const char *artifact) {
    version_scan s = {artifact, 0, 0};
    int rc = scan_versions(m, txn, name, &s);
    return rc ? rc : s.found;
}

int modelreg_get_version(const meta_db *m, MDB_txn *txn, const char *name, int version,
                         bson_t *doc) {
    if (!m->has_models)
        return MDB_NOTFOUND;
    if (version <= 0) {
        version_scan s = {NULL, 0, 0};
        int rc = scan_versions(m, txn, name, &s);
        if (rc)
            return rc;
        if (!s.newest)
            return MDB_NOTFOUND;
        version = s.newest;
    }
    char key[MODELREG_MAX_NAME + 32];
    snprintf(key, sizeof(key), VERSION_KEY, name, version);
    return meta_get(txn, m->models, key, doc);
}

int modelreg_alias_version(const meta_db *m, MDB_txn *txn, const char *name, const char *alias) {
    if (!m->has_models)
        return 0;
    char key[2 * MODELREG_MAX_NAME + 16];
    snprintf(key, sizeof(key), ALIAS_KEY, name, alias);
    bson_t doc;
    int rc = meta_get(txn, m->models, key, &doc);
    return rc == MDB_NOTFOUND ? 0 : rc ? rc : int_field(&doc, "version");
}

int modelreg_resolve(const meta_db *m, MDB_txn *txn, const char *spec, char *name, int *version,
                     char *why, size_t why_size) {
    const char *at = strchr(spec, '@');
    size_t len = at ? (size_t)(at - spec) : strlen(spec);
    snprintf(name, MODELREG_MAX_NAME + 1, "%.*s", (int)len, spec);
    if (len > MODELREG_MAX_NAME || !modelreg_name_ok(name)) {
        snprintf(why, why_size, "'%s' is no model name ([a-z0-9_-], at most 64)", spec);
        return -EINVAL;
    }
    *version = 0;
    const char *what = at ? at + 1 : "";
    if (*what) {
        char *end;
        long v = strtol(what, &end, 10);
        if (!*end && v > 0 && v < 1000000000) {
            *version = (int)v;
        } else if (modelreg_alias_ok(what)) {
            int rc = modelreg_alias_version(m, txn, name, what);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                snprintf(why, why_size, "model %s has no alias '%s'", name, what);
                return -ENOENT;
            }
            *version = rc;
        } else {
            snprintf(why, why_size, "'%s': after '@' comes a version number or an alias", spec);
            return -EINVAL;
        }
    }
    bson_t doc;
    int rc = modelreg_get_version(m, txn, name, *version, &doc);
    if (rc == MDB_NOTFOUND) {
        if (*version)
            snprintf(why, why_size, "model %s has no version %d", name, *version);
        else
            snprintf(why, why_size, "no model is called '%s'", name);
        return -ENOENT;
    }
    if (rc == 0)
        *version = int_field(&doc, "version");
    return rc;
}

/* ---- metrics ----------------------------------------------------------- */

typedef struct figure {
    char key[128];
    double value;
} figure;

typedef struct figures {
    figure *items;
    size_t n;
    int failed;
} figures;

static void figures_set(figures *f, const char *key, double value) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->items[i].key, key) == 0) {
            f->items[i].value = value;
            return;
        }
    figure *grown = realloc(f->items, (f->n + 1) * sizeof(*grown));
    if (!grown) {
        f->failed = 1;
        return;
    }
    f->items = grown;
    snprintf(f->items[f->n].key, sizeof(f->items[0].key), "%s", key);
    f->items[f->n++].value = value;
}

typedef struct metric_scan {
    meta_db *m;
    MDB_txn *txn;
    figures f;
    bson_t *from;
    uint32_t n_from;
} metric_scan;

/* Whether a step run made a model: then it trained on the model it read,
 * and its figures (a loss curve) are not the model's. */
static int made_model(metric_scan *s, const bson_t *step) {
    bson_iter_t it, outs;
    if (!bson_iter_init_find(&it, step, "outputs") || !bson_iter_recurse(&it, &outs))
        return 0;
    while (bson_iter_next(&outs)) {
        bson_t art;
        const char *type;
        if (BSON_ITER_HOLDS_UTF8(&outs) &&
            meta_get(s->txn, s->m->artifacts, bson_iter_utf8(&outs, NULL), &art) == 0 &&
            (type = str_field(&art, "type")) && strcmp(type, "model") == 0)
            return 1;
    }
    return 0;
}

static int scan_consumer(void *ud, const char *key, size_t len, const bson_t *doc) {
    metric_scan *s = ud;
    (void)doc;
    const char *slash = memchr(key, '/', len);
    if (!slash)
        return 0;
    char step_key[512];
    snprintf(step_key, sizeof(step_key), "%.*s", (int)(len - (size_t)(slash + 1 - key)), slash + 1);
    bson_t step;
    if (meta_get(s->txn, s->m->steps, step_key, &step) != 0)
        return 0;
    const char *status = str_field(&step, "status");
    if (!status || (strcmp(status, "done") != 0 && strcmp(status, "cached") != 0) ||
        made_model(s, &step))
        return 0;
    bson_t last;
    bson_iter_t it;
    if (record_last_metrics(&step, &last) != 0)
        s->f.failed = 1;
    int any = 0;
    if (bson_iter_init(&it, &last))
        while (bson_iter_next(&it)) {
            figures_set(&s->f, bson_iter_key(&it), bson_iter_as_double(&it));
            any = 1;
        }
    bson_destroy(&last);
    if (any && s->from) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(s->n_from++, &k, idx, sizeof(idx));
        BSON_APPEND_UTF8(s->from, k, step_key);
    }
    return s->f.failed;
}

int modelreg_metrics(meta_db *m, MDB_txn *txn, const char *artifact, bson_t *out, bson_t *from) {
    bson_init(out);
    if (from)
        bson_init(from);
    char prefix[HASH_HEX_LEN + 2];
    snprintf(prefix, sizeof(prefix), "%s/", artifact);
    /* Consumers are keyed HASH/RUN/STEP and run ids sort by start: a newer
     * evaluation comes later and wins. */
    metric_scan s = {m, txn, {NULL, 0, 0}, from, 0};
    int rc = meta_each(txn, m->consumers, prefix, scan_consumer, &s);
    if (rc == 0 && s.f.failed)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s.f.n; i++)
        BSON_APPEND_DOUBLE(out, s.f.items[i].key, s.f.items[i].value);
    free(s.f.items);
    return rc;
}

/* ---- promotion --------------------------------------------------------- */

void modelreg_user_name(char *out, size_t size) {
    const char *user = getenv("USER");
    struct passwd *pw = user && *user ? NULL : getpwuid(getuid());
    if (user && *user)
        snprintf(out, size, "%s", user);
    else if (pw && pw->pw_name)
        snprintf(out, size, "%s", pw->pw_name);
    else
        snprintf(out, size, "uid %ld", (long)getuid());
}

int modelreg_lower_is_better(const char *metric) {
    static const char *const lower[] = {"loss",    "perplexity", "ppl", "error",
                                        "latency", "mse",        "mae"};
    char low[128];
    size_t n = 0;
    for (; metric[n] && n < sizeof(low) - 1; n++)
        low[n] = (char)tolower((unsigned char)metric[n]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof(lower) / sizeof(lower[0]); i++)
        if (strstr(low, lower[i]))
            return 1;
    return 0;
}

static int metric_of(const bson_t *figs, const char *key, double *v) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, figs, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        return 0;
    *v = bson_iter_as_double(&it);
    return 1;
}

typedef enum { OP_LE, OP_LT, OP_GE, OP_GT, OP_EQ, OP_NE } gate_op;
static const char *const op_text[] = {"<=", "<", ">=", ">", "==", "!="};

/* "METRIC OP VALUE" into its parts. Returns 0 or -EINVAL. */
static int parse_gate(const char *text, char *metric, size_t size, gate_op *op, double *value) {
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    const char *start = p;
    while (*p && !strchr("<>=! \t", *p))
        p++;
    size_t len = (size_t)(p - start);
    while (isspace((unsigned char)*p))
        p++;
    int found = 0;
    static const gate_op order[] = {OP_LE, OP_GE, OP_EQ, OP_NE, OP_LT, OP_GT}; /* longest first */
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !found; i++) {
        size_t ol = strlen(op_text[order[i]]);
        if (strncmp(p, op_text[order[i]], ol) == 0) {
            *op = order[i];
            p += ol;
            found = 1;
        }
    }
    if (!found || len == 0 || len >= size)
        return -EINVAL;
    snprintf(metric, size, "%.*s", (int)len, start);
    char *end;
    *value = strtod(p, &end);
    while (isspace((unsigned char)*end))
        end++;
    return end == p || *end || !isfinite(*value) ? -EINVAL : 0;
}

static int gate_holds(double v, gate_op op, double limit) {
    switch (op) {
    case OP_LE:
        return v <= limit;
    case OP_LT:
        return v < limit;
    case OP_GE:
        return v >= limit;
    case OP_GT:
        return v > limit;
    case OP_EQ:
        return v == limit;
    default:
        return v != limit;
    }
}

/* The candidate's figures: its lineage's, with p->metrics over them. */
static int candidate_figures(meta_db *m, MDB_txn *txn, const char *artifact, const bson_t *extra,
                             bson_t *out) {
    bson_t lineage;
    int rc = modelreg_metrics(m, txn, artifact, &lineage, NULL);
    bson_init(out);
    if (rc) {
        bson_destroy(&lineage);
        return rc;
    }
    bson_iter_t it;
    if (bson_iter_init(&it, &lineage))
        while (bson_iter_next(&it)) {
            double ignored;
            if (!extra || !metric_of(extra, bson_iter_key(&it), &ignored))
                bson_append_iter(out, NULL, 0, &it);
        }
    if (extra && bson_iter_init(&it, extra))
        while (bson_iter_next(&it))
            if (BSON_ITER_HOLDS_NUMBER(&it))
                BSON_APPEND_DOUBLE(out, bson_iter_key(&it), bson_iter_as_double(&it));
    bson_destroy(&lineage);
    return 0;
}

/* Checks --if gates. Returns 0, MODELREG_REFUSED or -EINVAL, with why. */
static int check_ifs(const modelreg_promotion *p, int version, const bson_t *figs, char *why,
                     size_t why_size) {
    for (size_t i = 0; i < p->n_ifs; i++) {
        char metric[128];
        gate_op op;
        double limit, v;
        if (parse_gate(p->ifs[i], metric, sizeof(metric), &op, &limit) != 0) {
            snprintf(why, why_size,
                     "'%s' is no condition: write METRIC<=VALUE (or <, >=, >, ==, !=)", p->ifs[i]);
            return -EINVAL;
        }
        if (!metric_of(figs, metric, &v)) {
            snprintf(why, why_size, "%s: %s@%d has no metric '%s' (no evaluation read it)", metric,
                     p->name, version, metric);
            return MODELREG_REFUSED;
        }
        if (!gate_holds(v, op, limit)) {
            snprintf(why, why_size, "%s: %s@%d has %s = %g, which is not %s %g", metric, p->name,
                     version, metric, v, op_text[op], limit);
            return MODELREG_REFUSED;
        }
    }
    return 0;
}

/* Checks --better-than ALIAS:METRIC[:lower|:higher]. */
static int check_better(meta_db *m, MDB_txn *txn, const modelreg_promotion *p, int version,
                        const bson_t *figs, char *why, size_t why_size) {
    char alias[MODELREG_MAX_NAME + 1], metric[128], dir[16] = "";
    const char *colon = strchr(p->better_than, ':');
    const char *second = colon ? strchr(colon + 1, ':') : NULL;
    size_t alen = colon ? (size_t)(colon - p->better_than) : 0;
    size_t mlen = colon ? (second ? (size_t)(second - colon - 1) : strlen(colon + 1)) : 0;
    if (second)
        snprintf(dir, sizeof(dir), "%s", second + 1);
    if (!colon || alen == 0 || alen > MODELREG_MAX_NAME || mlen == 0 || mlen >= sizeof(metric) ||
        (second && strcmp(dir, "lower") != 0 && strcmp(dir, "higher") != 0)) {
        snprintf(why, why_size,
                 "'%s': --better-than takes ALIAS:METRIC, or ALIAS:METRIC:lower or :higher to "
                 "say which way is better",
                 p->better_than);
        return -EINVAL;
    }
    snprintf(alias, sizeof(alias), "%.*s", (int)alen, p->better_than);
    snprintf(metric, sizeof(metric), "%.*s", (int)mlen, colon + 1);
    int lower = second ? strcmp(dir, "lower") == 0 : modelreg_lower_is_better(metric);
    int incumbent = modelreg_alias_version(m, txn, p->name, alias);
    if (incumbent < 0)
        return incumbent;
    if (incumbent == 0)
        return 0; /* nothing to beat yet: the first production model */
    bson_t inc_doc, inc_figs;
    int rc = modelreg_get_version(m, txn, p->name, incumbent, &inc_doc);
    if (rc)
        return rc == MDB_NOTFOUND ? -ENOENT : rc;
    const char *inc_art = str_field(&inc_doc, "artifact");
    if ((rc = modelreg_metrics(m, txn, inc_art ? inc_art : "", &inc_figs, NULL)) != 0) {
        bson_destroy(&inc_figs);
        return rc;
    }
    double mine, theirs;
    int have_theirs = metric_of(&inc_figs, metric, &theirs);
    bson_destroy(&inc_figs);
    if (!metric_of(figs, metric, &mine)) {
        snprintf(why, why_size, "%s: %s@%d has no metric '%s' to compare with %s", metric, p->name,
                 version, metric, alias);
        return MODELREG_REFUSED;
    }
    if (!have_theirs) {
        snprintf(why, why_size, "%s: %s (%s@%d) has no metric '%s' to compare with", metric, alias,
                 p->name, incumbent, metric);
        return MODELREG_REFUSED;
    }
    if (lower ? !(mine < theirs) : !(mine > theirs)) {
        snprintf(why, why_size,
                 "%s: %s@%d has %s = %g, not better (%s is better) than %s's (%s@%d) %g", metric,
                 p->name, version, metric, mine, lower ? "lower" : "higher", alias, p->name,
                 incumbent, theirs);
        return MODELREG_REFUSED;
    }
    return 0;
}

static int scan_audit(void *ud, const char *key, size_t len, const bson_t *doc) {
    (void)key;
    (void)len;
    int *last = ud, n = int_field(doc, "seq");
    if (n > *last)
        *last = n;
    return 0;
}

/* Writes the alias and its audit entry (in txn). */
static int move_alias(meta_db *m, MDB_txn *txn, const modelreg_promotion *p, int version,
                      int previous) {
    char key[2 * MODELREG_MAX_NAME + 32];
    bson_t alias = BSON_INITIALIZER;
    BSON_APPEND_INT32(&alias, "version", version);
    BSON_APPEND_DOUBLE(&alias, "time", p->time);
    BSON_APPEND_UTF8(&alias, "who", p->who ? p->who : "");
    BSON_APPEND_UTF8(&alias, "reason", p->reason ? p->reason : "");
    snprintf(key, sizeof(key), ALIAS_KEY, p->name, p->alias);
    int rc = meta_put(txn, m->models, key, &alias);
    bson_destroy(&alias);
    /* Test-only: dies by SIGKILL between the two writes, so that a test
     * can show the commit is all or nothing (tests/e2e/test_models.c). */
    if (rc == 0 && getenv("SLUICE_TEST_KILL_IN_PROMOTION"))
        raise(SIGKILL);
    int seq = 0;
    char prefix[MODELREG_MAX_NAME + 16];
    snprintf(prefix, sizeof(prefix), "%s/audit/", p->name);
    if (rc == 0)
        rc = meta_each(txn, m->models, prefix, scan_audit, &seq);
    if (rc)
        return rc;
    bson_t audit = BSON_INITIALIZER;
    BSON_APPEND_INT32(&audit, "seq", seq + 1);
    BSON_APPEND_UTF8(&audit, "alias", p->alias);
    BSON_APPEND_INT32(&audit, "version", version);
    if (previous)
        BSON_APPEND_INT32(&audit, "previous", previous);
    else
        BSON_APPEND_NULL(&audit, "previous");
    BSON_APPEND_DOUBLE(&audit, "time", p->time);
    BSON_APPEND_UTF8(&audit, "who", p->who ? p->who : "");
    BSON_APPEND_UTF8(&audit, "reason", p->reason ? p->reason : "");
    snprintf(key, sizeof(key), AUDIT_KEY, p->name, seq + 1);
    rc = meta_put(txn, m->models, key, &audit);
    bson_destroy(&audit);
    return rc;
}

int modelreg_promote(meta_db *m, const modelreg_promotion *p, int *version, int *previous,
                     char *why, size_t why_size) {
    *version = p->version;
    *previous = 0;
    why[0] = '\0';
    if (!modelreg_name_ok(p->name)) {
        snprintf(why, why_size, "'%s' is no model name ([a-z0-9_-], at most 64)", p->name);
        return -EINVAL;
    }
    if (!modelreg_alias_ok(p->alias)) {
        snprintf(why, why_size, "'%s' is no alias: [a-z0-9_-], at most 64, beginning with a letter",
                 p->alias);
        return -EINVAL;
    }
    if (!m->has_models) {
        snprintf(why, why_size, "no model is called '%s'", p->name);
        return -ENOENT;
    }
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    if (p->version <= 0) {
        version_scan s = {p->artifact ? p->artifact : "", 0, 0};
        rc = scan_versions(m, txn, p->name, &s);
        *version = s.found;
    }
    bson_t doc, figs = BSON_INITIALIZER;
    if (rc == 0 && *version <= 0) {
        snprintf(why, why_size, "artifact %.12s is no version of model %s", p->artifact, p->name);
        rc = -ENOENT;
    } else if (rc == 0 && (rc = modelreg_get_version(m, txn, p->name, *version, &doc)) != 0) {
        if (rc == MDB_NOTFOUND)
            snprintf(why, why_size, "model %s has no version %d", p->name, *version);
        rc = rc == MDB_NOTFOUND ? -ENOENT : rc;
    }
    if (rc == 0 && (rc = modelreg_alias_version(m, txn, p->name, p->alias)) >= 0) {
        *previous = rc;
        rc = 0;
    }
    if (rc == 0 && *previous == *version) {
        snprintf(why, why_size, "%s@%d is %s already", p->name, *version, p->alias);
        meta_abort(txn);
        return MODELREG_UNCHANGED;
    }
    if (rc == 0) {
        bson_destroy(&figs);
        const char *artifact = str_field(&doc, "artifact");
        rc = candidate_figures(m, txn, artifact ? artifact : "", p->metrics, &figs);
    }
    if (rc == 0)
        rc = check_ifs(p, *version, &figs, why, why_size);
    if (rc == 0 && p->better_than)
        rc = check_better(m, txn, p, *version, &figs, why, why_size);
    bson_destroy(&figs);
    if (rc == 0)
        rc = move_alias(m, txn, p, *version, *previous);
    if (rc) {
        meta_abort(txn);
        return rc;
    }
    return meta_commit(txn);
}

int modelreg_record_deployment(meta_db *m, const char *name, const char *listen,
                               const bson_t *doc) {
    if (!modelreg_name_ok(name) || !m->has_models)
        return -EINVAL;
    char key[MODELREG_MAX_NAME + 1024];
    if ((size_t)snprintf(key, sizeof(key), DEPLOY_KEY, name, listen) >= sizeof(key))
        return -EINVAL;
    MDB_txn *txn;
    int rc = meta_begin(m, 1, &txn);
    if (rc)
        return rc;
    if ((rc = meta_put(txn, m->models, key, doc)) != 0) {
        meta_abort(txn);
        return rc;
    }
    return meta_commit(txn);
}
