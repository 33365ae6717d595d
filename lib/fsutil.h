/* fsutil.h - small file-system helpers. */
#ifndef SLUICE_CORE_FSUTIL_H
#define SLUICE_CORE_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Creates path and its missing parents. Returns 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);

/* 1 when path exists (file or folder), else 0. */
int path_exists(const char *path);

/* 1 when pid is a process that runs (one that exited and is not yet
 * reaped, a zombie, does not), else 0. Reads /proc when it can. */
int process_running(long pid);

/* What path (symbolic links followed) is when it is neither a regular file
 * nor a folder: "a FIFO", "a character device", "a block device", "a
 * socket", "a special file"; NULL for a regular file or folder, or when it
 * cannot be looked at (the read that follows reports why). Only such paths
 * may be read by name: opening a FIFO or a terminal waits for a writer,
 * /dev/zero never ends. */
const char *path_special_kind(const char *path);

/* Finds an executable as execvp would (a name with a '/' is taken as it
 * is), writing its path into out. Returns 0 or -errno (-ENOENT). */
int find_program(const char *name, char *out, size_t size);

/* What fs_walk() is at: a file (anything not a folder, symbolic links
 * included: they are not followed), or a folder before or after its
 * entries. */
typedef enum { FS_FILE, FS_DIR_ENTER, FS_DIR_LEAVE } fs_visit;

/* Called with the entry's path (root/rel), rel ("" for the root), what it
 * is, and ctx; a non-zero return stops the walk and is returned. */
typedef int (*fs_walk_fn)(const char *path, const char *rel, fs_visit what, void *ctx);

/* Walks the tree at root depth first, each folder's entries in name
 * order: a folder is entered, its entries walked, then left; a file is
 * visited once. Returns 0, fn's first non-zero return, or -errno (a folder
 * that cannot be read, a path longer than PATH_MAX). */
int fs_walk(const char *root, fs_walk_fn fn, void *ctx);

/* The size of what path holds, without following links: a regular file's
 * size, or the sum of the regular files in a folder's tree (the folder
 * entries themselves count nothing). Returns 0 or -errno. */
int fs_content_size(const char *path, uint64_t *size);

/* Removes a file, or a folder and everything in it (read-only files too).
 * Returns 0 or -errno. */
int remove_tree(const char *path);

/* Checks that path lies beneath folder base ("BASE/a/b/c") through real
 * folders only: no component after base is a symbolic link (the last one
 * may be anything) and none is "." or "..". Returns 0, -ELOOP (a link on
 * the way), -EXDEV (not beneath base) or -errno. What a step made in its
 * folder is checked so before sluice moves or removes it: a step could
 * have made "out" a link to /etc. */
int path_check_beneath(const char *base, const char *path);

/* remove_tree(path) once path_check_beneath(base, path) allows it; a path
 * that does not exist is no error. Returns 0 or -errno. */
int remove_tree_beneath(const char *base, const char *path);

/* Writes the bytes of the file at from to out. Returns 0 or -errno. */
int copy_file_to(const char *from, FILE *out);

/* Copies a file, or a folder and everything in it, to `to` (which must
 * not exist, except as a folder for a folder). Symbolic links are copied as
 * links; other special files are refused (-EINVAL), as is a copy into the
 * tree itself. Returns 0 or -errno. */
int copy_tree(const char *from, const char *to);

/* The names in folder dir (without "." and ".."), sorted, those for which
 * keep (may be NULL) says yes. *names is an array of *n strings, all freed
 * with dir_list_free(). Returns 0 or -errno. */
int dir_list(const char *dir, int (*keep)(const char *name), char ***names, size_t *n);
void dir_list_free(char **names, size_t n);

#endif
