#include "llm_client.h"

#include <bson/bson.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capbuf.h"
#include "curl_transient.h"
#include "file_replace.h"

/* What the server's answer may weigh: a chat completion is a few KB; a
 * larger body is not one. */
#define MAX_RESPONSE_BYTES (16 * 1024 * 1024)
/* A Retry-After beyond this is taken as this: a run waits, it does not hang. */
#define MAX_WAIT_S 300.0
/* cancelled() is polled at least this often. */
#define POLL_MS 100

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* Never cleaned up: the process may hold other users of libcurl. */
static void init_once(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the request body and its key ---------------------------------------------------------- */

/* The JSON body of c's request (bson_free), or NULL when out of memory (or when o->json_schema,
 * which check_options() has read once, is no JSON). The same options and messages give the same
 * bytes, which is what the cache key hashes. */
static char *request_body(const llm_options *o, const llm_call *c) {
    bson_t b = BSON_INITIALIZER, messages, m, format;
    int k = 0;
    char idx[16];
    BSON_APPEND_UTF8(&b, "model", o->model);
    BSON_APPEND_ARRAY_BEGIN(&b, "messages", &messages);
    const char *roles[2] = {"system", "user"}, *texts[2] = {c->system, c->user ? c->user : ""};
    for (int r = 0; r < 2; r++) {
        if (!texts[r])
            continue;
        snprintf(idx, sizeof(idx), "%d", k++);
        bson_append_document_begin(&messages, idx, -1, &m);
        BSON_APPEND_UTF8(&m, "role", roles[r]);
        BSON_APPEND_UTF8(&m, "content", texts[r]);
        bson_append_document_end(&messages, &m);
    }
    bson_append_array_end(&b, &messages);
    BSON_APPEND_DOUBLE(&b, "temperature", o->temperature);
    BSON_APPEND_INT64(&b, "seed", o->seed);
    if (o->max_tokens > 0)
        BSON_APPEND_INT64(&b, "max_tokens", o->max_tokens);
    int ok = 1;
    if (o->json_schema) {
        bson_t spec, *schema = bson_new_from_json((const uint8_t *)o->json_schema, -1, NULL);
        ok = schema != NULL;
        if (ok) {
            BSON_APPEND_DOCUMENT_BEGIN(&b, "response_format", &format);
            BSON_APPEND_UTF8(&format, "type", "json_schema");
            BSON_APPEND_DOCUMENT_BEGIN(&format, "json_schema", &spec);
            BSON_APPEND_UTF8(&spec, "name", o->json_schema_name ? o->json_schema_name : "");
            BSON_APPEND_BOOL(&spec, "strict", true);
            BSON_APPEND_DOCUMENT(&spec, "schema", schema);
            bson_append_document_end(&format, &spec);
            bson_append_document_end(&b, &format);
            bson_destroy(schema);
        }
    } else if (o->json_object) {
        BSON_APPEND_DOCUMENT_BEGIN(&b, "response_format", &format);
        BSON_APPEND_UTF8(&format, "type", "json_object");
        bson_append_document_end(&b, &format);
    }
    char *json = ok ? bson_as_relaxed_extended_json(&b, NULL) : NULL;
    bson_destroy(&b);
    return json;
}

static int sha256_hex(const char *data, size_t len, char hex[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -1;
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int llm_cache_key(const llm_options *o, const llm_call *c, char key[65]) {
    char *body = request_body(o, c);
    int rc = body ? sha256_hex(body, strlen(body), key) : -1;
    bson_free(body);
    return rc;
}

/* ---- the cache: KEY.json in cache_dir -------------------------------------------------------- */

/* mkdir -p dir. */
static int make_dirs(const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (!c)
            return 0;
    }
}

/* Reads KEY.json into c when it holds a whole answer: 1 found, 0 not (missing or damaged: the
 * request is sent again and the file rewritten). */
static int cache_read(const char *dir, const char *key, llm_call *c) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s.json", dir, key);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *text = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && size < MAX_RESPONSE_BYTES &&
        fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)) &&
        fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        text = NULL;
    }
    fclose(f);
    if (!text)
        return 0;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, size, NULL);
    free(text);
    bson_iter_t it;
    int found = 0;
    if (doc && bson_iter_init_find(&it, doc, "content") && BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t len;
        const char *s = bson_iter_utf8(&it, &len);
        if ((c->content = malloc(len + 1))) {
            memcpy(c->content, s, len);
            c->content[len] = '\0';
            found = 1;
        }
        if (bson_iter_init_find(&it, doc, "prompt_tokens"))
            c->prompt_tokens = (long)bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "completion_tokens"))
            c->completion_tokens = (long)bson_iter_as_int64(&it);
    }
    if (doc)
        bson_destroy(doc);
    return found;
}

/* Writes c's answer as KEY.json: a temporary file renamed over it, so that a reader (or a rerun
 * after kill -9) sees a whole file or none. Only the model's answer, its usage and the model's
 * name are kept: never the API key, the endpoint or a header. 0 or a negated errno. */
static int cache_write(const char *dir, const char *key, const char *model, const llm_call *c) {
    bson_t b = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&b, "model", model);
    BSON_APPEND_UTF8(&b, "content", c->content);
    BSON_APPEND_INT64(&b, "prompt_tokens", c->prompt_tokens);
    BSON_APPEND_INT64(&b, "completion_tokens", c->completion_tokens);
    size_t len = 0;
    char *json = bson_as_relaxed_extended_json(&b, &len);
    bson_destroy(&b);
    if (!json)
        return -ENOMEM;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s.json", dir, key);
    int rc = file_replace(path, json, len, NULL, 0);
    bson_free(json);
    return rc;
}

/* ---- one call's transfers -------------------------------------------------------------------- */

enum { WAITING, RUNNING, DONE };

typedef struct job {
    llm_call *call;
    char *body; /* the request (bson_free) */
    char key[65];
    int state;
    double not_before; /* a retry waits until then */
    char *resp;        /* the response body of the transfer in flight */
    size_t resp_len;
    int over_cap;
    double retry_after; /* seconds the server asked to wait, or < 0 */
    long total_tokens;  /* usage.total_tokens of the answer */
} job;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    job *j = ud;
    int rc = capbuf_append(&j->resp, &j->resp_len, MAX_RESPONSE_BYTES, data, size * n);
    if (rc == CAPBUF_OVER)
        j->over_cap = 1;
    return rc == 0 ? size * n : 0;
}

/* Picks Retry-After (seconds, or an HTTP date) and retry-after-ms (which the openai clients
 * also honour and which wins) from the response's headers. */
static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    job *j = ud;
    size_t len = size * n;
    char line[256];
    if (len >= sizeof(line))
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    const char *value = colon + 1 + strspn(colon + 1, " \t");
    char *end;
    if (strcasecmp(line, "retry-after-ms") == 0) {
        double ms = strtod(value, &end);
        if (end != value && ms >= 0)
            j->retry_after = ms / 1000.0;
    } else if (strcasecmp(line, "retry-after") == 0 && j->retry_after < 0) {
        double s = strtod(value, &end);
        if (end != value && s >= 0) {
            j->retry_after = s;
        } else {
            time_t at = curl_getdate(value, NULL);
            if (at != (time_t)-1)
                j->retry_after = difftime(at, time(NULL)) > 0 ? difftime(at, time(NULL)) : 0;
        }
    }
    return len;
}

/* Masks every occurrence of key in text (a server may quote what it was sent); the text only
 * shrinks. */
static void redact(char *text, const char *key) {
    size_t klen = key ? strlen(key) : 0;
    if (klen == 0)
        return;
    size_t mask = klen < 3 ? klen : 3;
    for (char *p = strstr(text, key); p; p = strstr(p + mask, key)) {
        memset(p, '*', mask);
        memmove(p + mask, p + klen, strlen(p + klen) + 1);
    }
}

/* The server's own words in an error body: error.message of the OpenAI shape, else the start of
 * the body on one line. */
static void server_message(const char *body, size_t len, char *out, size_t size) {
    out[0] = '\0';
    if (!body || !len)
        return;
    bson_t *doc = bson_new_from_json((const uint8_t *)body, (ssize_t)len, NULL);
    bson_iter_t it, d;
    if (doc && bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "error.message", &d) &&
        BSON_ITER_HOLDS_UTF8(&d)) {
        snprintf(out, size, "%s", bson_iter_utf8(&d, NULL));
    } else {
        snprintf(out, size, "%.*s", (int)(len < 120 ? len : 120), body);
        for (char *p = out; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    }
    if (doc)
        bson_destroy(doc);
}

/* Takes choices[0].message.content and the usage out of a 2xx body. 0, or -1 with why filled. */
static int parse_envelope(job *j, char *why, size_t why_size) {
    llm_call *c = j->call;
    bson_error_t e;
    bson_t *doc =
        j->resp ? bson_new_from_json((const uint8_t *)j->resp, (ssize_t)j->resp_len, &e) : NULL;
    if (!doc) {
        snprintf(why, why_size, "malformed response: %s",
                 j->resp ? "not a JSON object" : "an empty body");
        return -1;
    }
    bson_iter_t it, d;
    int rc = -1;
    if (!bson_iter_init(&it, doc) ||
        !bson_iter_find_descendant(&it, "choices.0.message.content", &d) ||
        !BSON_ITER_HOLDS_UTF8(&d)) {
        snprintf(why, why_size, "malformed response: no choices[0].message.content string");
    } else {
        uint32_t len;
        const char *s = bson_iter_utf8(&d, &len);
        free(c->content);
        if (!(c->content = malloc(len + 1))) {
            snprintf(why, why_size, "out of memory");
        } else {
            memcpy(c->content, s, len);
            c->content[len] = '\0';
            rc = 0;
            long *usage[3] = {&c->prompt_tokens, &c->completion_tokens, &j->total_tokens};
            const char *names[3] = {"usage.prompt_tokens", "usage.completion_tokens",
                                    "usage.total_tokens"};
            for (int k = 0; k < 3; k++)
                *usage[k] = bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, names[k], &d)
                                ? (long)bson_iter_as_int64(&d)
                                : -1;
            if (j->total_tokens < 0)
                j->total_tokens = (c->prompt_tokens > 0 ? c->prompt_tokens : 0) +
                                  (c->completion_tokens > 0 ? c->completion_tokens : 0);
            c->prompt_tokens = c->prompt_tokens > 0 ? c->prompt_tokens : 0;
            c->completion_tokens = c->completion_tokens > 0 ? c->completion_tokens : 0;
        }
    }
    bson_destroy(doc);
    return rc;
}

/* What the client retries, as the official openai clients do: HTTP 408, 409, 429 and 5xx, and
 * transfers that failed on the way (timeouts, refused or dropped connections). */
static int transient(CURLcode rc, long status) {
    return rc == CURLE_OK ? (status == 408 || status == 409 || status == 429 || status >= 500)
                          : curl_transfer_transient(rc);
}

/* ---- the loop -------------------------------------------------------------------------------- */

typedef struct runner {
    const llm_options *o;
    job *jobs;
    size_t n;
    CURLM *multi;
    CURL **easy; /* one per slot, kept so that connections and their set-up are reused */
    job **slot_job;
    int n_slots;
    struct curl_slist *headers;
    char url[2048];
    char user_agent[128];
    llm_totals t;
    long tokens_used;
    int budget_spent;
    size_t n_waiting; /* calls waiting for a retry */
    int epoll_fd;     /* the transfers' sockets, as libcurl asks them watched */
    double curl_due;  /* when libcurl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT), or < 0 */
    uint64_t rng;
    void (*on_done)(void *, size_t);
    void *arg;
} runner;

/* Uniform in [0, 1): xorshift64*, seeded from the clock; jitter needs no more. */
static double uniform(runner *r) {
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return (double)((r->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static void finish_call(runner *r, job *j, int status) {
    llm_call *c = j->call;
    c->status = status;
    j->state = DONE;
    if (status != 0) {
        free(c->content);
        c->content = NULL;
        r->t.failed++;
    }
    bson_free(j->body);
    j->body = NULL;
    if (r->on_done)
        r->on_done(r->arg, (size_t)(j - r->jobs));
}

static int start(runner *r, job *j, int slot) {
    CURL *e = r->easy[slot];
    free(j->resp);
    j->resp = NULL;
    j->resp_len = 0;
    j->over_cap = 0;
    j->retry_after = -1;
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->body));
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(intptr_t)slot);
    if (curl_multi_add_handle(r->multi, e) != CURLM_OK)
        return -1;
    r->slot_job[slot] = j;
    j->state = RUNNING;
    j->call->attempts++;
    r->t.requests++;
    return 0;
}

/* j's transfer ended with rc: the call is answered, failed, or waits for a retry. */
static void transfer_done(runner *r, job *j, CURL *e, CURLcode rc) {
    const llm_options *o = r->o;
    llm_call *c = j->call;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char why[200] = "", said[160];
    int ok = 0;
    if (j->over_cap)
        snprintf(why, sizeof(why), "a response over %d bytes", MAX_RESPONSE_BYTES);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, sizeof(why), "timed out after %g s", o->timeout_s);
    else if (rc != CURLE_OK)
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
    else if (status < 200 || status >= 300) {
        server_message(j->resp, j->resp_len, said, sizeof(said));
        snprintf(why, sizeof(why), "HTTP %ld%s%s", status, *said ? ": " : "", said);
    } else if (parse_envelope(j, why, sizeof(why)) == 0)
        ok = 1;
    int malformed = rc == CURLE_OK && status >= 200 && status < 300 && !ok && !j->over_cap;
    if (ok) {
        r->tokens_used += j->total_tokens;
        r->t.prompt_tokens += c->prompt_tokens;
        r->t.completion_tokens += c->completion_tokens;
        if (o->max_tokens_total > 0 && r->tokens_used >= o->max_tokens_total)
            r->budget_spent = 1;
        c->error[0] = '\0';
        if (o->cache_dir) {
            int w = cache_write(o->cache_dir, j->key, o->model, c);
            if (w != 0) {
                r->t.cache_errors++;
                snprintf(c->error, sizeof(c->error), "answered, but not kept in %.150s: %s",
                         o->cache_dir, strerror(-w));
            }
        }
        free(j->resp);
        j->resp = NULL;
        finish_call(r, j, 0);
        return;
    }
    redact(why, o->api_key);
    int again = (malformed || transient(rc, status)) && c->attempts <= o->max_retries;
    if (!again) {
        free(j->resp);
        j->resp = NULL;
        snprintf(c->error, sizeof(c->error), "%s (after %d attempt%s)", why, c->attempts,
                 c->attempts == 1 ? "" : "s");
        redact(c->error, o->api_key);
        finish_call(r, j, LLM_EFAILED);
        return;
    }
    /* Kept until the retry, so that a budget spent meanwhile can say what went wrong last. */
    snprintf(c->error, sizeof(c->error), "%s", why);
    double wait = o->backoff_s * (double)(1u << (c->attempts - 1 < 20 ? c->attempts - 1 : 20));
    wait *= 1.0 - 0.25 * uniform(r);
    if (j->retry_after >= 0)
        wait = j->retry_after;
    if (wait > MAX_WAIT_S)
        wait = MAX_WAIT_S;
    j->not_before = now_s() + wait;
    j->state = WAITING;
    r->n_waiting++;
    r->t.retries++;
}

/* The budget is spent: j is not sent (again). */
static void budget_out(runner *r, job *j) {
    llm_call *c = j->call;
    char last[200];
    snprintf(last, sizeof(last), "%.199s", c->error);
    if (r->o->max_requests > 0 && r->t.requests >= r->o->max_requests)
        snprintf(c->error, sizeof(c->error), "not sent: the budget of %ld requests is spent",
                 r->o->max_requests);
    else
        snprintf(c->error, sizeof(c->error), "not sent: the budget of %ld tokens is spent",
                 r->o->max_tokens_total);
    if (c->attempts && *last) {
        size_t k = strlen(c->error);
        snprintf(c->error + k, sizeof(c->error) - k, " (last attempt: %s)", last);
    }
    finish_call(r, j, LLM_EBUDGET);
}

static int free_slot(const runner *r) {
    for (int s = 0; s < r->n_slots; s++)
        if (!r->slot_job[s])
            return s;
    return -1;
}

/* Starts what may start: due retries first (they are older), then calls not tried yet. Returns
 * the time the next waiting retry is due (or a large value), or -1 when a transfer cannot start. */
static double start_due(runner *r, size_t *next_fresh, size_t *n_done) {
    const llm_options *o = r->o;
    double now = now_s(), wake = 1e300;
    int slot = free_slot(r);
    for (size_t i = 0; r->n_waiting && i < *next_fresh; i++) {
        job *j = &r->jobs[i];
        if (j->state != WAITING)
            continue;
        if (r->budget_spent) {
            r->n_waiting--;
            budget_out(r, j);
            ++*n_done;
        } else if (j->not_before > now) {
            wake = j->not_before < wake ? j->not_before : wake;
        } else if (slot >= 0) {
            if (start(r, j, slot) != 0)
                return -1;
            r->n_waiting--;
            slot = free_slot(r);
        } else {
            wake = now;
        }
        if (o->max_requests > 0 && r->t.requests >= o->max_requests)
            r->budget_spent = 1;
    }
    while (*next_fresh < r->n && (slot >= 0 || r->budget_spent)) {
        job *j = &r->jobs[(*next_fresh)++];
        if (j->state != WAITING)
            continue; /* answered from the cache */
        if (r->budget_spent) {
            budget_out(r, j);
            ++*n_done;
            continue;
        }
        if (start(r, j, slot) != 0)
            return -1;
        slot = free_slot(r);
        if (o->max_requests > 0 && r->t.requests >= o->max_requests)
            r->budget_spent = 1;
    }
    return wake;
}

static void runner_free(runner *r) {
    for (int s = 0; r->easy && s < r->n_slots; s++) {
        if (!r->easy[s])
            continue;
        if (r->slot_job[s])
            curl_multi_remove_handle(r->multi, r->easy[s]);
        curl_easy_cleanup(r->easy[s]);
    }
    for (size_t i = 0; r->jobs && i < r->n; i++) {
        bson_free(r->jobs[i].body);
        free(r->jobs[i].resp);
    }
    if (r->multi)
        curl_multi_cleanup(r->multi);
    if (r->epoll_fd >= 0)
        close(r->epoll_fd);
    curl_slist_free_all(r->headers);
    free(r->easy);
    free(r->slot_job);
    free(r->jobs);
}

/* libcurl's socket interface: only the transfer whose socket is ready runs, where
 * curl_multi_perform would visit (and poll) every transfer in flight each time one socket is
 * ready; at 32 in flight that is most of the client's CPU. */
static int watch_socket(CURL *e, curl_socket_t s, int what, void *ud, void *socketp) {
    runner *r = ud;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(r->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                       (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.fd = s};
    /* socketp (curl_multi_assign) says whether the socket is in the set already. */
    if (epoll_ctl(r->epoll_fd, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0)
        return -1;
    if (!socketp)
        curl_multi_assign(r->multi, s, r);
    return 0;
}

static int set_timer(CURLM *multi, long timeout_ms, void *ud) {
    runner *r = ud;
    (void)multi;
    r->curl_due = timeout_ms < 0 ? -1 : now_s() + (double)timeout_ms / 1000.0;
    return 0;
}

/* The common part of every request; 0, or -1 when out of memory. */
static int runner_setup(runner *r, char *err, size_t err_size) {
    const llm_options *o = r->o;
    char auth[1024];
    struct curl_slist *h = NULL;
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "Expect:", NULL};
    for (const char **f = fixed; *f; f++) {
        struct curl_slist *next = curl_slist_append(h, *f);
        if (!next)
            goto oom;
        h = next;
    }
    if (o->api_key && *o->api_key) {
        if (snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->api_key) >=
            (int)sizeof(auth)) {
            curl_slist_free_all(h);
            snprintf(err, err_size, "the API key is longer than %zu bytes", sizeof(auth) - 32);
            return -1;
        }
        struct curl_slist *next = curl_slist_append(h, auth);
        memset(auth, 0, sizeof(auth));
        if (!next)
            goto oom;
        h = next;
    }
    r->headers = h;
    if (!(r->multi = curl_multi_init()))
        goto oom;
    if ((r->epoll_fd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        snprintf(err, err_size, "epoll: %s", strerror(errno));
        return -1;
    }
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, watch_socket);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, set_timer);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)r->n_slots);
    curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)r->n_slots);
    long timeout_ms = o->timeout_s > 0 ? (long)(o->timeout_s * 1000.0 + 0.5) : 0;
    snprintf(r->user_agent, sizeof(r->user_agent), "sluice/%s (%.64s%slibcurl)", SLUICE_VERSION,
             o->client ? o->client : "", o->client ? "; " : "");
    for (int s = 0; s < r->n_slots; s++) {
        CURL *e = r->easy[s] = curl_easy_init();
        if (!e)
            goto oom;
        curl_easy_setopt(e, CURLOPT_URL, r->url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
        curl_easy_setopt(e, CURLOPT_USERAGENT, r->user_agent);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    }
    return 0;
oom:
    if (!r->headers)
        curl_slist_free_all(h);
    snprintf(err, err_size, "out of memory setting up the requests");
    return -1;
}

/* The options' mistakes a run cannot start with, said in err. */
static int check_options(const llm_options *o, char *url, size_t url_size, char *err,
                         size_t err_size) {
    if (!o->endpoint || !*o->endpoint) {
        snprintf(err, err_size,
                 "no endpoint: an OpenAI-compatible base URL such as "
                 "https://api.example.com/v1 is needed");
        return -EINVAL;
    }
    if (!o->model || !*o->model) {
        snprintf(err, err_size, "no model named");
        return -EINVAL;
    }
    if (o->concurrency < 1 || o->max_retries < 0 || o->backoff_s < 0 || o->timeout_s < 0 ||
        o->max_requests < 0 || o->max_tokens_total < 0) {
        snprintf(err, err_size,
                 "concurrency must be >= 1 and max_retries, backoff, timeout and the budgets >= 0");
        return -EINVAL;
    }
    if (o->json_schema) {
        size_t name_len = o->json_schema_name ? strlen(o->json_schema_name) : 0;
        int name_ok =
            name_len >= 1 && name_len <= 64 &&
            strspn(o->json_schema_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"
                                        "YZ0123456789_-") == name_len;
        bson_error_t e;
        /* libbson reads a top-level array as a document too: an object must start with '{'. */
        const char *first = o->json_schema + strspn(o->json_schema, " \t\r\n");
        bson_t *schema =
            *first == '{' ? bson_new_from_json((const uint8_t *)o->json_schema, -1, &e) : NULL;
        if (schema)
            bson_destroy(schema);
        if (!schema || !name_ok) {
            snprintf(err, err_size, "%s",
                     !name_ok ? "the JSON schema needs a name of 1 to 64 of "
                                "a-z A-Z 0-9 _ -"
                              : "the JSON schema is not a JSON object");
            return -EINVAL;
        }
    }
    size_t len = strlen(o->endpoint);
    while (len > 0 && o->endpoint[len - 1] == '/')
        len--;
    if (len + sizeof("/chat/completions") > url_size) {
        snprintf(err, err_size, "the endpoint is longer than %zu bytes", url_size - 32);
        return -EINVAL;
    }
    snprintf(url, url_size, "%.*s/chat/completions", (int)len, o->endpoint);
    CURLU *u = curl_url();
    char *scheme = NULL;
    int bad = !u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
              (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (bad) {
        /* The endpoint is the user's, but it may carry a credential: say only what is wrong. */
        snprintf(err, err_size, "the endpoint is not an http(s) URL");
        return -EINVAL;
    }
    return 0;
}

int llm_run(const llm_options *o, llm_call *calls, size_t n, llm_totals *totals,
            void (*on_done)(void *arg, size_t i), int (*cancelled)(void *arg), void *arg, char *err,
            size_t err_size) {
    runner r = {.o = o, .n = n, .on_done = on_done, .arg = arg, .epoll_fd = -1, .curl_due = -1};
    if (totals)
        memset(totals, 0, sizeof(*totals));
    int rc = check_options(o, r.url, sizeof(r.url), err, err_size);
    if (rc != 0)
        return rc;
    pthread_once(&once, init_once);
    if (global_rc != CURLE_OK) {
        snprintf(err, err_size, "libcurl did not initialise: %s", curl_easy_strerror(global_rc));
        return -EIO;
    }
    if (o->cache_dir && (rc = make_dirs(o->cache_dir)) != 0) {
        snprintf(err, err_size, "cannot create the cache folder %s: %s", o->cache_dir,
                 strerror(-rc));
        return rc;
    }
    r.n_slots = (size_t)o->concurrency < n ? o->concurrency : (int)(n ? n : 1);
    r.jobs = calloc(n ? n : 1, sizeof(*r.jobs));
    r.easy = calloc((size_t)r.n_slots, sizeof(*r.easy));
    r.slot_job = calloc((size_t)r.n_slots, sizeof(*r.slot_job));
    if (!r.jobs || !r.easy || !r.slot_job) {
        snprintf(err, err_size, "out of memory");
        runner_free(&r);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        job *j = &r.jobs[i];
        j->call = &calls[i];
        free(calls[i].content);
        calls[i].content = NULL;
        calls[i].status = 0;
        calls[i].error[0] = '\0';
        calls[i].prompt_tokens = calls[i].completion_tokens = 0;
        calls[i].from_cache = calls[i].attempts = 0;
        if (!(j->body = request_body(o, &calls[i])) ||
            sha256_hex(j->body, strlen(j->body), j->key) != 0) {
            snprintf(err, err_size, "out of memory building the requests");
            runner_free(&r);
            return -ENOMEM;
        }
    }
    if (runner_setup(&r, err, err_size) != 0) {
        runner_free(&r);
        return -ENOMEM;
    }
    r.rng = (uint64_t)(now_s() * 1e9) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&r;
    if (!r.rng)
        r.rng = 1;
    size_t n_done = 0, next_fresh = 0;
    /* Answers already kept are taken first: they cost no request. */
    for (size_t i = 0; o->cache_dir && i < n; i++) {
        if (cache_read(o->cache_dir, r.jobs[i].key, &calls[i])) {
            calls[i].from_cache = 1;
            r.t.cached++;
            n_done++;
            finish_call(&r, &r.jobs[i], 0);
        }
    }
    while (n_done < n) {
        if (cancelled && cancelled(arg))
            break;
        double wake = start_due(&r, &next_fresh, &n_done);
        if (wake < 0) {
            snprintf(err, err_size, "libcurl: cannot start a transfer");
            rc = -ENOMEM;
            break;
        }
        int still = 0, finished = 0;
        if (r.curl_due >= 0 && now_s() >= r.curl_due) {
            r.curl_due = -1;
            curl_multi_socket_action(r.multi, CURL_SOCKET_TIMEOUT, 0, &still);
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r.multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode res = m->data.result;
            char *p;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &p);
            int slot = (int)(intptr_t)p;
            job *j = r.slot_job[slot];
            curl_multi_remove_handle(r.multi, e);
            r.slot_job[slot] = NULL;
            transfer_done(&r, j, e, res);
            if (j->state == DONE)
                n_done++;
            finished++;
        }
        if (finished || n_done >= n)
            continue; /* a slot is free: start the next transfer before waiting */
        /* Sleeps until a socket is ready, libcurl's timer or the next retry is due, or it is
         * time to ask cancelled() again: no spinning while transfers or backoffs are under way. */
        if (free_slot(&r) < 0)
            wake = 1e300; /* a due retry waits for a transfer to end, which a socket says */
        if (r.curl_due >= 0 && r.curl_due < wake)
            wake = r.curl_due;
        double wait_ms = (wake - now_s()) * 1000.0;
        int timeout = wait_ms <= 0 ? 0 : wait_ms >= POLL_MS ? POLL_MS : (int)wait_ms + 1;
        struct epoll_event ev[64];
        int ready = epoll_wait(r.epoll_fd, ev, 64, timeout);
        for (int k = 0; k < ready; k++) {
            int flags = (ev[k].events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
                        (ev[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                        (ev[k].events & EPOLLERR ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(r.multi, ev[k].data.fd, flags, &still);
        }
    }
    for (size_t i = 0; i < n; i++) {
        job *j = &r.jobs[i];
        if (j->state == DONE)
            continue;
        j->call->status = LLM_ECANCELLED;
        free(j->call->content);
        j->call->content = NULL;
        snprintf(j->call->error, sizeof(j->call->error), "%s",
                 rc != 0 ? err : "cancelled before it was answered");
        r.t.failed++;
    }
    if (totals)
        *totals = r.t;
    runner_free(&r);
    return rc;
}

void llm_calls_free(llm_call *calls, size_t n) {
    for (size_t i = 0; calls && i < n; i++) {
        free(calls[i].content);
        calls[i].content = NULL;
    }
}

int llm_store_cache_dir(const char *store, char *out, size_t out_size) {
    for (int k = 0; k < 2; k++) {
        if (snprintf(out, out_size, "%s/cache%s", store, k ? "/llm" : "") >= (int)out_size)
            return -ENAMETOOLONG;
        if (mkdir(out, 0777) != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}
