/* model_folder.c - a trained model's folder opened for use (model_folder.h). */
#include "model_folder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int32_t model_folder_find_eos(const tok_tokenizer *t, const model_config *c) {
    if (c && c->eos_token_id >= 0)
        return c->eos_token_id;
    static const char *names[] = {"<|endoftext|>", "</s>", "<|end_of_text|>", "<|im_end|>",
                                  "<eos>"};
    for (size_t i = 0; t && i < sizeof(names) / sizeof(names[0]); i++) {
        int32_t id = tok_token_id(t, names[i]);
        if (id >= 0)
            return id;
    }
    return -1;
}

int model_folder_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                        char *err, size_t err_size) {
    tok_ids v = {0};
    int rc = tok_encode(ctx, text, len, 0, &v, err, err_size);
    if (rc != 0) {
        tok_ids_free(&v);
        return rc;
    }
    if (!v.ids && !(v.ids = malloc(sizeof(int32_t))))
        return -ENOMEM;
    *ids = v.ids;
    *n_ids = v.n;
    return 0;
}

void model_folder_close(model_folder *f) {
    model_free(f->m);
    tok_free(f->tok);
    f->m = NULL;
    f->tok = NULL;
}

int model_folder_open(const char *dir, int need_tok, model_folder *f, char *err, size_t err_size) {
    memset(f, 0, sizeof(*f));
    f->eos_id = f->bos_id = -1;
    /* a LoRA output (base plus adapter) is used with its adapter */
    int rc = model_open_adapted(dir, &f->m, &f->lora_r, err, err_size);
    if (rc != 0)
        return rc;
    snprintf(f->tok_path, sizeof(f->tok_path), "%s/tokenizer.json", dir);
    if ((rc = tok_load(f->tok_path, &f->tok, err, err_size)) != 0) {
        f->tok = NULL;
        if (need_tok)
            return rc;
    }
    const model_config *c = model_get_config(f->m);
    f->eos_id = model_folder_find_eos(f->tok, c);
    if (c->arch == MODEL_LLAMA && c->bos_token_id >= 0 && c->bos_token_id != f->eos_id)
        f->bos_id = c->bos_token_id;
    return 0;
}

int model_folder_train_tokenizer(const model_folder *f, train_tokenizer *out, char *err,
                                 size_t err_size) {
    if (!f->tok) {
        snprintf(err, err_size, "%s: no tokenizer", f->tok_path);
        return -EINVAL;
    }
    if (f->eos_id < 0) {
        snprintf(err, err_size,
                 "the tokenizer %s has no end-of-text token and the model no eos_token_id",
                 f->tok_path);
        return -EINVAL;
    }
    *out = (train_tokenizer){f->tok, model_folder_encode, f->bos_id, f->eos_id};
    return 0;
}

/* The prompt's ids (BOS first when the model has one) into *ids. */
static int prompt_ids(model_folder *f, const char *prompt, int chat, tok_ids *ids, char *err,
                      size_t err_size) {
    char *text = chat ? train_alpaca_prompt(prompt) : strdup(prompt);
    if (!text) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    if (f->bos_id >= 0) {
        if (!(ids->ids = malloc(sizeof(int32_t))))
            rc = -ENOMEM;
        else
            ids->ids[0] = f->bos_id, ids->n = 1, ids->cap = 1;
    }
    if (rc == 0)
        rc = tok_encode(f->tok, text, strlen(text), 0, ids, err, err_size);
    else
        snprintf(err, err_size, "out of memory");
    free(text);
    if (rc == 0 && ids->n == 0) {
        snprintf(err, err_size, "the prompt is empty");
        rc = -EINVAL;
    }
    return rc;
}

int model_folder_generate(model_folder *f, const char *prompt, int chat, size_t max_new,
                          const sample_params *sp, model_folder_piece_fn on_piece, void *arg,
                          model_generation *out, char *err, size_t err_size) {
    memset(out, 0, sizeof(*out));
    if (!f->tok) {
        snprintf(err, err_size, "%s: no tokenizer", f->tok_path);
        return -EINVAL;
    }
    const model_config *c = model_get_config(f->m);
    size_t vocab = (size_t)c->vocab, context = (size_t)c->context;
    tok_ids ids = {0};
    sampler *s = NULL;
    float *scores = NULL;
    int32_t *hist = NULL;
    int rc = prompt_ids(f, prompt, chat, &ids, err, err_size);
    if (rc != 0)
        goto done;
    size_t keep = ids.n;
    if (keep >= context) { /* keep the prompt's end, room for one token */
        keep = context - 1;
        out->prompt_cut = ids.n - keep;
        memmove(ids.ids, ids.ids + out->prompt_cut, keep * sizeof(int32_t));
        ids.n = keep;
    }
    out->prompt_tokens = keep;
    size_t max_len = keep + max_new;
    out->context_ended = max_len > context;
    if (out->context_ended)
        max_len = context;
    if ((rc = model_decode_reset(f->m, (int)max_len, err, err_size)) != 0 ||
        (rc = sampler_new(sp, vocab, &s, err, err_size)) != 0)
        goto done;
    scores = malloc(vocab * sizeof(float));
    hist = malloc(max_len * sizeof(int32_t));
    if (!scores || !hist) {
        snprintf(err, err_size, "out of memory");
        rc = -ENOMEM;
        goto done;
    }
    memcpy(hist, ids.ids, ids.n * sizeof(int32_t));
    const float *logits = NULL;
    for (size_t i = 0; i < ids.n && rc == 0; i++)
        rc = model_decode(f->m, ids.ids[i], &logits, err, err_size);
    size_t n = ids.n;
    for (; rc == 0 && n < max_len; n++) {
        memcpy(scores, logits, vocab * sizeof(float));
        int32_t next = sampler_next(s, scores, hist, n);
        if (next == f->eos_id) {
            out->eos = 1;
            out->context_ended = 0;
            break;
        }
        hist[n] = next;
        if (on_piece) {
            char *piece;
            size_t len;
            int stop = 0;
            if (tok_decode(f->tok, &next, 1, 1, &piece, &len, err, err_size) == 0) {
                stop = on_piece(arg, piece, len);
                free(piece);
            }
            if (stop) {
                out->context_ended = 0;
                n++;
                break;
            }
        }
        if (n + 1 < max_len)
            rc = model_decode(f->m, next, &logits, err, err_size);
    }
    if (rc == 0) {
        out->new_tokens = n - ids.n;
        rc = tok_decode(f->tok, hist + ids.n, out->new_tokens, 1, &out->text, &out->len, err,
                        err_size);
    }
done:
    if (rc != 0) {
        free(out->text);
        out->text = NULL;
    }
    free(scores);
    free(hist);
    sampler_free(s);
    tok_ids_free(&ids);
    return rc;
}
