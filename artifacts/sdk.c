/* sdk.c - <sluice/artifacts.h>: the public, opaque-handle face of
 * formats.h for plugins built outside sluice (libsluice_artifacts). */
#include <sluice/artifacts.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "formats.h"

struct sl_records_writer {
    jsonl_writer w;
};

struct sl_records_reader {
    jsonl_reader r;
    char *path; /* jsonl_reader borrows it */
};

struct sl_matrix {
    matrix m;
};

static int out_of_memory(char *err, size_t err_size) {
    snprintf(err, err_size, "%s", strerror(ENOMEM));
    return -ENOMEM;
}

int sl_records_create(const char *path, sl_records_writer **w, char *err, size_t err_size) {
    *w = calloc(1, sizeof(**w));
    if (!*w)
        return out_of_memory(err, err_size);
    int rc = jsonl_create(&(*w)->w, path, err, err_size);
    if (rc) {
        free(*w);
        *w = NULL;
    }
    return rc;
}

int sl_records_write(sl_records_writer *w, const bson_t *record, char *err, size_t err_size) {
    return jsonl_write(&w->w, record, err, err_size);
}

int sl_records_close(sl_records_writer *w, char *err, size_t err_size) {
    int rc = jsonl_close(&w->w, err, err_size);
    free(w);
    return rc;
}

int sl_records_open(const char *path, sl_records_reader **r, char *err, size_t err_size) {
    *r = calloc(1, sizeof(**r));
    if (!*r || !((*r)->path = strdup(path))) {
        free(*r);
        *r = NULL;
        return out_of_memory(err, err_size);
    }
    int rc = jsonl_open(&(*r)->r, (*r)->path, err, err_size);
    if (rc) {
        free((*r)->path);
        free(*r);
        *r = NULL;
    }
    return rc;
}

int sl_records_next(sl_records_reader *r, bson_t *record, char *err, size_t err_size) {
    return jsonl_next(&r->r, record, err, err_size);
}

void sl_records_free(sl_records_reader *r) {
    if (!r)
        return;
    jsonl_close_reader(&r->r);
    free(r->path);
    free(r);
}

int sl_matrix_write(const char *path, const float *data, uint64_t rows, uint64_t cols, char *err,
                    size_t err_size) {
    return matrix_write(path, data, rows, cols, err, err_size);
}

int sl_matrix_open(const char *path, sl_matrix **m, char *err, size_t err_size) {
    *m = calloc(1, sizeof(**m));
    if (!*m)
        return out_of_memory(err, err_size);
    int rc = matrix_open(&(*m)->m, path, err, err_size);
    if (rc) {
        free(*m);
        *m = NULL;
    }
    return rc;
}

const float *sl_matrix_data(const sl_matrix *m) { return m->m.data; }
uint64_t sl_matrix_rows(const sl_matrix *m) { return m->m.rows; }
uint64_t sl_matrix_cols(const sl_matrix *m) { return m->m.cols; }

void sl_matrix_close(sl_matrix *m) {
    if (!m)
        return;
    matrix_close(&m->m);
    free(m);
}

int sl_json_read(const char *path, bson_t **doc, char *err, size_t err_size) {
    return json_file_read(path, doc, err, err_size);
}

int sl_json_write(const char *path, const bson_t *doc, char *err, size_t err_size) {
    return json_file_write(path, doc, err, err_size);
}

/* safetensors: the handles are formats.h's own structures, whose layout
 * stays private to this library. */
struct sl_tensors {
    safetensors st;
};

struct sl_tensor {
    st_tensor t;
};

_Static_assert((int)SL_DTYPE_F64 == ST_F64 && (int)SL_DTYPE_F32 == ST_F32 &&
                   (int)SL_DTYPE_F16 == ST_F16 && (int)SL_DTYPE_BF16 == ST_BF16 &&
                   (int)SL_DTYPE_I64 == ST_I64 && (int)SL_DTYPE_BOOL == ST_BOOL,
               "sl_dtype names formats.h's st_dtype");

int sl_tensors_open(const char *path, sl_tensors **t, char *err, size_t err_size) {
    *t = calloc(1, sizeof(**t));
    if (!*t)
        return out_of_memory(err, err_size);
    int rc = safetensors_open(&(*t)->st, path, err, err_size);
    if (rc) {
        free(*t);
        *t = NULL;
    }
    return rc;
}

size_t sl_tensors_count(const sl_tensors *t) { return t->st.n; }

const sl_tensor *sl_tensors_at(const sl_tensors *t, size_t i) {
    return i < t->st.n ? (const sl_tensor *)&t->st.tensors[i] : NULL;
}

const sl_tensor *sl_tensors_find(const sl_tensors *t, const char *name) {
    return (const sl_tensor *)safetensors_find(&t->st, name);
}

void sl_tensors_close(sl_tensors *t) {
    if (!t)
        return;
    safetensors_close(&t->st);
    free(t);
}

const char *sl_tensor_name(const sl_tensor *x) { return x->t.name; }
sl_dtype sl_tensor_dtype(const sl_tensor *x) { return (sl_dtype)x->t.dtype; }
size_t sl_tensor_ndim(const sl_tensor *x) { return x->t.ndim; }
uint64_t sl_tensor_dim(const sl_tensor *x, size_t i) { return i < x->t.ndim ? x->t.shape[i] : 0; }
const void *sl_tensor_data(const sl_tensor *x) { return x->t.data; }
uint64_t sl_tensor_nbytes(const sl_tensor *x) { return x->t.nbytes; }
const char *sl_dtype_name(sl_dtype d) { return st_dtype_name((st_dtype)d); }

uint64_t sl_tensor_count(const sl_tensor *x) {
    uint64_t n = 1;
    for (size_t i = 0; i < x->t.ndim; i++)
        n *= x->t.shape[i];
    return n;
}

/* IEEE 754 half to single, subnormals and infinities included. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        int shift = 0;
        while (!(mant & 0x400)) {
            mant <<= 1;
            shift++;
        }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

int sl_tensor_to_f32(const sl_tensor *x, float *out, uint64_t n, char *err, size_t err_size) {
    if (n != sl_tensor_count(x)) {
        snprintf(err, err_size, "tensor %s has %llu elements, not %llu", x->t.name,
                 (unsigned long long)sl_tensor_count(x), (unsigned long long)n);
        return -EINVAL;
    }
    const unsigned char *p = x->t.data;
    switch (x->t.dtype) {
    case ST_F32:
        if (n)
            memcpy(out, p, (size_t)n * sizeof(float));
        return 0;
    case ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &bits, sizeof(float));
        }
        return 0;
    case ST_F16:
        for (uint64_t i = 0; i < n; i++)
            out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        snprintf(err, err_size, "tensor %s is %s, not F32, F16 or BF16", x->t.name,
                 st_dtype_name(x->t.dtype));
        return -EINVAL;
    }
}

struct sl_tensors_writer {
    st_write_tensor *tensors; /* names and shapes owned, data borrowed */
    size_t n, cap;
};

int sl_tensors_writer_new(sl_tensors_writer **w, char *err, size_t err_size) {
    *w = calloc(1, sizeof(**w));
    return *w ? 0 : out_of_memory(err, err_size);
}

int sl_tensors_add_f32(sl_tensors_writer *w, const char *name, const float *data, size_t ndim,
                       const uint64_t *shape, char *err, size_t err_size) {
    if (ndim > ST_MAX_DIMS) {
        snprintf(err, err_size, "tensor %s has %zu dimensions, at most %d are written", name, ndim,
                 ST_MAX_DIMS);
        return -EINVAL;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        st_write_tensor *grown = realloc(w->tensors, cap * sizeof(*grown));
        if (!grown)
            return out_of_memory(err, err_size);
        w->tensors = grown;
        w->cap = cap;
    }
    char *copy = strdup(name);
    uint64_t *dims = malloc((ndim ? ndim : 1) * sizeof(*dims));
    if (!copy || !dims) {
        free(copy);
        free(dims);
        return out_of_memory(err, err_size);
    }
    if (ndim)
        memcpy(dims, shape, ndim * sizeof(*dims));
    w->tensors[w->n++] = (st_write_tensor){.name = copy, .data = data, .ndim = ndim, .shape = dims};
    return 0;
}

int sl_tensors_save(sl_tensors_writer *w, const char *path, char *err, size_t err_size) {
    return safetensors_write(path, w->tensors, w->n, err, err_size);
}

void sl_tensors_writer_free(sl_tensors_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free((char *)w->tensors[i].name);
        free((uint64_t *)w->tensors[i].shape);
    }
    free(w->tensors);
    free(w);
}

int sl_file_map(const char *path, void **map, size_t *size, char *err, size_t err_size) {
    return file_map(path, map, size, err, err_size);
}

void sl_file_unmap(void *map, size_t size) {
    if (map)
        munmap(map, size);
}
