/* cmd_artifacts_forget.c - sluice artifacts forget NAME|ID [--path PATH]
 * [--json]: takes imports out of the store's records (record_forget_imports),
 * undoing 'artifacts import'. An artifact left with nothing that roots it (no
 * import, no run that made it, no model version) loses its record, so that
 * gc may remove its object.
 *
 * It takes the store's lock exclusively, as gc does, and so refuses while
 * runs are in progress: a run may have resolved "artifact:NAME" when it
 * started and be reading the object. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "inspect.h"
#include "record.h"

/* path made absolute as 'import' recorded it: its real path when it still
 * exists, else relative to the working folder. */
static void absolute(const char *path, char *out, size_t size) {
    char cwd[PATH_MAX];
    if (realpath(path, out))
        return;
    if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
        snprintf(out, size, "%s", path);
    else
        snprintf(out, size, "%s/%s", cwd, path);
}

static void print_reports(const forget_report *reps, size_t n, int json) {
    if (json) {
        bson_t doc = BSON_INITIALIZER, arr;
        char idx[16];
        const char *k;
        BSON_APPEND_ARRAY_BEGIN(&doc, "artifacts", &arr);
        for (size_t i = 0; i < n; i++) {
            bson_t item;
            bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
            BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &item);
            BSON_APPEND_UTF8(&item, "hash", reps[i].hash);
            BSON_APPEND_INT64(&item, "forgotten", (int64_t)reps[i].forgotten);
            BSON_APPEND_BOOL(&item, "removed", reps[i].removed);
            if (!reps[i].removed)
                BSON_APPEND_UTF8(&item, "kept_by", reps[i].kept_by);
            bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(&doc, &arr);
        inspect_print_json(&doc);
        bson_destroy(&doc);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        printf("forgot %zu import%s of artifact %.12s: ", reps[i].forgotten,
               reps[i].forgotten == 1 ? "" : "s", reps[i].hash);
        if (reps[i].removed)
            printf("its record is removed ('sluice gc' removes its object)\n");
        else
            printf("it stays, %s\n", reps[i].kept_by);
    }
}

int cmd_artifacts_forget(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"path", required_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int json = 0, c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longs)) != -1) {
        if (c == 'P')
            path = optarg;
        else if (c == 'J')
            json = 1;
        else
            return EXIT_BAD_INPUT;
    }
    /* argv: "artifacts", "forget", NAME|ID (getopt moved the options first). */
    if (argc - optind != 2 || strcmp(argv[optind], "forget") != 0) {
        fprintf(stderr, "sluice artifacts: use forget NAME|ID [--path PATH] [--json] (see "
                        "'sluice artifacts --help')\n");
        return EXIT_BAD_INPUT;
    }
    const char *spec = argv[optind + 1];
    char abs[PATH_MAX + 1024];
    if (path)
        absolute(path, abs, sizeof(abs));
    artifact_store st;
    int rc = store_open(&st, g->store);
    if (rc == 0 && (rc = store_lock(&st, 1, 0)) == -EWOULDBLOCK) {
        fprintf(stderr,
                "sluice artifacts: runs are in progress in %s (they hold its lock): nothing was "
                "forgotten; try again when they end\n",
                g->store);
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    if (rc == 0 && (rc = meta_open(&m, g->store, 0)) != 0) {
        fprintf(stderr, "sluice artifacts: cannot open the metadata in %s/meta: %s\n", g->store,
                meta_error(&m, rc));
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    if (rc) {
        fprintf(stderr, "sluice artifacts: cannot open the store %s: %s\n", g->store,
                strerror(-rc));
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    forget_report *reps = NULL;
    size_t n = 0;
    int status = EXIT_DONE;
    /* A name first, as every ID is read: all the imports under it, so that
     * it names nothing afterwards; else the artifact ID names. */
    if (registry_name_ok(spec))
        rc = record_forget_imports(&m, NULL, spec, path ? abs : NULL, &reps, &n);
    char hash[HASH_HEX_LEN + 1] = "";
    if (rc == 0 && n == 0) {
        MDB_txn *txn;
        if ((rc = meta_begin(&m, 0, &txn)) == 0) {
            status = inspect_resolve_artifact(txn, &m, spec, hash, sizeof(hash));
            meta_abort(txn);
        }
        if (rc == 0 && status == EXIT_DONE)
            rc = record_forget_imports(&m, hash, NULL, path ? abs : NULL, &reps, &n);
    }
    if (rc == 0 && status == EXIT_DONE && n == 0) {
        fprintf(stderr, "sluice artifacts: %s%s has no import%s%s: nothing to forget\n",
                hash[0] ? "artifact " : "", hash[0] ? hash : spec, path ? " from " : "",
                path ? abs : "");
        status = EXIT_BAD_INPUT;
    }
    if (rc == 0 && n)
        rc = meta_sync(&m);
    if (rc) {
        fprintf(stderr, "sluice artifacts: cannot forget the imports of %s: %s\n", spec,
                meta_strerror(rc));
        status = EXIT_BAD_INPUT;
    }
    meta_close(&m);
    store_close(&st);
    if (rc == 0 && n)
        print_reports(reps, n, json);
    free(reps);
    return status;
}
