/* ui_http.c - the dashboard's HTTP server (ui_http.h). */
#include "ui_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ui_pico.h"

#define MAX_HEADERS 64
#define LINGER_MS 2000 /* nginx's lingering_timeout is 5 s */
#define DRAIN_MS 5000  /* what a stopping server gives answers being written */
/* Answers queued to a client that does not read them: past this, its next
 * pipelined request waits until they are written. */
#define WRITE_HIGH (1u << 20)

const ui_limits ui_default_limits = {
    .max_connections = 256,
    .max_header = 64 * 1024,
    .max_body = 1024 * 1024,
    .header_timeout_ms = 10000,
    .body_timeout_ms = 30000,
    .idle_timeout_ms = 60000,
};

/* A connection's state says which deadline its one timer holds: a slow
 * client is cut off at a deadline fixed when its request began, however
 * it spaces its bytes. */
enum conn_state {
    CONN_IDLE,    /* between requests: the idle deadline (none while paused) */
    CONN_HEAD,    /* a request's head arriving: its header deadline */
    CONN_BODY,    /* its body arriving: its body deadline */
    CONN_STREAM,  /* an event stream: the timer ticks its polls */
    CONN_WRITING, /* answered, to close once written: no deadline but a drain's */
    CONN_LINGER,  /* shut down for writing: what the client still sends is read
                   * and dropped, so that closing with unread bytes does not reset
                   * the connection before the client reads the answer */
    CONN_CLOSING,
};

typedef struct conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    uv_timer_t timer;
    uv_shutdown_t shut;
    ui_server *srv;
    char *in; /* owned: bytes read and not yet answered, from in[0] */
    size_t in_len, in_cap;
    size_t last_len; /* for picohttpparser's resumption of a head */
    enum conn_state state;
    int keep_alive; /* of the request being read */
    int paused;     /* reading waits until the answers queued are written */
    int head;       /* a HEAD request: the answer's headers only */
    int handles;    /* uv handles left to close: freed at 0 */
    unsigned writes;
    void *stream_state; /* an event stream's, owned */
    int (*poll)(void *ctx, void *state, buf *out);
    void (*free_state)(void *state);
    struct conn *prev, *next;
} conn;

struct ui_server {
    uv_loop_t *loop;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } listener;
    int is_unix, listening, draining;
    ui_handler handler;
    void *ctx;
    unsigned poll_ms;
    ui_limits lim;
    unsigned n_conns; /* open, counted against max_connections */
    char address[300];
    conn *conns; /* every open connection, for stop */
};

typedef struct write_req {
    uv_write_t w;
    char *data; /* owned */
} write_req;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void serve_buffered(conn *c);

static void conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->free_state && c->stream_state)
        c->free_state(c->stream_state);
    free(c->in);
    free(c);
}

static void conn_close(conn *c) {
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->srv->conns == c)
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->srv->n_conns--;
    uv_close((uv_handle_t *)&c->timer, conn_closed);
    uv_close(&c->h.handle, conn_closed);
}

static void on_timeout(uv_timer_t *t) { conn_close(t->data); }

static void arm(conn *c, enum conn_state st) {
    const ui_limits *l = &c->srv->lim;
    c->state = st;
    unsigned ms = st == CONN_IDLE && !c->paused            ? l->idle_timeout_ms
                  : st == CONN_HEAD                        ? l->header_timeout_ms
                  : st == CONN_BODY                        ? l->body_timeout_ms
                  : st == CONN_LINGER                      ? LINGER_MS
                  : st == CONN_WRITING && c->srv->draining ? DRAIN_MS
                                                           : 0;
    if (ms)
        uv_timer_start(&c->timer, on_timeout, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

static void on_shut(uv_shutdown_t *req, int status) {
    (void)req;
    (void)status;
}

/* The answer is written and the connection is to close: FIN, then what
 * the client still sends is dropped until it closes or LINGER_MS pass. */
static void linger(conn *c) {
    arm(c, CONN_LINGER);
    c->in_len = 0;
    if (uv_shutdown(&c->shut, &c->h.stream, on_shut) != 0 ||
        uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
        conn_close(c);
}

static void written(uv_write_t *w, int status) {
    write_req *r = (write_req *)w;
    conn *c = w->handle->data;
    free(r->data);
    free(r);
    c->writes--;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes)
        return;
    if (c->state == CONN_WRITING) {
        linger(c);
    } else if (c->paused) {
        c->paused = 0;
        arm(c, CONN_IDLE);
        if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
            conn_close(c);
        else
            serve_buffered(c);
    }
}

/* Sends data (taken: freed here in every case) and then extra (static:
 * not copied) after what is queued. */
static void conn_send(conn *c, char *data, size_t len, const void *extra, size_t extra_len) {
    write_req *r = c->state == CONN_CLOSING ? NULL : calloc(1, sizeof(*r));
    if (!r) {
        free(data);
        conn_close(c);
        return;
    }
    r->data = data;
    uv_buf_t b[2] = {uv_buf_init(data, (unsigned)len),
                     uv_buf_init((char *)extra, (unsigned)extra_len)};
    c->writes++;
    if (uv_write(&r->w, &c->h.stream, b, extra_len ? 2 : 1, written) != 0) {
        c->writes--;
        free(data);
        free(r);
        conn_close(c);
    }
}

/* Nothing more is read: the connection closes once what is queued is written. */
static void close_after_writes(conn *c) {
    uv_read_stop(&c->h.stream);
    c->paused = 0;
    arm(c, CONN_WRITING);
    if (c->writes == 0)
        linger(c);
}

static const char *reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Writes the answer; returns whether the connection stays open for the next
 * request (keep-alive, not a stream). */
static int send_response(conn *c, ui_response *res) {
    int status = res->status ? res->status : 200;
    const void *body = res->static_body ? res->static_body : res->body.data;
    size_t len = res->static_body ? res->static_len : res->body.len;
    int keep = c->keep_alive && !c->srv->draining && !res->stream;
    buf out = BUF_INIT;
    buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status),
               res->type ? res->type : "application/json");
    if (res->stream) {
        buf_puts(&out, "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: "
                       "close\r\n\r\n");
        len = 0;
    } else {
        buf_printf(&out, "Content-Length: %zu\r\nCache-Control: no-store\r\n", len);
        if (res->disposition)
            buf_printf(&out, "Content-Disposition: %s\r\n", res->disposition);
        buf_printf(&out, "X-Content-Type-Options: nosniff\r\nConnection: %s\r\n\r\n",
                   keep ? "keep-alive" : "close");
        if (c->head)
            len = 0;
        else if (!res->static_body)
            buf_append(&out, body ? body : "", len);
    }
    buf_free(&res->body);
    if (buf_failed(&out)) {
        buf_free(&out);
        conn_close(c);
        return 0;
    }
    size_t n = out.len;
    conn_send(c, buf_detach(&out), n, res->static_body && len ? res->static_body : NULL,
              res->static_body ? len : 0);
    return keep && c->state != CONN_CLOSING;
}

static void stream_tick(uv_timer_t *t) {
    conn *c = t->data;
    buf out = BUF_INIT;
    int end = c->poll(c->srv->ctx, c->stream_state, &out);
    if (buf_failed(&out)) {
        buf_free(&out);
        conn_close(c);
        return;
    }
    if (out.len) {
        size_t n = out.len;
        conn_send(c, buf_detach(&out), n, NULL, 0);
    } else {
        buf_free(&out);
    }
    if (end && c->state == CONN_STREAM)
        close_after_writes(c);
}

/* An answer of the server's own before (or instead of) the handler's; the
 * connection closes after it, since what follows in it cannot be framed. */
static void refuse(conn *c, int status, const char *message) {
    ui_response res = {.status = status};
    c->keep_alive = 0;
    c->head = 0;
    buf_printf(&res.body, "{\"error\":\"%s\"}", message);
    send_response(c, &res);
    if (c->state != CONN_CLOSING)
        close_after_writes(c);
}

static int header_is(const struct phr_header *h, const char *name) {
    return h->name && h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Whether a comma-separated header value lists token. */
static int value_has(const struct phr_header *h, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= h->value_len; i++)
        if (strncasecmp(h->value + i, token, n) == 0 &&
            (i == 0 || strchr(", \t", h->value[i - 1])) &&
            (i + n == h->value_len || strchr(", \t", h->value[i + n])))
            return 1;
    return 0;
}

/* A full request is at c->in: hands it to the handler and answers it.
 * Returns whether the connection waits for the next request. */
static int dispatch(conn *c, const char *method, size_t method_len, const char *path,
                    size_t path_len, const struct phr_header *hs, size_t nh, size_t head,
                    size_t body_len) {
    ui_request *req = calloc(1, sizeof(*req));
    if (!req) {
        conn_close(c);
        return 0;
    }
    snprintf(req->method, sizeof(req->method), "%.*s", (int)method_len, method);
    c->head = strcmp(req->method, "HEAD") == 0;
    const char *q = memchr(path, '?', path_len);
    size_t plen = q ? (size_t)(q - path) : path_len;
    ui_response res = {0};
    if (plen >= sizeof(req->path) || path_len >= sizeof(req->query)) {
        buf_puts(&res.body, "{\"error\":\"the path is too long\"}");
        res.status = 414;
    } else {
        memcpy(req->path, path, plen);
        if (q)
            snprintf(req->query, sizeof(req->query), "%.*s", (int)(path + path_len - q - 1), q + 1);
        for (size_t i = 0; i < nh; i++)
            if (header_is(&hs[i], "authorization"))
                snprintf(req->auth, sizeof(req->auth), "%.*s", (int)hs[i].value_len, hs[i].value);
        req->body = c->in + head;
        req->body_len = body_len;
        c->srv->handler(c->srv->ctx, req, &res);
    }
    free(req);
    if (res.stream && res.poll) {
        c->stream_state = res.state;
        c->poll = res.poll;
        c->free_state = res.free_state;
        res.state = NULL;
        send_response(c, &res);
        if (c->state == CONN_CLOSING)
            return 0;
        c->state = CONN_STREAM;
        c->in_len = 0; /* what is read from now on is dropped */
        uv_timer_start(&c->timer, stream_tick, 0, c->srv->poll_ms);
        return 0;
    }
    if (send_response(c, &res))
        return 1;
    if (c->state != CONN_CLOSING)
        close_after_writes(c);
    return 0;
}

/* Reads one request from the buffer if it is all there: returns its length
 * when it was answered and the connection waits for the next, else 0. */
static size_t parse_one(conn *c) {
    const ui_limits *l = &c->srv->lim;
    if (c->state == CONN_IDLE) {
        arm(c, CONN_HEAD);
        c->last_len = 0;
    }
    const char *method, *path;
    size_t method_len, path_len, nh = MAX_HEADERS;
    struct phr_header hs[MAX_HEADERS];
    int minor;
    int head = phr_parse_request(c->in, c->in_len, &method, &method_len, &path, &path_len, &minor,
                                 hs, &nh, c->state == CONN_HEAD ? c->last_len : 0);
    if (head == -2) {
        c->last_len = c->in_len;
        if (c->in_len > l->max_header)
            refuse(c, 431, "the request's head is too large");
        return 0;
    }
    if (head < 0) {
        refuse(c, 400, "malformed request");
        return 0;
    }
    if ((size_t)head > l->max_header) {
        refuse(c, 431, "the request's head is too large");
        return 0;
    }
    size_t body_len = 0;
    int has_length = 0, expect = 0, wants_close = 0, wants_keep = 0;
    for (size_t i = 0; i < nh; i++) {
        const struct phr_header *h = &hs[i];
        if (header_is(h, "content-length")) {
            /* digits only, and one value: anything else frames the body in
             * two ways, which is how requests are smuggled past a proxy */
            size_t v = 0, k;
            for (k = 0; k < h->value_len && isdigit((unsigned char)h->value[k]) && v <= l->max_body;
                 k++)
                v = v * 10 + (size_t)(h->value[k] - '0');
            if (k == 0 || (k < h->value_len && v <= l->max_body) || (has_length && v != body_len)) {
                refuse(c, 400, "bad Content-Length");
                return 0;
            }
            body_len = v;
            has_length = 1;
        } else if (header_is(h, "transfer-encoding")) {
            refuse(c, 411, "the dashboard takes a body with Content-Length, not chunked");
            return 0;
        } else if (header_is(h, "connection")) {
            wants_close |= value_has(h, "close");
            wants_keep |= value_has(h, "keep-alive");
        } else if (header_is(h, "expect") && value_has(h, "100-continue")) {
            expect = 1;
        }
    }
    c->keep_alive = !wants_close && (minor >= 1 || wants_keep);
    if (body_len > l->max_body) {
        refuse(c, 413, "the request's body is too large");
        return 0;
    }
    if (c->in_len < (size_t)head + body_len) {
        if (c->state == CONN_HEAD) {
            arm(c, CONN_BODY);
            if (expect && c->in_len == (size_t)head) {
                char *go = strdup("HTTP/1.1 100 Continue\r\n\r\n");
                if (go)
                    conn_send(c, go, strlen(go), NULL, 0);
            }
        }
        return 0;
    }
    if (!dispatch(c, method, method_len, path, path_len, hs, nh, (size_t)head, body_len))
        return 0;
    return (size_t)head + body_len;
}

/* Answers every whole request in the buffer, in order (pipelining), until
 * one is cut short, the connection closes, or the answers queued are
 * more than a client that does not read them should have. */
static void serve_buffered(conn *c) {
    while (c->in_len > 0 && !c->paused &&
           (c->state == CONN_IDLE || c->state == CONN_HEAD || c->state == CONN_BODY)) {
        size_t n = parse_one(c);
        if (!n)
            break;
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
        arm(c, CONN_IDLE);
        if (uv_stream_get_write_queue_size(&c->h.stream) > WRITE_HIGH) {
            c->paused = 1;
            arm(c, CONN_IDLE); /* no idle deadline while the client reads a long answer */
            uv_read_stop(&c->h.stream);
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    conn *c = h->data;
    (void)suggested;
    /* A head and a body at their limits, and a byte, so that a request
     * over them is seen as such; grown as bytes come. */
    size_t limit = c->srv->lim.max_header + c->srv->lim.max_body + 1;
    if (c->state == CONN_LINGER || c->state == CONN_STREAM)
        c->in_len = 0;
    if (c->in_cap - c->in_len < 16384 && c->in_cap < limit) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
        if (cap > limit)
            cap = limit;
        char *grown = realloc(c->in, cap);
        if (grown)
            c->in = grown, c->in_cap = cap;
    }
    *b = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_CLOSING || c->state == CONN_LINGER || c->state == CONN_STREAM) {
        c->in_len = 0;
        return;
    }
    c->in_len += (size_t)n;
    serve_buffered(c);
    /* The buffer full at the limits: what is being read is over them. */
    if ((c->state == CONN_HEAD || c->state == CONN_BODY) &&
        c->in_len >= c->srv->lim.max_header + c->srv->lim.max_body + 1)
        refuse(c, c->state == CONN_BODY ? 413 : 431,
               c->state == CONN_BODY ? "the request's body is too large"
                                     : "the request's head is too large");
}

static void on_connection(uv_stream_t *l, int status) {
    ui_server *s = l->data;
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    int rc = s->is_unix ? uv_pipe_init(s->loop, &c->h.pipe, 0) : uv_tcp_init(s->loop, &c->h.tcp);
    if (rc != 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->h.handle.data = c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(l, &c->h.stream) != 0 || s->draining) {
        conn_close(c);
        return;
    }
    if (!s->is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    if (s->n_conns > s->lim.max_connections) {
        /* Over the cap: a browser is told why (503) rather than seeing a
         * reset; past twice the cap, when refusals pile up lingering, the
         * connection is only closed. */
        if (s->n_conns > 2 * s->lim.max_connections)
            conn_close(c);
        else
            refuse(c, 503, "too many connections: try again");
        return;
    }
    arm(c, CONN_IDLE);
    if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0)
        conn_close(c);
}

int ui_server_start(uv_loop_t *loop, const char *listen, ui_handler handler, void *ctx,
                    unsigned poll_ms, const ui_limits *limits, ui_server **out, char *why,
                    size_t size) {
    ui_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(why, size, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    s->poll_ms = poll_ms ? poll_ms : 250;
    s->lim = limits ? *limits : ui_default_limits;
    int rc;
    if (strncmp(listen, "unix:", 5) == 0) {
        s->is_unix = 1;
        rc = uv_pipe_init(loop, &s->listener.pipe, 0);
        if (rc == 0) {
            s->listening = 1;
            rc = uv_pipe_bind(&s->listener.pipe, listen + 5);
        }
        snprintf(s->address, sizeof(s->address), "%s", listen);
    } else {
        char host[256];
        const char *colon = strrchr(listen, ':');
        char *end;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host) || *end ||
            !colon[1] || port < 0 || port > 65535) {
            snprintf(why, size, "--listen takes HOST:PORT or unix:PATH, not '%s'", listen);
            free(s);
            return -EINVAL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
        struct sockaddr_storage addr;
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
        if (rc != 0)
            rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr);
        if (rc != 0) {
            snprintf(why, size, "'%s' is no IP address (give one, e.g. 127.0.0.1:8081)", host);
            free(s);
            return -EINVAL;
        }
        rc = uv_tcp_init(loop, &s->listener.tcp);
        if (rc == 0) {
            s->listening = 1;
            rc = uv_tcp_bind(&s->listener.tcp, (struct sockaddr *)&addr, 0);
        }
        if (rc == 0) {
            struct sockaddr_storage got;
            int len = sizeof(got);
            char ip[64] = "";
            uv_tcp_getsockname(&s->listener.tcp, (struct sockaddr *)&got, &len);
            int p = 0;
            if (got.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&got, ip, sizeof(ip));
                p = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
                snprintf(s->address, sizeof(s->address), "[%s]:%d", ip, p);
            } else {
                uv_ip4_name((struct sockaddr_in *)&got, ip, sizeof(ip));
                p = ntohs(((struct sockaddr_in *)&got)->sin_port);
                snprintf(s->address, sizeof(s->address), "%s:%d", ip, p);
            }
        }
    }
    s->listener.handle.data = s;
    if (rc == 0)
        rc = uv_listen(&s->listener.stream, 511, on_connection);
    if (rc != 0) {
        snprintf(why, size, "cannot listen on %s: %s", listen, uv_strerror(rc));
        if (s->listening) {
            /* The handle is closed by the loop; the server lives until then. */
            s->listener.handle.data = NULL;
            uv_close(&s->listener.handle, NULL);
            uv_run(loop, UV_RUN_NOWAIT);
        }
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

const char *ui_server_address(const ui_server *s) { return s->address; }

void ui_server_stop(ui_server *s) {
    s->draining = 1;
    if (s->listening) {
        s->listening = 0;
        uv_close(&s->listener.handle, NULL);
        /* The socket's file would refuse the next start on that path. */
        if (s->is_unix)
            unlink(s->address + 5);
    }
    for (conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        /* An answer being written (or a refusal lingering) ends on its own,
         * within DRAIN_MS; nothing else has anything to finish. */
        if (c->writes && c->state != CONN_STREAM && c->state != CONN_LINGER)
            close_after_writes(c);
        else if (c->state != CONN_LINGER)
            conn_close(c);
    }
}

void ui_server_free(ui_server *s) { free(s); }

int ui_unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            if (!isxdigit((unsigned char)r[1]) || !isxdigit((unsigned char)r[2]))
                return -1;
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return 0;
}

int ui_query(const char *query, const char *name, char *out, size_t size) {
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= nlen && strncmp(p, name, nlen) == 0 && (len == nlen || p[nlen] == '=')) {
            const char *v = len == nlen ? p + len : p + nlen + 1;
            size_t vlen = (size_t)(p + len - v);
            if (vlen >= size)
                vlen = size - 1;
            memcpy(out, v, vlen);
            out[vlen] = 0;
            if (ui_unescape(out) != 0)
                out[0] = 0;
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}
