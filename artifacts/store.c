#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

int store_open(artifact_store *s, const char *root) {
    memset(s, 0, sizeof(*s));
    size_t len = strlen(root) + 16;
    char *objects = malloc(len);
    if (!objects)
        return -ENOMEM;
    snprintf(objects, len, "%s/objects", root);
    int rc = mkdir_p(objects, 0755);
    free(objects);
    if (rc)
        return rc;
    /* Absolute: object paths are handed to steps running in other folders. */
    if (!(s->root = realpath(root, NULL)))
        return -errno;
    len = strlen(s->root) + 16;
    if (!(s->objects = malloc(len))) {
        store_close(s);
        return -ENOMEM;
    }
    snprintf(s->objects, len, "%s/objects", s->root);
    return 0;
}

void store_close(artifact_store *s) {
    if (s->lock_fd)
        close(s->lock_fd - 1); /* and with it the lock */
    s->lock_fd = 0;
    free(s->root);
    free(s->objects);
    s->root = s->objects = NULL;
}

void store_object_path(const artifact_store *s, const char *hash, char *out, size_t size) {
    snprintf(out, size, "%s/%.2s/%s", s->objects, hash, hash);
}

static int fsync_path(const char *path, int directory) {
    int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Syncs every file of a tree, and the folders, so the rename publishes data
 * that is on disk. */
static int fsync_entry(const char *path, const char *rel, fs_visit what, void *ctx) {
    (void)rel;
    (void)ctx;
    return what == FS_DIR_ENTER ? 0 : fsync_path(path, what == FS_DIR_LEAVE);
}

static int fsync_tree(const char *path) { return fs_walk(path, fsync_entry, NULL); }

/* What an output holds, seen before it is hashed: its files (to look for
 * writers), their total size (to see it change), or the first entry that
 * has no place in an artifact. */
typedef struct survey {
    struct file_id {
        dev_t dev;
        ino_t ino;
    } * files;
    size_t n, cap;
    uint64_t total;
    char bad[512]; /* "a symbolic link, x/y (to /etc/passwd)" */
} survey;

static int survey_entry(const char *path, const char *rel, fs_visit what, void *ctx) {
    survey *sv = ctx;
    if (what != FS_FILE)
        return 0;
    struct stat st;
    if (lstat(path, &st) != 0)
        return -errno;
    const char *where = *rel ? rel : "the output itself";
    if (S_ISLNK(st.st_mode)) {
        char target[256];
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        target[len > 0 ? len : 0] = '\0';
        snprintf(sv->bad, sizeof(sv->bad), "a symbolic link, %s (to %s)", where, target);
        return -ELOOP;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(sv->bad, sizeof(sv->bad), "%s, which is neither a file nor a folder", where);
        return -EINVAL;
    }
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 16;
        struct file_id *grown = realloc(sv->files, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        sv->files = grown;
        sv->cap = cap;
    }
    sv->files[sv->n++] = (struct file_id){st.st_dev, st.st_ino};
    sv->total += (uint64_t)st.st_size;
    return 0;
}

/* A descriptor of this process that has one of the survey's files open for
 * writing (an in-process step that never closed its output: its last
 * writes may still sit in a stdio buffer), or -1. Linux's /proc only; where
 * it is missing nothing is found. */
static int open_writer(const survey *sv) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct stat st;
        /* Through /proc, not fstat(): the descriptors are other threads'
         * (steps on the thread pool), which may close one meanwhile; the
         * kernel resolves the name at once, the descriptor is never used. */
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%.16s", e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d) || stat(link, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        for (size_t i = 0; i < sv->n; i++) {
            if (sv->files[i].dev != st.st_dev || sv->files[i].ino != st.st_ino)
                continue;
            char info[64], line[128];
            snprintf(info, sizeof(info), "/proc/self/fdinfo/%d", fd);
            FILE *f = fopen(info, "re");
            unsigned long flags = 0;
            while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "flags: %lo", &flags) == 1)
                    break;
            if (f)
                fclose(f);
            if ((flags & O_ACCMODE) != O_RDONLY)
                found = fd;
            break;
        }
    }
    closedir(d);
    return found;
}

/* Surveys, hashes and checks the output at path. */
static int examine(const char *path, object_info *info, char *why, size_t size) {
    survey sv = {0};
    int rc = fs_walk(path, survey_entry, &sv);
    if (rc == -ELOOP || rc == -EINVAL) {
        snprintf(why, size,
                 "it is or holds %s: an artifact holds content, never links or special files "
                 "(write or copy the file itself)",
                 sv.bad);
    } else if (rc == 0 && (rc = hash_path(path, info->hash, &info->size)) == 0) {
        int fd = open_writer(&sv);
        if (fd >= 0) {
            snprintf(why, size,
                     "it is still open for writing (file descriptor %d): the step returned "
                     "without closing it, so its last writes may be missing (fclose its "
                     "outputs before returning)",
                     fd);
            rc = -EBUSY;
        } else if (info->size != sv.total) {
            snprintf(why, size,
                     "it changed while it was being stored (%llu bytes, then %llu): something "
                     "still writes to it after the step ended",
                     (unsigned long long)sv.total, (unsigned long long)info->size);
            rc = -EBUSY;
        }
    }
    if (rc && !why[0])
        snprintf(why, size, "%s", strerror(-rc));
    free(sv.files);
    return rc;
}

int store_ingest(artifact_store *s, const char *path, object_info *info, char *why, size_t size) {
    why[0] = '\0';
    struct stat st;
    if (lstat(path, &st) != 0) {
        snprintf(why, size, "%s", strerror(errno));
        return -errno;
    }
    info->is_dir = S_ISDIR(st.st_mode);
    int rc = examine(path, info, why, size);
    if (rc)
        return rc;
    char target[4096], fan[4096];
    store_object_path(s, info->hash, target, sizeof(target));
    if (path_exists(target)) {
        if (store_verify(s, info->hash) == 0) {
            remove_tree(path); /* the same content is already there */
            return 0;
        }
        /* The object there was altered: the new copy takes its place. */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt", target);
        remove_tree(aside);
        if (rename(target, aside) != 0)
            goto failed;
        remove_tree(aside);
    }
    if (info->is_dir) {
        if ((rc = fsync_tree(path)))
            goto failed_rc;
    } else {
        /* Read-only, through a descriptor that cannot be a link's. */
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            goto failed;
        rc = fchmod(fd, 0444) == 0 && fsync(fd) == 0 ? 0 : -errno;
        close(fd);
        if (rc)
            goto failed_rc;
    }
    snprintf(fan, sizeof(fan), "%s/%.2s", s->objects, info->hash);
    if (mkdir(fan, 0755) != 0 && errno != EEXIST)
        goto failed;
    if (rename(path, target) != 0) {
        if (errno != ENOTEMPTY && errno != EEXIST)
            goto failed;
        remove_tree(path); /* another run stored it first */
        return 0;
    }
    if ((rc = fsync_path(fan, 1)) == 0)
        return 0;
    goto failed_rc;
failed:
    rc = -errno;
failed_rc:
    snprintf(why, size, "%s", strerror(-rc));
    return rc;
}

int store_lock(artifact_store *s, int exclusive, int wait) {
    if (!s->lock_fd) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/lock", s->root);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
        s->lock_fd = fd + 1;
    }
    int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
    int rc;
    while ((rc = flock(s->lock_fd - 1, op)) != 0 && errno == EINTR)
        ;
    return rc == 0 ? 0 : -errno;
}

int store_verify(const artifact_store *s, const char *hash) {
    char path[4096], now[HASH_HEX_LEN + 1];
    store_object_path(s, hash, path, sizeof(path));
    struct stat st;
    if (lstat(path, &st) != 0)
        return -errno;
    if (S_ISLNK(st.st_mode))
        return -EBADMSG; /* a link (stored by an older sluice) is no content */
    int rc = hash_path(path, now, NULL);
    if (rc == -ENOENT)
        return rc;
    if (rc)
        return rc;
    return strcmp(now, hash) == 0 ? 0 : -EBADMSG;
}
