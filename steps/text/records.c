#include "records.h"

#include <sluice/artifacts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct sink {
    FILE *out;
    uint64_t written;
    int failed;
} sink;

static int emit(void *ud, const bson_t *rec) {
    sink *s = ud;
    size_t len;
    char *json = bson_as_relaxed_extended_json(rec, &len);
    if (!json || fwrite(json, 1, len, s->out) != len || fputc('\n', s->out) == EOF)
        s->failed = 1;
    bson_free(json);
    s->written++;
    return s->failed ? SL_EIO : SL_OK;
}

int records_map(sl_ctx *ctx, const char *in_port, const char *out_port, const char *prefix,
                record_fn fn, void *ud) {
    const char *in_path = sl_input_path(ctx, in_port);
    if (!in_path)
        return sl_fail(ctx, "no input '%s'", in_port);
    struct stat st;
    uint64_t total = stat(in_path, &st) == 0 ? (uint64_t)st.st_size : 0;
    char err[512];
    sl_records_reader *rd;
    if (sl_records_open(in_path, &rd, err, sizeof(err)) != 0)
        return sl_fail(ctx, "cannot read input '%s': %s", in_port, err);
    FILE *out = sl_output_create(ctx, out_port);
    if (!out) {
        sl_records_free(rd);
        return sl_fail(ctx, "cannot create output '%s'", out_port);
    }
    sink s = {out, 0, 0};
    uint64_t n = 0, bytes = 0;
    int rc = SL_OK;
    for (;;) {
        if (sl_cancelled(ctx)) {
            rc = SL_ECANCELLED;
            break;
        }
        bson_t doc;
        int got = sl_records_next(rd, &doc, err, sizeof(err));
        if (got < 0)
            rc = sl_fail(ctx, "input '%s': %s", in_port, err);
        if (got <= 0) /* doc is destroyed already */
            break;
        bytes += doc.len;
        rc = fn(ctx, &doc, n++, ud, emit, &s);
        bson_destroy(&doc);
        if (rc != SL_OK)
            break;
        if (n % 64 == 0)
            sl_progress(ctx, bytes < total ? bytes : total, total);
    }
    sl_records_free(rd);
    if (fclose(out) != 0 && rc == SL_OK)
        rc = sl_fail(ctx, "writing output '%s' failed", out_port);
    if (s.failed && (rc == SL_OK || rc == SL_EIO)) /* emit's failure has no message yet */
        rc = sl_fail(ctx, "writing output '%s' failed", out_port);
    char key[64];
    snprintf(key, sizeof(key), "%s_in", prefix);
    sl_metric(ctx, key, (double)n, 0);
    snprintf(key, sizeof(key), "%s_out", prefix);
    sl_metric(ctx, key, (double)s.written, 0);
    return rc;
}

const char *records_str(const bson_t *doc, const char *key, uint32_t *len) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, len);
    return NULL;
}

char *records_content(const bson_t *doc, size_t *len) {
    bson_iter_t it, f;
    *len = 0;
    if (!bson_iter_init_find(&it, doc, "content"))
        return NULL;
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t n;
        const char *s = bson_iter_utf8(&it, &n);
        *len = n;
        return strndup(s, n);
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &f))
        return NULL;
    size_t cap = 256;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = '\0';
    while (bson_iter_next(&f)) {
        uint32_t n;
        if (!BSON_ITER_HOLDS_UTF8(&f))
            continue;
        const char *s = bson_iter_utf8(&f, &n);
        if (!n)
            continue;
        while (*len + n + 8 > cap) {
            char *grown = realloc(out, cap *= 2);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        if (*len) {
            memcpy(out + *len, " #### ", 6);
            *len += 6;
        }
        memcpy(out + *len, s, n);
        *len += n;
        out[*len] = '\0';
    }
    return out;
}

void chunk_table_free(chunk_table *t) {
    char **cols[] = {t->id, t->content, t->document_id, t->author, t->category, t->link};
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
        for (size_t i = 0; cols[c] && i < t->n; i++)
            free(cols[c][i]);
        free(cols[c]);
    }
    free(t->content_len);
    memset(t, 0, sizeof(*t));
}

/* Room for one more row in every column. */
static int chunk_table_grow(chunk_table *t, size_t *cap) {
    if (t->n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    char ***cols[] = {&t->id, &t->content, &t->document_id, &t->author, &t->category, &t->link};
    for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
        char **grown = realloc(*cols[c], nc * sizeof(*grown));
        if (!grown)
            return -1;
        *cols[c] = grown;
    }
    size_t *lens = realloc(t->content_len, nc * sizeof(*lens));
    if (!lens)
        return -1;
    t->content_len = lens;
    *cap = nc;
    return 0;
}

static char *dup_field(const bson_t *doc, const char *key, const char *fallback_key) {
    const char *v = records_str(doc, key, NULL);
    if (!v && fallback_key)
        v = records_str(doc, fallback_key, NULL);
    return strdup(v ? v : "");
}

int chunk_table_read(sl_ctx *ctx, const char *path, const char *what, int with_content,
                     chunk_table *t) {
    memset(t, 0, sizeof(*t));
    char err[512];
    sl_records_reader *rd;
    if (sl_records_open(path, &rd, err, sizeof(err)) != 0)
        return sl_fail(ctx, "cannot read %s: %s", what, err);
    size_t cap = 0;
    int rc = SL_OK;
    for (;;) {
        if (sl_cancelled(ctx)) {
            rc = SL_ECANCELLED;
            break;
        }
        bson_t doc;
        int got = sl_records_next(rd, &doc, err, sizeof(err));
        if (got <= 0) { /* doc is destroyed already */
            if (got < 0)
                rc = sl_fail(ctx, "%s: %s", what, err);
            break;
        }
        uint32_t len = 0;
        const char *content = records_str(&doc, "content", &len);
        if (!content && !with_content)
            content = "";
        if (!content) {
            rc = sl_fail(ctx, "%s: record %zu has no string 'content'", what, t->n + 1);
        } else if (chunk_table_grow(t, &cap) != 0) {
            rc = sl_fail(ctx, "out of memory reading %s", what);
        } else {
            size_t i = t->n;
            t->id[i] = dup_field(&doc, "id", NULL);
            t->content[i] = malloc((size_t)len + 1);
            t->document_id[i] = dup_field(&doc, "document_id", NULL);
            t->author[i] = dup_field(&doc, "author_full_name", "author");
            t->category[i] = dup_field(&doc, "category", NULL);
            t->link[i] = dup_field(&doc, "link", NULL);
            t->content_len[i] = len;
            t->n++; /* counted first, so that chunk_table_free() frees a partial row */
            if (t->content[i])
                memcpy(t->content[i], content, (size_t)len + 1);
            if (!t->id[i] || !t->content[i] || !t->document_id[i] || !t->author[i] ||
                !t->category[i] || !t->link[i])
                rc = sl_fail(ctx, "out of memory reading %s", what);
        }
        bson_destroy(&doc);
        if (rc != SL_OK)
            break;
    }
    sl_records_free(rd);
    return rc;
}

int chunk_table_write_rows(sl_ctx *ctx, const chunk_table *t, const char *path, const char *what) {
    char err[512];
    sl_records_writer *w = NULL;
    int rc = sl_records_create(path, &w, err, sizeof(err));
    for (size_t i = 0; rc == 0 && i < t->n; i++) {
        bson_t row = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&row, "id", t->id[i]);
        BSON_APPEND_UTF8(&row, "document_id", t->document_id[i]);
        BSON_APPEND_UTF8(&row, "author_full_name", t->author[i]);
        BSON_APPEND_UTF8(&row, "category", t->category[i]);
        BSON_APPEND_UTF8(&row, "link", t->link[i]);
        rc = sl_records_write(w, &row, err, sizeof(err));
        bson_destroy(&row);
    }
    if (w) {
        int closed = sl_records_close(w, rc ? NULL : err, rc ? 0 : sizeof(err));
        rc = rc ? rc : closed;
    }
    return rc ? sl_fail(ctx, "%s: %s", what, err) : SL_OK;
}
