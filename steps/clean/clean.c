/* clean - the LLM twin's clean step: each document's content reduced to
 * its words and sentence punctuation, exactly as the Handbook does (see
 * steps/text/text.h). A document whose content is an object (Title,
 * Subtitle, Content, ...) has its non-empty values joined with " #### "
 * first, as the Handbook's cleaning handler does. */
#include <errno.h>
#include <sluice/plugin.h>
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "records.h"
#include "text.h"

/* What clean does beyond the Handbook's rule; all off by default, so that
 * the default is exactly the Handbook's output. */
typedef struct options {
    int nfc, markup, urls;
    dedupe *dups; /* NULL: keep duplicates */
    uint64_t dropped;
} options;

/* Applies a text transformation in place of *text, when asked to. */
static int transform(int wanted, int (*fn)(const char *, size_t, char **, size_t *), char **text,
                     size_t *len) {
    if (!wanted)
        return 0;
    char *out;
    size_t out_len;
    int rc = fn(*text, *len, &out, &out_len);
    if (rc)
        return rc;
    free(*text);
    *text = out;
    *len = out_len;
    return 0;
}

static int clean_one(sl_ctx *ctx, const bson_t *in, uint64_t index, void *ud,
                     int (*emit)(void *, const bson_t *), void *sink) {
    options *o = ud;
    size_t len;
    char *text = records_content(in, &len);
    if (!text)
        return sl_fail(ctx, "document %llu has no text content", (unsigned long long)index + 1);
    char *cleaned = NULL;
    size_t cleaned_len;
    int rc = transform(o->nfc, text_nfc, &text, &len);
    if (rc == 0)
        rc = transform(o->markup, text_remove_markup, &text, &len);
    if (rc == 0)
        rc = transform(o->urls, text_remove_urls, &text, &len);
    if (rc == 0)
        rc = text_clean(text, len, &cleaned, &cleaned_len);
    free(text);
    if (rc == 0 && o->dups) {
        rc = dedupe_seen(o->dups, cleaned, cleaned_len);
        if (rc == 1) {
            o->dropped++;
            free(cleaned);
            return SL_OK;
        }
    }
    if (rc) {
        free(cleaned);
        return sl_fail(ctx, "out of memory cleaning document %llu", (unsigned long long)index + 1);
    }
    /* Every field as it was, the content replaced by its clean text. */
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    bson_iter_init(&it, in);
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "content") != 0)
            bson_append_iter(&out, NULL, 0, &it);
    bson_append_utf8(&out, "content", 7, cleaned, (int)cleaned_len);
    free(cleaned);
    rc = emit(sink, &out);
    bson_destroy(&out);
    return rc;
}

static int run(sl_ctx *ctx) {
    options o = {sl_param_bool(ctx, "normalize"), sl_param_bool(ctx, "remove_markup"),
                 sl_param_bool(ctx, "remove_urls"), NULL, 0};
    const char *mode = sl_param_str(ctx, "dedupe");
    double threshold = sl_param_f64(ctx, "near_threshold");
    if (mode && strcmp(mode, "none") != 0) {
        if (strcmp(mode, "exact") != 0 && strcmp(mode, "near") != 0)
            return sl_fail(ctx, "dedupe is none, exact or near, not '%s'", mode);
        if (threshold <= 0 || threshold > 1)
            return sl_fail(ctx, "near_threshold must be in (0, 1], not %g", threshold);
        if (!(o.dups = dedupe_new(strcmp(mode, "near") == 0, threshold)))
            return SL_ENOMEM;
    }
    int rc = records_map(ctx, "documents", "documents", "documents", clean_one, &o);
    dedupe_free(o.dups);
    if (o.dups)
        sl_metric(ctx, "duplicates_dropped", (double)o.dropped, 0);
    return rc;
}

static const sl_port inputs[] = {
    {"documents", "documents", "JSON Lines documents, content a string or an object", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"documents", "documents", "the same documents, content cleaned text", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"normalize", SL_PARAM_BOOL, "false", "Unicode NFC first", 0},
    {"remove_markup", SL_PARAM_BOOL, "false",
     "drop HTML tags, comments and character references, and Markdown link syntax, first", 0},
    {"remove_urls", SL_PARAM_BOOL, "false", "drop http(s):// and www. addresses first", 0},
    {"dedupe", SL_PARAM_STRING, "none", "none, exact (same cleaned text) or near (MinHash)", 0},
    {"near_threshold", SL_PARAM_FLOAT, "0.8", "estimated Jaccard similarity of a near duplicate",
     0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"clean", "1.1", "clean documents as the LLM Engineer's Handbook does", inputs, outputs, params,
     run},
};

SL_PLUGIN_DEFINE("clean", "1.0", steps, NULL, NULL)
