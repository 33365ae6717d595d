/* train_tests.h - what the train step's suites share: a byte-level
 * tokenizer, temporary files, and running a Python reference. */
#ifndef SLUICE_TRAIN_TESTS_H
#define SLUICE_TRAIN_TESTS_H

#include "require.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A tokenizer whose ids are the bytes; EOS 256, BOS 257 (when used). */
#define BYTE_EOS 256
#define BYTE_BOS 257

static inline int byte_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n,
                              char *err, size_t err_size) {
    (void)ctx;
    (void)err;
    (void)err_size;
    *ids = malloc((len ? len : 1) * sizeof(int32_t));
    if (!*ids)
        return -12;
    for (size_t i = 0; i < len; i++)
        (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return 0;
}

/* Writes text to a new temporary file; returns its path (malloc'd). */
static inline char *write_temp(const char *text) {
    char *path = strdup("/tmp/sluice-train-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static inline void require_torch(void) {
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        SKIP_UNLESS_REQUIRED("needs /usr/bin/python3 with torch (python3-torch)");
}

/* Runs /usr/bin/python3 SLUICE_SOURCE_DIR/tests/ref/SCRIPT ARGS and reads
 * up to max whitespace-separated numbers of its output into out; returns
 * how many. The script must exit 0. */
static inline size_t run_ref(const char *script, const char *args, double *out, size_t max) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/ref/%s %s", SLUICE_SOURCE_DIR, script,
             args);
    FILE *py = popen(cmd, "r");
    cr_assert_not_null(py, "%s", cmd);
    size_t n = 0;
    while (n < max && fscanf(py, "%lf", &out[n]) == 1)
        n++;
    cr_assert_eq(pclose(py), 0, "%s failed", cmd);
    return n;
}

#endif
