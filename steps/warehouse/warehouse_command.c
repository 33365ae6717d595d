/* warehouse_command.c - sluice-warehouse, the program `sluice warehouse
 * import DIR | export DIR` runs (docs/cli.md, "warehouse" and "External
 * commands"): the LLM twin's document warehouse in and out of the
 * Handbook's export format. */
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "warehouse.h"

static const command_info info = {
    "warehouse",
    "move the document warehouse in and out of the Handbook's export format",
    "usage: sluice warehouse import DIR [--warehouse URI] [--json]\n"
    "       sluice warehouse export DIR [--warehouse URI] [--json]\n"
    "\n"
    "The LLM twin's documents (users, articles, posts, repositories) live in the\n"
    "store's warehouse. import reads a folder in the LLM Engineer's Handbook's export\n"
    "format (UserDocument.json, ArticleDocument.json, PostDocument.json,\n"
    "RepositoryDocument.json), upserting documents by link; export writes it.\n"
    "--warehouse mongodb://HOST/DB uses a MongoDB warehouse instead of the store's.\n",
};

int main(int argc, char **argv) {
    int status = command_standard(&info, argc, argv);
    if (status >= 0)
        return status;
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"warehouse", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    const char *where = "";
    command_getopt_begin();
    while ((c = command_getopt(&info, argc, argv, ":", longs)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'w')
            where = optarg;
        else
            return COMMAND_BAD_INPUT;
    }
    int n = argc - optind;
    const char *sub = n ? argv[optind] : "";
    int import = strcmp(sub, "import") == 0, export = strcmp(sub, "export") == 0;
    if ((!import && !export) || n != 2) {
        fprintf(stderr, "sluice warehouse: use 'warehouse import DIR' or 'warehouse export DIR' "
                        "(see 'sluice warehouse --help')\n");
        return COMMAND_BAD_INPUT;
    }
    warehouse *w;
    char err[1024];
    if (warehouse_open(&w, command_store(), where, export, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice warehouse: %s\n", err);
        return COMMAND_BAD_INPUT;
    }
    size_t users, documents;
    int rc = import ? warehouse_import(w, argv[optind + 1], &users, &documents)
                    : warehouse_export(w, argv[optind + 1], &users, &documents);
    if (rc)
        fprintf(stderr, "sluice warehouse %s: %s\n", sub, warehouse_error(w));
    warehouse_close(w);
    if (rc)
        return COMMAND_BAD_INPUT;
    if (json)
        printf("{ \"users\" : %zu, \"documents\" : %zu }\n", users, documents);
    else
        printf("%s %zu users and %zu documents %s %s\n", import ? "imported" : "exported", users,
               documents, import ? "from" : "to", argv[optind + 1]);
    return COMMAND_DONE;
}
