/* bench_train - training throughput of the model library (steps/model)
 * against PyTorch on the same model, batch, sequence length and thread
 * count, beside the machine's cblas_sgemm rate measured in the same run.
 *
 * Each shape's model is made by model_new and written to a temporary
 * folder, which both sides train from: a step is zero_grad, forward,
 * backward, clipping to norm 1 and AdamW. The peer is
 * tests/ref/model_ref.py --bench (the reference the tests check sluice
 * against), run by /usr/bin/python3 with torch. Each side's fastest of
 * STEPS steps after one warm-up is taken: the machine may be shared. FLOPs
 * are 3 x the forward's matrix products (every projection, the head, and
 * attention's QK^T and PV over the full T x T), so the fraction of the
 * sgemm rate says how much of the machine the step uses.
 *
 * Then generation: 64 tokens one at a time on the KV cache (model_decode),
 * against the bound of reading every weight once per token at the
 * machine's read bandwidth (measured here, one thread summing 512 MiB).
 *
 *     bench_train [steps] [threads] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "sgemm_rate.h"

#define PYTHON "/usr/bin/python3"

typedef struct shape {
    const char *name, *type;
    int d, layers, heads, vocab, context, B, T;
} shape;

static const shape shapes[] = {
    {"gpt2-small (124M)", "gpt2", 768, 12, 12, 50257, 1024, 4, 64},
    {"small gpt2 (d256 L4)", "gpt2", 256, 4, 4, 4096, 256, 8, 128},
    {"small llama (d256 L4 gqa)", "llama", 256, 4, 4, 4096, 256, 8, 128},
};

/* The forward's matrix-product FLOPs of one batch. */
static double forward_flops(const model_config *c, int B, int T) {
    double BT = (double)B * T, C = c->d_model, hd = c->head_dim, H = c->n_heads;
    double KV = c->n_kv_heads, F = c->d_ff;
    double proj = c->arch == MODEL_GPT2 ? C * 3 * C + C * C + 2 * C * F
                                        : C * (H + 2 * KV) * hd + H * hd * C + 3 * C * F;
    double per_layer = 2 * BT * proj + 2 * 2 * B * H * (double)T * T * hd;
    return c->n_layers * per_layer + 2 * BT * C * c->vocab;
}

/* GB/s of reading memory: the best of 3 passes over 512 MiB. */
static double read_bandwidth(void) {
    size_t n = (size_t)512 << 20 >> 3;
    uint64_t *a = malloc(n * sizeof(uint64_t));
    if (!a)
        exit(1);
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        uint64_t x = 0;
        for (size_t i = 0; i < n; i++)
            x ^= a[i];
        sink ^= x;
        double t = now() - t0;
        best = t < best ? t : best;
    }
    (void)sink;
    free(a);
    return (double)n * sizeof(uint64_t) / best / 1e9;
}

/* Tokens per second of greedy decoding of len tokens. */
static double decode_rate(model *m, int len) {
    char err[512];
    const float *z;
    int V = model_get_config(m)->vocab;
    if (model_decode_reset(m, len, err, sizeof(err)) < 0)
        return 0;
    int32_t tok = 1;
    double t0 = now();
    for (int i = 0; i < len; i++) {
        if (model_decode(m, tok, &z, err, sizeof(err)) < 0)
            return 0;
        int best = 0;
        for (int j = 1; j < V; j++)
            best = z[j] > z[best] ? j : best;
        tok = best;
    }
    return len / (now() - t0);
}

static void fail(const char *what, const char *err) {
    fprintf(stderr, "bench_train: %s: %s\n", what, err);
    exit(1);
}

/* Seconds of the fastest of steps training steps after a warm-up one. */
static double best_step(model *m, const shape *sh, const int32_t *tok, const int32_t *tgt,
                        int steps) {
    char err[1024];
    model_adamw opt = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};
    double best = 1e30;
    for (int k = 0; k <= steps; k++) {
        float loss;
        double t0 = now();
        model_zero_grad(m);
        if (model_forward(m, tok, tgt, NULL, sh->B, sh->T, &loss, err, sizeof(err)) < 0 ||
            model_backward(m, 1.0f, err, sizeof(err)) < 0)
            fail(sh->name, err);
        model_clip_grad(m, 1.0f);
        if (model_adamw_step(m, &opt, err, sizeof(err)) < 0)
            fail(sh->name, err);
        double t = now() - t0;
        if (k > 0 && t < best)
            best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 3;
    int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (steps < 1 || threads < 1)
        fail("usage", "bench_train [steps] [threads]");
    openblas_set_num_threads(threads);
    int peer = access(PYTHON, X_OK) == 0 && system(PYTHON " -c 'import torch' 2>/dev/null") == 0;
    double peak = sgemm_gflops();
    printf("bench_train: cblas_sgemm 1024^3 on %d threads: %.1f GFLOP/s\n", threads, peak);
    printf("%-27s %5s %12s %12s %7s %9s %8s\n", "model", "BxT", "sluice tok/s", "torch tok/s",
           "ratio", "GFLOP/s", "of sgemm");
    double bw = read_bandwidth();
    char err[1024];
    double gen[8] = {0}, bound[8] = {0}, lora_t[8] = {0}, full_t[8] = {0};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const shape *sh = &shapes[s];
        model_config c;
        int kv = strcmp(sh->type, "gpt2") ? sh->heads / 2 : 0;
        if (model_config_init(&c, sh->type, sh->d, sh->layers, sh->heads, kv, 0, sh->context,
                              sh->vocab, err, sizeof(err)) < 0)
            fail(sh->name, err);
        model *m = NULL;
        if (model_new(&c, 1, &m, err, sizeof(err)) < 0)
            fail(sh->name, err);
        char dir[] = "/tmp/sluice-bench-train-XXXXXX";
        if (!mkdtemp(dir) || model_save(m, dir, err, sizeof(err)) < 0)
            fail(sh->name, err);
        int BT = sh->B * sh->T;
        int32_t *tok = malloc((size_t)BT * sizeof(int32_t)), *tgt = malloc((size_t)BT * 4);
        if (!tok || !tgt)
            fail(sh->name, "out of memory");
        uint64_t r = 12345;
        for (int i = 0; i < BT; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            tok[i] = (int32_t)((r >> 33) % (uint64_t)sh->vocab);
            tgt[i] = (int32_t)((r >> 13) % (uint64_t)sh->vocab);
        }
        double best = best_step(m, sh, tok, tgt, steps);
        double torch_t = 0;
        if (peer) {
            char cmd[512];
            snprintf(cmd, sizeof(cmd),
                     PYTHON " " SLUICE_SOURCE_DIR "/tests/ref/model_ref.py --bench %s %d %d %d %d",
                     dir, sh->B, sh->T, steps, threads);
            FILE *p = popen(cmd, "r");
            if (!p || fscanf(p, "%lf", &torch_t) != 1 || pclose(p) != 0)
                fail(sh->name, "the PyTorch peer failed");
        }
        double gflops = 3 * forward_flops(&c, sh->B, sh->T) / best / 1e9;
        char ratio[16] = "-", ttoks[16] = "-";
        if (torch_t > 0) {
            snprintf(ratio, sizeof(ratio), "%.2fx", torch_t / best);
            snprintf(ttoks, sizeof(ttoks), "%.0f", BT / torch_t);
        }
        printf("%-27s %2dx%-3d %12.0f %12s %7s %9.1f %7.0f%%\n", sh->name, sh->B, sh->T, BT / best,
               ttoks, ratio, gflops, 100 * gflops / peak);
        fflush(stdout);
        gen[s] = decode_rate(m, 64);
        bound[s] = bw * 1e9 / ((double)model_param_count(m) * sizeof(float));
        /* the same step with LoRA (r 8, alpha 16) on every projection */
        static const char *const gt[] = {"c_attn", "c_proj", "c_fc"};
        static const char *const lt[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                         "gate_proj", "up_proj", "down_proj"};
        int gpt2 = c.arch == MODEL_GPT2;
        if (model_lora_add(m, 8, 16.0f, gpt2 ? gt : lt, gpt2 ? 3 : 7, 1, err, sizeof(err)) < 0)
            fail(sh->name, err);
        lora_t[s] = best_step(m, sh, tok, tgt, steps);
        full_t[s] = best;
        char rm[128];
        snprintf(rm, sizeof(rm), "rm -rf %s", dir);
        if (system(rm) != 0)
            fail(sh->name, "cannot remove the temporary folder");
        free(tok);
        free(tgt);
        model_free(m);
    }
    printf("generation (KV cache, 64 tokens) against reading every weight once per token at "
           "%.1f GB/s:\n",
           bw);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        printf("%-27s %9.1f tok/s  bound %9.1f tok/s  %5.0f%%\n", shapes[s].name, gen[s], bound[s],
               100 * gen[s] / bound[s]);
    printf("LoRA step (r 8 on every projection, base frozen) against a full step:\n");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        printf("%-27s full %8.1f ms  lora %8.1f ms  lora/full %.2f\n", shapes[s].name,
               1e3 * full_t[s], 1e3 * lora_t[s], lora_t[s] / full_t[s]);
    return 0;
}
