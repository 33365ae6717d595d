/* cmd_gc.c - sluice gc [--dry-run]: removes objects that no artifact record
 * names (left by a run killed between storing an output and recording it),
 * and the leftovers of interrupted stores. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/fsutil.h"
#include "inspect.h"

int cmd_gc(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {{"dry-run", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    int dry = 0, c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c != 'n')
            return EXIT_BAD_INPUT;
        dry = 1;
    }
    if (optind != argc) {
        fprintf(stderr, "sluice gc: takes no operands (see 'sluice gc --help')\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char objects[4096];
    snprintf(objects, sizeof(objects), "%s/objects", g->store);
    char **fans;
    size_t n_fans, removed = 0, kept = 0;
    int rc = dir_list(objects, NULL, &fans, &n_fans), status = EXIT_DONE;
    for (size_t i = 0; rc == 0 && i < n_fans; i++) {
        char fan[4200];
        snprintf(fan, sizeof(fan), "%s/%s", objects, fans[i]);
        char **names;
        size_t n;
        if (dir_list(fan, NULL, &names, &n) != 0)
            continue;
        for (size_t k = 0; k < n; k++) {
            bson_t rec;
            int known = strlen(names[k]) == HASH_HEX_LEN &&
                        meta_get(txn, m.artifacts, names[k], &rec) == 0;
            if (known) {
                kept++;
                continue;
            }
            char path[8400];
            snprintf(path, sizeof(path), "%s/%s", fan, names[k]);
            printf("%s %s\n", dry ? "would remove" : "removing", path);
            if (!dry) {
                chmod(path, 0644); /* objects are read-only files */
                int err = remove_tree(path);
                if (err) {
                    fprintf(stderr, "sluice gc: cannot remove %s: %s\n", path, strerror(-err));
                    status = EXIT_BAD_INPUT;
                    continue;
                }
            }
            removed++;
        }
        dir_list_free(names, n);
    }
    if (rc == 0)
        dir_list_free(fans, n_fans);
    printf("%zu object%s %s, %zu kept\n", removed, removed == 1 ? "" : "s",
           dry ? "to remove" : "removed", kept);
    inspect_end(&m, txn);
    return status;
}
