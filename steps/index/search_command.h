/* search_command.h - what `sluice search` asks of the module sluice_search
 * (steps/module/module.h), which holds the retriever and with it OpenBLAS, so
 * that the sluice binary links neither. */
#ifndef SLUICE_STEPS_SEARCH_COMMAND_H
#define SLUICE_STEPS_SEARCH_COMMAND_H

#include <stddef.h>

typedef struct search_request {
    const char *folder; /* the index folder */
    const char *query;
    const char *mode;   /* "hybrid", "dense" or "bm25" */
    const char *author, *category; /* filters, or NULL */
    size_t k;
    int json;
} search_request;

/* Runs the search and prints its results on stdout (see docs/cli.md).
 * Returns 0, or a negative errno with the message in err. */
typedef int (*search_command_fn)(const search_request *req, char *err, size_t err_size);
#define SEARCH_COMMAND_SYMBOL "sluice_search_command"

#endif
