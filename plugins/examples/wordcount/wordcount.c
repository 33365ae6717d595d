/* wordcount - an example sluice step plugin: counts the words of a text.
 *
 * Copy this folder to start a plugin of your own. It builds against the
 * installed header alone (find_package(sluice), see CMakeLists.txt) and
 * shows every part of the SDK: typed ports, a parameter schema with
 * defaults, progress, a metric, cancellation, and failure with a message.
 *
 *   steps:
 *     count:
 *       uses: wordcount
 *       inputs: {text: fetch.page}
 *       with: {top: 20, min_length: 3}
 */
#include <ctype.h>
#include <errno.h>
#include <sluice/plugin.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *word;
    long count;
} entry;

typedef struct table {
    entry *items;
    size_t n, cap;
} table;

/* Linear probing on a power-of-two table; grows at half load. */
static int table_add(table *t, const char *w, size_t len) {
    if (t->n * 2 >= t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        entry *items = calloc(cap, sizeof(*items));
        if (!items)
            return SL_ENOMEM;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->items[i].word)
                continue;
            size_t h = 5381;
            for (const char *p = t->items[i].word; *p; p++)
                h = h * 33 + (unsigned char)*p;
            size_t j = h & (cap - 1);
            while (items[j].word)
                j = (j + 1) & (cap - 1);
            items[j] = t->items[i];
        }
        free(t->items);
        t->items = items;
        t->cap = cap;
    }
    size_t h = 5381;
    for (size_t i = 0; i < len; i++)
        h = h * 33 + (unsigned char)w[i];
    size_t j = h & (t->cap - 1);
    while (t->items[j].word) {
        if (strlen(t->items[j].word) == len && memcmp(t->items[j].word, w, len) == 0) {
            t->items[j].count++;
            return SL_OK;
        }
        j = (j + 1) & (t->cap - 1);
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return SL_ENOMEM;
    memcpy(copy, w, len);
    copy[len] = '\0';
    t->items[j] = (entry){copy, 1};
    t->n++;
    return SL_OK;
}

static int by_count(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

static int run(sl_ctx *ctx) {
    int64_t top = sl_param_int(ctx, "top");
    int64_t min_length = sl_param_int(ctx, "min_length");
    int lowercase = sl_param_bool(ctx, "lowercase");
    if (top < 1)
        return sl_fail(ctx, "top must be at least 1, not %lld", (long long)top);
    FILE *in = sl_input_open(ctx, "text");
    if (!in)
        return sl_fail(ctx, "cannot open the input text");
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);

    table t = {0};
    char word[256];
    size_t len = 0;
    long read = 0;
    int c, rc = SL_OK;
    while (rc == SL_OK && (c = fgetc(in)) != EOF) {
        if (++read % 65536 == 0) {
            if (sl_cancelled(ctx)) {
                rc = SL_ECANCELLED;
                break;
            }
            sl_progress(ctx, (uint64_t)read, (uint64_t)size);
        }
        if (isalnum(c) || c >= 0x80) {
            if (len < sizeof(word))
                word[len++] = (char)(lowercase ? tolower(c) : c);
            continue;
        }
        if (len >= (size_t)min_length)
            rc = table_add(&t, word, len);
        len = 0;
    }
    if (rc == SL_OK && len >= (size_t)min_length)
        rc = table_add(&t, word, len);
    fclose(in);

    FILE *out = rc == SL_OK ? sl_output_create(ctx, "counts") : NULL;
    if (rc == SL_OK && !out)
        rc = sl_fail(ctx, "cannot create the output");
    if (out) {
        size_t k = 0;
        for (size_t i = 0; i < t.cap; i++)
            if (t.items[i].word)
                t.items[k++] = t.items[i];
        qsort(t.items, k, sizeof(*t.items), by_count);
        for (size_t i = 0; i < k && i < (size_t)top; i++)
            fprintf(out, "%s\t%ld\n", t.items[i].word, t.items[i].count);
        /* stdio holds the last block until fclose: a step that returns
         * without closing (or without checking) leaves a truncated file,
         * which sluice would record and cache as the output. */
        int failed = ferror(out);
        if (fclose(out) != 0 || failed)
            rc = sl_fail(ctx, "writing the counts: %s", strerror(errno ? errno : EIO));
        sl_metric(ctx, "distinct_words", (double)t.n, 0);
        sl_log(ctx, SL_LOG_INFO, "%zu distinct words in %ld bytes", t.n, read);
        for (size_t i = 0; i < k; i++)
            free(t.items[i].word);
    } else {
        for (size_t i = 0; i < t.cap; i++)
            free(t.items[i].word);
    }
    free(t.items);
    return rc;
}

static const sl_port inputs[] = {
    {"text", "any", "a UTF-8 text file", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"counts", "report", "word<TAB>count lines, most frequent first", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"top", SL_PARAM_INT, "10", "how many words to keep", 0},
    {"min_length", SL_PARAM_INT, "1", "shorter words are ignored", 0},
    {"lowercase", SL_PARAM_BOOL, "true", "fold ASCII letters to lower case", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"wordcount", "1.0", "count the words of a text", inputs, outputs, params, run},
};

SL_PLUGIN_DEFINE("wordcount", "1.0", steps, NULL, NULL)
