/* authoring.h - what the loader takes from outside the pipeline file:
 * params files (params_file, --params), .env files (settings.env_file,
 * --env-file), and the 'when' conditions of steps. */
#ifndef SLUICE_PIPELINE_AUTHORING_H
#define SLUICE_PIPELINE_AUTHORING_H

#include "pipeline.h"

/* The most a params file or a .env file may hold. */
#define AUTHORING_MAX_FILE_BYTES (4u << 20)

/* Reads a whole regular file of at most max bytes into *data (malloc'ed,
 * NUL-terminated). Returns 0, -EFBIG, or another negative errno. */
int pipeline_read_text(const char *path, size_t max, char **data, size_t *len);

/* Applies the params file at path (read as given; shown names it in the
 * origins, NULL for path) to p's parameters:
 * each key must be a declared parameter, each value must fit its default's
 * type; a mapping merges into a mapping parameter key by key. kind labels
 * the origin ("params_file" or "--params"). Errors go to d located in the
 * file. Returns 0 or -ENOMEM. */
int params_file_apply(pipeline *p, const char *path, const char *shown, const char *kind,
                      diag_list *d);

/* Parses .env text: KEY=VALUE lines, '#' comments, blank lines, an
 * optional 'export ' prefix, values bare (trailing spaces and a ' #...'
 * comment cut), 'single-quoted' (as written) or "double-quoted" (\n, \t,
 * \\, \" and \$ escapes; may span lines). Each variable is appended to
 * p->dotenv, replacing one of the same name. file labels the errors in d.
 * Returns 0 (errors reported in d) or -ENOMEM. */
int dotenv_parse(pipeline *p, const char *data, size_t len, const char *file, diag_list *d);

/* Reads and parses the .env file at path; a file that cannot be read is
 * an error in d at (label_file, line, col). Returns 0 or -ENOMEM. */
int dotenv_load(pipeline *p, const char *path, const char *label_file, unsigned line, unsigned col,
                diag_list *d);

/* The value of name in p's .env files, or NULL. */
const char *dotenv_get(const pipeline *p, const char *name);

/* The value of environment variable name as a shell step sees it: the
 * real environment's, else the .env files' (the other way round with
 * settings.env_override); NULL when neither has it. */
const char *dotenv_effective(const pipeline *p, const char *name);

#endif
