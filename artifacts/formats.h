/* formats.h - the typed artifact formats (docs/artifacts.md):
 *   - records (documents, chunks, dataset rows): JSON Lines, one object per
 *     line, read and written through libbson;
 *   - matrices (embeddings): a 32-byte header then float32 values, row-major,
 *     little-endian, memory-mapped on read;
 *   - model weights: safetensors, loadable by other tools.
 * Readers never trust a size in a file: every length and offset is checked
 * against the file before anything is read through it. Errors come back as
 * a negative errno and a message in err naming the file and what is wrong. */
#ifndef SLUICE_ARTIFACTS_FORMATS_H
#define SLUICE_ARTIFACTS_FORMATS_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Maps the whole file at path read-only: *map (NULL for an empty file) of
 * *size bytes, to munmap() when done. The readers below start from it. */
int file_map(const char *path, void **map, size_t *size, char *err, size_t err_size);

/* ---- JSON documents (configurations, metrics) ---- */

/* Reads the JSON object in the file at path into *doc (the caller's, free
 * with bson_destroy). */
int json_file_read(const char *path, bson_t **doc, char *err, size_t err_size);
/* Writes doc to path as one line of relaxed extended JSON. */
int json_file_write(const char *path, const bson_t *doc, char *err, size_t err_size);

/* ---- JSON Lines ---- */

typedef struct jsonl_writer {
    FILE *f;
    uint64_t n;
} jsonl_writer;

int jsonl_create(jsonl_writer *w, const char *path, char *err, size_t err_size);
/* Appends doc as one line of relaxed extended JSON. */
int jsonl_write(jsonl_writer *w, const bson_t *doc, char *err, size_t err_size);
/* Flushes and closes; returns the first write error, if any. */
int jsonl_close(jsonl_writer *w, char *err, size_t err_size);

typedef struct jsonl_reader {
    FILE *f;
    char *text; /* the current line (getline's) */
    size_t cap;
    const char *path; /* borrowed */
    uint64_t line;    /* of the record last read, from 1 */
} jsonl_reader;

int jsonl_open(jsonl_reader *rd, const char *path, char *err, size_t err_size);
/* Reads the next record into doc (initialised by the call; the caller
 * destroys it). Returns 1, 0 at the end, or -EINVAL with the line named
 * (-ENOMEM, -EIO when the file cannot be read). */
int jsonl_next(jsonl_reader *rd, bson_t *doc, char *err, size_t err_size);
void jsonl_close_reader(jsonl_reader *rd);

/* ---- float32 matrices ---- */

#define MATRIX_MAGIC "SLMX"
#define MATRIX_HEADER_SIZE 32

typedef struct matrix {
    const float *data; /* rows * cols values, inside the mapping */
    uint64_t rows, cols;
    void *map;
    size_t map_size;
} matrix;

int matrix_write(const char *path, const float *data, uint64_t rows, uint64_t cols, char *err,
                 size_t err_size);
int matrix_open(matrix *m, const char *path, char *err, size_t err_size);
void matrix_close(matrix *m);

/* ---- safetensors ---- */

typedef enum {
    ST_F64,
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name; /* owned by the file handle */
    st_dtype dtype;
    size_t ndim;
    uint64_t shape[ST_MAX_DIMS];
    const void *data; /* inside the mapping */
    uint64_t nbytes;
} st_tensor;

typedef struct safetensors {
    void *map;
    size_t map_size;
    st_tensor *tensors;
    size_t n;
} safetensors;

/* Opens and checks a safetensors file: header size, JSON, every tensor's
 * dtype, shape and offsets (inside the data, matching the shape, not
 * overlapping). */
int safetensors_open(safetensors *st, const char *path, char *err, size_t err_size);
const st_tensor *safetensors_find(const safetensors *st, const char *name);
void safetensors_close(safetensors *st);

typedef struct st_write_tensor {
    const char *name;
    const float *data; /* F32 */
    size_t ndim;
    const uint64_t *shape;
} st_write_tensor;

/* Writes F32 tensors as a safetensors file. */
int safetensors_write(const char *path, const st_write_tensor *tensors, size_t n, char *err,
                      size_t err_size);

const char *st_dtype_name(st_dtype d);

#endif
