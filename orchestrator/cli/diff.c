#include "diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *diff_value_text(const bson_iter_t *it) {
    /* The JSON of a one-field document, cut to its value. */
    bson_t one = BSON_INITIALIZER;
    bson_iter_t copy = *it;
    bson_append_iter(&one, "v", 1, &copy);
    size_t n;
    char *json = bson_as_relaxed_extended_json(&one, &n);
    bson_destroy(&one);
    const char *v = json ? strstr(json, "\"v\" : ") : NULL;
    char *out = v && n > 2 ? strndup(v + 6, (size_t)(json + n - 2 - (v + 6))) : NULL;
    bson_free(json);
    return out;
}

static int same_value(const bson_iter_t *x, const bson_iter_t *y) {
    if (BSON_ITER_HOLDS_NUMBER(x) && BSON_ITER_HOLDS_NUMBER(y))
        return bson_iter_as_double(x) == bson_iter_as_double(y);
    char *a = diff_value_text(x), *b = diff_value_text(y);
    int same = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    return same;
}

static void append_entry(bson_t *array, const char *name, const bson_iter_t *a,
                         const bson_iter_t *b, int numeric) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(bson_count_keys(array), &k, idx, sizeof(idx));
    bson_t e;
    BSON_APPEND_DOCUMENT_BEGIN(array, k, &e);
    BSON_APPEND_UTF8(&e, "name", name);
    bson_iter_t copy;
    if (a) {
        copy = *a;
        bson_append_iter(&e, "a", 1, &copy);
    } else {
        BSON_APPEND_NULL(&e, "a");
    }
    if (b) {
        copy = *b;
        bson_append_iter(&e, "b", 1, &copy);
    } else {
        BSON_APPEND_NULL(&e, "b");
    }
    if (numeric && a && b && BSON_ITER_HOLDS_NUMBER(a) && BSON_ITER_HOLDS_NUMBER(b))
        BSON_APPEND_DOUBLE(&e, "change", bson_iter_as_double(b) - bson_iter_as_double(a));
    bson_append_document_end(array, &e);
}

size_t diff_docs(const bson_t *a, const bson_t *b, int numeric, bson_t *array) {
    size_t n = 0;
    bson_iter_t x, y;
    if (bson_iter_init(&x, a))
        while (bson_iter_next(&x)) {
            int has = bson_iter_init_find(&y, b, bson_iter_key(&x));
            if (!has || !same_value(&x, &y)) {
                append_entry(array, bson_iter_key(&x), &x, has ? &y : NULL, numeric);
                n++;
            }
        }
    if (bson_iter_init(&y, b))
        while (bson_iter_next(&y))
            if (!bson_iter_init_find(&x, a, bson_iter_key(&y))) {
                append_entry(array, bson_iter_key(&y), NULL, &y, numeric);
                n++;
            }
    return n;
}

/* A number as %g, anything else as JSON. */
static char *value_for_people(const bson_iter_t *it) {
    if (!BSON_ITER_HOLDS_NUMBER(it))
        return diff_value_text(it);
    char text[64];
    snprintf(text, sizeof(text), "%g", bson_iter_as_double(it));
    return strdup(text);
}

void diff_print(const char *title, const bson_t *array) {
    if (bson_count_keys(array) == 0) {
        printf("%s: no change\n", title);
        return;
    }
    printf("%s:\n", title);
    bson_iter_t it, e;
    bson_iter_init(&it, array);
    while (bson_iter_next(&it)) {
        if (!bson_iter_recurse(&it, &e))
            continue;
        const char *name = "";
        char *a = NULL, *b = NULL, change[64] = "";
        const char *a_origin = NULL, *b_origin = NULL;
        while (bson_iter_next(&e)) {
            const char *k = bson_iter_key(&e);
            if (strcmp(k, "name") == 0)
                name = bson_iter_utf8(&e, NULL);
            else if (strcmp(k, "a") == 0)
                a = BSON_ITER_HOLDS_NULL(&e) ? NULL : value_for_people(&e);
            else if (strcmp(k, "b") == 0)
                b = BSON_ITER_HOLDS_NULL(&e) ? NULL : value_for_people(&e);
            else if (strcmp(k, "a_origin") == 0)
                a_origin = bson_iter_utf8(&e, NULL);
            else if (strcmp(k, "b_origin") == 0)
                b_origin = bson_iter_utf8(&e, NULL);
            else if (strcmp(k, "change") == 0)
                snprintf(change, sizeof(change), "  (%+g)", bson_iter_as_double(&e));
        }
        printf("  %-32s %s -> %s%s", name, a ? a : "-", b ? b : "-", change);
        if (a_origin || b_origin) /* a pipeline parameter: where each value came from */
            printf("  (%s -> %s)", a_origin ? a_origin : "-", b_origin ? b_origin : "-");
        printf("\n");
        free(a);
        free(b);
    }
}
