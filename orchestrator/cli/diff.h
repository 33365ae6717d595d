/* diff.h - what 'runs diff' and 'models diff' share: the entries of two
 * flat documents (NAME -> value) that differ, as DVC's params diff and
 * metrics diff show them. */
#ifndef SLUICE_CLI_DIFF_H
#define SLUICE_CLI_DIFF_H

#include <bson/bson.h>

/* Appends to array, in name order (a's names first, then b's own), one
 * {name, a, b} per name whose values differ, a value missing on one side
 * being null; numeric adds "change" (b - a) where both are numbers.
 * Returns the number of entries appended. */
size_t diff_docs(const bson_t *a, const bson_t *b, int numeric, bson_t *array);

/* Prints the entries of diff_docs as a table under title ("params", ...),
 * or "title: no change". */
void diff_print(const char *title, const bson_t *array);

/* The value at it as JSON text (a string quoted), malloc'ed; NULL when out
 * of memory. */
char *diff_value_text(const bson_iter_t *it);

#endif
