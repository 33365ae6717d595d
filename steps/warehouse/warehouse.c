/* warehouse.c - the warehouse interface over its backends, and the
 * Handbook's export format in and out. */
#include "warehouse.h"

#include <sluice/artifacts.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "module.h"

static const char *const categories[] = WAREHOUSE_CATEGORIES;
static const char *const export_files[] = {"ArticleDocument.json", "PostDocument.json",
                                           "RepositoryDocument.json"};

int warehouse_open(warehouse **out, const char *store_dir, const char *where, int read_only,
                   char *err, size_t err_size) {
    *out = NULL;
    if (!where || !*where)
        return warehouse_lmdb_open(out, store_dir, read_only, err, err_size);
    if (strncmp(where, "mongodb://", 10) == 0 || strncmp(where, "mongodb+srv://", 14) == 0) {
        /* mongo-c-driver comes as a module: most processes never need it,
         * and linking it costs every process milliseconds to start. */
        void *sym;
        int rc = module_symbol("sluice_mongo", "warehouse_mongo_open", &sym, err, err_size);
        if (rc)
            return rc;
        return ((warehouse_open_fn)sym)(out, where, read_only, err, err_size);
    }
    snprintf(err, err_size,
             "warehouse '%s': give a mongodb:// URI, or nothing for the store's own warehouse",
             where);
    return -EINVAL;
}

void warehouse_close(warehouse *w) {
    if (w)
        w->ops->close(w);
}

const char *warehouse_error(const warehouse *w) { return w->err; }

static int is_category(const char *category) {
    for (size_t i = 0; i < WAREHOUSE_N_CATEGORIES; i++)
        if (strcmp(category, categories[i]) == 0)
            return 1;
    return 0;
}

static const char *str(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

int warehouse_put_user(warehouse *w, const bson_t *user) {
    const char *id = str(user, "_id");
    if (!id || !*id)
        return warehouse_fail(w, -EINVAL, "a user without an \"_id\" string");
    return w->ops->put(w, "users", id, user);
}

int warehouse_put_document(warehouse *w, const char *category, const bson_t *doc) {
    if (!is_category(category))
        return warehouse_fail(w, -EINVAL, "no category '%s' (articles, posts or repositories)",
                              category);
    const char *link = str(doc, "link");
    if (!link || !*link)
        return warehouse_fail(w, -EINVAL, "a document of %s without a \"link\" string", category);
    return w->ops->put(w, category, link, doc);
}

int warehouse_flush(warehouse *w) { return w->ops->flush(w); }

int warehouse_has_link(warehouse *w, const char *category, const char *link) {
    for (size_t i = 0; i < WAREHOUSE_N_CATEGORIES; i++) {
        if (category && strcmp(category, categories[i]) != 0)
            continue;
        bson_t found;
        int rc = w->ops->find(w, categories[i], "link", link, &found);
        if (rc == 1)
            bson_destroy(&found);
        if (rc != 0)
            return rc;
    }
    return 0;
}

typedef struct name_match {
    const char *first, *last;
    bson_t *user;
    int hit;
} name_match;

static int match_name(void *ud, const char *category, const bson_t *doc) {
    (void)category;
    name_match *m = ud;
    const char *first = str(doc, "first_name"), *last = str(doc, "last_name");
    if (first && last && strcmp(first, m->first) == 0 && strcmp(last, m->last) == 0) {
        bson_copy_to(doc, m->user);
        m->hit = 1;
    }
    return m->hit;
}

int warehouse_find_user(warehouse *w, const char *first_name, const char *last_name, bson_t *user) {
    name_match m = {first_name, last_name, user, 0};
    int rc = w->ops->each(w, "users", NULL, match_name, &m);
    return rc ? rc : m.hit;
}

int warehouse_each(warehouse *w, const char *category, warehouse_fn fn, void *ud) {
    if (category && !is_category(category))
        return warehouse_fail(w, -EINVAL, "no category '%s' (articles, posts or repositories)",
                              category);
    for (size_t i = 0; i < WAREHOUSE_N_CATEGORIES; i++) {
        if (category && strcmp(category, categories[i]) != 0)
            continue;
        int rc = w->ops->each(w, categories[i], categories[i], fn, ud);
        if (rc)
            return rc;
    }
    return 0;
}

int warehouse_each_user(warehouse *w, warehouse_fn fn, void *ud) {
    return w->ops->each(w, "users", NULL, fn, ud);
}

/* libbson's JSON reader wraps an integer past 64 bits around
 * (100000000000000000000 becomes 7766279631452241920, 2^64 becomes 0) and
 * names no place for a number out of a double's range, so every number of
 * text is checked first; a number that cannot be kept as written is refused
 * with its line and column (in path). Strings are skipped. */
static int check_numbers(warehouse *w, const char *path, const char *text) {
    size_t line = 1;
    const char *line_start = text;
    int in_string = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            line++;
            line_start = p + 1;
        } else if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            size_t n = strspn(p, "+-0123456789.eE");
            int integer = strcspn(p, ".eE") >= n;
            char *end;
            errno = 0;
            if (integer)
                (void)strtoll(p, &end, 10);
            else {
                double d = strtod(p, &end);
                if (errno == ERANGE && d != HUGE_VAL && d != -HUGE_VAL)
                    errno = 0; /* underflow rounds towards 0, as every reader does */
            }
            if (errno == ERANGE)
                return warehouse_fail(
                    w, -ERANGE, "%s: line %zu, column %zu: the number %.*s %s", path, line,
                    (size_t)(p - line_start) + 1, (int)(n < 60 ? n : 60), p,
                    integer ? "does not fit in a 64-bit integer (write it as a float, 1e20, or "
                              "as a string)"
                            : "is beyond a double's range");
            p += n - 1;
        }
    }
    return 0;
}

/* Reads a JSON array file into a document {"a": [...]}; NULL with w's
 * message on failure. */
static bson_t *read_array(warehouse *w, const char *path) {
    void *map;
    size_t size;
    int rc = sl_file_map(path, &map, &size, NULL, 0);
    if (rc) {
        warehouse_fail(w, rc, "%s: %s", path, strerror(-rc));
        return NULL;
    }
    char *json = size < SIZE_MAX - 16 ? malloc(size + 16) : NULL;
    if (!json) {
        sl_file_unmap(map, size);
        warehouse_fail(w, -ENOMEM, "%s: cannot read it into memory", path);
        return NULL;
    }
    memcpy(json, "{\"a\":", 5);
    if (size)
        memcpy(json + 5, map, size);
    sl_file_unmap(map, size);
    memcpy(json + 5 + size, "}", 2);
    if (check_numbers(w, path, json + 5) != 0) {
        free(json);
        return NULL;
    }
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &e);
    free(json);
    if (!doc)
        warehouse_fail(w, -EINVAL, "%s: not a JSON array of documents: %s", path, e.message);
    return doc;
}

/* Puts every element of file's array; users when category is NULL. */
static int import_file(warehouse *w, const char *dir, const char *file, const char *category,
                       size_t *count) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* a category with no export file has no documents */
    bson_t *all = read_array(w, path);
    if (!all)
        return -EINVAL;
    bson_iter_t it, arr;
    int rc = 0;
    size_t index = 0;
    if (!bson_iter_init_find(&it, all, "a") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        rc = warehouse_fail(w, -EINVAL, "%s: not a JSON array of documents", path);
    while (rc == 0 && bson_iter_next(&arr)) {
        index++;
        uint32_t len;
        const uint8_t *data;
        bson_t doc;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
            rc = warehouse_fail(w, -EINVAL, "%s: element %zu is not an object", path, index);
            break;
        }
        bson_iter_document(&arr, &len, &data);
        bson_init_static(&doc, data, len);
        rc = category ? warehouse_put_document(w, category, &doc) : warehouse_put_user(w, &doc);
        if (rc) { /* name the element */
            char why[sizeof(w->err)];
            memcpy(why, w->err, sizeof(why));
            warehouse_fail(w, rc, "%s: element %zu: %.400s", path, index, why);
        } else
            (*count)++;
    }
    bson_destroy(all);
    return rc;
}

int warehouse_import(warehouse *w, const char *dir, size_t *users, size_t *documents) {
    *users = *documents = 0;
    int rc = import_file(w, dir, "UserDocument.json", NULL, users);
    for (size_t i = 0; rc == 0 && i < WAREHOUSE_N_CATEGORIES; i++)
        rc = import_file(w, dir, export_files[i], categories[i], documents);
    /* On failure the batch is left unflushed: warehouse_close discards it. */
    return rc ? rc : warehouse_flush(w);
}

typedef struct writer {
    FILE *f;
    size_t n;
    int failed;
} writer;

static int write_one(void *ud, const char *category, const bson_t *doc) {
    writer *wr = ud;
    (void)category;
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (!json || fprintf(wr->f, "%s%s", wr->n ? ",\n" : "\n", json) < 0)
        wr->failed = 1;
    bson_free(json);
    wr->n++;
    return wr->failed;
}

static int export_one(warehouse *w, const char *dir, const char *file, const char *category,
                      size_t *count) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    writer wr = {fopen(path, "w"), 0, 0};
    if (!wr.f)
        return warehouse_fail(w, -errno, "%s: %s", path, strerror(errno));
    fputc('[', wr.f);
    int rc = category ? warehouse_each(w, category, write_one, &wr)
                      : warehouse_each_user(w, write_one, &wr);
    fputs(wr.n ? "\n]\n" : "]\n", wr.f);
    if ((fclose(wr.f) != 0 || wr.failed) && rc == 0)
        rc = warehouse_fail(w, -EIO, "%s: %s", path, strerror(errno));
    *count += wr.n;
    return rc;
}

int warehouse_export(warehouse *w, const char *dir, size_t *users, size_t *documents) {
    *users = *documents = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return warehouse_fail(w, -errno, "%s: %s", dir, strerror(errno));
    int rc = export_one(w, dir, "UserDocument.json", NULL, users);
    for (size_t i = 0; rc == 0 && i < WAREHOUSE_N_CATEGORIES; i++)
        rc = export_one(w, dir, export_files[i], categories[i], documents);
    return rc;
}
