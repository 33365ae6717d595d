/* model_command.c - sluice-model, the program `sluice model` runs
 * (docs/cli.md, "model"): what a Hugging Face model folder holds (info),
 * text generated from it with a KV cache (generate), and its mean
 * next-token loss on a text file (score). DIR is a folder, else what
 * sluice names (`sluice artifacts path --type model DIR`): an artifact id,
 * RUN:STEP.OUTPUT or the id of the step that made it. */
#include <sluice/artifacts.h>
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "command.h"
#include "model_folder.h"

static const command_info info = {
    "model",
    "inspect, run and score a Hugging Face model folder (info, generate, score)",
    "usage: sluice model info DIR [--json]\n"
    "       sluice model generate DIR PROMPT [--max-tokens N] [--temperature T] [--top-p P]\n"
    "                             [--top-k K] [--seed S] [--chat]\n"
    "       sluice model score DIR FILE [--json]\n"
    "\n"
    "DIR is a Hugging Face model folder (config.json, model.safetensors, tokenizer.json), an\n"
    "artifact id, RUN:STEP.OUTPUT, or the id of the step that trained it. A folder that also\n"
    "holds a LoRA adapter (adapter_config.json, adapter_model.safetensors) is used with it.\n"
    "\n"
    "  info       architecture, parameters, dtype on disk, tokenizer, context length\n"
    "  generate   prints the text as it is generated, until EOS, --max-tokens (default 128)\n"
    "             or the model's context (said on stderr);\n"
    "             --temperature 0 is greedy (default 0.8), --top-p (default 0.95), --top-k\n"
    "             (default 0: off), --seed (default 0); --chat wraps PROMPT in the Alpaca\n"
    "             template the train step's sft method uses\n"
    "  score      mean next-token loss and perplexity of FILE's text, in windows of the\n"
    "             model's context; --json: {\"tokens\": N, \"loss\": x, \"perplexity\": y}\n",
};

#define bad(...) command_bad(&info, __VA_ARGS__)

static int load(const char *dir, int need_tok, model_folder *l) {
    char err[1024];
    if (model_folder_open(dir, need_tok, l, err, sizeof(err)) != 0) {
        model_folder_close(l);
        return bad("%s", err);
    }
    return 0;
}

static int cmd_info(const char *dir, int json) {
    model_folder l;
    int rc = load(dir, 0, &l);
    if (rc)
        return rc;
    const model_config *c = model_get_config(l.m);
    char path[4200], err[1024], dtype[16] = "?";
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    sl_tensors *t = NULL;
    if (sl_tensors_open(path, &t, err, sizeof(err)) == 0 && sl_tensors_count(t) > 0)
        snprintf(dtype, sizeof(dtype), "%s", sl_dtype_name(sl_tensor_dtype(sl_tensors_at(t, 0))));
    else
        snprintf(dtype, sizeof(dtype), "sharded");
    sl_tensors_close(t);
    size_t tv = l.tok ? tok_vocab_size(l.tok) : 0;
    if (json) {
        printf("{\"model_type\": \"%s\", \"parameters\": %zu, \"dtype\": \"%s\", \"layers\": %d, "
               "\"d_model\": %d, \"heads\": %d, \"kv_heads\": %d, \"d_ff\": %d, \"vocab\": %d, "
               "\"context\": %d, \"tokenizer_tokens\": %zu, \"lora_r\": %d}\n",
               c->model_type, model_param_count(l.m), dtype, c->n_layers, c->d_model, c->n_heads,
               c->n_kv_heads, c->d_ff, c->vocab, c->context, tv, l.lora_r);
    } else {
        printf("architecture  %s (%d layers, d_model %d, %d heads, %d kv heads, d_ff %d)\n",
               c->model_type, c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->d_ff);
        printf("parameters    %zu\n", model_param_count(l.m));
        printf("dtype         %s\n", dtype);
        printf("vocabulary    %d\n", c->vocab);
        printf("context       %d\n", c->context);
        if (l.lora_r)
            printf("adapter       LoRA, r %d (PEFT's files; applied to the base above)\n",
                   l.lora_r);
        if (l.tok)
            printf("tokenizer     %s (%zu tokens)\n", l.tok_path, tv);
        else
            printf("tokenizer     none\n");
    }
    model_folder_close(&l);
    return COMMAND_DONE;
}

/* Prints each token's bytes as they come. */
static int print_piece(void *arg, const char *text, size_t len) {
    (void)arg;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_generate(const char *dir, const char *prompt, int chat, double max_tokens,
                        const sample_params *sp) {
    model_folder l;
    int rc = load(dir, 1, &l);
    if (rc)
        return rc;
    char err[1024];
    const model_config *c = model_get_config(l.m);
    model_generation g;
    if (model_folder_generate(&l, prompt, chat, (size_t)max_tokens, sp, print_piece, NULL, &g, err,
                              sizeof(err)) != 0) {
        model_folder_close(&l);
        return bad("%s", err);
    }
    putchar('\n');
    if (g.prompt_cut)
        fprintf(stderr,
                "sluice model: the prompt is %zu tokens, the context %d: its first %zu tokens "
                "were left out\n",
                g.prompt_tokens + g.prompt_cut, c->context, g.prompt_cut);
    /* The context, not --max-tokens, may end the text: said on stderr,
     * else a cut answer reads like the model's own (a trained answer that
     * did not fit in max_seq_len was cut the same way). */
    if (g.context_ended)
        fprintf(stderr,
                "sluice model: stopped at the model's context of %d tokens (%zu of prompt, %zu "
                "generated), before EOS\n",
                c->context, g.prompt_tokens, g.new_tokens);
    free(g.text);
    model_folder_close(&l);
    return COMMAND_DONE;
}

static int cmd_score(const char *dir, const char *file, int json) {
    FILE *f = fopen(file, "rb");
    if (!f)
        return bad("%s: %s", file, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char chunk[65536];
    size_t n;
    while (m && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    if (!m || fclose(m) != 0)
        return bad("%s: out of memory", file);
    model_folder l;
    int rc = load(dir, 1, &l);
    if (rc) {
        free(text);
        return rc;
    }
    char err[1024];
    tok_ids ids = {0};
    const model_config *c = model_get_config(l.m);
    if (tok_encode(l.tok, text, len, 0, &ids, err, sizeof(err)) != 0)
        rc = bad("%s: %s", file, err);
    else if (ids.n < 2)
        rc = bad("%s: fewer than two tokens of text to score", file);
    /* Windows of the context, each scoring its tokens after the first
     * (llama.cpp's perplexity scores the second half of overlapping
     * windows; plain windows are simpler and say the same for a ranking). */
    size_t T = (size_t)c->context;
    int32_t *targets = rc ? NULL : malloc(T * sizeof(int32_t));
    if (!rc && !targets)
        rc = bad("out of memory");
    double sum = 0;
    uint64_t count = 0;
    for (size_t at = 0; !rc && at + 1 < ids.n; at += T - 1) {
        size_t w = ids.n - at < T ? ids.n - at : T;
        for (size_t k = 0; k < w; k++)
            targets[k] = k + 1 < w ? ids.ids[at + k + 1] : -1;
        float loss;
        if (model_forward(l.m, ids.ids + at, targets, NULL, 1, (int)w, &loss, err, sizeof(err)) !=
            0)
            rc = bad("%s", err);
        else {
            sum += (double)loss * (double)(w - 1);
            count += w - 1;
        }
        if (w < T)
            break;
    }
    if (!rc) {
        double mean = sum / (double)count;
        if (json)
            printf("{\"tokens\": %zu, \"loss\": %.6f, \"perplexity\": %.6f}\n", ids.n, mean,
                   exp(mean));
        else
            printf("tokens      %zu\nloss        %.4f\nperplexity  %.4f\n", ids.n, mean, exp(mean));
    }
    free(targets);
    tok_ids_free(&ids);
    model_folder_close(&l);
    free(text);
    return rc;
}

int main(int argc, char **argv) {
    int status = command_standard(&info, argc, argv);
    if (status >= 0)
        return status;
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"chat", no_argument, NULL, 'c'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 't'},
        {"top-p", required_argument, NULL, 'p'},
        {"top-k", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, chat = 0, c;
    double max_tokens = 128, v;
    sample_params sp = sample_params_default();
    sp.temperature = 0.8f;
    sp.top_p = 0.95f;
    command_getopt_begin();
    while ((c = command_getopt(&info, argc, argv, ":", longs)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'c':
            chat = 1;
            break;
        case 'n':
            if (command_number(&info, "max-tokens", optarg, 1, 1 << 20, &max_tokens))
                return COMMAND_BAD_INPUT;
            break;
        case 't':
            if (command_number(&info, "temperature", optarg, 0, 100, &v))
                return COMMAND_BAD_INPUT;
            sp.temperature = (float)v;
            break;
        case 'p':
            if (command_number(&info, "top-p", optarg, 0, 1, &v))
                return COMMAND_BAD_INPUT;
            sp.top_p = (float)v;
            break;
        case 'k':
            if (command_number(&info, "top-k", optarg, 0, 1 << 24, &v))
                return COMMAND_BAD_INPUT;
            sp.top_k = (size_t)v;
            break;
        case 's':
            if (command_number(&info, "seed", optarg, 0, 1.8e19, &v))
                return COMMAND_BAD_INPUT;
            sp.seed = (uint64_t)v;
            break;
        default:
            return COMMAND_BAD_INPUT;
        }
    }
    int nargs = argc - optind;
    const char *sub = nargs > 0 ? argv[optind] : "";
    int want = strcmp(sub, "info") == 0                                    ? 2
               : strcmp(sub, "generate") == 0 || strcmp(sub, "score") == 0 ? 3
                                                                           : 0;
    if (!want)
        return bad("give info, generate or score (see 'sluice model --help')");
    if (nargs != want)
        return bad("%s takes %s (see 'sluice model --help')", sub,
                   want == 2                   ? "DIR"
                   : strcmp(sub, "score") == 0 ? "DIR FILE"
                                               : "DIR PROMPT");
    char folder[4096];
    if (command_folder(&info, argv[optind + 1], "model", folder, sizeof(folder)))
        return COMMAND_BAD_INPUT;
    openblas_set_num_threads(1);
    if (strcmp(sub, "info") == 0)
        return cmd_info(folder, json);
    if (strcmp(sub, "generate") == 0)
        return cmd_generate(folder, argv[optind + 2], chat, max_tokens, &sp);
    return cmd_score(folder, argv[optind + 2], json);
}
