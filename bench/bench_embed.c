/* bench_embed - the BERT encoder's throughput (steps/embed/bert.c) on a
 * model shaped like all-MiniLM-L6-v2 (hidden 384, 6 layers, 12 heads,
 * intermediate 1536, 512 positions; the vocabulary cut to 1000 tokens, which
 * only the embedding lookup sees) with random weights written to a
 * temporary folder, beside the machine's own cblas_sgemm rate measured in
 * the same run (1024 x 1024 x 1024), so the fraction of that peak the
 * encoder reaches is printed too. The encoder's FLOPs are counted as
 * 2 * multiply-adds of the projections and of attention (QK^T and SV).
 * Each length is timed in 3 rounds and the best is printed, as the sgemm
 * rate is: the machine may be shared, and one busy moment would otherwise
 * decide a figure.
 *
 *     bench_embed [sentences at 32 tokens] [sentences at 128 tokens] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bert.h"
#include "sgemm_rate.h"
#include "formats.h"

#define H 384
#define LAYERS 6
#define HEADS 12
#define INTER 1536
#define POSITIONS 512
#define VOCAB 1000
#define WORDS (VOCAB - 5)

static char dir[64];

static void cleanup(void) {
    const char *files[] = {"config.json", "model.safetensors", "vocab.txt"};
    char path[128];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static int write_model(void) {
    char path[128], err[512];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"intermediate_size\": %d, \"max_position_embeddings\": %d, \"type_vocab_size\": 2, "
            "\"vocab_size\": %d, \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}\n",
            H, LAYERS, HEADS, INTER, POSITIONS, VOCAB);
    fclose(f);
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    if (!(f = fopen(path, "w")))
        return -1;
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (int i = 0; i < WORDS; i++)
        fprintf(f, "w%d\n", i);
    fclose(f);

    /* Every tensor reads a prefix of one random buffer; LayerNorms are 1, 0. */
    size_t big = (size_t)INTER * H;
    float *rnd = malloc(big * sizeof(float)), *ones = malloc(H * sizeof(float)),
          *zeros = calloc(H, sizeof(float));
    if (!rnd || !ones || !zeros)
        return -1;
    uint32_t s = 12345;
    for (size_t i = 0; i < big; i++) {
        s = s * 1664525u + 1013904223u;
        rnd[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    for (size_t i = 0; i < H; i++)
        ones[i] = 1;
    static char names[5 + LAYERS * 16][80];
    static uint64_t shapes[5 + LAYERS * 16][2];
    st_write_tensor t[5 + LAYERS * 16];
    size_t n = 0;
#define ADD(data_, d0, d1, ...)                                                                    \
    do {                                                                                           \
        snprintf(names[n], sizeof(names[n]), __VA_ARGS__);                                         \
        shapes[n][0] = (d0);                                                                       \
        shapes[n][1] = (d1);                                                                       \
        t[n] = (st_write_tensor){names[n], (data_), (d1) ? 2 : 1, shapes[n]};                      \
        n++;                                                                                       \
    } while (0)
    ADD(rnd, VOCAB, H, "embeddings.word_embeddings.weight");
    ADD(rnd, POSITIONS, H, "embeddings.position_embeddings.weight");
    ADD(rnd, 2, H, "embeddings.token_type_embeddings.weight");
    ADD(ones, H, 0, "embeddings.LayerNorm.weight");
    ADD(zeros, H, 0, "embeddings.LayerNorm.bias");
    for (int l = 0; l < LAYERS; l++) {
        const char *qkv[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            ADD(rnd, H, H, "encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            ADD(rnd, H, 0, "encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
        }
        ADD(rnd, H, H, "encoder.layer.%d.attention.output.dense.weight", l);
        ADD(rnd, H, 0, "encoder.layer.%d.attention.output.dense.bias", l);
        ADD(ones, H, 0, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        ADD(zeros, H, 0, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        ADD(rnd, INTER, H, "encoder.layer.%d.intermediate.dense.weight", l);
        ADD(rnd, INTER, 0, "encoder.layer.%d.intermediate.dense.bias", l);
        ADD(rnd, H, INTER, "encoder.layer.%d.output.dense.weight", l);
        ADD(rnd, H, 0, "encoder.layer.%d.output.dense.bias", l);
        ADD(ones, H, 0, "encoder.layer.%d.output.LayerNorm.weight", l);
        ADD(zeros, H, 0, "encoder.layer.%d.output.LayerNorm.bias", l);
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    int rc = safetensors_write(path, t, n, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    free(rnd);
    free(ones);
    free(zeros);
    return rc;
}

/* The encoder's FLOPs for one sentence of T tokens. */
static double flops(double T) {
    double proj = 2.0 * T * (4.0 * H * H + 2.0 * H * INTER);
    double attn = 2.0 * 2.0 * T * T * H;
    return LAYERS * (proj + attn);
}

static int run(const bert_model *m, size_t tokens, size_t n, double peak) {
    size_t words = tokens - 2;
    size_t cap = words * 8 + 1;
    char **texts = malloc(n * sizeof(*texts));
    size_t *lens = malloc(n * sizeof(*lens));
    float *out = malloc(n * H * sizeof(float));
    if (!texts || !lens || !out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        texts[i] = malloc(cap);
        if (!texts[i])
            return -1;
        size_t k = 0;
        for (size_t w = 0; w < words; w++)
            k += (size_t)snprintf(texts[i] + k, cap - k, "%sw%zu", w ? " " : "",
                                  (i * 31 + w * 7) % WORDS);
        lens[i] = k;
    }
    char err[512];
    size_t got = 0;
    if (wordpiece_count(bert_model_tokenizer(m), texts[0], lens[0], &got) || got != words) {
        fprintf(stderr, "a text has %zu tokens, not %zu\n", got, words);
        return -1;
    }
    int rc = bert_embed(m, (const char *const *)texts, lens, n < 32 ? n : 32, 0, out, err,
                        sizeof(err)); /* warm-up */
    double t = 1e30;
    for (int round = 0; round < 3 && !rc; round++) {
        double t0 = now();
        rc = bert_embed(m, (const char *const *)texts, lens, n, 0, out, err, sizeof(err));
        double dt = now() - t0;
        if (dt < t)
            t = dt;
    }
    if (rc)
        fprintf(stderr, "bert_embed: %s\n", err);
    else {
        double gf = flops((double)tokens) * (double)n / t / 1e9;
        printf("%4zu tokens: %6zu sentences in %.2f s (best of 3): %8.1f sentences/s, "
               "%6.1f GFLOP/s, %.0f%% of sgemm\n",
               tokens, n, t, (double)n / t, gf, 100.0 * gf / peak);
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    free(out);
    return rc;
}

int main(int argc, char **argv) {
    size_t n32 = argc > 1 ? (size_t)atol(argv[1]) : 512;
    size_t n128 = argc > 2 ? (size_t)atol(argv[2]) : 128;
    strcpy(dir, "/tmp/sluice_bench_embed_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (write_model()) {
        cleanup();
        return 1;
    }
    bert_model *m = NULL;
    char err[512];
    if (bert_load(dir, &m, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        cleanup();
        return 1;
    }
    cleanup();
    double peak = sgemm_gflops();
    printf("MiniLM-L6 shape (hidden %d, %d layers, %d heads, intermediate %d), "
           "batches of %d, OpenBLAS with %d threads\n",
           H, LAYERS, HEADS, INTER, BERT_BATCH, openblas_get_num_threads());
    printf("cblas_sgemm 1024^3: %.1f GFLOP/s\n", peak);
    int rc = run(m, 32, n32, peak) || run(m, 128, n128, peak);
    bert_free(m);
    return rc ? 1 : 0;
}
