/* sluice/artifacts.h - reading and writing sluice's artifact formats from a
 * step plugin (docs/artifacts.md): records (documents, chunks, dataset rows)
 * as JSON Lines through libbson, and float32 matrices (embeddings).
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

#define SL_ARTIFACTS_VERSION 1

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

#ifdef __cplusplus
}
#endif

#endif
