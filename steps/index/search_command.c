/* search_command.c - the module sluice_search: `sluice search`'s query and
 * printing, with the retriever (and OpenBLAS) the sluice binary does not
 * link (search_command.h, steps/module/module.h). */
#include "search_command.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "errbuf.h"
#include "retriever.h"

#define SNIPPET_BYTES 300

/* The bytes of the UTF-8 sequence that lead starts (1 for a stray byte). */
static size_t sequence_length(unsigned char lead) {
    return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
}

/* The text on one line, whitespace runs as one space, cut before the
 * character that would pass max bytes. */
static void print_snippet(const char *text, size_t max) {
    size_t n = 0;
    int space = 0, cut = 0;
    for (const char *p = text; *p && !cut;) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            space = n > 0;
            p++;
            continue;
        }
        size_t len = sequence_length((unsigned char)*p);
        if (n + space + len > max) {
            cut = 1;
            break;
        }
        if (space)
            putchar(' ');
        n += (size_t)space;
        space = 0;
        for (size_t i = 0; i < len && *p; i++, n++)
            putchar(*p++);
    }
    fputs(cut ? " ...\n" : "\n", stdout);
}

static void print_results(const retriever *r, const char *query, retrieve_mode mode,
                          const uint32_t *ids, const float *scores, size_t count, int json) {
    bson_t doc = BSON_INITIALIZER, arr;
    if (json) {
        BSON_APPEND_UTF8(&doc, "query", query);
        BSON_APPEND_UTF8(&doc, "mode", retrieve_mode_name(mode));
        BSON_APPEND_ARRAY_BEGIN(&doc, "results", &arr);
    }
    for (size_t i = 0; i < count; i++) {
        retrieved_row got;
        if (retriever_row(r, ids[i], &got) != 0)
            continue;
        const index_row *row = &got.row;
        if (json) {
            char key[16];
            const char *k;
            bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
            bson_t item;
            bson_append_document_begin(&arr, k, -1, &item);
            BSON_APPEND_INT64(&item, "rank", (int64_t)i + 1);
            BSON_APPEND_DOUBLE(&item, "score", scores[i]);
            BSON_APPEND_INT64(&item, "row", ids[i]);
            BSON_APPEND_UTF8(&item, "chunk_id", got.chunk_id);
            BSON_APPEND_UTF8(&item, "author", row->author);
            BSON_APPEND_UTF8(&item, "category", row->category);
            BSON_APPEND_UTF8(&item, "document_id", row->document_id);
            BSON_APPEND_UTF8(&item, "link", got.link);
            BSON_APPEND_UTF8(&item, "text", row->text);
            bson_append_document_end(&arr, &item);
        } else {
            printf("%2zu. %.4f  %s | %s | %s\n    ", i + 1, scores[i], row->author, row->category,
                   *got.link ? got.link : row->document_id);
            print_snippet(row->text, SNIPPET_BYTES);
        }
    }
    if (json) {
        bson_append_array_end(&doc, &arr);
        char *text = bson_as_relaxed_extended_json(&doc, NULL);
        if (text)
            puts(text);
        bson_free(text);
    } else if (count == 0) {
        printf("no match\n");
    }
    bson_destroy(&doc);
}

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int sluice_search_command(const search_request *req, char *err, size_t err_size);

int sluice_search_command(const search_request *req, char *err, size_t err_size) {
    retrieve_mode mode;
    if (retrieve_mode_parse(req->mode, &mode) != 0)
        return errbuf_set(err, err_size, -EINVAL, "--mode '%s': use hybrid, dense or bm25",
                          req->mode);
    retriever *r;
    int rc = retriever_open(req->folder, &r, err, err_size);
    if (rc)
        return rc;
    uint32_t *ids = malloc(req->k * sizeof(*ids));
    float *scores = malloc(req->k * sizeof(*scores));
    index_filter filter = {req->author, req->category};
    size_t count = 0;
    if (!ids || !scores)
        rc = errbuf_set(err, err_size, -ENOMEM, "out of memory");
    else
        rc = retriever_search(r, req->query, mode, req->k, &filter, ids, scores, &count, err,
                              err_size);
    if (rc == 0)
        print_results(r, req->query, mode, ids, scores, count, req->json);
    free(ids);
    free(scores);
    retriever_close(r);
    return rc;
}
