/* cmd_artifacts.c - sluice artifacts list | show ID | cat ID | export ID PATH,
 * and sluice lineage ID. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "fsutil.h"
#include "inspect.h"

/* An artifact's size: a folder's is the size of the files in it (as the
 * store counts it when it hashes a tree), not the folder entry's, which
 * some records hold. */
static double artifact_size(const artifact_store *st, const char *hash, const bson_t *rec) {
    if (!st->objects || strcmp(inspect_str(rec, "kind", ""), "folder") != 0)
        return inspect_num(rec, "size");
    char path[4096];
    uint64_t total = 0;
    store_object_path(st, hash, path, sizeof(path));
    if (fs_content_size(path, &total) != 0)
        return inspect_num(rec, "size");
    return (double)total;
}

/* {hash, ...rec} with its size as artifact_size() says. */
static void append_artifact(bson_t *doc, const char *hash, size_t hash_len, const bson_t *rec,
                            double size) {
    bson_append_utf8(doc, "hash", -1, hash, (int)hash_len);
    bson_t rest;
    bson_init(&rest);
    bson_copy_to_excluding_noinit(rec, &rest, "size", NULL);
    bson_concat(doc, &rest);
    bson_destroy(&rest);
    BSON_APPEND_INT64(doc, "size", (int64_t)size);
}

typedef struct list_ctx {
    int json;
    bson_t *array;
    const artifact_store *st;
} list_ctx;

static int print_artifact(void *ud, const char *key, size_t len, const bson_t *doc) {
    list_ctx *c = ud;
    char hash[HASH_HEX_LEN + 1];
    snprintf(hash, sizeof(hash), "%.*s", (int)len, key);
    double size = artifact_size(c->st, hash, doc);
    if (c->json) {
        char idx[16];
        const char *k;
        bson_uint32_to_string(bson_count_keys(c->array), &k, idx, sizeof(idx));
        bson_t item;
        BSON_APPEND_DOCUMENT_BEGIN(c->array, k, &item);
        append_artifact(&item, key, len, doc, size);
        bson_append_document_end(c->array, &item);
        return 0;
    }
    char origin[4200];
    inspect_origin(doc, origin, sizeof(origin));
    printf("%.12s  %-12s %-6s %12.0f  %s\n", key, inspect_str(doc, "type", "?"),
           inspect_str(doc, "kind", "?"), size, origin);
    return 0;
}

/* The base name of rec's newest import's path, into out. */
static void take_base(void *ud, const char *path, const char *name, double time) {
    (void)name;
    (void)time;
    const char *slash = strrchr(path, '/');
    if (slash && slash[1])
        snprintf(ud, 256, "%s", slash + 1);
}

/* 'artifacts export ID DEST' as cp: into an existing folder DEST, the
 * artifact goes to DEST/NAME, NAME its output's name (or its import's).
 * With jsonl, a dataset in the Handbook's layout is written as JSON Lines
 * instead (dataset_jsonl.c). */
static int export_artifact(const char *object, const bson_t *rec, const char *dest, int jsonl) {
    if (jsonl)
        return export_dataset_jsonl(object, dest);
    struct stat st;
    char target[4096];
    snprintf(target, sizeof(target), "%s", dest);
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        const char *name = inspect_str(rec, "output", NULL);
        char base[256] = "artifact";
        if (!name) { /* imported: the name it had outside */
            inspect_each_import(rec, take_base, base);
            name = base;
        }
        size_t len = strlen(dest);
        snprintf(target, sizeof(target), "%s%s%s", dest, len && dest[len - 1] == '/' ? "" : "/",
                 name);
    }
    int rc = copy_tree(object, target);
    if (rc)
        fprintf(stderr, "sluice artifacts: cannot export to %s: %s\n", target,
                rc == -EEXIST ? "it exists already" : strerror(-rc));
    return rc ? EXIT_BAD_INPUT : EXIT_DONE;
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

static void print_import(void *ud, const char *path, const char *name, double time) {
    (void)ud;
    char when[64];
    inspect_time(time, when, sizeof(when));
    printf("  imported from %s on %s%s%s\n", path, when, name ? " as " : "", name ? name : "");
}

int cmd_artifacts(const cli_globals *g, int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "path") == 0)
        return cmd_artifacts_path(g, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "import") == 0)
        return cmd_artifacts_import(g, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "forget") == 0)
        return cmd_artifacts_forget(g, argc, argv);
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'J'},
        {"jsonl", no_argument, NULL, 'L'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, jsonl = 0, c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longs)) != -1) {
        if (c == 'J') {
            json = 1;
        } else if (c == 'L' || (c == 'f' && strcmp(optarg, "jsonl") == 0)) {
            jsonl = 1;
        } else if (c == 'f' && strcmp(optarg, "copy") != 0) {
            fprintf(stderr, "sluice artifacts: unknown format '%s' (use copy or jsonl)\n", optarg);
            return EXIT_BAD_INPUT;
        } else if (c != 'f') {
            return EXIT_BAD_INPUT;
        }
    }
    int n = argc - optind;
    const char *sub = n ? argv[optind] : "";
    int ok = (strcmp(sub, "list") == 0 && n == 1) ||
             ((strcmp(sub, "show") == 0 || strcmp(sub, "cat") == 0) && n == 2) ||
             (strcmp(sub, "export") == 0 && n == 3);
    if (!ok) {
        fprintf(stderr, "sluice artifacts: use list, show ID, cat ID, export ID PATH or import "
                        "PATH --type TYPE (see 'sluice artifacts --help')\n");
        return EXIT_BAD_INPUT;
    }
    if (jsonl && strcmp(sub, "export") != 0) {
        fprintf(stderr, "sluice artifacts: --jsonl goes with export only\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    int is_list = strcmp(sub, "list") == 0;
    /* A store with nothing in it yet lists nothing, as 'runs list' does. */
    int open = inspect_begin_ex(g->store, is_list, &m, &txn);
    if (open == EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT;
    int status = EXIT_DONE;
    artifact_store st = {0};
    if (open == 0 && store_open(&st, g->store) != 0)
        memset(&st, 0, sizeof(st)); /* sizes as recorded; reading objects fails below */
    if (is_list) {
        bson_t doc = BSON_INITIALIZER, array;
        list_ctx ctx = {json, &array, &st};
        if (json)
            BSON_APPEND_ARRAY_BEGIN(&doc, "artifacts", &array);
        else
            printf("%-12s  %-12s %-6s %12s  %s\n", "ID", "TYPE", "KIND", "BYTES", "ORIGIN");
        if (open == 0)
            meta_each(txn, m.artifacts, "", print_artifact, &ctx);
        if (json) {
            bson_append_array_end(&doc, &array);
            inspect_print_json(&doc);
        }
        bson_destroy(&doc);
    } else {
        char hash[HASH_HEX_LEN + 1];
        bson_t rec;
        status = inspect_resolve_artifact(txn, &m, argv[optind + 1], hash, sizeof(hash));
        if (status == 0 && meta_get(txn, m.artifacts, hash, &rec) != 0)
            status = EXIT_BAD_INPUT;
        char path[4096] = "";
        if (status == 0 && st.objects)
            store_object_path(&st, hash, path, sizeof(path));
        if (status == 0 && strcmp(sub, "show") == 0) {
            char prefix[HASH_HEX_LEN + 2];
            snprintf(prefix, sizeof(prefix), "%s/", hash);
            if (json) {
                bson_t doc = BSON_INITIALIZER, users;
                BSON_APPEND_UTF8(&doc, "path", path);
                append_artifact(&doc, hash, strlen(hash), &rec, artifact_size(&st, hash, &rec));
                BSON_APPEND_ARRAY_BEGIN(&doc, "used_by", &users);
                meta_each(txn, m.consumers, prefix, print_consumer, &users);
                bson_append_array_end(&doc, &users);
                inspect_print_json(&doc);
                bson_destroy(&doc);
            } else {
                printf("artifact %s\n  type %s, %s of %.0f bytes\n", hash,
                       inspect_str(&rec, "type", "?"), inspect_str(&rec, "kind", "?"),
                       artifact_size(&st, hash, &rec));
                if (inspect_str(&rec, "run", NULL))
                    printf("  made by %s/%s (output %s)\n", inspect_str(&rec, "run", "?"),
                           inspect_str(&rec, "step", "?"), inspect_str(&rec, "output", "?"));
                inspect_each_import(&rec, print_import, NULL);
                printf("  path %s\n", path);
                meta_each(txn, m.consumers, prefix, print_consumer, NULL);
            }
        } else if (status == 0 && !st.objects) {
            fprintf(stderr, "sluice artifacts: cannot open the store %s\n", g->store);
            status = EXIT_BAD_INPUT;
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
                status = export_artifact(path, &rec, argv[optind + 2], jsonl);
            }
        }
    }
    if (st.objects)
        store_close(&st);
    if (open == 0)
        inspect_end(&m, txn);
    return status;
}
