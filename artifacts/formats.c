#include "formats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t size, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return rc;
}

int file_map(const char *path, void **map, size_t *size, char *err, size_t err_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, err_size, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return fail(err, err_size, rc, "%s: %s", path, strerror(-rc));
    }
    *size = (size_t)st.st_size;
    *map = NULL;
    if (*size) {
        *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (*map == MAP_FAILED) {
            int rc = -errno;
            close(fd);
            *map = NULL;
            return fail(err, err_size, rc, "%s: cannot map: %s", path, strerror(-rc));
        }
    }
    close(fd);
    return 0;
}

/* ---- JSON documents ---- */

int json_file_read(const char *path, bson_t **doc, char *err, size_t err_size) {
    void *map;
    size_t size;
    int rc = file_map(path, &map, &size, err, err_size);
    if (rc)
        return rc;
    bson_error_t e;
    /* an empty file maps to NULL, which libbson refuses with an abort */
    *doc = size == 0 || size > SSIZE_MAX ? NULL : bson_new_from_json(map, (ssize_t)size, &e);
    if (map)
        munmap(map, size);
    if (!*doc)
        return fail(err, err_size, -EINVAL, "%s: not a JSON object: %s", path,
                    size ? e.message : "the file is empty");
    return 0;
}

int json_file_write(const char *path, const bson_t *doc, char *err, size_t err_size) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (!json)
        return fail(err, err_size, -EINVAL, "%s: the document cannot be written as JSON", path);
    FILE *f = fopen(path, "wb");
    int rc = f ? 0 : -errno;
    if (f) {
        int ok = fwrite(json, 1, len, f) == len && fputc('\n', f) != EOF;
        ok = fclose(f) == 0 && ok;
        rc = ok ? 0 : -EIO;
    }
    bson_free(json);
    return rc ? fail(err, err_size, rc, "%s: %s", path, strerror(-rc)) : 0;
}

/* ---- JSON Lines ---- */

int jsonl_create(jsonl_writer *w, const char *path, char *err, size_t err_size) {
    w->n = 0;
    w->f = fopen(path, "wb");
    return w->f ? 0 : fail(err, err_size, -errno, "%s: %s", path, strerror(errno));
}

int jsonl_write(jsonl_writer *w, const bson_t *doc, char *err, size_t err_size) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (!json)
        return fail(err, err_size, -EINVAL, "record %llu cannot be written as JSON",
                    (unsigned long long)w->n + 1);
    int ok = fwrite(json, 1, len, w->f) == len && fputc('\n', w->f) != EOF;
    bson_free(json);
    if (!ok)
        return fail(err, err_size, -errno, "writing record %llu: %s", (unsigned long long)w->n + 1,
                    strerror(errno));
    w->n++;
    return 0;
}

int jsonl_close(jsonl_writer *w, char *err, size_t err_size) {
    int bad = ferror(w->f);
    if (fclose(w->f) != 0 || bad)
        return fail(err, err_size, -EIO, "writing records failed: %s", strerror(errno));
    w->f = NULL;
    return 0;
}

int jsonl_open(jsonl_reader *rd, const char *path, char *err, size_t err_size) {
    rd->path = path;
    rd->line = 0;
    rd->text = NULL;
    rd->cap = 0;
    rd->f = fopen(path, "rb");
    return rd->f ? 0 : fail(err, err_size, -errno, "%s: %s", path, strerror(errno));
}

/* Line by line: libbson's stream reader parses past the end of a record
 * before returning it, so a malformed line cost the record before it and
 * was named by that record's number. Blank lines are skipped. */
int jsonl_next(jsonl_reader *rd, bson_t *doc, char *err, size_t err_size) {
    ssize_t n;
    const char *p = NULL;
    errno = 0;
    while ((n = getline(&rd->text, &rd->cap, rd->f)) >= 0) {
        rd->line++;
        p = rd->text + strspn(rd->text, " \t\r\n");
        if (*p)
            break;
    }
    if (n < 0 && errno == ENOMEM)
        return fail(err, err_size, -ENOMEM, "%s: %s", rd->path, strerror(ENOMEM));
    if (n < 0)
        return ferror(rd->f) ? fail(err, err_size, -EIO, "%s: %s", rd->path, strerror(errno)) : 0;
    bson_error_t e;
    if (!bson_init_from_json(doc, p, -1, &e))
        return fail(err, err_size, -EINVAL, "%s: record %llu is not JSON: %s", rd->path,
                    (unsigned long long)rd->line, e.message);
    return 1;
}

void jsonl_close_reader(jsonl_reader *rd) {
    if (rd->f)
        fclose(rd->f);
    free(rd->text);
    rd->f = NULL;
    rd->text = NULL;
}

/* ---- float32 matrices ---- */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int matrix_write(const char *path, const float *data, uint64_t rows, uint64_t cols, char *err,
                 size_t err_size) {
    if (cols && rows > SIZE_MAX / sizeof(float) / cols)
        return fail(err, err_size, -EOVERFLOW, "a %llux%llu matrix is too large",
                    (unsigned long long)rows, (unsigned long long)cols);
    unsigned char header[MATRIX_HEADER_SIZE] = {0};
    memcpy(header, MATRIX_MAGIC, 4);
    put_u32(header + 4, 1); /* version */
    put_u32(header + 8, 1); /* dtype: float32 */
    put_u64(header + 16, rows);
    put_u64(header + 24, cols);
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(err, err_size, -errno, "%s: %s", path, strerror(errno));
    size_t n = (size_t)(rows * cols);
    /* The format is little-endian, as are the machines sluice runs on. */
    int ok = fwrite(header, 1, sizeof(header), f) == sizeof(header) &&
             (n == 0 || fwrite(data, sizeof(float), n, f) == n);
    if (fclose(f) != 0 || !ok)
        return fail(err, err_size, -EIO, "%s: writing failed: %s", path, strerror(errno));
    return 0;
}

int matrix_open(matrix *m, const char *path, char *err, size_t err_size) {
    memset(m, 0, sizeof(*m));
    int rc = file_map(path, &m->map, &m->map_size, err, err_size);
    if (rc)
        return rc;
    const unsigned char *p = m->map;
    if (m->map_size < MATRIX_HEADER_SIZE || memcmp(p, MATRIX_MAGIC, 4) != 0) {
        matrix_close(m);
        return fail(err, err_size, -EINVAL, "%s: not a sluice matrix (no SLMX header)", path);
    }
    uint32_t version = get_u32(p + 4), dtype = get_u32(p + 8);
    if (version != 1 || dtype != 1) {
        matrix_close(m); /* p is gone: the message uses the copies */
        return fail(err, err_size, -EINVAL,
                    "%s: matrix version %u, dtype %u: this sluice reads "
                    "version 1, float32",
                    path, version, dtype);
    }
    m->rows = get_u64(p + 16);
    m->cols = get_u64(p + 24);
    uint64_t want = m->map_size - MATRIX_HEADER_SIZE;
    if (m->cols && m->rows > want / sizeof(float) / m->cols) {
        unsigned long long r = m->rows, c = m->cols;
        matrix_close(m);
        return fail(err, err_size, -EINVAL,
                    "%s: a %llux%llu matrix needs more bytes than the "
                    "file holds",
                    path, r, c);
    }
    if (m->rows * m->cols * sizeof(float) != want) {
        matrix_close(m);
        return fail(err, err_size, -EINVAL, "%s: the file's size does not match its header", path);
    }
    m->data = (const float *)(p + MATRIX_HEADER_SIZE);
    return 0;
}

void matrix_close(matrix *m) {
    if (m->map)
        munmap(m->map, m->map_size);
    memset(m, 0, sizeof(*m));
}

/* ---- safetensors ---- */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4},   [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(st_dtype d) { return dtypes[d].name; }

#define ST_MAX_HEADER (100u << 20)

typedef struct span {
    uint64_t begin, end;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Checks one tensor entry of the header. */
static int read_tensor(bson_iter_t *it, st_tensor *t, const unsigned char *data, uint64_t data_size,
                       const char *path, char *err, size_t err_size) {
    const char *name = bson_iter_key(it);
    bson_iter_t f;
    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &f))
        return fail(err, err_size, -EINVAL, "%s: tensor '%s' is not an object", path, name);
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    uint64_t begin = 0, end = 0;
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (strcmp(k, "dtype") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            const char *d = bson_iter_utf8(&f, NULL);
            for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]) && !have_dtype; i++)
                if (strcmp(d, dtypes[i].name) == 0) {
                    t->dtype = (st_dtype)i;
                    have_dtype = 1;
                }
            if (!have_dtype)
                return fail(err, err_size, -EINVAL, "%s: tensor '%s' has unknown dtype '%s'", path,
                            name, d);
        } else if (strcmp(k, "shape") == 0 && BSON_ITER_HOLDS_ARRAY(&f)) {
            bson_iter_t dims;
            bson_iter_recurse(&f, &dims);
            while (bson_iter_next(&dims)) {
                if (t->ndim == ST_MAX_DIMS || !BSON_ITER_HOLDS_NUMBER(&dims) ||
                    bson_iter_as_int64(&dims) < 0)
                    return fail(err, err_size, -EINVAL,
                                "%s: tensor '%s' has a bad shape (at most %d non-negative "
                                "integers)",
                                path, name, ST_MAX_DIMS);
                t->shape[t->ndim++] = (uint64_t)bson_iter_as_int64(&dims);
            }
            have_shape = 1;
        } else if (strcmp(k, "data_offsets") == 0 && BSON_ITER_HOLDS_ARRAY(&f)) {
            bson_iter_t o;
            bson_iter_recurse(&f, &o);
            int64_t v[2];
            int n = 0;
            while (bson_iter_next(&o) && n < 3) {
                if (!BSON_ITER_HOLDS_NUMBER(&o) || bson_iter_as_int64(&o) < 0)
                    n = 9;
                else if (n < 2)
                    v[n] = bson_iter_as_int64(&o);
                n++;
            }
            if (n != 2 || v[0] > v[1])
                return fail(err, err_size, -EINVAL,
                            "%s: tensor '%s' has bad data_offsets (want [begin, end])", path, name);
            begin = (uint64_t)v[0];
            end = (uint64_t)v[1];
            have_offsets = 1;
        }
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return fail(err, err_size, -EINVAL, "%s: tensor '%s' lacks dtype, shape or data_offsets",
                    path, name);
    if (end > data_size)
        return fail(err, err_size, -EINVAL,
                    "%s: tensor '%s' ends at byte %llu, past the %llu bytes of data (truncated?)",
                    path, name, (unsigned long long)end, (unsigned long long)data_size);
    uint64_t count = 1;
    for (size_t i = 0; i < t->ndim; i++) {
        if (t->shape[i] && count > UINT64_MAX / t->shape[i])
            return fail(err, err_size, -EINVAL, "%s: tensor '%s' has an impossible shape", path,
                        name);
        count *= t->shape[i];
    }
    if (count > UINT64_MAX / dtypes[t->dtype].size || count * dtypes[t->dtype].size != end - begin)
        return fail(err, err_size, -EINVAL,
                    "%s: tensor '%s' is %llu bytes, but its shape and dtype %s need %llu", path,
                    name, (unsigned long long)(end - begin), dtypes[t->dtype].name,
                    (unsigned long long)(count * dtypes[t->dtype].size));
    if (!(t->name = strdup(name)))
        return -ENOMEM;
    t->data = data + begin;
    t->nbytes = end - begin;
    return 0;
}

int safetensors_open(safetensors *st, const char *path, char *err, size_t err_size) {
    memset(st, 0, sizeof(*st));
    int rc = file_map(path, &st->map, &st->map_size, err, err_size);
    if (rc)
        return rc;
    const unsigned char *p = st->map;
    bson_t *header = NULL;
    span *spans = NULL;
    if (st->map_size < 8) {
        rc = fail(err, err_size, -EINVAL, "%s: too short for a safetensors file (%zu bytes)", path,
                  st->map_size);
        goto out;
    }
    uint64_t hlen = get_u64(p);
    if (hlen > ST_MAX_HEADER || hlen > st->map_size - 8) {
        rc = fail(err, err_size, -EINVAL,
                  "%s: the header claims %llu bytes, more than the file holds (truncated?)", path,
                  (unsigned long long)hlen);
        goto out;
    }
    bson_error_t e;
    header = bson_new_from_json(p + 8, (ssize_t)hlen, &e);
    if (!header) {
        rc = fail(err, err_size, -EINVAL, "%s: the header is not a JSON object: %s", path,
                  e.message);
        goto out;
    }
    const unsigned char *data = p + 8 + hlen;
    uint64_t data_size = st->map_size - 8 - hlen;
    size_t n = bson_count_keys(header);
    st->tensors = calloc(n + 1, sizeof(*st->tensors));
    spans = calloc(n + 1, sizeof(*spans));
    if (!st->tensors || !spans) {
        rc = -ENOMEM;
        goto out;
    }
    bson_iter_t it;
    bson_iter_init(&it, header);
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "__metadata__") == 0)
            continue;
        st_tensor *t = &st->tensors[st->n];
        if ((rc = read_tensor(&it, t, data, data_size, path, err, err_size)))
            goto out;
        spans[st->n] = (span){(uint64_t)((const unsigned char *)t->data - data),
                              (uint64_t)((const unsigned char *)t->data - data) + t->nbytes};
        st->n++;
    }
    qsort(spans, st->n, sizeof(*spans), by_begin);
    for (size_t i = 1; i < st->n; i++)
        if (spans[i].begin < spans[i - 1].end) {
            rc = fail(err, err_size, -EINVAL, "%s: two tensors overlap in the data", path);
            goto out;
        }
out:
    free(spans);
    if (header)
        bson_destroy(header);
    if (rc)
        safetensors_close(st);
    return rc;
}

const st_tensor *safetensors_find(const safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

void safetensors_close(safetensors *st) {
    for (size_t i = 0; i < st->n; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    if (st->map)
        munmap(st->map, st->map_size);
    memset(st, 0, sizeof(*st));
}

int safetensors_write(const char *path, const st_write_tensor *tensors, size_t n, char *err,
                      size_t err_size) {
    bson_t doc = BSON_INITIALIZER, meta;
    uint64_t offset = 0;
    /* Hugging Face's loaders refuse a file without a format. */
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "__metadata__", &meta);
    BSON_APPEND_UTF8(&meta, "format", "pt");
    bson_append_document_end(&doc, &meta);
    for (size_t i = 0; i < n; i++) {
        bson_t t, shape, offsets;
        uint64_t count = 1;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, tensors[i].name, &t);
        BSON_APPEND_UTF8(&t, "dtype", "F32");
        BSON_APPEND_ARRAY_BEGIN(&t, "shape", &shape);
        for (size_t d = 0; d < tensors[i].ndim; d++) {
            char idx[16];
            const char *k;
            bson_uint32_to_string((uint32_t)d, &k, idx, sizeof(idx));
            BSON_APPEND_INT64(&shape, k, (int64_t)tensors[i].shape[d]);
            count *= tensors[i].shape[d];
        }
        bson_append_array_end(&t, &shape);
        BSON_APPEND_ARRAY_BEGIN(&t, "data_offsets", &offsets);
        BSON_APPEND_INT64(&offsets, "0", (int64_t)offset);
        BSON_APPEND_INT64(&offsets, "1", (int64_t)(offset + count * 4));
        bson_append_array_end(&t, &offsets);
        bson_append_document_end(&doc, &t);
        offset += count * 4;
    }
    size_t len;
    char *json = bson_as_relaxed_extended_json(&doc, &len);
    bson_destroy(&doc);
    if (!json)
        return fail(err, err_size, -ENOMEM, "cannot build the header");
    /* Pad the header with spaces so the data starts 8-byte aligned. */
    size_t padded = (len + 7) & ~(size_t)7;
    unsigned char size_le[8];
    put_u64(size_le, padded);
    /* Written beside, then renamed: a reader never sees half a file. */
    size_t path_len = strlen(path);
    char *tmp = malloc(path_len + 6);
    if (!tmp) {
        bson_free(json);
        return fail(err, err_size, -ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".part", 6);
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL;
    if (ok) {
        ok = fwrite(size_le, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
        for (size_t i = len; ok && i < padded; i++)
            ok = fputc(' ', f) != EOF;
        for (size_t i = 0; ok && i < n; i++) {
            uint64_t count = 1;
            for (size_t d = 0; d < tensors[i].ndim; d++)
                count *= tensors[i].shape[d];
            ok = count == 0 || fwrite(tensors[i].data, 4, (size_t)count, f) == count;
        }
        ok = fclose(f) == 0 && ok;
        ok = ok && rename(tmp, path) == 0;
    }
    int saved = errno;
    if (!ok)
        unlink(tmp);
    free(tmp);
    bson_free(json);
    return ok ? 0 : fail(err, err_size, -EIO, "%s: writing failed: %s", path, strerror(saved));
}
