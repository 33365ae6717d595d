/* llm_client.h - chat completions from an OpenAI-compatible server, many at once (libcurl multi).
 * The steps that ask a model (dataset_gen, evaluate's judge) share it: steps/llm is its library.
 *
 * A run sends one POST {endpoint}/chat/completions per call, shaped as the official `openai`
 * client sends it (Content-Type and Accept application/json, Authorization: Bearer KEY, a
 * User-Agent naming sluice), keeps at most `concurrency` of them in flight, retries the transient
 * failures with doubling backoff and jitter (a Retry-After header wins), stops sending when a
 * budget is spent, and keeps every answer in cache_dir by the hash of its request, so that a rerun
 * sends only what never finished. docs/dataset_gen.md, "API client", is the user's side of this. */
#ifndef SLUICE_STEPS_LLM_CLIENT_H
#define SLUICE_STEPS_LLM_CLIENT_H

#include <stddef.h>

typedef struct llm_options {
    const char
        *endpoint; /* base URL ending in /v1 (or any prefix); "/chat/completions" is appended */
    const char *model;
    const char
        *api_key; /* NULL or "": no Authorization header. Never logged, stored or put in an error */
    double temperature;
    long max_tokens;   /* per request; 0: not sent */
    long seed;         /* sent as "seed"; part of the cache key */
    int json_object;   /* nonzero: send response_format {"type": "json_object"} */
    int concurrency;   /* requests in flight at most, >= 1 */
    long max_requests; /* budget: HTTP requests sent, retries included; 0 = no limit */
    long
        max_tokens_total; /* budget: sum of usage.total_tokens of responses received; 0 = no limit */
    double timeout_s;     /* per HTTP request */
    int max_retries;  /* per call, on 429, 5xx, timeouts, connection errors, malformed envelopes */
    double backoff_s; /* first wait; doubles per retry, with jitter; a Retry-After header wins */
    const char
        *cache_dir; /* finished responses kept here by request hash (atomic writes); NULL: none */
    /* Appended after the contract's first version (zero-filled: as before): */
    const char *json_schema;      /* a JSON Schema (an object's JSON text): send response_format
                              * {"type": "json_schema", "json_schema": {"name": json_schema_name,
                              * "strict": true, "schema": ...}}, which wins over json_object;
                              * NULL: not sent. A text that is no JSON object fails llm_run. */
    const char *json_schema_name; /* required with json_schema: [a-zA-Z0-9_-], 1 to 64 */
    const char *client;           /* who asks, in the User-Agent "sluice/VERSION (CLIENT; libcurl)";
                         * NULL: "sluice/VERSION (libcurl)" */
} llm_options;

typedef struct llm_call {
    const char *system; /* in: the system message, or NULL */
    const char *user;   /* in: the user message */
    char
        *content; /* out: choices[0].message.content, malloc'd, the caller frees; NULL on failure */
    int status;   /* out: 0 ok; LLM_EFAILED after retries; LLM_EBUDGET not sent (budget spent);
                                LLM_ECANCELLED not finished because cancelled */
    char error
        [256]; /* out: why it failed (HTTP status and the server's message, or curl's), no key */
    long prompt_tokens, completion_tokens; /* out: usage of the response (kept in the cache, too) */
    int from_cache; /* out: nonzero when the answer came from cache_dir, no request sent */
    int attempts;   /* out: HTTP requests sent for this call */
} llm_call;

enum { LLM_EFAILED = -1, LLM_EBUDGET = -2, LLM_ECANCELLED = -3 };

typedef struct llm_totals {
    long requests; /* HTTP requests sent */
    long retries;
    long cached;                           /* calls answered from the cache */
    long failed;                           /* calls with status != 0 */
    long prompt_tokens, completion_tokens; /* of responses received now (not of cached ones) */
    /* Appended after the contract's first version: */
    long cache_errors; /* answers received but not written to cache_dir (the call is still ok, its
                        * error says why it was not kept) */
} llm_totals;

/* Runs every call, at most o->concurrency in flight; each finished call is written to o->cache_dir
 * before on_done(arg, i) is called (on the calling thread) so that a kill -9 loses no finished
 * response. cancelled(arg) is polled (at least every 100 ms); on nonzero, stops and marks unfinished
 * calls LLM_ECANCELLED. Returns 0 when the loop ran to the end (individual outcomes in calls[i]),
 * negative with err filled on a setup failure (bad URL, curl init). on_done and cancelled may be NULL.
 *
 * on_done is called once for every call whose outcome is decided: answered (from the server or
 * the cache), LLM_EFAILED or LLM_EBUDGET; never for a call left LLM_ECANCELLED. totals may be NULL;
 * it is zeroed first. A cancelled run also returns 0 (the calls say which were cancelled). On a
 * setup failure no request is sent and neither callback is called. */
int llm_run(const llm_options *o, llm_call *calls, size_t n, llm_totals *totals,
            void (*on_done)(void *arg, size_t i), int (*cancelled)(void *arg), void *arg, char *err,
            size_t err_size);

/* Frees what llm_run allocated in calls[0..n) (content), not the calls array itself. */
void llm_calls_free(llm_call *calls, size_t n);

/* The cache key of call c under o: the lower-case hex SHA-256 (65 bytes with the NUL) of the
 * canonical request body (model, messages, temperature, seed, max_tokens, response_format), the
 * name of its file in cache_dir being KEY.json. 0, or -1 when out of memory. */
int llm_cache_key(const llm_options *o, const llm_call *c, char key[65]);

/* The cache folder the steps keep their answers in under the store folder store: STORE/cache/llm
 * (created as needed), written to out. 0, or a negated errno with out naming the folder that could
 * not be made. */
int llm_store_cache_dir(const char *store, char *out, size_t out_size);

#endif
