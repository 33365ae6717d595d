#include "hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

struct hash_ctx {
    EVP_MD_CTX *md;
};

hash_ctx *hash_new(void) {
    hash_ctx *h = malloc(sizeof(*h));
    if (!h)
        return NULL;
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->md);
        free(h);
        return NULL;
    }
    return h;
}

void hash_update(hash_ctx *h, const void *data, size_t len) { EVP_DigestUpdate(h->md, data, len); }

void hash_finish(hash_ctx *h, char hex[HASH_HEX_LEN + 1]) {
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->md, digest, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    hex[HASH_HEX_LEN] = '\0';
    EVP_MD_CTX_free(h->md);
    free(h);
}

static int hash_file(const char *path, char hex[HASH_HEX_LEN + 1], uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    hash_ctx *h = hash_new();
    if (!h) {
        close(fd);
        return -ENOMEM;
    }
    static __thread unsigned char chunk[1 << 16];
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        hash_update(h, chunk, (size_t)n);
        total += (uint64_t)n;
    }
    int rc = n < 0 ? -errno : 0;
    close(fd);
    hash_finish(h, hex);
    if (size)
        *size = total;
    return rc;
}

/* Feeds "kind path [hash]\n" lines for the tree under root/rel, sorted. */
static int hash_tree(hash_ctx *h, const char *root, const char *rel, uint64_t *size) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s%s%s", root, rel[0] ? "/" : "", rel);
    char **names;
    size_t n;
    int rc = dir_list(dir, NULL, &names, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char sub[4096], full[8200];
        int w = snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        if (w < 0 || (size_t)w >= sizeof(sub)) {
            rc = -ENAMETOOLONG;
            break;
        }
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) != 0) {
            rc = -errno;
            break;
        }
        char line[4096 + 96];
        if (S_ISDIR(st.st_mode)) {
            int len = snprintf(line, sizeof(line), "d %s\n", sub);
            hash_update(h, line, (size_t)len);
            rc = hash_tree(h, root, sub, size);
        } else if (S_ISREG(st.st_mode)) {
            char fh[HASH_HEX_LEN + 1];
            uint64_t fs = 0;
            rc = hash_file(full, fh, &fs);
            *size += fs;
            int len = snprintf(line, sizeof(line), "f %s %s\n", sub, fh);
            hash_update(h, line, (size_t)len);
        } else {
            rc = -EINVAL; /* links and devices have no place in an artifact */
        }
    }
    dir_list_free(names, n);
    return rc;
}

int hash_path(const char *path, char hex[HASH_HEX_LEN + 1], uint64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return hash_file(path, hex, size);
    hash_ctx *h = hash_new();
    if (!h)
        return -ENOMEM;
    uint64_t total = 0;
    hash_update(h, "sluice-tree-1\n", 14);
    int rc = hash_tree(h, path, "", &total);
    hash_finish(h, hex);
    if (size)
        *size = total;
    return rc;
}
