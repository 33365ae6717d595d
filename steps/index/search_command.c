/* search_command.c - sluice-search, the program `sluice search INDEX QUERY`
 * runs (docs/cli.md, "search" and "External commands"): a query against an
 * index the index step built, ranked as the retriever ranks it
 * (retriever.h). INDEX is a folder (or its index.sluidx); else sluice
 * itself names the object (`sluice artifacts path --type index`): the
 * newest index of the step of that id, or an artifact id. */
#include <bson/bson.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "command.h"
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

typedef struct search_request {
    const char *folder; /* the index folder */
    const char *query;
    const char *mode;              /* "hybrid", "dense" or "bm25" */
    const char *author, *category; /* filters, or NULL */
    size_t k;
    int json;
} search_request;

/* Runs the search and prints its results on stdout. Returns 0, or a
 * negative errno with the message in err. */
static int search(const search_request *req, char *err, size_t err_size) {
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

static const command_info info = {
    "search",
    "query a retrieval index: dense, BM25 or both fused",
    "usage: sluice search INDEX QUERY [-k N] [--filter KEY=VALUE]... [--mode MODE] [--json]\n"
    "\n"
    "Ranks the chunks of an index the index step built. INDEX is the index's folder\n"
    "(or its index.sluidx), the id of the step that built it (the newest index that\n"
    "step made in the store), or an artifact id as 'sluice artifacts' takes it (a\n"
    "unique hash prefix, RUN:STEP.OUTPUT, STEP.OUTPUT).\n"
    "The query is embedded by the model that embedded the chunks.\n"
    "\n"
    "  -k N                  how many results (default 5)\n"
    "  --filter author=NAME  only chunks of that author (the payload's full name)\n"
    "  --filter category=C   only chunks of that category (articles, posts, ...)\n"
    "  --mode MODE           hybrid (default: dense and BM25 fused by reciprocal rank),\n"
    "                        dense (inner product of the embeddings) or bm25\n"
    "  --json                one JSON object: query, mode, results\n",
};

/* The folder INDEX names, into folder (size bytes): a path as it is, else
 * what sluice says the store holds under that name (it prints why not).
 * Returns 0 or an exit status. */
static int resolve(const char *spec, char *folder, size_t size) {
    struct stat st;
    if (stat(spec, &st) == 0) {
        snprintf(folder, size, "%s", spec);
        if (!S_ISDIR(st.st_mode)) { /* the index.sluidx inside the folder */
            char *slash = strrchr(folder, '/');
            if (!slash)
                snprintf(folder, size, ".");
            else
                slash[slash == folder] = '\0'; /* "/index.sluidx" keeps its "/" */
        }
        return 0;
    }
    const char *args[] = {
        "--store", command_store(), "artifacts", "path", "--type", "index", "--", spec, NULL};
    int status = command_sluice(&info, args, folder, size);
    return status ? COMMAND_BAD_INPUT : 0;
}

/* --filter KEY=VALUE on author or category. */
static int add_filter(search_request *f, const char *spec) {
    const char *eq = strchr(spec, '=');
    size_t klen = eq ? (size_t)(eq - spec) : 0;
    if (eq && klen == 6 && strncmp(spec, "author", 6) == 0)
        f->author = eq + 1;
    else if (eq && klen == 8 && strncmp(spec, "category", 8) == 0)
        f->category = eq + 1;
    else {
        fprintf(stderr, "sluice search: --filter '%s': use author=NAME or category=NAME\n", spec);
        return COMMAND_BAD_INPUT;
    }
    return 0;
}

int main(int argc, char **argv) {
    int status = command_standard(&info, argc, argv);
    if (status >= 0)
        return status;
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"filter", required_argument, NULL, 'f'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    search_request req = {.mode = "hybrid", .k = 5};
    int c;
    command_getopt_begin();
    while ((c = command_getopt(&info, argc, argv, ":k:", longs)) != -1) {
        char *end;
        if (c == 'j') {
            req.json = 1;
        } else if (c == 'f') {
            if (add_filter(&req, optarg))
                return COMMAND_BAD_INPUT;
        } else if (c == 'm') {
            if (strcmp(optarg, "hybrid") != 0 && strcmp(optarg, "dense") != 0 &&
                strcmp(optarg, "bm25") != 0) {
                fprintf(stderr, "sluice search: --mode '%s': use hybrid, dense or bm25\n", optarg);
                return COMMAND_BAD_INPUT;
            }
            req.mode = optarg;
        } else if (c == 'k') {
            long k = strtol(optarg, &end, 10);
            if (*end || end == optarg || k < 1 || k > 10000) {
                fprintf(stderr, "sluice search: -k '%s': a number from 1 to 10000\n", optarg);
                return COMMAND_BAD_INPUT;
            }
            req.k = (size_t)k;
        } else {
            return COMMAND_BAD_INPUT;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "sluice search: give an INDEX and a QUERY (see 'sluice search --help')\n");
        return COMMAND_BAD_INPUT;
    }
    char folder[4096], err[1024];
    if (resolve(argv[optind], folder, sizeof(folder)))
        return COMMAND_BAD_INPUT;
    req.folder = folder;
    req.query = argv[optind + 1];
    if (search(&req, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice search: %s\n", err);
        return COMMAND_BAD_INPUT;
    }
    return COMMAND_DONE;
}
