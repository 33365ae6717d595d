#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fsutil.h"
#include "value_json.h"

static host_ctx *ctx_of(sl_ctx *c) { return (host_ctx *)c; }

/* A plugin asking for a parameter it did not declare is a plugin bug: say
 * so in its log rather than crash or guess. */
static const task_param *param(sl_ctx *c, const char *name, const char *as) {
    host_ctx *h = ctx_of(c);
    const task_param *p = name ? task_find_param(h->t, name) : NULL;
    if (!p) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "the step asked for parameter '%s' (as %s), which it does not "
                 "declare",
                 name ? name : "(null)", as);
        h->sink.log(h->sink.ud, SL_LOG_ERROR, msg);
    }
    return p;
}

/* Copies text into the context's scratch space, under its lock. */
static const char *keep(host_ctx *h, const char *s, size_t len) {
    pthread_mutex_lock(&h->mu);
    const char *copy = arena_strndup(&h->scratch, s, len);
    pthread_mutex_unlock(&h->mu);
    return copy;
}

static const char *scalar_text(host_ctx *h, const value *v) {
    if (v->kind == VAL_STR)
        return v->u.str.s;
    if (v->kind == VAL_NULL)
        return NULL;
    buf b = BUF_INIT;
    value_write_text(&b, v);
    const char *s = buf_failed(&b) ? NULL : keep(h, b.data, b.len);
    buf_free(&b);
    return s;
}

static const char *h_param_str(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "a string");
    return p ? scalar_text(ctx_of(c), p->value) : NULL;
}

static int64_t h_param_int(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "an integer");
    if (!p)
        return 0;
    if (p->value->kind == VAL_INT)
        return p->value->u.integer;
    if (p->value->kind == VAL_FLOAT)
        return (int64_t)p->value->u.real;
    if (p->value->kind == VAL_BOOL)
        return p->value->u.boolean;
    if (p->value->kind == VAL_STR)
        return strtoll(p->value->u.str.s, NULL, 10);
    return 0;
}

static double h_param_f64(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "a number");
    if (!p)
        return 0;
    if (p->value->kind == VAL_FLOAT)
        return p->value->u.real;
    if (p->value->kind == VAL_INT)
        return (double)p->value->u.integer;
    if (p->value->kind == VAL_STR)
        return strtod(p->value->u.str.s, NULL);
    return 0;
}

static int h_param_bool(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "a boolean");
    if (!p)
        return 0;
    if (p->value->kind == VAL_BOOL)
        return p->value->u.boolean;
    if (p->value->kind == VAL_INT)
        return p->value->u.integer != 0;
    return 0;
}

static size_t h_param_list_len(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "a list");
    if (!p || p->value->kind == VAL_NULL)
        return 0;
    return p->value->kind == VAL_LIST ? p->value->u.list.n : 1;
}

static const char *h_param_list_item(sl_ctx *c, const char *name, size_t i) {
    const task_param *p = param(c, name, "a list");
    if (!p)
        return NULL;
    const value *v = p->value;
    if (v->kind != VAL_LIST)
        return i == 0 ? scalar_text(ctx_of(c), v) : NULL;
    return i < v->u.list.n ? scalar_text(ctx_of(c), v->u.list.items[i]) : NULL;
}

static const char *h_param_json(sl_ctx *c, const char *name) {
    const task_param *p = param(c, name, "JSON");
    if (!p)
        return NULL;
    buf b = BUF_INIT;
    value_write_json(&b, p->value, 0);
    const char *s = buf_failed(&b) ? NULL : keep(ctx_of(c), b.data, b.len);
    buf_free(&b);
    return s;
}

static const char *port_path(sl_ctx *c, const task_port *ports, size_t n, const char *name,
                             const char *what) {
    host_ctx *h = ctx_of(c);
    const task_port *p = name ? task_find_port(ports, n, name) : NULL;
    if (!p) {
        char msg[256];
        snprintf(msg, sizeof(msg), "the step asked for %s '%s', which it does not declare", what,
                 name ? name : "(null)");
        h->sink.log(h->sink.ud, SL_LOG_ERROR, msg);
        return NULL;
    }
    return p->path;
}

/* Folders are made when a step first asks for a path in them: a step that
 * writes nothing costs no file-system work. */
static void make_dirs(host_ctx *h) {
    pthread_mutex_lock(&h->mu);
    if (!h->dirs_made) {
        h->dirs_made = 1;
        mkdir_p(h->t->work_dir, 0755);
        for (size_t i = 0; i < h->t->n_outputs; i++) {
            const char *slash = strrchr(h->t->outputs[i].path, '/');
            char *parent =
                slash ? strndup(h->t->outputs[i].path, (size_t)(slash - h->t->outputs[i].path))
                      : NULL;
            if (parent)
                mkdir_p(parent, 0755);
            free(parent);
        }
    }
    pthread_mutex_unlock(&h->mu);
}

/* Whether step declares input name: the task lists only connected ones. */
static int declares_input(const sl_step *step, const char *name) {
    for (const sl_port *p = step && name ? step->inputs : NULL; p && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return 1;
    return 0;
}

static const char *h_input_path(sl_ctx *c, const char *name) {
    const task *t = ctx_of(c)->t;
    /* A declared optional input left unconnected is NULL (plugin.h), not a
     * question about an input the step does not have. */
    if (name && !task_find_port(t->inputs, t->n_inputs, name) && declares_input(t->step, name))
        return NULL;
    return port_path(c, t->inputs, t->n_inputs, name, "input");
}

static const char *h_output_path(sl_ctx *c, const char *name) {
    const task *t = ctx_of(c)->t;
    make_dirs(ctx_of(c));
    return port_path(c, t->outputs, t->n_outputs, name, "output");
}

static const char *h_work_dir(sl_ctx *c) {
    make_dirs(ctx_of(c));
    return ctx_of(c)->t->work_dir;
}

static const char *h_store_dir(sl_ctx *c) {
    const char *s = ctx_of(c)->t->store_dir;
    return s && *s ? s : NULL;
}

static void h_vlog(sl_ctx *c, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int h_vfail(sl_ctx *c, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void h_vlog(sl_ctx *c, int level, const char *fmt, va_list ap) {
    host_ctx *h = ctx_of(c);
    char small[512];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n >= 0 && (size_t)n >= sizeof(small)) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, again);
            h->sink.log(h->sink.ud, level, big);
            free(big);
            va_end(again);
            return;
        }
    }
    va_end(again);
    if (n >= 0)
        h->sink.log(h->sink.ud, level, small);
}

static void h_progress(sl_ctx *c, uint64_t done, uint64_t total) {
    host_ctx *h = ctx_of(c);
    h->sink.progress(h->sink.ud, done, total);
}

static void h_metric(sl_ctx *c, const char *key, double v, int64_t index) {
    host_ctx *h = ctx_of(c);
    if (key)
        h->sink.metric(h->sink.ud, key, v, index);
}

static int h_cancelled(sl_ctx *c) { return atomic_load(&ctx_of(c)->cancel); }

static const host_step *step_of(const host_ctx *h) { return (const host_step *)h->t->step; }

/* A plugin built before ABI 1.3 knows SL_E* codes as -1..-5. */
static int legacy_codes(const host_ctx *h) { return (step_of(h)->abi_version & 0xFFFF) < 3; }

static void *h_user_data(sl_ctx *c) {
    void *const *ud = step_of(ctx_of(c))->user_data;
    return ud ? *ud : NULL;
}

static int h_vfail(sl_ctx *c, const char *fmt, va_list ap) {
    host_ctx *h = ctx_of(c);
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&h->mu);
    free(h->failure);
    h->failure = strdup(msg);
    pthread_mutex_unlock(&h->mu);
    return legacy_codes(h) ? -1 : SL_EFAIL;
}

static const sl_host services = {
    .size = sizeof(sl_host),
    .abi_version = SL_ABI_VERSION,
    .param_str = h_param_str,
    .param_int = h_param_int,
    .param_f64 = h_param_f64,
    .param_bool = h_param_bool,
    .param_list_len = h_param_list_len,
    .param_list_item = h_param_list_item,
    .param_json = h_param_json,
    .input_path = h_input_path,
    .output_path = h_output_path,
    .work_dir = h_work_dir,
    .vlog = h_vlog,
    .progress = h_progress,
    .metric = h_metric,
    .cancelled = h_cancelled,
    .vfail = h_vfail,
    .store_dir = h_store_dir,
    .user_data = h_user_data,
};

const sl_host *host_services(void) { return &services; }

/* Whether a parsed default fits a parameter's kind. */
static int default_fits(int kind, const value *v) {
    switch (kind) {
    case SL_PARAM_STRING:
    case SL_PARAM_PATH:
        return v->kind != VAL_LIST && v->kind != VAL_MAP;
    case SL_PARAM_INT:
        return v->kind == VAL_INT;
    case SL_PARAM_FLOAT:
        return v->kind == VAL_INT || v->kind == VAL_FLOAT;
    case SL_PARAM_BOOL:
        return v->kind == VAL_BOOL;
    case SL_PARAM_LIST:
        return v->kind == VAL_LIST;
    default:
        return 1;
    }
}

/* registry_host.parse_default: the default as a value (value.h), which
 * binding a pipeline gives to an argument left out. */
static int parse_default(arena *a, const char *text, int kind, void **out, char *err,
                         size_t err_size) {
    value *v;
    int rc = value_parse(a, text, &v, err, err_size);
    if (rc)
        return rc == -ENOMEM ? rc : -EINVAL;
    if (!default_fits(kind, v))
        return -EDOM;
    *out = v;
    return 0;
}

static const registry_host registry_hooks = {&services, parse_default};

const registry_host *host_registry(void) { return &registry_hooks; }

int host_ctx_init(host_ctx *c, const task *t, const task_sink *sink) {
    memset(c, 0, sizeof(*c));
    c->base.host = &services;
    c->t = t;
    c->sink = *sink;
    atomic_init(&c->cancel, 0);
    int rc = pthread_mutex_init(&c->mu, NULL);
    return rc ? -rc : 0;
}

const char *sl_status_message(int status) {
    switch (status) {
    case SL_OK:
        return "done";
    case SL_EFAIL:
        return "the step failed (it gave no reason)";
    case SL_ECANCELLED:
        return "the step stopped when asked to";
    case SL_EINVAL:
        return "the step reported an invalid argument";
    case SL_ENOMEM:
        return "the step ran out of memory";
    case SL_EIO:
        return "the step reported an I/O error";
    default:
        return status < 0 && status > -4096 ? sl_strerror(status)
                                            : "the step returned an unknown error code";
    }
}

int host_ctx_run(host_ctx *c, const char **why) {
    int rc = c->t->step->run(&c->base);
    *why = NULL;
    if (rc == SL_OK)
        return rc;
    if (rc > 0)
        rc = SL_EFAIL; /* positive codes are not ours to interpret */
    if (rc >= -5 && legacy_codes(c))
        rc = SL_ERANGE_BEGIN + rc + 1; /* -1 was SL_EFAIL, ... -5 SL_EIO */
    pthread_mutex_lock(&c->mu);
    *why = c->failure ? c->failure : sl_status_message(rc);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void host_ctx_free(host_ctx *c) {
    pthread_mutex_destroy(&c->mu);
    arena_free(&c->scratch);
    free(c->failure);
    c->failure = NULL;
}
