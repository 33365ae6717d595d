/* fuzz_model_folder - libFuzzer target for the model library's reader of a
 * Hugging Face folder (steps/model): config.json and its safetensors,
 * single or sharded. The input is config.json, a NUL byte, a safetensors
 * file and, after another NUL, an optional model.safetensors.index.json (the
 * safetensors file is then the shard "shard.safetensors"). A folder that
 * opens is run on two tokens and decoded one token, as a user's would be.
 * Any crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(const char *dir, const char *name, const uint8_t *p, size_t n) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static void drop(const char *dir, const char *name) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64];
    if (!dir[0]) {
        strcpy(dir, "/tmp/sluice-fuzz-model-XXXXXX");
        if (!mkdtemp(dir))
            return 0;
    }
    const uint8_t *end = data + size;
    const uint8_t *z1 = memchr(data, 0, size);
    if (!z1)
        return 0;
    const uint8_t *st = z1 + 1;
    const uint8_t *z2 = memchr(st, 0, (size_t)(end - st));
    drop(dir, "model.safetensors");
    drop(dir, "shard.safetensors");
    drop(dir, "model.safetensors.index.json");
    put(dir, "config.json", data, (size_t)(z1 - data));
    /* A safetensors file holds NULs of its own, so the index is taken
     * only from after the last NUL. */
    const uint8_t *last = z2 ? memrchr(st, 0, (size_t)(end - st)) : NULL;
    if (last && last + 1 < end && last[1] == '{') {
        put(dir, "shard.safetensors", st, (size_t)(last - st));
        put(dir, "model.safetensors.index.json", last + 1, (size_t)(end - last - 1));
    } else {
        put(dir, "model.safetensors", st, (size_t)(end - st));
    }
    char err[512];
    model *m = NULL;
    if (model_open(dir, &m, err, sizeof(err)) == 0) {
        const model_config *c = model_get_config(m);
        int32_t tok[2] = {0, c->vocab - 1}, tgt[2] = {c->vocab - 1, -1};
        float loss;
        int T = c->context < 2 ? c->context : 2;
        if (model_forward(m, tok, tgt, NULL, 1, T, &loss, err, sizeof(err)) == 0)
            (void)model_backward(m, 1.0f, err, sizeof(err));
        const float *logits;
        if (model_decode_reset(m, 1, err, sizeof(err)) == 0)
            (void)model_decode(m, 0, &logits, err, sizeof(err));
        model_free(m);
    }
    return 0;
}
