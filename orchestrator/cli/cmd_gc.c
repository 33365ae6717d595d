/* cmd_gc.c - sluice gc [--dry-run] [--wait] [--grace SECONDS]: removes
 * objects that no artifact record names (left by a run killed between
 * storing an output and recording it), and the leftovers of interrupted
 * stores and imports (tmp/import-*). Every artifact record roots its
 * object: a step output's, and an imported artifact's ('artifacts
 * import' writes one), so imports are kept until 'artifacts forget'.
 *
 * A live run renames an output into objects/ before its record commits, so
 * gc must not look at the records of a moment a run is in that gap: it
 * takes the store's lock exclusively (runs hold it shared, store.h) before
 * it reads the records, and refuses while runs hold it (--wait waits). And,
 * as git does, an unreferenced object younger than the grace period is kept
 * whatever the lock says: a sluice that takes no lock (an older one, or one
 * on a file system where flock does not reach every host) is still safe. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "inspect.h"

#define GC_GRACE_SECONDS 3600

int cmd_gc(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {{"dry-run", no_argument, NULL, 'n'},
                                             {"wait", no_argument, NULL, 'w'},
                                             {"grace", required_argument, NULL, 'g'},
                                             {NULL, 0, NULL, 0}};
    int dry = 0, wait = 0, c;
    long grace = GC_GRACE_SECONDS;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        char *end;
        if (c == 'n') {
            dry = 1;
        } else if (c == 'w') {
            wait = 1;
        } else if (c == 'g') {
            errno = 0;
            grace = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || grace < 0) {
                fprintf(stderr, "sluice gc: --grace takes a number of seconds, not '%s'\n", optarg);
                return EXIT_BAD_INPUT;
            }
        } else {
            return EXIT_BAD_INPUT;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sluice gc: takes no operands (see 'sluice gc --help')\n");
        return EXIT_BAD_INPUT;
    }
    char data[4200];
    snprintf(data, sizeof(data), "%s/meta/data.mdb", g->store);
    meta_db m;
    MDB_txn *txn;
    artifact_store st;
    if (!path_exists(data)) /* no store (or no metadata): inspect says which */
        return inspect_begin(g->store, &m, &txn) ? EXIT_BAD_INPUT
                                                 : (inspect_end(&m, txn), EXIT_DONE);
    int rc = store_open(&st, g->store);
    if (rc == 0 && (rc = store_lock(&st, 1, wait)) == -EWOULDBLOCK) {
        fprintf(stderr,
                "sluice gc: runs are in progress in %s (they hold its lock): nothing was "
                "removed; try again when they end, or use --wait\n",
                g->store);
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    if (rc) {
        fprintf(stderr, "sluice gc: cannot lock the store %s: %s\n", g->store, strerror(-rc));
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    /* The records are read only now, under the lock: a run that recorded
     * an object before gc took the lock is seen to have it. */
    if (inspect_begin(g->store, &m, &txn)) {
        store_close(&st);
        return EXIT_BAD_INPUT;
    }
    char **fans;
    size_t n_fans, removed = 0, kept = 0, young = 0;
    rc = dir_list(st.objects, NULL, &fans, &n_fans);
    int status = EXIT_DONE;
    time_t now = time(NULL);
    for (size_t i = 0; rc == 0 && i < n_fans; i++) {
        char fan[4200];
        snprintf(fan, sizeof(fan), "%s/%s", st.objects, fans[i]);
        char **names;
        size_t n;
        if (dir_list(fan, NULL, &names, &n) != 0)
            continue;
        for (size_t k = 0; k < n; k++) {
            bson_t rec;
            int known =
                strlen(names[k]) == HASH_HEX_LEN && meta_get(txn, m.artifacts, names[k], &rec) == 0;
            if (known) {
                kept++;
                continue;
            }
            char path[8400];
            snprintf(path, sizeof(path), "%s/%s", fan, names[k]);
            /* ctime: a rename into objects/ sets it, whatever mtime the
             * step gave its output. */
            struct stat sb;
            if (lstat(path, &sb) == 0 && now - sb.st_ctime < grace) {
                young++;
                continue;
            }
            printf("%s %s\n", dry ? "would remove" : "removing", path);
            if (!dry) {
                int err = remove_tree(path); /* never follows a link */
                if (err) {
                    fprintf(stderr, "sluice gc: cannot remove %s: %s\n", path, strerror(-err));
                    status = EXIT_BAD_INPUT;
                    continue;
                }
            }
            removed++;
        }
        dir_list_free(names, n);
        if (!dry)
            rmdir(fan); /* emptied: an empty fan is no use (fails when it is not) */
    }
    if (rc == 0)
        dir_list_free(fans, n_fans);
    /* The copies of imports that never finished ('artifacts import' killed
     * between copying a file in and storing it), past the same grace. */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/tmp", st.root);
    char **left;
    size_t n_left;
    if (dir_list(tmp, NULL, &left, &n_left) == 0) {
        for (size_t i = 0; i < n_left; i++) {
            char path[8400];
            struct stat sb;
            snprintf(path, sizeof(path), "%s/%s", tmp, left[i]);
            if (strncmp(left[i], "import-", 7) != 0 || lstat(path, &sb) != 0 ||
                now - sb.st_mtime < grace)
                continue;
            printf("%s %s\n", dry ? "would remove" : "removing", path);
            if (!dry)
                remove_tree(path);
        }
        dir_list_free(left, n_left);
    }
    printf("%zu object%s %s, %zu kept", removed, removed == 1 ? "" : "s",
           dry ? "to remove" : "removed", kept);
    if (young)
        printf(", %zu unreferenced but younger than %lds kept (a run may be about to record "
               "them; --grace 0 removes them)",
               young, grace);
    printf("\n");
    inspect_end(&m, txn);
    store_close(&st);
    return status;
}
