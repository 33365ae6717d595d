/* load.c - the schema of pipeline format version 1: walks the YAML tree,
 * fills the pipeline model and reports every departure from the format. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "suggest.h"
#include "check.h"
#include "duration.h"
#include "pipeline.h"
#include "subst.h"
#include "authoring.h"
#include "bind.h"
#include "when.h"

typedef struct loader {
    pipeline *p;
    diag_list *d;
    const pipeline_options *opt;
    subst_ctx sc;
} loader;

static const char *const top_keys[] = {"version", "pipeline", "description", "params", "settings",
                                       "plugins", "steps",    "params_file", NULL};
static const char *const settings_keys[] = {"cache",        "jobs",        "retries", "timeout",
                                            "runner",       "openlineage", "slurm",   "env_file",
                                            "env_override", NULL};
static const char *const slurm_keys[] = {"partition", "account", "time",          "mem",
                                         "gpus",      "extra",   "cpus_per_task", NULL};
static const char *const openlineage_keys[] = {"to", "namespace", NULL};
static const char *const step_keys[] = {
    "uses",      "description", "with",    "inputs", "after", "retries", "timeout", "cache",
    "isolation", "cache_on",    "foreach", "matrix", "when",  "runner",  "slurm",   NULL};
static const char *const retries_keys[] = {"max", "backoff", NULL};
static const char *const cache_on_keys[] = {"env", "files", NULL};

static void err(loader *L, const ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err(loader *L, const ynode *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(L->d, DIAG_ERROR, L->p->file, at ? at->line : 1, at ? at->col : 1, fmt, ap);
    va_end(ap);
}

static size_t count_keys(const char *const *keys) {
    size_t n = 0;
    while (keys[n])
        n++;
    return n;
}

/* Reports each key of map that is not in allowed; where names the mapping. */
static void check_keys(loader *L, const ynode *map, const char *const *allowed, const char *where) {
    size_t n_allowed = count_keys(allowed);
    for (size_t i = 0; i < map->u.map.n; i++) {
        const ynode *k = map->u.map.pairs[i].key;
        int known = 0;
        for (size_t j = 0; j < n_allowed && !known; j++)
            known = strcmp(k->u.scalar.text, allowed[j]) == 0;
        if (known)
            continue;
        const char *hint = suggest_closest(k->u.scalar.text, allowed, n_allowed);
        if (hint) {
            err(L, k, "unknown key '%s' %s (did you mean '%s'?)", k->u.scalar.text, where, hint);
        } else {
            buf list = BUF_INIT;
            for (size_t j = 0; j < n_allowed; j++)
                buf_printf(&list, "%s%s", j ? ", " : "", allowed[j]);
            err(L, k, "unknown key '%s' %s (expected one of: %s)", k->u.scalar.text, where,
                buf_str(&list));
            buf_free(&list);
        }
    }
}

static int is_map(loader *L, const ynode *n, const char *what) {
    if (n->kind == YNODE_MAP)
        return 1;
    if (n->kind == YNODE_SCALAR)
        err(L, n, "%s must be a mapping, not '%s'", what, n->u.scalar.text);
    else
        err(L, n, "%s must be a mapping, not %s", what, ynode_kind_name(n));
    return 0;
}

/* The text of a scalar that is a name, not a value: no substitution. */
static const char *name_text(loader *L, const ynode *n, const char *what) {
    if (n->kind == YNODE_SCALAR)
        return n->u.scalar.text;
    err(L, n, "%s must be a string, not %s", what, ynode_kind_name(n));
    return NULL;
}

static int valid_id(const char *s) {
    size_t len = strlen(s);
    if (len == 0 || len > PIPELINE_MAX_ID)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return 0;
    return 1;
}

static int valid_ident(const char *s, size_t len) {
    if (len == 0 || len > PIPELINE_MAX_ID ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* A field's value with substitution. Returns 0 with *out (NULL when an
 * error was already reported for it, so no second one follows), -ENOMEM. */
static int field_value(loader *L, const ynode *n, value **out) {
    size_t before = L->d->errors;
    int rc = subst_node(&L->sc, n, out);
    if (rc == 0 && L->d->errors != before)
        *out = NULL;
    return rc;
}

/* A value as a message shows it: scalars quoted, collections by kind. */
static const char *shown(loader *L, const value *v) {
    if (v->kind == VAL_LIST || v->kind == VAL_MAP || v->kind == VAL_NULL)
        return value_kind_name(v->kind);
    buf b = BUF_INIT;
    buf_putc(&b, '\'');
    value_write_text(&b, v);
    buf_putc(&b, '\'');
    const char *s = buf_failed(&b) ? NULL : arena_strdup(&L->p->arena, buf_str(&b));
    buf_free(&b);
    return s ? s : value_kind_name(v->kind);
}

static int get_string(loader *L, const ynode *n, const char *what, const char **out) {
    value *v;
    int rc = field_value(L, n, &v);
    if (rc || !v)
        return rc;
    if (v->kind != VAL_STR) {
        err(L, n, "%s must be a string, not %s", what, value_kind_name(v->kind));
        return 0;
    }
    *out = v->u.str.s;
    return 0;
}

/* A typed field's value: text (from a quoted scalar or a substitution) is
 * read as a plain YAML scalar, so "${env.JOBS}" can fill an integer field. */
static int typed_field_value(loader *L, const ynode *n, value **out) {
    int rc = field_value(L, n, out);
    if (rc || !*out || (*out)->kind != VAL_STR)
        return rc;
    value *typed;
    rc = value_from_plain(&L->p->arena, (*out)->u.str.s, (*out)->u.str.len, &typed);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0 && typed->kind != VAL_STR && typed->kind != VAL_NULL)
        *out = typed;
    return 0;
}

static int get_bool(loader *L, const ynode *n, const char *what, int *out) {
    value *v;
    int rc = typed_field_value(L, n, &v);
    if (rc || !v)
        return rc;
    if (v->kind != VAL_BOOL)
        err(L, n, "%s must be true or false, not %s", what, shown(L, v));
    else
        *out = v->u.boolean;
    return 0;
}

static int get_int(loader *L, const ynode *n, const char *what, long long min, long long max,
                   int *out) {
    value *v;
    int rc = typed_field_value(L, n, &v);
    if (rc || !v)
        return rc;
    if (v->kind != VAL_INT)
        err(L, n, "%s must be an integer, not %s", what, shown(L, v));
    else if (v->u.integer < min || v->u.integer > max)
        err(L, n, "%s must be between %lld and %lld, not %lld", what, min, max,
            (long long)v->u.integer);
    else
        *out = (int)v->u.integer;
    return 0;
}

static int get_duration(loader *L, const ynode *n, const char *what, int64_t *out) {
    value *v;
    int rc = field_value(L, n, &v);
    if (rc || !v)
        return rc;
    const char *why = NULL;
    int64_t ms = 0;
    if (v->kind == VAL_INT && v->u.integer == 0)
        ms = 0;
    else if (v->kind == VAL_INT || v->kind == VAL_FLOAT)
        why = "a duration needs a unit (ms, s, m, h, d), e.g. 90s or 1h30m";
    else if (v->kind != VAL_STR)
        why = "a duration is a string such as 90s or 1h30m";
    else
        duration_parse(v->u.str.s, v->u.str.len, &ms, &why);
    if (why) {
        buf shown = BUF_INIT;
        value_write_text(&shown, v);
        err(L, n, "bad duration '%s' for %s: %s", buf_str(&shown), what, why);
        buf_free(&shown);
        return 0;
    }
    *out = ms;
    return 0;
}

/* A list of strings; a single string is taken as a one-item list. */
static int get_strings(loader *L, const ynode *n, const char *what, const char ***out,
                       size_t *count, int substitute) {
    size_t len = n->kind == YNODE_SEQ ? n->u.seq.n : 1;
    const char **items = arena_calloc(&L->p->arena, len + 1, sizeof(char *));
    if (!items)
        return -ENOMEM;
    if (n->kind == YNODE_MAP) {
        err(L, n, "%s must be a list of strings, not a mapping", what);
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        const ynode *item = n->kind == YNODE_SEQ ? n->u.seq.items[i] : n;
        const char *s = NULL;
        if (substitute) {
            int rc = get_string(L, item, what, &s);
            if (rc)
                return rc;
        } else {
            s = name_text(L, item, what);
        }
        if (s)
            items[k++] = s;
    }
    *out = items;
    *count = k;
    return 0;
}

static int load_retries(loader *L, const ynode *n, int *retries, int64_t *backoff) {
    int rc = 0;
    if (n->kind != YNODE_MAP)
        return get_int(L, n, "'retries'", 0, 100, retries);
    check_keys(L, n, retries_keys, "in 'retries'");
    const ynode *v;
    if ((v = ynode_get(n, "max")))
        rc = get_int(L, v, "'retries.max'", 0, 100, retries);
    if (rc == 0 && (v = ynode_get(n, "backoff")))
        rc = get_duration(L, v, "'retries.backoff'", backoff);
    return rc;
}

static int load_params(loader *L, const ynode *n) {
    if (!is_map(L, n, "'params'"))
        return 0;
    pipeline *p = L->p;
    p->params = arena_calloc(&p->arena, n->u.map.n + 1, sizeof(param));
    if (!p->params)
        return -ENOMEM;
    L->sc.params_allowed = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const ynode *k = n->u.map.pairs[i].key;
        if (!valid_ident(k->u.scalar.text, k->u.scalar.len)) {
            err(L, k,
                "bad parameter name '%s': use letters, digits and '_', starting with a "
                "letter",
                k->u.scalar.text);
            continue;
        }
        value *v;
        int rc = subst_node(&L->sc, n->u.map.pairs[i].value, &v);
        if (rc)
            return rc;
        p->params[p->n_params++] = (param){k->u.scalar.text, v, 0, {k->line, k->col}, "default"};
    }
    L->sc.params_allowed = 1;
    return 0;
}

static void cli_err(loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cli_err(loader *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(L->d, DIAG_ERROR, "command line", 0, 0, fmt, ap);
    va_end(ap);
}

/* Applies one -p NAME=VALUE; VALUE is YAML flow syntax. */
static int apply_override(loader *L, const char *spec) {
    pipeline *p = L->p;
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec) {
        cli_err(L, "-p %s: expected NAME=VALUE", spec);
        return 0;
    }
    char *name = arena_strndup(&p->arena, spec, (size_t)(eq - spec));
    if (!name)
        return -ENOMEM;
    const char *hint = NULL;
    param *target = pipeline_find_param(p, name, &hint);
    if (!target) {
        if (hint)
            cli_err(L, "-p %s: the pipeline has no parameter '%s' (did you mean '%s'?)", spec, name,
                    hint);
        else
            cli_err(L, "-p %s: the pipeline has no parameter '%s'", spec, name);
        return 0;
    }
    const char *text = eq + 1;
    diag_list local = DIAG_LIST_INIT;
    ynode *root = NULL;
    int rc = ydoc_parse(&p->arena, text, strlen(text), "-p", NULL, &local, &root);
    if (rc == -ENOMEM) {
        diag_clear(&local);
        return rc;
    }
    if (rc || local.errors) {
        cli_err(L, "-p %s: %s", spec, local.n ? local.items[0].msg : "not a YAML value");
        diag_clear(&local);
        return 0;
    }
    diag_clear(&local);
    value *v;
    const char *raw = NULL;
    if (!root) {
        v = value_new_str(&p->arena, "", 0); /* "-p name=" gives an empty string */
        if (!v)
            return -ENOMEM;
        if (target->value->kind != VAL_STR && target->value->kind != VAL_NULL) {
            cli_err(L, "-p %s: parameter '%s' expects %s, got nothing", spec, name,
                    value_kind_name(target->value->kind));
            return 0;
        }
    } else {
        size_t before = L->d->errors;
        if ((rc = subst_node(&L->sc, root, &v)))
            return rc;
        if (L->d->errors != before)
            return 0;
        if (root->kind == YNODE_SCALAR && !root->quoted)
            raw = root->u.scalar.text;
    }
    value *coerced;
    rc = value_coerce(&p->arena, v, raw, target->value, &coerced);
    if (rc == -EINVAL) {
        cli_err(L, "-p %s: parameter '%s' expects %s, got %s", spec, name,
                value_kind_name(target->value->kind), value_kind_name(v->kind));
        return 0;
    }
    if (rc)
        return rc;
    coerced->line = target->pos.line;
    target->value = coerced;
    target->overridden = 1;
    target->origin = "-p";
    return 0;
}

/* A string or list of strings naming files relative to the pipeline's
 * folder: each is passed to each_file with the node that names it. */
static int each_path(loader *L, const ynode *n, const char *what,
                     int (*each_file)(loader *L, const char *path, const ynode *at)) {
    const ynode *const *items = (const ynode *const *)&n;
    size_t count = 1;
    if (n->kind == YNODE_SEQ) {
        items = (const ynode *const *)n->u.seq.items;
        count = n->u.seq.n;
    }
    for (size_t i = 0; i < count; i++) {
        const ynode *it = items[i];
        if (it->kind != YNODE_SCALAR || it->u.scalar.len == 0) {
            err(L, it, "%s must be a file path or a list of them, not %s", what,
                ynode_kind_name(it));
            continue;
        }
        const char *text = it->u.scalar.text;
        char *path = text[0] == '/' ? arena_strdup(&L->p->arena, text)
                                    : arena_printf(&L->p->arena, "%s/%s", L->p->dir, text);
        if (!path)
            return -ENOMEM;
        int rc = each_file(L, path, it);
        if (rc)
            return rc;
    }
    return 0;
}

static int apply_params_file(loader *L, const char *path, const ynode *at) {
    return params_file_apply(L->p, path, at->u.scalar.text, "params_file", L->d);
}

static int read_env_file(loader *L, const char *path, const ynode *at) {
    return dotenv_load(L->p, path, L->p->file, at->line, at->col, L->d);
}

/* The .env files and env_override, read before anything is substituted:
 * parameter defaults may use ${env.X}. */
static int load_env(loader *L, const ynode *root) {
    const ynode *settings = ynode_get(root, "settings"), *v;
    int rc = 0;
    if (settings && settings->kind == YNODE_MAP) {
        if ((v = ynode_get(settings, "env_override"))) {
            value *b;
            if ((rc = value_from_ynode(&L->p->arena, v, &b)) && rc != -ERANGE)
                return rc;
            if (rc == 0 && b->kind == VAL_BOOL)
                L->p->settings.env_override = b->u.boolean;
            else
                err(L, v, "'settings.env_override' must be true or false");
            rc = 0;
        }
        if ((v = ynode_get(settings, "env_file")))
            rc = each_path(L, v, "'settings.env_file'", read_env_file);
    }
    for (size_t i = 0; rc == 0 && i < L->opt->n_env_files; i++)
        rc = dotenv_load(L->p, L->opt->env_files[i], "command line", 0, 0, L->d);
    if (L->opt->env_override)
        L->p->settings.env_override = 1;
    return rc;
}

/* params_file, then each --params FILE ("@FILE"), then each -p: later wins. */
static int apply_param_sources(loader *L, const ynode *root) {
    const ynode *v = ynode_get(root, "params_file");
    int rc = v ? each_path(L, v, "'params_file'", apply_params_file) : 0;
    for (size_t i = 0; rc == 0 && i < L->opt->n_overrides; i++)
        if (L->opt->overrides[i][0] == '@')
            rc = params_file_apply(L->p, L->opt->overrides[i] + 1, NULL, "--params", L->d);
    for (size_t i = 0; rc == 0 && i < L->opt->n_overrides; i++)
        if (L->opt->overrides[i][0] != '@')
            rc = apply_override(L, L->opt->overrides[i]);
    return rc;
}

/* settings.openlineage: TARGET, or {to: TARGET, namespace: NAME}. */
static int load_openlineage(loader *L, const ynode *n) {
    pipeline_settings *s = &L->p->settings;
    const ynode *to = n, *ns = NULL;
    if (n->kind == YNODE_MAP) {
        check_keys(L, n, openlineage_keys, "in 'settings.openlineage'");
        ns = ynode_get(n, "namespace");
        if (!(to = ynode_get(n, "to"))) {
            err(L, n, "'settings.openlineage' needs 'to': a file or an http(s) URL");
            return 0;
        }
    }
    const char *text = NULL, *name = NULL;
    int rc = get_string(L, to, "'settings.openlineage'", &text);
    if (rc == 0 && ns)
        rc = get_string(L, ns, "'settings.openlineage.namespace'", &name);
    if (rc || !text)
        return rc;
    if (name && !*name)
        err(L, ns, "'settings.openlineage.namespace' is empty");
    else if (name)
        s->openlineage_namespace = name;
    char why[1024];
    rc = pipeline_lineage_target(&L->p->arena, text, L->p->dir, &s->openlineage, why, sizeof(why));
    if (rc == -EINVAL)
        err(L, to, "'settings.openlineage': %s", why);
    return rc == -EINVAL ? 0 : rc;
}

/* A scalar read as its text ('time: 10' and 'time: "1:00:00"' alike). */
static int get_scalar_text(loader *L, const ynode *n, const char *what, const char **out) {
    value *v;
    int rc = field_value(L, n, &v);
    if (rc || !v)
        return rc;
    if (v->kind == VAL_STR) {
        *out = v->u.str.s;
        return 0;
    }
    if (v->kind != VAL_INT && v->kind != VAL_FLOAT) {
        err(L, n, "%s must be a string or a number, not %s", what, value_kind_name(v->kind));
        return 0;
    }
    buf b = BUF_INIT;
    value_write_text(&b, v);
    *out = buf_failed(&b) ? NULL : arena_strdup(&L->p->arena, buf_str(&b));
    buf_free(&b);
    return *out ? 0 : -ENOMEM;
}

/* 'runner': local or slurm. */
static int load_runner(loader *L, const ynode *v, const char *what, const char **out) {
    const char *r = NULL;
    int rc = get_string(L, v, what, &r);
    if (r && strcmp(r, "local") && strcmp(r, "slurm"))
        err(L, v, "%s must be local or slurm, not '%s'", what, r);
    else if (r)
        *out = r;
    return rc;
}

/* 'slurm': {partition, account, time, mem, cpus_per_task, gpus, extra}. */
static int load_slurm(loader *L, const ynode *n, const char *what, slurm_options *o) {
    if (!is_map(L, n, what))
        return 0;
    char where[64];
    snprintf(where, sizeof(where), "in %s", what);
    check_keys(L, n, slurm_keys, where);
    static const char *const text_keys[] = {"partition", "account", "time", "mem", "gpus"};
    const char **fields[] = {&o->partition, &o->account, &o->time, &o->mem, &o->gpus};
    int rc = 0;
    const ynode *v;
    for (size_t i = 0; rc == 0 && i < 5; i++)
        if ((v = ynode_get(n, text_keys[i]))) {
            char w[64];
            snprintf(w, sizeof(w), "'slurm.%s'", text_keys[i]);
            rc = get_scalar_text(L, v, w, fields[i]);
            if (rc == 0 && *fields[i] && (!**fields[i] || strchr(*fields[i], '\n'))) {
                err(L, v, "%s must be one non-empty line", w);
                *fields[i] = NULL;
            }
        }
    if (rc == 0 && (v = ynode_get(n, "cpus_per_task")))
        rc = get_int(L, v, "'slurm.cpus_per_task'", 1, 100000, &o->cpus_per_task);
    if (rc == 0 && (v = ynode_get(n, "extra")))
        rc = get_strings(L, v, "'slurm.extra'", &o->extra, &o->n_extra, 1);
    return rc;
}

static int load_settings(loader *L, const ynode *n) {
    pipeline_settings *s = &L->p->settings;
    if (!is_map(L, n, "'settings'"))
        return 0;
    check_keys(L, n, settings_keys, "in 'settings'");
    int rc = 0;
    const ynode *v;
    if ((v = ynode_get(n, "cache")))
        rc = get_bool(L, v, "'settings.cache'", &s->cache);
    if (rc == 0 && (v = ynode_get(n, "jobs")))
        rc = get_int(L, v, "'settings.jobs'", 0, 4096, &s->jobs);
    if (rc == 0 && (v = ynode_get(n, "retries")))
        rc = load_retries(L, v, &s->retries, &s->backoff_ms);
    if (rc == 0 && (v = ynode_get(n, "timeout")))
        rc = get_duration(L, v, "'settings.timeout'", &s->timeout_ms);
    if (rc == 0 && (v = ynode_get(n, "runner")))
        rc = load_runner(L, v, "'settings.runner'", &s->runner);
    if (rc == 0 && (v = ynode_get(n, "openlineage")))
        rc = load_openlineage(L, v);
    if (rc == 0 && (v = ynode_get(n, "slurm")))
        rc = load_slurm(L, v, "'settings.slurm'", &s->slurm);
    return rc;
}

static int load_plugins(loader *L, const ynode *n) {
    pipeline *p = L->p;
    const char **dirs = NULL;
    size_t count = 0;
    int rc = get_strings(L, n, "'plugins'", &dirs, &count, 1);
    if (rc || !dirs)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (dirs[i][0] != '/' && !(dirs[i] = arena_printf(&p->arena, "%s/%s", p->dir, dirs[i])))
            return -ENOMEM;
    p->plugins = dirs;
    p->n_plugins = count;
    return 0;
}

static int load_with(loader *L, step *s, const ynode *n) {
    if (!is_map(L, n, "'with'"))
        return 0;
    s->with = arena_calloc(&L->p->arena, n->u.map.n + 1, sizeof(step_arg));
    if (!s->with)
        return -ENOMEM;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const ynode *k = n->u.map.pairs[i].key;
        if (!valid_ident(k->u.scalar.text, k->u.scalar.len)) {
            err(L, k, "bad parameter name '%s' in 'with': use letters, digits and '_'",
                k->u.scalar.text);
            continue;
        }
        value *v;
        int rc = subst_node(&L->sc, n->u.map.pairs[i].value, &v);
        if (rc)
            return rc;
        s->with[s->n_with++] = (step_arg){k->u.scalar.text, v, {k->line, k->col}};
    }
    return 0;
}

static int load_inputs(loader *L, step *s, const ynode *n) {
    if (!is_map(L, n, "'inputs'"))
        return 0;
    s->inputs = arena_calloc(&L->p->arena, n->u.map.n + 1, sizeof(step_input));
    if (!s->inputs)
        return -ENOMEM;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const ynode *k = n->u.map.pairs[i].key, *v = n->u.map.pairs[i].value;
        if (!valid_ident(k->u.scalar.text, k->u.scalar.len)) {
            err(L, k, "bad input name '%s': use letters, digits and '_'", k->u.scalar.text);
            continue;
        }
        const char *ref = name_text(L, v, "an input");
        if (!ref)
            continue;
        size_t plen = strlen(PIPELINE_ARTIFACT_PREFIX);
        if (strncmp(ref, PIPELINE_ARTIFACT_PREFIX, plen) == 0) {
            const char *id = ref + plen;
            if (!*id || strpbrk(id, " \t/")) {
                err(L, v,
                    "input '%s': '%s' names no artifact: use artifact:ID, ID a hash prefix, "
                    "an imported artifact's name, RUN:STEP.OUTPUT, STEP.OUTPUT or MODEL@ALIAS",
                    k->u.scalar.text, ref);
                continue;
            }
            s->inputs[s->n_inputs++] = (step_input){.port = k->u.scalar.text,
                                                    .from = UINT32_MAX,
                                                    .pos = {v->line, v->col},
                                                    .artifact = id};
            continue;
        }
        const char *dot = strchr(ref, '.');
        if (!dot || dot == ref || !valid_ident(dot + 1, strlen(dot + 1))) {
            err(L, v,
                "input '%s' must name another step's output as STEP.OUTPUT, or an artifact "
                "in the store as artifact:ID, not '%s'",
                k->u.scalar.text, ref);
            continue;
        }
        step_input *in = &s->inputs[s->n_inputs++];
        in->port = k->u.scalar.text;
        in->from_step = arena_strndup(&L->p->arena, ref, (size_t)(dot - ref));
        in->from_output = dot + 1;
        in->pos = (srcpos){v->line, v->col};
        if (!in->from_step)
            return -ENOMEM;
    }
    return 0;
}

static int load_after(loader *L, step *s, const ynode *n) {
    if (n->kind == YNODE_MAP) {
        err(L, n, "'after' must be a step id or a list of step ids, not a mapping");
        return 0;
    }
    size_t len = n->kind == YNODE_SEQ ? n->u.seq.n : 1;
    s->after = arena_calloc(&L->p->arena, len + 1, sizeof(step_after));
    if (!s->after)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        const ynode *item = n->kind == YNODE_SEQ ? n->u.seq.items[i] : n;
        const char *id = name_text(L, item, "a step id in 'after'");
        if (id)
            s->after[s->n_after++] = (step_after){id, 0, {item->line, item->col}};
    }
    return 0;
}

static int load_cache_on(loader *L, step *s, const ynode *n) {
    if (!is_map(L, n, "'cache_on'"))
        return 0;
    check_keys(L, n, cache_on_keys, "in 'cache_on'");
    int rc = 0;
    const ynode *v;
    if ((v = ynode_get(n, "env"))) {
        rc = get_strings(L, v, "'cache_on.env'", &s->cache_on_env, &s->n_cache_on_env, 0);
        for (size_t i = 0; rc == 0 && i < s->n_cache_on_env; i++)
            if (!valid_ident(s->cache_on_env[i], strlen(s->cache_on_env[i])))
                err(L, v, "bad environment variable name '%s' in 'cache_on.env'",
                    s->cache_on_env[i]);
    }
    if (rc == 0 && (v = ynode_get(n, "files")))
        rc = get_strings(L, v, "'cache_on.files'", &s->cache_on_files, &s->n_cache_on_files, 1);
    /* Hashing reads a file to its end: a FIFO or device would hold the run
     * (and status) forever. Only regular files and folders join a key. */
    size_t listed = v && v->kind == YNODE_SEQ ? v->u.seq.n : 1;
    for (size_t i = 0; rc == 0 && v && i < s->n_cache_on_files; i++) {
        const char *f = s->cache_on_files[i];
        char *path = f[0] == '/' ? (char *)f : arena_printf(&L->p->arena, "%s/%s", L->p->dir, f);
        if (!path)
            return -ENOMEM;
        const char *special = path_special_kind(path);
        const ynode *at =
            v->kind == YNODE_SEQ && listed == s->n_cache_on_files ? v->u.seq.items[i] : v;
        if (special)
            err(L, at,
                "'cache_on.files' names '%s', which is %s: only regular files and folders "
                "can be hashed",
                f, special);
    }
    return rc;
}

/* 'uses' is a step name ([a-z0-9_-], as plugins name their steps) or
 * PATH.so:NAME; anything else (/etc/passwd:x) names no step that could
 * exist, so it is an error even where unknown step names are warnings. */
static int uses_ok(const char *uses) {
    const char *colon = strrchr(uses, ':');
    const char *name = colon ? colon + 1 : uses;
    if (colon && !(colon - uses > 3 && strncmp(colon - 3, ".so", 3) == 0 &&
                   !memchr(uses, '\n', (size_t)(colon - uses))))
        return 0;
    return valid_id(name);
}

/* 'when': kept as written, no substitution (its ${...} are the
 * condition's own references, checked by pipeline_check_when). */
static void load_when(loader *L, step *s, const ynode *v) {
    if (v->kind != YNODE_SCALAR || v->u.scalar.len == 0) {
        err(L, v, "'when' must be a condition such as \"${params.deploy} == true\", or always");
        return;
    }
    s->when = v->u.scalar.text;
    s->when_always = !v->quoted && strcmp(s->when, "always") == 0;
    /* Columns of a quoted condition start after its quote. */
    s->when_pos =
        (srcpos){v->line, v->col + (v->quoted && !memchr(s->when, '\n', v->u.scalar.len))};
}

static int load_step(loader *L, step *s, const ynode *key, const ynode *n) {
    char where[PIPELINE_MAX_ID + 32];
    snprintf(where, sizeof(where), "in step '%s'", s->id);
    if (n->kind != YNODE_MAP) {
        err(L, n, "step '%s' must be a mapping with at least 'uses', not %s", s->id,
            ynode_kind_name(n));
        return 0;
    }
    check_keys(L, n, step_keys, where);
    int rc = 0;
    const ynode *v;
    if ((v = ynode_get(n, "uses"))) {
        s->uses = name_text(L, v, "'uses'");
        s->uses_pos = (srcpos){v->line, v->col};
        if (s->uses && !uses_ok(s->uses)) {
            err(L, v,
                "'uses' must name a step (a plugin's step, a path/lib.so:step, or "
                "shell), not '%s'",
                s->uses);
            s->uses = NULL;
        }
    } else {
        err(L, key, "step '%s' has no 'uses': name the step to run (a plugin's step or shell)",
            s->id);
    }
    if ((v = ynode_get(n, "description")))
        rc = get_string(L, v, "'description'", &s->description);
    /* A fan-out step's 'with' is read once per instance (expand_step). */
    if (rc == 0 && (v = ynode_get(n, "with")) && !ynode_get(n, "foreach") &&
        !ynode_get(n, "matrix"))
        rc = load_with(L, s, v);
    if (rc == 0 && (v = ynode_get(n, "inputs")))
        rc = load_inputs(L, s, v);
    if (rc == 0 && (v = ynode_get(n, "after")))
        rc = load_after(L, s, v);
    if (rc == 0 && (v = ynode_get(n, "retries")))
        rc = load_retries(L, v, &s->retries, &s->backoff_ms);
    if (rc == 0 && (v = ynode_get(n, "timeout"))) {
        rc = get_duration(L, v, "'timeout'", &s->timeout_ms); /* 0: none */
    }
    if (rc == 0 && (v = ynode_get(n, "cache")))
        rc = get_bool(L, v, "'cache'", &s->cache);
    if (rc == 0 && (v = ynode_get(n, "isolation"))) {
        const char *iso = NULL;
        rc = get_string(L, v, "'isolation'", &iso);
        if (iso && strcmp(iso, "process") == 0)
            s->isolation = ISOLATION_PROCESS;
        else if (iso && strcmp(iso, "in-process") != 0)
            err(L, v, "'isolation' must be in-process or process, not '%s'", iso);
    }
    if (rc == 0 && (v = ynode_get(n, "cache_on")))
        rc = load_cache_on(L, s, v);
    if (rc == 0 && (v = ynode_get(n, "when")))
        load_when(L, s, v);
    if (rc == 0 && (v = ynode_get(n, "runner")))
        rc = load_runner(L, v, "'runner'", &s->runner);
    if (rc == 0 && (v = ynode_get(n, "slurm")))
        rc = load_slurm(L, v, "'slurm'", &s->slurm);
    return rc;
}

/* ---- fan-out: foreach and matrix ------------------------------------- */

/* Whether text reads STEP.OUTPUT, the run-time form of 'foreach'. */
static int names_output(const char *text) {
    const char *dot = strchr(text, '.');
    if (!dot || dot == text || (size_t)(dot - text) > PIPELINE_MAX_ID)
        return 0;
    char id[PIPELINE_MAX_ID + 1];
    memcpy(id, text, (size_t)(dot - text));
    id[dot - text] = '\0';
    return valid_id(id) && valid_ident(dot + 1, strlen(dot + 1));
}

/* The node of a step's 'foreach: STEP.OUTPUT' (expanded at run time), or
 * NULL. A quoted scalar is text, as anywhere else. */
static const ynode *runtime_foreach(const ynode *n) {
    const ynode *fe = n->kind == YNODE_MAP ? ynode_get(n, "foreach") : NULL;
    return fe && fe->kind == YNODE_SCALAR && !fe->quoted && names_output(fe->u.scalar.text) &&
                   !ynode_get(n, "matrix")
               ? fe
               : NULL;
}

/* The items of 'foreach: LIST' into *out (NULL after a reported error, or
 * for 'foreach: STEP.OUTPUT', whose items are known at run time). */
static int foreach_items(loader *L, const step *s, const ynode *n, value **out) {
    *out = NULL;
    if (n->kind == YNODE_SCALAR && !n->quoted && names_output(n->u.scalar.text))
        return 0;
    value *v;
    int rc = field_value(L, n, &v);
    if (rc || !v)
        return rc;
    if (v->kind != VAL_LIST) {
        err(L, n, "'foreach' of step '%s' must be a list (e.g. ${params.NAME} of a list), not %s",
            s->id, shown(L, v));
        return 0;
    }
    if (v->u.list.n == 0) {
        err(L, n, "'foreach' of step '%s' is an empty list: a fan-out needs at least one item",
            s->id);
        return 0;
    }
    *out = v;
    return 0;
}

/* The items of 'matrix: {a: [..], b: [..]}': the cartesian product as
 * mappings {a: .., b: ..}, the first key varying slowest, into *out (NULL
 * after a reported error). */
static int matrix_items(loader *L, const step *s, const ynode *n, value **out) {
    *out = NULL;
    if (!is_map(L, n, "'matrix'"))
        return 0;
    size_t k = n->u.map.n, count = 1;
    if (k == 0) {
        err(L, n, "'matrix' of step '%s' is empty: give at least one key with a list of values",
            s->id);
        return 0;
    }
    value **axes = arena_calloc(&L->p->arena, k, sizeof(*axes));
    if (!axes)
        return -ENOMEM;
    int bad = 0;
    for (size_t i = 0; i < k; i++) {
        const ynode *key = n->u.map.pairs[i].key, *val = n->u.map.pairs[i].value;
        if (!valid_ident(key->u.scalar.text, key->u.scalar.len)) {
            err(L, key, "bad matrix key '%s': use letters, digits and '_'", key->u.scalar.text);
            bad = 1;
            continue;
        }
        int rc = field_value(L, val, &axes[i]);
        if (rc)
            return rc;
        if (!axes[i]) {
            bad = 1;
        } else if (axes[i]->kind != VAL_LIST) {
            err(L, val, "matrix key '%s' of step '%s' must be a list of values, not %s",
                key->u.scalar.text, s->id, shown(L, axes[i]));
            bad = 1;
        } else if (axes[i]->u.list.n == 0) {
            err(L, val, "matrix key '%s' of step '%s' is an empty list", key->u.scalar.text, s->id);
            bad = 1;
        } else if (count <= PIPELINE_MAX_INSTANCES) {
            count *= axes[i]->u.list.n; /* both factors <= the cap: no overflow */
        }
    }
    if (bad)
        return 0;
    if (count > PIPELINE_MAX_INSTANCES) {
        err(L, n, "'matrix' of step '%s' expands to more than %d instances (the limit)", s->id,
            PIPELINE_MAX_INSTANCES);
        return 0;
    }
    value *list = value_new(&L->p->arena, VAL_LIST);
    value **items = arena_calloc(&L->p->arena, count, sizeof(*items));
    if (!list || !items)
        return -ENOMEM;
    for (size_t c = 0; c < count; c++) {
        value *m = value_new(&L->p->arena, VAL_MAP);
        const char **keys = arena_calloc(&L->p->arena, k, sizeof(*keys));
        value **vals = arena_calloc(&L->p->arena, k, sizeof(*vals));
        if (!m || !keys || !vals)
            return -ENOMEM;
        size_t rest = c;
        for (size_t i = k; i-- > 0;) {
            size_t len = axes[i]->u.list.n;
            keys[i] = n->u.map.pairs[i].key->u.scalar.text;
            vals[i] = axes[i]->u.list.items[rest % len];
            rest /= len;
        }
        m->u.map.keys = keys;
        m->u.map.vals = vals;
        m->u.map.n = k;
        m->line = n->line;
        m->col = n->col;
        items[c] = m;
    }
    list->u.list.items = items;
    list->u.list.n = count;
    *out = list;
    return 0;
}

/* The items a step fans out over, or *out NULL for an ordinary step (or
 * after a reported error: the step then stands as one, unexpanded). */
static int fanout_items(loader *L, const step *s, const ynode *n, value **out) {
    *out = NULL;
    if (n->kind != YNODE_MAP)
        return 0;
    const ynode *fe = ynode_get(n, "foreach"), *mx = ynode_get(n, "matrix");
    if (fe && mx) {
        err(L, mx,
            "step '%s' has both 'foreach' and 'matrix': use one (a matrix of one key is "
            "a foreach)",
            s->id);
        return 0;
    }
    int rc = fe ? foreach_items(L, s, fe, out) : mx ? matrix_items(L, s, mx, out) : 0;
    if (rc == 0 && *out && fe && (*out)->u.list.n > PIPELINE_MAX_INSTANCES) {
        err(L, fe, "'foreach' of step '%s' has %zu items, more than the limit of %d instances",
            s->id, (*out)->u.list.n, PIPELINE_MAX_INSTANCES);
        *out = NULL;
    }
    return rc;
}

/* Makes the instances ID[0]..ID[n-1] of the loaded step *tpl at the end of
 * p->steps, each reading 'with' (NULL: none) with its own item. Load time
 * and run time ('foreach: STEP.OUTPUT', pipeline_expand_rows) alike. */
static int expand_step(loader *L, const step *tpl, const ynode *with, const value *items) {
    pipeline *p = L->p;
    for (size_t i = 0; i < items->u.list.n; i++) {
        step *s = &p->steps[p->n_steps];
        *s = *tpl;
        s->group = tpl->id;
        s->instance = i;
        s->n_instances = items->u.list.n;
        s->item = items->u.list.items[i];
        s->with = NULL;
        s->n_with = 0;
        s->id = arena_printf(&p->arena, "%s[%zu]", tpl->id, i);
        if (!s->id)
            return -ENOMEM;
        int rc = hmap_put(&p->step_ids, s->id, strlen(s->id), (uint32_t)p->n_steps, NULL);
        if (rc < 0)
            return rc;
        p->n_steps++;
        L->sc.item = s->item;
        rc = with ? load_with(L, s, with) : 0;
        L->sc.item = NULL;
        if (rc)
            return rc;
    }
    return 0;
}

/* The first instance of fan-out step id (as written), or -1. */
static long group_first(const hmap *groups, const char *id) {
    uint32_t first;
    return id && hmap_get(groups, id, strlen(id), &first) ? (long)first : -1;
}

/* An input or 'after' that names a fan-out step by the id written stands
 * for all its instances: inputs become one per instance (a list, in item
 * order), 'after' waits for every one. Each rewritten reference is
 * resolved to its instance (from), for a run-time expansion, which comes
 * after the references were resolved. */
static int rewrite_references(pipeline *p, const hmap *groups, step *s) {
    size_t n_in = 0, n_after = 0;
    int any = 0;
    for (size_t k = 0; k < s->n_inputs; k++) {
        long g = group_first(groups, s->inputs[k].from_step);
        n_in += g < 0 ? 1 : p->steps[g].n_instances;
        any |= g >= 0;
    }
    for (size_t k = 0; k < s->n_after; k++) {
        long g = group_first(groups, s->after[k].step);
        n_after += g < 0 ? 1 : p->steps[g].n_instances;
        any |= g >= 0;
    }
    if (!any)
        return 0;
    step_input *ins = arena_calloc(&p->arena, n_in + 1, sizeof(*ins));
    step_after *afs = arena_calloc(&p->arena, n_after + 1, sizeof(*afs));
    if (!ins || !afs)
        return -ENOMEM;
    size_t m = 0;
    for (size_t k = 0; k < s->n_inputs; k++) {
        long g = group_first(groups, s->inputs[k].from_step);
        size_t n = g < 0 ? 1 : p->steps[g].n_instances;
        for (size_t j = 0; j < n; j++) {
            ins[m] = s->inputs[k];
            if (g >= 0) {
                ins[m].from_step = p->steps[(size_t)g + j].id;
                ins[m].from = (uint32_t)((size_t)g + j);
                ins[m].list_len = n;
                ins[m].index = j;
                ins[m].key = arena_printf(&p->arena, "%s_%zu", ins[m].port, j);
                if (!ins[m].key)
                    return -ENOMEM;
            }
            m++;
        }
    }
    s->inputs = ins;
    s->n_inputs = m;
    m = 0;
    for (size_t k = 0; k < s->n_after; k++) {
        long g = group_first(groups, s->after[k].step);
        size_t n = g < 0 ? 1 : p->steps[g].n_instances;
        for (size_t j = 0; j < n; j++) {
            afs[m] = s->after[k];
            if (g >= 0) {
                afs[m].step = p->steps[(size_t)g + j].id;
                afs[m].from = (uint32_t)((size_t)g + j);
            }
            m++;
        }
    }
    s->after = afs;
    s->n_after = m;
    return 0;
}

static int fanout_references(loader *L) {
    pipeline *p = L->p;
    hmap groups = HMAP_INIT;
    int rc = 0, any = 0;
    for (size_t i = 0; rc >= 0 && i < p->n_steps; i++)
        if (p->steps[i].group && p->steps[i].instance == 0) {
            rc = hmap_put(&groups, p->steps[i].group, strlen(p->steps[i].group), (uint32_t)i, NULL);
            any = 1;
        }
    for (size_t i = 0; rc >= 0 && any && i < p->n_steps; i++) {
        step *s = &p->steps[i];
        rc = rewrite_references(p, &groups, s);
        /* Item j of list input x is the port x_j: no other input may be. */
        for (size_t a = 0; rc >= 0 && a < s->n_inputs; a++)
            for (size_t b = 0; s->inputs[a].key && b < s->n_inputs; b++)
                if (!s->inputs[b].key && strcmp(s->inputs[b].port, s->inputs[a].key) == 0)
                    diag_add(L->d, DIAG_ERROR, p->file, s->inputs[b].pos.line, s->inputs[b].pos.col,
                             "input '%s' of step '%s' has the name of item %zu of list input "
                             "'%s': rename it",
                             s->inputs[b].port, s->id, s->inputs[a].index, s->inputs[a].port);
    }
    hmap_free(&groups);
    return rc < 0 ? rc : 0;
}

int pipeline_expand_rows(pipeline *p, uint32_t tpl, const value *rows, diag_list *d) {
    const step *t = &p->steps[tpl];
    size_t n = rows->u.list.n, first = p->n_steps, before = d->errors;
    if (n > PIPELINE_MAX_INSTANCES || first + n > p->cap_steps) {
        diag_add(d, DIAG_ERROR, p->file, t->foreach_pos.line, t->foreach_pos.col,
                 "'foreach: %s.%s' of step '%s' has %zu rows, more than the limit of %d "
                 "instances",
                 t->foreach_step, t->foreach_output, t->id, n, PIPELINE_MAX_INSTANCES);
        return -EINVAL;
    }
    /* The pipeline runs: a secret its 'with' names must have its value. The
     * environment is the process's, the .env files' already in p. */
    static const pipeline_options at_run = {.require_secrets = 1};
    loader L = {p, d, &at_run, {0}};
    L.sc = (subst_ctx){.p = p, .d = d, .opt = L.opt, .params_allowed = 1};
    step proto = *t;
    proto.with = NULL;
    proto.n_with = 0;
    proto.args = NULL;
    proto.n_args = 0;
    int rc = expand_step(&L, &proto, t->with_node, rows);
    for (size_t i = first; rc == 0 && i < p->n_steps; i++)
        rc = pipeline_bind_step(p, &p->steps[i], d);
    if (rc == 0 && d->errors != before)
        rc = -EINVAL;
    if (rc) {
        /* The ids stay in step_ids, naming nothing: indexes past n_steps. */
        p->n_steps = first;
        return rc;
    }
    p->steps[tpl].n_instances = n; /* expanded: its instances stand for it */
    hmap groups = HMAP_INIT;
    rc = hmap_put(&groups, t->id, strlen(t->id), (uint32_t)first, NULL);
    for (size_t i = 0; rc >= 0 && i < first; i++)
        rc = rewrite_references(p, &groups, &p->steps[i]);
    hmap_free(&groups);
    return rc < 0 ? rc : 0;
}

static int load_steps(loader *L, const ynode *n) {
    pipeline *p = L->p;
    if (n->kind != YNODE_MAP) {
        err(L, n, "'steps' must be a mapping from step id to step, not %s", ynode_kind_name(n));
        return 0;
    }
    if (n->u.map.n == 0) {
        err(L, n, "'steps' is empty: a pipeline needs at least one step");
        return 0;
    }
    /* Fan-out steps are expanded as they are read, so the items are known
     * first: the array holds every instance. */
    value **fanout = arena_calloc(&p->arena, n->u.map.n, sizeof(*fanout));
    if (!fanout)
        return -ENOMEM;
    size_t total = 0, reserve = 0;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const ynode *k = n->u.map.pairs[i].key;
        step named = {.id = k->u.scalar.text};
        if (!valid_id(k->u.scalar.text))
            continue;
        if (runtime_foreach(n->u.map.pairs[i].value))
            reserve += PIPELINE_MAX_INSTANCES;
        int rc = fanout_items(L, &named, n->u.map.pairs[i].value, &fanout[i]);
        if (rc)
            return rc;
        total += fanout[i] ? fanout[i]->u.list.n : 1;
        if (fanout[i] && total > PIPELINE_MAX_STEPS) {
            err(L, k,
                "step '%s' takes the pipeline past %d steps, counting every instance of "
                "its fan-out steps (the limit)",
                k->u.scalar.text, PIPELINE_MAX_STEPS);
            total -= fanout[i]->u.list.n - 1;
            fanout[i] = NULL;
        }
    }
    p->steps = arena_calloc(&p->arena, total + reserve + 1, sizeof(step));
    if (!p->steps)
        return -ENOMEM;
    p->cap_steps = total + reserve;
    for (size_t i = 0; i < n->u.map.n; i++) {
        const ynode *k = n->u.map.pairs[i].key;
        const char *id = k->u.scalar.text;
        if (!valid_id(id)) {
            err(L, k, "bad step id '%s': use a-z, 0-9, '_' and '-', at most %d characters", id,
                PIPELINE_MAX_ID);
            continue;
        }
        step *s = &p->steps[p->n_steps];
        *s = (step){.id = id,
                    .pos = {k->line, k->col},
                    .retries = UNSET,
                    .backoff_ms = UNSET,
                    .timeout_ms = UNSET,
                    .cache = UNSET};
        int rc;
        if (fanout[i]) {
            /* The template is read once (its errors reported once), then
             * copied into each instance. */
            step tpl = *s;
            if ((rc = load_step(L, &tpl, k, n->u.map.pairs[i].value)) ||
                (rc = expand_step(L, &tpl, ynode_get(n->u.map.pairs[i].value, "with"), fanout[i])))
                return rc;
            continue;
        }
        rc = hmap_put(&p->step_ids, id, k->u.scalar.len, (uint32_t)p->n_steps, NULL);
        if (rc < 0)
            return rc;
        p->n_steps++;
        if ((rc = load_step(L, s, k, n->u.map.pairs[i].value)))
            return rc;
        const ynode *v = n->u.map.pairs[i].value, *with = ynode_get(v, "with");
        if (with && (ynode_get(v, "foreach") || ynode_get(v, "matrix"))) {
            /* A fan-out whose items are in error: its 'with' is still
             * checked, ${item} standing for nothing rather than failing. */
            value *none = value_new(&p->arena, VAL_NULL);
            if (!none)
                return -ENOMEM;
            none->failed = 1;
            L->sc.item = none;
            rc = load_with(L, s, with);
            L->sc.item = NULL;
            if (rc)
                return rc;
        }
        const ynode *fe = runtime_foreach(v);
        if (fe) {
            /* Its rows are known at run time: it stands as one step, its
             * 'with' read above with ${item} checked for its form only,
             * and read again for each row then. */
            const char *dot = strchr(fe->u.scalar.text, '.');
            s->foreach_step =
                arena_strndup(&p->arena, fe->u.scalar.text, (size_t)(dot - fe->u.scalar.text));
            if (!s->foreach_step)
                return -ENOMEM;
            s->foreach_output = dot + 1;
            s->foreach_pos = (srcpos){fe->line, fe->col};
            s->foreach_from = UINT32_MAX;
            s->with_node = with;
        }
    }
    return fanout_references(L);
}

static int load_top(loader *L, const ynode *root) {
    pipeline *p = L->p;
    if (!root) {
        diag_add(L->d, DIAG_ERROR, p->file, 1, 1,
                 "the file is empty: a pipeline needs at least 'pipeline' and 'steps'");
        return 0;
    }
    if (root->kind != YNODE_MAP) {
        err(L, root, "a pipeline file must be a mapping with 'pipeline' and 'steps', not %s",
            ynode_kind_name(root));
        return 0;
    }
    check_keys(L, root, top_keys, "at the top level");
    int rc = 0;
    const ynode *v;
    if ((v = ynode_get(root, "version"))) {
        int version = 0;
        rc = get_int(L, v, "'version'", 0, 1000000, &version);
        if (version && version != PIPELINE_FORMAT_VERSION)
            err(L, v, "pipeline format version %d is not supported: this sluice reads version %d",
                version, PIPELINE_FORMAT_VERSION);
    }
    if ((v = ynode_get(root, "pipeline"))) {
        const char *name = name_text(L, v, "'pipeline'");
        if (name && !valid_id(name))
            err(L, v, "bad pipeline name '%s': use a-z, 0-9, '_' and '-', at most %d characters",
                name, PIPELINE_MAX_ID);
        else
            p->name = name;
    } else {
        err(L, root, "missing required key 'pipeline' (the pipeline's name)");
    }
    if (rc == 0)
        rc = load_env(L, root);
    if (rc == 0 && (v = ynode_get(root, "params")))
        rc = load_params(L, v);
    if (rc == 0)
        rc = apply_param_sources(L, root);
    if (rc == 0 && (v = ynode_get(root, "description")))
        rc = get_string(L, v, "'description'", &p->description);
    if (rc == 0 && (v = ynode_get(root, "settings")))
        rc = load_settings(L, v);
    if (rc == 0 && (v = ynode_get(root, "plugins")))
        rc = load_plugins(L, v);
    if (rc == 0) {
        if ((v = ynode_get(root, "steps")))
            rc = load_steps(L, v);
        else
            err(L, root, "missing required key 'steps'");
    }
    return rc;
}

static const pipeline_options no_options;

int pipeline_load_buffer(const char *data, size_t len, const char *name, const char *dir,
                         const pipeline_options *opt, diag_list *d, pipeline **out) {
    *out = NULL;
    pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->version = PIPELINE_FORMAT_VERSION;
    p->settings = (pipeline_settings){
        .cache = 1, .backoff_ms = 1000, .runner = "local", .openlineage_namespace = "sluice"};
    p->file = arena_strdup(&p->arena, name);
    p->dir = arena_strdup(&p->arena, dir ? dir : ".");
    if (!p->file || !p->dir) {
        pipeline_free(p);
        return -ENOMEM;
    }
    loader L = {p, d, opt ? opt : &no_options, {0}};
    L.sc = (subst_ctx){.p = p, .d = d, .opt = L.opt, .params_allowed = 1};
    size_t before = d->errors;
    ynode *root = NULL;
    int rc = ydoc_parse(&p->arena, data, len, p->file, NULL, d, &root);
    if (rc) {
        pipeline_free(p);
        return rc;
    }
    rc = load_top(&L, root);
    if (rc == 0)
        rc = pipeline_check(p, d);
    if (rc == 0)
        rc = pipeline_check_when(p, d);
    if (rc == -ENOMEM)
        diag_add(d, DIAG_ERROR, p->file, 0, 0, "out of memory");
    *out = p;
    if (rc == 0 && d->errors != before)
        rc = -EINVAL;
    return rc;
}

/* Reads a whole file, refusing one past max bytes. *data is malloc'ed. */
int pipeline_read_text(const char *path, size_t max, char **data, size_t *len) {
    /* Non-blocking, so a FIFO put in its place after the check below cannot
     * hold the open; the read is refused by the fstat. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return f ? -EINVAL : -(e ? e : EINVAL);
    }
    buf b = BUF_INIT;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > max) {
            rc = -EFBIG;
            break;
        }
        if (buf_append(&b, chunk, n)) {
            rc = -ENOMEM;
            break;
        }
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    *len = b.len;
    *data = buf_detach(&b);
    return *data ? 0 : -ENOMEM;
}

int pipeline_load_file(const char *path, const pipeline_options *opt, diag_list *d,
                       pipeline **out) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    const char *special = path_special_kind(path);
    if (special) {
        diag_add(d, DIAG_ERROR, path, 0, 0,
                 "cannot read: it is %s, not a regular file (a pipeline is a YAML file)", special);
        return -EINVAL;
    }
    int rc = pipeline_read_text(path, PIPELINE_MAX_FILE_BYTES, &data, &len);
    if (rc == -EFBIG) {
        diag_add(d, DIAG_ERROR, path, 0, 0, "the file is larger than the limit of %u MiB",
                 PIPELINE_MAX_FILE_BYTES >> 20);
        return -EINVAL;
    }
    if (rc) {
        diag_add(d, DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(-rc));
        return rc;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) {
        free(data);
        return -ENOMEM;
    }
    rc = pipeline_load_buffer(data, len, path, dir, opt, d, out);
    free(dir);
    free(data);
    return rc;
}

void pipeline_free(pipeline *p) {
    if (!p)
        return;
    hmap_free(&p->step_ids);
    arena_free(&p->arena);
    free(p);
}

param *pipeline_find_param(const pipeline *p, const char *name, const char **hint) {
    *hint = NULL;
    for (size_t i = 0; i < p->n_params; i++)
        if (strcmp(p->params[i].name, name) == 0)
            return &p->params[i];
    const char **names = malloc((p->n_params + 1) * sizeof(*names));
    for (size_t i = 0; names && i < p->n_params; i++)
        names[i] = p->params[i].name;
    if (names)
        *hint = suggest_closest(name, names, p->n_params);
    free(names);
    return NULL;
}

long pipeline_find_step(const pipeline *p, const char *id) {
    uint32_t idx;
    /* An index past n_steps is an instance of a run-time expansion that failed. */
    return hmap_get(&p->step_ids, id, strlen(id), &idx) && idx < p->n_steps ? (long)idx : -1;
}

void step_group_label(const step *s, buf *b) {
    if (step_is_template(s)) {
        buf_printf(b, "%s[*]", s->id);
        return;
    }
    buf_printf(b, "%s[0..%zu]", s->group, s->n_instances - 1);
}

int step_cache_enabled(const pipeline *p, const step *s) {
    return s->cache == UNSET ? p->settings.cache : s->cache;
}

int step_retries(const pipeline *p, const step *s) {
    return s->retries == UNSET ? p->settings.retries : s->retries;
}

int64_t step_backoff_ms(const pipeline *p, const step *s) {
    return s->backoff_ms == UNSET ? p->settings.backoff_ms : s->backoff_ms;
}

int64_t step_timeout_ms(const pipeline *p, const step *s) {
    return s->timeout_ms == UNSET ? p->settings.timeout_ms : s->timeout_ms;
}
