/* clean - the LLM twin's clean step: each document's content reduced to
 * its words and sentence punctuation, exactly as the Handbook does (see
 * steps/text/text.h). A document whose content is an object (Title,
 * Subtitle, Content, ...) has its non-empty values joined with " #### "
 * first, as the Handbook's cleaning handler does. */
#include <errno.h>
#include <sluice/plugin.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"
#include "text.h"

static int clean_one(sl_ctx *ctx, const bson_t *in, uint64_t index, void *ud,
                     int (*emit)(void *, const bson_t *), void *sink) {
    (void)ud;
    size_t len;
    char *text = records_content(in, &len);
    if (!text)
        return sl_fail(ctx, "document %llu has no text content", (unsigned long long)index + 1);
    char *cleaned;
    size_t cleaned_len;
    int rc = text_clean(text, len, &cleaned, &cleaned_len);
    free(text);
    if (rc)
        return sl_fail(ctx, "out of memory cleaning document %llu", (unsigned long long)index + 1);
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

static int run(sl_ctx *ctx) { return records_map(ctx, "documents", "documents", "documents", clean_one, NULL); }

static const sl_port inputs[] = {
    {"documents", "documents", "JSON Lines documents, content a string or an object", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"documents", "documents", "the same documents, content cleaned text", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"clean", "1.0", "clean documents as the LLM Engineer's Handbook does", inputs, outputs, NULL, run},
};

SL_PLUGIN_DEFINE("clean", "1.0", steps, NULL, NULL)
