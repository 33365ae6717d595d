/* model.c - a model's architecture and parameters: config.json, the tensor
 * table with Hugging Face's names, reading (sharded) safetensors, writing
 * the folder back, and a fresh model's initialization. */
#include <bson/bson.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/artifacts.h>

#include "model_internal.h"

int model_fail(char *err, size_t n, int code, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Bounds on every size a config may give, far above any model this runs
 * but low enough that no product of them overflows. */
#define MAX_DIM (1 << 20)
#define MAX_VOCAB (1 << 22)
#define MAX_LAYERS 1024

static int is_llama_family(const char *t) {
    return !strcmp(t, "llama") || !strcmp(t, "qwen2") || !strcmp(t, "mistral");
}

/* Checks the sizes and fills the derived ones; where names the source. */
static int config_check(model_config *c, const char *where, char *err, size_t n) {
    if (c->d_model <= 0 || c->d_model > MAX_DIM || c->n_layers <= 0 || c->n_layers > MAX_LAYERS ||
        c->n_heads <= 0 || c->n_heads > MAX_DIM || c->context <= 0 || c->context > MAX_VOCAB ||
        c->vocab <= 0 || c->vocab > MAX_VOCAB)
        return model_fail(err, n, -EINVAL,
                          "%s: sizes out of range (d_model %d, n_layers %d, "
                          "n_heads %d, context %d, "
                          "vocab %d)",
                          where, c->d_model, c->n_layers, c->n_heads, c->context, c->vocab);
    if (c->n_kv_heads <= 0)
        c->n_kv_heads = c->n_heads;
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return model_fail(err, n, -EINVAL,
                          "%s: %d attention heads are not a multiple of %d kv heads", where,
                          c->n_heads, c->n_kv_heads);
    if (c->head_dim <= 0) {
        if (c->d_model % c->n_heads)
            return model_fail(err, n, -EINVAL, "%s: d_model %d is not divisible by %d heads", where,
                              c->d_model, c->n_heads);
        c->head_dim = c->d_model / c->n_heads;
    }
    if (c->head_dim > MAX_DIM / c->n_heads || (c->arch == MODEL_LLAMA && c->head_dim % 2))
        return model_fail(err, n, -EINVAL, "%s: head_dim %d does not fit (even, heads x head_dim)",
                          where, c->head_dim);
    if (c->arch == MODEL_GPT2 && c->head_dim * c->n_heads != c->d_model)
        return model_fail(err, n, -EINVAL, "%s: n_embd %d is not divisible by n_head %d", where,
                          c->d_model, c->n_heads);
    if (c->d_ff <= 0 || c->d_ff > MAX_DIM)
        return model_fail(err, n, -EINVAL, "%s: d_ff %d out of range", where, c->d_ff);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return model_fail(err, n, -EINVAL, "%s: norm epsilon and rope_theta must be positive",
                          where);
    if (c->rope_llama3 &&
        (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) ||
         !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_original_context <= 0))
        return model_fail(err, n, -EINVAL,
                          "%s: rope_scaling llama3 needs factor > 0, high_freq_factor > "
                          "low_freq_factor > 0 and original_max_position_embeddings > 0",
                          where);
    return 0;
}

int model_config_init(model_config *c, const char *type, int d_model, int n_layers, int n_heads,
                      int n_kv_heads, int d_ff, int context, int vocab, char *err,
                      size_t err_size) {
    memset(c, 0, sizeof(*c));
    c->bos_token_id = c->eos_token_id = -1;
    if (!strcmp(type, "gpt2")) {
        c->arch = MODEL_GPT2;
        if (n_kv_heads && n_kv_heads != n_heads)
            return model_fail(err, err_size, -EINVAL,
                              "architecture: gpt2 has no grouped-query "
                              "attention (n_kv_heads must equal n_heads)");
        c->norm_eps = 1e-5f;
        c->tied = 1;
        c->qkv_bias = c->o_bias = 1;
        if (d_ff <= 0)
            d_ff = 4 * d_model;
        else if (d_ff != 4 * d_model)
            return model_fail(err, err_size, -EINVAL,
                              "architecture: gpt2's d_ff is 4 x d_model (%d)", 4 * d_model);
    } else if (is_llama_family(type)) {
        c->arch = MODEL_LLAMA;
        c->norm_eps = 1e-5f;
        c->tied = 1; /* small models tie, as SmolLM and Llama 3.2 do */
        if (d_ff <= 0 && d_model > 0)
            d_ff = ((8 * d_model / 3 + 63) / 64) * 64;
    } else {
        return model_fail(err, err_size, -EINVAL, "architecture: unknown type '%s' (gpt2 or llama)",
                          type);
    }
    snprintf(c->model_type, sizeof(c->model_type), "%s", type);
    c->rope_theta = 10000.0f;
    c->d_model = d_model;
    c->n_layers = n_layers;
    c->n_heads = n_heads;
    c->n_kv_heads = n_kv_heads;
    c->d_ff = d_ff;
    c->context = context;
    c->vocab = vocab;
    return config_check(c, "architecture", err, err_size);
}

/* ---- config.json ---- */

/* A number member of doc as an int/float; 0 when absent, -EINVAL when
 * present but not a number. */
static int get_num(const bson_t *doc, const char *key, double *out, int *found) {
    bson_iter_t it;
    *found = 0;
    if (!bson_iter_init_find(&it, doc, key))
        return 0;
    if (BSON_ITER_HOLDS_NULL(&it))
        return 0;
    if (!BSON_ITER_HOLDS_NUMBER(&it))
        return -EINVAL;
    *out = bson_iter_as_double(&it);
    *found = 1;
    return 0;
}

typedef struct cfg_reader {
    const bson_t *doc;
    const char *path;
    char *err;
    size_t n;
    int rc;
} cfg_reader;

/* Reads an integer key (or the first found of two names); required ones
 * set rc when absent. */
static int cfg_int(cfg_reader *r, const char *key, const char *alt, int required, int dflt) {
    double v = 0;
    int found = 0;
    const char *name = key;
    if (r->rc)
        return dflt;
    if (get_num(r->doc, key, &v, &found) < 0)
        goto bad;
    if (!found && alt) {
        name = alt;
        if (get_num(r->doc, alt, &v, &found) < 0)
            goto bad;
    }
    if (!found) {
        if (required)
            r->rc = model_fail(r->err, r->n, -EINVAL, "%s: missing '%s'", r->path, key);
        return dflt;
    }
    if (v != floor(v) || v < -1 || v > 1e9) {
        r->rc = model_fail(r->err, r->n, -EINVAL, "%s: '%s' is not a size (%g)", r->path, name, v);
        return dflt;
    }
    return (int)v;
bad:
    r->rc = model_fail(r->err, r->n, -EINVAL, "%s: '%s' is not a number", r->path, name);
    return dflt;
}

/* A token id that may also be a list of ids (Llama 3's eos_token_id): the
 * first; -1 when absent or empty. */
static int first_int(cfg_reader *r, const char *key) {
    bson_iter_t it, sub;
    if (!r->rc && bson_iter_init_find(&it, r->doc, key) && BSON_ITER_HOLDS_ARRAY(&it)) {
        if (!bson_iter_recurse(&it, &sub) || !bson_iter_next(&sub))
            return -1;
        if (!BSON_ITER_HOLDS_NUMBER(&sub)) {
            r->rc = model_fail(r->err, r->n, -EINVAL, "%s: '%s' is not a list of token ids",
                               r->path, key);
            return -1;
        }
        double v = bson_iter_as_double(&sub);
        return v >= 0 && v < 1e9 && v == floor(v) ? (int)v : -1;
    }
    return cfg_int(r, key, NULL, 0, -1);
}

static float cfg_float(cfg_reader *r, const char *key, float dflt) {
    double v = 0;
    int found = 0;
    if (r->rc)
        return dflt;
    if (get_num(r->doc, key, &v, &found) < 0) {
        r->rc = model_fail(r->err, r->n, -EINVAL, "%s: '%s' is not a number", r->path, key);
        return dflt;
    }
    return found ? (float)v : dflt;
}

static int cfg_bool(cfg_reader *r, const char *key, int dflt) {
    bson_iter_t it;
    if (r->rc || !bson_iter_init_find(&it, r->doc, key) || BSON_ITER_HOLDS_NULL(&it))
        return dflt;
    if (!BSON_ITER_HOLDS_BOOL(&it)) {
        r->rc = model_fail(r->err, r->n, -EINVAL, "%s: '%s' is not true or false", r->path, key);
        return dflt;
    }
    return bson_iter_bool(&it);
}

static const char *cfg_str(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

static int read_rope_scaling(cfg_reader *r, model_config *c) {
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, r->doc, "rope_scaling") || BSON_ITER_HOLDS_NULL(&it))
        return 0;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it))
        return model_fail(r->err, r->n, -EINVAL, "%s: rope_scaling is not an object", r->path);
    uint32_t len;
    const uint8_t *data;
    bson_iter_document(&it, &len, &data);
    bson_t rs;
    if (!bson_init_static(&rs, data, len))
        return model_fail(r->err, r->n, -EINVAL, "%s: rope_scaling is unreadable", r->path);
    const char *type = cfg_str(&rs, "rope_type");
    if (!type)
        type = cfg_str(&rs, "type");
    if (!type || !strcmp(type, "default"))
        return 0;
    if (strcmp(type, "llama3"))
        return model_fail(r->err, r->n, -EINVAL,
                          "%s: rope_scaling type '%s' is not supported (llama3 or none)", r->path,
                          type);
    (void)sub;
    cfg_reader sr = {&rs, r->path, r->err, r->n, 0};
    c->rope_llama3 = 1;
    c->rope_factor = cfg_float(&sr, "factor", 0);
    c->rope_low_freq_factor = cfg_float(&sr, "low_freq_factor", 0);
    c->rope_high_freq_factor = cfg_float(&sr, "high_freq_factor", 0);
    c->rope_original_context = cfg_int(&sr, "original_max_position_embeddings", NULL, 1, 0);
    return sr.rc;
}

static int config_read(const char *dir, model_config *c, char *err, size_t n) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t *doc = NULL;
    int rc = sl_json_read(path, &doc, err, n);
    if (rc < 0)
        return rc;
    memset(c, 0, sizeof(*c));
    cfg_reader r = {doc, path, err, n, 0};
    const char *type = cfg_str(doc, "model_type");
    bson_iter_t it;
    if (!type) {
        rc = model_fail(err, n, -EINVAL, "%s: no model_type", path);
        goto out;
    }
    if (bson_iter_init_find(&it, doc, "quantization_config")) {
        rc = model_fail(err, n, -EINVAL,
                        "%s: quantized models are not supported (quantization_config)", path);
        goto out;
    }
    snprintf(c->model_type, sizeof(c->model_type), "%s", type);
    if (!strcmp(type, "gpt2")) {
        c->arch = MODEL_GPT2;
        c->d_model = cfg_int(&r, "n_embd", NULL, 1, 0);
        c->n_layers = cfg_int(&r, "n_layer", NULL, 1, 0);
        c->n_heads = cfg_int(&r, "n_head", NULL, 1, 0);
        c->context = cfg_int(&r, "n_positions", "n_ctx", 1, 0);
        c->vocab = cfg_int(&r, "vocab_size", NULL, 1, 0);
        c->d_ff = cfg_int(&r, "n_inner", NULL, 0, 0);
        if (c->d_ff <= 0)
            c->d_ff = 4 * c->d_model;
        c->norm_eps = cfg_float(&r, "layer_norm_epsilon", 1e-5f);
        c->n_kv_heads = c->n_heads;
        c->tied = 1;
        c->qkv_bias = c->o_bias = 1;
        c->rope_theta = 10000.0f;
        const char *act = cfg_str(doc, "activation_function");
        if (!r.rc && act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
            r.rc =
                model_fail(err, n, -EINVAL,
                           "%s: activation_function '%s' is not supported (gelu_new)", path, act);
    } else if (is_llama_family(type)) {
        c->arch = MODEL_LLAMA;
        c->d_model = cfg_int(&r, "hidden_size", NULL, 1, 0);
        c->d_ff = cfg_int(&r, "intermediate_size", NULL, 1, 0);
        c->n_layers = cfg_int(&r, "num_hidden_layers", NULL, 1, 0);
        c->n_heads = cfg_int(&r, "num_attention_heads", NULL, 1, 0);
        c->n_kv_heads = cfg_int(&r, "num_key_value_heads", NULL, 0, 0);
        c->head_dim = cfg_int(&r, "head_dim", NULL, 0, 0);
        c->context = cfg_int(&r, "max_position_embeddings", NULL, 1, 0);
        c->vocab = cfg_int(&r, "vocab_size", NULL, 1, 0);
        c->norm_eps = cfg_float(&r, "rms_norm_eps", 1e-6f);
        c->rope_theta = cfg_float(&r, "rope_theta", 10000.0f);
        c->tied = cfg_bool(&r, "tie_word_embeddings", 0);
        /* Qwen2 has q, k, v biases always and no attention_bias setting. */
        int qwen2 = !strcmp(type, "qwen2");
        int attention_bias = qwen2 ? 0 : cfg_bool(&r, "attention_bias", 0);
        c->qkv_bias = qwen2 || attention_bias;
        c->o_bias = attention_bias;
        if (cfg_bool(&r, "mlp_bias", 0) && !r.rc)
            r.rc = model_fail(err, n, -EINVAL, "%s: mlp_bias is not supported", path);
        const char *act = cfg_str(doc, "hidden_act");
        if (!r.rc && act && strcmp(act, "silu"))
            r.rc = model_fail(err, n, -EINVAL, "%s: hidden_act '%s' is not supported (silu)", path,
                              act);
        /* Attention within a sliding window equals full causal attention
         * over sequences no longer than the window, so the window bounds
         * the context instead of being computed. */
        int window = cfg_int(&r, "sliding_window", NULL, 0, 0);
        int use_window = strcmp(type, "qwen2") ? 1 : cfg_bool(&r, "use_sliding_window", 0);
        if (!r.rc && use_window && window > 0 && window < c->context)
            c->context = window;
        if (!r.rc)
            r.rc = read_rope_scaling(&r, c);
    } else {
        rc = model_fail(err, n, -EINVAL,
                        "%s: model_type '%s' is not supported (gpt2, llama, qwen2, mistral)", path,
                        type);
        goto out;
    }
    c->bos_token_id = cfg_int(&r, "bos_token_id", NULL, 0, -1);
    c->eos_token_id = first_int(&r, "eos_token_id");
    if (r.rc) {
        rc = r.rc;
        goto out;
    }
    rc = config_check(c, path, err, n);
out:
    bson_destroy(doc);
    return rc;
}

static int config_write(const model_config *c, const char *dir, char *err, size_t n) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    bson_t doc, arr;
    bson_init(&doc);
    bson_append_array_begin(&doc, "architectures", -1, &arr);
    bson_append_utf8(&arr, "0", -1,
                     c->arch == MODEL_GPT2               ? "GPT2LMHeadModel"
                     : !strcmp(c->model_type, "qwen2")   ? "Qwen2ForCausalLM"
                     : !strcmp(c->model_type, "mistral") ? "MistralForCausalLM"
                                                         : "LlamaForCausalLM",
                     -1);
    bson_append_array_end(&doc, &arr);
    bson_append_utf8(&doc, "model_type", -1, c->model_type, -1);
    if (c->arch == MODEL_GPT2) {
        BSON_APPEND_INT32(&doc, "n_embd", c->d_model);
        BSON_APPEND_INT32(&doc, "n_layer", c->n_layers);
        BSON_APPEND_INT32(&doc, "n_head", c->n_heads);
        BSON_APPEND_INT32(&doc, "n_positions", c->context);
        BSON_APPEND_INT32(&doc, "n_ctx", c->context);
        BSON_APPEND_INT32(&doc, "vocab_size", c->vocab);
        BSON_APPEND_DOUBLE(&doc, "layer_norm_epsilon", c->norm_eps);
        if (c->d_ff != 4 * c->d_model)
            BSON_APPEND_INT32(&doc, "n_inner", c->d_ff);
        BSON_APPEND_UTF8(&doc, "activation_function", "gelu_new");
    } else {
        BSON_APPEND_INT32(&doc, "hidden_size", c->d_model);
        BSON_APPEND_INT32(&doc, "intermediate_size", c->d_ff);
        BSON_APPEND_INT32(&doc, "num_hidden_layers", c->n_layers);
        BSON_APPEND_INT32(&doc, "num_attention_heads", c->n_heads);
        BSON_APPEND_INT32(&doc, "num_key_value_heads", c->n_kv_heads);
        BSON_APPEND_INT32(&doc, "head_dim", c->head_dim);
        BSON_APPEND_INT32(&doc, "max_position_embeddings", c->context);
        BSON_APPEND_INT32(&doc, "vocab_size", c->vocab);
        BSON_APPEND_DOUBLE(&doc, "rms_norm_eps", c->norm_eps);
        BSON_APPEND_DOUBLE(&doc, "rope_theta", c->rope_theta);
        BSON_APPEND_BOOL(&doc, "tie_word_embeddings", c->tied);
        BSON_APPEND_UTF8(&doc, "hidden_act", "silu");
        if (strcmp(c->model_type, "qwen2"))
            BSON_APPEND_BOOL(&doc, "attention_bias", c->o_bias);
        if (c->rope_llama3) {
            bson_t rs;
            bson_append_document_begin(&doc, "rope_scaling", -1, &rs);
            BSON_APPEND_UTF8(&rs, "rope_type", "llama3");
            BSON_APPEND_DOUBLE(&rs, "factor", c->rope_factor);
            BSON_APPEND_DOUBLE(&rs, "low_freq_factor", c->rope_low_freq_factor);
            BSON_APPEND_DOUBLE(&rs, "high_freq_factor", c->rope_high_freq_factor);
            BSON_APPEND_INT32(&rs, "original_max_position_embeddings", c->rope_original_context);
            bson_append_document_end(&doc, &rs);
        }
    }
    if (c->bos_token_id >= 0)
        BSON_APPEND_INT32(&doc, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0)
        BSON_APPEND_INT32(&doc, "eos_token_id", c->eos_token_id);
    BSON_APPEND_UTF8(&doc, "torch_dtype", "float32");
    int rc = sl_json_write(path, &doc, err, n);
    bson_destroy(&doc);
    return rc;
}

/* ---- the tensor table ---- */

typedef struct table {
    model *m;
    size_t cap;
    int oom;
} table;

static size_t add_tensor(table *tb, const char *name, int ndim, uint64_t d0, uint64_t d1) {
    model *m = tb->m;
    if (tb->oom)
        return MODEL_NONE;
    if (m->n_tensors == tb->cap) {
        size_t cap = tb->cap ? 2 * tb->cap : 64;
        model_tensor *t = realloc(m->t, cap * sizeof(*t));
        if (!t) {
            tb->oom = 1;
            return MODEL_NONE;
        }
        m->t = t;
        tb->cap = cap;
    }
    model_tensor *t = &m->t[m->n_tensors++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->count = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    t->offset = m->n_params;
    m->n_params += t->count;
    return t->offset;
}

static void add_linear(table *tb, model_linear *l, const char *prefix, int in, int out, int in_out,
                       int bias) {
    char name[128];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    l->in = in;
    l->out = out;
    l->in_out = in_out;
    l->w = in_out ? add_tensor(tb, name, 2, in, out) : add_tensor(tb, name, 2, out, in);
    l->b = MODEL_NONE;
    l->la = l->lb = MODEL_NONE;
    if (bias) {
        snprintf(name, sizeof(name), "%s.bias", prefix);
        l->b = add_tensor(tb, name, 1, out, 0);
    }
}

static void add_norm(table *tb, model_norm *nm, const char *prefix, int C, int bias) {
    char name[128];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    nm->w = add_tensor(tb, name, 1, C, 0);
    nm->b = MODEL_NONE;
    if (bias) {
        snprintf(name, sizeof(name), "%s.bias", prefix);
        nm->b = add_tensor(tb, name, 1, C, 0);
    }
}

/* Lays out the parameters of config m->c in Hugging Face's names. */
static int build_table(model *m, char *err, size_t n) {
    const model_config *c = &m->c;
    int C = c->d_model, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, F = c->d_ff;
    table tb = {m, 0, 0};
    m->layers = calloc((size_t)c->n_layers, sizeof(*m->layers));
    if (!m->layers)
        return model_fail(err, n, -ENOMEM, "model: out of memory");
    char p[96];
    if (c->arch == MODEL_GPT2) {
        m->qkv_width = 3 * C;
        m->up_width = F;
        m->wte = add_tensor(&tb, "wte.weight", 2, c->vocab, C);
        m->wpe = add_tensor(&tb, "wpe.weight", 2, c->context, C);
        for (int i = 0; i < c->n_layers; i++) {
            model_layer *L = &m->layers[i];
            snprintf(p, sizeof(p), "h.%d.ln_1", i);
            add_norm(&tb, &L->ln1, p, C, 1);
            snprintf(p, sizeof(p), "h.%d.attn.c_attn", i);
            add_linear(&tb, &L->qkv[0], p, C, 3 * C, 1, 1);
            L->n_qkv = 1;
            snprintf(p, sizeof(p), "h.%d.attn.c_proj", i);
            add_linear(&tb, &L->o, p, C, C, 1, 1);
            snprintf(p, sizeof(p), "h.%d.ln_2", i);
            add_norm(&tb, &L->ln2, p, C, 1);
            snprintf(p, sizeof(p), "h.%d.mlp.c_fc", i);
            add_linear(&tb, &L->up[0], p, C, F, 1, 1);
            L->n_up = 1;
            snprintf(p, sizeof(p), "h.%d.mlp.c_proj", i);
            add_linear(&tb, &L->down, p, F, C, 1, 1);
        }
        add_norm(&tb, &m->lnf, "ln_f", C, 1);
    } else {
        m->qkv_width = (H + 2 * KV) * hd;
        m->up_width = 2 * F;
        m->wpe = MODEL_NONE;
        m->wte = add_tensor(&tb, "model.embed_tokens.weight", 2, c->vocab, C);
        for (int i = 0; i < c->n_layers; i++) {
            model_layer *L = &m->layers[i];
            snprintf(p, sizeof(p), "model.layers.%d.input_layernorm", i);
            add_norm(&tb, &L->ln1, p, C, 0);
            static const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
            for (int j = 0; j < 3; j++) {
                snprintf(p, sizeof(p), "model.layers.%d.self_attn.%s", i, qkv[j]);
                add_linear(&tb, &L->qkv[j], p, C, (j ? KV : H) * hd, 0, c->qkv_bias);
            }
            L->n_qkv = 3;
            snprintf(p, sizeof(p), "model.layers.%d.self_attn.o_proj", i);
            add_linear(&tb, &L->o, p, H * hd, C, 0, c->o_bias);
            snprintf(p, sizeof(p), "model.layers.%d.post_attention_layernorm", i);
            add_norm(&tb, &L->ln2, p, C, 0);
            snprintf(p, sizeof(p), "model.layers.%d.mlp.gate_proj", i);
            add_linear(&tb, &L->up[0], p, C, F, 0, 0);
            snprintf(p, sizeof(p), "model.layers.%d.mlp.up_proj", i);
            add_linear(&tb, &L->up[1], p, C, F, 0, 0);
            L->n_up = 2;
            snprintf(p, sizeof(p), "model.layers.%d.mlp.down_proj", i);
            add_linear(&tb, &L->down, p, F, C, 0, 0);
        }
        add_norm(&tb, &m->lnf, "model.norm", C, 0);
    }
    m->head = (model_linear){m->wte, MODEL_NONE, C, c->vocab, 0, MODEL_NONE, MODEL_NONE};
    if (!c->tied)
        add_linear(&tb, &m->head, "lm_head", C, c->vocab, 0, 0);
    if (tb.oom)
        return model_fail(err, n, -ENOMEM, "model: out of memory");
    return 0;
}

static model *model_alloc(const model_config *c, char *err, size_t n, int *rc) {
    model *m = calloc(1, sizeof(*m));
    if (!m) {
        *rc = model_fail(err, n, -ENOMEM, "model: out of memory");
        return NULL;
    }
    m->c = *c;
    *rc = build_table(m, err, n);
    if (*rc < 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

static int alloc_params(model *m, char *err, size_t n) {
    m->params = malloc(m->n_params * sizeof(float));
    if (!m->params)
        return model_fail(err, n, -ENOMEM, "model: out of memory for %zu parameters", m->n_params);
    return 0;
}

void model_free(model *m) {
    if (!m)
        return;
    model_lora_release(m); /* walks the layers */
    free(m->t);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->arena);
    free(m->a.res);
    model_decoder_free(m->dec);
    free(m);
}

/* ---- reading weights ---- */

#define MAX_SHARDS 256

typedef struct shards {
    sl_tensors *f[MAX_SHARDS];
    char *path[MAX_SHARDS];
    size_t n;
} shards;

static void shards_close(shards *s) {
    for (size_t i = 0; i < s->n; i++) {
        sl_tensors_close(s->f[i]);
        free(s->path[i]);
    }
    s->n = 0;
}

static int shards_add(shards *s, const char *dir, const char *file, char *err, size_t n) {
    for (size_t i = 0; i < s->n; i++) {
        const char *base = strrchr(s->path[i], '/') + 1;
        if (!strcmp(base, file))
            return 0;
    }
    if (s->n == MAX_SHARDS)
        return model_fail(err, n, -EINVAL, "%s/model.safetensors.index.json: more than %d shards",
                          dir, MAX_SHARDS);
    if (!*file || strchr(file, '/') || !strcmp(file, "..") || !strcmp(file, "."))
        return model_fail(err, n, -EINVAL,
                          "%s/model.safetensors.index.json: shard '%s' is not a "
                          "file of the folder",
                          dir, file);
    size_t len = strlen(dir) + strlen(file) + 2;
    char *path = malloc(len);
    if (!path)
        return model_fail(err, n, -ENOMEM, "model: out of memory");
    snprintf(path, len, "%s/%s", dir, file);
    int rc = sl_tensors_open(path, &s->f[s->n], err, n);
    if (rc < 0) {
        free(path);
        return rc;
    }
    s->path[s->n++] = path;
    return 0;
}

static int shards_open(shards *s, const char *dir, char *err, size_t n) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (stat(path, &st) == 0)
        return shards_add(s, dir, "model.safetensors", err, n);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (stat(path, &st) != 0)
        return model_fail(err, n, -ENOENT,
                          "%s: no model.safetensors nor model.safetensors.index.json", dir);
    bson_t *doc = NULL;
    int rc = sl_json_read(path, &doc, err, n);
    if (rc < 0)
        return rc;
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, doc, "weight_map") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &sub)) {
        bson_destroy(doc);
        return model_fail(err, n, -EINVAL, "%s: no weight_map object", path);
    }
    while (rc == 0 && bson_iter_next(&sub)) {
        if (!BSON_ITER_HOLDS_UTF8(&sub))
            rc = model_fail(err, n, -EINVAL, "%s: weight_map['%s'] is not a file name", path,
                            bson_iter_key(&sub));
        else
            rc = shards_add(s, dir, bson_iter_utf8(&sub, NULL), err, n);
    }
    if (rc == 0 && s->n == 0)
        rc = model_fail(err, n, -EINVAL, "%s: weight_map is empty", path);
    bson_destroy(doc);
    return rc;
}

static const sl_tensor *shards_find(const shards *s, const char *name, size_t *which) {
    for (size_t i = 0; i < s->n; i++) {
        const sl_tensor *x = sl_tensors_find(s->f[i], name);
        if (x) {
            *which = i;
            return x;
        }
    }
    return NULL;
}

static void shape_str(char *buf, size_t n, int ndim, const uint64_t *d) {
    if (ndim == 1)
        snprintf(buf, n, "[%llu]", (unsigned long long)d[0]);
    else
        snprintf(buf, n, "[%llu, %llu]", (unsigned long long)d[0], (unsigned long long)d[1]);
}

/* Finds each tensor of the table and checks dtype and shape, before any
 * parameter memory is allocated (a hostile config cannot make us allocate
 * more than the files hold); then, with load set, converts them. */
static int load_tensors(model *m, const shards *s, const char *dir, int load, char *err, size_t n) {
    for (size_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        size_t which = 0;
        const sl_tensor *x = shards_find(s, t->name, &which);
        if (!x && m->c.arch == MODEL_GPT2) {
            char alt[160];
            snprintf(alt, sizeof(alt), "transformer.%s", t->name);
            x = shards_find(s, alt, &which);
        }
        char want[64], got[64];
        shape_str(want, sizeof(want), t->ndim, t->shape);
        if (!x)
            return model_fail(err, n, -EINVAL, "%s: tensor %s %s (from config.json) is missing",
                              s->n == 1 ? s->path[0] : dir, t->name, want);
        sl_dtype dt = sl_tensor_dtype(x);
        if (dt != SL_DTYPE_F32 && dt != SL_DTYPE_F16 && dt != SL_DTYPE_BF16)
            return model_fail(err, n, -EINVAL,
                              "%s: tensor %s is %s; only F32, F16 and BF16 weights are supported "
                              "(quantized or integer weights are not)",
                              s->path[which], t->name, sl_dtype_name(dt));
        size_t nd = sl_tensor_ndim(x);
        uint64_t d[2] = {sl_tensor_dim(x, 0), sl_tensor_dim(x, 1)};
        if (nd != (size_t)t->ndim || d[0] != t->shape[0] || (t->ndim == 2 && d[1] != t->shape[1])) {
            if (nd <= 2)
                shape_str(got, sizeof(got), (int)nd, d);
            else
                snprintf(got, sizeof(got), "of %zu dimensions", nd);
            return model_fail(err, n, -EINVAL,
                              "%s: tensor %s has shape %s, expected %s (from config.json)",
                              s->path[which], t->name, got, want);
        }
        if (load) {
            int rc = sl_tensor_to_f32(x, m->params + t->offset, t->count, err, n);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int model_open(const char *dir, model **out, char *err, size_t n) {
    *out = NULL;
    model_config c;
    int rc = config_read(dir, &c, err, n);
    if (rc < 0)
        return rc;
    model *m = model_alloc(&c, err, n, &rc);
    if (!m)
        return rc;
    shards s = {0};
    rc = shards_open(&s, dir, err, n);
    if (rc == 0)
        rc = load_tensors(m, &s, dir, 0, err, n);
    if (rc == 0)
        rc = alloc_params(m, err, n);
    if (rc == 0)
        rc = load_tensors(m, &s, dir, 1, err, n);
    shards_close(&s);
    if (rc < 0) {
        model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- a fresh model ---- */

/* splitmix64: a seed in, a stream of well-mixed 64-bit values out. */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *s) { /* in (0, 1) */
    return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0;
}

static void fill_normal(float *p, size_t n, float std, uint64_t *s) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = next_unit(s), u2 = next_unit(s);
        double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
        p[i] = (float)(std * r * cos(a));
        if (i + 1 < n)
            p[i + 1] = (float)(std * r * sin(a));
    }
}

static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

int model_new(const model_config *cfg, uint64_t seed, model **out, char *err, size_t n) {
    *out = NULL;
    model_config c = *cfg;
    int rc = config_check(&c, "architecture", err, n);
    if (rc < 0)
        return rc;
    model *m = model_alloc(&c, err, n, &rc);
    if (!m)
        return rc;
    if ((rc = alloc_params(m, err, n)) < 0) {
        model_free(m);
        return rc;
    }
    uint64_t s = seed;
    float resid_std = 0.02f / sqrtf(2.0f * (float)c.n_layers);
    for (size_t i = 0; i < m->n_tensors; i++) {
        model_tensor *t = &m->t[i];
        float *p = m->params + t->offset;
        const char *name = t->name;
        size_t len = strlen(name);
        int is_bias = len > 5 && !strcmp(name + len - 5, ".bias");
        int is_norm = t->ndim == 1 && !is_bias;
        int resid = strstr(name, "c_proj.weight") || strstr(name, "o_proj.weight") ||
                    strstr(name, "down_proj.weight");
        if (is_bias)
            fill(p, t->count, 0.0f);
        else if (is_norm)
            fill(p, t->count, 1.0f);
        else
            fill_normal(p, t->count, resid ? resid_std : 0.02f, &s);
    }
    *out = m;
    return 0;
}

int model_estimate(const model_config *cfg, int B, int T, size_t *param_bytes, size_t *train_bytes,
                   char *err, size_t n) {
    model_config c = *cfg;
    int rc = config_check(&c, "architecture", err, n);
    if (rc < 0)
        return rc;
    if (B <= 0 || T <= 0 || T > c.context)
        return model_fail(err, n, -EINVAL, "model: a batch of %d x %d tokens (context %d)", B, T,
                          c.context);
    model *m = model_alloc(&c, err, n, &rc);
    if (!m)
        return rc;
    *param_bytes = m->n_params * sizeof(float);
    rc = model_train_estimate(m, B, T, train_bytes, err, n);
    model_free(m);
    return rc;
}

int model_train_estimate(const model *m, int B, int T, size_t *train_bytes, char *err, size_t n) {
    if (B <= 0 || T <= 0 || T > m->c.context)
        return model_fail(err, n, -EINVAL, "model: a batch of %d x %d tokens (context %d)", B, T,
                          m->c.context);
    /* Gradients and two moments (pass.c, adamw.c) for what trains: the
     * adapters (beside the base's weights) when there are any, else every
     * parameter. */
    size_t trained = m->lora.r ? 4 * m->lora.n_params : 3 * m->n_params;
    size_t floats =
        m->n_params + trained + model_arena_floats(m, B, T) + model_lora_scratch_floats(m, B * T);
    *train_bytes = floats * sizeof(float);
    return 0;
}

/* ---- writing ---- */

int model_save(const model *m, const char *dir, char *err, size_t n) {
    sl_tensors_writer *w = NULL;
    int rc = sl_tensors_writer_new(&w, err, n);
    for (size_t i = 0; rc == 0 && i < m->n_tensors; i++) {
        const model_tensor *t = &m->t[i];
        rc = sl_tensors_add_f32(w, t->name, m->params + t->offset, (size_t)t->ndim, t->shape, err,
                                n);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (rc == 0)
        rc = sl_tensors_save(w, path, err, n);
    sl_tensors_writer_free(w);
    if (rc == 0)
        rc = config_write(&m->c, dir, err, n);
    return rc;
}

/* ---- accessors ---- */

const model_config *model_get_config(const model *m) { return &m->c; }
size_t model_param_count(const model *m) { return m->n_params; }
size_t model_tensor_count(const model *m) { return m->n_tensors; }
const char *model_tensor_name(const model *m, size_t i) {
    return i < m->n_tensors ? m->t[i].name : NULL;
}
int model_tensor_shape(const model *m, size_t i, uint64_t shape[2]) {
    if (i >= m->n_tensors)
        return 0;
    shape[0] = m->t[i].shape[0];
    shape[1] = m->t[i].shape[1];
    return m->t[i].ndim;
}
float *model_tensor_data(model *m, size_t i, size_t *count) {
    if (i >= m->n_tensors)
        return NULL;
    if (count)
        *count = m->t[i].count;
    return m->params + m->t[i].offset;
}
const float *model_tensor_grad(const model *m, size_t i, size_t *count) {
    if (i >= m->n_tensors || !m->grads)
        return NULL;
    if (count)
        *count = m->t[i].count;
    return m->grads + m->t[i].offset;
}
