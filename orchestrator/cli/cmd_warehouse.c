/* cmd_warehouse.c - sluice warehouse import DIR | export DIR: the LLM
 * twin's document warehouse in and out of the Handbook's export format. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "warehouse.h"

int cmd_warehouse(const cli_globals *g, int argc, char **argv) {
    int json;
    if (cli_json_only(argc, argv, &json))
        return EXIT_BAD_INPUT;
    int n = argc - optind;
    const char *sub = n ? argv[optind] : "";
    int import = strcmp(sub, "import") == 0, export = strcmp(sub, "export") == 0;
    if ((!import && !export) || n != 2) {
        fprintf(stderr, "sluice warehouse: use 'warehouse import DIR' or 'warehouse export DIR' "
                        "(see 'sluice warehouse --help')\n");
        return EXIT_BAD_INPUT;
    }
    warehouse w;
    char err[1024];
    if (warehouse_open(&w, g->store, export, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice warehouse: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    size_t users, documents;
    int rc = import ? warehouse_import(&w, argv[optind + 1], &users, &documents, err, sizeof(err))
                    : warehouse_export(&w, argv[optind + 1], &users, &documents, err, sizeof(err));
    warehouse_close(&w);
    if (rc) {
        fprintf(stderr, "sluice warehouse %s: %s\n", sub, err);
        return EXIT_BAD_INPUT;
    }
    if (json)
        printf("{ \"users\" : %zu, \"documents\" : %zu }\n", users, documents);
    else
        printf("%s %zu users and %zu documents %s %s\n", import ? "imported" : "exported", users,
               documents, import ? "from" : "to", argv[optind + 1]);
    return EXIT_DONE;
}
