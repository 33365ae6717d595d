#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "suggest.h"

static const char *const shell_keys[] = {"run", "outputs", "env", "strict", NULL};

static const value *arg(const step *s, const char *name) {
    for (size_t i = 0; i < s->n_with; i++)
        if (strcmp(s->with[i].name, name) == 0)
            return s->with[i].value;
    return NULL;
}

const value *step_known_outputs(const step *s) {
    if (!s->uses || strcmp(s->uses, STEP_SHELL) != 0)
        return NULL;
    const value *v = arg(s, "outputs");
    return v && v->kind == VAL_MAP ? v : NULL;
}

/* Writes path without "." components and repeated or trailing slashes into
 * out[size]. Returns 1 when it is a relative path naming something inside
 * its folder (not the folder itself, nothing reached through ".."), else 0. */
static int inside_path(const char *path, char *out, size_t size) {
    size_t used = 0;
    if (!path[0] || path[0] == '/')
        return 0;
    for (const char *p = path; *p;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        if (len && !(len == 1 && p[0] == '.')) {
            if (used + len + 2 > size)
                return 0;
            if (used)
                out[used++] = '/';
            memcpy(out + used, p, len);
            used += len;
        }
        p += len + (end != NULL);
    }
    out[used] = '\0';
    return used > 0;
}

/* Whether a is b, or a folder holding b (both as inside_path writes them). */
static int path_covers(const char *a, const char *b) {
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/');
}

/* An output name is an identifier: it becomes an environment variable's
 * suffix and a key in records, so nothing a shell could read otherwise. */
static int output_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PIPELINE_MAX_ID ||
        !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

/* The outputs of a shell step: identifiers, at most PIPELINE_MAX_PORTS,
 * each a distinct path inside the work folder that no other one holds. */
static void check_shell_outputs(const pipeline *p, const value *v, diag_list *d) {
    if (v->u.map.n > PIPELINE_MAX_PORTS) {
        diag_add(d, DIAG_ERROR, p->file, v->line, v->col,
                 "a shell step declares %zu outputs, more than the %d a step may have", v->u.map.n,
                 PIPELINE_MAX_PORTS);
        return;
    }
    char(*norm)[1024] = calloc(v->u.map.n + 1, sizeof(*norm));
    if (!norm)
        return;
    for (size_t i = 0; i < v->u.map.n; i++) {
        const value *e = v->u.map.vals[i];
        const char *key = v->u.map.keys[i];
        if (!output_name_ok(key)) {
            diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                     "bad output name '%s': use letters, digits and '_', starting with a letter "
                     "(at most %d)",
                     key, PIPELINE_MAX_ID);
            continue;
        }
        if (e->kind != VAL_STR || !inside_path(e->u.str.s, norm[i], sizeof(norm[i]))) {
            norm[i][0] = '\0';
            diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                     "output '%s' must be a file path inside the step's work folder (relative, "
                     "without '..', not the folder itself)",
                     key);
            continue;
        }
        for (size_t k = 0; k < i; k++) {
            if (!norm[k][0])
                continue;
            if (strcmp(norm[k], norm[i]) == 0)
                diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                         "outputs '%s' and '%s' name the same path '%s'", v->u.map.keys[k], key,
                         norm[i]);
            else if (path_covers(norm[k], norm[i]) || path_covers(norm[i], norm[k]))
                diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                         "outputs '%s' ('%s') and '%s' ('%s') are nested: one holds the other",
                         v->u.map.keys[k], norm[k], key, norm[i]);
        }
    }
    free(norm);
}

/* The built-in shell step: with {run: COMMAND, outputs: {NAME: PATH},
 * env: {NAME: VALUE}, strict: BOOL}. Its ports are whatever it declares. */
static void check_shell(const pipeline *p, const step *s, diag_list *d) {
    size_t n_keys = sizeof(shell_keys) / sizeof(shell_keys[0]) - 1;
    for (size_t i = 0; i < s->n_with; i++) {
        const step_arg *a = &s->with[i];
        int known = 0;
        for (size_t k = 0; k < n_keys; k++)
            known |= strcmp(a->name, shell_keys[k]) == 0;
        if (known)
            continue;
        const char *hint = suggest_closest(a->name, shell_keys, n_keys);
        if (hint)
            diag_add(d, DIAG_ERROR, p->file, a->pos.line, a->pos.col,
                     "the shell step has no parameter '%s' (did you mean '%s'?)", a->name, hint);
        else
            diag_add(d, DIAG_ERROR, p->file, a->pos.line, a->pos.col,
                     "the shell step has no parameter '%s' (it takes run, outputs, env, strict)",
                     a->name);
    }
    const value *run = arg(s, "run");
    if (!run)
        diag_add(d, DIAG_ERROR, p->file, s->uses_pos.line, s->uses_pos.col,
                 "step '%s' uses shell but gives no 'run' command in 'with'", s->id);
    else if (run->kind == VAL_LIST || run->kind == VAL_MAP ||
             (run->kind == VAL_NULL && !run->failed))
        diag_add(d, DIAG_ERROR, p->file, run->line, run->col,
                 "'run' must be a string (a shell command), not %s", value_kind_name(run->kind));
    const value *strict = arg(s, "strict");
    if (strict && strict->kind != VAL_BOOL)
        diag_add(d, DIAG_ERROR, p->file, strict->line, strict->col,
                 "'strict' must be true or false, not %s", value_kind_name(strict->kind));
    const char *maps[] = {"outputs", "env"};
    for (size_t m = 0; m < 2; m++) {
        const value *v = arg(s, maps[m]);
        if (!v || v->kind == VAL_NULL)
            continue;
        if (v->kind != VAL_MAP) {
            diag_add(d, DIAG_ERROR, p->file, v->line, v->col,
                     "'%s' of a shell step must be a mapping, not %s", maps[m],
                     value_kind_name(v->kind));
            continue;
        }
        if (m == 0) {
            check_shell_outputs(p, v, d);
            continue;
        }
        for (size_t i = 0; i < v->u.map.n; i++) {
            const value *e = v->u.map.vals[i];
            const char *key = v->u.map.keys[i];
            int ok_name = key[0] && !strpbrk(key, " .=$/\\");
            if (!ok_name)
                diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                         "bad name '%s' in '%s': use letters, digits and '_'", key, maps[m]);
            else if (e->kind == VAL_LIST || e->kind == VAL_MAP)
                diag_add(d, DIAG_ERROR, p->file, e->line, e->col,
                         "environment variable '%s' must be a scalar, not %s", key,
                         value_kind_name(e->kind));
        }
    }
}

/* Resolves a step id used at pos; returns its index or -1 (reported). */
static long resolve_step(const pipeline *p, const step *s, const char *id, srcpos at,
                         const char *what, diag_list *d) {
    long idx = pipeline_find_step(p, id);
    if (idx >= 0)
        return idx;
    const char **ids = malloc((p->n_steps + 1) * sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; ids && i < p->n_steps; i++)
        if (&p->steps[i] != s)
            ids[n++] = p->steps[i].id;
    const char *hint = ids ? suggest_closest(id, ids, n) : NULL;
    if (hint)
        diag_add(d, DIAG_ERROR, p->file, at.line, at.col,
                 "%s of step '%s' names unknown step '%s' (did you mean '%s'?)", what, s->id, id,
                 hint);
    else
        diag_add(d, DIAG_ERROR, p->file, at.line, at.col, "%s of step '%s' names unknown step '%s'",
                 what, s->id, id);
    free(ids);
    return -1;
}

static void check_output(const pipeline *p, const step *s, const step_input *in, diag_list *d) {
    const step *src = &p->steps[in->from];
    const value *outs = step_known_outputs(src);
    if (!outs) {
        if (src->uses && strcmp(src->uses, STEP_SHELL) == 0)
            diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                     "%s%s%s of step '%s' reads '%s.%s', but shell step '%s' declares no "
                     "outputs",
                     in->port ? "input '" : "'foreach", in->port ? in->port : "", "'", s->id,
                     in->from_step, in->from_output, in->from_step);
        return;
    }
    for (size_t i = 0; i < outs->u.map.n; i++)
        if (strcmp(outs->u.map.keys[i], in->from_output) == 0)
            return;
    buf names = BUF_INIT;
    for (size_t i = 0; i < outs->u.map.n; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", outs->u.map.keys[i]);
    diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
             "step '%s' has no output '%s' (it declares: %s)", in->from_step, in->from_output,
             buf_str(&names));
    buf_free(&names);
}

/* 'foreach: STEP.OUTPUT': one step's declared output, of which each row
 * becomes an instance; not a fan-out's, whose outputs are many artifacts. */
static void resolve_foreach(pipeline *p, step *s, size_t i, diag_list *d) {
    srcpos at = s->foreach_pos;
    s->foreach_from = UINT32_MAX;
    for (size_t k = 0; k < p->n_steps; k++)
        if ((p->steps[k].group && strcmp(p->steps[k].group, s->foreach_step) == 0) ||
            (k != i && step_is_template(&p->steps[k]) &&
             strcmp(p->steps[k].id, s->foreach_step) == 0)) {
            diag_add(d, DIAG_ERROR, p->file, at.line, at.col,
                     "'foreach' of step '%s' reads '%s.%s', but '%s' is a fan-out step: "
                     "'foreach' takes the rows of one step's output",
                     s->id, s->foreach_step, s->foreach_output, s->foreach_step);
            return;
        }
    long from = resolve_step(p, s, s->foreach_step, at, "'foreach'", d);
    if (from == (long)i) {
        diag_add(d, DIAG_ERROR, p->file, at.line, at.col,
                 "step '%s' cannot fan out over its own output '%s'", s->id, s->foreach_output);
    } else if (from >= 0) {
        step_input probe = {.from_step = s->foreach_step,
                            .from_output = s->foreach_output,
                            .from = (uint32_t)from,
                            .pos = at};
        check_output(p, s, &probe, d);
        s->foreach_from = (uint32_t)from;
    }
}

static void resolve_refs(pipeline *p, diag_list *d) {
    for (size_t i = 0; i < p->n_steps; i++) {
        step *s = &p->steps[i];
        if (step_is_template(s))
            resolve_foreach(p, s, i, d);
        for (size_t k = 0; k < s->n_inputs; k++) {
            step_input *in = &s->inputs[k];
            if (in->artifact)
                continue; /* found in the store when the pipeline runs */
            long from = resolve_step(p, s, in->from_step, in->pos, "an input", d);
            in->from = from < 0 ? UINT32_MAX : (uint32_t)from;
            if (from == (long)i) {
                diag_add(d, DIAG_ERROR, p->file, in->pos.line, in->pos.col,
                         "step '%s' cannot take its own output '%s' as input", s->id,
                         in->from_output);
                in->from = UINT32_MAX;
            } else if (from >= 0) {
                check_output(p, s, in, d);
            }
        }
        for (size_t k = 0; k < s->n_after; k++) {
            step_after *af = &s->after[k];
            long from = resolve_step(p, s, af->step, af->pos, "'after'", d);
            af->from = from < 0 ? UINT32_MAX : (uint32_t)from;
            if (from == (long)i) {
                diag_add(d, DIAG_ERROR, p->file, af->pos.line, af->pos.col,
                         "step '%s' cannot run after itself", s->id);
                af->from = UINT32_MAX;
            }
        }
    }
}

int pipeline_dag(const pipeline *p, dag *g) {
    size_t n_edges = 0;
    for (size_t i = 0; i < p->n_steps; i++)
        n_edges += p->steps[i].n_inputs + p->steps[i].n_after + 1;
    dag_edge *edges = malloc((n_edges + 1) * sizeof(*edges));
    if (!edges)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        for (size_t k = 0; k < s->n_inputs; k++)
            if (s->inputs[k].from != UINT32_MAX)
                edges[m++] = (dag_edge){s->inputs[k].from, (uint32_t)i};
        for (size_t k = 0; k < s->n_after; k++)
            if (s->after[k].from != UINT32_MAX)
                edges[m++] = (dag_edge){s->after[k].from, (uint32_t)i};
        /* 'foreach: STEP.OUTPUT': its template, and its instances once made. */
        if (s->foreach_step && s->foreach_from != UINT32_MAX)
            edges[m++] = (dag_edge){s->foreach_from, (uint32_t)i};
    }
    int rc = dag_build(g, p->n_steps, edges, m);
    free(edges);
    return rc;
}

static int check_cycles(const pipeline *p, diag_list *d) {
    dag g;
    int rc = pipeline_dag(p, &g);
    if (rc)
        return rc;
    dag_cycle *cycles = NULL;
    size_t n = 0;
    rc = dag_find_cycles(&g, &cycles, &n);
    for (size_t c = 0; rc == 0 && c < n; c++) {
        buf path = BUF_INIT;
        for (size_t k = 0; k < cycles[c].n; k++)
            buf_printf(&path, "%s -> ", p->steps[cycles[c].nodes[k]].id);
        buf_puts(&path, p->steps[cycles[c].nodes[0]].id);
        const step *first = &p->steps[cycles[c].nodes[0]];
        diag_add(d, DIAG_ERROR, p->file, first->pos.line, first->pos.col, "cycle: %s",
                 buf_str(&path));
        buf_free(&path);
    }
    dag_cycles_free(cycles, n);
    dag_free(&g);
    return rc;
}

int pipeline_check(pipeline *p, diag_list *d) {
    for (size_t i = 0; i < p->n_steps; i++)
        if (p->steps[i].uses && strcmp(p->steps[i].uses, STEP_SHELL) == 0)
            check_shell(p, &p->steps[i], d);
    resolve_refs(p, d);
    return check_cycles(p, d);
}
