#include "value_json.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int value_append_bson(bson_t *doc, const char *key, size_t key_len, const value *v, int mask) {
    int klen = (int)key_len;
    bool ok = true;
    if (mask && v->secret)
        return bson_append_utf8(doc, key, klen, "***", 3) ? 0 : -ENOMEM;
    switch (v->kind) {
    case VAL_NULL:
        ok = bson_append_null(doc, key, klen);
        break;
    case VAL_BOOL:
        ok = bson_append_bool(doc, key, klen, v->u.boolean);
        break;
    case VAL_INT:
        ok = bson_append_int64(doc, key, klen, v->u.integer);
        break;
    case VAL_FLOAT:
        ok = bson_append_double(doc, key, klen, v->u.real);
        break;
    case VAL_STR:
        ok = bson_append_utf8(doc, key, klen, v->u.str.s, (int)v->u.str.len);
        break;
    case VAL_LIST: {
        bson_t child;
        ok = bson_append_array_begin(doc, key, klen, &child);
        for (size_t i = 0; ok && i < v->u.list.n; i++) {
            char idx[16];
            const char *k;
            size_t kl = bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
            ok = value_append_bson(&child, k, kl, v->u.list.items[i], mask) == 0;
        }
        ok = bson_append_array_end(doc, &child) && ok;
        break;
    }
    case VAL_MAP: {
        bson_t child;
        ok = bson_append_document_begin(doc, key, klen, &child);
        for (size_t i = 0; ok && i < v->u.map.n; i++)
            ok = value_append_bson(&child, v->u.map.keys[i], strlen(v->u.map.keys[i]),
                                   v->u.map.vals[i], mask) == 0;
        ok = bson_append_document_end(doc, &child) && ok;
        break;
    }
    }
    return ok ? 0 : -ENOMEM;
}

int value_from_bson(arena *a, const bson_iter_t *it, value **out) {
    value *v = NULL;
    *out = NULL;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_NULL:
        v = value_new(a, VAL_NULL);
        break;
    case BSON_TYPE_BOOL:
        if ((v = value_new(a, VAL_BOOL)))
            v->u.boolean = bson_iter_bool(it);
        break;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
        if ((v = value_new(a, VAL_INT)))
            v->u.integer = bson_iter_as_int64(it);
        break;
    case BSON_TYPE_DOUBLE:
        if ((v = value_new(a, VAL_FLOAT)))
            v->u.real = bson_iter_double(it);
        break;
    case BSON_TYPE_UTF8: {
        uint32_t len;
        const char *s = bson_iter_utf8(it, &len);
        v = value_new_str(a, s, len);
        break;
    }
    case BSON_TYPE_ARRAY:
    case BSON_TYPE_DOCUMENT: {
        int is_map = bson_iter_type(it) == BSON_TYPE_DOCUMENT;
        bson_iter_t child;
        size_t n = 0;
        if (!bson_iter_recurse(it, &child))
            return -EINVAL;
        while (bson_iter_next(&child))
            n++;
        v = value_new(a, is_map ? VAL_MAP : VAL_LIST);
        value **items = v ? arena_alloc(a, (n + 1) * sizeof(value *)) : NULL;
        const char **keys = is_map && v ? arena_alloc(a, (n + 1) * sizeof(char *)) : NULL;
        if (!items || (is_map && !keys))
            return -ENOMEM;
        bson_iter_recurse(it, &child);
        for (size_t i = 0; i < n && bson_iter_next(&child); i++) {
            int rc = value_from_bson(a, &child, &items[i]);
            if (rc)
                return rc;
            if (is_map && !(keys[i] = arena_strdup(a, bson_iter_key(&child))))
                return -ENOMEM;
        }
        if (is_map) {
            v->u.map.keys = keys;
            v->u.map.vals = items;
            v->u.map.n = n;
        } else {
            v->u.list.items = items;
            v->u.list.n = n;
        }
        break;
    }
    default:
        return -EINVAL;
    }
    if (!v)
        return -ENOMEM;
    *out = v;
    return 0;
}

static void json_string(buf *b, const char *s, size_t len) {
    char *esc = bson_utf8_escape_for_json(s, (ssize_t)len);
    buf_putc(b, '"');
    if (esc)
        buf_puts(b, esc);
    else
        b->failed = 1;
    buf_putc(b, '"');
    bson_free(esc);
}

int value_write_json(buf *b, const value *v, int mask) {
    if (mask && v->secret) {
        buf_puts(b, "\"***\"");
        return buf_failed(b) ? -ENOMEM : 0;
    }
    switch (v->kind) {
    case VAL_NULL:
        buf_puts(b, "null");
        break;
    case VAL_BOOL:
        buf_puts(b, v->u.boolean ? "true" : "false");
        break;
    case VAL_INT:
        buf_printf(b, "%lld", (long long)v->u.integer);
        break;
    case VAL_FLOAT:
        if (isfinite(v->u.real))
            buf_printf(b, "%.17g", v->u.real);
        else
            buf_puts(b, "null"); /* JSON has no infinities */
        break;
    case VAL_STR:
        json_string(b, v->u.str.s, v->u.str.len);
        break;
    case VAL_LIST:
        buf_putc(b, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i)
                buf_putc(b, ',');
            value_write_json(b, v->u.list.items[i], mask);
        }
        buf_putc(b, ']');
        break;
    case VAL_MAP:
        buf_putc(b, '{');
        for (size_t i = 0; i < v->u.map.n; i++) {
            if (i)
                buf_putc(b, ',');
            json_string(b, v->u.map.keys[i], strlen(v->u.map.keys[i]));
            buf_putc(b, ':');
            value_write_json(b, v->u.map.vals[i], mask);
        }
        buf_putc(b, '}');
        break;
    }
    return buf_failed(b) ? -ENOMEM : 0;
}
