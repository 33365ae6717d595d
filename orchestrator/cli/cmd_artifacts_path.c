/* cmd_artifacts_path.c - sluice artifacts path ID [--type TYPE]: the
 * object of an artifact in the store, checked against its hash, for
 * external commands (sluice-search) that read artifacts sluice keeps
 * without knowing the store's insides, as git's commands call
 * `git rev-parse`. With --type, ID may also be the id of a step: the
 * newest artifact of that type it made. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"

typedef struct newest {
    const char *step, *type;
    char hash[HASH_HEX_LEN + 1];
    char run[128];
} newest;

static int newest_of_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    newest *n = ud;
    const char *run = inspect_str(doc, "run", "");
    if (len == HASH_HEX_LEN && strcmp(inspect_str(doc, "type", ""), n->type) == 0 &&
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

/* The artifact spec names, into hash: with a type, a step's newest
 * artifact of that type first (a step id that looks like hex is still a
 * step id), then an artifact id. Prints why not; an exit status. */
static int resolve(const char *store, MDB_txn *txn, const meta_db *m, const char *spec,
                   const char *type, char *hash, size_t size) {
    newest n = {.step = spec, .type = type ? type : ""};
    if (type)
        meta_each(txn, m->artifacts, "", newest_of_step, &n);
    if (n.hash[0]) {
        snprintf(hash, size, "%s", n.hash);
        return 0;
    }
    if (!type || all_hex(spec) || strpbrk(spec, ".:@"))
        return inspect_resolve_artifact(txn, m, spec, hash, size);
    fprintf(stderr,
            "sluice: '%s' is not an artifact id, nor a step that made an artifact of "
            "type '%s' in %s\n",
            spec, type, store);
    return EXIT_BAD_INPUT;
}

int cmd_artifacts_path(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"type", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    const char *type = NULL;
    int c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longs)) != -1) {
        if (c != 't')
            return EXIT_BAD_INPUT;
        type = optarg;
    }
    /* argv: "artifacts", "path", ID (getopt moved the options first). */
    if (argc - optind != 2 || strcmp(argv[optind], "path") != 0) {
        fprintf(stderr, "sluice artifacts: use path ID [--type TYPE] (see 'sluice artifacts "
                        "--help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char hash[HASH_HEX_LEN + 1], path[4096];
    int status = resolve(g->store, txn, &m, argv[optind + 1], type, hash, sizeof(hash));
    artifact_store st = {0};
    if (status == 0 && store_open(&st, g->store) != 0) {
        fprintf(stderr, "sluice: cannot open the store %s\n", g->store);
        status = EXIT_BAD_INPUT;
    } else if (status == 0) {
        store_object_path(&st, hash, path, sizeof(path));
        /* Reading an object checks it, as 'artifacts cat' does. */
        if (store_verify(&st, hash) != 0) {
            fprintf(stderr,
                    "sluice: %s %.12s is missing or corrupt: its content no longer "
                    "matches its hash\n",
                    type ? type : "artifact", hash);
            status = EXIT_BAD_INPUT;
        } else {
            printf("%s\n", path);
        }
        store_close(&st);
    }
    inspect_end(&m, txn);
    return status;
}
