/* cmd_artifacts_import.c - sluice artifacts import PATH --type TYPE
 * [--name NAME] [--json]: brings an outside file or folder into the store
 * as an artifact, so that a pipeline can start from it.
 *
 * The content is copied into a folder of the store (STORE/tmp/import-*),
 * then stored as a step's output is (store_ingest: hashed the same way,
 * synced, renamed into objects/), then recorded (record_import). The store's
 * lock is held shared from before the object is stored until its record is
 * committed, as a run holds it, so that gc never removes the object in
 * between. A failure removes the copy: nothing half-imported remains. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "inspect.h"
#include "record.h"

/* The first entry of a folder to import that cannot be content. */
typedef struct survey {
    char bad[PATH_MAX + 128];
} survey;

static int survey_entry(const char *path, const char *rel, fs_visit what, void *ctx) {
    survey *sv = ctx;
    (void)rel;
    if (what == FS_DIR_LEAVE)
        return 0;
    struct stat st;
    if (lstat(path, &st) != 0) {
        int e = errno;
        snprintf(sv->bad, sizeof(sv->bad), "%s: %s", path, strerror(e));
        return -e;
    }
    if (what == FS_DIR_ENTER) {
        if (access(path, R_OK | X_OK) == 0)
            return 0;
        snprintf(sv->bad, sizeof(sv->bad), "%s: the folder cannot be read (%s)", path,
                 strerror(errno));
        return -EACCES;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(sv->bad, sizeof(sv->bad),
                 "%s is a symbolic link: an artifact holds content, never links (copy the file "
                 "itself in)",
                 path);
        return -ELOOP;
    }
    if (!S_ISREG(st.st_mode)) {
        /* Not a link (above): path_special_kind's stat sees this entry. */
        const char *kind = path_special_kind(path);
        snprintf(sv->bad, sizeof(sv->bad), "%s is %s: only files and folders can be imported", path,
                 kind ? kind : "a special file");
        return -EINVAL;
    }
    if (access(path, R_OK) != 0) {
        snprintf(sv->bad, sizeof(sv->bad), "%s cannot be read (%s)", path, strerror(errno));
        return -EACCES;
    }
    return 0;
}

/* Checks what path is before anything is copied: it exists, is a file or
 * a folder (a link given on the command line is followed, to its end),
 * and everything in it can be read and is content. Prints why not. */
static int check_source(const char *path, char *real, size_t size) {
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT)
            fprintf(stderr, "sluice artifacts: cannot import %s: no such file or folder\n", path);
        else if (e == ELOOP)
            fprintf(stderr,
                    "sluice artifacts: cannot import %s: it is a symbolic link loop (too many "
                    "levels of links)\n",
                    path);
        else
            fprintf(stderr, "sluice artifacts: cannot import %s: %s\n", path, strerror(e));
        return EXIT_BAD_INPUT;
    }
    const char *special = path_special_kind(path);
    if (special) {
        fprintf(stderr,
                "sluice artifacts: cannot import %s: it is %s; only a file or a folder can be "
                "imported\n",
                path, special);
        return EXIT_BAD_INPUT;
    }
    char *abs = realpath(path, NULL);
    if (!abs) {
        fprintf(stderr, "sluice artifacts: cannot import %s: %s\n", path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    snprintf(real, size, "%s", abs);
    free(abs);
    if (S_ISREG(st.st_mode) && access(real, R_OK) != 0) {
        fprintf(stderr, "sluice artifacts: cannot import %s: it cannot be read (%s)\n", path,
                strerror(errno));
        return EXIT_BAD_INPUT;
    }
    survey sv = {""};
    if (S_ISDIR(st.st_mode) && fs_walk(real, survey_entry, &sv) != 0) {
        fprintf(stderr, "sluice artifacts: cannot import %s: %s\n", path,
                sv.bad[0] ? sv.bad : "it cannot be read");
        return EXIT_BAD_INPUT;
    }
    return 0;
}

/* Copies real into the store's tmp/ and stores it: *info filled. The
 * copy is gone afterwards, stored or not. Prints why not. */
static int store_copy(artifact_store *st, const char *path, const char *real, object_info *info) {
    char tmp[PATH_MAX], staged[PATH_MAX + 16], why[1024];
    snprintf(tmp, sizeof(tmp), "%s/tmp", st->root);
    size_t root_len = strlen(real);
    if (strncmp(st->root, real, root_len) == 0 &&
        (st->root[root_len] == '/' || st->root[root_len] == '\0')) {
        fprintf(stderr, "sluice artifacts: cannot import %s: it holds the store itself\n", path);
        return EXIT_BAD_INPUT;
    }
    int rc = mkdir_p(tmp, 0755);
    snprintf(tmp, sizeof(tmp), "%s/tmp/import-XXXXXX", st->root);
    if (rc || !mkdtemp(tmp)) {
        fprintf(stderr, "sluice artifacts: cannot make a folder in %s/tmp: %s\n", st->root,
                strerror(rc ? -rc : errno));
        return EXIT_BAD_INPUT;
    }
    snprintf(staged, sizeof(staged), "%s/content", tmp);
    rc = copy_tree(real, staged);
    if (rc)
        fprintf(stderr, "sluice artifacts: cannot copy %s into the store: %s\n", path,
                strerror(-rc));
    else if ((rc = store_ingest(st, staged, info, why, sizeof(why))) != 0)
        fprintf(stderr, "sluice artifacts: cannot import %s: %s\n", path, why);
    remove_tree(tmp);
    return rc ? EXIT_BAD_INPUT : 0;
}

/* Prints the artifact's record after an import that found `how`. */
static int print_result(const char *store, const char *path, const char *hash, int how, int json) {
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(store, &m, &txn))
        return EXIT_BAD_INPUT;
    bson_t rec;
    int status = EXIT_DONE;
    if (meta_get(txn, m.artifacts, hash, &rec) != 0) {
        fprintf(stderr, "sluice artifacts: artifact %.12s has no record\n", hash);
        status = EXIT_BAD_INPUT;
    } else if (json) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "hash", hash);
        BSON_APPEND_UTF8(&doc, "import",
                         how == IMPORT_NEW     ? "new"
                         : how == IMPORT_KNOWN ? "known"
                                               : "again");
        bson_concat(&doc, &rec);
        inspect_print_json(&doc);
        bson_destroy(&doc);
    } else {
        char origin[PATH_MAX + 64];
        inspect_origin(&rec, origin, sizeof(origin));
        const char *kind = inspect_str(&rec, "kind", "file");
        if (how == IMPORT_NEW)
            printf("imported %s as artifact %s (%s, %s of %.0f bytes)\n", path, hash,
                   inspect_str(&rec, "type", "?"), kind, inspect_num(&rec, "size"));
        else
            printf("%s is already in the store, with the same content: artifact %s (%s, %s)%s\n",
                   path, hash, inspect_str(&rec, "type", "?"), origin,
                   how == IMPORT_KNOWN ? "; this import is recorded with it" : "");
    }
    inspect_end(&m, txn);
    return status;
}

int cmd_artifacts_import(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"type", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    const char *type = NULL, *name = NULL;
    int json = 0, c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longs)) != -1) {
        if (c == 't')
            type = optarg;
        else if (c == 'n')
            name = optarg;
        else if (c == 'J')
            json = 1;
        else
            return EXIT_BAD_INPUT;
    }
    /* argv: "artifacts", "import", PATH (getopt moved the options first). */
    if (argc - optind != 2 || strcmp(argv[optind], "import") != 0 || !type) {
        fprintf(stderr, "sluice artifacts: use import PATH --type TYPE [--name NAME] [--json] "
                        "(see 'sluice artifacts --help')\n");
        return EXIT_BAD_INPUT;
    }
    if (!registry_type_ok(type)) {
        fprintf(stderr,
                "sluice artifacts: '%s' is no artifact type: use [a-z0-9_]+, as a port's type "
                "(dataset, documents, any)\n",
                type);
        return EXIT_BAD_INPUT;
    }
    if (name && !registry_name_ok(name)) {
        fprintf(stderr, "sluice artifacts: bad name '%s': use [a-z0-9_-], at most 64\n", name);
        return EXIT_BAD_INPUT;
    }
    const char *path = argv[optind + 1];
    char real[PATH_MAX];
    int status = check_source(path, real, sizeof(real));
    if (status)
        return status;
    artifact_store st;
    int rc = store_open(&st, g->store);
    if (rc == 0)
        rc = store_lock(&st, 0, 1);
    if (rc) {
        fprintf(stderr, "sluice artifacts: cannot open the store %s: %s\n", g->store,
                strerror(-rc));
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    object_info info;
    status = store_copy(&st, path, real, &info);
    meta_db m;
    if (status == 0 && (rc = meta_open(&m, g->store, 0)) != 0) {
        fprintf(stderr, "sluice artifacts: cannot open the metadata in %s/meta: %s\n", g->store,
                meta_error(&m, rc));
        status = EXIT_BAD_INPUT;
    } else if (status == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        import_record imp = {real,        type,
                             name,        info.size,
                             info.is_dir, (double)now.tv_sec + (double)now.tv_nsec / 1e9};
        char have[128];
        int how = rc = record_import(&m, info.hash, &imp, have, sizeof(have));
        if (rc == -EMEDIUMTYPE)
            fprintf(stderr,
                    "sluice artifacts: cannot import %s as %s: its content is already in the "
                    "store as artifact %.12s, of type %s\n",
                    path, type, info.hash, have);
        else if (rc < 0)
            fprintf(stderr, "sluice artifacts: cannot record the import of %s: %s\n", path,
                    meta_strerror(rc));
        if (rc >= 0)
            rc = meta_sync(&m);
        meta_close(&m);
        /* Printed once the lock is let go: the import is over. */
        store_close(&st);
        return rc < 0 ? EXIT_BAD_INPUT : print_result(g->store, path, info.hash, how, json);
    }
    store_close(&st);
    return status;
}
