/* cmd_search.c - sluice search INDEX QUERY: a query against an index the
 * index step built, ranked as the retriever ranks it (steps/index/
 * retriever.h). INDEX is a folder (or its index.sluidx), the id of the
 * step that built it (the newest index that step made), or an artifact
 * id. */
#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "inspect.h"
#include "retriever.h"

#define SNIPPET_BYTES 300

typedef struct newest {
    const char *step;
    char hash[HASH_HEX_LEN + 1];
    char run[128];
} newest;

static int newest_index(void *ud, const char *key, size_t len, const bson_t *doc) {
    newest *n = ud;
    const char *run = inspect_str(doc, "run", "");
    if (len == HASH_HEX_LEN && strcmp(inspect_str(doc, "type", ""), "index") == 0 &&
        strcmp(inspect_str(doc, "step", ""), n->step) == 0 && strcmp(run, n->run) > 0) {
        memcpy(n->hash, key, len);
        n->hash[len] = '\0';
        snprintf(n->run, sizeof(n->run), "%s", run);
    }
    return 0;
}

static int all_hex(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return 0;
    return 1;
}

/* The folder INDEX names, into folder. Prints why not and returns
 * EXIT_BAD_INPUT. */
static int resolve(const char *store, const char *spec, char *folder, size_t size) {
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
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(store, &m, &txn))
        return EXIT_BAD_INPUT;
    /* A step's name first: one that looks like hex is still a name. */
    newest n = {.step = spec};
    int status = 0;
    meta_each(txn, m.artifacts, "", newest_index, &n);
    if (!n.hash[0] && all_hex(spec)) {
        status = inspect_resolve(txn, m.artifacts, "artifact", spec, n.hash, sizeof(n.hash));
    } else if (!n.hash[0]) {
        fprintf(stderr,
                "sluice search: '%s' is not a folder, an artifact id, or a step that made an "
                "index in %s\n",
                spec, store);
        status = EXIT_BAD_INPUT;
    }
    artifact_store s = {0};
    if (status == 0 && store_open(&s, store) != 0) {
        fprintf(stderr, "sluice search: cannot open the store %s\n", store);
        status = EXIT_BAD_INPUT;
    } else if (status == 0) {
        store_object_path(&s, n.hash, folder, size);
        store_close(&s);
    }
    inspect_end(&m, txn);
    return status;
}

/* --filter KEY=VALUE on author or category. */
static int add_filter(index_filter *f, const char *spec) {
    const char *eq = strchr(spec, '=');
    size_t klen = eq ? (size_t)(eq - spec) : 0;
    if (eq && klen == 6 && strncmp(spec, "author", 6) == 0)
        f->author = eq + 1;
    else if (eq && klen == 8 && strncmp(spec, "category", 8) == 0)
        f->category = eq + 1;
    else {
        fprintf(stderr, "sluice search: --filter '%s': use author=NAME or category=NAME\n", spec);
        return EXIT_BAD_INPUT;
    }
    return 0;
}

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
        inspect_print_json(&doc);
    } else if (count == 0) {
        printf("no match\n");
    }
    bson_destroy(&doc);
}

int cmd_search(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"filter", required_argument, NULL, 'f'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    long k = 5;
    index_filter filter = {0};
    retrieve_mode mode = RETRIEVE_HYBRID;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":k:", longs)) != -1) {
        char *end;
        if (c == 'j') {
            json = 1;
        } else if (c == 'f') {
            if (add_filter(&filter, optarg))
                return EXIT_BAD_INPUT;
        } else if (c == 'm') {
            if (retrieve_mode_parse(optarg, &mode) != 0) {
                fprintf(stderr, "sluice search: --mode '%s': use hybrid, dense or bm25\n", optarg);
                return EXIT_BAD_INPUT;
            }
        } else if (c == 'k') {
            k = strtol(optarg, &end, 10);
            if (*end || end == optarg || k < 1 || k > 10000) {
                fprintf(stderr, "sluice search: -k '%s': a number from 1 to 10000\n", optarg);
                return EXIT_BAD_INPUT;
            }
        } else {
            return EXIT_BAD_INPUT;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "sluice search: give an INDEX and a QUERY (see 'sluice search --help')\n");
        return EXIT_BAD_INPUT;
    }
    char folder[4096], err[1024];
    if (resolve(g->store, argv[optind], folder, sizeof(folder)))
        return EXIT_BAD_INPUT;
    retriever *r;
    if (retriever_open(folder, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice search: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    uint32_t *ids = malloc((size_t)k * sizeof(*ids));
    float *scores = malloc((size_t)k * sizeof(*scores));
    size_t count = 0;
    int status = EXIT_DONE;
    if (!ids || !scores) {
        fprintf(stderr, "sluice search: out of memory\n");
        status = EXIT_BAD_INPUT;
    } else if (retriever_search(r, argv[optind + 1], mode, (size_t)k, &filter, ids, scores, &count,
                                err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice search: %s\n", err);
        status = EXIT_BAD_INPUT;
    } else {
        print_results(r, argv[optind + 1], mode, ids, scores, count, json);
    }
    free(ids);
    free(scores);
    retriever_close(r);
    return status;
}
