/* serve_gen.h - the generation slots of sluice-serve: N threads, each with
 * its own KV cache (model_decoder), tokenizer handle and sampler over the
 * one model's shared weights, fed from a bounded queue. Each slot reads and
 * prefills its prompt on its own thread; the decode steps of all the slots
 * past their prompt are batched: each posts its next token, and once all
 * have, the thread of one of them runs them as one
 * model_decoder_step_batch, every weight read once for all of them. A slot
 * streams the text it releases (past the stop strings) back to the loop's
 * thread through a uv_async; the loop hands each job's news to on_event. A
 * job whose client left is cancelled: a queued one never runs, a running
 * one stops at its next token. */
#ifndef SLUICE_SERVE_GEN_H
#define SLUICE_SERVE_GEN_H

#include <stddef.h>
#include <uv.h>

#include "model.h"
#include "serve_api.h"

typedef struct gen_pool gen_pool;

/* A generation. The loop fills req and user before gen_pool_submit; the
 * rest is the pool's, read in on_event. */
/* prepare's answer when it has made the job's whole result itself (an
 * embeddings request): nothing is generated. */
#define GEN_PREPARED 1

typedef struct gen_job {
    api_request req; /* owned by the job */
    void *user;      /* the loop's; NULL once cancelled */
    /* Optional, set before gen_pool_submit: run on the slot's thread before
     * the prompt is read (a /rag request retrieves its chunks and writes
     * req.prompt). Returns 0 to generate, GEN_PREPARED, or an HTTP status
     * with message (size bytes) filled: the job ends with it. */
    int (*prepare)(struct gen_job *j, char *message, size_t size);
    void *extra; /* prepare's data, freed with the job by extra_free (may be NULL) */
    void (*extra_free)(void *extra);
    /* in on_event: */
    char *text; /* the bytes released since the last event (borrowed for the call) */
    size_t text_len;
    int done;   /* the last event: the fields below are final */
    int status; /* 0, else an HTTP status and message: the request failed */
    char message[256];
    const char *finish_reason; /* "stop" (EOS or a stop string) or "length" */
    long prompt_tokens, completion_tokens;
    struct gen_job_private *priv;
} gen_job;

typedef struct gen_pool_config {
    int slots;            /* generations at once */
    int queue;            /* waiting beyond them; more are refused */
    const char *tok_path; /* tokenizer.json, loaded once per slot */
    /* Called on the loop's thread with a job's new text and at its end
     * (done set; the job is freed after the call); for a cancelled job
     * (user NULL) only at its end. */
    void (*on_event)(gen_job *j, void *ctx);
    void *ctx;
    /* Called on the loop's thread when the last job submitted has been
     * freed (after its on_event): the pool holds no request. May be NULL;
     * it may call gen_pool_free. A reload retires a pool this way. */
    void (*on_empty)(gen_pool *p, void *ctx);
    /* The model, when the pool is to own it: freed once the slots are
     * gone (after gen_pool_free). NULL: the caller keeps it. */
    model *owned;
} gen_pool_config;

/* Starts the slots over m (borrowed until gen_pool_free; no other use of m
 * meanwhile). -errno with a message. */
int gen_pool_new(uv_loop_t *loop, const model *m, const gen_pool_config *c, gen_pool **out,
                 char *err, size_t err_size);
/* A new job (zeroed, req to fill), or NULL when out of memory; freed by
 * gen_job_free if never submitted. */
gen_job *gen_job_new(void);
void gen_job_free(gen_job *j);
/* Queues j: 0 (the pool owns it now), -EAGAIN when the queue is full (j is
 * still the caller's). */
int gen_pool_submit(gen_pool *p, gen_job *j);
/* Forgets j's client: no more events; the pool frees j when its slot lets
 * it go. */
void gen_pool_cancel(gen_pool *p, gen_job *j);
/* Whether no job submitted is still held (queued, running, or finished and
 * not yet handed to on_event). */
int gen_pool_idle(const gen_pool *p);
/* Jobs waiting and running now. */
void gen_pool_counts(gen_pool *p, int *queued, int *running);
/* Stops the slots (a running job is cancelled), joins them and closes the
 * async handle; p is freed once the loop has closed it. */
void gen_pool_free(gen_pool *p);

#endif
