/* params_file.c - parameter values from a YAML file (DVC's params.yaml):
 * 'params_file:' in the pipeline and 'sluice run --params FILE'. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "authoring.h"
#include "suggest.h"

typedef struct pf {
    pipeline *p;
    diag_list *d;
    const char *file; /* in p's arena: diagnostics borrow it */
} pf;

static void pf_err(pf *f, const ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pf_err(pf *f, const ynode *at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(f->d, DIAG_ERROR, f->file, at->line, at->col, fmt, ap);
    va_end(ap);
}

/* v (from node n, named `name` for messages) made to fit like; a mapping
 * into a mapping merges key by key, each key one like has. Returns 0 with
 * *out (NULL after a reported error), or -ENOMEM. */
static int fit(pf *f, const ynode *n, const char *name, value *v, const value *like, value **out) {
    arena *a = &f->p->arena;
    *out = NULL;
    if (like->kind == VAL_MAP && v->kind == VAL_MAP) {
        value *m = value_new(a, VAL_MAP);
        if (!m)
            return -ENOMEM;
        *m = *like;
        m->u.map.vals = arena_alloc(a, (like->u.map.n + 1) * sizeof(value *));
        if (!m->u.map.vals)
            return -ENOMEM;
        memcpy(m->u.map.vals, like->u.map.vals, like->u.map.n * sizeof(value *));
        int ok = 1;
        for (size_t i = 0; i < v->u.map.n; i++) {
            const ynode *kn = n->u.map.pairs[i].key, *vn = n->u.map.pairs[i].value;
            size_t j = 0;
            while (j < like->u.map.n && strcmp(like->u.map.keys[j], v->u.map.keys[i]) != 0)
                j++;
            char *sub = arena_printf(a, "%s.%s", name, v->u.map.keys[i]);
            if (!sub)
                return -ENOMEM;
            if (j == like->u.map.n) {
                const char *hint =
                    suggest_closest(v->u.map.keys[i], like->u.map.keys, like->u.map.n);
                if (hint)
                    pf_err(f, kn, "unknown parameter '%s' (did you mean '%s.%s'?)", sub, name,
                           hint);
                else
                    pf_err(f, kn, "unknown parameter '%s': '%s' has no key '%s'", sub, name,
                           v->u.map.keys[i]);
                ok = 0;
                continue;
            }
            value *got;
            int rc = fit(f, vn, sub, v->u.map.vals[i], like->u.map.vals[j], &got);
            if (rc)
                return rc;
            if (got)
                m->u.map.vals[j] = got;
            else
                ok = 0;
        }
        *out = ok ? m : NULL;
        return 0;
    }
    const char *raw = n->kind == YNODE_SCALAR && !n->quoted ? n->u.scalar.text : NULL;
    int rc = value_coerce(a, v, raw, like, out);
    if (rc == -EINVAL) {
        pf_err(f, n, "parameter '%s' expects %s, got %s", name, value_kind_name(like->kind),
               value_kind_name(v->kind));
        *out = NULL;
        return 0;
    }
    return rc;
}

int params_file_apply(pipeline *p, const char *path, const char *shown, const char *kind,
                      diag_list *d) {
    pf f = {p, d, arena_strdup(&p->arena, path)};
    if (!f.file)
        return -ENOMEM;
    char *data = NULL;
    size_t len = 0;
    int rc = pipeline_read_text(path, AUTHORING_MAX_FILE_BYTES, &data, &len);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        diag_add(d, DIAG_ERROR, f.file, 0, 0, "cannot read the params file: %s",
                 rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
        return 0;
    }
    ynode *root = NULL;
    size_t before = d->errors;
    rc = ydoc_parse(&p->arena, data, len, f.file, NULL, d, &root);
    free(data);
    if (rc == -ENOMEM)
        return rc;
    if (rc || d->errors != before)
        return 0; /* located by the YAML reader */
    if (!root)
        return 0; /* an empty file sets nothing */
    if (root->kind != YNODE_MAP) {
        pf_err(&f, root, "a params file must be a mapping of parameter names to values, not %s",
               ynode_kind_name(root));
        return 0;
    }
    for (size_t i = 0; i < root->u.map.n; i++) {
        const ynode *k = root->u.map.pairs[i].key, *vn = root->u.map.pairs[i].value;
        const char *hint = NULL;
        param *target = pipeline_find_param(p, k->u.scalar.text, &hint);
        if (!target) {
            if (hint)
                pf_err(&f, k, "unknown parameter '%s' (did you mean '%s'?)", k->u.scalar.text,
                       hint);
            else
                pf_err(&f, k, "unknown parameter '%s': the pipeline declares no such parameter",
                       k->u.scalar.text);
            continue;
        }
        value *v, *got;
        rc = value_from_ynode(&p->arena, vn, &v);
        if (rc == -ERANGE) {
            pf_err(&f, vn, "an integer of parameter '%s' is out of range (64 bits)", target->name);
            continue;
        }
        if (rc)
            return rc;
        if ((rc = fit(&f, vn, target->name, v, target->value, &got)))
            return rc;
        if (!got)
            continue;
        got->line = target->pos.line;
        target->value = got;
        target->overridden = 1;
        target->origin = arena_printf(&p->arena, "%s %s:%u", kind, shown ? shown : path, k->line);
        if (!target->origin)
            return -ENOMEM;
    }
    return 0;
}
