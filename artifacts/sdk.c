/* sdk.c - <sluice/artifacts.h>: the public, opaque-handle face of
 * formats.h for plugins built outside sluice (libsluice_artifacts). */
#include <sluice/artifacts.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
