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

/* Removes a file, or a folder and everything in it (read-only files too).
 * Returns 0 or -errno. */
int remove_tree(const char *path);

/* The names in folder dir (without "." and ".."), sorted, those for which
 * keep (may be NULL) says yes. *names is an array of *n strings, all freed
 * with dir_list_free(). Returns 0 or -errno. */
int dir_list(const char *dir, int (*keep)(const char *name), char ***names, size_t *n);
void dir_list_free(char **names, size_t n);

#endif
