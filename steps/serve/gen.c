/* gen.c - sluice-serve's generation slots (serve_gen.h). One mutex guards
 * the queue, what slots hand back and the batched step's hand-over; the
 * loop takes a job's pending text under it when the async fires. Sampling,
 * stop strings and the BOS/EOS rules are those of `sluice model generate`. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "sample.h"
#include "serve_gen.h"
#include "tokenizer.h"

struct gen_job_private {
    gen_job *next;                  /* the queue */
    gen_job *live_prev, *live_next; /* every job submitted and not yet freed */
    atomic_int cancel;
    /* under the pool's mutex: */
    api_buf pending;
    int dirty, finished, status;
    char message[256];
    const char *finish_reason;
    long prompt_tokens, completion_tokens;
};

/* A slot's place in the batched step (under the pool's mutex). */
enum { STEP_NONE, STEP_POSTED, STEP_RUNNING };

typedef struct slot {
    gen_pool *pool;
    uv_thread_t thread;
    model_decoder *dec;
    tok_tokenizer *tok;
    float *scores;
    int32_t *hist;
    /* the step it waits for: its token in, the logits or an error out */
    int step;
    int32_t step_token;
    const float *step_logits;
    int step_rc;
    char step_err[256];
} slot;

struct gen_pool {
    uv_loop_t *loop;
    const model *m;
    gen_pool_config c;
    uv_async_t async;
    uv_mutex_t mu;
    uv_cond_t cond;
    gen_job *head, *tail; /* the queue */
    int queued, running, stopping;
    gen_job *live; /* the loop's */
    slot *slots;
    int n_slots;
    int32_t eos, bos;
    /* The batched decode step (under mu): slots between their prompt and
     * their end are decoding; each posts its next token and waits; once
     * every decoding slot has posted, one of the waiting slots' threads
     * (the leader) runs them all as one model_decoder_step_batch and wakes
     * the others. */
    uv_cond_t step_done;
    int decoding, posted, stepping;
    model_decoder **batch_dec; /* the leader's, n_slots each */
    int32_t *batch_tok;
    const float **batch_logits;
    slot **batch_slot;
};

gen_job *gen_job_new(void) {
    gen_job *j = calloc(1, sizeof(*j));
    if (j && !(j->priv = calloc(1, sizeof(*j->priv)))) {
        free(j);
        return NULL;
    }
    return j;
}

void gen_job_free(gen_job *j) {
    if (!j)
        return;
    api_request_free(&j->req);
    if (j->extra_free)
        j->extra_free(j->extra);
    api_buf_free(&j->priv->pending);
    free(j->priv);
    free(j);
}

/* ---- the slots ---- */

static void hand_back(gen_pool *p, gen_job *j, const char *text, size_t len) {
    uv_mutex_lock(&p->mu);
    api_buf_add(&j->priv->pending, text, len);
    j->priv->dirty = 1;
    uv_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

static void finish(gen_pool *p, gen_job *j, int status, const char *message, const char *reason,
                   long prompt_tokens, long completion_tokens) {
    uv_mutex_lock(&p->mu);
    struct gen_job_private *q = j->priv;
    q->finished = 1;
    q->dirty = 1;
    q->status = status;
    size_t n = message ? strlen(message) : 0;
    if (n >= sizeof(q->message))
        n = sizeof(q->message) - 1;
    memcpy(q->message, message ? message : "", n);
    q->message[n] = 0;
    q->finish_reason = reason;
    q->prompt_tokens = prompt_tokens;
    q->completion_tokens = completion_tokens;
    p->running--;
    uv_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

/* A batch may run when every decoding slot has posted its token. */
static int batch_ready(const gen_pool *p) { return p->decoding > 0 && p->posted == p->decoding; }

/* s enters or leaves the decoding slots (under no lock); one leaving may
 * complete the others' batch: a waiting one then leads it. */
static void decoding_add(gen_pool *p, int k) {
    uv_mutex_lock(&p->mu);
    p->decoding += k;
    if (batch_ready(p))
        uv_cond_broadcast(&p->step_done);
    uv_mutex_unlock(&p->mu);
}

/* The leader's work, entered and left under mu: one
 * model_decoder_step_batch over the posted slots (every weight read once
 * for all their tokens; one slot alone is model_decoder_step, bit for bit,
 * on its own thread with no hand-over). The slots of a pool share its one
 * model (a reload makes a pool of its own), so they always batch together. */
static void lead_batch(gen_pool *p) {
    char err[256];
    p->stepping = 1;
    int B = 0;
    for (int i = 0; i < p->n_slots; i++) {
        slot *s = &p->slots[i];
        if (s->step != STEP_POSTED)
            continue;
        s->step = STEP_RUNNING;
        p->batch_slot[B] = s;
        p->batch_dec[B] = s->dec;
        p->batch_tok[B++] = s->step_token;
    }
    p->posted -= B;
    uv_mutex_unlock(&p->mu);
    /* the batch's slots wait, so nothing else touches their decoders */
    for (int at = 0; at < B; at += MODEL_BATCH_MAX) {
        int k = B - at < MODEL_BATCH_MAX ? B - at : MODEL_BATCH_MAX;
        int r = model_decoder_step_batch(p->batch_dec + at, p->batch_tok + at, k,
                                         p->batch_logits + at, err, sizeof(err));
        for (int b = at; b < at + k; b++) {
            slot *s = p->batch_slot[b];
            s->step_rc = r;
            if (r)
                snprintf(s->step_err, sizeof(s->step_err), "%s", err);
            s->step_logits = r ? NULL : p->batch_logits[b];
        }
    }
    uv_mutex_lock(&p->mu);
    for (int b = 0; b < B; b++)
        p->batch_slot[b]->step = STEP_NONE;
    p->stepping = 0;
    uv_cond_broadcast(&p->step_done);
}

/* token into s's cache by the next batched step, with every other
 * decoding slot's: as model_decoder_step, its logits s's decoder's. The
 * slot whose post completes the batch, or a waiting one that finds it
 * complete, runs it. */
static int batched_step(slot *s, int32_t token, const float **logits, char *err, size_t size) {
    gen_pool *p = s->pool;
    uv_mutex_lock(&p->mu);
    s->step_token = token;
    s->step = STEP_POSTED;
    p->posted++;
    while (s->step != STEP_NONE) {
        if (!p->stepping && batch_ready(p))
            lead_batch(p);
        else
            uv_cond_wait(&p->step_done, &p->mu);
    }
    int rc = s->step_rc;
    *logits = s->step_logits;
    if (rc)
        snprintf(err, size, "%s", s->step_err);
    uv_mutex_unlock(&p->mu);
    return rc;
}

static void run(slot *s, gen_job *j) {
    gen_pool *p = s->pool;
    const model_config *c = model_get_config(p->m);
    const api_request *r = &j->req;
    char err[512];
    tok_ids ids = {0};
    sampler *smp = NULL;
    stop_matcher *stops = NULL;
    long generated = 0;
    int decoding = 0; /* among the slots the batched step waits for */
    const char *reason = "length";
    if (j->prepare) {
        int status = j->prepare(j, err, sizeof(err));
        if (status) {
            finish(p, j, status == GEN_PREPARED ? 0 : status, err, "stop", 0, 0);
            return;
        }
    }
    if (c->arch == MODEL_LLAMA && p->bos >= 0 && p->bos != p->eos) {
        if (!(ids.ids = malloc(sizeof(int32_t)))) {
            finish(p, j, 500, "out of memory", NULL, 0, 0);
            return;
        }
        ids.ids[0] = p->bos, ids.n = 1, ids.cap = 1;
    }
    if (tok_encode(s->tok, r->prompt, strlen(r->prompt), 0, &ids, err, sizeof(err)) != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "the prompt: %s", err);
        finish(p, j, 400, msg, NULL, 0, 0);
        goto done;
    }
    long n_prompt = (long)ids.n;
    if (ids.n == 0) {
        finish(p, j, 400, "the prompt is empty", NULL, 0, 0);
        goto done;
    }
    if (ids.n >= (size_t)c->context) {
        snprintf(err, sizeof(err),
                 "the prompt is %zu tokens; the model's context is %d, with room for at least "
                 "one token to generate",
                 ids.n, c->context);
        finish(p, j, 400, err, NULL, n_prompt, 0);
        goto done;
    }
    size_t max_len = (size_t)c->context;
    if (r->max_tokens > 0 && ids.n + (size_t)r->max_tokens < max_len)
        max_len = ids.n + (size_t)r->max_tokens;
    sample_params sp = sample_params_default();
    sp.temperature = (float)r->temperature;
    sp.top_p = (float)r->top_p;
    /* without a seed, a different draw each request, as OpenAI's API */
    sp.seed = r->has_seed ? r->seed : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)j;
    if (model_decoder_reset(s->dec, (int)max_len, err, sizeof(err)) != 0 ||
        sampler_new(&sp, (size_t)c->vocab, &smp, err, sizeof(err)) != 0 ||
        stop_matcher_new((const char *const *)r->stops, r->n_stops, &stops, err, sizeof(err)) !=
            0) {
        finish(p, j, 500, err, NULL, n_prompt, 0);
        goto done;
    }
    memcpy(s->hist, ids.ids, ids.n * sizeof(int32_t));
    const float *logits = NULL;
    /* The prompt in matrix products of many tokens (one read of each weight
     * for all of them), not one token at a time. */
    if (ids.n &&
        (atomic_load(&j->priv->cancel) ||
         model_decoder_prefill(s->dec, ids.ids, (int)ids.n, &logits, err, sizeof(err)) != 0)) {
        finish(p, j, atomic_load(&j->priv->cancel) ? 499 : 500, err, NULL, n_prompt, 0);
        goto done;
    }
    int stopped = 0;
    decoding_add(p, 1);
    decoding = 1;
    for (size_t n = ids.n; n < max_len; n++) {
        if (atomic_load(&j->priv->cancel)) {
            finish(p, j, 499, "cancelled", NULL, n_prompt, generated);
            goto done;
        }
        memcpy(s->scores, logits, (size_t)c->vocab * sizeof(float));
        int32_t next = sampler_next(smp, s->scores, s->hist, n);
        if (next == p->eos) {
            reason = "stop";
            break;
        }
        s->hist[n] = next;
        generated++;
        char *piece;
        size_t len;
        if (tok_decode(s->tok, &next, 1, 1, &piece, &len, err, sizeof(err)) == 0) {
            const char *out;
            size_t out_len;
            int hit = stop_matcher_feed(stops, piece, len, &out, &out_len);
            free(piece);
            if (hit < 0) {
                finish(p, j, 500, "out of memory", NULL, n_prompt, generated);
                goto done;
            }
            if (out_len)
                hand_back(p, j, out, out_len);
            if (hit) {
                stopped = 1;
                reason = "stop";
                break;
            }
        }
        if (n + 1 < max_len && batched_step(s, next, &logits, err, sizeof(err)) != 0) {
            finish(p, j, 500, err, NULL, n_prompt, generated);
            goto done;
        }
    }
    if (!stopped) {
        const char *out;
        size_t out_len;
        stop_matcher_flush(stops, &out, &out_len);
        if (out_len)
            hand_back(p, j, out, out_len);
    }
    finish(p, j, 0, NULL, reason, n_prompt, generated);
done:
    if (decoding)
        decoding_add(p, -1);
    stop_matcher_free(stops);
    sampler_free(smp);
    tok_ids_free(&ids);
}

static void slot_main(void *arg) {
    slot *s = arg;
    gen_pool *p = s->pool;
    for (;;) {
        uv_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            uv_cond_wait(&p->cond, &p->mu);
        if (p->stopping) {
            uv_mutex_unlock(&p->mu);
            return;
        }
        gen_job *j = p->head;
        p->head = j->priv->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->running++;
        uv_mutex_unlock(&p->mu);
        if (atomic_load(&j->priv->cancel))
            finish(p, j, 499, "cancelled", NULL, 0, 0);
        else
            run(s, j);
    }
}

/* ---- the loop's side ---- */

static void unlink_live(gen_pool *p, gen_job *j) {
    struct gen_job_private *q = j->priv;
    if (q->live_prev)
        q->live_prev->priv->live_next = q->live_next;
    else
        p->live = q->live_next;
    if (q->live_next)
        q->live_next->priv->live_prev = q->live_prev;
}

static void on_async(uv_async_t *a) {
    gen_pool *p = a->data;
    for (gen_job *j = p->live, *next; j; j = next) {
        next = j->priv->live_next;
        uv_mutex_lock(&p->mu);
        struct gen_job_private *q = j->priv;
        if (!q->dirty) {
            uv_mutex_unlock(&p->mu);
            continue;
        }
        q->dirty = 0;
        api_buf text = q->pending;
        memset(&q->pending, 0, sizeof(q->pending));
        int done = q->finished;
        if (done) {
            j->status = q->status;
            memcpy(j->message, q->message, sizeof(j->message));
            j->finish_reason = q->finish_reason;
            j->prompt_tokens = q->prompt_tokens;
            j->completion_tokens = q->completion_tokens;
        }
        uv_mutex_unlock(&p->mu);
        j->text = text.p;
        j->text_len = text.len;
        j->done = done;
        /* a cancelled job still says how far it went (its tokens were made) */
        if (j->user ? text.len || done : done)
            p->c.on_event(j, p->c.ctx);
        api_buf_free(&text);
        j->text = NULL, j->text_len = 0;
        if (done) {
            unlink_live(p, j);
            gen_job_free(j);
        }
    }
    /* last: on_empty may free p */
    if (!p->live && p->c.on_empty)
        p->c.on_empty(p, p->c.ctx);
}

int gen_pool_idle(const gen_pool *p) { return p->live == NULL; }

int gen_pool_submit(gen_pool *p, gen_job *j) {
    uv_mutex_lock(&p->mu);
    if (p->queued >= p->c.queue + (p->c.slots - p->running) || p->stopping) {
        uv_mutex_unlock(&p->mu);
        return -EAGAIN;
    }
    j->priv->next = NULL;
    if (p->tail)
        p->tail->priv->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    j->priv->live_prev = NULL;
    j->priv->live_next = p->live;
    if (p->live)
        p->live->priv->live_prev = j;
    p->live = j;
    return 0;
}

void gen_pool_cancel(gen_pool *p, gen_job *j) {
    (void)p;
    j->user = NULL;
    atomic_store(&j->priv->cancel, 1);
}

void gen_pool_counts(gen_pool *p, int *queued, int *running) {
    uv_mutex_lock(&p->mu);
    *queued = p->queued;
    *running = p->running;
    uv_mutex_unlock(&p->mu);
}

static void slots_free(gen_pool *p) {
    for (int i = 0; i < p->n_slots; i++) {
        model_decoder_free(p->slots[i].dec);
        tok_free(p->slots[i].tok);
        free(p->slots[i].scores);
        free(p->slots[i].hist);
    }
    free(p->slots);
    free(p->batch_dec);
    free(p->batch_tok);
    free(p->batch_logits);
    free(p->batch_slot);
}

int gen_pool_new(uv_loop_t *loop, const model *m, const gen_pool_config *c, gen_pool **out,
                 char *err, size_t err_size) {
    *out = NULL;
    gen_pool *p = calloc(1, sizeof(*p));
    if (!p || !(p->slots = calloc((size_t)c->slots, sizeof(slot)))) {
        free(p);
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    p->loop = loop;
    p->m = m;
    p->c = *c;
    p->n_slots = c->slots;
    const model_config *mc = model_get_config(m);
    p->bos = mc->bos_token_id;
    int rc = 0;
    p->batch_dec = calloc((size_t)c->slots, sizeof(*p->batch_dec));
    p->batch_tok = calloc((size_t)c->slots, sizeof(*p->batch_tok));
    p->batch_logits = calloc((size_t)c->slots, sizeof(*p->batch_logits));
    p->batch_slot = calloc((size_t)c->slots, sizeof(*p->batch_slot));
    if (!p->batch_dec || !p->batch_tok || !p->batch_logits || !p->batch_slot) {
        snprintf(err, err_size, "out of memory");
        rc = -ENOMEM;
    }
    for (int i = 0; i < c->slots && !rc; i++) {
        slot *s = &p->slots[i];
        s->pool = p;
        if ((rc = tok_load(c->tok_path, &s->tok, err, err_size)) != 0 ||
            (rc = model_decoder_new(m, mc->context, &s->dec, err, err_size)) != 0)
            break;
        s->scores = malloc((size_t)mc->vocab * sizeof(float));
        s->hist = malloc((size_t)mc->context * sizeof(int32_t));
        if (!s->scores || !s->hist) {
            snprintf(err, err_size, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc) {
        slots_free(p);
        free(p);
        return rc;
    }
    p->eos =
        mc->eos_token_id >= 0 ? mc->eos_token_id : tok_token_id(p->slots[0].tok, "<|endoftext|>");
    uv_mutex_init(&p->mu);
    uv_cond_init(&p->cond);
    uv_cond_init(&p->step_done);
    uv_async_init(loop, &p->async, on_async);
    p->async.data = p;
    for (int i = 0; i < c->slots; i++)
        uv_thread_create(&p->slots[i].thread, slot_main, &p->slots[i]);
    *out = p;
    return 0;
}

static void on_async_closed(uv_handle_t *h) {
    gen_pool *p = h->data;
    uv_mutex_destroy(&p->mu);
    uv_cond_destroy(&p->cond);
    uv_cond_destroy(&p->step_done);
    slots_free(p);
    model_free(p->c.owned);
    free(p);
}

void gen_pool_free(gen_pool *p) {
    if (!p)
        return;
    uv_mutex_lock(&p->mu);
    p->stopping = 1;
    for (gen_job *j = p->live; j; j = j->priv->live_next)
        atomic_store(&j->priv->cancel, 1);
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_slots; i++)
        uv_thread_join(&p->slots[i].thread);

    for (gen_job *j = p->live, *next; j; j = next) {
        next = j->priv->live_next;
        gen_job_free(j);
    }
    p->live = NULL;
    uv_close((uv_handle_t *)&p->async, on_async_closed);
}
