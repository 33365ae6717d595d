#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tries the whole path first and climbs only as far as folders are
 * missing: making a folder in an existing one costs one system call. */
int mkdir_p(const char *path, mode_t mode) {
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -errno;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    char *slash = strrchr(copy, '/');
    while (slash > copy && slash[-1] == '/')
        slash--;
    int rc = -ENOENT;
    if (slash && slash != copy) {
        *slash = '\0';
        rc = mkdir_p(copy, mode);
        if (rc == 0 && mkdir(path, mode) != 0 && errno != EEXIST)
            rc = -errno;
    }
    free(copy);
    return rc;
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int find_program(const char *name, char *out, size_t size) {
    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0)
            return -errno;
        snprintf(out, size, "%s", name);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int n = len ? snprintf(out, size, "%.*s/%s", (int)len, p, name)
                    : snprintf(out, size, "./%s", name);
        struct stat st;
        if (n > 0 && (size_t)n < size && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return 0;
        p += len + (end != NULL);
    }
    return -ENOENT;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dir_list(const char *dir, int (*keep)(const char *name), char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (keep && !keep(e->d_name)))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(*names, cap * sizeof(**names));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (rc) {
        dir_list_free(*names, *n);
        *names = NULL;
        *n = 0;
        return rc;
    }
    qsort(*names, *n, sizeof(**names), by_name);
    return 0;
}

void dir_list_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : -errno;
    char **names;
    size_t n;
    int rc = dir_list(path, NULL, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/%s", path, names[i]);
        rc = remove_tree(sub);
    }
    dir_list_free(names, n);
    if (rc == 0 && rmdir(path) != 0)
        rc = -errno;
    return rc;
}
