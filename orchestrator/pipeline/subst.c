#include "subst.h"
#include "authoring.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NS_PARAMS, NS_ENV, NS_SECRET, NS_ITEM, NS_JOIN, NS_UNKNOWN } ns_kind;

/* A parsed ${ns.name[:-default]} at text[start..end). */
typedef struct ref {
    size_t start, end;
    ns_kind ns;
    const char *ns_text, *name, *dflt; /* pointers into text */
    size_t ns_len, name_len, dflt_len;
    int has_dflt;
} ref;

static int is_ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Parses a reference starting at s[i] == '$', s[i+1] == '{'. Returns 1 and
 * fills r when it is one of ours (known namespace or not), 0 when it is
 * some other ${...} to leave alone, -1 when unterminated. */
static int parse_ref(const char *s, size_t len, size_t i, ref *r) {
    size_t j = i + 2, k = j;
    while (k < len && is_ident(s[k]))
        k++;
    if (k - j == 4 && memcmp(s + j, "item", 4) == 0 && k < len && s[k] == '}') {
        /* ${item}: the whole item of a fan-out instance, no field. */
        memset(r, 0, sizeof(*r));
        *r = (ref){
            .start = i, .end = k + 1, .ns = NS_ITEM, .ns_text = s + j, .ns_len = 4, .name = s + k};
        return 1;
    }
    if (k - j == 4 && memcmp(s + j, "join", 4) == 0 && k < len && s[k] == '(') {
        /* ${join(params.NAME, 'SEP')}: the body is what the parentheses hold. */
        size_t m = k + 1;
        while (m + 1 < len && !(s[m] == ')' && s[m + 1] == '}'))
            m++;
        if (m + 1 >= len)
            return -1;
        memset(r, 0, sizeof(*r));
        *r = (ref){.start = i,
                   .end = m + 2,
                   .ns = NS_JOIN,
                   .ns_text = s + j,
                   .ns_len = 4,
                   .name = s + k + 1,
                   .name_len = m - k - 1};
        return 1;
    }
    if (k == j || !is_ident_start(s[j]) || k >= len || s[k] != '.')
        return 0;
    const char *close = memchr(s + k, '}', len - k);
    if (!close)
        return -1;
    memset(r, 0, sizeof(*r));
    r->start = i;
    r->end = (size_t)(close - s) + 1;
    r->ns_text = s + j;
    r->ns_len = k - j;
    r->name = s + k + 1;
    size_t body = (size_t)(close - r->name);
    const char *dash = NULL;
    for (size_t m = 0; m + 1 < body; m++)
        if (r->name[m] == ':' && r->name[m + 1] == '-') {
            dash = r->name + m;
            break;
        }
    r->name_len = dash ? (size_t)(dash - r->name) : body;
    if (dash) {
        r->has_dflt = 1;
        r->dflt = dash + 2;
        r->dflt_len = (size_t)(close - r->dflt);
    }
#define NS_IS(lit) (r->ns_len == sizeof(lit) - 1 && memcmp(r->ns_text, lit, r->ns_len) == 0)
    r->ns = NS_IS("params")   ? NS_PARAMS
            : NS_IS("env")    ? NS_ENV
            : NS_IS("secret") ? NS_SECRET
            : NS_IS("item")   ? NS_ITEM
                              : NS_UNKNOWN;
#undef NS_IS
    return 1;
}

int subst_has_reference(const char *s, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        ref r;
        if (s[i] == '$' && s[i + 1] == '{' && (i == 0 || s[i - 1] != '$') &&
            parse_ref(s, len, i, &r) != 0)
            return 1;
    }
    return 0;
}

static void err_at(subst_ctx *c, const ynode *n, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Points at the reference itself where the scalar is plain and on one line
 * (then source columns and text offsets agree), else at the scalar. */
static void err_at(subst_ctx *c, const ynode *n, size_t offset, const char *fmt, ...) {
    unsigned col = n->col;
    if (!n->quoted && !memchr(n->u.scalar.text, '\n', offset))
        col += (unsigned)offset;
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(c->d, DIAG_ERROR, c->p->file, n->line, col, fmt, ap);
    va_end(ap);
}

/* The real environment first, then the .env files; the other way round
 * with settings.env_override. */
static const char *with_dotenv(const subst_ctx *c, const char *name, const char *real) {
    const char *file = dotenv_get(c->p, name);
    if (c->p->settings.env_override)
        return file ? file : real;
    return real ? real : file;
}

static const char *env_lookup(const subst_ctx *c, const char *name) {
    return with_dotenv(
        c, name, c->opt->lookup_env ? c->opt->lookup_env(c->opt->lookup_ud, name) : getenv(name));
}

static const char *secret_lookup(const subst_ctx *c, const char *name) {
    return with_dotenv(c, name,
                       c->opt->lookup_secret ? c->opt->lookup_secret(c->opt->lookup_ud, name)
                                             : getenv(name));
}

static int valid_name(const char *s, size_t len) {
    if (len == 0 || !is_ident_start(s[0]))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!is_ident(s[i]))
            return 0;
    return 1;
}

/* Keeps a secret's value so that a run can mask it wherever a step prints
 * it. Returns 0 on OOM. */
static int remember_secret(pipeline *p, const char *secret) {
    for (size_t i = 0; i < p->n_secrets; i++)
        if (strcmp(p->secrets[i], secret) == 0)
            return 1;
    const char **grown = arena_alloc(&p->arena, (p->n_secrets + 1) * sizeof(*grown));
    if (!grown)
        return 0;
    if (p->n_secrets)
        memcpy(grown, p->secrets, p->n_secrets * sizeof(*grown));
    grown[p->n_secrets++] = secret;
    p->secrets = grown;
    return 1;
}

/* ${item} or ${item.FIELD} of the instance being read. */
static int resolve_item(subst_ctx *c, const ynode *n, const ref *r, value **out) {
    int len = (int)(r->end - r->start);
    const char *text = n->u.scalar.text + r->start;
    if (!c->item) {
        err_at(c, n, r->start,
               "'%.*s' is only defined in 'with' of a step with 'foreach' or 'matrix' (write "
               "$%.*s for a literal '${')",
               len, text, len, text);
        return 0;
    }
    if (r->name_len && !valid_name(r->name, r->name_len)) {
        err_at(c, n, r->start, "bad name in '%.*s': expected letters, digits and '_'", len, text);
        return 0;
    }
    /* Items in error (already reported), or known only at run time
     * ('foreach: STEP.OUTPUT'): the form alone is checked. */
    if (c->item->failed)
        return 0;
    if (r->name_len == 0) {
        *out = (value *)c->item;
        return 0;
    }
    if (c->item->kind != VAL_MAP) {
        err_at(c, n, r->start, "'%.*s' reads a field, but the item is %s, not a mapping", len, text,
               value_kind_name(c->item->kind));
        return 0;
    }
    for (size_t i = 0; i < c->item->u.map.n; i++)
        if (strlen(c->item->u.map.keys[i]) == r->name_len &&
            memcmp(c->item->u.map.keys[i], r->name, r->name_len) == 0) {
            *out = c->item->u.map.vals[i];
            return 0;
        }
    buf keys = BUF_INIT;
    for (size_t i = 0; i < c->item->u.map.n; i++)
        buf_printf(&keys, "%s%s", i ? ", " : "", c->item->u.map.keys[i]);
    err_at(c, n, r->start, "the item has no field '%.*s' (it has: %s)", (int)r->name_len, r->name,
           buf_str(&keys));
    buf_free(&keys);
    return 0;
}

/* The value at path ("NAME" or "NAME.KEY.KEY...") of the parameters:
 * *out, or NULL after a reported error. */
static int param_path(subst_ctx *c, const ynode *n, const ref *r, const char *path, size_t path_len,
                      value **out) {
    int len = (int)(r->end - r->start);
    const char *text = n->u.scalar.text + r->start;
    *out = NULL;
    if (!c->params_allowed) {
        err_at(c, n, r->start, "a parameter's default cannot refer to '%.*s'", len, text);
        return 0;
    }
    size_t seg = 0;
    while (seg < path_len && path[seg] != '.')
        seg++;
    for (size_t i = 0, start = 0; i <= path_len; i++)
        if (i == path_len || path[i] == '.') {
            if (!valid_name(path + start, i - start)) {
                err_at(c, n, r->start, "bad name in '%.*s': expected letters, digits and '_'", len,
                       text);
                return 0;
            }
            start = i + 1;
        }
    char *name = arena_strndup(&c->p->arena, path, seg);
    if (!name)
        return -ENOMEM;
    const char *hint;
    const param *found = pipeline_find_param(c->p, name, &hint);
    if (!found) {
        if (hint)
            err_at(c, n, r->start, "unknown parameter '%s' (did you mean '%s'?)", name, hint);
        else
            err_at(c, n, r->start, "unknown parameter '%s': declare it under 'params'", name);
        return 0;
    }
    value *v = found->value;
    while (seg < path_len) {
        size_t k0 = seg + 1, k1 = k0;
        while (k1 < path_len && path[k1] != '.')
            k1++;
        if (v->failed)
            return 0;
        if (v->kind != VAL_MAP) {
            err_at(c, n, r->start, "'params.%.*s' is %s, not a mapping: it has no key '%.*s'",
                   (int)seg, path, value_kind_name(v->kind), (int)(k1 - k0), path + k0);
            return 0;
        }
        value *next = NULL;
        for (size_t i = 0; i < v->u.map.n && !next; i++)
            if (strlen(v->u.map.keys[i]) == k1 - k0 &&
                memcmp(v->u.map.keys[i], path + k0, k1 - k0) == 0)
                next = v->u.map.vals[i];
        if (!next) {
            buf keys = BUF_INIT;
            for (size_t i = 0; i < v->u.map.n; i++)
                buf_printf(&keys, "%s%s", i ? ", " : "", v->u.map.keys[i]);
            err_at(c, n, r->start, "'params.%.*s' has no key '%.*s' (it has: %s)", (int)seg, path,
                   (int)(k1 - k0), path + k0, v->u.map.n ? buf_str(&keys) : "none");
            buf_free(&keys);
            return 0;
        }
        v = next;
        seg = k1;
    }
    *out = v;
    return 0;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

/* ${join(params.PATH, 'SEP')}: a list parameter's items as text, SEP
 * between them. *out is NULL after a reported error. */
static int resolve_join(subst_ctx *c, const ynode *n, const ref *r, value **out) {
    int len = (int)(r->end - r->start);
    const char *text = n->u.scalar.text + r->start, *b = r->name, *e = r->name + r->name_len;
    *out = NULL;
    while (b < e && is_space(*b))
        b++;
    const char *p0 = b;
    if (e - b > 7 && memcmp(b, "params.", 7) == 0) {
        b += 7;
        p0 = b;
        while (b < e && (is_ident(*b) || *b == '.'))
            b++;
    }
    const char *p1 = b;
    while (b < e && is_space(*b))
        b++;
    const char *s0 = NULL, *s1 = NULL;
    if (b < e && *b == ',') {
        b++;
        while (b < e && is_space(*b))
            b++;
        if (b < e && (*b == '\'' || *b == '"')) {
            char q = *b++;
            s0 = b;
            while (b < e && *b != q)
                b++;
            s1 = b;
            if (b < e)
                b++;
            else
                s0 = NULL;
        }
        while (b < e && is_space(*b))
            b++;
    }
    if (p0 == p1 || p0 == r->name || !s0 || b != e) {
        err_at(c, n, r->start,
               "'%.*s': write ${join(params.NAME, 'SEPARATOR')}, NAME a list parameter", len, text);
        return 0;
    }
    value *list;
    int rc = param_path(c, n, r, p0, (size_t)(p1 - p0), &list);
    if (rc || !list)
        return rc;
    if (list->failed)
        return 0;
    if (list->kind != VAL_LIST) {
        err_at(c, n, r->start, "'%.*s' joins a list, but 'params.%.*s' is %s", len, text,
               (int)(p1 - p0), p0, value_kind_name(list->kind));
        return 0;
    }
    buf joined = BUF_INIT;
    int secret = 0;
    for (size_t i = 0; i < list->u.list.n; i++) {
        const value *it = list->u.list.items[i];
        if (it->kind == VAL_LIST || it->kind == VAL_MAP) {
            err_at(c, n, r->start, "'%.*s': item %zu of 'params.%.*s' is %s, not text", len, text,
                   i, (int)(p1 - p0), p0, value_kind_name(it->kind));
            buf_free(&joined);
            return 0;
        }
        if (i)
            buf_append(&joined, s0, (size_t)(s1 - s0));
        if (it->secret)
            buf_append(&joined, it->u.str.s, it->u.str.len);
        else
            value_write_text(&joined, it);
        secret |= it->secret;
    }
    value *v =
        buf_failed(&joined) ? NULL : value_new_str(&c->p->arena, buf_str(&joined), joined.len);
    buf_free(&joined);
    if (!v)
        return -ENOMEM;
    v->secret = secret;
    v->line = n->line;
    v->col = n->col;
    *out = v;
    return 0;
}

/* Resolves r to a value; *out is NULL after a reported error. */
static int resolve(subst_ctx *c, const ynode *n, const ref *r, value **out) {
    arena *a = &c->p->arena;
    int len = (int)(r->end - r->start);
    const char *text = n->u.scalar.text + r->start;
    *out = NULL;
    if (r->ns == NS_UNKNOWN) {
        err_at(c, n, r->start,
               "unknown namespace '%.*s' in '%.*s' (use params, env, secret or item)",
               (int)r->ns_len, r->ns_text, len, text);
        return 0;
    }
    if (r->ns == NS_ITEM)
        return resolve_item(c, n, r, out);
    if (r->ns == NS_JOIN)
        return resolve_join(c, n, r, out);
    if (r->ns == NS_PARAMS && !r->has_dflt)
        return param_path(c, n, r, r->name, r->name_len, out);
    if (!valid_name(r->name, r->name_len)) {
        err_at(c, n, r->start, "bad name in '%.*s': expected letters, digits and '_'", len, text);
        return 0;
    }
    if (r->has_dflt && r->ns != NS_ENV) {
        err_at(c, n, r->start, "only ${env.X} takes a default (':-'), not '%.*s'", len, text);
        return 0;
    }
    char *name = arena_strndup(a, r->name, r->name_len);
    if (!name)
        return -ENOMEM;
    const char *got = r->ns == NS_ENV ? env_lookup(c, name) : secret_lookup(c, name);
    size_t got_len = got ? strlen(got) : 0;
    if (!got && r->has_dflt) {
        got = r->dflt;
        got_len = r->dflt_len;
    }
    if (!got && r->ns == NS_ENV) {
        err_at(c, n, r->start,
               "environment variable '%s' is not set (write ${env.%s:-default} to give a "
               "default)",
               name, name);
        return 0;
    }
    if (!got && c->opt->require_secrets) {
        err_at(c, n, r->start, "secret '%s' is not set", name);
        return 0;
    }
    int placeholder_secret = !got;
    if (!got) {
        got = "***";
        got_len = 3;
    }
    value *v = value_new_str(a, got, got_len);
    if (!v)
        return -ENOMEM;
    v->secret = r->ns == NS_SECRET;
    if (v->secret && !placeholder_secret && !remember_secret(c->p, v->u.str.s))
        return -ENOMEM;
    v->line = n->line;
    v->col = n->col;
    *out = v;
    return 0;
}

/* About how many bytes v takes written out: its text, plus a little for
 * each item. Stops counting past limit. */
static size_t value_bytes(const value *v, size_t limit) {
    size_t n = 8;
    if (v->kind == VAL_STR)
        return v->u.str.len + 2;
    if (v->kind == VAL_LIST)
        for (size_t i = 0; i < v->u.list.n && n <= limit; i++)
            n += value_bytes(v->u.list.items[i], limit);
    else if (v->kind == VAL_MAP)
        for (size_t i = 0; i < v->u.map.n && n <= limit; i++)
            n += strlen(v->u.map.keys[i]) + value_bytes(v->u.map.vals[i], limit);
    return n;
}

/* Counts `bytes` more of expansion made by reference r of n (the value
 * now `value_len` long); reports the reference that passes a limit.
 * Returns 1 when within both. */
static int within_limits(subst_ctx *c, const ynode *n, const ref *r, size_t bytes,
                         size_t value_len) {
    const char *s = n->u.scalar.text + r->start;
    int len = (int)(r->end - r->start);
    if (c->over)
        return 0;
    c->expanded += bytes;
    if (value_len > SUBST_MAX_VALUE) {
        err_at(c, n, r->start,
               "substituting '%.*s' makes this value larger than %u MiB: the limit of a value "
               "after substitution",
               len, s, SUBST_MAX_VALUE >> 20);
        return 0;
    }
    if (c->expanded > SUBST_MAX_TOTAL) {
        c->over = 1;
        err_at(c, n, r->start,
               "substituting '%.*s' makes the pipeline's substituted values larger than %u MiB "
               "in all: the limit of a pipeline after substitution",
               len, s, SUBST_MAX_TOTAL >> 20);
        return 0;
    }
    return 1;
}

static value *placeholder(subst_ctx *c, const ynode *n) {
    value *v = value_new(&c->p->arena, VAL_NULL);
    if (v) {
        v->failed = 1;
        v->line = n->line;
        v->col = n->col;
    }
    return v;
}

static int expand_scalar(subst_ctx *c, const ynode *n, value **out) {
    const char *s = n->u.scalar.text;
    size_t len = n->u.scalar.len;
    arena *a = &c->p->arena;
    ref r;
    *out = NULL;

    /* A whole-scalar reference keeps its value's type. */
    if (len > 3 && s[0] == '$' && s[1] == '{' && parse_ref(s, len, 0, &r) == 1 && r.end == len) {
        value *v;
        int rc = resolve(c, n, &r, &v);
        if (rc)
            return rc;
        if (v && !within_limits(c, n, &r, value_bytes(v, SUBST_MAX_TOTAL), 0))
            v = NULL;
        *out = v ? v : placeholder(c, n);
        return *out ? 0 : -ENOMEM;
    }

    buf b = BUF_INIT;
    int secret = 0, failed = 0, rc = 0;
    size_t lit = 0; /* start of literal text not yet copied */
    for (size_t i = 0; i + 1 < len && rc == 0;) {
        if (s[i] != '$') {
            i++;
            continue;
        }
        if (s[i + 1] == '$' && i + 2 < len && s[i + 2] == '{') {
            buf_append(&b, s + lit, i - lit);
            lit = i + 1; /* drop one '$' */
            i += 3;
            continue;
        }
        if (s[i + 1] != '{') {
            i++;
            continue;
        }
        int got = parse_ref(s, len, i, &r);
        if (got == 0) {
            i += 2;
            continue;
        }
        if (got < 0) {
            err_at(c, n, i, "unterminated '${' (a '}' is missing)");
            failed = 1;
            break;
        }
        value *v;
        rc = resolve(c, n, &r, &v);
        if (rc == 0 && v && (v->kind == VAL_LIST || v->kind == VAL_MAP)) {
            err_at(c, n, r.start, "'%.*s' is %s and cannot be embedded in text",
                   (int)(r.end - r.start), s + r.start, value_kind_name(v->kind));
            v = NULL;
        }
        if (rc == 0 && !v)
            failed = 1;
        if (rc == 0 && v) {
            buf_append(&b, s + lit, i - lit);
            size_t before = b.len;
            if (v->secret) /* the real value: the result is marked secret as a whole */
                buf_append(&b, v->u.str.s, v->u.str.len);
            else
                value_write_text(&b, v);
            secret |= v->secret;
            if (!within_limits(c, n, &r, b.len - before, b.len)) {
                failed = 1;
                break;
            }
        }
        lit = i = r.end;
    }
    if (rc == 0 && !failed) {
        buf_append(&b, s + lit, len - lit);
        if (buf_failed(&b)) {
            rc = -ENOMEM;
        } else if (!n->quoted && b.len == len && memcmp(b.data ? b.data : "", s, len) == 0) {
            /* Nothing was substituted: type it like any plain scalar. */
            rc = value_from_plain(a, s, len, out);
            if (rc == -ERANGE) {
                err_at(c, n, 0, "integer '%s' is out of range (64 bits)", s);
                rc = 0;
                *out = placeholder(c, n);
            }
        } else {
            *out = value_new_str(a, buf_str(&b), b.len);
            if (*out)
                (*out)->secret = secret;
        }
    } else if (rc == 0) {
        *out = placeholder(c, n);
    }
    buf_free(&b);
    if (rc == 0 && !*out)
        rc = -ENOMEM;
    return rc;
}

static const char *const tag_names[] = {"", "an integer (!!int)", "a number (!!float)",
                                        "true or false (!!bool)", "null (!!null)"};

/* Whether a typed scalar is what its standard tag asks for. */
static int tag_fits(ytag tag, const value *v) {
    switch (tag) {
    case YTAG_INT:
        return v->kind == VAL_INT;
    case YTAG_FLOAT:
        return v->kind == VAL_FLOAT || v->kind == VAL_INT;
    case YTAG_BOOL:
        return v->kind == VAL_BOOL;
    case YTAG_NULL:
        return v->kind == VAL_NULL;
    default:
        return 1;
    }
}

/* Converts one scalar: typed as YAML when it holds no reference, else
 * expanded. Errors are reported and leave a placeholder. */
static int subst_scalar(void *ud, const ynode *n, value **out) {
    subst_ctx *c = ud;
    arena *a = &c->p->arena;
    *out = NULL;
    if (memchr(n->u.scalar.text, '$', n->u.scalar.len))
        return expand_scalar(c, n, out); /* a shared parameter keeps its own position */
    int rc;
    if (n->quoted) {
        *out = value_new_str(a, n->u.scalar.text, n->u.scalar.len);
        rc = *out ? 0 : -ENOMEM;
    } else {
        rc = value_from_plain(a, n->u.scalar.text, n->u.scalar.len, out);
        if (rc == -ERANGE) {
            err_at(c, n, 0, "integer '%s' is out of range (64 bits)", n->u.scalar.text);
            *out = placeholder(c, n);
            rc = *out ? 0 : -ENOMEM;
        } else if (rc == 0 && !tag_fits(n->tag, *out)) {
            err_at(c, n, 0, "'%s' is not %s, as its tag says", n->u.scalar.text, tag_names[n->tag]);
            *out = placeholder(c, n);
            rc = *out ? 0 : -ENOMEM;
        }
    }
    if (rc == 0) {
        (*out)->line = n->line;
        (*out)->col = n->col;
    }
    return rc;
}

int subst_node(subst_ctx *c, const ynode *n, value **out) {
    return value_from_ynode_with(&c->p->arena, n, subst_scalar, c, out);
}
