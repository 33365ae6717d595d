/* cmd_search.c - sluice search INDEX QUERY: a query against an index the
 * index step built, ranked as the retriever ranks it (steps/index/
 * retriever.h, in the module sluice_search). INDEX is a folder (or its index.sluidx), the id of the
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
#include "module.h"
#include "search_command.h"

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
    /* An artifact id or name; a path that is not there is reported as such. */
    if (!n.hash[0] && !strchr(spec, '/') && (all_hex(spec) || strpbrk(spec, ".:"))) {
        status = inspect_resolve_artifact(txn, &m, spec, n.hash, sizeof(n.hash));
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
        /* Reading an object checks it, as 'artifacts cat' does. */
        if (store_verify(&s, n.hash) != 0) {
            fprintf(stderr, "sluice search: index %.12s is missing or corrupt: its content no "
                            "longer matches its hash\n", n.hash);
            status = EXIT_BAD_INPUT;
        }
        store_close(&s);
    }
    inspect_end(&m, txn);
    return status;
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
        return EXIT_BAD_INPUT;
    }
    return 0;
}

int cmd_search(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"filter", required_argument, NULL, 'f'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    search_request req = {.mode = "hybrid", .k = 5};
    int c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":k:", longs)) != -1) {
        char *end;
        if (c == 'j') {
            req.json = 1;
        } else if (c == 'f') {
            if (add_filter(&req, optarg))
                return EXIT_BAD_INPUT;
        } else if (c == 'm') {
            if (strcmp(optarg, "hybrid") != 0 && strcmp(optarg, "dense") != 0 &&
                strcmp(optarg, "bm25") != 0) {
                fprintf(stderr, "sluice search: --mode '%s': use hybrid, dense or bm25\n", optarg);
                return EXIT_BAD_INPUT;
            }
            req.mode = optarg;
        } else if (c == 'k') {
            long k = strtol(optarg, &end, 10);
            if (*end || end == optarg || k < 1 || k > 10000) {
                fprintf(stderr, "sluice search: -k '%s': a number from 1 to 10000\n", optarg);
                return EXIT_BAD_INPUT;
            }
            req.k = (size_t)k;
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
    req.folder = folder;
    req.query = argv[optind + 1];
    void *sym;
    if (module_symbol("sluice_search", SEARCH_COMMAND_SYMBOL, &sym, err, sizeof(err)) != 0 ||
        ((search_command_fn)sym)(&req, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice search: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    return EXIT_DONE;
}
