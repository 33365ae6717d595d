/* train_ckpt.c - checkpoints of the training state (train_ckpt.h). */
#include "train_ckpt.h"

#include "errbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sluice/artifacts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE "trainer_state.json"
#define OPTIMIZER_FILE "optimizer.safetensors"
#define STATE_FORMAT 1

struct ckpt_writer {
    char root[4096];
    char tmp[4096];
    uint64_t step;
    sl_tensors_writer *tensors;
    size_t n_params;
};

/* out = a "/" b; 0, or -ENAMETOOLONG (out then holds a truncated path
 * that no caller uses). */
static int join(char *out, size_t size, const char *a, const char *b) {
    int n = snprintf(out, size, "%s/%s", a, b);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes path and everything under it; a missing path is fine. */
static int remove_tree(const char *path) {
    if (access(path, F_OK) != 0)
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    /* some file systems refuse fsync on a directory; the rename that
     * follows is what makes the checkpoint appear */
    return rc == -EINVAL ? 0 : rc;
}

static int sync_tree_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    char path[4352];
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        struct stat st;
        if ((rc = join(path, sizeof(path), dir, e->d_name)) == 0 && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            rc = sync_path(path);
    }
    closedir(d);
    return rc ? rc : sync_path(dir);
}

int ckpt_writer_begin(const char *root, uint64_t step, ckpt_writer **out, char *err,
                      size_t err_size) {
    *out = NULL;
    ckpt_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return errbuf_set(err, err_size, -ENOMEM, "checkpoint: out of memory");
    w->step = step;
    if ((size_t)snprintf(w->root, sizeof(w->root), "%s", root) >= sizeof(w->root) ||
        (size_t)snprintf(w->tmp, sizeof(w->tmp), "%s/.checkpoint-%" PRIu64 ".tmp", root, step) >=
            sizeof(w->tmp)) {
        free(w);
        return errbuf_set(err, err_size, -ENAMETOOLONG, "%s: path too long", root);
    }
    int rc = 0;
    if (mkdir(root, 0777) != 0 && errno != EEXIST)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", root, strerror(errno));
    else if ((rc = remove_tree(w->tmp)) != 0)
        errbuf_set(err, err_size, rc, "%s: cannot remove a leftover: %s", w->tmp, strerror(-rc));
    else if (mkdir(w->tmp, 0777) != 0)
        rc = errbuf_set(err, err_size, -errno, "%s: %s", w->tmp, strerror(errno));
    else if ((rc = sl_tensors_writer_new(&w->tensors, err, err_size)) != 0)
        remove_tree(w->tmp);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

const char *ckpt_writer_dir(const ckpt_writer *w) { return w->tmp; }

int ckpt_writer_add_moments(ckpt_writer *w, const char *name, const float *m, const float *v,
                            size_t ndim, const uint64_t *shape, char *err, size_t err_size) {
    char key[512];
    if ((size_t)snprintf(key, sizeof(key), "%s.exp_avg_sq", name) >= sizeof(key))
        return errbuf_set(err, err_size, -ENAMETOOLONG, "checkpoint: parameter name too long: %s",
                          name);
    snprintf(key, sizeof(key), "%s.exp_avg", name);
    int rc = sl_tensors_add_f32(w->tensors, key, m, ndim, shape, err, err_size);
    if (rc)
        return rc;
    snprintf(key, sizeof(key), "%s.exp_avg_sq", name);
    rc = sl_tensors_add_f32(w->tensors, key, v, ndim, shape, err, err_size);
    if (!rc)
        w->n_params++;
    return rc;
}

void ckpt_writer_abort(ckpt_writer *w) {
    if (!w)
        return;
    sl_tensors_writer_free(w->tensors);
    remove_tree(w->tmp);
    free(w);
}

static int write_state(const char *path, const ckpt_state *st, size_t n_params, char *err,
                       size_t err_size) {
    bson_t doc = BSON_INITIALIZER, rng;
    BSON_APPEND_INT32(&doc, "format", STATE_FORMAT);
    BSON_APPEND_INT64(&doc, "step", (int64_t)st->step);
    BSON_APPEND_INT64(&doc, "epoch", (int64_t)st->epoch);
    BSON_APPEND_INT64(&doc, "index", (int64_t)st->index);
    BSON_APPEND_INT64(&doc, "offset", (int64_t)st->offset);
    /* hex strings: JSON numbers lose bits above 2^53 in most readers */
    BSON_APPEND_ARRAY_BEGIN(&doc, "rng", &rng);
    for (int i = 0; i < 4; i++) {
        char key[4], hex[17];
        snprintf(key, sizeof(key), "%d", i);
        snprintf(hex, sizeof(hex), "%016" PRIx64, st->rng[i]);
        BSON_APPEND_UTF8(&rng, key, hex);
    }
    bson_append_array_end(&doc, &rng);
    BSON_APPEND_INT64(&doc, "tensors", (int64_t)n_params);
    int rc = sl_json_write(path, &doc, err, err_size);
    bson_destroy(&doc);
    return rc;
}

int ckpt_writer_commit(ckpt_writer *w, const ckpt_state *st, char *err, size_t err_size) {
    char path[4352], final[4352], old[4352];
    /* w->tmp fits in 4096 bytes: the file names after it fit too */
    join(path, sizeof(path), w->tmp, OPTIMIZER_FILE);
    int rc = sl_tensors_save(w->tensors, path, err, err_size);
    if (!rc) {
        join(path, sizeof(path), w->tmp, STATE_FILE);
        rc = write_state(path, st, w->n_params, err, err_size);
    }
    if (!rc && (rc = sync_tree_files(w->tmp)) != 0)
        errbuf_set(err, err_size, rc, "%s: sync: %s", w->tmp, strerror(-rc));
    snprintf(final, sizeof(final), "%s/checkpoint-%" PRIu64, w->root, w->step);
    snprintf(old, sizeof(old), "%s/.checkpoint-%" PRIu64 ".old", w->root, w->step);
    /* A checkpoint of the same step (a run resumed before it) is moved
     * aside, not deleted, until the new one is in place. */
    if (!rc && access(final, F_OK) == 0) {
        remove_tree(old);
        if (rename(final, old) != 0)
            rc = errbuf_set(err, err_size, -errno, "%s: %s", final, strerror(errno));
    }
    int moved_aside = !rc && access(old, F_OK) == 0;
    if (!rc && rename(w->tmp, final) != 0) {
        rc = errbuf_set(err, err_size, -errno, "%s -> %s: %s", w->tmp, final, strerror(errno));
        if (moved_aside) /* put the previous one back rather than lose it */
            rename(old, final);
    }
    if (!rc) {
        remove_tree(old);
        sync_path(w->root);
        sl_tensors_writer_free(w->tensors);
        free(w);
        return 0;
    }
    ckpt_writer_abort(w);
    return rc;
}

static int read_u64(const bson_t *doc, const char *key, uint64_t *out) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        return -1;
    int64_t v = bson_iter_as_int64(&it);
    if (v < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int ckpt_read_state(const char *dir, ckpt_state *st, char *err, size_t err_size) {
    char path[4352];
    if (join(path, sizeof(path), dir, STATE_FILE))
        return errbuf_set(err, err_size, -ENAMETOOLONG, "%s: path too long", dir);
    bson_t *doc;
    int rc = sl_json_read(path, &doc, err, err_size);
    if (rc)
        return rc;
    memset(st, 0, sizeof(*st));
    uint64_t format = 0;
    bson_iter_t it, r;
    int bad = read_u64(doc, "format", &format) || format != STATE_FORMAT ||
              read_u64(doc, "step", &st->step) || read_u64(doc, "epoch", &st->epoch) ||
              read_u64(doc, "index", &st->index) || read_u64(doc, "offset", &st->offset) ||
              !bson_iter_init_find(&it, doc, "rng") || !BSON_ITER_HOLDS_ARRAY(&it) ||
              !bson_iter_recurse(&it, &r);
    for (int i = 0; !bad && i < 4; i++) {
        const char *hex;
        char *end;
        bad = !bson_iter_next(&r) || !BSON_ITER_HOLDS_UTF8(&r) ||
              strlen(hex = bson_iter_utf8(&r, NULL)) != 16;
        if (!bad) {
            errno = 0;
            st->rng[i] = strtoull(hex, &end, 16);
            bad = errno != 0 || *end != '\0';
        }
    }
    bson_destroy(doc);
    return bad ? errbuf_set(err, err_size, -EINVAL,
                            "%s: not a training state of format %d (step, epoch, index, offset, "
                            "rng as 4 hex strings)",
                            path, STATE_FORMAT)
               : 0;
}

int ckpt_read_moments(const char *dir, const char *name, float *m, float *v, uint64_t count,
                      char *err, size_t err_size) {
    char path[4352], key[512];
    if (join(path, sizeof(path), dir, OPTIMIZER_FILE))
        return errbuf_set(err, err_size, -ENAMETOOLONG, "%s: path too long", dir);
    sl_tensors *t;
    int rc = sl_tensors_open(path, &t, err, err_size);
    if (rc)
        return rc;
    for (int k = 0; k < 2 && !rc; k++) {
        snprintf(key, sizeof(key), "%s.%s", name, k ? "exp_avg_sq" : "exp_avg");
        const sl_tensor *x = sl_tensors_find(t, key);
        if (!x)
            rc = errbuf_set(err, err_size, -ENOENT, "%s: no tensor %s", path, key);
        else if (sl_tensor_count(x) != count)
            rc = errbuf_set(err, err_size, -EINVAL, "%s: %s has %" PRIu64 " values, not %" PRIu64,
                            path, key, sl_tensor_count(x), count);
        else
            rc = sl_tensor_to_f32(x, k ? v : m, count, err, err_size);
    }
    sl_tensors_close(t);
    return rc;
}

/* checkpoint-N with N all digits (no sign, no suffix) -> N. */
static int checkpoint_step(const char *name, uint64_t *step) {
    static const char prefix[] = "checkpoint-";
    if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    const char *d = name + sizeof(prefix) - 1;
    if (*d < '0' || *d > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(d, &end, 10);
    if (errno || *end)
        return -1;
    *step = v;
    return 0;
}

/* A checkpoint folder that reads back whole. */
static int complete(const char *dir, uint64_t step) {
    ckpt_state st;
    char e[256], path[4352];
    if (ckpt_read_state(dir, &st, e, sizeof(e)) != 0 || st.step != step)
        return 0;
    if (join(path, sizeof(path), dir, OPTIMIZER_FILE))
        return 0;
    sl_tensors *t;
    if (sl_tensors_open(path, &t, e, sizeof(e)) != 0)
        return 0;
    sl_tensors_close(t);
    return 1;
}

/* The steps of root's complete checkpoints, newest first, in *steps
 * (malloc'd). */
static int list_checkpoints(const char *root, uint64_t **steps, size_t *n, char *err,
                            size_t err_size) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d)
        return errno == ENOENT ? 0
                               : errbuf_set(err, err_size, -errno, "%s: %s", root, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    char path[4352];
    while (!rc && (e = readdir(d))) {
        uint64_t step;
        if (checkpoint_step(e->d_name, &step) != 0)
            continue;
        if (join(path, sizeof(path), root, e->d_name) || !complete(path, step))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *s = realloc(*steps, cap * sizeof(*s));
            if (!s) {
                rc = errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", root);
                break;
            }
            *steps = s;
        }
        (*steps)[(*n)++] = step;
    }
    closedir(d);
    /* newest first: insertion sort, there are few */
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            uint64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    if (rc) {
        free(*steps);
        *steps = NULL;
        *n = 0;
    }
    return rc;
}

int ckpt_latest(const char *root, uint64_t *step, char *path, size_t path_size, char *err,
                size_t err_size) {
    uint64_t *steps;
    size_t n;
    int rc = list_checkpoints(root, &steps, &n, err, err_size);
    if (rc || n == 0)
        return rc;
    *step = steps[0];
    free(steps);
    if ((size_t)snprintf(path, path_size, "%s/checkpoint-%" PRIu64, root, *step) >= path_size)
        return errbuf_set(err, err_size, -ENAMETOOLONG, "%s: path too long", root);
    return 1;
}

int ckpt_prune(const char *root, size_t keep, char *err, size_t err_size) {
    uint64_t *steps;
    size_t n;
    int rc = list_checkpoints(root, &steps, &n, err, err_size);
    char path[4352];
    for (size_t i = keep ? keep : 1; !rc && i < n; i++) {
        snprintf(path, sizeof(path), "%s/checkpoint-%" PRIu64, root, steps[i]);
        if ((rc = remove_tree(path)) != 0)
            errbuf_set(err, err_size, rc, "%s: %s", path, strerror(-rc));
    }
    free(steps);
    DIR *d = rc ? NULL : opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, ".checkpoint-", 12) == 0 && len > 4 &&
            (strcmp(e->d_name + len - 4, ".tmp") == 0 ||
             strcmp(e->d_name + len - 4, ".old") == 0)) {
            if (join(path, sizeof(path), root, e->d_name) == 0)
                remove_tree(path);
        }
    }
    if (d)
        closedir(d);
    return rc;
}
