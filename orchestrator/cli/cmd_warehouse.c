/* cmd_warehouse.c - sluice warehouse import DIR | export DIR: the LLM
 * twin's document warehouse in and out of the Handbook's export format. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "warehouse.h"

int cmd_warehouse(const cli_globals *g, int argc, char **argv) {
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"warehouse", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    const char *where = "";
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longs)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'w')
            where = optarg;
        else
            return EXIT_BAD_INPUT;
    }
    int n = argc - optind;
    const char *sub = n ? argv[optind] : "";
    int import = strcmp(sub, "import") == 0, export = strcmp(sub, "export") == 0;
    if ((!import && !export) || n != 2) {
        fprintf(stderr, "sluice warehouse: use 'warehouse import DIR' or 'warehouse export DIR' "
                        "(see 'sluice warehouse --help')\n");
        return EXIT_BAD_INPUT;
    }
    warehouse *w;
    char err[1024];
    if (warehouse_open(&w, g->store, where, export, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice warehouse: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    size_t users, documents;
    int rc = import ? warehouse_import(w, argv[optind + 1], &users, &documents)
                    : warehouse_export(w, argv[optind + 1], &users, &documents);
    if (rc)
        fprintf(stderr, "sluice warehouse %s: %s\n", sub, warehouse_error(w));
    warehouse_close(w);
    if (rc)
        return EXIT_BAD_INPUT;
    if (json)
        printf("{ \"users\" : %zu, \"documents\" : %zu }\n", users, documents);
    else
        printf("%s %zu users and %zu documents %s %s\n", import ? "imported" : "exported", users,
               documents, import ? "from" : "to", argv[optind + 1]);
    return EXIT_DONE;
}
