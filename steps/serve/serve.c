/* serve.c - sluice-serve, the program `sluice serve` runs (docs/serve.md):
 * an OpenAI-compatible server of one model folder on libuv (and, with
 * --index, of a vector index: serve_retrieval.h). The loop's
 * thread owns the connections, routes, metrics and JSON; the model loads
 * on libuv's thread pool while /health says 503; generations run on the
 * slots of gen.c. SIGTERM (or SIGINT) drains: no new connection, the
 * answers under way finish, then the program exits 0. */
#include <bson/bson.h>
#include <cblas.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "command.h"
#include "model.h"
#include "serve_api.h"
#include "serve_gen.h"
#include "serve_http.h"
#include "serve_metrics.h"
#include "serve_relay.h"
#include "serve_retrieval.h"
#include "serve_traces.h"

static const command_info info = {
    "serve",
    "serve a model over HTTP with OpenAI's API (chat, completions, embeddings, RAG, metrics)",
    "usage: sluice serve [--model DIR] [--index INDEX] [--listen HOST:PORT] [--parallel N]\n"
    "                    [--queue N] [--api-key-file F] [--admin-key-file F] [--port-file F]\n"
    "                    [--hooks-secret-file F] [--dashboard|--no-dashboard]\n"
    "                    [limits...]\n"
    "\n"
    "Serves the Hugging Face model folder DIR (config.json, model.safetensors,\n"
    "tokenizer.json; a LoRA adapter beside them is merged) on HTTP/1.1; DIR may also be a\n"
    "model artifact: its id, RUN:STEP.OUTPUT or the id of the step that made it.\n"
    "  GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions,\n"
    "  GET /metrics (Prometheus), POST /admin/reload (swaps in another model). See\n"
    "  docs/serve.md.\n"
    "With --index, also POST /v1/embeddings (the index's embedding model) and POST /rag\n"
    "(the query's chunks retrieved, put in the prompt, the answer generated). With --index\n"
    "alone (no --model), the embeddings and /rag's retrieval only.\n"
    "\n"
    "  --index INDEX           a vector index, as 'sluice search' takes it: its folder, an\n"
    "                          artifact id, RUN:STEP.OUTPUT or the id of the step that made it\n"
    "  --listen HOST:PORT      where to listen (default 127.0.0.1:8080; port 0: any free one)\n"
    "  --port-file F           write the port listened on to F once listening\n"
    "  --parallel N            generations at once (default 1)\n"
    "  --queue N               generations waiting beyond them, then 429 (default 16)\n"
    "  --api-key-file F        Bearer keys, one a line: every route but /health needs one\n"
    "  --admin-key-file F      Bearer keys for POST /admin/reload (without: it is refused)\n"
    "  --hooks-secret-file F   the webhook secret: POST /hooks/NAME, signed with it as\n"
    "                          GitHub signs (X-Hub-Signature-256), fires schedule NAME\n"
    "  --dashboard             serve the dashboard ('sluice ui', run as a child) at /,\n"
    "                          /api/ and /assets/; the default when the store has metadata\n"
    "  --no-dashboard          do not\n"
    "  --model-name NAME       the model's id in /v1/models (default: DIR's last name)\n"
    "  --model-version V       its version, in /v1/models and /metrics (default: none)\n"
    "  --max-connections N     open connections at most (default 1024)\n"
    "  --max-header-bytes N    request line and headers (default 16384; 431 beyond)\n"
    "  --max-body-bytes N      request body (default 1048576; 413 beyond)\n"
    "  --header-timeout S      seconds for a request's head (default 10)\n"
    "  --body-timeout S        seconds for its body (default 30)\n"
    "  --idle-timeout S        seconds a kept-alive connection may wait (default 60)\n"
    "  --threads N             OpenBLAS threads per generation (default 1)\n"
    "  --trace-retention R     traces kept in the store: N records, a size (64MB), or both\n"
    "                          (N,SIZE); default 10000,256MiB. See 'sluice traces'\n"
    "  --no-traces             record no traces\n",
};

#define MAX_KEYS 64
#define MAX_RETIRING 16 /* pools of replaced models still finishing requests */

/* Bearer keys read from a file. */
typedef struct keyset {
    char *keys[MAX_KEYS];
    size_t len[MAX_KEYS];
    int n;
} keyset;

/* A POST /admin/reload under way: the model loads on libuv's thread pool
 * while the one before it serves. */
typedef struct reload {
    struct server *s;
    http_conn *c; /* NULL once its client left */
    uint64_t t0;
    char spec[4096], name[256], version[64]; /* spec "": the model stays */
    char folder[4096];
    model *m;                                  /* loaded, the reload's until swapped in */
    char index_spec[4096], index_folder[4096]; /* index_spec "": the index stays */
    serve_index *ix;                           /* loaded, the reload's until swapped in */
    char err[1024];
    uv_work_t work;
} reload;

/* Which model a request ran on, for its trace: a load's name, version,
 * spec and folder, shared (refs) by the server while it serves that load
 * and by each request taken meanwhile, so that a reload under way does
 * not relabel the requests it did not serve. */
typedef struct model_id {
    int refs;
    char name[256], version[64], spec[4096], folder[4096];
} model_id;

static model_id *model_id_new(const char *name, const char *version, const char *spec,
                              const char *folder) {
    model_id *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->refs = 1;
    snprintf(id->name, sizeof(id->name), "%s", name);
    snprintf(id->version, sizeof(id->version), "%s", version);
    snprintf(id->spec, sizeof(id->spec), "%s", spec);
    snprintf(id->folder, sizeof(id->folder), "%s", folder);
    return id;
}

static void model_id_drop(model_id *id) {
    if (id && --id->refs == 0)
        free(id);
}

typedef struct server {
    uv_loop_t *loop;
    http_server *http;
    gen_pool *pool; /* the model served now; new requests go to it */
    metrics *metrics;
    model *m; /* the first model while it is not yet its pool's */
    char folder[4096], tok_path[4200], name[256], version[64];
    char index_folder[4096]; /* "" without --index */
    serve_index *index;
    char load_err[1024];
    int ready, draining, failed, load_failed;
    int parallel, queue;
    keyset api, admin;
    uint64_t next_id;
    long started, created; /* created: when the model served now was loaded */
    uv_signal_t sigterm, sigint;
    uv_work_t load;
    trace_log *traces;     /* NULL: --no-traces */
    char model_spec[4096]; /* --model (or the reload's model) as given, for the traces */
    /* Pools of models replaced by a reload: each still finishes the
     * requests it took, then is freed with its model (on_pool_empty). */
    gen_pool *retiring[MAX_RETIRING];
    int n_retiring;
    reload *reloading; /* at most one at a time */
    model_id *ident;   /* the model served now (NULL only when out of memory) */
    char *hook_secret; /* --hooks-secret-file's bytes; NULL: no /hooks */
    size_t hook_secret_len;
    struct hook *hooks; /* fires under way */
    serve_relay *relay; /* NULL: no dashboard */
} server;

/* A POST /hooks/NAME under way: 'sluice schedule fire' runs as a child,
 * its output read from pipes; the answer goes once it exited and both
 * pipes are closed. */
typedef struct hook {
    server *s;
    http_conn *c; /* NULL once its client left */
    uint64_t t0;
    uv_process_t proc;
    uv_pipe_t out, err;
    api_buf outb, errb;
    int open; /* handles not yet closed */
    int64_t exit_status;
    struct hook *next;
} hook;

/* A request being answered by a generation. */
typedef struct pending {
    server *s;
    http_conn *c;
    gen_job *job;
    metrics_route route;
    uint64_t t0;
    char id[48];
    long created;
    int streaming;        /* the stream's head is sent */
    api_buf text;         /* a whole answer's text so far */
    char model_name[256]; /* the model's id when it began: a reload changes s->name */
    model_id *ident;      /* the model it runs on (a reference) */
    /* Index-only (no --model): an embeddings or retrieval job run on
     * libuv's thread pool rather than a slot; its client may leave while
     * it runs (c NULL then, and the work's end frees it). */
    uv_work_t work;
    int offpool;
    int status; /* the job's prepare's answer */
    char message[256];
} pending;

static double since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e9; }

static void answer(server *s, http_conn *c, metrics_route route, uint64_t t0, int status,
                   const char *type, const char *body, size_t len, const char *extra) {
    http_respond(c, status, type, body, len, extra, 0);
    metrics_request(s->metrics, route, status, since(t0));
}

static void answer_error(server *s, http_conn *c, metrics_route route, uint64_t t0, int status,
                         const char *message, const char *param) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 403 ? "permission_error"
                       : status == 404 ? "not_found_error"
                       : status == 429 ? "rate_limit_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *code = status == 401   ? "invalid_api_key"
                       : status == 429 ? "queue_full"
                       : status == 503 ? "model_loading"
                                       : NULL;
    api_buf b = {0};
    api_error(&b, message, type, param, code);
    const char *extra = status == 401                    ? "WWW-Authenticate: Bearer\r\n"
                        : status == 503 || status == 429 ? "Retry-After: 1\r\n"
                                                         : NULL;
    if (b.failed)
        answer(s, c, route, t0, 500, "text/plain", "out of memory\n", 14, NULL);
    else
        answer(s, c, route, t0, status, "application/json", b.p, b.len, extra);
    api_buf_free(&b);
}

/* Whether r carries one of ks's keys (every request does when ks is
 * empty). */
static int authorized(const keyset *ks, const http_request *r) {
    if (!ks->n)
        return 1;
    if (!r->authorization || r->authorization_len < 7 ||
        strncasecmp(r->authorization, "Bearer ", 7) != 0)
        return 0;
    const char *key = r->authorization + 7;
    size_t len = r->authorization_len - 7;
    int ok = 0;
    for (int i = 0; i < ks->n; i++) {
        /* compared in full whatever differs, so timing tells nothing of a key */
        unsigned diff = len != ks->len[i];
        for (size_t k = 0; k < ks->len[i]; k++)
            diff |= (unsigned char)ks->keys[i][k] ^ (unsigned char)(k < len ? key[k] : 0);
        ok |= diff == 0;
    }
    return ok;
}

static metrics_route route_of(const char *path, size_t len) {
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    static const struct {
        const char *path;
        metrics_route route;
    } routes[] = {
        {"/health", ROUTE_HEALTH},
        {"/v1/models", ROUTE_MODELS},
        {"/v1/chat/completions", ROUTE_CHAT},
        {"/v1/completions", ROUTE_COMPLETIONS},
        {"/metrics", ROUTE_METRICS},
        {"/v1/embeddings", ROUTE_EMBEDDINGS},
        {"/rag", ROUTE_RAG},
        {"/admin/reload", ROUTE_RELOAD},
    };
    if (len > 7 && memcmp(path, "/hooks/", 7) == 0)
        return ROUTE_HOOKS;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (len == strlen(routes[i].path) && memcmp(path, routes[i].path, len) == 0)
            return routes[i].route;
    return ROUTE_OTHER;
}

/* A generation route's trace (serve_traces.h): r and j NULL when the
 * request was refused before they existed; token counts are known only
 * from a finished job. */
static void trace_generation(server *s, const model_id *id, metrics_route route, uint64_t t0,
                             int status, const api_request *r, const gen_job *j,
                             const api_buf *text, const char *error) {
    if (!id) /* a request not yet taken: the model served now */
        id = s->ident;
    trace_entry e = {.route = metrics_route_name(route),
                     .status = status,
                     .model = id ? id->name : s->name,
                     .model_version = id              ? (id->version[0] ? id->version : id->spec)
                                      : s->version[0] ? s->version
                                                      : s->model_spec,
                     .model_folder = id ? id->folder : s->folder,
                     .prompt_tokens = -1,
                     .completion_tokens = -1,
                     .latency_s = since(t0),
                     .error = error};
    if (r) {
        e.prompt = r->prompt, e.prompt_len = r->prompt ? strlen(r->prompt) : 0;
        e.stream = r->stream;
    }
    if (j && j->done) {
        e.prompt_tokens = j->prompt_tokens, e.completion_tokens = j->completion_tokens;
        e.finish_reason = j->status ? NULL : j->finish_reason;
    }
    if (text)
        e.answer = text->p, e.answer_len = text->len;
    const char *context[API_RAG_MAX_K];
    if (j && route == ROUTE_RAG) {
        e.context_ids = context;
        e.n_context = serve_index_context_ids(j, context, API_RAG_MAX_K);
    }
    trace_record(s->traces, &e);
}

static void pending_free(pending *p) {
    model_id_drop(p->ident);
    api_buf_free(&p->text);
    free(p);
}

/* ---- index only: no slots ---- */

static void offpool_run(uv_work_t *w) {
    pending *p = w->data;
    p->status = p->job->prepare(p->job, p->message, sizeof(p->message));
}

static void offpool_done(uv_work_t *w, int status) {
    pending *p = w->data;
    server *s = p->s;
    gen_job *j = p->job;
    (void)status;
    if (p->c) { /* else its client left: counted and traced then */
        http_conn_set_user(p->c, NULL);
        if (p->status == GEN_PREPARED || p->status == 0) {
            api_result res = {"", 0, "stop", 0, 0};
            api_buf b = {0};
            if (p->route == ROUTE_RAG)
                serve_index_retrieved(&b, j);
            else
                serve_index_answer(&b, j, "", &res);
            if (b.failed)
                answer_error(s, p->c, p->route, p->t0, 500, "out of memory", NULL);
            else
                answer(s, p->c, p->route, p->t0, 200, "application/json", b.p, b.len, NULL);
            trace_generation(s, p->ident, p->route, p->t0, b.failed ? 500 : 200, &j->req, NULL,
                             NULL, b.failed ? "out of memory" : NULL);
            api_buf_free(&b);
        } else {
            answer_error(s, p->c, p->route, p->t0, p->status, p->message, NULL);
            trace_generation(s, p->ident, p->route, p->t0, p->status, &j->req, NULL, NULL,
                             p->message);
        }
    }
    gen_job_free(j);
    pending_free(p);
}

static void start_generation(server *s, http_conn *c, const http_request *r, metrics_route route,
                             uint64_t t0) {
    api_kind kind = route == ROUTE_CHAT ? API_CHAT : API_COMPLETION;
    char err[512];
    const char *param;
    pending *p = calloc(1, sizeof(*p));
    gen_job *j = p ? gen_job_new() : NULL;
    if (!j) {
        free(p);
        answer_error(s, c, route, t0, 500, "out of memory", NULL);
        return;
    }
    int rc = route == ROUTE_EMBEDDINGS || route == ROUTE_RAG
                 ? serve_index_job(s->index, route == ROUTE_RAG, r->body, r->body_len, j, &param,
                                   err, sizeof(err))
                 : api_parse(kind, r->body, r->body_len, &j->req, &param, err, sizeof(err));
    if (rc) {
        gen_job_free(j);
        free(p);
        trace_generation(s, NULL, route, t0, rc == -ENOMEM ? 500 : 400, NULL, NULL, NULL, err);
        answer_error(s, c, route, t0, rc == -ENOMEM ? 500 : 400, err, param);
        return;
    }
    p->s = s, p->c = c, p->job = j, p->route = route, p->t0 = t0;
    p->created = (long)time(NULL);
    snprintf(p->model_name, sizeof(p->model_name), "%s", s->name);
    if ((p->ident = s->ident))
        p->ident->refs++;
    snprintf(p->id, sizeof(p->id), "%s-%llx", kind == API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)++s->next_id);
    j->user = p;
    if (!s->pool) { /* index only: the job's prepare is the whole of it */
        p->offpool = 1;
        p->work.data = p;
        if (uv_queue_work(s->loop, &p->work, offpool_run, offpool_done) != 0) {
            gen_job_free(j);
            pending_free(p);
            answer_error(s, c, route, t0, 500, "cannot start the work", NULL);
            return;
        }
        http_conn_set_user(c, p);
        return;
    }
    if (gen_pool_submit(s->pool, j) != 0) {
        static const char busy[] =
            "the server is busy: every slot is generating and the queue is full";
        trace_generation(s, NULL, route, t0, 429, &j->req, NULL, NULL, busy);
        gen_job_free(j);
        pending_free(p);
        answer_error(s, c, route, t0, 429, busy, NULL);
        return;
    }
    http_conn_set_user(c, p);
}

static void admin_reload(server *s, http_conn *c, const http_request *r, uint64_t t0);
static void pools_counts(server *s, int *queued, int *running);
static void hook_request(server *s, http_conn *c, const http_request *r, uint64_t t0);

static void on_request(http_conn *c, const http_request *r, void *ctx) {
    server *s = ctx;
    uint64_t t0 = uv_hrtime();
    metrics_route route = route_of(r->path, r->path_len);
    int get = r->method_len == 3 && memcmp(r->method, "GET", 3) == 0;
    int post = r->method_len == 4 && memcmp(r->method, "POST", 4) == 0;
    if (route == ROUTE_RELOAD) {
        admin_reload(s, c, r, t0);
        return;
    }
    if (s->relay && serve_relay_wants(r->path, r->path_len)) { /* the ui's own key guards */
        serve_relay_request(s->relay, c);
        return;
    }
    if (route == ROUTE_HOOKS && s->hook_secret) { /* the signature is its key */
        hook_request(s, c, r, t0);
        return;
    }
    if (route == ROUTE_HOOKS)
        route = ROUTE_OTHER;
    if (route != ROUTE_HEALTH && !authorized(&s->api, r)) {
        answer_error(s, c, route, t0, 401, "a valid API key is needed (Authorization: Bearer KEY)",
                     NULL);
        return;
    }
    if (route == ROUTE_OTHER) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no route %.*s %.*s",
                 (int)(r->method_len < 16 ? r->method_len : 16), r->method,
                 (int)(r->path_len < 100 ? r->path_len : 100), r->path);
        answer_error(s, c, route, t0, 404, msg, NULL);
        return;
    }
    int want_post = route == ROUTE_CHAT || route == ROUTE_COMPLETIONS ||
                    route == ROUTE_EMBEDDINGS || route == ROUTE_RAG;
    if (want_post ? !post : !get) {
        answer_error(s, c, route, t0, 405, want_post ? "use POST" : "use GET", NULL);
        return;
    }
    api_buf b = {0};
    switch (route) {
    case ROUTE_HEALTH:
        if (s->ready)
            answer(s, c, route, t0, 200, "application/json", "{\"status\": \"ok\"}\n", 17, NULL);
        else
            answer_error(s, c, route, t0, 503, "loading the model", NULL);
        return;
    case ROUTE_METRICS: {
        int queued = 0, running = 0;
        pools_counts(s, &queued, &running);
        metrics_write(s->metrics, &b, queued, running, http_server_connections(s->http), s->ready);
        break;
    }
    case ROUTE_MODELS:
        if (!s->pool) { /* index only: no model to name */
            api_buf_add(&b, "{\"object\": \"list\", \"data\": []}\n", 31);
            break;
        }
        api_buf_add(&b, "{\"object\": \"list\", \"data\": [{\"id\": ", 35);
        api_buf_json(&b, s->name, strlen(s->name));
        api_buf_printf(&b, ", \"object\": \"model\", \"created\": %ld, \"owned_by\": \"sluice\"",
                       s->created);
        if (s->version[0]) {
            api_buf_add(&b, ", \"version\": ", 13);
            api_buf_json(&b, s->version, strlen(s->version));
        }
        api_buf_add(&b, "}]}\n", 4);
        break;
    default:
        if ((route == ROUTE_EMBEDDINGS || route == ROUTE_RAG) && !s->index_folder[0]) {
            answer_error(s, c, route, t0, 404,
                         "no index is loaded: start sluice serve with --index INDEX to serve "
                         "/v1/embeddings and /rag",
                         NULL);
        } else if (!s->ready) {
            trace_generation(s, NULL, route, t0, 503, NULL, NULL, NULL, "loading the model");
            answer_error(s, c, route, t0, 503, "loading the model", NULL);
        } else if (!s->pool && route != ROUTE_EMBEDDINGS && route != ROUTE_RAG) {
            answer_error(s, c, route, t0, 404,
                         "no model is loaded: this server serves only its index "
                         "(/v1/embeddings, and /rag's retrieval); start sluice serve with --model "
                         "DIR, or POST /admin/reload a model, to generate",
                         "model");
        } else {
            start_generation(s, c, r, route, t0);
        }
        return;
    }
    if (b.failed)
        answer_error(s, c, route, t0, 500, "out of memory", NULL);
    else
        answer(s, c, route, t0, 200,
               route == ROUTE_METRICS ? "text/plain; version=0.0.4" : "application/json", b.p,
               b.len, NULL);
    api_buf_free(&b);
}

static void on_abort(http_conn *c, void *ctx) {
    server *s = ctx;
    if (serve_relay_abort(s->relay, c))
        return;
    if (s->reloading && s->reloading->c == c) {
        s->reloading->c = NULL; /* the reload goes on; nobody to tell */
        return;
    }
    for (hook *h = s->hooks; h; h = h->next)
        if (h->c == c) {
            h->c = NULL; /* the fire goes on */
            metrics_request(s->metrics, ROUTE_HOOKS, 499, since(h->t0));
            return;
        }
    pending *p = http_conn_user(c);
    if (!p)
        return;
    trace_generation(s, p->ident, p->route, p->t0, 499, &p->job->req, NULL, &p->text,
                     "the client left");
    if (p->offpool) { /* its work ends on its own, then frees it */
        metrics_request(s->metrics, p->route, 499, since(p->t0));
        p->c = NULL;
        return;
    }
    gen_pool_cancel(s->pool, p->job);
    metrics_request(s->metrics, p->route, 499, since(p->t0));
    pending_free(p);
}

static void on_refused(int status, void *ctx) {
    server *s = ctx;
    metrics_request(s->metrics, ROUTE_NONE, status, 0);
}

static void stream_send(pending *p, api_buf *b) {
    if (!b->failed)
        http_stream_write(p->c, b->p, b->len);
    b->len = 0;
}

/* A generation's news: stream it, or keep it for the whole answer. */
static void on_event(gen_job *j, void *ctx) {
    server *s = ctx;
    pending *p = j->user;
    if (!p) { /* its client left: what it cost still counts */
        metrics_tokens(s->metrics, j->prompt_tokens, j->completion_tokens);
        return;
    }
    http_conn *c = p->c;
    const api_request *r = &j->req;
    const char *model_name = p->model_name;
    if (j->done && j->status) {
        if (p->streaming) {
            /* the stream has begun: the error is its last event */
            api_buf b = {0};
            api_buf_add(&b, "data: ", 6);
            api_error(&b, j->message, j->status >= 500 ? "server_error" : "invalid_request_error",
                      NULL, NULL);
            api_buf_add(&b, "\n", 1);
            stream_send(p, &b);
            api_buf_free(&b);
            http_stream_end(c);
            metrics_request(s->metrics, p->route, 200, since(p->t0));
        } else {
            answer_error(s, c, p->route, p->t0, j->status, j->message, NULL);
        }
        trace_generation(s, p->ident, p->route, p->t0, p->streaming ? 200 : j->status, r, j,
                         &p->text, j->message);
        http_conn_set_user(c, NULL);
        pending_free(p);
        return;
    }
    if (r->stream) {
        api_buf b = {0};
        if (!p->streaming) {
            http_stream_begin(c, 200, "text/event-stream");
            p->streaming = 1;
            if (r->kind == API_CHAT)
                api_chunk(&b, r->kind, p->id, p->created, model_name, 1, "", 0, NULL, NULL);
            else if (p->route == ROUTE_RAG) /* the chunks first, then the answer's pieces */
                serve_index_context_event(&b, j, p->id, model_name);
        }
        if (j->text_len)
            api_chunk(&b, r->kind, p->id, p->created, model_name, 0, j->text, j->text_len, NULL,
                      NULL);
        if (s->traces) /* the answer, for its trace */
            api_buf_add(&p->text, j->text ? j->text : "", j->text_len);
        if (j->done) {
            api_chunk(&b, r->kind, p->id, p->created, model_name, 0, "", 0, j->finish_reason, NULL);
            if (r->include_usage) {
                api_result u = {NULL, 0, NULL, j->prompt_tokens, j->completion_tokens};
                api_chunk(&b, r->kind, p->id, p->created, model_name, 0, NULL, 0, NULL, &u);
            }
            api_buf_add(&b, "data: [DONE]\n\n", 14);
        }
        stream_send(p, &b);
        api_buf_free(&b);
        if (!j->done)
            return;
        http_stream_end(c);
        metrics_request(s->metrics, p->route, 200, since(p->t0));
        trace_generation(s, p->ident, p->route, p->t0, 200, r, j, &p->text, NULL);
    } else {
        api_buf_add(&p->text, j->text ? j->text : "", j->text_len);
        if (!j->done)
            return;
        api_result res = {p->text.p ? p->text.p : "", p->text.len, j->finish_reason,
                          j->prompt_tokens, j->completion_tokens};
        api_buf b = {0};
        if (p->route == ROUTE_EMBEDDINGS || p->route == ROUTE_RAG)
            serve_index_answer(&b, j, model_name, &res);
        else
            api_answer(&b, r->kind, p->id, p->created, model_name, &res);
        int ok = !b.failed && !p->text.failed;
        if (!ok)
            answer_error(s, c, p->route, p->t0, 500, "out of memory", NULL);
        else
            answer(s, c, p->route, p->t0, 200, "application/json", b.p, b.len, NULL);
        trace_generation(s, p->ident, p->route, p->t0, ok ? 200 : 500, r, j, &p->text,
                         ok ? NULL : "out of memory");
        api_buf_free(&b);
    }
    metrics_tokens(s->metrics, j->prompt_tokens, j->completion_tokens);
    http_conn_set_user(c, NULL);
    pending_free(p);
}

/* ---- loading, draining ---- */

static void load_work(uv_work_t *w) {
    server *s = w->data;
    if (s->folder[0] &&
        model_open_adapted(s->folder, &s->m, NULL, s->load_err, sizeof(s->load_err)) != 0) {
        s->m = NULL;
        s->load_failed = 1;
    }
    if (!s->load_failed && s->index_folder[0] &&
        serve_index_open(s->index_folder, &s->index, s->load_err, sizeof(s->load_err)) != 0) {
        model_free(s->m);
        s->m = NULL;
        s->load_failed = 1;
    }
}

static void drain(server *s);
static void on_pool_empty(gen_pool *p, void *ctx);

/* The slots over m, which the pool owns from then on (m is the caller's
 * still when this fails). */
static int start_pool(server *s, model *m, const char *tok_path, gen_pool **out, char *err,
                      size_t err_size) {
    gen_pool_config gc = {s->parallel, s->queue, tok_path, on_event, s, on_pool_empty, m};
    return gen_pool_new(s->loop, m, &gc, out, err, err_size);
}

static void load_done(uv_work_t *w, int status) {
    server *s = w->data;
    (void)status;
    if (s->load_failed) {
        fprintf(stderr, "sluice serve: %s\n", s->load_err);
        s->failed = 1;
        drain(s);
        return;
    }
    if (s->draining)
        return;
    char err[1024];
    if (!s->m) { /* index only */
        s->ready = 1;
        fprintf(stderr, "sluice serve: the index is ready (no model: no generation)\n");
        return;
    }
    if (start_pool(s, s->m, s->tok_path, &s->pool, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err);
        s->failed = 1;
        drain(s);
        return;
    }
    s->m = NULL; /* the pool's */
    s->ready = 1;
    s->created = (long)time(NULL);
    metrics_model(s->metrics, s->name, s->version);
    fprintf(stderr, "sluice serve: %s ready\n", s->name);
}

/* ---- reloading ---- */

static void pools_counts(server *s, int *queued, int *running) {
    *queued = *running = 0;
    gen_pool *all[MAX_RETIRING + 1];
    int n = 0;
    if (s->pool)
        all[n++] = s->pool;
    for (int i = 0; i < s->n_retiring; i++)
        all[n++] = s->retiring[i];
    for (int i = 0; i < n; i++) {
        int q, r;
        gen_pool_counts(all[i], &q, &r);
        *queued += q, *running += r;
    }
}

/* A retired pool's last request is done: it goes, with its model. */
static void on_pool_empty(gen_pool *p, void *ctx) {
    server *s = ctx;
    for (int i = 0; i < s->n_retiring; i++)
        if (s->retiring[i] == p) {
            s->retiring[i] = s->retiring[--s->n_retiring];
            gen_pool_free(p);
            return;
        }
}

/* The id a model folder gets without --model-name: its last name. */
static void name_of(const char *dir, char *out, size_t size) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    const char *base = dir + n;
    while (base > dir && base[-1] != '/')
        base--;
    snprintf(out, size, "%.*s", (int)(dir + n - base), base);
}

static void reload_work(uv_work_t *w) {
    reload *rl = w->data;
    if (rl->index_spec[0]) {
        if (command_folder(&info, rl->index_spec, "index", rl->index_folder,
                           sizeof(rl->index_folder)) != 0) {
            snprintf(rl->err, sizeof(rl->err),
                     "'%.512s' is neither an index folder nor an index artifact of the store (the "
                     "server's log says why)",
                     rl->index_spec);
            return;
        }
        if (serve_index_open(rl->index_folder, &rl->ix, rl->err, sizeof(rl->err)) != 0) {
            rl->ix = NULL;
            return;
        }
    }
    if (!rl->spec[0])
        return;
    if (command_folder(&info, rl->spec, "model", rl->folder, sizeof(rl->folder)) != 0) {
        snprintf(rl->err, sizeof(rl->err),
                 "'%.512s' is neither a model folder nor a model artifact of the store (the "
                 "server's log says why)",
                 rl->spec);
        return;
    }
    if (model_open_adapted(rl->folder, &rl->m, NULL, rl->err, sizeof(rl->err)) != 0)
        rl->m = NULL;
}

static void reload_answer(server *s, reload *rl, int status, const char *message,
                          const char *old_name, const char *old_version) {
    if (!rl->c)
        return;
    if (status != 200) {
        answer_error(s, rl->c, ROUTE_RELOAD, rl->t0, status, message,
                     status != 400                  ? NULL
                     : rl->index_spec[0] && !rl->ix ? "index"
                                                    : "model");
        return;
    }
    api_buf b = {0};
    api_buf_add(&b, "{\"object\": \"model\", \"id\": ", 26);
    api_buf_json(&b, s->name, strlen(s->name));
    api_buf_add(&b, ", \"version\": ", 13);
    api_buf_json(&b, s->version, strlen(s->version));
    api_buf_printf(&b, ", \"created\": %ld, \"previous\": {\"id\": ", s->created);
    api_buf_json(&b, old_name, strlen(old_name));
    api_buf_add(&b, ", \"version\": ", 13);
    api_buf_json(&b, old_version, strlen(old_version));
    api_buf_add(&b, "}", 1);
    if (rl->index_spec[0]) {
        api_buf_add(&b, ", \"index\": ", 11);
        api_buf_json(&b, s->index_folder, strlen(s->index_folder));
    }
    api_buf_add(&b, "}\n", 2);
    if (b.failed)
        answer_error(s, rl->c, ROUTE_RELOAD, rl->t0, 500, "out of memory", NULL);
    else
        answer(s, rl->c, ROUTE_RELOAD, rl->t0, 200, "application/json", b.p, b.len, NULL);
    api_buf_free(&b);
}

/* The new model is loaded (or not): swap it in. Requests already taken
 * finish on the pool they are in; from here on they go to the new one. */
static void reload_done(uv_work_t *w, int status) {
    reload *rl = w->data;
    server *s = rl->s;
    (void)status;
    s->reloading = NULL;
    char err[1200];
    gen_pool *fresh = NULL;
    const char *what = rl->spec[0] ? rl->spec : rl->index_spec;
    /* all or nothing: a model and an index asked for are swapped in together */
    int loaded = (!rl->spec[0] || rl->m) && (!rl->index_spec[0] || rl->ix);
    if (!loaded) {
        fprintf(stderr, "sluice serve: reload of %s failed: %s\n", what, rl->err);
        metrics_reload(s->metrics, 0);
        snprintf(err, sizeof(err), "the %s did not load (the one served is kept): %s",
                 rl->index_spec[0] && !rl->ix ? "index" : "model", rl->err);
        reload_answer(s, rl, 400, err, NULL, NULL);
    } else if (s->draining) {
        reload_answer(s, rl, 503, "the server is stopping", NULL, NULL);
        loaded = 0;
    } else if (rl->m) {
        char tok[4200];
        snprintf(tok, sizeof(tok), "%s/tokenizer.json", rl->folder);
        if (start_pool(s, rl->m, tok, &fresh, err, sizeof(err)) != 0) {
            fprintf(stderr, "sluice serve: reload of %s failed: %s\n", rl->spec, err);
            metrics_reload(s->metrics, 0);
            char msg[1400];
            snprintf(msg, sizeof(msg), "the model did not load (the one served is kept): %s", err);
            reload_answer(s, rl, 400, msg, NULL, NULL);
            loaded = 0;
        } else {
            rl->m = NULL; /* the pool's */
        }
    }
    if (!loaded) {
        model_free(rl->m);
        serve_index_close(rl->ix);
        free(rl);
        return;
    }
    char old_name[256], old_version[64];
    snprintf(old_name, sizeof(old_name), "%s", s->name);
    snprintf(old_version, sizeof(old_version), "%s", s->version);
    if (rl->ix) { /* jobs readied on the old index hold it until they end */
        serve_index_close(s->index);
        s->index = rl->ix;
        snprintf(s->index_folder, sizeof(s->index_folder), "%s", rl->index_folder);
        fprintf(stderr, "sluice serve: reloaded the index: %s\n", s->index_folder);
    }
    if (fresh) {
        gen_pool *old = s->pool;
        s->pool = fresh;
        if (old && gen_pool_idle(old))
            gen_pool_free(old);
        else if (old)
            s->retiring[s->n_retiring++] = old;
        if (rl->name[0])
            snprintf(s->name, sizeof(s->name), "%s", rl->name);
        else
            name_of(rl->spec, s->name, sizeof(s->name));
        snprintf(s->version, sizeof(s->version), "%s", rl->version);
        snprintf(s->folder, sizeof(s->folder), "%s", rl->folder);
        snprintf(s->model_spec, sizeof(s->model_spec), "%s", rl->spec);
        model_id *id = model_id_new(s->name, s->version, s->model_spec, s->folder);
        if (id) { /* else the old one stays: out of memory, a trace mislabelled */
            model_id_drop(s->ident);
            s->ident = id;
        }
        s->created = (long)time(NULL);
        metrics_model(s->metrics, s->name, s->version);
        fprintf(stderr, "sluice serve: reloaded: %s%s%s ready (was %s)\n", s->name,
                s->version[0] ? " version " : "", s->version, old_name[0] ? old_name : "none");
    }
    metrics_reload(s->metrics, 1);
    reload_answer(s, rl, 200, NULL, old_name, old_version);
    free(rl);
}

/* A JSON string field of doc into out (size bytes): 0 when absent, 1 when
 * copied, -1 when it is not a string (a number is taken for version). */
static int json_text(const bson_t *doc, const char *key, char *out, size_t size) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key))
        return 0;
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t n;
        const char *v = bson_iter_utf8(&it, &n);
        if (n >= size || memchr(v, 0, n))
            return -1;
        snprintf(out, size, "%s", v);
        return 1;
    }
    if (strcmp(key, "version") == 0 && (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it))) {
        snprintf(out, size, "%lld", (long long)bson_iter_as_int64(&it));
        return 1;
    }
    return -1;
}

/* POST /admin/reload {"model": DIR|ID|NAME@ALIAS, "name"?, "version"?}:
 * only with --admin-key-file, and only with one of its keys. */
static void admin_reload(server *s, http_conn *c, const http_request *r, uint64_t t0) {
    if (r->method_len != 4 || memcmp(r->method, "POST", 4) != 0) {
        answer_error(s, c, ROUTE_RELOAD, t0, 405, "use POST", NULL);
        return;
    }
    if (!s->admin.n) {
        answer_error(s, c, ROUTE_RELOAD, t0, 403,
                     "reloading is off: start sluice serve with --admin-key-file to allow it",
                     NULL);
        return;
    }
    if (!authorized(&s->admin, r)) {
        answer_error(s, c, ROUTE_RELOAD, t0, 401,
                     "an admin key is needed (Authorization: Bearer KEY of --admin-key-file)",
                     NULL);
        return;
    }
    if (!s->ready || s->draining) {
        answer_error(s, c, ROUTE_RELOAD, t0, 503,
                     s->draining ? "the server is stopping" : "loading the model", NULL);
        return;
    }
    if (s->reloading || s->n_retiring == MAX_RETIRING) {
        answer_error(s, c, ROUTE_RELOAD, t0, 409,
                     s->reloading ? "a reload is under way: try again when it has answered"
                                  : "too many replaced models still finish requests",
                     NULL);
        return;
    }
    bson_error_t jerr;
    bson_t *doc = bson_new_from_json((const uint8_t *)r->body, (ssize_t)r->body_len, &jerr);
    reload *rl = doc ? calloc(1, sizeof(*rl)) : NULL;
    const char *bad = !doc ? "the body is not a JSON object" : !rl ? "out of memory" : NULL;
    const char *param = NULL;
    int has_model = rl ? json_text(doc, "model", rl->spec, sizeof(rl->spec)) : 0;
    int has_index = rl ? json_text(doc, "index", rl->index_spec, sizeof(rl->index_spec)) : 0;
    if (rl && (has_model < 0 || (has_model == 0 && has_index <= 0)))
        bad = "'model' must be a string: a model folder, an artifact id or NAME@ALIAS (or give "
              "'index' alone)",
        param = "model";
    else if (rl && has_index < 0)
        bad = "'index' must be a string: an index folder, an artifact id or RUN:STEP.OUTPUT",
        param = "index";
    else if (rl && json_text(doc, "name", rl->name, sizeof(rl->name)) < 0)
        bad = "'name' must be a string", param = "name";
    else if (rl && json_text(doc, "version", rl->version, sizeof(rl->version)) < 0)
        bad = "'version' must be a string or a whole number", param = "version";
    int status = doc && !rl ? 500 : 400;
    if (doc)
        bson_destroy(doc);
    if (bad) {
        free(rl);
        answer_error(s, c, ROUTE_RELOAD, t0, status, bad, param);
        return;
    }
    rl->s = s;
    rl->c = c;
    rl->t0 = t0;
    rl->work.data = rl;
    if (uv_queue_work(s->loop, &rl->work, reload_work, reload_done) != 0) {
        free(rl);
        answer_error(s, c, ROUTE_RELOAD, t0, 500, "cannot start loading", NULL);
        return;
    }
    s->reloading = rl;
    fprintf(stderr, "sluice serve: reloading: %s%s%s\n", rl->spec,
            rl->spec[0] && rl->index_spec[0] ? " and " : "", rl->index_spec);
}

/* ---- webhooks ---- */

static int hex_digit(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Whether r's X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
 * its body under the secret, as GitHub signs a delivery. */
static int hook_signed(const server *s, const http_request *r) {
    size_t len;
    const char *sig = http_header(r, "x-hub-signature-256", &len);
    if (!sig || len != 7 + 2 * 32 || strncmp(sig, "sha256=", 7) != 0)
        return 0;
    unsigned char want[32], got[EVP_MAX_MD_SIZE];
    for (int i = 0; i < 32; i++) {
        int hi = hex_digit(sig[7 + 2 * i]), lo = hex_digit(sig[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return 0;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned int got_len = 0;
    if (!HMAC(EVP_sha256(), s->hook_secret, (int)s->hook_secret_len,
              (const unsigned char *)(r->body ? r->body : ""), r->body_len, got, &got_len) ||
        got_len != 32)
        return 0;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

static void hook_closed(uv_handle_t *handle) {
    hook *h = handle->data;
    if (--h->open > 0)
        return;
    server *s = h->s;
    for (hook **p = &s->hooks; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    if (h->c) {
        int64_t st = h->exit_status;
        /* 'sluice schedule fire' says by its exit status (docs/schedules.md) */
        int status = st == 0 ? 202 : st == 3 ? 404 : st == 4 ? 200 : st == 5 ? 409 : 500;
        if (status == 202 && !h->outb.failed && h->outb.len) {
            answer(s, h->c, ROUTE_HOOKS, h->t0, 202, "application/json", h->outb.p, h->outb.len,
                   NULL);
        } else if (status == 200) {
            static const char dup[] = "{\"status\": \"duplicate\", \"message\": \"this delivery "
                                      "fired the schedule already: nothing is run again\"}\n";
            answer(s, h->c, ROUTE_HOOKS, h->t0, 200, "application/json", dup, sizeof(dup) - 1,
                   NULL);
        } else {
            /* fire's own message, its last line without "sluice schedule fire: " */
            char msg[600];
            size_t n = h->errb.failed ? 0 : h->errb.len;
            const char *e = h->errb.p ? h->errb.p : "";
            while (n && (e[n - 1] == '\n' || e[n - 1] == '\r'))
                n--;
            const char *start = e + n;
            while (start > e && start[-1] != '\n')
                start--;
            snprintf(msg, sizeof(msg), "%.*s", (int)(e + n - start), start);
            answer_error(s, h->c, ROUTE_HOOKS, h->t0, status == 202 ? 500 : status,
                         msg[0] ? msg : "the schedule could not be fired (see the server's log)",
                         NULL);
        }
    }
    api_buf_free(&h->outb);
    api_buf_free(&h->errb);
    free(h);
}

static void hook_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *b) {
    (void)suggested;
    static char chunk[4096]; /* copied out at once: one buffer does for all */
    (void)handle;
    *b = uv_buf_init(chunk, sizeof(chunk));
}

static void hook_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    hook *h = st->data;
    if (n > 0) {
        api_buf *to = st == (uv_stream_t *)&h->out ? &h->outb : &h->errb;
        if (to->len + (size_t)n <= 65536)
            api_buf_add(to, b->base, (size_t)n);
    } else if (n < 0) {
        uv_close((uv_handle_t *)st, hook_closed);
    }
}

static void hook_exited(uv_process_t *p, int64_t status, int signo) {
    hook *h = p->data;
    h->exit_status = signo ? 128 + signo : status;
    uv_close((uv_handle_t *)p, hook_closed);
}

/* POST /hooks/NAME: only with --hooks-secret-file, and only signed with
 * it; the schedule is fired by 'sluice schedule fire' as a child, so that
 * the store's metadata stays the orchestrator's and the loop never waits. */
static void hook_request(server *s, http_conn *c, const http_request *r, uint64_t t0) {
    if (r->method_len != 4 || memcmp(r->method, "POST", 4) != 0) {
        answer_error(s, c, ROUTE_HOOKS, t0, 405, "use POST", NULL);
        return;
    }
    if (!hook_signed(s, r)) {
        answer_error(s, c, ROUTE_HOOKS, t0, 401,
                     "X-Hub-Signature-256 is missing or is not sha256=HMAC of the body under the "
                     "hooks secret",
                     NULL);
        return;
    }
    char name[65], delivery[129] = "";
    size_t n = r->path_len - 7, len;
    const char *q = memchr(r->path, '?', r->path_len);
    if (q)
        n = (size_t)(q - r->path) - 7;
    int ok = n > 0 && n < sizeof(name);
    for (size_t i = 0; ok && i < n; i++) {
        char ch = r->path[7 + i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '_' || ch == '.';
    }
    if (!ok) {
        answer_error(s, c, ROUTE_HOOKS, t0, 404, "no such schedule", NULL);
        return;
    }
    snprintf(name, sizeof(name), "%.*s", (int)n, r->path + 7);
    const char *event = http_header(r, "x-github-event", &len);
    if (event && len == 4 && memcmp(event, "ping", 4) == 0) { /* GitHub's hello on a new hook */
        answer(s, c, ROUTE_HOOKS, t0, 200, "application/json", "{\"status\": \"pong\"}\n", 19,
               NULL);
        return;
    }
    const char *id = http_header(r, "x-github-delivery", &len);
    if (id) {
        ok = len > 0 && len < sizeof(delivery);
        for (size_t i = 0; ok && i < len; i++)
            ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
                 (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_' || id[i] == '.' ||
                 id[i] == ':';
        if (!ok) {
            answer_error(s, c, ROUTE_HOOKS, t0, 400,
                         "X-GitHub-Delivery: up to 128 letters, digits, '-', '_', '.', ':'", NULL);
            return;
        }
        snprintf(delivery, sizeof(delivery), "%.*s", (int)len, id);
    }
    if (s->draining) {
        answer_error(s, c, ROUTE_HOOKS, t0, 503, "the server is stopping", NULL);
        return;
    }
    hook *h = calloc(1, sizeof(*h));
    if (!h) {
        answer_error(s, c, ROUTE_HOOKS, t0, 500, "out of memory", NULL);
        return;
    }
    h->s = s, h->c = c, h->t0 = t0;
    const char *exe = getenv("SLUICE_EXE");
    const char *args[16];
    int k = 0;
    args[k++] = exe && exe[0] ? exe : "sluice";
    args[k++] = "--store";
    args[k++] = command_store();
    args[k++] = "schedule";
    args[k++] = "fire";
    args[k++] = name;
    args[k++] = "--trigger";
    args[k++] = "hook";
    if (delivery[0])
        args[k++] = "--delivery", args[k++] = delivery;
    args[k++] = "--json";
    args[k] = NULL;
    uv_pipe_init(s->loop, &h->out, 0);
    uv_pipe_init(s->loop, &h->err, 0);
    h->out.data = h->err.data = h->proc.data = h;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&h->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&h->err},
    };
    uv_process_options_t o = {.file = args[0],
                              .args = (char **)args,
                              .exit_cb = hook_exited,
                              .stdio_count = 3,
                              .stdio = stdio};
    h->next = s->hooks;
    s->hooks = h;
    h->open = 3;
    int rc = uv_spawn(s->loop, &h->proc, &o);
    if (rc) {
        fprintf(stderr, "sluice serve: /hooks/%s: cannot start %s: %s\n", name, args[0],
                uv_strerror(rc));
        h->c = NULL;
        answer_error(s, c, ROUTE_HOOKS, t0, 500, "cannot start sluice to fire the schedule", NULL);
        uv_close((uv_handle_t *)&h->proc, hook_closed);
        uv_close((uv_handle_t *)&h->out, hook_closed);
        uv_close((uv_handle_t *)&h->err, hook_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&h->out, hook_alloc, hook_read);
    uv_read_start((uv_stream_t *)&h->err, hook_alloc, hook_read);
    fprintf(stderr, "sluice serve: /hooks/%s: firing (delivery %s)\n", name,
            delivery[0] ? delivery : "none");
}

static void drained(void *arg) {
    server *s = arg;
    if (s->pool)
        gen_pool_free(s->pool);
    s->pool = NULL;
    while (s->n_retiring)
        gen_pool_free(s->retiring[--s->n_retiring]);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void drain(server *s) {
    if (s->draining)
        return;
    s->draining = 1;
    serve_relay_stop(s->relay); /* the child's closing ends the relays under way */
    http_server_drain(s->http, drained, s);
}

static void on_signal(uv_signal_t *h, int signum) {
    server *s = h->data;
    (void)signum;
    fprintf(stderr, "sluice serve: draining\n");
    drain(s);
}

/* ---- options ---- */

#define bad(...) command_bad(&info, __VA_ARGS__)

static int read_keys(keyset *ks, const char *option, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return bad("--%s %s: %s", option, path, strerror(errno));
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        if (!n || line[0] == '#')
            continue;
        if (ks->n == MAX_KEYS || !(ks->keys[ks->n] = strdup(line))) {
            fclose(f);
            return bad("--%s %s: more than %d keys", option, path, MAX_KEYS);
        }
        ks->len[ks->n++] = n;
    }
    fclose(f);
    if (!ks->n)
        return bad("--%s %s: no key in it", option, path);
    return 0;
}

/* The webhook secret: the file's bytes, without a trailing line break
 * (as an editor or echo leaves one). */
static int read_secret(server *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return bad("--hooks-secret-file %s: %s", path, strerror(errno));
    char buf[4097];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n == sizeof(buf))
        return bad("--hooks-secret-file %s: longer than 4096 bytes", path);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (!n)
        return bad("--hooks-secret-file %s: empty", path);
    if (!(s->hook_secret = malloc(n)))
        return bad("out of memory");
    memcpy(s->hook_secret, buf, n);
    s->hook_secret_len = n;
    return 0;
}

static int write_port(const char *path, int port) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        return bad("--port-file %s: %s", path, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    int status = command_standard(&info, argc, argv);
    if (status >= 0)
        return status;
    static const struct option longs[] = {
        {"model", required_argument, NULL, 'm'},
        {"index", required_argument, NULL, 'I'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'P'},
        {"parallel", required_argument, NULL, 'n'},
        {"queue", required_argument, NULL, 'q'},
        {"api-key-file", required_argument, NULL, 'k'},
        {"model-name", required_argument, NULL, 'N'},
        {"admin-key-file", required_argument, NULL, 'K'},
        {"model-version", required_argument, NULL, 'V'},
        {"max-connections", required_argument, NULL, 'C'},
        {"max-header-bytes", required_argument, NULL, 'H'},
        {"max-body-bytes", required_argument, NULL, 'B'},
        {"header-timeout", required_argument, NULL, 'h'},
        {"body-timeout", required_argument, NULL, 'b'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"threads", required_argument, NULL, 't'},
        {"trace-retention", required_argument, NULL, 'R'},
        {"no-traces", no_argument, NULL, 'T'},
        {"hooks-secret-file", required_argument, NULL, 'S'},
        {"dashboard", no_argument, NULL, 'D'},
        {"no-dashboard", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    static server s;
    http_limits lim = {16384, 1 << 20, 10000, 30000, 60000, 1024};
    const char *listen = "127.0.0.1:8080", *port_file = NULL, *dir = NULL, *keys = NULL;
    const char *admin_keys = NULL, *hooks_secret = NULL;
    const char *name = NULL, *index_spec = NULL;
    double v, threads = 1;
    uint64_t trace_records = TRACE_DEFAULT_RECORDS, trace_bytes = TRACE_DEFAULT_BYTES;
    int traces = 1, dashboard = -1; /* -1: when the store has metadata */
    s.parallel = 1;
    s.queue = 16;
    int c;
    command_getopt_begin();
    while ((c = command_getopt(&info, argc, argv, ":", longs)) != -1) {
        switch (c) {
        case 'm':
            dir = optarg;
            break;
        case 'I':
            index_spec = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'P':
            port_file = optarg;
            break;
        case 'k':
            keys = optarg;
            break;
        case 'N':
            name = optarg;
            break;
        case 'K':
            admin_keys = optarg;
            break;
        case 'V':
            snprintf(s.version, sizeof(s.version), "%s", optarg);
            break;
        case 'n':
            if (command_number(&info, "parallel", optarg, 1, 256, &v))
                return COMMAND_BAD_INPUT;
            s.parallel = (int)v;
            break;
        case 'q':
            if (command_number(&info, "queue", optarg, 0, 1 << 20, &v))
                return COMMAND_BAD_INPUT;
            s.queue = (int)v;
            break;
        case 'C':
            if (command_number(&info, "max-connections", optarg, 1, 1 << 20, &v))
                return COMMAND_BAD_INPUT;
            lim.max_connections = (unsigned)v;
            break;
        case 'H':
            if (command_number(&info, "max-header-bytes", optarg, 256, 1 << 20, &v))
                return COMMAND_BAD_INPUT;
            lim.max_header = (size_t)v;
            break;
        case 'B':
            if (command_number(&info, "max-body-bytes", optarg, 0, 1 << 30, &v))
                return COMMAND_BAD_INPUT;
            lim.max_body = (size_t)v;
            break;
        case 'h':
        case 'b':
        case 'i':
            if (command_number(&info,
                               c == 'h'   ? "header-timeout"
                               : c == 'b' ? "body-timeout"
                                          : "idle-timeout",
                               optarg, 0.001, 86400, &v))
                return COMMAND_BAD_INPUT;
            *(c == 'h'   ? &lim.header_timeout_ms
              : c == 'b' ? &lim.body_timeout_ms
                         : &lim.idle_timeout_ms) = (uint64_t)(v * 1000);
            break;
        case 't':
            if (command_number(&info, "threads", optarg, 1, 256, &threads))
                return COMMAND_BAD_INPUT;
            break;
        case 'R': {
            char e[256];
            if (traces_parse_retention(optarg, &trace_records, &trace_bytes, e, sizeof(e)))
                return bad("%s", e);
            break;
        }
        case 'T':
            traces = 0;
            break;
        case 'S':
            hooks_secret = optarg;
            break;
        case 'D':
        case 'd':
            dashboard = c == 'D';
            break;
        default:
            return COMMAND_BAD_INPUT;
        }
    }
    if (optind < argc)
        return bad("unexpected argument '%s' (see 'sluice serve --help')", argv[optind]);
    if (!dir && !index_spec)
        return bad("give --model DIR, --index INDEX or both (see 'sluice serve --help')");
    if ((keys && read_keys(&s.api, "api-key-file", keys)) ||
        (admin_keys && read_keys(&s.admin, "admin-key-file", admin_keys)) ||
        (hooks_secret && read_secret(&s, hooks_secret)))
        return COMMAND_BAD_INPUT;
    if (dir && command_folder(&info, dir, "model", s.folder, sizeof(s.folder)))
        return COMMAND_BAD_INPUT;
    if (index_spec &&
        command_folder(&info, index_spec, "index", s.index_folder, sizeof(s.index_folder)))
        return COMMAND_BAD_INPUT;
    snprintf(s.tok_path, sizeof(s.tok_path), "%s/tokenizer.json", s.folder);
    if (!name)
        name_of(dir ? dir : "", s.name, sizeof(s.name));
    else
        snprintf(s.name, sizeof(s.name), "%s", name);
    openblas_set_num_threads((int)threads);
    signal(SIGPIPE, SIG_IGN);
    s.loop = uv_default_loop();
    if (dashboard < 0) { /* before the traces make the store's folder */
        char meta[4200];
        struct stat st;
        snprintf(meta, sizeof(meta), "%s/meta", command_store());
        dashboard = stat(meta, &st) == 0 && S_ISDIR(st.st_mode);
    }
    s.started = s.created = (long)time(NULL);
    snprintf(s.model_spec, sizeof(s.model_spec), "%s", dir ? dir : "");
    if (!(s.ident = model_id_new(s.name, s.version, s.model_spec, s.folder)))
        return bad("out of memory");
    if (traces) {
        char tdir[4200], e[4400];
        snprintf(tdir, sizeof(tdir), "%s/traces", command_store());
        trace_config tc = {tdir,      trace_records, trace_bytes, (const char *const *)s.api.keys,
                           s.api.len, s.api.n};
        if (traces_open(&tc, &s.traces, e, sizeof(e)))
            return bad("%s (or --no-traces)", e);
    }
    if (!(s.metrics = metrics_new())) {
        traces_close(s.traces);
        return bad("out of memory");
    }
    http_handler h = {on_request, on_abort, on_refused, &s};
    char err[512];
    int port = 0;
    if (http_server_new(s.loop, listen, &lim, &h, &s.http, &port, err, sizeof(err)) != 0) {
        uv_run(s.loop, UV_RUN_DEFAULT);
        metrics_free(s.metrics);
        traces_close(s.traces);
        return bad("%s", err);
    }
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    fprintf(stderr, "sluice serve: listening on %s (port %d), loading %s\n", listen, port,
            dir ? dir : index_spec);
    if (port_file && write_port(port_file, port)) {
        drain(&s);
        uv_run(s.loop, UV_RUN_DEFAULT);
        metrics_free(s.metrics);
        traces_close(s.traces);
        return COMMAND_BAD_INPUT;
    }
    if (dashboard) {
        const char *exe = getenv("SLUICE_EXE");
        if (serve_relay_start(s.loop, exe && exe[0] ? exe : "sluice", command_store(), keys,
                              &s.relay, err, sizeof(err)) != 0)
            fprintf(stderr, "sluice serve: no dashboard: %s\n", err);
    }
    s.load.data = &s;
    uv_queue_work(s.loop, &s.load, load_work, load_done);
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    traces_close(s.traces); /* every answer is done: its trace is queued */
    model_free(s.m);
    serve_index_close(s.index);
    metrics_free(s.metrics);
    for (int i = 0; i < s.api.n; i++)
        free(s.api.keys[i]);
    for (int i = 0; i < s.admin.n; i++)
        free(s.admin.keys[i]);
    model_id_drop(s.ident);
    serve_relay_free(s.relay);
    if (s.hook_secret)
        OPENSSL_cleanse(s.hook_secret, s.hook_secret_len);
    free(s.hook_secret);
    return s.failed ? COMMAND_FAILED : COMMAND_DONE;
}
