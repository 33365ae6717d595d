/* sluice/artifacts.h - reading and writing sluice's artifact formats from a
 * step plugin (docs/artifacts.md): records (documents, chunks, dataset rows)
 * as JSON Lines through libbson, float32 matrices (embeddings), JSON files
 * (configurations) and safetensors (model weights).
 *
 * Unlike <sluice/plugin.h>, this header comes with a library: link
 * libsluice_artifacts (CMake: sluice::artifacts; pkg-config:
 * sluice-artifacts), which needs libbson. A plugin that only moves files
 * does not need it.
 *
 * Every handle is opaque and every function returns 0 (or 1 for a record
 * read) or a negated errno, with a message in err naming the file and what is
 * wrong. Readers never trust a size in a file. Handles are not shared between
 * threads; different handles may be used on different threads at once.
 *
 * Versions: functions are appended, never changed or removed within a
 * SONAME (libsluice_artifacts.so.1); SL_ARTIFACTS_VERSION counts additions. */
#ifndef SLUICE_ARTIFACTS_H
#define SLUICE_ARTIFACTS_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ARTIFACTS_VERSION 3 /* 2: JSON files and safetensors; 3: sl_file_map */

#if defined(__GNUC__)
#define SL_ARTIFACTS_API __attribute__((visibility("default")))
#else
#define SL_ARTIFACTS_API
#endif

/* ---- records: JSON Lines, one object per line ---- */

typedef struct sl_records_writer sl_records_writer;

/* Creates (or truncates) path; *w is the caller's, ended by
 * sl_records_close. */
SL_ARTIFACTS_API int sl_records_create(const char *path, sl_records_writer **w, char *err,
                                       size_t err_size);
/* Appends record (borrowed for the call) as one line of relaxed extended
 * JSON. */
SL_ARTIFACTS_API int sl_records_write(sl_records_writer *w, const bson_t *record, char *err,
                                      size_t err_size);
/* Flushes, closes and frees w (also on error); returns the first write error. */
SL_ARTIFACTS_API int sl_records_close(sl_records_writer *w, char *err, size_t err_size);

typedef struct sl_records_reader sl_records_reader;

SL_ARTIFACTS_API int sl_records_open(const char *path, sl_records_reader **r, char *err,
                                     size_t err_size);
/* Reads the next record into *record, which the call initializes and the
 * caller then destroys (bson_destroy) when 1 is returned. Returns 1, 0 at
 * the end, or -EINVAL naming the record that is not JSON. */
SL_ARTIFACTS_API int sl_records_next(sl_records_reader *r, bson_t *record, char *err,
                                     size_t err_size);
SL_ARTIFACTS_API void sl_records_free(sl_records_reader *r);

/* ---- matrices: rows x cols float32, row-major ---- */

typedef struct sl_matrix sl_matrix;

/* Writes rows * cols values from data as a matrix file at path. */
SL_ARTIFACTS_API int sl_matrix_write(const char *path, const float *data, uint64_t rows,
                                     uint64_t cols, char *err, size_t err_size);
/* Maps the matrix at path, checked against the file's size, into *m. */
SL_ARTIFACTS_API int sl_matrix_open(const char *path, sl_matrix **m, char *err, size_t err_size);
/* Its values (borrowed until sl_matrix_close), rows and columns. */
SL_ARTIFACTS_API const float *sl_matrix_data(const sl_matrix *m);
SL_ARTIFACTS_API uint64_t sl_matrix_rows(const sl_matrix *m);
SL_ARTIFACTS_API uint64_t sl_matrix_cols(const sl_matrix *m);
SL_ARTIFACTS_API void sl_matrix_close(sl_matrix *m);

/* ---- JSON files: one object (a model's config.json, a metrics file) ---- */

/* Reads the JSON object in the file at path into *doc (the caller's, freed
 * with bson_destroy). */
SL_ARTIFACTS_API int sl_json_read(const char *path, bson_t **doc, char *err, size_t err_size);
/* Writes doc (borrowed) to path as relaxed extended JSON. */
SL_ARTIFACTS_API int sl_json_write(const char *path, const bson_t *doc, char *err, size_t err_size);

/* ---- safetensors: model weights, as Hugging Face tools read them ---- */

/* Element types, as safetensors names them (sl_dtype_name). */
typedef enum sl_dtype {
    SL_DTYPE_F64,
    SL_DTYPE_F32,
    SL_DTYPE_F16,
    SL_DTYPE_BF16,
    SL_DTYPE_I64,
    SL_DTYPE_I32,
    SL_DTYPE_I16,
    SL_DTYPE_I8,
    SL_DTYPE_U8,
    SL_DTYPE_BOOL,
} sl_dtype;

typedef struct sl_tensors sl_tensors; /* an open file */
typedef struct sl_tensor sl_tensor;   /* one tensor in it, borrowed from the file */

/* Maps and checks the file at path: header size, JSON, each tensor's dtype,
 * shape and offsets (inside the data, matching the shape, not overlapping).
 * *t is the caller's, ended by sl_tensors_close. */
SL_ARTIFACTS_API int sl_tensors_open(const char *path, sl_tensors **t, char *err, size_t err_size);
/* The tensors in the file's order; sl_tensors_find is NULL for a name not
 * in the file. Both are valid until sl_tensors_close. */
SL_ARTIFACTS_API size_t sl_tensors_count(const sl_tensors *t);
SL_ARTIFACTS_API const sl_tensor *sl_tensors_at(const sl_tensors *t, size_t i);
SL_ARTIFACTS_API const sl_tensor *sl_tensors_find(const sl_tensors *t, const char *name);
SL_ARTIFACTS_API void sl_tensors_close(sl_tensors *t);

SL_ARTIFACTS_API const char *sl_tensor_name(const sl_tensor *x);
SL_ARTIFACTS_API sl_dtype sl_tensor_dtype(const sl_tensor *x);
/* Dimensions: sl_tensor_dim is 0 for i >= sl_tensor_ndim. */
SL_ARTIFACTS_API size_t sl_tensor_ndim(const sl_tensor *x);
SL_ARTIFACTS_API uint64_t sl_tensor_dim(const sl_tensor *x, size_t i);
SL_ARTIFACTS_API uint64_t sl_tensor_count(const sl_tensor *x); /* elements */
/* The raw little-endian bytes inside the mapping. */
SL_ARTIFACTS_API const void *sl_tensor_data(const sl_tensor *x);
SL_ARTIFACTS_API uint64_t sl_tensor_nbytes(const sl_tensor *x);
/* Converts an F32, F16 or BF16 tensor's n elements (n must be its count)
 * into out; -EINVAL naming the tensor for another dtype or count. */
SL_ARTIFACTS_API int sl_tensor_to_f32(const sl_tensor *x, float *out, uint64_t n, char *err,
                                      size_t err_size);
SL_ARTIFACTS_API const char *sl_dtype_name(sl_dtype d);

/* A file of F32 tensors, written in the order added, with the metadata
 * {"format": "pt"} that Hugging Face loaders look for. */
typedef struct sl_tensors_writer sl_tensors_writer;

SL_ARTIFACTS_API int sl_tensors_writer_new(sl_tensors_writer **w, char *err, size_t err_size);
/* Adds a tensor: name and shape are copied, data (the product of shape's
 * ndim dimensions of floats) is borrowed until sl_tensors_save. */
SL_ARTIFACTS_API int sl_tensors_add_f32(sl_tensors_writer *w, const char *name, const float *data,
                                        size_t ndim, const uint64_t *shape, char *err,
                                        size_t err_size);
/* Writes the file at path (replacing it only once complete). */
SL_ARTIFACTS_API int sl_tensors_save(sl_tensors_writer *w, const char *path, char *err,
                                     size_t err_size);
SL_ARTIFACTS_API void sl_tensors_writer_free(sl_tensors_writer *w);

/* ---- any file, mapped (SL_ARTIFACTS_VERSION 3) ---- */

/* Maps the whole file at path read-only for a reader of a format of its
 * own (an index): *map (NULL for an empty file) of *size bytes, the
 * caller's until sl_file_unmap(*map, *size). */
SL_ARTIFACTS_API int sl_file_map(const char *path, void **map, size_t *size, char *err,
                                 size_t err_size);
/* Ends a mapping sl_file_map made; NULL (an empty file's) is nothing to do. */
SL_ARTIFACTS_API void sl_file_unmap(void *map, size_t size);

#ifdef __cplusplus
}
#endif

#endif
