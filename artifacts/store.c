#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"

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
    free(s->root);
    free(s->objects);
    s->root = s->objects = NULL;
}

void store_object_path(const artifact_store *s, const char *hash, char *out, size_t size) {
    snprintf(out, size, "%s/%.2s/%s", s->objects, hash, hash);
}

static int fsync_path(const char *path, int directory) {
    int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
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

int store_ingest(artifact_store *s, const char *path, object_info *info) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    info->is_dir = S_ISDIR(st.st_mode);
    int rc = hash_path(path, info->hash, &info->size);
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
            return -errno;
        remove_tree(aside);
    }
    rc = info->is_dir ? fsync_tree(path) : fsync_path(path, 0);
    if (rc)
        return rc;
    snprintf(fan, sizeof(fan), "%s/%.2s", s->objects, info->hash);
    if (mkdir(fan, 0755) != 0 && errno != EEXIST)
        return -errno;
    if (!info->is_dir)
        chmod(path, 0444); /* objects are read-only */
    if (rename(path, target) != 0) {
        rc = -errno;
        if (errno == ENOTEMPTY || errno == EEXIST) { /* another run stored it first */
            remove_tree(path);
            rc = 0;
        }
        return rc;
    }
    return fsync_path(fan, 1);
}

int store_verify(const artifact_store *s, const char *hash) {
    char path[4096], now[HASH_HEX_LEN + 1];
    store_object_path(s, hash, path, sizeof(path));
    int rc = hash_path(path, now, NULL);
    if (rc == -ENOENT)
        return rc;
    if (rc)
        return rc;
    return strcmp(now, hash) == 0 ? 0 : -EBADMSG;
}
