/* hash.h - SHA-256 of bytes, files and folders (OpenSSL's libcrypto).
 *
 * A folder's hash covers its tree, not its metadata: the sorted relative
 * paths of its entries, each with its kind and, for files, the hash of the
 * contents; two folders with the same files hash the same wherever they
 * are and whenever they were made. */
#ifndef SLUICE_ARTIFACTS_HASH_H
#define SLUICE_ARTIFACTS_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_HEX_LEN 64

typedef struct hash_ctx hash_ctx;

/* Incremental hashing. hash_new returns NULL on OOM. */
hash_ctx *hash_new(void);
void hash_update(hash_ctx *h, const void *data, size_t len);
/* Writes 64 hex digits and a NUL into hex, and frees h. */
void hash_finish(hash_ctx *h, char hex[HASH_HEX_LEN + 1]);

/* The hash of a file's contents or a folder's tree. Returns 0 or -errno. */
int hash_path(const char *path, char hex[HASH_HEX_LEN + 1], uint64_t *size);

#endif
