/* train - the LLM twin's training steps (docs/training.md):
 *
 *   train_tokenizer  a byte-level BPE tokenizer.json trained on chunks or
 *                    documents (steps/tokenizer);
 *   train            pretrain | sft | lora | dpo a GPT-2 or Llama decoder
 *                    (steps/model) on a dataset (steps/train), from scratch
 *                    or from a Hugging Face folder, into a Hugging Face
 *                    folder.
 *
 * Checkpoints: a train step's checkpoints live under the store, in
 * STORE/checkpoints/train/KEY, KEY a hash of the step's parameters and of
 * its input paths (store objects, named by their content). A run killed
 * mid-training and resumed (`sluice resume`) runs the step again with the
 * same inputs and parameters, so it finds them and continues from the
 * newest; the folder is removed once the model is written. The work folder
 * of an attempt is not used for them: a resumed run gets new ones. */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <cblas.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "batcher.h"
#include "dataset.h"
#include "dpo.h"
#include "examples.h"
#include "lr_schedule.h"
#include "model.h"
#include "model_folder.h"
#include "tokenizer.h"
#include "step_output.h"
#include "train_ckpt.h"

#define ERR 1024

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(path);
}

static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
say(char *err, size_t err_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static int copy_file(const char *from, const char *to, char *err, size_t err_size) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    int rc = 0;
    if (!in || !out) {
        rc = -errno;
        say(err, err_size, "cannot copy %s to %s: %s", from, to, strerror(errno));
    } else {
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            if (fwrite(buf, 1, n, out) != n) {
                rc = -EIO;
                say(err, err_size, "cannot write %s", to);
                break;
            }
    }
    if (in)
        fclose(in);
    if (out && fclose(out) != 0 && rc == 0) {
        rc = -EIO;
        say(err, err_size, "cannot write %s", to);
    }
    return rc;
}

/* ---- train_tokenizer ------------------------------------------------------ */

static int run_tokenizer(sl_ctx *ctx) {
    const char *in = sl_input_path(ctx, "chunks");
    int64_t vocab = sl_param_int(ctx, "vocab_size"), min_freq = sl_param_int(ctx, "min_frequency");
    size_t n_special = sl_param_list_len(ctx, "special_tokens");
    if (vocab < 257 || vocab > 1 << 20)
        return sl_fail(ctx, "vocab_size is %lld: it must be from 257 to 1048576", (long long)vocab);
    if (n_special > 256)
        return sl_fail(ctx, "special_tokens: %zu of them, at most 256", n_special);
    const char *specials[256];
    for (size_t i = 0; i < n_special; i++)
        specials[i] = sl_param_list_item(ctx, "special_tokens", i);
    char err[ERR];
    dataset *d = NULL;
    if (dataset_load(in, DATASET_TEXT, "train", &d, err, sizeof(err)) != 0)
        return sl_fail(ctx, "input 'chunks': %s", err);
    tok_trainer *tr = NULL;
    int rc = SL_OK;
    if (tok_trainer_new((size_t)vocab, specials, n_special, (uint64_t)(min_freq > 0 ? min_freq : 0),
                        &tr, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "%s", err);
    for (size_t i = 0; rc == SL_OK && i < d->n; i++) {
        if (sl_cancelled(ctx))
            rc = SL_ECANCELLED;
        else if (tok_trainer_feed(tr, d->ex[i].a, strlen(d->ex[i].a), err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "input 'chunks' record %zu: %s", i + 1, err);
    }
    const char *out;
    char path[4200];
    if (rc == SL_OK)
        rc = step_output_folder(ctx, "tokenizer", &out);
    if (rc == SL_OK) {
        snprintf(path, sizeof(path), "%s/tokenizer.json", out);
        if (tok_trainer_save(tr, path, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "%s", err);
    }
    tok_tokenizer *t = NULL;
    if (rc == SL_OK && tok_load(path, &t, err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "the tokenizer written does not load back: %s", err);
    if (rc == SL_OK) {
        sl_log(ctx, SL_LOG_INFO, "tokenizer: %zu tokens from %zu texts", tok_vocab_size(t), d->n);
        sl_metric(ctx, "vocab_size", (double)tok_vocab_size(t), -1);
        sl_metric(ctx, "texts", (double)d->n, -1);
    }
    tok_free(t);
    tok_trainer_free(tr);
    dataset_free(d);
    return rc;
}

/* ---- train: settings ------------------------------------------------------ */

typedef enum method { M_PRETRAIN, M_SFT, M_LORA, M_DPO } method;

typedef struct settings {
    method method;
    const char *method_name;
    int64_t epochs, batch_size, grad_accum, warmup_steps, max_seq_len, seed, checkpoint_every;
    int64_t threads, max_steps, eval_every, keep_checkpoints;
    double learning_rate, weight_decay, beta, max_grad_norm, max_memory_mb;
    lr_kind schedule;
    int packing;
    /* lora */
    int64_t lora_r;
    double lora_alpha, lora_dropout;
    int merge;
    /* from scratch */
    const char *arch_type;
    int64_t d_model, n_layers, n_heads, n_kv_heads, d_ff, context, vocab;
} settings;

/* An integer parameter within [lo, hi]. */
static int int_param(sl_ctx *ctx, const char *name, int64_t lo, int64_t hi, int64_t *out) {
    *out = sl_param_int(ctx, name);
    if (*out < lo || *out > hi)
        return sl_fail(ctx, "%s is %lld: it must be from %lld to %lld", name, (long long)*out,
                       (long long)lo, (long long)hi);
    return SL_OK;
}

static int read_settings(sl_ctx *ctx, settings *s) {
    memset(s, 0, sizeof(*s));
    const char *m = sl_param_str(ctx, "method");
    s->method_name = m ? m : "";
    if (m && strcmp(m, "pretrain") == 0)
        s->method = M_PRETRAIN;
    else if (m && strcmp(m, "sft") == 0)
        s->method = M_SFT;
    else if (m && strcmp(m, "dpo") == 0)
        s->method = M_DPO;
    else if (m && strcmp(m, "lora") == 0)
        s->method = M_LORA;
    else
        return sl_fail(ctx, "method '%s': use pretrain, sft, lora or dpo", m ? m : "");
    int rc;
    if ((rc = int_param(ctx, "epochs", 1, 100000, &s->epochs)) ||
        (rc = int_param(ctx, "batch_size", 1, 4096, &s->batch_size)) ||
        (rc = int_param(ctx, "grad_accum", 1, 4096, &s->grad_accum)) ||
        (rc = int_param(ctx, "warmup_steps", 0, INT32_MAX, &s->warmup_steps)) ||
        (rc = int_param(ctx, "max_seq_len", 2, 1 << 20, &s->max_seq_len)) ||
        (rc = int_param(ctx, "checkpoint_every", 0, INT32_MAX, &s->checkpoint_every)) ||
        (rc = int_param(ctx, "keep_checkpoints", 1, 1000, &s->keep_checkpoints)) ||
        (rc = int_param(ctx, "threads", 1, 256, &s->threads)) ||
        (rc = int_param(ctx, "max_steps", 0, INT32_MAX, &s->max_steps)) ||
        (rc = int_param(ctx, "eval_every", 0, INT32_MAX, &s->eval_every)) ||
        (rc = int_param(ctx, "r", 1, 4096, &s->lora_r)))
        return rc;
    s->lora_alpha = sl_param_f64(ctx, "alpha");
    s->lora_dropout = sl_param_f64(ctx, "dropout");
    s->merge = sl_param_bool(ctx, "merge");
    if (!(s->lora_alpha > 0) || !isfinite(s->lora_alpha))
        return sl_fail(ctx, "alpha is %g: it must be positive", s->lora_alpha);
    if (!(s->lora_dropout >= 0 && s->lora_dropout < 1))
        return sl_fail(ctx, "dropout is %g: it must be from 0 to below 1", s->lora_dropout);
    s->seed = sl_param_int(ctx, "seed");
    s->learning_rate = sl_param_f64(ctx, "learning_rate");
    s->weight_decay = sl_param_f64(ctx, "weight_decay");
    s->beta = sl_param_f64(ctx, "beta");
    s->max_grad_norm = sl_param_f64(ctx, "max_grad_norm");
    s->max_memory_mb = sl_param_f64(ctx, "max_memory_mb");
    if (!(s->learning_rate > 0) || !isfinite(s->learning_rate))
        return sl_fail(ctx, "learning_rate is %g: it must be positive", s->learning_rate);
    if (!(s->weight_decay >= 0) || !(s->beta > 0) || !(s->max_grad_norm >= 0))
        return sl_fail(ctx, "weight_decay and max_grad_norm must be >= 0, beta > 0");
    const char *sched = sl_param_str(ctx, "schedule");
    if (lr_kind_parse(sched ? sched : "", &s->schedule) != 0)
        return sl_fail(ctx, "schedule '%s': use cosine, linear or constant", sched ? sched : "");
    s->packing = sl_param_bool(ctx, "packing") && s->method != M_DPO;
    s->arch_type = sl_param_str(ctx, "type");
    if (!s->arch_type)
        s->arch_type = "gpt2";
    s->d_model = sl_param_int(ctx, "d_model");
    s->n_layers = sl_param_int(ctx, "n_layers");
    s->n_heads = sl_param_int(ctx, "n_heads");
    s->n_kv_heads = sl_param_int(ctx, "n_kv_heads");
    s->d_ff = sl_param_int(ctx, "d_ff");
    s->context = sl_param_int(ctx, "context");
    s->vocab = sl_param_int(ctx, "vocab");
    return SL_OK;
}

/* ---- checkpoints ---------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s) {
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* a separator: "ab","c" != "a","bc" */
}

static const char *const key_params[] = {
    "method",           "base_model",  "type",          "d_model",       "n_layers",
    "n_heads",          "n_kv_heads",  "d_ff",          "context",       "vocab",
    "epochs",           "batch_size",  "grad_accum",    "learning_rate", "warmup_steps",
    "weight_decay",     "max_seq_len", "schedule",      "seed",          "threads",
    "max_steps",        "beta",        "max_grad_norm", "packing",       "eval_every",
    "checkpoint_every", NULL};
static const char *const lora_key_params[] = {"r",     "alpha", "dropout", "target_modules",
                                              "merge", NULL};

/* STORE/checkpoints/train/KEY: the same for a run resumed with the same
 * inputs and parameters. merge does not change training but is part of the
 * key, so that two lora steps differing only in it, run at once, do not
 * share (and remove) one folder. */
static int checkpoint_root(sl_ctx *ctx, int lora, char *out, size_t size) {
    const char *store = sl_store_dir(ctx);
    if (!store)
        return sl_fail(ctx, "this sluice gives no store folder (ABI 1.1) for checkpoints");
    uint64_t h = 0xcbf29ce484222325ULL;
    /* lora's only for lora: the other methods' keys stay what they were */
    const char *const *lists[] = {key_params, lora ? lora_key_params : NULL};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; lists[k] && lists[k][i]; i++) {
            h = fnv(h, lists[k][i]);
            h = fnv(h, sl_param_json(ctx, lists[k][i]));
        }
    static const char *const ports[] = {"dataset", "model", "tokenizer"};
    for (size_t i = 0; i < 3; i++)
        h = fnv(fnv(h, ports[i]), sl_input_path(ctx, ports[i]));
    /* only when connected: the other steps' keys stay what they were */
    const char *reference = sl_input_path(ctx, "reference");
    if (reference)
        h = fnv(fnv(h, "reference"), reference);
    snprintf(out, size, "%s/checkpoints/train/%016llx", store, (unsigned long long)h);
    return SL_OK;
}

/* A checkpoint holds the whole model, or with LoRA (lora_base, the base's
 * folder, not NULL) only the adapters in PEFT's files: the base is frozen
 * and read again from its folder on resume. */
static int save_checkpoint(sl_ctx *ctx, const char *root, model *m, const char *lora_base,
                           const ckpt_state *st, size_t keep) {
    char err[ERR], path[4200];
    ckpt_writer *w = NULL;
    if (ckpt_writer_begin(root, st->step, &w, err, sizeof(err)) != 0)
        return sl_fail(ctx, "checkpoint %llu: %s", (unsigned long long)st->step, err);
    snprintf(path, sizeof(path), "%s/adamw.safetensors", ckpt_writer_dir(w));
    if ((lora_base ? model_lora_save(m, ckpt_writer_dir(w), lora_base, err, sizeof(err))
                   : model_save(m, ckpt_writer_dir(w), err, sizeof(err))) != 0 ||
        model_save_optimizer(m, path, err, sizeof(err)) != 0) {
        ckpt_writer_abort(w);
        return sl_fail(ctx, "checkpoint %llu: %s", (unsigned long long)st->step, err);
    }
    if (ckpt_writer_commit(w, st, err, sizeof(err)) != 0 ||
        ckpt_prune(root, keep, err, sizeof(err)) != 0)
        return sl_fail(ctx, "checkpoint %llu: %s", (unsigned long long)st->step, err);
    sl_log(ctx, SL_LOG_INFO, "checkpoint at step %llu", (unsigned long long)st->step);
    return SL_OK;
}

/* ---- DPO: the reference's log-probabilities ------------------------------ */

/* rows of the last forward: sums[r] = sum of log p over row r's targets. */
static void row_logps(const model *m, const int32_t *targets, size_t rows, size_t T, double *sums) {
    const float *lp = model_logprobs(m);
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        for (size_t t = 0; t < T; t++)
            if (targets[r * T + t] >= 0)
                s += lp[r * T + t];
        sums[r] = s;
    }
}

/* The loss targets of a sequence: its response tokens (token 0 is never
 * predicted). */
static size_t seq_targets(const train_seq *q) {
    size_t n = 0;
    for (size_t t = 1; t < q->len; t++)
        n += q->mask[t] != 0;
    return n;
}

/* Writes the reference artifact (docs/training.md): one JSON line per pair
 * of ex, in order, {"index", "chosen", "rejected", "chosen_tokens",
 * "rejected_tokens"}, the sums with 17 significant digits so that they read
 * back as the same doubles. Written as path.tmp then renamed: a reader never
 * sees half a file. */
static int reference_write(const char *path, const train_examples *ex, const double *ref, char *err,
                           size_t err_size) {
    char tmp[4400];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        say(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        return -EIO;
    }
    for (size_t i = 0; i < ex->n; i++) {
        if (!isfinite(ref[2 * i]) || !isfinite(ref[2 * i + 1])) {
            fclose(f);
            remove(tmp);
            say(err, err_size,
                "pair %zu (dataset record %zu): the reference model's "
                "log-probability is not finite",
                i + 1, ex->source[i] + 1);
            return -EINVAL;
        }
        fprintf(f,
                "{\"index\": %zu, \"chosen\": %.17g, \"rejected\": %.17g, \"chosen_tokens\": "
                "%zu, \"rejected_tokens\": %zu}\n",
                ex->source[i], ref[2 * i], ref[2 * i + 1], seq_targets(&ex->seq[2 * i]),
                seq_targets(&ex->seq[2 * i + 1]));
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        say(err, err_size, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
        remove(tmp);
        return -EIO;
    }
    return 0;
}

/* A whole number field of a reference row into *out, or -1 naming it. */
static int row_count(const bson_t *row, const char *key, int64_t *out) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, row, key) ||
        !(BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it)) || bson_iter_as_int64(&it) < 0)
        return -1;
    *out = bson_iter_as_int64(&it);
    return 0;
}

/* A finite number field of a reference row into *out (an integer reads as
 * one: %.17g writes -12 for -12.0), or -1. */
static int row_number(const bson_t *row, const char *key, double *out) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, row, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        return -1;
    *out = bson_iter_as_double(&it);
    return isfinite(*out) ? 0 : -1;
}

/* Checks one row (line `line` of path) against pair i of ex, and stores its
 * sums in ref[2i], ref[2i + 1]. */
static int reference_row(const char *path, size_t line, const bson_t *row, const train_examples *ex,
                         size_t i, double *ref, char *err, size_t err_size) {
    static const char *const counts[] = {"index", "chosen_tokens", "rejected_tokens"};
    int64_t v[3];
    for (size_t k = 0; k < 3; k++)
        if (row_count(row, counts[k], &v[k]) != 0) {
            say(err, err_size, "%s line %zu: '%s' is missing or not a whole number >= 0", path,
                line, counts[k]);
            return -EINVAL;
        }
    if (row_number(row, "chosen", &ref[2 * i]) != 0 ||
        row_number(row, "rejected", &ref[2 * i + 1]) != 0) {
        say(err, err_size, "%s line %zu: 'chosen' and 'rejected' must be finite numbers", path,
            line);
        return -EINVAL;
    }
    size_t want[3] = {ex->source[i], seq_targets(&ex->seq[2 * i]),
                      seq_targets(&ex->seq[2 * i + 1])};
    for (size_t k = 0; k < 3; k++)
        if ((uint64_t)v[k] != want[k]) {
            say(err, err_size,
                "%s line %zu: '%s' is %lld where pair %zu of the dataset has %zu (was it "
                "computed for another dataset, tokenizer or max_seq_len?)",
                path, line, counts[k], (long long)v[k], i + 1, want[k]);
            return -EINVAL;
        }
    return 0;
}

/* Reads a reference artifact written by reference_write for the pairs of
 * ex into ref (2 per pair): as many rows as pairs, in order, each well
 * formed and naming the same pair with the same token counts. Blank lines
 * are skipped; errors name the file and line. */
static int reference_read(const char *path, const train_examples *ex, double *ref, char *err,
                          size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        say(err, err_size, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char *text = NULL;
    size_t cap = 0, line = 0, rows = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&text, &cap, f)) >= 0) {
        line++;
        const char *p = text + strspn(text, " \t\r\n");
        if (!*p)
            continue;
        if (rows == ex->n) {
            say(err, err_size, "%s line %zu: a row past the dataset's %zu pairs", path, line,
                ex->n);
            rc = -EINVAL;
            break;
        }
        bson_t row;
        bson_error_t e;
        if (!bson_init_from_json(&row, p, -1, &e)) {
            say(err, err_size, "%s line %zu: not a JSON object: %s", path, line, e.message);
            rc = -EINVAL;
            break;
        }
        rc = reference_row(path, line, &row, ex, rows, ref, err, err_size);
        bson_destroy(&row);
        rows++;
    }
    if (rc == 0 && ferror(f)) {
        say(err, err_size, "%s: %s", path, strerror(errno));
        rc = -EIO;
    }
    if (rc == 0 && rows != ex->n) {
        say(err, err_size, "%s: %zu rows for the dataset's %zu pairs", path, rows, ex->n);
        rc = -EINVAL;
    }
    free(text);
    fclose(f);
    return rc;
}

/* Runs the reference model (m, the starting model) over the first n pairs
 * of ex: ref[2i], ref[2i + 1] are pair i's summed response
 * log-probabilities, chosen then rejected, exactly as micro_step sums the
 * policy's. */
static int reference_compute(sl_ctx *ctx, model *m, const train_examples *ex, size_t n, size_t T,
                             double *ref) {
    char err[ERR];
    int32_t *ids = calloc(2 * T, sizeof(int32_t)), *targets = calloc(2 * T, sizeof(int32_t));
    int rc = ids && targets ? SL_OK : sl_fail(ctx, "out of memory");
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        if (sl_cancelled(ctx)) {
            rc = SL_ECANCELLED;
            break;
        }
        memset(targets, 0xff, 2 * T * sizeof(int32_t));
        for (size_t s = 0; s < 2; s++) {
            const train_seq *q = &ex->seq[i * 2 + s];
            memset(ids + s * T, 0, T * sizeof(int32_t));
            memcpy(ids + s * T, q->ids, q->len * sizeof(int32_t));
            for (size_t t = 0; t + 1 < q->len; t++)
                if (q->mask[t + 1])
                    targets[s * T + t] = q->ids[t + 1];
        }
        float loss;
        if (model_forward(m, ids, targets, NULL, 2, (int)T, &loss, err, sizeof(err)) != 0)
            rc = sl_fail(ctx, "reference model: %s", err);
        else
            row_logps(m, targets, 2, T, ref + 2 * i);
    }
    free(ids);
    free(targets);
    return rc;
}

/* The reference model's log-probabilities of every pair, into ref (2 per
 * pair), computed at most once per step:
 *   - from input 'reference' when it is connected (another DPO step's
 *     output: one pass shared by steps that differ in beta, say);
 *   - else from root/reference.jsonl, written by this step before its first
 *     training step, so that neither the epochs nor a resumed run compute
 *     them again (once a checkpoint exists the model is no longer the
 *     reference, so the file must be there);
 *   - else computed with the starting model m and written there.
 * Then written to output 'reference' in every case. */
static int reference_logps(sl_ctx *ctx, model *m, const train_examples *ex, size_t T,
                           const char *root, int have_ckpt, double *ref) {
    char path[4300], err[ERR];
    snprintf(path, sizeof(path), "%s/reference.jsonl", root);
    const char *in = sl_input_path(ctx, "reference");
    struct stat st;
    if (in) {
        if (reference_read(in, ex, ref, err, sizeof(err)) != 0)
            return sl_fail(ctx, "input 'reference': %s", err);
        /* The one thing the rows cannot show is the model they came from:
         * pair 1 again with the starting model (1/n of a pass) tells. Not
         * once a checkpoint exists: the model is no longer the reference. */
        if (!have_ckpt) {
            double mine[2];
            int rc = reference_compute(ctx, m, ex, 1, T, mine);
            if (rc != SL_OK)
                return rc;
            for (size_t s = 0; s < 2; s++)
                if (fabs(mine[s] - ref[s]) > 1e-4 * fabs(mine[s]) + 1e-6)
                    return sl_fail(ctx,
                                   "input 'reference': %s: pair 1's %s log-probability is %.9g "
                                   "there, %.9g with this step's starting model: it was "
                                   "computed with another model",
                                   in, s ? "rejected" : "chosen", ref[s], mine[s]);
        }
        sl_log(ctx, SL_LOG_INFO,
               "reference log-probabilities: read for %zu pairs from input 'reference' (%s)%s",
               ex->n, in,
               have_ckpt ? "" : "; pair 1 checked against the starting model, the rest not run");
    } else if (stat(path, &st) == 0) {
        if (reference_read(path, ex, ref, err, sizeof(err)) != 0)
            return sl_fail(ctx, "%s; remove %s to train from the start", err, root);
        sl_log(ctx, SL_LOG_INFO, "reference log-probabilities: read for %zu pairs from %s", ex->n,
               path);
    } else if (have_ckpt) {
        return sl_fail(ctx,
                       "the checkpoints in %s have no reference log-probabilities (%s), and "
                       "the model is no longer the reference; remove %s to train from the start",
                       root, path, root);
    } else {
        int rc = reference_compute(ctx, m, ex, ex->n, T, ref);
        if (rc != SL_OK)
            return rc;
        if (reference_write(path, ex, ref, err, sizeof(err)) != 0)
            return sl_fail(ctx, "reference log-probabilities: %s", err);
        sl_log(ctx, SL_LOG_INFO,
               "reference log-probabilities: computed for %zu pairs, stored in %s", ex->n, path);
    }
    const char *out = sl_output_path(ctx, "reference");
    if (!out)
        return sl_fail(ctx, "no path for output 'reference'");
    if (reference_write(out, ex, ref, err, sizeof(err)) != 0)
        return sl_fail(ctx, "output 'reference': %s", err);
    return SL_OK;
}

/* ---- memory --------------------------------------------------------------- */

static double mem_available_mb(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

/* ---- train ---------------------------------------------------------------- */

typedef struct trainer {
    sl_ctx *ctx;
    settings s;
    tok_tokenizer *tok;
    model *m;
    dataset *data, *test;
    train_examples *ex, *test_ex;
    batcher *b;
    double *ref; /* DPO: 2 per example, the reference's log-probs */
    int32_t *targets;
    float *weights;
    double *row_sum, *pc, *pr, *rc_, *rr, *d_pc, *d_pr;
    char root[4200];
    char tokenizer_path[4200];
    const char *base; /* the folder started from (borrowed from ctx), NULL from scratch */
} trainer;

static void trainer_free(trainer *t) {
    batcher_free(t->b);
    train_examples_free(t->ex);
    train_examples_free(t->test_ex);
    dataset_free(t->data);
    dataset_free(t->test);
    model_free(t->m);
    tok_free(t->tok);
    free(t->ref);
    free(t->targets);
    free(t->weights);
    free(t->row_sum);
    free(t->pc);
}

/* The model to start from: a checkpoint, the input model, base_model, or
 * a fresh one; and the tokenizer next to it. */
static int open_model(trainer *t, const char *ckpt_dir) {
    sl_ctx *ctx = t->ctx;
    char err[ERR];
    const char *in_model = sl_input_path(ctx, "model"), *base = sl_param_str(ctx, "base_model");
    const char *from = in_model ? in_model : (base && *base ? base : NULL);
    t->base = from;
    if (t->s.method == M_LORA && !from)
        return sl_fail(ctx, "method lora adapts a pretrained model and there is none: connect "
                            "input 'model' or give base_model (to train from scratch use "
                            "pretrain, then sft or lora on its output)");
    const char *in_tok = sl_input_path(ctx, "tokenizer");
    if (from)
        snprintf(t->tokenizer_path, sizeof(t->tokenizer_path), "%s/tokenizer.json", from);
    else if (in_tok)
        snprintf(t->tokenizer_path, sizeof(t->tokenizer_path), "%s/tokenizer.json", in_tok);
    else
        return sl_fail(ctx, "no model to start from and no tokenizer: connect input 'model', "
                            "give base_model, or connect input 'tokenizer' (a train_tokenizer "
                            "step) to train from scratch");
    struct stat st;
    if (stat(t->tokenizer_path, &st) != 0 && in_tok && from) /* a model folder without one */
        snprintf(t->tokenizer_path, sizeof(t->tokenizer_path), "%s/tokenizer.json", in_tok);
    if (tok_load(t->tokenizer_path, &t->tok, err, sizeof(err)) != 0)
        return sl_fail(ctx, "tokenizer: %s", err);
    if (ckpt_dir && t->s.method != M_LORA) { /* lora: the adapters come in lora_setup */
        if (model_open(ckpt_dir, &t->m, err, sizeof(err)) != 0)
            return sl_fail(ctx, "checkpoint: %s", err);
        return SL_OK;
    }
    if (from) {
        /* a LoRA output without merge goes on as the model it adapts */
        int lora_r = 0;
        if (model_open_adapted(from, &t->m, &lora_r, err, sizeof(err)) != 0)
            return sl_fail(ctx, "model: %s", err);
        if (lora_r)
            sl_log(ctx, SL_LOG_INFO, "model: the LoRA adapter (r %d) in %s merged into its base",
                   lora_r, from);
        return SL_OK;
    }
    return SL_OK; /* made after the memory check */
}

static int fresh_config(trainer *t, model_config *c) {
    char err[ERR];
    settings *s = &t->s;
    int64_t vocab = s->vocab ? s->vocab : (int64_t)tok_vocab_size(t->tok);
    if (vocab < (int64_t)tok_vocab_size(t->tok))
        return sl_fail(t->ctx, "vocab is %lld, smaller than the tokenizer's %zu tokens",
                       (long long)vocab, tok_vocab_size(t->tok));
    if (model_config_init(c, s->arch_type, (int)s->d_model, (int)s->n_layers, (int)s->n_heads,
                          (int)s->n_kv_heads, (int)s->d_ff, (int)s->context, (int)vocab, err,
                          sizeof(err)) != 0)
        return sl_fail(t->ctx, "architecture: %s", err);
    c->eos_token_id = model_folder_find_eos(t->tok, NULL);
    return SL_OK;
}

static int build_examples(trainer *t, const char *split, dataset **d, train_examples **ex, size_t T,
                          int required) {
    sl_ctx *ctx = t->ctx;
    char err[ERR];
    const char *in = sl_input_path(ctx, "dataset");
    dataset_kind kind = t->s.method == M_PRETRAIN ? DATASET_TEXT
                        : t->s.method == M_DPO    ? DATASET_PREFERENCE
                                                  : DATASET_INSTRUCTION;
    if (dataset_load(in, kind, split, d, err, sizeof(err)) != 0)
        return required ? sl_fail(ctx, "input 'dataset': %s", err) : SL_OK;
    const model_config *c = model_get_config(t->m);
    train_tokenizer tk = {t->tok, model_folder_encode, -1, model_folder_find_eos(t->tok, c)};
    if (c->arch == MODEL_LLAMA && c->bos_token_id >= 0 && c->bos_token_id != tk.eos_id)
        tk.bos_id = c->bos_token_id;
    if (tk.eos_id < 0)
        return sl_fail(ctx,
                       "the tokenizer %s has no end-of-text token and the model no "
                       "eos_token_id",
                       t->tokenizer_path);
    train_format fmt = {t->s.packing ? 0 : T, 0, TRAIN_TRUNCATE, 1};
    if (train_examples_build(*d, &tk, &fmt, ex, err, sizeof(err)) != 0)
        return required ? sl_fail(ctx, "input 'dataset' (%s split): %s", split, err) : SL_OK;
    return SL_OK;
}

/* The mean loss over the test examples (pretrain, sft). */
static int eval_loss(trainer *t, size_t T, double *out) {
    char err[ERR];
    batcher_opts o = {(size_t)t->s.batch_size, T, t->s.packing, 0, 0, 0};
    batcher *b = NULL;
    if (batcher_new(t->test_ex, &o, &b, err, sizeof(err)) != 0)
        return sl_fail(t->ctx, "eval split: %s", err);
    double sum = 0;
    size_t n = 0, steps = batcher_steps_per_epoch(b);
    int rc = SL_OK;
    model_lora_train(t->m, 0); /* no LoRA dropout while evaluating */
    for (size_t i = 0; i < steps && rc == SL_OK; i++) {
        const train_batch *bt = batcher_next(b);
        train_batch_targets(bt, t->targets);
        float loss;
        if (model_forward(t->m, bt->ids, t->targets, NULL, (int)bt->n_rows, (int)T, &loss, err,
                          sizeof(err)) != 0)
            rc = sl_fail(t->ctx, "eval: %s", err);
        else if (isfinite(loss)) {
            sum += loss;
            n++;
        }
    }
    model_lora_train(t->m, 1);
    batcher_free(b);
    *out = n ? sum / (double)n : NAN;
    return rc;
}

/* One micro-batch: forward, loss, backward scaled by 1/accum. */
static int micro_step(trainer *t, const train_batch *bt, float scale, double *loss_out,
                      dpo_result *dr) {
    char err[ERR];
    size_t T = bt->T, rows = bt->n_rows;
    train_batch_targets(bt, t->targets);
    float loss;
    if (model_forward(t->m, bt->ids, t->targets, NULL, (int)rows, (int)T, &loss, err,
                      sizeof(err)) != 0)
        return sl_fail(t->ctx, "forward: %s", err);
    if (t->s.method != M_DPO) {
        *loss_out = loss;
        if (!isfinite(loss))
            return SL_OK;
        if (model_backward(t->m, scale, err, sizeof(err)) != 0)
            return sl_fail(t->ctx, "backward: %s", err);
        return SL_OK;
    }
    /* DPO: rows [0, B) chosen, [B, 2B) rejected; only bt->rows are real. */
    size_t B = bt->B, n = bt->rows;
    row_logps(t->m, t->targets, rows, T, t->row_sum);
    /* the examples of this batch: those just before pos.index in the
     * order, or the end of the previous epoch when the batch ended one */
    uint64_t epoch = bt->pos.epoch;
    size_t first = (size_t)bt->pos.index - n;
    if (bt->pos.index < n) {
        epoch--;
        first = t->ex->n - n;
    }
    const size_t *order = batcher_order(t->b, epoch);
    for (size_t i = 0; i < n; i++) {
        size_t e = order[first + i];
        t->pc[i] = t->row_sum[i];
        t->pr[i] = t->row_sum[B + i];
        t->rc_[i] = t->ref[2 * e];
        t->rr[i] = t->ref[2 * e + 1];
    }
    dpo_params p = {t->s.beta, 0, 0};
    dpo_loss(&p, n, t->pc, t->pr, t->rc_, t->rr, dr, t->d_pc, t->d_pr);
    *loss_out = dr->loss;
    if (!isfinite(dr->loss))
        return SL_OK;
    /* d loss / d logp at a target of row r is d_pc (or d_pr); backward
     * weighs -log p, hence the sign. */
    for (size_t r = 0; r < rows; r++) {
        double d = r < n ? t->d_pc[r] : (r >= B && r - B < n) ? t->d_pr[r - B] : 0;
        for (size_t k = 0; k < T; k++)
            t->weights[r * T + k] = t->targets[r * T + k] >= 0 ? (float)-d : 0.0f;
    }
    if (model_backward_weighted(t->m, t->weights, scale, err, sizeof(err)) != 0)
        return sl_fail(t->ctx, "backward: %s", err);
    return SL_OK;
}

/* ---- lora ----------------------------------------------------------------- */

/* A target module as the library names it: Llama's short names (q, k, v, o,
 * gate, up, down) are its q_proj ... down_proj; others pass unchanged, and
 * model_lora_add refuses what the architecture does not have. */
static const char *lora_module(const model_config *c, const char *name) {
    static const char *const shorts[][2] = {
        {"q", "q_proj"},       {"k", "k_proj"},   {"v", "v_proj"},      {"o", "o_proj"},
        {"gate", "gate_proj"}, {"up", "up_proj"}, {"down", "down_proj"}};
    if (c->arch == MODEL_LLAMA)
        for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++)
            if (strcmp(name, shorts[i][0]) == 0)
                return shorts[i][1];
    return name;
}

/* Puts the adapters on t->m: fresh ones on target_modules (empty: every
 * linear layer of the architecture), or those of the checkpoint ckpt_dir;
 * then dropout, and the count of trainable parameters in the log. */
static int lora_setup(trainer *t, const char *ckpt_dir) {
    sl_ctx *ctx = t->ctx;
    const settings *s = &t->s;
    const model_config *c = model_get_config(t->m);
    char err[ERR];
    if (ckpt_dir) {
        if (model_lora_load(t->m, ckpt_dir, err, sizeof(err)) != 0)
            return sl_fail(ctx, "checkpoint: %s", err);
    } else {
        const char *names[8];
        size_t n = sl_param_list_len(ctx, "target_modules");
        if (n > 8)
            return sl_fail(ctx, "target_modules: %zu of them, at most 8", n);
        for (size_t i = 0; i < n; i++)
            names[i] = lora_module(c, sl_param_list_item(ctx, "target_modules", i));
        const char *const *all = model_lora_modules(t->m);
        if (n == 0) /* none given: every linear layer */
            for (; all[n] && n < 8; n++)
                names[n] = all[n];
        if (model_lora_add(t->m, (int)s->lora_r, (float)s->lora_alpha, names, (int)n,
                           (uint64_t)s->seed, err, sizeof(err)) != 0)
            return sl_fail(ctx, "target_modules: %s%s", err,
                           c->arch == MODEL_LLAMA ? " (or q, k, v, o, gate, up, down)" : "");
    }
    if (model_lora_dropout(t->m, (float)s->lora_dropout, (uint64_t)s->seed, err, sizeof(err)) != 0)
        return sl_fail(ctx, "dropout: %s", err);
    size_t trainable = 0, n_t = model_lora_tensor_count(t->m);
    for (size_t i = 0; i < n_t; i++) {
        size_t count = 0;
        model_lora_tensor_data(t->m, i, &count);
        trainable += count;
    }
    sl_log(ctx, SL_LOG_INFO,
           "lora: r %lld, alpha %g, dropout %g on %zu adapted layers: %zu trainable parameters "
           "(%.2f%% of %zu), the base frozen",
           (long long)s->lora_r, s->lora_alpha, s->lora_dropout, n_t / 2, trainable,
           100.0 * (double)trainable / (double)model_param_count(t->m), model_param_count(t->m));
    sl_metric(ctx, "trainable_parameters", (double)trainable, -1);
    return SL_OK;
}

/* The output folder: the model as a Hugging Face folder, and with LoRA
 * either the merged model (merge) or the base unchanged plus PEFT's
 * adapter files naming it; then the tokenizer and generation_config.json. */
static int write_output(trainer *t, const char *out) {
    char err[ERR], path[4300];
    int lora = t->s.method == M_LORA;
    if (lora && t->s.merge && model_lora_merge(t->m, err, sizeof(err)) != 0)
        return sl_fail(t->ctx, "merge: %s", err);
    snprintf(path, sizeof(path), "%s/tokenizer.json", out);
    if (model_save(t->m, out, err, sizeof(err)) != 0 ||
        (lora && !t->s.merge && model_lora_save(t->m, out, t->base, err, sizeof(err)) != 0) ||
        copy_file(t->tokenizer_path, path, err, sizeof(err)) != 0)
        return sl_fail(t->ctx, "model: %s", err);
    return SL_OK;
}

static int write_generation_config(const char *dir, const model_config *c, int32_t eos) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "{\n  \"_from_model_config\": true,\n");
    if (c->bos_token_id >= 0)
        fprintf(f, "  \"bos_token_id\": %d,\n", c->bos_token_id);
    fprintf(f, "  \"eos_token_id\": %d\n}\n", eos);
    return fclose(f) == 0 ? 0 : -EIO;
}

static int train_loop(trainer *t, uint64_t start_step, size_t T, uint64_t total) {
    sl_ctx *ctx = t->ctx;
    settings *s = &t->s;
    char err[ERR];
    lr_schedule sched = {s->schedule, s->learning_rate, 0, (uint64_t)s->warmup_steps, total, 0};
    model_adamw opt = {0, 0.9f, 0.999f, 1e-8f, (float)s->weight_decay};
    double t_start = seconds();
    uint64_t tokens = 0;
    for (uint64_t step = start_step; step < total; step++) {
        if (sl_cancelled(ctx))
            return SL_ECANCELLED;
        model_zero_grad(t->m);
        double loss_sum = 0;
        dpo_result acc = {0}, dr = {0};
        for (int64_t k = 0; k < s->grad_accum; k++) {
            const train_batch *bt = batcher_next(t->b);
            double loss;
            int rc = micro_step(t, bt, 1.0f / (float)s->grad_accum, &loss, &dr);
            if (rc != SL_OK)
                return rc;
            if (!isfinite(loss))
                return sl_fail(ctx,
                               "the loss is %s at step %llu (learning rate %g): training "
                               "stopped; the last good checkpoint stays in %s",
                               isnan(loss) ? "NaN" : "infinite", (unsigned long long)step + 1,
                               lr_at(&sched, step), t->root);
            loss_sum += loss;
            acc.rewards_chosen += dr.rewards_chosen;
            acc.rewards_rejected += dr.rewards_rejected;
            acc.rewards_accuracies += dr.rewards_accuracies;
            acc.rewards_margins += dr.rewards_margins;
            for (size_t i = 0; i < bt->n_rows * bt->T; i++)
                tokens += bt->mask[i];
        }
        float norm = s->max_grad_norm > 0 ? model_clip_grad(t->m, (float)s->max_grad_norm)
                                          : model_grad_norm(t->m);
        if (!isfinite(norm))
            return sl_fail(ctx,
                           "the gradient norm is not finite at step %llu: training stopped; "
                           "the last good checkpoint stays in %s",
                           (unsigned long long)step + 1, t->root);
        opt.lr = (float)lr_at(&sched, step);
        if (model_adamw_step(t->m, &opt, err, sizeof(err)) != 0)
            return sl_fail(ctx, "AdamW: %s", err);
        int64_t idx = (int64_t)step + 1;
        double loss = loss_sum / (double)s->grad_accum, el = seconds() - t_start;
        sl_metric(ctx, "loss", loss, idx);
        sl_metric(ctx, "lr", opt.lr, idx);
        sl_metric(ctx, "grad_norm", norm, idx);
        sl_metric(ctx, "tokens_per_s", el > 0 ? (double)tokens / el : 0, idx);
        if (s->method == M_DPO) {
            double a = (double)s->grad_accum;
            sl_metric(ctx, "rewards/chosen", acc.rewards_chosen / a, idx);
            sl_metric(ctx, "rewards/rejected", acc.rewards_rejected / a, idx);
            sl_metric(ctx, "rewards/accuracies", acc.rewards_accuracies / a, idx);
            sl_metric(ctx, "rewards/margins", acc.rewards_margins / a, idx);
        }
        sl_progress(ctx, step + 1, total);
        if (s->eval_every > 0 && t->test_ex && (step + 1) % (uint64_t)s->eval_every == 0) {
            double ev = NAN;
            int rc = eval_loss(t, T, &ev);
            if (rc != SL_OK)
                return rc;
            sl_metric(ctx, "eval_loss", ev, idx);
        }
        if (s->checkpoint_every > 0 && (step + 1) % (uint64_t)s->checkpoint_every == 0 &&
            step + 1 < total) {
            data_pos pos = batcher_pos(t->b);
            ckpt_state st = {step + 1, pos.epoch, pos.index, pos.offset, {0, 0, 0, 0}};
            int rc = save_checkpoint(ctx, t->root, t->m, s->method == M_LORA ? t->base : NULL, &st,
                                     (size_t)s->keep_checkpoints);
            if (rc != SL_OK)
                return rc;
        }
    }
    return SL_OK;
}

/* The registry (docs/registry.md) takes model names of [a-z0-9_-], at
 * most 64: a bad one is refused before hours of training, not after. */
static int check_model_name(sl_ctx *ctx) {
    const char *name = sl_param_str(ctx, "model_name");
    size_t n = 0;
    for (; name && name[n]; n++)
        if (!((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= '0' && name[n] <= '9') ||
              name[n] == '_' || name[n] == '-'))
            break;
    if (name && (name[n] || n > 64))
        return sl_fail(ctx, "model_name '%s' is no model name: [a-z0-9_-], at most 64", name);
    return SL_OK;
}

static int run_train(sl_ctx *ctx) {
    trainer t = {.ctx = ctx};
    int rc = check_model_name(ctx);
    if (rc != SL_OK)
        return rc;
    rc = read_settings(ctx, &t.s);
    if (rc != SL_OK)
        return rc;
    settings *s = &t.s;
    char err[ERR], ckpt_dir[4200];
    if (s->method != M_DPO && sl_input_path(ctx, "reference"))
        return sl_fail(ctx,
                       "input 'reference' is the reference model's log-probabilities of "
                       "method dpo; method %s does not use it",
                       s->method_name);
    if ((rc = checkpoint_root(ctx, s->method == M_LORA, t.root, sizeof(t.root))) != SL_OK)
        return rc;
    uint64_t ck_step = 0;
    int have_ckpt = ckpt_latest(t.root, &ck_step, ckpt_dir, sizeof(ckpt_dir), err, sizeof(err));
    if (have_ckpt < 0)
        return sl_fail(ctx, "checkpoints in %s: %s", t.root, err);
    openblas_set_num_threads((int)s->threads);
    if ((rc = open_model(&t, have_ckpt ? ckpt_dir : NULL)) != SL_OK)
        goto done;
    model_config fresh;
    const model_config *c = t.m ? model_get_config(t.m) : NULL;
    if (!c) {
        if ((rc = fresh_config(&t, &fresh)) != SL_OK)
            goto done;
        c = &fresh;
    }
    size_t T = (size_t)s->max_seq_len;
    if (T > (size_t)c->context) {
        sl_log(ctx, SL_LOG_INFO, "max_seq_len %zu is past the model's context: %d", T, c->context);
        T = (size_t)c->context;
    }
    size_t rows = (size_t)s->batch_size * (s->method == M_DPO ? 2 : 1), param_b, train_b;
    /* LoRA's base is open: its adapters (small) come first, so that the
     * estimate is the adapted model's, with no gradient nor moments for
     * the frozen base */
    if (s->method == M_LORA && (rc = lora_setup(&t, have_ckpt ? ckpt_dir : NULL)) != SL_OK)
        goto done;
    if (model_estimate(c, (int)rows, (int)T, &param_b, &train_b, err, sizeof(err)) != 0 ||
        (s->method == M_LORA &&
         model_train_estimate(t.m, (int)rows, (int)T, &train_b, err, sizeof(err)) != 0)) {
        rc = sl_fail(ctx, "memory estimate: %s", err);
        goto done;
    }
    double need_mb = (double)train_b / (1 << 20);
    double limit_mb = s->max_memory_mb > 0 ? s->max_memory_mb : mem_available_mb();
    if (limit_mb > 0 && need_mb > limit_mb) {
        rc = sl_fail(ctx,
                     "training needs about %.0f MiB (%.0f MiB of weights; batches of %zu x %zu "
                     "tokens) but %s is %.0f MiB: use a smaller model, batch_size or "
                     "max_seq_len",
                     need_mb, (double)param_b / (1 << 20), rows, T,
                     s->max_memory_mb > 0 ? "max_memory_mb" : "the memory available", limit_mb);
        goto done;
    }
    sl_log(ctx, SL_LOG_INFO, "memory: about %.0f MiB to train (%.1f MiB of weights)", need_mb,
           (double)param_b / (1 << 20));
    if (!t.m && model_new(c, (uint64_t)s->seed, &t.m, err, sizeof(err)) != 0) {
        rc = sl_fail(ctx, "model: %s", err);
        goto done;
    }
    c = model_get_config(t.m);
    if (tok_vocab_size(t.tok) > (size_t)c->vocab) {
        rc = sl_fail(ctx, "the tokenizer has %zu tokens, the model's vocabulary %d",
                     tok_vocab_size(t.tok), c->vocab);
        goto done;
    }
    if ((rc = build_examples(&t, "train", &t.data, &t.ex, T, 1)) != SL_OK)
        goto done;
    if (s->eval_every > 0 && (rc = build_examples(&t, "test", &t.test, &t.test_ex, T, 0)) != SL_OK)
        goto done;
    sl_log(ctx, SL_LOG_INFO, "%s: %zu examples, %llu tokens (%zu truncated, %zu skipped)%s",
           s->method_name, t.ex->n, (unsigned long long)t.ex->tokens, t.ex->truncated,
           t.ex->skipped, t.test_ex ? ", a test split for eval_loss" : "");
    batcher_opts bo = {(size_t)s->batch_size, T, s->packing, 1, 0, (uint64_t)s->seed};
    if (batcher_new(t.ex, &bo, &t.b, err, sizeof(err)) != 0) {
        rc = sl_fail(ctx, "batches: %s", err);
        goto done;
    }
    size_t cells = rows * T, B = (size_t)s->batch_size;
    t.targets = malloc(cells * sizeof(int32_t));
    t.weights = malloc(cells * sizeof(float));
    t.row_sum = malloc(rows * sizeof(double));
    t.pc = malloc(6 * B * sizeof(double));
    if (!t.targets || !t.weights || !t.row_sum || !t.pc) {
        rc = sl_fail(ctx, "out of memory");
        goto done;
    }
    t.pr = t.pc + B, t.rc_ = t.pc + 2 * B, t.rr = t.pc + 3 * B, t.d_pc = t.pc + 4 * B,
    t.d_pr = t.pc + 5 * B;
    uint64_t per_epoch = batcher_steps_per_epoch(t.b);
    uint64_t total = (per_epoch * (uint64_t)s->epochs) / (uint64_t)s->grad_accum;
    if (total == 0)
        total = 1;
    if (s->max_steps > 0 && (uint64_t)s->max_steps < total)
        total = (uint64_t)s->max_steps;
    if (make_dirs(t.root) != 0) {
        rc = sl_fail(ctx, "cannot create %s: %s", t.root, strerror(errno));
        goto done;
    }
    if (s->method == M_DPO) {
        if (!(t.ref = malloc(2 * t.ex->n * sizeof(double)))) {
            rc = sl_fail(ctx, "out of memory");
            goto done;
        }
        if ((rc = reference_logps(ctx, t.m, t.ex, T, t.root, have_ckpt, t.ref)) != SL_OK)
            goto done;
    }
    uint64_t start = 0;
    if (have_ckpt) {
        ckpt_state st;
        char path[4300];
        snprintf(path, sizeof(path), "%s/adamw.safetensors", ckpt_dir);
        if (ckpt_read_state(ckpt_dir, &st, err, sizeof(err)) != 0 ||
            model_load_optimizer(t.m, path, err, sizeof(err)) != 0) {
            rc = sl_fail(ctx, "checkpoint %s: %s", ckpt_dir, err);
            goto done;
        }
        data_pos pos = {st.epoch, st.index, st.offset};
        if (batcher_seek(t.b, pos, err, sizeof(err)) != 0) {
            rc = sl_fail(ctx, "checkpoint %s: %s", ckpt_dir, err);
            goto done;
        }
        start = st.step;
        sl_log(ctx, SL_LOG_INFO, "resuming from the checkpoint at step %llu of %llu (%s)",
               (unsigned long long)start, (unsigned long long)total, ckpt_dir);
    }
    sl_log(ctx, SL_LOG_INFO,
           "%s %s: %zu parameters, %d layers, d_model %d, vocab %d; %llu steps of %zu x %zu "
           "tokens x %lld, %lld threads",
           s->method_name, c->model_type, model_param_count(t.m), c->n_layers, c->d_model, c->vocab,
           (unsigned long long)total, rows, T, (long long)s->grad_accum, (long long)s->threads);
    double t0 = seconds();
    if ((rc = train_loop(&t, start, T, total)) != SL_OK)
        goto done;
    sl_metric(ctx, "seconds", seconds() - t0, -1);
    sl_metric(ctx, "steps", (double)total, -1);
    const char *out;
    if ((rc = step_output_folder(ctx, "model", &out)) != SL_OK)
        goto done;
    if ((rc = write_output(&t, out)) != SL_OK)
        goto done;
    if (write_generation_config(out, c, model_folder_find_eos(t.tok, c)) != 0) {
        rc = sl_fail(ctx, "cannot write %s/generation_config.json", out);
        goto done;
    }
    remove_tree(t.root); /* the model is written: the checkpoints are done with */
done:
    trainer_free(&t);
    return rc;
}

/* ---- the plugin ----------------------------------------------------------- */

static const sl_port tok_inputs[] = {
    {"chunks", "any", "chunks or documents with a string 'content' (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port tok_outputs[] = {
    {"tokenizer", "tokenizer", "a folder with tokenizer.json (Hugging Face byte-level BPE)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param tok_params[] = {
    {"vocab_size", SL_PARAM_INT, "2048", "tokens in all: special tokens, 256 bytes, merges", 0},
    {"special_tokens", SL_PARAM_LIST, "[\"<|endoftext|>\"]", "special tokens, ids 0..", 0},
    {"min_frequency", SL_PARAM_INT, "2", "a pair is merged only if it occurs this often", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_port train_inputs[] = {
    {"dataset", "any",
     "pretrain: chunks or documents ('content'); sft: instruction, answer; dpo: instruction, "
     "chosen, rejected (JSON Lines or the Handbook's JSON)",
     0},
    {"model", "model", "a Hugging Face folder to start from (else base_model, else scratch)", 1},
    {"tokenizer", "tokenizer", "from scratch: a folder with tokenizer.json", 1},
    {"reference", "logprobs",
     "dpo: the reference log-probabilities of another dpo step's output 'reference' (the same "
     "starting model, dataset, tokenizer and max_seq_len), read instead of running the "
     "reference model",
     1},
    {NULL, NULL, NULL, 0},
};
static const sl_port train_outputs[] = {
    {"model", "model",
     "a Hugging Face folder: config.json, model.safetensors, tokenizer.json, "
     "generation_config.json; lora without merge: also adapter_config.json and "
     "adapter_model.safetensors",
     0},
    {"reference", "logprobs",
     "dpo only: the reference model's summed response log-probabilities, a JSON line per pair "
     "{index, chosen, rejected, chosen_tokens, rejected_tokens}",
     1},
    {NULL, NULL, NULL, 0},
};
static const sl_param train_params[] = {
    {"method", SL_PARAM_STRING, "pretrain", "pretrain, sft, lora (sft on adapters) or dpo", 0},
    {"base_model", SL_PARAM_PATH, "\"\"", "a Hugging Face model folder to start from", 0},
    {"type", SL_PARAM_STRING, "gpt2", "from scratch: gpt2 or llama", 0},
    {"d_model", SL_PARAM_INT, "128", "from scratch: width", 0},
    {"n_layers", SL_PARAM_INT, "4", "from scratch: layers", 0},
    {"n_heads", SL_PARAM_INT, "4", "from scratch: attention heads", 0},
    {"n_kv_heads", SL_PARAM_INT, "0", "from scratch (llama): key/value heads, 0: n_heads", 0},
    {"d_ff", SL_PARAM_INT, "0", "from scratch: MLP width, 0: the architecture's default", 0},
    {"context", SL_PARAM_INT, "256", "from scratch: positions", 0},
    {"vocab", SL_PARAM_INT, "0", "from scratch: vocabulary, 0: the tokenizer's", 0},
    {"epochs", SL_PARAM_INT, "1", "passes over the dataset", 0},
    {"batch_size", SL_PARAM_INT, "8", "examples (or packed rows) per micro-batch", 0},
    {"grad_accum", SL_PARAM_INT, "1", "micro-batches per optimizer step", 0},
    {"learning_rate", SL_PARAM_FLOAT, "3.0e-4", "peak learning rate", 0},
    {"warmup_steps", SL_PARAM_INT, "10", "linear warmup steps", 0},
    {"weight_decay", SL_PARAM_FLOAT, "0.01", "AdamW's decoupled weight decay (matrices only)", 0},
    {"max_grad_norm", SL_PARAM_FLOAT, "1.0", "gradient clipping, 0: none", 0},
    {"max_seq_len", SL_PARAM_INT, "256", "tokens per sequence (at most the context)", 0},
    {"packing", SL_PARAM_BOOL, "true", "pretrain, sft: examples end to end in rows", 0},
    {"schedule", SL_PARAM_STRING, "cosine", "cosine, linear or constant after the warmup", 0},
    {"seed", SL_PARAM_INT, "42", "weights and data order", 0},
    {"threads", SL_PARAM_INT, "1", "OpenBLAS threads (results depend on it)", 0},
    {"max_steps", SL_PARAM_INT, "0", "stop after this many steps, 0: epochs decide", 0},
    {"checkpoint_every", SL_PARAM_INT, "50", "steps between checkpoints, 0: none", 0},
    {"keep_checkpoints", SL_PARAM_INT, "2", "checkpoints kept", 0},
    {"eval_every", SL_PARAM_INT, "0", "steps between eval_loss on the test split, 0: none", 0},
    {"beta", SL_PARAM_FLOAT, "0.1", "dpo: TRL's beta", 0},
    {"r", SL_PARAM_INT, "8", "lora: the adapters' rank", 0},
    {"alpha", SL_PARAM_FLOAT, "16", "lora: scale alpha / r", 0},
    {"dropout", SL_PARAM_FLOAT, "0", "lora: dropout on the adapters' input (PEFT's lora_dropout)",
     0},
    {"target_modules", SL_PARAM_LIST, "[]",
     "lora: layers adapted (llama: q k v o gate up down, gpt2: c_attn c_proj c_fc), []: all", 0},
    {"merge", SL_PARAM_BOOL, "false",
     "lora: write merged weights, else the base unchanged plus PEFT's adapter files", 0},
    {"max_memory_mb", SL_PARAM_FLOAT, "0", "refuse above this estimate, 0: MemAvailable", 0},
    {"model_name", SL_PARAM_STRING, "\"\"",
     "the registry's model this step's model is a version of ([a-z0-9_-], at most 64), \"\": "
     "the pipeline's name",
     0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_step steps[] = {
    {"train_tokenizer", "1.0", "train a byte-level BPE tokenizer.json on chunks or documents",
     tok_inputs, tok_outputs, tok_params, run_tokenizer},
    {"train", "1.2", "pretrain, SFT, LoRA or DPO a GPT-2 or Llama model into a Hugging Face folder",
     train_inputs, train_outputs, train_params, run_train},
};

SL_PLUGIN_DEFINE("train", "1.0", steps, NULL, NULL)
