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
 * Then LoRA (r 8 on every projection) against a full step on the same
 * model, each split into forward, backward and optimizer (clipping and
 * AdamW), beside the floor of the ratio from the FLOPs: a full step does
 * three products per weight (forward, input gradient, weight gradient), a
 * LoRA step the forward and the input gradients only (none below layer
 * 0's lowest adapter) plus the adapters' small products, so the ratio of
 * the matrix-product FLOPs is what LoRA could reach if nothing else took
 * time. And the peak memory (VmHWM) and address space (VmPeak) of a full
 * and a LoRA step of a 40M-parameter Llama, each in a process of its own
 * (this program run as `bench_train memory full|lora`), beside
 * model_train_estimate.
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
    int lora_only; /* no PyTorch peer nor generation: for the LoRA table */
} shape;

static const shape shapes[] = {
    {"gpt2-small (124M)", "gpt2", 768, 12, 12, 50257, 1024, 4, 64, 0},
    {"small gpt2 (d256 L4)", "gpt2", 256, 4, 4, 4096, 256, 8, 128, 0},
    {"small llama (d256 L4 gqa)", "llama", 256, 4, 4, 4096, 256, 8, 128, 0},
    {"training.yaml gpt2 (d128 L4)", "gpt2", 128, 4, 4, 1024, 256, 4, 128, 1},
    {"wide gpt2 (d768 L2 V8192)", "gpt2", 768, 2, 12, 8192, 256, 4, 64, 1},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* The forward's matrix-product FLOPs of one batch. */
static double forward_flops(const model_config *c, int B, int T) {
    double BT = (double)B * T, C = c->d_model, hd = c->head_dim, H = c->n_heads;
    double KV = c->n_kv_heads, F = c->d_ff;
    double proj = c->arch == MODEL_GPT2 ? C * 3 * C + C * C + 2 * C * F
                                        : C * (H + 2 * KV) * hd + H * hd * C + 3 * C * F;
    double per_layer = 2 * BT * proj + 2 * 2 * B * H * (double)T * T * hd;
    return c->n_layers * per_layer + 2 * BT * C * c->vocab;
}

/* The matrix-product FLOPs of a LoRA step (r on every projection): the
 * forward, the input gradients (attention's backward is twice its
 * forward; layer 0's q, k, v projections have none, as nothing below them
 * trains) and the adapters' products (forward: x A^T, then its B^T;
 * backward: x A^T again, dB, dh, dA and dx). */
static double lora_flops(const model_config *c, int B, int T, int r) {
    double BT = (double)B * T, C = c->d_model, hd = c->head_dim, H = c->n_heads;
    double KV = c->n_kv_heads, F = c->d_ff, L = c->n_layers;
    double qkv = c->arch == MODEL_GPT2 ? C * 3 * C : C * (H + 2 * KV) * hd;
    double proj = c->arch == MODEL_GPT2 ? qkv + C * C + 2 * C * F : qkv + H * hd * C + 3 * C * F;
    double attn = 2 * 2 * B * H * (double)T * T * hd;
    double head = 2 * BT * C * c->vocab;
    /* the sum of (in + out) over the adapted layers of one block */
    double io = c->arch == MODEL_GPT2
                    ? (C + 3 * C) + (C + C) + (C + F) + (F + C)
                    : (C + H * hd) + 2 * (C + KV * hd) + (H * hd + C) + 2 * (C + F) + (F + C);
    double in = c->arch == MODEL_GPT2 ? 3 * C + F : 5 * C + H * hd + F;
    double adapters = L * 2 * BT * r * (io + (2 * io + in));
    return L * (2 * 2 * BT * proj + 3 * attn) - 2 * BT * qkv + 2 * head + adapters;
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

/* Seconds of the fastest of steps training steps after a warm-up one,
 * and of its parts: [0] the whole, [1] zero_grad and forward, [2] backward,
 * [3] clipping and AdamW. */
typedef struct step_time {
    double t[4];
} step_time;

static step_time best_step(model *m, const shape *sh, const int32_t *tok, const int32_t *tgt,
                           int steps) {
    char err[1024];
    model_adamw opt = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};
    step_time best = {{1e30, 0, 0, 0}};
    for (int k = 0; k <= steps; k++) {
        float loss;
        double t0 = now();
        model_zero_grad(m);
        if (model_forward(m, tok, tgt, NULL, sh->B, sh->T, &loss, err, sizeof(err)) < 0)
            fail(sh->name, err);
        double t1 = now();
        if (model_backward(m, 1.0f, err, sizeof(err)) < 0)
            fail(sh->name, err);
        double t2 = now();
        model_clip_grad(m, 1.0f);
        if (model_adamw_step(m, &opt, err, sizeof(err)) < 0)
            fail(sh->name, err);
        double t3 = now();
        if (k > 0 && t3 - t0 < best.t[0])
            best = (step_time){{t3 - t0, t1 - t0, t2 - t1, t3 - t2}};
    }
    return best;
}

/* One of VmHWM, VmPeak in /proc/self/status, in KiB. */
static long status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = atol(line + n + 1);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

/* bench_train memory full|lora: one process's peak for training a Llama of
 * 40M parameters (d_model 512, 8 layers, GQA 8/4 heads, vocab 32000) on
 * 4 x 128 tokens, printed as "VmHWM VmPeak estimate (MiB) step (s)". */
static int memory_child(const char *method, int steps) {
    static const shape sh = {"llama 40M (d512 L8)", "llama", 512, 8, 8, 32000, 256, 4, 128, 1};
    char err[1024];
    model_config c;
    model *m = NULL;
    if (model_config_init(&c, sh.type, sh.d, sh.layers, sh.heads, sh.heads / 2, 0, sh.context,
                          sh.vocab, err, sizeof(err)) < 0 ||
        model_new(&c, 1, &m, err, sizeof(err)) < 0)
        fail(sh.name, err);
    if (!strcmp(method, "lora")) {
        const char *const *all = model_lora_modules(m);
        int n = 0;
        while (all[n])
            n++;
        if (model_lora_add(m, 8, 16.0f, all, n, 1, err, sizeof(err)) < 0)
            fail(sh.name, err);
    }
    int BT = sh.B * sh.T;
    int32_t *tok = malloc((size_t)BT * sizeof(int32_t)), *tgt = malloc((size_t)BT * 4);
    if (!tok || !tgt)
        fail(sh.name, "out of memory");
    for (int i = 0; i < BT; i++)
        tok[i] = (i * 7919) % sh.vocab, tgt[i] = (i * 104729 + 1) % sh.vocab;
    step_time st = best_step(m, &sh, tok, tgt, steps);
    size_t est;
    if (model_train_estimate(m, sh.B, sh.T, &est, err, sizeof(err)) < 0)
        fail(sh.name, err);
    printf("%.0f %.0f %.0f %.3f\n", status_kib("VmHWM") / 1024.0, status_kib("VmPeak") / 1024.0,
           (double)est / (1 << 20), st.t[0]);
    free(tok);
    free(tgt);
    model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "memory"))
        return memory_child(argv[2], 2);
    int steps = argc > 1 ? atoi(argv[1]) : 3;
    int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (steps < 1 || threads < 1)
        fail("usage", "bench_train [steps] [threads]");
    openblas_set_num_threads(threads);
    int peer = access(PYTHON, X_OK) == 0 && system(PYTHON " -c 'import torch' 2>/dev/null") == 0;
    double peak = sgemm_gflops();
    printf("bench_train: cblas_sgemm 1024^3 on %d threads: %.1f GFLOP/s\n", threads, peak);
    printf("%-28s %5s %12s %12s %7s %9s %8s\n", "model", "BxT", "sluice tok/s", "torch tok/s",
           "ratio", "GFLOP/s", "of sgemm");
    double bw = read_bandwidth();
    char err[1024];
    double gen[N_SHAPES] = {0}, bound[N_SHAPES] = {0}, floor_r[N_SHAPES] = {0};
    step_time lora_t[N_SHAPES], full_t[N_SHAPES];
    for (size_t s = 0; s < N_SHAPES; s++) {
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
        full_t[s] = best_step(m, sh, tok, tgt, steps);
        double best = full_t[s].t[0];
        double torch_t = 0;
        if (peer && !sh->lora_only) {
            char cmd[512];
            snprintf(cmd, sizeof(cmd),
                     PYTHON " " SLUICE_SOURCE_DIR "/tests/ref/model_ref.py --bench %s %d %d %d %d",
                     dir, sh->B, sh->T, steps, threads);
            FILE *p = popen(cmd, "r");
            if (!p || fscanf(p, "%lf", &torch_t) != 1 || pclose(p) != 0)
                fail(sh->name, "the PyTorch peer failed");
        }
        double full_flops = 3 * forward_flops(&c, sh->B, sh->T);
        double gflops = full_flops / best / 1e9;
        char ratio[16] = "-", ttoks[16] = "-";
        if (torch_t > 0) {
            snprintf(ratio, sizeof(ratio), "%.2fx", torch_t / best);
            snprintf(ttoks, sizeof(ttoks), "%.0f", BT / torch_t);
        }
        printf("%-28s %2dx%-3d %12.0f %12s %7s %9.1f %7.0f%%\n", sh->name, sh->B, sh->T, BT / best,
               ttoks, ratio, gflops, 100 * gflops / peak);
        fflush(stdout);
        if (!sh->lora_only) {
            gen[s] = decode_rate(m, 64);
            bound[s] = bw * 1e9 / ((double)model_param_count(m) * sizeof(float));
        }
        /* the same step with LoRA (r 8, alpha 16) on every projection */
        const char *const *all = model_lora_modules(m);
        int n = 0;
        while (all[n])
            n++;
        if (model_lora_add(m, 8, 16.0f, all, n, 1, err, sizeof(err)) < 0)
            fail(sh->name, err);
        lora_t[s] = best_step(m, sh, tok, tgt, steps);
        floor_r[s] = lora_flops(&c, sh->B, sh->T, 8) / full_flops;
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
    for (size_t s = 0; s < N_SHAPES; s++)
        if (!shapes[s].lora_only)
            printf("%-28s %9.1f tok/s  bound %9.1f tok/s  %5.0f%%\n", shapes[s].name, gen[s],
                   bound[s], 100 * gen[s] / bound[s]);
    printf("LoRA step (r 8 on every projection, base frozen) against a full step, ms as "
           "forward + backward + optimizer;\nfloor: the ratio of their matrix-product FLOPs\n");
    for (size_t s = 0; s < N_SHAPES; s++) {
        const double *f = full_t[s].t, *l = lora_t[s].t;
        printf("%-28s full %7.1f (%.1f + %.1f + %.1f)  lora %7.1f (%.1f + %.1f + %.1f)  "
               "lora/full %.2f  floor %.2f\n",
               shapes[s].name, 1e3 * f[0], 1e3 * f[1], 1e3 * f[2], 1e3 * f[3], 1e3 * l[0],
               1e3 * l[1], 1e3 * l[2], 1e3 * l[3], l[0] / f[0], floor_r[s]);
    }
    /* peak memory: each method in a process of its own, ru_maxrss being a
     * high-water mark */
    printf("memory of a training step, Llama of 40M parameters (d512 L8, vocab 32000), 4 x 128, "
           "MiB:\n");
    for (int k = 0; k < 2; k++) {
        const char *method = k ? "lora" : "full";
        char cmd[4200], self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (len < 0)
            fail("memory", "cannot find this program");
        self[len] = '\0';
        snprintf(cmd, sizeof(cmd), "'%s' memory %s", self, method);
        double hwm, vpeak, est, t;
        FILE *p = popen(cmd, "r");
        if (!p || fscanf(p, "%lf %lf %lf %lf", &hwm, &vpeak, &est, &t) != 4 || pclose(p) != 0)
            fail("memory", cmd);
        printf(
            "%-5s peak RSS (VmHWM) %6.0f  VmPeak %6.0f  model_train_estimate %6.0f  step %.2f s\n",
            method, hwm, vpeak, est, t);
    }
    return 0;
}
