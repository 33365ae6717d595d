#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
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

const char *path_special_kind(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return NULL;
    return S_ISFIFO(st.st_mode)   ? "a FIFO"
           : S_ISCHR(st.st_mode)  ? "a character device"
           : S_ISBLK(st.st_mode)  ? "a block device"
           : S_ISSOCK(st.st_mode) ? "a socket"
                                  : "a special file";
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
    /* qsort's array must be valid even for no elements; an empty folder
     * leaves *names NULL. */
    if (*n > 1)
        qsort(*names, *n, sizeof(**names), by_name);
    return 0;
}

void dir_list_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int walk(char *path, size_t root_len, size_t len, fs_walk_fn fn, void *ctx) {
    const char *rel = path + root_len + (len > root_len);
    struct stat st;
    if (lstat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return fn(path, rel, FS_FILE, ctx);
    int rc = fn(path, rel, FS_DIR_ENTER, ctx);
    char **names = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = dir_list(path, NULL, &names, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t nl = strlen(names[i]);
        if (len + 1 + nl >= PATH_MAX) {
            rc = -ENAMETOOLONG;
            break;
        }
        path[len] = '/';
        memcpy(path + len + 1, names[i], nl + 1);
        rc = walk(path, root_len, len + 1 + nl, fn, ctx);
        path[len] = '\0';
    }
    dir_list_free(names, n);
    return rc ? rc : fn(path, rel, FS_DIR_LEAVE, ctx);
}

int fs_walk(const char *root, fs_walk_fn fn, void *ctx) {
    size_t len = strlen(root);
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    char *path = malloc(PATH_MAX);
    if (!path)
        return -ENOMEM;
    memcpy(path, root, len + 1);
    int rc = walk(path, len, len, fn, ctx);
    free(path);
    return rc;
}

static int add_file_size(const char *path, const char *rel, fs_visit what, void *ctx) {
    (void)rel;
    struct stat st;
    if (what == FS_FILE && lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        *(uint64_t *)ctx += (uint64_t)st.st_size;
    return 0;
}

int fs_content_size(const char *path, uint64_t *size) {
    *size = 0;
    return fs_walk(path, add_file_size, size);
}

static int remove_entry(const char *path, const char *rel, fs_visit what, void *ctx) {
    (void)rel;
    (void)ctx;
    if (what == FS_DIR_ENTER) /* read-only folders cannot lose their entries */
        return chmod(path, 0700) == 0 || errno == EPERM ? 0 : -errno;
    if (what == FS_DIR_LEAVE)
        return rmdir(path) == 0 ? 0 : -errno;
    return unlink(path) == 0 ? 0 : -errno;
}

int remove_tree(const char *path) { return fs_walk(path, remove_entry, NULL); }

int path_check_beneath(const char *base, const char *path) {
    size_t blen = strlen(base);
    while (blen > 1 && base[blen - 1] == '/')
        blen--;
    if (strncmp(path, base, blen) != 0 || path[blen] != '/')
        return -EXDEV;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    for (char *p = copy + blen + 1; *p && rc == 0;) {
        char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            rc = -EXDEV;
            break;
        }
        while (slash && slash[1] == '/')
            slash++;
        if (!slash || !slash[1])
            break; /* the last component: the caller looks at it */
        *slash = '\0';
        struct stat st;
        if (lstat(copy, &st) != 0)
            rc = -errno;
        else if (S_ISLNK(st.st_mode))
            rc = -ELOOP;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
        *slash = '/';
        p = slash + 1;
    }
    free(copy);
    return rc;
}

int remove_tree_beneath(const char *base, const char *path) {
    int rc = path_check_beneath(base, path);
    if (rc == -ENOENT)
        return 0;
    struct stat st;
    if (rc == 0 && lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    return rc ? rc : remove_tree(path);
}

int copy_file_to(const char *from, FILE *out) {
    FILE *in = fopen(from, "rb");
    if (!in)
        return -errno;
    int rc = 0;
    char chunk[65536];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        if (fwrite(chunk, 1, n, out) != n)
            rc = -EIO;
    if (rc == 0 && ferror(in))
        rc = -EIO;
    fclose(in);
    return rc;
}

static int copy_file(const char *from, const char *to) {
    FILE *out = fopen(to, "wb");
    if (!out)
        return -errno;
    int rc = copy_file_to(from, out);
    if (fclose(out) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int copy_entry(const char *path, const char *rel, fs_visit what, void *ctx) {
    const char *to = ctx;
    char dest[PATH_MAX];
    if ((size_t)snprintf(dest, sizeof(dest), "%s%s%s", to, *rel ? "/" : "", rel) >= sizeof(dest))
        return -ENAMETOOLONG;
    if (what == FS_DIR_ENTER)
        return mkdir(dest, 0755) == 0 || errno == EEXIST ? 0 : -errno;
    if (what == FS_DIR_LEAVE)
        return 0;
    struct stat st;
    if (lstat(path, &st) != 0)
        return -errno;
    if (S_ISREG(st.st_mode))
        return copy_file(path, dest);
    if (!S_ISLNK(st.st_mode)) /* a FIFO would block, a device is no content */
        return -EINVAL;
    char target[PATH_MAX];
    ssize_t len = readlink(path, target, sizeof(target) - 1);
    if (len < 0)
        return -errno;
    target[len] = '\0';
    return symlink(target, dest) == 0 ? 0 : -errno; /* as it was, not what it names */
}

int copy_tree(const char *from, const char *to) {
    size_t len = strlen(from);
    if (strncmp(to, from, len) == 0 && (to[len] == '/' || to[len] == '\0'))
        return -EINVAL; /* into itself: it would never end */
    return fs_walk(from, copy_entry, (void *)to);
}

int process_running(long pid) {
    if (pid <= 0 || pid > INT_MAX || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return 0;
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1; /* no /proc: it exists */
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* the name may hold anything */
    return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}
