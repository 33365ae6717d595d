/* json_fields.h - reading the JSON a command printed (parsed into BSON) in
 * end-to-end tests: a field at a dotted path ("metrics.perplexity",
 * "steps.0.step"), asserted to be there with its type. */
#ifndef SLUICE_TESTS_JSON_FIELDS_H
#define SLUICE_TESTS_JSON_FIELDS_H

#include <bson/bson.h>
#include <criterion/criterion.h>

static int field(const bson_t *doc, const char *path, bson_iter_t *out) {
    bson_iter_t it;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, out);
}

static double num(const bson_t *doc, const char *path) {
    bson_iter_t it;
    cr_assert(field(doc, path, &it) && BSON_ITER_HOLDS_NUMBER(&it), "no number at %s", path);
    return bson_iter_as_double(&it);
}

static const char *str(const bson_t *doc, const char *path) {
    bson_iter_t it;
    cr_assert(field(doc, path, &it) && BSON_ITER_HOLDS_UTF8(&it), "no string at %s", path);
    return bson_iter_utf8(&it, NULL);
}

/* The next document of the array e iterates, in *item (borrowed from the
 * array); 0 past its end. */
static inline int next_document(bson_iter_t *e, bson_t *item) {
    if (!bson_iter_next(e))
        return 0;
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(e, &len, &data);
    cr_assert_not_null(data, "an array item that is not a document");
    return bson_init_static(item, data, len);
}

#endif
