/* file_replace.h - a small file written whole or not at all: the steps'
 * caches, tokenizers and reference files, which a reader (or a rerun after
 * kill -9) must find complete or absent, never cut short. */
#ifndef SLUICE_STEPS_FILE_REPLACE_H
#define SLUICE_STEPS_FILE_REPLACE_H

#include <stddef.h>

/* Writes len bytes of data to a temporary file beside path (unique to this
 * process and call, so that writers on other threads or processes never
 * share one) and renames it over path. 0, or a negated errno with err
 * (err_size bytes, errbuf.h) naming the file; the temporary is then
 * removed. Not fsynced: what it guards against is a torn file, not a lost
 * one. */
int file_replace(const char *path, const void *data, size_t len, char *err, size_t err_size);

#endif
