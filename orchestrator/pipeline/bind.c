#include "bind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "suggest.h"
#include "check.h"

/* A plugin step's ports and parameters all fit in a pipeline's step. */
_Static_assert(REGISTRY_MAX_ENTRIES <= PIPELINE_MAX_PORTS, "the registry admits more ports");

static int is_shell(const step *s) { return s->uses && strcmp(s->uses, STEP_SHELL) == 0; }

/* Converts v to a parameter kind. Returns the converted value, v itself, or
 * NULL when it does not fit (then *why says what was expected). */
static value *convert(arena *a, value *v, int kind, const char **why) {
    value *out = v;
    *why = NULL;
    if (v->kind == VAL_NULL)
        return v; /* null means "not given": the step reads a zero value */
    switch (kind) {
    case SL_PARAM_STRING:
    case SL_PARAM_PATH:
        if (v->kind == VAL_LIST || v->kind == VAL_MAP)
            break;
        if (v->kind != VAL_STR) {
            buf b = BUF_INIT;
            value_write_text(&b, v);
            out = buf_failed(&b) ? NULL : value_new_str(a, b.data, b.len);
            buf_free(&b);
            if (out) {
                out->line = v->line;
                out->col = v->col;
            }
        }
        return out;
    case SL_PARAM_INT:
    case SL_PARAM_FLOAT:
    case SL_PARAM_BOOL:
        if (v->kind == VAL_STR && value_from_plain(a, v->u.str.s, v->u.str.len, &out) != 0)
            out = v;
        if (kind == SL_PARAM_INT && out->kind == VAL_INT)
            return out;
        if (kind == SL_PARAM_BOOL && out->kind == VAL_BOOL)
            return out;
        if (kind == SL_PARAM_FLOAT && (out->kind == VAL_FLOAT || out->kind == VAL_INT)) {
            if (out->kind == VAL_INT) {
                value *f = value_new(a, VAL_FLOAT);
                if (f) {
                    f->u.real = (double)out->u.integer;
                    f->line = v->line;
                    f->col = v->col;
                }
                return f;
            }
            return out;
        }
        break;
    case SL_PARAM_LIST:
        if (v->kind == VAL_LIST) {
            for (size_t i = 0; i < v->u.list.n; i++)
                if (v->u.list.items[i]->kind == VAL_LIST || v->u.list.items[i]->kind == VAL_MAP) {
                    *why = "list of scalars";
                    return NULL;
                }
            return v;
        }
        if (v->kind != VAL_MAP) {
            value *one;
            return value_coerce(a, v, NULL, &(value){.kind = VAL_LIST}, &one) == 0 ? one : NULL;
        }
        break;
    default:
        return v;
    }
    *why = sl_param_kind_name(kind);
    return NULL;
}

static const char *port_type(const pipeline *p, const step_input *in) {
    const step *src = &p->steps[in->from];
    if (!src->impl)
        return "any";
    const sl_port *out = plugin_step_output(src->impl, in->from_output);
    return out ? out->type : "any";
}

static void list_names(buf *b, const void *base, size_t stride, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *)((const char *)base + i * stride);
        buf_printf(b, "%s%s", i ? ", " : "", name);
    }
    if (n == 0)
        buf_puts(b, "none");
}

/* Finds the plugin step for s: by name, or from 'path/lib.so:name'. */
static int resolve_impl(pipeline *p, plugin_registry *reg, step *s, bind_mode mode, diag_list *d) {
    const char *colon = strrchr(s->uses, ':');
    if (colon && colon - s->uses > 3 && strncmp(colon - 3, ".so", 3) == 0) {
        char *path =
            s->uses[0] == '/'
                ? arena_strndup(&p->arena, s->uses, (size_t)(colon - s->uses))
                : arena_printf(&p->arena, "%s/%.*s", p->dir, (int)(colon - s->uses), s->uses);
        if (!path)
            return -ENOMEM;
        const plugin_lib *lib;
        int rc = registry_load_file(reg, path, d, &lib);
        if (rc || !lib)
            return rc;
        const plugin_step *ps = registry_find(reg, colon + 1);
        if (!ps || ps->lib != lib)
            diag_add(d, DIAG_ERROR, p->file, s->uses_pos.line, s->uses_pos.col,
                     "%s declares no step '%s'", path, colon + 1);
        else
            s->impl = ps;
        return 0;
    }
    s->impl = registry_find(reg, s->uses);
    if (s->impl)
        return 0;
    const char **names = malloc((reg->n_steps + 2) * sizeof(*names));
    size_t n = 0;
    for (size_t i = 0; names && i < reg->n_steps; i++)
        names[n++] = reg->steps[i].step->name;
    if (names)
        names[n++] = STEP_SHELL;
    const char *hint = names ? suggest_closest(s->uses, names, n) : NULL;
    free(names);
    diag_level level = mode == BIND_STRICT ? DIAG_ERROR : DIAG_WARNING;
    if (hint)
        diag_add(d, level, p->file, s->uses_pos.line, s->uses_pos.col,
                 "no plugin declares step '%s' (did you mean '%s'?)", s->uses, hint);
    else if (mode == BIND_STRICT)
        diag_add(d, level, p->file, s->uses_pos.line, s->uses_pos.col,
                 "no plugin declares step '%s' (plugins are searched in the pipeline's "
                 "'plugins' folders and $SLUICE_PLUGIN_PATH; see 'sluice plugins list')",
                 s->uses);
    else
        diag_add(d, level, p->file, s->uses_pos.line, s->uses_pos.col,
                 "step '%s' is not checked: no plugin found declares '%s'", s->id, s->uses);
    return 0;
}

/* A path parameter is made absolute against the pipeline file's folder, so
 * the step (whatever its working folder) and the cache key, which hashes
 * what it names, read the same file; one naming a FIFO or a device, which
 * hashing would wait on forever, is refused. */
static int bind_path(pipeline *p, const step *s, step_arg *arg, diag_list *d) {
    value *v = arg->value;
    if (v->kind != VAL_STR || v->u.str.len == 0)
        return 0;
    if (v->u.str.s[0] != '/') {
        char cwd[4096] = ".";
        if (p->dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
            return -errno;
        char *abs = p->dir[0] == '/' ? arena_printf(&p->arena, "%s/%s", p->dir, v->u.str.s)
                                     : arena_printf(&p->arena, "%s/%s/%s", cwd, p->dir, v->u.str.s);
        value *made = abs ? value_new_str(&p->arena, abs, strlen(abs)) : NULL;
        if (!made)
            return -ENOMEM;
        made->line = v->line;
        made->col = v->col;
        made->secret = v->secret;
        arg->value = v = made;
    }
    const char *special = path_special_kind(v->u.str.s);
    if (special)
        diag_add(d, DIAG_ERROR, p->file, v->line ? v->line : arg->pos.line,
                 v->line ? v->col : arg->pos.col,
                 "parameter '%s' of step '%s' names '%s', which is %s: a path parameter names a "
                 "regular file or folder",
                 arg->name, s->id, v->secret ? "***" : v->u.str.s, special);
    return 0;
}

static int bind_args(pipeline *p, step *s, diag_list *d) {
    const plugin_step *ps = s->impl;
    const sl_step *st = ps->step;
    s->args = arena_calloc(&p->arena, ps->n_params + 1, sizeof(step_arg));
    if (!s->args)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_with; i++) {
        const step_arg *a = &s->with[i];
        size_t idx;
        if (plugin_step_param(ps, a->name, &idx))
            continue;
        const char **names = malloc((ps->n_params + 1) * sizeof(*names));
        for (size_t k = 0; names && k < ps->n_params; k++)
            names[k] = st->params[k].name;
        const char *hint = names ? suggest_closest(a->name, names, ps->n_params) : NULL;
        free(names);
        if (hint) {
            diag_add(d, DIAG_ERROR, p->file, a->pos.line, a->pos.col,
                     "step '%s' has no parameter '%s' (did you mean '%s'?)", st->name, a->name,
                     hint);
        } else {
            buf b = BUF_INIT;
            list_names(&b, st->params, sizeof(sl_param), ps->n_params);
            diag_add(d, DIAG_ERROR, p->file, a->pos.line, a->pos.col,
                     "step '%s' has no parameter '%s' (it takes: %s)", st->name, a->name,
                     buf_str(&b));
            buf_free(&b);
        }
    }
    for (size_t k = 0; k < ps->n_params; k++) {
        const sl_param *decl = &st->params[k];
        const step_arg *given = NULL;
        for (size_t i = 0; i < s->n_with && !given; i++)
            if (strcmp(s->with[i].name, decl->name) == 0)
                given = &s->with[i];
        step_arg *arg = &s->args[s->n_args++];
        arg->name = decl->name;
        if (!given) {
            if (decl->required)
                diag_add(d, DIAG_ERROR, p->file, s->pos.line, s->pos.col,
                         "step '%s' needs parameter '%s' (%s%s%s)", s->id, decl->name,
                         sl_param_kind_name(decl->kind), decl->doc ? ": " : "",
                         decl->doc ? decl->doc : "");
            arg->value = ps->defaults[k] ? ps->defaults[k] : value_new(&p->arena, VAL_NULL);
            if (!arg->value)
                return -ENOMEM;
            arg->pos = s->pos;
            if (decl->kind == SL_PARAM_PATH && bind_path(p, s, arg, d) != 0)
                return -ENOMEM;
            continue;
        }
        arg->pos = given->pos;
        const char *why;
        arg->value = convert(&p->arena, given->value, decl->kind, &why);
        if (!arg->value && !why)
            return -ENOMEM;
        if (!arg->value) {
            buf shown = BUF_INIT;
            value_write_flow(&shown, given->value);
            diag_add(d, DIAG_ERROR, p->file,
                     given->value->line ? given->value->line : given->pos.line,
                     given->value->line ? given->value->col : given->pos.col,
                     "parameter '%s' of step '%s' must be %s%s, not %s", decl->name, s->id,
                     strchr("aeiou", why[0]) ? "an " : "a ", why, buf_str(&shown));
            buf_free(&shown);
            arg->value = given->value;
        } else if (decl->kind == SL_PARAM_PATH) {
            int rc = bind_path(p, s, arg, d);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static void bind_inputs(pipeline *p, step *s, diag_list *d) {
    const plugin_step *ps = s->impl;
    const sl_step *st = ps->step;
    for (size_t i = 0; i < s->n_inputs; i++) {
        const step_input *in = &s->inputs[i];
        const sl_port *port = plugin_step_input(ps, in->port);
        if (!port) {
            buf b = BUF_INIT;
            list_names(&b, st->inputs, sizeof(sl_port), ps->n_inputs);
            diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                     "step '%s' has no input '%s' (it takes: %s)", st->name, in->port, buf_str(&b));
            buf_free(&b);
            continue;
        }
        if (in->from == UINT32_MAX)
            continue;
        if (step_is_template(&p->steps[in->from]) && strcmp(port->type, "any")) {
            diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                     "input '%s' of step '%s' takes one %s, but '%s' fans out over the rows of "
                     "'%s.%s' when the pipeline runs: only a shell step or an input of type any "
                     "takes the list of its instances' outputs",
                     in->port, s->id, port->type, in->from_step, p->steps[in->from].foreach_step,
                     p->steps[in->from].foreach_output);
            continue;
        }
        if (in->list_len && strcmp(port->type, "any")) {
            /* Its path is a listing of the instances' outputs, not a port->type. */
            if (in->index == 0)
                diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                         "input '%s' of step '%s' takes one %s, but '%s' fans out into %zu "
                         "instances: only a shell step or an input of type any takes their list",
                         in->port, s->id, port->type, p->steps[in->from].group, in->list_len);
            continue;
        }
        const char *have = port_type(p, in);
        if (strcmp(port->type, "any") && strcmp(have, "any") && strcmp(port->type, have))
            diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                     "input '%s' of step '%s' takes %s, but '%s.%s' is %s", in->port, s->id,
                     port->type, in->from_step, in->from_output, have);
    }
    for (size_t k = 0; k < ps->n_inputs; k++) {
        const sl_port *port = &st->inputs[k];
        int connected = 0;
        for (size_t i = 0; i < s->n_inputs && !connected; i++)
            connected = strcmp(s->inputs[i].port, port->name) == 0;
        if (!connected && !port->optional)
            diag_add(d, DIAG_ERROR, p->file, s->pos.line, s->pos.col,
                     "step '%s' needs input '%s' (%s) connected in 'inputs'", s->id, port->name,
                     port->type);
    }
}

/* Outputs read from plugin steps must be declared (shell outputs are
 * checked by pipeline_check). */
static void check_outputs(pipeline *p, const step *s, diag_list *d) {
    for (size_t i = 0; i < s->n_inputs; i++) {
        const step_input *in = &s->inputs[i];
        if (in->from == UINT32_MAX)
            continue;
        const plugin_step *src = p->steps[in->from].impl;
        if (!src || plugin_step_output(src, in->from_output))
            continue;
        buf b = BUF_INIT;
        list_names(&b, src->step->outputs, sizeof(sl_port), src->n_outputs);
        diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                 "step '%s' has no output '%s' (it declares: %s)", in->from_step, in->from_output,
                 buf_str(&b));
        buf_free(&b);
    }
}

/* The artifact types whose format is JSON Lines (docs/artifacts.md), and
 * any: what 'foreach: STEP.OUTPUT' can read rows from. */
static const char *const jsonl_types[] = {"jsonl",    "documents", "chunks", "dataset",
                                          "logprobs", "any",       NULL};

/* 'foreach: STEP.OUTPUT' of a plugin step: a declared output of a type
 * that holds JSON Lines rows. */
static void check_foreach_source(pipeline *p, const step *s, diag_list *d) {
    const plugin_step *src = p->steps[s->foreach_from].impl;
    if (!src)
        return; /* a shell step's outputs are checked by pipeline_check */
    const sl_port *out = plugin_step_output(src, s->foreach_output);
    if (!out) {
        buf b = BUF_INIT;
        list_names(&b, src->step->outputs, sizeof(sl_port), src->n_outputs);
        diag_add(d, DIAG_ERROR, p->file, s->foreach_pos.line, s->foreach_pos.col,
                 "step '%s' has no output '%s' (it declares: %s)", s->foreach_step,
                 s->foreach_output, buf_str(&b));
        buf_free(&b);
        return;
    }
    for (size_t i = 0; jsonl_types[i]; i++)
        if (strcmp(out->type, jsonl_types[i]) == 0)
            return;
    buf b = BUF_INIT;
    for (size_t i = 0; jsonl_types[i]; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", jsonl_types[i]);
    diag_add(d, DIAG_ERROR, p->file, s->foreach_pos.line, s->foreach_pos.col,
             "'foreach' of step '%s' reads '%s.%s', which is %s: one instance per row needs "
             "JSON Lines (an output of type %s)",
             s->id, s->foreach_step, s->foreach_output, out->type, buf_str(&b));
    buf_free(&b);
}

int pipeline_bind_step(pipeline *p, step *s, diag_list *d) {
    if (is_shell(s)) {
        s->args = s->with;
        s->n_args = s->n_with;
        return 0;
    }
    return s->impl ? bind_args(p, s, d) : 0;
}

int pipeline_bind(pipeline *p, plugin_registry *reg, bind_mode mode, diag_list *d) {
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_plugins; i++)
        rc = registry_load_dir(reg, p->plugins[i], 0, d);
    for (size_t i = 0; rc == 0 && i < p->n_steps; i++) {
        step *s = &p->steps[i];
        if (!s->uses)
            continue;
        if (!is_shell(s))
            rc = resolve_impl(p, reg, s, mode, d);
        if (rc == 0)
            rc = pipeline_bind_step(p, s, d);
    }
    for (size_t i = 0; rc == 0 && i < p->n_steps; i++) {
        if (p->steps[i].impl)
            bind_inputs(p, &p->steps[i], d);
        check_outputs(p, &p->steps[i], d);
        if (step_is_template(&p->steps[i]) && p->steps[i].foreach_from != UINT32_MAX)
            check_foreach_source(p, &p->steps[i], d);
    }
    return rc;
}
