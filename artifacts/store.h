/* store.h - the content-addressed artifact store.
 *
 * Every artifact is a file or a folder under STORE/objects/, named by the
 * SHA-256 of its content (hash.h): objects/ab/abcdef... Objects are never
 * changed once in place. An output enters the store by rename from the
 * step's folder (which lives in the same store, so on the same file
 * system): it is hashed, its data synced to disk, then renamed into place,
 * so that a crash leaves either no object or a whole one. Two outputs with
 * the same content are one object. */
#ifndef SLUICE_ARTIFACTS_STORE_H
#define SLUICE_ARTIFACTS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

typedef struct artifact_store {
    char *root;    /* owned */
    char *objects; /* owned: root/objects */
    int lock_fd;   /* 1 + the descriptor of root/lock once store_lock opened it, else 0 */
} artifact_store;

/* Opens (creating when needed) the store at root. Returns 0 or -errno. */
int store_open(artifact_store *s, const char *root);
void store_close(artifact_store *s);

typedef struct object_info {
    char hash[HASH_HEX_LEN + 1];
    uint64_t size;
    int is_dir;
} object_info;

/* Moves the file or folder at path into the store; fills *info. path is
 * gone afterwards (its content is the object). Never follows a link: an
 * output that is or holds a symbolic link or a special file is refused
 * (-ELOOP, -EINVAL), as is one this process still has open for writing or
 * that changed while it was hashed (-EBUSY: a truncated output). The caller
 * checks the folders on the way to path (path_check_beneath). Returns 0, or
 * -errno with why (size bytes) saying what is wrong. */
int store_ingest(artifact_store *s, const char *path, object_info *info, char *why, size_t size);

/* The store's lock, root/lock (flock): a run holds it shared from before
 * it stores its first output until its last record is committed; gc holds
 * it exclusive while it removes objects, so that it never removes an object
 * a live run is about to record. wait: block until it is granted, else
 * -EWOULDBLOCK when another process holds it the other way. Released by
 * store_close (or the process's end). Returns 0 or -errno. */
int store_lock(artifact_store *s, int exclusive, int wait);

/* Writes the path of object hash into out. */
void store_object_path(const artifact_store *s, const char *hash, char *out, size_t size);

/* Checks that object hash exists and still hashes to its name: 0, -ENOENT
 * (missing) or -EBADMSG (its content changed, or it is a symbolic link,
 * which is never content). */
int store_verify(const artifact_store *s, const char *hash);

#endif
