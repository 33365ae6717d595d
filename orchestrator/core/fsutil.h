/* fsutil.h - small file-system helpers. */
#ifndef SLUICE_CORE_FSUTIL_H
#define SLUICE_CORE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Creates path and its missing parents. Returns 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* 1 when path exists (file or folder), else 0. */
int path_exists(const char *path);

/* Finds an executable as execvp would (a name with a '/' is taken as it
 * is), writing its path into out. Returns 0 or -errno (-ENOENT). */
int find_program(const char *name, char *out, size_t size);

#endif
