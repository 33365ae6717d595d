/* dataset.c - reading the train step's examples (dataset.h). */
#include "dataset.h"

#include "errbuf.h"

#include <errno.h>
#include <sluice/artifacts.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_names[3][3] = {
    [DATASET_INSTRUCTION] = {"instruction", "answer", NULL},
    [DATASET_PREFERENCE] = {"instruction", "chosen", "rejected"},
    [DATASET_TEXT] = {"content", NULL, NULL},
};

/* Names also accepted, as other tools write the same datasets. */
static const char *alias_of(const char *name) {
    if (strcmp(name, "answer") == 0)
        return "output";
    if (strcmp(name, "instruction") == 0)
        return "prompt";
    return NULL;
}

const char *dataset_kind_name(dataset_kind kind) {
    switch (kind) {
    case DATASET_INSTRUCTION:
        return "instruction";
    case DATASET_PREFERENCE:
        return "preference";
    case DATASET_TEXT:
        return "text";
    }
    return "?";
}

void dataset_free(dataset *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->ex[i].a);
        free((char *)d->ex[i].b);
        free((char *)d->ex[i].c);
        free((char *)d->ex[i].extract_id);
        free((char *)d->ex[i].document_id);
    }
    free(d->ex);
    for (size_t i = 0; i < d->n_categories; i++)
        free(d->categories[i]);
    free(d->categories);
    free(d);
}

static int category_index(dataset *d, const char *name, size_t *out) {
    for (size_t i = 0; i < d->n_categories; i++)
        if (strcmp(d->categories[i], name) == 0) {
            *out = i;
            return 0;
        }
    char **c = realloc(d->categories, (d->n_categories + 1) * sizeof(*c));
    if (!c)
        return -ENOMEM;
    d->categories = c;
    if (!(c[d->n_categories] = strdup(name)))
        return -ENOMEM;
    *out = d->n_categories++;
    return 0;
}

/* Appends the example in record (the fields of d->kind) under category;
 * where names the record in messages ("record 3", "train/articles sample
 * 17"). */
static int add_example(dataset *d, const char *path, const char *where, const bson_t *record,
                       const char *category, size_t *cap, char *err, size_t err_size) {
    const char *const *names = field_names[d->kind];
    const char *values[5] = {NULL, NULL, NULL, NULL, NULL};
    for (int f = 0; f < 3 && names[f]; f++) {
        bson_iter_t it;
        const char *name = names[f], *alias = alias_of(name);
        int found = bson_iter_init_find(&it, record, name) ||
                    (alias && bson_iter_init_find(&it, record, alias));
        if (!found)
            return errbuf_set(err, err_size, -EINVAL, "%s: %s: no \"%s\" field (a %s dataset)",
                              path, where, name, dataset_kind_name(d->kind));
        if (!BSON_ITER_HOLDS_UTF8(&it))
            return errbuf_set(err, err_size, -EINVAL, "%s: %s: \"%s\" is not a string", path, where,
                              bson_iter_key(&it));
        values[f] = bson_iter_utf8(&it, NULL);
    }
    if (d->n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        dataset_example *ex = realloc(d->ex, c * sizeof(*ex));
        if (!ex)
            return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
        d->ex = ex;
        *cap = c;
    }
    dataset_example *e = &d->ex[d->n];
    memset(e, 0, sizeof(*e));
    const char **dst[5] = {&e->a, &e->b, &e->c, &e->extract_id, &e->document_id};
    bson_iter_t it;
    for (int f = 0; f < 2; f++) /* optional: a string or nothing */
        if (bson_iter_init_find(&it, record, f ? "document_id" : "extract_id") &&
            BSON_ITER_HOLDS_UTF8(&it))
            values[3 + f] = bson_iter_utf8(&it, NULL);
    int rc = category_index(d, category ? category : "", &e->category);
    for (int f = 0; f < 5 && !rc; f++)
        if (values[f] && !(*dst[f] = strdup(values[f])))
            rc = -ENOMEM;
    d->n++; /* freed with the dataset even when incomplete */
    return rc ? errbuf_set(err, err_size, rc, "%s: out of memory", path) : 0;
}

static const char *utf8_field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

/* The Handbook's layout: doc[split][category]["samples"][i]. */
static int load_handbook(dataset *d, const char *path, const bson_t *doc, const char *split,
                         char *err, size_t err_size) {
    bson_iter_t s, cats;
    if (!bson_iter_init_find(&s, doc, split))
        return 0; /* no such split: empty, reported by the caller */
    if (!BSON_ITER_HOLDS_DOCUMENT(&s) || !bson_iter_recurse(&s, &cats))
        return errbuf_set(err, err_size, -EINVAL, "%s: \"%s\" is not an object of categories", path,
                          split);
    size_t cap = d->n;
    while (bson_iter_next(&cats)) {
        const char *category = bson_iter_key(&cats);
        bson_iter_t samples, sample;
        if (!BSON_ITER_HOLDS_DOCUMENT(&cats) || !bson_iter_recurse(&cats, &samples) ||
            !bson_iter_find(&samples, "samples") || !BSON_ITER_HOLDS_ARRAY(&samples) ||
            !bson_iter_recurse(&samples, &sample))
            return errbuf_set(err, err_size, -EINVAL, "%s: %s/%s: no \"samples\" array", path,
                              split, category);
        for (size_t i = 1; bson_iter_next(&sample); i++) {
            char where[256];
            snprintf(where, sizeof(where), "%s/%s sample %zu", split, category, i);
            const uint8_t *data;
            uint32_t len;
            bson_t rec;
            if (!BSON_ITER_HOLDS_DOCUMENT(&sample))
                return errbuf_set(err, err_size, -EINVAL, "%s: %s is not an object", path, where);
            bson_iter_document(&sample, &len, &data);
            if (!bson_init_static(&rec, data, len))
                return errbuf_set(err, err_size, -EINVAL, "%s: %s is corrupt", path, where);
            int rc = add_example(d, path, where, &rec, category, &cap, err, err_size);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* {"artifact_data": [records]}: every record belongs to every split asked
 * for only when it says so; records without "split" are train. */
static int wanted(const bson_t *rec, const char *split) {
    const char *s = utf8_field(rec, "split");
    return strcmp(s ? s : "train", split) == 0;
}

static int load_artifact_data(dataset *d, const char *path, const bson_t *doc, const char *split,
                              char *err, size_t err_size) {
    bson_iter_t a, r;
    if (!bson_iter_init_find(&a, doc, "artifact_data") || !BSON_ITER_HOLDS_ARRAY(&a) ||
        !bson_iter_recurse(&a, &r))
        return errbuf_set(err, err_size, -EINVAL, "%s: \"artifact_data\" is not an array", path);
    size_t cap = d->n;
    for (size_t i = 1; bson_iter_next(&r); i++) {
        char where[64];
        snprintf(where, sizeof(where), "record %zu", i);
        const uint8_t *data;
        uint32_t len;
        bson_t rec;
        if (!BSON_ITER_HOLDS_DOCUMENT(&r))
            return errbuf_set(err, err_size, -EINVAL, "%s: %s is not an object", path, where);
        bson_iter_document(&r, &len, &data);
        if (!bson_init_static(&rec, data, len))
            return errbuf_set(err, err_size, -EINVAL, "%s: %s is corrupt", path, where);
        if (!wanted(&rec, split))
            continue;
        int rc =
            add_example(d, path, where, &rec, utf8_field(&rec, "category"), &cap, err, err_size);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_jsonl(dataset *d, const char *path, const char *split, char *err, size_t err_size) {
    sl_records_reader *r;
    int rc = sl_records_open(path, &r, err, err_size);
    if (rc)
        return rc;
    size_t cap = d->n;
    bson_t rec;
    for (size_t i = 1; (rc = sl_records_next(r, &rec, err, err_size)) == 1; i++) {
        char where[64];
        snprintf(where, sizeof(where), "record %zu", i);
        rc = wanted(&rec, split) ? add_example(d, path, where, &rec, utf8_field(&rec, "category"),
                                               &cap, err, err_size)
                                 : 0;
        bson_destroy(&rec);
        if (rc)
            break;
    }
    sl_records_free(r);
    return rc < 0 ? rc : 0;
}

int dataset_load(const char *path, dataset_kind kind, const char *split, dataset **out, char *err,
                 size_t err_size) {
    *out = NULL;
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return errbuf_set(err, err_size, -EINVAL, "%s: the split must be train or test, not \"%s\"",
                          path, split);
    dataset *d = calloc(1, sizeof(*d));
    if (!d)
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
    d->kind = kind;
    /* One JSON object with the Handbook's or the artifact layout, else JSON
     * Lines (whose first line alone also reads as an object, without those
     * keys). */
    bson_t *doc = NULL;
    char json_err[256];
    int rc;
    bson_iter_t it;
    if (sl_json_read(path, &doc, json_err, sizeof(json_err)) == 0 &&
        (bson_iter_init_find(&it, doc, "train") || bson_iter_init_find(&it, doc, "test")) &&
        BSON_ITER_HOLDS_DOCUMENT(&it))
        rc = load_handbook(d, path, doc, split, err, err_size);
    else if (doc && bson_iter_init_find(&it, doc, "artifact_data"))
        rc = load_artifact_data(d, path, doc, split, err, err_size);
    else
        rc = load_jsonl(d, path, split, err, err_size);
    if (doc)
        bson_destroy(doc);
    if (!rc && d->n == 0)
        rc =
            errbuf_set(err, err_size, -EINVAL, "%s: no %s examples in the %s split (empty dataset)",
                       path, dataset_kind_name(kind), split);
    if (rc) {
        dataset_free(d);
        return rc;
    }
    *out = d;
    return 0;
}
