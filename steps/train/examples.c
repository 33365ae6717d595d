/* examples.c - examples as token sequences with a loss mask (examples.h). */
#include "examples.h"

#include "errbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *train_alpaca_prompt(const char *instruction) {
    int n = snprintf(NULL, 0, TRAIN_ALPACA_PROMPT, instruction);
    char *s = n < 0 ? NULL : malloc((size_t)n + 1);
    if (s)
        snprintf(s, (size_t)n + 1, TRAIN_ALPACA_PROMPT, instruction);
    return s;
}

/* A growing list of token ids. */
typedef struct ids {
    int32_t *v;
    size_t n, cap;
} ids;

static int ids_reserve(ids *a, size_t more) {
    if (a->n + more <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < a->n + more)
        cap *= 2;
    int32_t *v = realloc(a->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    a->v = v;
    a->cap = cap;
    return 0;
}

static int ids_push(ids *a, int32_t id) {
    int rc = ids_reserve(a, 1);
    if (!rc)
        a->v[a->n++] = id;
    return rc;
}

/* Appends the encoding of text (whole, NUL-terminated) to a. */
static int ids_encode(ids *a, const train_tokenizer *tok, const char *text, char *err,
                      size_t err_size) {
    int32_t *v = NULL;
    size_t n = 0;
    int rc = tok->encode(tok->ctx, text, strlen(text), &v, &n, err, err_size);
    if (!rc && !(rc = ids_reserve(a, n))) {
        if (n)
            memcpy(a->v + a->n, v, n * sizeof(*v));
        a->n += n;
    }
    free(v);
    return rc;
}

/* The examples' storage while building: all ids and masks one after the
 * other, sequences as offsets until the end (the arrays move). */
typedef struct builder {
    ids all;
    uint8_t *mask;
    size_t mask_cap;
    size_t *off; /* per sequence: start in all */
    train_seq *seq;
    size_t n_seq_total, seq_cap;
} builder;

/* Appends a sequence: prompt[0..np) (no targets) then resp[0..nr)
 * (targets iff response_mask, else all targets). */
static int add_seq(builder *b, const int32_t *prompt, size_t np, const int32_t *resp, size_t nr,
                   int prompt_targets) {
    if (b->n_seq_total == b->seq_cap) {
        size_t cap = b->seq_cap ? b->seq_cap * 2 : 256;
        train_seq *s = realloc(b->seq, cap * sizeof(*s));
        size_t *o = s ? realloc(b->off, cap * sizeof(*o)) : NULL;
        if (s)
            b->seq = s;
        if (!o)
            return -ENOMEM;
        b->off = o;
        b->seq_cap = cap;
    }
    size_t start = b->all.n, len = np + nr;
    if (ids_reserve(&b->all, len))
        return -ENOMEM;
    if (b->all.cap > b->mask_cap) {
        uint8_t *m = realloc(b->mask, b->all.cap);
        if (!m)
            return -ENOMEM;
        b->mask = m;
        b->mask_cap = b->all.cap;
    }
    if (np)
        memcpy(b->all.v + start, prompt, np * sizeof(*prompt));
    if (nr)
        memcpy(b->all.v + start + np, resp, nr * sizeof(*resp));
    memset(b->mask + start, prompt_targets ? 1 : 0, np);
    memset(b->mask + start + np, 1, nr);
    b->all.n += len;
    b->off[b->n_seq_total] = start;
    b->seq[b->n_seq_total++] = (train_seq){.len = len, .prompt_len = prompt_targets ? 0 : np};
    return 0;
}

static uint64_t targets_of(size_t np, size_t nr, int prompt_targets) {
    /* token 0 is never predicted */
    size_t len = np + nr;
    if (len == 0)
        return 0;
    return prompt_targets ? len - 1 : (np ? nr : nr - 1);
}

void train_examples_free(train_examples *e) {
    if (!e)
        return;
    free(e->seq);
    free(e->source);
    free(e->ids_store);
    free(e->mask_store);
    free(e);
}

int train_examples_build(const dataset *d, const train_tokenizer *tok, const train_format *fmt,
                         train_examples **out, char *err, size_t err_size) {
    *out = NULL;
    if (tok->eos_id < 0)
        return errbuf_set(err, err_size, -EINVAL, "the tokenizer has no EOS token");
    size_t L = fmt->max_seq_len;
    size_t P = fmt->max_prompt_len ? fmt->max_prompt_len : L / 2;
    if (d->kind == DATASET_PREFERENCE && L && P >= L)
        return errbuf_set(err, err_size, -EINVAL,
                          "max_prompt_len (%zu) must be below max_seq_len (%zu)", P, L);
    train_examples *e = calloc(1, sizeof(*e));
    builder b = {0};
    ids prompt = {0}, r1 = {0}, r2 = {0};
    int rc = e ? 0 : -ENOMEM;
    if (e)
        e->n_seq = d->kind == DATASET_PREFERENCE ? 2 : 1;
    if (!rc && !(e->source = malloc((d->n ? d->n : 1) * sizeof(*e->source))))
        rc = -ENOMEM;
    for (size_t i = 0; !rc && i < d->n; i++) {
        const dataset_example *x = &d->ex[i];
        prompt.n = r1.n = r2.n = 0;
        if (tok->bos_id >= 0)
            rc = ids_push(&prompt, tok->bos_id);
        if (!rc && d->kind != DATASET_TEXT) {
            char *p = train_alpaca_prompt(x->a);
            rc = p ? ids_encode(&prompt, tok, p, err, err_size) : -ENOMEM;
            free(p);
        }
        if (!rc)
            rc = ids_encode(&r1, tok, d->kind == DATASET_TEXT ? x->a : x->b, err, err_size);
        if (!rc)
            rc = ids_push(&r1, tok->eos_id);
        if (!rc && d->kind == DATASET_PREFERENCE &&
            !(rc = ids_encode(&r2, tok, x->c, err, err_size)))
            rc = ids_push(&r2, tok->eos_id);
        if (rc)
            break;
        int prompt_targets =
            d->kind == DATASET_TEXT || (d->kind == DATASET_INSTRUCTION && !fmt->response_only);
        size_t np = prompt.n, n1 = r1.n, n2 = r2.n;
        int cut = 0;
        if (d->kind == DATASET_PREFERENCE) {
            size_t longer = n1 > n2 ? n1 : n2;
            if (L && np + longer > L) {
                if (fmt->overlong == TRAIN_SKIP) {
                    e->skipped++;
                    continue;
                }
                cut = 1;
                if (np > P) { /* keep_end */
                    memmove(prompt.v, prompt.v + (np - P), P * sizeof(*prompt.v));
                    np = P;
                }
                if (np + longer > L) {
                    n1 = n1 < L - P ? n1 : L - P;
                    n2 = n2 < L - P ? n2 : L - P;
                }
            }
        } else if (L && np + n1 > L) {
            if (fmt->overlong == TRAIN_SKIP) {
                e->skipped++;
                continue;
            }
            cut = 1;
            if (np >= L) {
                np = L;
                n1 = 0;
            } else {
                n1 = L - np;
            }
        }
        if (targets_of(np, n1, prompt_targets) == 0 ||
            (d->kind == DATASET_PREFERENCE && (n1 == 0 || n2 == 0))) {
            e->skipped++; /* nothing left to learn from */
            continue;
        }
        e->truncated += (size_t)cut;
        rc = add_seq(&b, prompt.v, np, r1.v, n1, prompt_targets);
        if (!rc && d->kind == DATASET_PREFERENCE)
            rc = add_seq(&b, prompt.v, np, r2.v, n2, 0);
        if (rc)
            break;
        e->tokens += np + n1 + (d->kind == DATASET_PREFERENCE ? np + n2 : 0);
        e->targets += targets_of(np, n1, prompt_targets) + (d->kind == DATASET_PREFERENCE ? n2 : 0);
        e->source[e->n++] = i;
    }
    free(prompt.v);
    free(r1.v);
    free(r2.v);
    if (!rc && e->n == 0)
        rc = errbuf_set(err, err_size, -EINVAL,
                        "no example fits: %zu of %zu left out as longer than max_seq_len %zu "
                        "or without a response",
                        e->skipped, d->n, L);
    else if (rc == -ENOMEM)
        errbuf_set(err, err_size, rc, "out of memory building the examples");
    if (rc) {
        free(b.all.v);
        free(b.mask);
        free(b.off);
        free(b.seq);
        train_examples_free(e);
        return rc;
    }
    e->ids_store = b.all.v;
    e->mask_store = b.mask;
    e->seq = b.seq;
    for (size_t s = 0; s < b.n_seq_total; s++) {
        e->seq[s].ids = b.all.v + b.off[s];
        e->seq[s].mask = b.mask + b.off[s];
    }
    free(b.off);
    *out = e;
    return 0;
}
