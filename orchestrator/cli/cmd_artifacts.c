/* cmd_artifacts.c - sluice artifacts list | show ID | cat ID | export ID PATH,
 * and sluice lineage ID. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/fsutil.h"
#include "inspect.h"

static int print_artifact(void *ud, const char *key, size_t len, const bson_t *doc) {
    inspect_list *c = ud;
    if (c->json) {
        inspect_append_item(c->array, "hash", key, len, doc);
        return 0;
    }
    printf("%.12s  %-12s %-6s %12.0f  %s/%s.%s\n", key, inspect_str(doc, "type", "?"),
           inspect_str(doc, "kind", "?"), inspect_num(doc, "size"), inspect_str(doc, "run", "?"),
           inspect_str(doc, "step", "?"), inspect_str(doc, "output", "?"));
    return 0;
}

static int print_consumer(void *ud, const char *key, size_t len, const bson_t *doc) {
    (void)doc;
    bson_t *arr = ud;
    const char *slash = memchr(key, '/', len);
    if (!slash)
        return 0;
    if (arr) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(bson_count_keys(arr), &k, idx, sizeof(idx));
        bson_append_utf8(arr, k, -1, slash + 1, (int)(len - (size_t)(slash + 1 - key)));
    } else {
        printf("  used by %.*s\n", (int)(len - (size_t)(slash + 1 - key)), slash + 1);
    }
    return 0;
}

int cmd_artifacts(const cli_globals *g, int argc, char **argv) {
    int json;
    if (cli_json_only(argc, argv, &json))
        return EXIT_BAD_INPUT;
    int n = argc - optind;
    const char *sub = n ? argv[optind] : "";
    int ok = (strcmp(sub, "list") == 0 && n == 1) ||
             ((strcmp(sub, "show") == 0 || strcmp(sub, "cat") == 0) && n == 2) ||
             (strcmp(sub, "export") == 0 && n == 3);
    if (!ok) {
        fprintf(stderr, "sluice artifacts: use list, show ID, cat ID or export ID PATH (see "
                        "'sluice artifacts --help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    int status = EXIT_DONE;
    if (strcmp(sub, "list") == 0) {
        bson_t doc = BSON_INITIALIZER, array;
        inspect_list ctx = {json, &array};
        if (json)
            BSON_APPEND_ARRAY_BEGIN(&doc, "artifacts", &array);
        else
            printf("%-12s  %-12s %-6s %12s  %s\n", "ID", "TYPE", "KIND", "BYTES", "MADE BY");
        meta_each(txn, m.artifacts, "", print_artifact, &ctx);
        if (json) {
            bson_append_array_end(&doc, &array);
            inspect_print_json(&doc);
        }
        bson_destroy(&doc);
    } else {
        char hash[HASH_HEX_LEN + 1];
        bson_t rec;
        status = inspect_resolve(txn, m.artifacts, "artifact", argv[optind + 1], hash, sizeof(hash));
        if (status == 0 && meta_get(txn, m.artifacts, hash, &rec) != 0)
            status = EXIT_BAD_INPUT;
        artifact_store st = {0};
        char path[4096] = "";
        if (status == 0 && store_open(&st, g->store) == 0)
            store_object_path(&st, hash, path, sizeof(path));
        if (status == 0 && strcmp(sub, "show") == 0) {
            char prefix[HASH_HEX_LEN + 2];
            snprintf(prefix, sizeof(prefix), "%s/", hash);
            if (json) {
                bson_t doc = BSON_INITIALIZER, users;
                BSON_APPEND_UTF8(&doc, "hash", hash);
                BSON_APPEND_UTF8(&doc, "path", path);
                bson_concat(&doc, &rec);
                BSON_APPEND_ARRAY_BEGIN(&doc, "used_by", &users);
                meta_each(txn, m.consumers, prefix, print_consumer, &users);
                bson_append_array_end(&doc, &users);
                inspect_print_json(&doc);
                bson_destroy(&doc);
            } else {
                printf("artifact %s\n  type %s, %s of %.0f bytes\n  made by %s/%s (output %s)\n  "
                       "path %s\n",
                       hash, inspect_str(&rec, "type", "?"), inspect_str(&rec, "kind", "?"),
                       inspect_num(&rec, "size"), inspect_str(&rec, "run", "?"),
                       inspect_str(&rec, "step", "?"), inspect_str(&rec, "output", "?"), path);
                meta_each(txn, m.consumers, prefix, print_consumer, NULL);
            }
        } else if (status == 0) {
            /* Reading an object checks it: a changed object is refused. */
            int v = store_verify(&st, hash);
            if (v) {
                fprintf(stderr, "sluice artifacts: object %.12s is %s\n", hash,
                        v == -ENOENT ? "missing from the store"
                                     : "corrupt: its content no longer matches its hash");
                status = EXIT_BAD_INPUT;
            } else if (strcmp(sub, "cat") == 0) {
                struct stat info;
                int rc = stat(path, &info) != 0 ? -errno : S_ISDIR(info.st_mode) ? -EISDIR : 0;
                if (rc == 0)
                    rc = copy_file_to(path, stdout);
                if (rc) {
                    fprintf(stderr, "sluice artifacts: cannot print %.12s: %s\n", hash,
                            rc == -EISDIR ? "it is a folder (use export)" : strerror(-rc));
                    status = EXIT_BAD_INPUT;
                }
            } else {
                int rc = copy_tree(path, argv[optind + 2]);
                if (rc) {
                    fprintf(stderr, "sluice artifacts: cannot export to %s: %s\n",
                            argv[optind + 2], strerror(-rc));
                    status = EXIT_BAD_INPUT;
                }
            }
        }
        store_close(&st);
    }
    inspect_end(&m, txn);
    return status;
}
