/* fuzz_models - libFuzzer target for the binary files sluice maps and
 * trusts no further than it checks: safetensors weights (a user's Hugging
 * Face folder), float32 matrices (embeddings) and retrieval indexes. The
 * first byte picks the reader; the rest is the file. Any crash, leak or
 * sanitizer report is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats.h"
#include "index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/sluice-fuzz-models-%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    char err[512];
    switch (data[0] % 3) {
    case 0: {
        safetensors st;
        if (safetensors_open(&st, path, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < st.n; i++) /* every tensor's bytes, as a reader would */
                for (uint64_t b = 0; b < st.tensors[i].nbytes; b += 4096)
                    (void)*(volatile const uint8_t *)((const uint8_t *)st.tensors[i].data + b);
            (void)safetensors_find(&st, "x");
            safetensors_close(&st);
        }
        break;
    }
    case 1: {
        matrix m;
        if (matrix_open(&m, path, err, sizeof(err)) == 0) {
            float sum = 0;
            for (uint64_t i = 0; i < m.rows * m.cols; i += 1024)
                sum += m.data[i];
            (void)sum;
            matrix_close(&m);
        }
        break;
    }
    default: {
        search_index *ix;
        if (index_load(path, &ix, err, sizeof(err)) == 0) {
            size_t dim = index_dim(ix), k = 3, count = 0;
            float *q = calloc(dim, sizeof(*q)), scores[3];
            uint32_t ids[3];
            if (q) {
                q[0] = 1;
                (void)index_search(ix, q, 1, dim, k, NULL, ids, scores, &count, err, sizeof(err));
                (void)index_bm25_search(ix, "the pipeline", k, NULL, ids, scores, &count, err,
                                        sizeof(err));
                for (size_t i = 0; i < index_size(ix) && i < 64; i++) {
                    index_row row;
                    (void)index_get(ix, i, &row);
                }
                free(q);
            }
            index_free(ix);
        }
        break;
    }
    }
    return 0;
}
