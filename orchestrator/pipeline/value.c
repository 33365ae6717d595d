#include "value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

value *value_new(arena *a, value_kind kind) {
    value *v = arena_calloc(a, 1, sizeof(*v));
    if (v)
        v->kind = kind;
    return v;
}

value *value_new_str(arena *a, const char *s, size_t len) {
    value *v = value_new(a, VAL_STR);
    if (v && !(v->u.str.s = arena_strndup(a, s, len)))
        return NULL;
    if (v)
        v->u.str.len = len;
    return v;
}

static int text_is(const char *t, size_t len, const char *const *words) {
    for (; *words; words++)
        if (strlen(*words) == len && memcmp(t, *words, len) == 0)
            return 1;
    return 0;
}

static int all_digits(const char *s, size_t len, int base) {
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = base == 16
                     ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
                 : base == 8 ? c >= '0' && c <= '7'
                             : c >= '0' && c <= '9';
        if (!ok)
            return 0;
    }
    return 1;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_float_text(const char *s, size_t len) {
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, exp++;
        if (exp == 0)
            return 0;
    }
    return i == len;
}

int value_from_plain(arena *a, const char *t, size_t len, value **out) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    value *v;
    *out = NULL;
    if (text_is(t, len, nulls)) {
        v = value_new(a, VAL_NULL);
    } else if (text_is(t, len, trues) || text_is(t, len, falses)) {
        if ((v = value_new(a, VAL_BOOL)))
            v->u.boolean = text_is(t, len, trues);
    } else if (text_is(t, len, infs) || text_is(t, len, ninfs) || text_is(t, len, nans)) {
        if ((v = value_new(a, VAL_FLOAT)))
            v->u.real = text_is(t, len, nans) ? NAN : text_is(t, len, infs) ? INFINITY : -INFINITY;
    } else {
        size_t sign = (len > 0 && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
        int base = 0;
        size_t start = 0;
        if (len > 2 && t[0] == '0' && t[1] == 'x' && all_digits(t + 2, len - 2, 16))
            base = 16, start = 2;
        else if (len > 2 && t[0] == '0' && t[1] == 'o' && all_digits(t + 2, len - 2, 8))
            base = 8, start = 2;
        else if (all_digits(t + sign, len - sign, 10))
            base = 10;
        if (base) {
            char tmp[80];
            if (len - start >= sizeof(tmp))
                return -ERANGE;
            memcpy(tmp, t + start, len - start);
            tmp[len - start] = '\0';
            errno = 0;
            char *end;
            long long n = strtoll(tmp, &end, base);
            if (errno == ERANGE)
                return -ERANGE;
            if ((v = value_new(a, VAL_INT)))
                v->u.integer = n;
        } else if (is_float_text(t, len)) {
            char *tmp = arena_strndup(a, t, len);
            if (!tmp)
                return -ENOMEM;
            if ((v = value_new(a, VAL_FLOAT)))
                v->u.real = strtod(tmp, NULL);
        } else {
            v = value_new_str(a, t, len);
        }
    }
    if (!v)
        return -ENOMEM;
    *out = v;
    return 0;
}

int value_from_ynode_with(arena *a, const ynode *n, value_scalar_fn convert_scalar, void *ud,
                          value **out) {
    value *v = NULL;
    int rc = 0;
    *out = NULL;
    switch (n->kind) {
    case YNODE_SCALAR:
        return convert_scalar(ud, n, out);
    case YNODE_SEQ:
        v = value_new(a, VAL_LIST);
        if (!v || !(v->u.list.items = arena_alloc(a, (n->u.seq.n + 1) * sizeof(value *))))
            return -ENOMEM;
        for (size_t i = 0; i < n->u.seq.n; i++)
            if ((rc = value_from_ynode_with(a, n->u.seq.items[i], convert_scalar, ud,
                                            &v->u.list.items[i])))
                return rc;
        v->u.list.n = n->u.seq.n;
        break;
    case YNODE_MAP:
        v = value_new(a, VAL_MAP);
        if (!v || !(v->u.map.keys = arena_alloc(a, (n->u.map.n + 1) * sizeof(char *))) ||
            !(v->u.map.vals = arena_alloc(a, (n->u.map.n + 1) * sizeof(value *))))
            return -ENOMEM;
        for (size_t i = 0; i < n->u.map.n; i++) {
            v->u.map.keys[i] = n->u.map.pairs[i].key->u.scalar.text;
            if ((rc = value_from_ynode_with(a, n->u.map.pairs[i].value, convert_scalar, ud,
                                            &v->u.map.vals[i])))
                return rc;
        }
        v->u.map.n = n->u.map.n;
        break;
    }
    v->line = n->line;
    v->col = n->col;
    *out = v;
    return 0;
}

static int typed_scalar(void *ud, const ynode *n, value **out) {
    arena *a = ud;
    int rc = n->quoted
                 ? ((*out = value_new_str(a, n->u.scalar.text, n->u.scalar.len)) ? 0 : -ENOMEM)
                 : value_from_plain(a, n->u.scalar.text, n->u.scalar.len, out);
    if (rc == 0) {
        (*out)->line = n->line;
        (*out)->col = n->col;
    }
    return rc;
}

int value_from_ynode(arena *a, const ynode *n, value **out) {
    return value_from_ynode_with(a, n, typed_scalar, a, out);
}

int value_parse(arena *a, const char *text, value **out, char *err, size_t err_size) {
    diag_list d = DIAG_LIST_INIT;
    ynode *root = NULL;
    *out = NULL;
    int rc = ydoc_parse(a, text, strlen(text), "value", NULL, &d, &root);
    if (rc == 0 && d.errors)
        rc = -EINVAL;
    if (rc == -EINVAL)
        snprintf(err, err_size, "%s", d.n ? d.items[0].msg : "not a YAML value");
    diag_clear(&d);
    if (rc)
        return rc;
    if (!root) {
        *out = value_new(a, VAL_NULL);
        return *out ? 0 : -ENOMEM;
    }
    rc = value_from_ynode(a, root, out);
    if (rc == -ERANGE) {
        snprintf(err, err_size, "integer out of range (64 bits)");
        rc = -EINVAL;
    }
    return rc;
}

const char *value_kind_name(value_kind k) {
    switch (k) {
    case VAL_NULL:
        return "null";
    case VAL_BOOL:
        return "a boolean";
    case VAL_INT:
        return "an integer";
    case VAL_FLOAT:
        return "a number";
    case VAL_STR:
        return "a string";
    case VAL_LIST:
        return "a list";
    default:
        return "a mapping";
    }
}

/* The shortest %g form that reads back to the same double. */
static void write_real(buf *b, double d) {
    if (isnan(d)) {
        buf_puts(b, ".nan");
        return;
    }
    if (isinf(d)) {
        buf_puts(b, d < 0 ? "-.inf" : ".inf");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    buf_puts(b, tmp);
    /* Keep a float a float when it is read back as YAML. */
    if (!strpbrk(tmp, ".eE"))
        buf_puts(b, ".0");
}

static void write_scalar(buf *b, const value *v) {
    switch (v->kind) {
    case VAL_NULL:
        break;
    case VAL_BOOL:
        buf_puts(b, v->u.boolean ? "true" : "false");
        break;
    case VAL_INT:
        buf_printf(b, "%lld", (long long)v->u.integer);
        break;
    case VAL_FLOAT:
        write_real(b, v->u.real);
        break;
    default:
        buf_append(b, v->u.str.s, v->u.str.len);
        break;
    }
}

/* Whether a string must be quoted in flow syntax to read back as itself. */
static int needs_quotes(arena *scratch, const value *v) {
    const char *s = v->u.str.s;
    size_t len = v->u.str.len;
    if (len == 0 || strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]) || s[len - 1] == ' ')
        return 1;
    for (size_t i = 0; i < len; i++)
        if (strchr(",[]{}#\n\t\"\\", s[i]) || (s[i] == ':' && (i + 1 == len || s[i + 1] == ' ')) ||
            (unsigned char)s[i] < 0x20)
            return 1;
    value *typed = NULL;
    int rc = value_from_plain(scratch, s, len, &typed);
    return rc != 0 || typed->kind != VAL_STR;
}

static void write_quoted(buf *b, const char *s, size_t len) {
    buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c == '\n')
            buf_puts(b, "\\n");
        else if (c == '\t')
            buf_puts(b, "\\t");
        else if (c < 0x20)
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

static void write_flow(buf *b, arena *scratch, const value *v) {
    if (v->secret) {
        buf_puts(b, "\"***\"");
        return;
    }
    switch (v->kind) {
    case VAL_NULL:
        buf_puts(b, "null");
        break;
    case VAL_STR:
        if (needs_quotes(scratch, v))
            write_quoted(b, v->u.str.s, v->u.str.len);
        else
            buf_append(b, v->u.str.s, v->u.str.len);
        break;
    case VAL_LIST:
        buf_putc(b, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i)
                buf_puts(b, ", ");
            write_flow(b, scratch, v->u.list.items[i]);
        }
        buf_putc(b, ']');
        break;
    case VAL_MAP:
        buf_putc(b, '{');
        for (size_t i = 0; i < v->u.map.n; i++) {
            if (i)
                buf_puts(b, ", ");
            value key = {.kind = VAL_STR};
            key.u.str.s = v->u.map.keys[i];
            key.u.str.len = strlen(key.u.str.s);
            write_flow(b, scratch, &key);
            buf_puts(b, ": ");
            write_flow(b, scratch, v->u.map.vals[i]);
        }
        buf_putc(b, '}');
        break;
    default:
        write_scalar(b, v);
        break;
    }
}

void value_write_flow(buf *b, const value *v) {
    arena scratch = ARENA_INIT;
    write_flow(b, &scratch, v);
    arena_free(&scratch);
}

void value_write_text(buf *b, const value *v) {
    if (v->secret)
        buf_puts(b, "***");
    else if (v->kind == VAL_LIST || v->kind == VAL_MAP)
        value_write_flow(b, v);
    else
        write_scalar(b, v);
}

static int is_scalar(const value *v) { return v->kind != VAL_LIST && v->kind != VAL_MAP; }

int value_coerce(arena *a, const value *v, const char *raw, const value *like, value **out) {
    *out = NULL;
    if (like->kind == VAL_NULL || like->kind == v->kind) {
        *out = (value *)v;
        return 0;
    }
    value *c = NULL;
    switch (like->kind) {
    case VAL_FLOAT:
        if (v->kind != VAL_INT)
            return -EINVAL;
        if ((c = value_new(a, VAL_FLOAT)))
            c->u.real = (double)v->u.integer;
        break;
    case VAL_STR:
        if (!is_scalar(v))
            return -EINVAL;
        if (raw) {
            c = value_new_str(a, raw, strlen(raw));
        } else {
            buf b = BUF_INIT;
            write_scalar(&b, v);
            c = buf_failed(&b) ? NULL : value_new_str(a, buf_str(&b), b.len);
            buf_free(&b);
        }
        break;
    case VAL_LIST:
        if (!is_scalar(v) || v->kind == VAL_NULL)
            return -EINVAL;
        if ((c = value_new(a, VAL_LIST)) && (c->u.list.items = arena_alloc(a, sizeof(value *)))) {
            c->u.list.items[0] = (value *)v;
            c->u.list.n = 1;
        } else {
            c = NULL;
        }
        break;
    default:
        return -EINVAL;
    }
    if (!c)
        return -ENOMEM;
    c->secret = v->secret;
    c->line = v->line;
    c->col = v->col;
    *out = c;
    return 0;
}
