/* file_replace.c - see file_replace.h. */
#include "file_replace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"

static atomic_ulong temporaries;

int file_replace(const char *path, const void *data, size_t len, char *err, size_t err_size) {
    size_t size = strlen(path) + 64;
    char *tmp = malloc(size);
    if (!tmp)
        return errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
    snprintf(tmp, size, "%s.tmp.%ld.%lu", path, (long)getpid(),
             (unsigned long)atomic_fetch_add(&temporaries, 1));
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", tmp, strerror(errno));
    for (size_t off = 0; rc == 0 && off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = errbuf_set(err, err_size, -errno, "%s: %s", tmp, strerror(errno));
        else if (w > 0)
            off += (size_t)w;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", path, strerror(errno));
    if (rc != 0 && fd >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}
