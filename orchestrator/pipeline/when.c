/* when.c - parsing, checking and evaluating steps' conditions. */
#include "when.h"
#include "authoring.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    W_NULL,
    W_BOOL,
    W_NUM,
    W_STR,
    W_LIST,
    W_REF,    /* ${...} not yet resolved */
    W_METRIC, /* ${steps.ID.metrics.NAME}, resolved to a step */
    W_NOT,
    W_AND,
    W_OR,
    W_EQ,
    W_NE,
    W_LT,
    W_GT,
    W_LE,
    W_GE,
    W_IN,
} when_op;

struct when_expr {
    when_op op;
    size_t off, end; /* where it is written in the condition */
    when_expr *l, *r;
    when_expr **items; /* a list's */
    size_t n;
    int b;
    double num;
    const char *str; /* W_STR's text; W_REF's body; W_METRIC's metric name */
    size_t len;
    uint32_t step; /* W_METRIC's */
};

static const char *const op_text[] = {"",   "",   "",   "",  "",  "",   "",   "!", "&&",
                                      "||", "==", "!=", "<", ">", "<=", ">=", "in"};

/* ---- parsing ------------------------------------------------------------- */

typedef struct parser {
    arena *a;
    const char *s;
    size_t i, len;
    size_t err_off;
    char *err;
    size_t err_size;
    int failed, oom;
} parser;

static void perr(parser *P, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void perr(parser *P, size_t off, const char *fmt, ...) {
    if (P->failed)
        return;
    P->failed = 1;
    P->err_off = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err, P->err_size, fmt, ap);
    va_end(ap);
}

static void skip_space(parser *P) {
    while (P->i < P->len && (P->s[P->i] == ' ' || P->s[P->i] == '\t' || P->s[P->i] == '\n'))
        P->i++;
}

static int at(parser *P, const char *tok) {
    skip_space(P);
    size_t n = strlen(tok);
    return P->len - P->i >= n && memcmp(P->s + P->i, tok, n) == 0;
}

static int is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static when_expr *node(parser *P, when_op op, size_t off) {
    when_expr *e = arena_calloc(P->a, 1, sizeof(*e));
    if (!e) {
        P->oom = P->failed = 1;
        return NULL;
    }
    e->op = op;
    e->off = off;
    e->end = P->i;
    return e;
}

static when_expr *parse_or(parser *P);

static when_expr *parse_primary(parser *P) {
    skip_space(P);
    size_t off = P->i;
    if (P->i >= P->len) {
        perr(P, off, "the condition ends where a value is expected");
        return NULL;
    }
    char c = P->s[P->i];
    if (c == '(') {
        P->i++;
        when_expr *e = parse_or(P);
        if (e && !at(P, ")"))
            perr(P, P->i, "a ')' is missing (the '(' is at offset %zu)", off);
        if (!P->failed)
            P->i++;
        return e;
    }
    if (c == '[') {
        P->i++;
        when_expr *e = node(P, W_LIST, off);
        size_t cap = 0;
        while (e && !P->failed && !at(P, "]")) {
            if (e->n && !at(P, ",")) {
                perr(P, P->i, "expected ',' or ']' in the list");
                break;
            }
            if (e->n)
                P->i++;
            when_expr *item = parse_or(P);
            if (!item)
                break;
            if (e->n == cap) {
                cap = cap ? cap * 2 : 4;
                when_expr **grown = arena_alloc(P->a, cap * sizeof(*grown));
                if (!grown) {
                    P->oom = P->failed = 1;
                    break;
                }
                if (e->n)
                    memcpy(grown, e->items, e->n * sizeof(*grown));
                e->items = grown;
            }
            e->items[e->n++] = item;
        }
        if (!P->failed)
            P->i++;
        return P->failed ? NULL : e;
    }
    if (c == '\'' || c == '"') {
        size_t j = P->i + 1;
        while (j < P->len && P->s[j] != c)
            j++;
        if (j >= P->len) {
            perr(P, off, "a text opened with %c is never closed", c);
            return NULL;
        }
        P->i = j + 1;
        when_expr *e = node(P, W_STR, off);
        if (e) {
            e->str = P->s + off + 1;
            e->len = j - off - 1;
        }
        return e;
    }
    if (c == '$' && P->i + 1 < P->len && P->s[P->i + 1] == '{') {
        const char *close = memchr(P->s + P->i, '}', P->len - P->i);
        if (!close) {
            perr(P, off, "unterminated '${' (a '}' is missing)");
            return NULL;
        }
        P->i = (size_t)(close - P->s) + 1;
        when_expr *e = node(P, W_REF, off);
        if (e) {
            e->str = P->s + off + 2;
            e->len = (size_t)(close - e->str);
        }
        return e;
    }
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.') {
        char *end;
        char tmp[64];
        size_t j = P->i;
        while (j < P->len && j - P->i < sizeof(tmp) - 1 &&
               (is_word(P->s[j]) || strchr("+-.", P->s[j])))
            j++;
        memcpy(tmp, P->s + P->i, j - P->i);
        tmp[j - P->i] = '\0';
        double v = strtod(tmp, &end);
        if (end == tmp || *end || !isfinite(v)) {
            perr(P, off, "'%s' is not a number", tmp);
            return NULL;
        }
        P->i = j;
        when_expr *e = node(P, W_NUM, off);
        if (e)
            e->num = v;
        return e;
    }
    if (is_word(c)) {
        size_t j = P->i;
        while (j < P->len && is_word(P->s[j]))
            j++;
        size_t n = j - P->i;
        const char *w = P->s + P->i;
        P->i = j;
        if ((n == 4 && !memcmp(w, "true", 4)) || (n == 5 && !memcmp(w, "false", 5))) {
            when_expr *e = node(P, W_BOOL, off);
            if (e)
                e->b = n == 4;
            return e;
        }
        if (n == 4 && !memcmp(w, "null", 4))
            return node(P, W_NULL, off);
        perr(P, off,
             "unknown word '%.*s': quote text ('%.*s'), or refer to a value with ${params.NAME}, "
             "${env.NAME} or ${steps.ID.metrics.NAME}",
             (int)n, w, (int)n, w);
        return NULL;
    }
    perr(P, off, "unexpected '%c' where a value is expected", c);
    return NULL;
}

static when_expr *parse_not(parser *P) {
    skip_space(P);
    size_t off = P->i;
    if (at(P, "!") && !at(P, "!=")) {
        P->i++;
        when_expr *operand = parse_not(P);
        when_expr *e = operand ? node(P, W_NOT, off) : NULL;
        if (e)
            e->l = operand;
        return e;
    }
    return parse_primary(P);
}

static when_expr *parse_cmp(parser *P) {
    when_expr *l = parse_not(P);
    if (!l)
        return NULL;
    static const struct {
        const char *tok;
        when_op op;
    } ops[] = {{"==", W_EQ}, {"!=", W_NE}, {"<=", W_LE}, {">=", W_GE},
               {"<", W_LT},  {">", W_GT},  {"in", W_IN}};
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        if (!at(P, ops[k].tok))
            continue;
        size_t n = strlen(ops[k].tok), off = P->i;
        if (ops[k].op == W_IN && P->i + n < P->len && is_word(P->s[P->i + n]))
            break; /* a word starting with "in" */
        P->i += n;
        when_expr *r = parse_not(P);
        when_expr *e = r ? node(P, ops[k].op, off) : NULL;
        if (e) {
            e->l = l;
            e->r = r;
        }
        if (e && (at(P, "==") || at(P, "!=") || at(P, "<") || at(P, ">")))
            perr(P, P->i, "comparisons do not chain: use && between them, or parentheses");
        return e;
    }
    return l;
}

static when_expr *parse_and(parser *P) {
    when_expr *l = parse_cmp(P);
    while (l && at(P, "&&")) {
        size_t off = P->i;
        P->i += 2;
        when_expr *r = parse_cmp(P);
        when_expr *e = r ? node(P, W_AND, off) : NULL;
        if (e) {
            e->l = l;
            e->r = r;
        }
        l = e;
    }
    return l;
}

static when_expr *parse_or(parser *P) {
    when_expr *l = parse_and(P);
    while (l && at(P, "||")) {
        size_t off = P->i;
        P->i += 2;
        when_expr *r = parse_and(P);
        when_expr *e = r ? node(P, W_OR, off) : NULL;
        if (e) {
            e->l = l;
            e->r = r;
        }
        l = e;
    }
    return l;
}

int when_parse(arena *a, const char *text, when_expr **out, size_t *err_off, char *err,
               size_t err_size) {
    parser P = {a, text, 0, strlen(text), 0, err, err_size, 0, 0};
    *out = NULL;
    *err_off = 0;
    when_expr *e = parse_or(&P);
    skip_space(&P);
    if (e && !P.failed && P.i < P.len) {
        if (P.s[P.i] == '=' || P.s[P.i] == '&' || P.s[P.i] == '|')
            perr(&P, P.i, "unknown operator at '%.*s' (use ==, !=, &&, ||)", 2, P.s + P.i);
        else
            perr(&P, P.i, "unexpected '%.*s' after the condition", (int)(P.len - P.i), P.s + P.i);
    }
    if (P.oom)
        return -ENOMEM;
    if (P.failed) {
        *err_off = P.err_off;
        return -EINVAL;
    }
    *out = e;
    return 0;
}

/* ---- checking -------------------------------------------------------------- */

typedef enum { T_NULL, T_BOOL, T_NUM, T_STR, T_LIST, T_BAD } when_type;

static const char *const type_names[] = {"null", "a boolean", "a number", "text", "a list", ""};

typedef struct checker {
    pipeline *p;
    diag_list *d;
    const step *s;
    uint32_t self;
} checker;

static void cerr(checker *C, const when_expr *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cerr(checker *C, const when_expr *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(C->d, DIAG_ERROR, C->p->file, C->s->when_pos.line,
              C->s->when_pos.col + (unsigned)(e ? e->off : 0), fmt, ap);
    va_end(ap);
}

/* Turns e (a W_REF) into the constant v stands for. Returns 0, -ENOMEM, or
 * -EINVAL for a value a condition cannot hold (reported). */
static int from_value(checker *C, when_expr *e, const value *v) {
    switch (v->kind) {
    case VAL_NULL:
        e->op = W_NULL;
        return 0;
    case VAL_BOOL:
        e->op = W_BOOL;
        e->b = v->u.boolean;
        return 0;
    case VAL_INT:
        e->op = W_NUM;
        e->num = (double)v->u.integer;
        return 0;
    case VAL_FLOAT:
        e->op = W_NUM;
        e->num = v->u.real;
        return 0;
    case VAL_STR:
        e->op = W_STR;
        e->str = v->u.str.s;
        e->len = v->u.str.len;
        return 0;
    case VAL_LIST: {
        when_expr **items = arena_calloc(&C->p->arena, v->u.list.n + 1, sizeof(*items));
        if (!items)
            return -ENOMEM;
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (!(items[i] = arena_calloc(&C->p->arena, 1, sizeof(*items[i]))))
                return -ENOMEM;
            items[i]->off = e->off;
            int rc = from_value(C, items[i], v->u.list.items[i]);
            if (rc)
                return rc;
        }
        e->op = W_LIST;
        e->items = items;
        e->n = v->u.list.n;
        return 0;
    }
    default:
        cerr(C, e,
             "'${%.*s}' is a mapping: a condition compares text, numbers, booleans and lists "
             "(name one of its keys: ${%.*s.KEY})",
             (int)e->len, e->str, (int)e->len, e->str);
        return -EINVAL;
    }
}

/* Whether from is upstream of step to (through inputs and 'after'). With
 * path, writes the path from -> ... -> to when it is. */
static int upstream(const pipeline *p, uint32_t from, uint32_t to, buf *path) {
    uint32_t *prev = malloc(p->n_steps * sizeof(*prev)),
             *queue = malloc(p->n_steps * sizeof(*queue));
    int found = 0;
    if (!prev || !queue) {
        free(prev);
        free(queue);
        return 0;
    }
    for (size_t i = 0; i < p->n_steps; i++)
        prev[i] = UINT32_MAX;
    size_t head = 0, tail = 0;
    queue[tail++] = to;
    prev[to] = to;
    while (head < tail && !found) {
        const step *s = &p->steps[queue[head++]];
        uint32_t here = queue[head - 1];
        for (size_t k = 0; k < s->n_inputs + s->n_after && !found; k++) {
            uint32_t up = k < s->n_inputs ? s->inputs[k].from : s->after[k - s->n_inputs].from;
            if (up >= p->n_steps || prev[up] != UINT32_MAX)
                continue;
            prev[up] = here;
            queue[tail++] = up;
            found = up == from;
        }
    }
    if (found && path)
        for (uint32_t v = from;; v = prev[v]) {
            buf_printf(path, "%s%s", v == from ? "" : " -> ", p->steps[v].id);
            if (v == to)
                break;
        }
    free(prev);
    free(queue);
    return found;
}

static int resolve_ref(checker *C, when_expr *e) {
    const char *b = e->str, *end = e->str + e->len;
    const char *dot = memchr(b, '.', e->len);
    size_t ns = dot ? (size_t)(dot - b) : e->len;
    if (dot && ns == 6 && !memcmp(b, "params", 6)) {
        const char *path = dot + 1;
        size_t seg = 0, path_len = (size_t)(end - path);
        while (seg < path_len && path[seg] != '.')
            seg++;
        char name[PIPELINE_MAX_ID + 1];
        snprintf(name, sizeof(name), "%.*s", (int)(seg < PIPELINE_MAX_ID ? seg : PIPELINE_MAX_ID),
                 path);
        const char *hint = NULL;
        const param *prm = pipeline_find_param(C->p, name, &hint);
        if (!prm) {
            if (hint)
                cerr(C, e, "unknown parameter '%s' (did you mean '%s'?)", name, hint);
            else
                cerr(C, e, "unknown parameter '%s': declare it under 'params'", name);
            return -EINVAL;
        }
        const value *v = prm->value;
        while (seg < path_len) {
            size_t k0 = seg + 1, k1 = k0;
            while (k1 < path_len && path[k1] != '.')
                k1++;
            const value *next = NULL;
            for (size_t i = 0; v->kind == VAL_MAP && i < v->u.map.n && !next; i++)
                if (strlen(v->u.map.keys[i]) == k1 - k0 &&
                    !memcmp(v->u.map.keys[i], path + k0, k1 - k0))
                    next = v->u.map.vals[i];
            if (!next) {
                cerr(C, e, "'params.%.*s' has no key '%.*s'", (int)seg, path, (int)(k1 - k0),
                     path + k0);
                return -EINVAL;
            }
            v = next;
            seg = k1;
        }
        if (v->failed)
            return -EINVAL;
        return from_value(C, e, v);
    }
    if (dot && ns == 3 && !memcmp(b, "env", 3)) {
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(end - dot - 1), dot + 1);
        const char *got = dotenv_effective(C->p, name);
        if (!got) {
            e->op = W_NULL;
        } else {
            e->op = W_STR;
            e->str = got;
            e->len = strlen(got);
        }
        return 0;
    }
    if (dot && ns == 5 && !memcmp(b, "steps", 5)) {
        const char *id = dot + 1;
        const char *m = NULL;
        for (const char *q = id; q + 9 <= end; q++)
            if (!memcmp(q, ".metrics.", 9)) {
                m = q;
                break;
            }
        if (!m || m + 9 >= end) {
            cerr(C, e, "'${%.*s}': write ${steps.ID.metrics.NAME}", (int)e->len, e->str);
            return -EINVAL;
        }
        char sid[PIPELINE_MAX_ID + 16];
        snprintf(sid, sizeof(sid), "%.*s", (int)(m - id), id);
        long k = pipeline_find_step(C->p, sid);
        if (k < 0) {
            cerr(C, e, "'${%.*s}' names no step '%s'", (int)e->len, e->str, sid);
            return -EINVAL;
        }
        buf path = BUF_INIT;
        int rc = 0;
        if ((uint32_t)k == C->self) {
            cerr(C, e,
                 "step '%s' cannot read its own metrics in its condition: they do not exist "
                 "before it runs",
                 sid);
            rc = -EINVAL;
        } else if (upstream(C->p, C->self, (uint32_t)k, &path)) {
            cerr(C, e,
                 "cycle through 'when': the condition of step '%s' reads the metrics of '%s', "
                 "which runs after it (%s)",
                 C->s->id, sid, buf_str(&path));
            rc = -EINVAL;
        } else if (!upstream(C->p, (uint32_t)k, C->self, NULL)) {
            cerr(C, e,
                 "the condition of step '%s' reads the metrics of '%s', which is not upstream "
                 "of it: add 'after: %s' (or an input from it) so it has finished first",
                 C->s->id, sid, sid);
            rc = -EINVAL;
        }
        buf_free(&path);
        if (rc)
            return rc;
        e->op = W_METRIC;
        e->step = (uint32_t)k;
        e->str = m + 9;
        e->len = (size_t)(end - e->str);
        char *name = arena_strndup(&C->p->arena, e->str, e->len);
        if (!name)
            return -ENOMEM;
        e->str = name;
        return 0;
    }
    cerr(C, e,
         "unknown reference '${%.*s}' in a condition (use ${params.NAME}, ${env.NAME} or "
         "${steps.ID.metrics.NAME})",
         (int)e->len, e->str);
    return -EINVAL;
}

/* The type of e after resolving its references; T_BAD after a reported
 * error (*oom set when memory ran out). */
static when_type check(checker *C, when_expr *e, int *oom) {
    switch (e->op) {
    case W_NULL:
        return T_NULL;
    case W_BOOL:
        return T_BOOL;
    case W_NUM:
    case W_METRIC:
        return T_NUM;
    case W_STR:
        return T_STR;
    case W_LIST: {
        when_type t = T_LIST;
        for (size_t i = 0; i < e->n; i++) {
            when_type it = check(C, e->items[i], oom);
            if (it == T_LIST) {
                cerr(C, e->items[i],
                     "a list in a condition holds text, numbers or booleans, not "
                     "lists");
                t = T_BAD;
            } else if (it == T_BAD) {
                t = T_BAD;
            }
        }
        return t;
    }
    case W_REF: {
        int rc = resolve_ref(C, e);
        if (rc == -ENOMEM)
            *oom = 1;
        return rc ? T_BAD : check(C, e, oom);
    }
    case W_NOT: {
        when_type t = check(C, e->l, oom);
        if (t != T_BOOL && t != T_BAD) {
            cerr(C, e, "'!' needs a boolean, not %s", type_names[t]);
            return T_BAD;
        }
        return t;
    }
    default:
        break;
    }
    when_type l = check(C, e->l, oom), r = check(C, e->r, oom);
    if (l == T_BAD || r == T_BAD)
        return T_BAD;
    const char *op = op_text[e->op];
    switch (e->op) {
    case W_AND:
    case W_OR:
        if (l != T_BOOL || r != T_BOOL) {
            cerr(C, e, "'%s' needs booleans on both sides, not %s and %s", op, type_names[l],
                 type_names[r]);
            return T_BAD;
        }
        return T_BOOL;
    case W_EQ:
    case W_NE:
        if (l != r && l != T_NULL && r != T_NULL) {
            cerr(C, e,
                 "'%s' compares %s with %s: they are never equal (numbers and true/false are "
                 "written bare, text quoted; environment values are text)",
                 op, type_names[l], type_names[r]);
            return T_BAD;
        }
        return T_BOOL;
    case W_IN:
        if (r != T_LIST) {
            cerr(C, e, "'in' needs a list on its right, not %s", type_names[r]);
            return T_BAD;
        }
        if (l == T_LIST) {
            cerr(C, e, "'in' looks for text, a number or a boolean in a list, not a list");
            return T_BAD;
        }
        return T_BOOL;
    default: /* < > <= >= */
        if (l != r || (l != T_NUM && l != T_STR)) {
            cerr(C, e, "'%s' orders two numbers or two texts, not %s and %s", op, type_names[l],
                 type_names[r]);
            return T_BAD;
        }
        return T_BOOL;
    }
}

int pipeline_check_when(pipeline *p, diag_list *d) {
    for (size_t i = 0; i < p->n_steps; i++) {
        step *s = &p->steps[i];
        if (!s->when || s->when_always)
            continue;
        char err[256];
        size_t off;
        when_expr *e;
        int rc = when_parse(&p->arena, s->when, &e, &off, err, sizeof(err));
        if (rc == -ENOMEM)
            return rc;
        if (rc) {
            diag_add(d, DIAG_ERROR, p->file, s->when_pos.line, s->when_pos.col + (unsigned)off,
                     "in the condition of step '%s': %s", s->id, err);
            continue;
        }
        checker C = {p, d, s, (uint32_t)i};
        int oom = 0;
        when_type t = check(&C, e, &oom);
        if (oom)
            return -ENOMEM;
        if (t != T_BOOL && t != T_BAD) {
            cerr(&C, NULL,
                 "the condition of step '%s' is %s, not true or false (compare it: "
                 "'... == ...')",
                 s->id, type_names[t]);
            continue;
        }
        if (t == T_BOOL)
            s->when_expr = e;
    }
    return 0;
}

/* ---- evaluating ------------------------------------------------------------ */

typedef struct wval {
    when_type t;
    int b;
    double num;
    const char *str;
    size_t len;
    const when_expr *list;
} wval;

typedef struct evaluator {
    const pipeline *p;
    when_metric_fn metric;
    void *ud;
    char *why;
    size_t size;
    int undecided;
} evaluator;

static wval eval(evaluator *E, const when_expr *e);

static int equal(evaluator *E, wval a, wval b) {
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case T_NULL:
        return 1;
    case T_BOOL:
        return a.b == b.b;
    case T_NUM:
        return a.num == b.num;
    case T_STR:
        return a.len == b.len && !memcmp(a.str, b.str, a.len);
    case T_LIST:
        if (a.list->n != b.list->n)
            return 0;
        for (size_t i = 0; i < a.list->n; i++)
            if (!equal(E, eval(E, a.list->items[i]), eval(E, b.list->items[i])))
                return 0;
        return 1;
    default:
        return 0;
    }
}

static int order(wval a, wval b) {
    if (a.t == T_NUM)
        return a.num < b.num ? -1 : a.num > b.num;
    if (a.t != T_STR || b.t != T_STR) /* the checker allows no other */
        return 0;
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.str, b.str, n);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static wval eval(evaluator *E, const when_expr *e) {
    wval v = {.t = T_BAD};
    if (E->undecided)
        return v;
    switch (e->op) {
    case W_NULL:
        v.t = T_NULL;
        return v;
    case W_BOOL:
        v.t = T_BOOL;
        v.b = e->b;
        return v;
    case W_NUM:
        v.t = T_NUM;
        v.num = e->num;
        return v;
    case W_STR:
        v.t = T_STR;
        v.str = e->str;
        v.len = e->len;
        return v;
    case W_LIST:
        v.t = T_LIST;
        v.list = e;
        return v;
    case W_METRIC:
        if (!E->metric(E->ud, e->step, e->str, &v.num)) {
            snprintf(E->why, E->size,
                     "its condition reads metric '%s' of step '%s', which that step did not "
                     "report",
                     e->str, E->p->steps[e->step].id);
            E->undecided = 1;
            return v;
        }
        v.t = T_NUM;
        return v;
    case W_NOT:
        v = eval(E, e->l);
        v.b = !v.b;
        return v;
    case W_AND:
    case W_OR: {
        wval l = eval(E, e->l);
        v.t = T_BOOL;
        /* Short-circuit: a metric on the side not needed is not read. */
        if (e->op == W_AND ? !l.b : l.b)
            v.b = l.b;
        else
            v.b = eval(E, e->r).b;
        return v;
    }
    default:
        break;
    }
    wval l = eval(E, e->l), r = eval(E, e->r);
    if (E->undecided)
        return v;
    v.t = T_BOOL;
    switch (e->op) {
    case W_EQ:
        v.b = equal(E, l, r);
        break;
    case W_NE:
        v.b = !equal(E, l, r);
        break;
    case W_IN:
        for (size_t i = 0; i < r.list->n && !v.b; i++)
            v.b = equal(E, l, eval(E, r.list->items[i]));
        break;
    case W_LT:
        v.b = order(l, r) < 0;
        break;
    case W_GT:
        v.b = order(l, r) > 0;
        break;
    case W_LE:
        v.b = order(l, r) <= 0;
        break;
    default:
        v.b = order(l, r) >= 0;
        break;
    }
    return v;
}

int when_eval(const pipeline *p, const step *s, when_metric_fn metric, void *ud, char *why,
              size_t size) {
    if (!s->when_expr)
        return 1;
    evaluator E = {p, metric, ud, why, size, 0};
    wval v = eval(&E, s->when_expr);
    if (E.undecided)
        return -1;
    return v.b ? 1 : 0;
}
