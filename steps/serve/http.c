/* http.c - connections of sluice-serve on libuv (serve_http.h). A
 * connection reads into one buffer, which picohttpparser parses in place;
 * a single timer per connection holds whichever deadline applies to its
 * state (idle, header, body), so a slow client is cut off at a deadline
 * fixed when its request began however it spaces its bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "picohttp.h"
#include "serve_http.h"

#define MAX_HEADERS 64
#define LINGER_MS 2000 /* nginx's lingering_timeout is 5 s */

enum conn_state {
    CONN_IDLE,     /* between requests: the idle deadline */
    CONN_HEAD,     /* a request's head arriving: its header deadline */
    CONN_BODY,     /* its body arriving: its body deadline */
    CONN_HANDLING, /* the handler has it; no deadline */
    CONN_LINGER,   /* answered and shut down for writing: reading what the
                    * client still sends, so that closing with unread bytes
                    * does not reset the connection before it reads the answer */
    CONN_CLOSING,
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    http_server *srv;
    http_conn *prev, *next;
    char *buf;
    size_t len, cap;
    size_t head_len, body_len; /* of the request being read or handled */
    size_t last_len;           /* for picohttpparser's resumption */
    /* A chunked body (Transfer-Encoding: chunked) is decoded in place as
     * it comes: chunk_len bytes of it follow the head, then what is not
     * decoded yet. */
    int chunked;
    size_t chunk_len;
    struct phr_chunked_decoder dec;
    enum conn_state state;
    int keep_alive;
    int close_after; /* close once the answer is written */
    int handles;     /* uv handles still open: freed at 0 */
    int in_handler;  /* on_request is running */
    int again;       /* answered within on_request: parse the next request after it */
    int writes;      /* writes in flight */
    void *user;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_limits lim;
    http_handler h;
    http_conn *conns;
    unsigned n_conns; /* open */
    unsigned n_alive; /* not yet freed */
    int draining;
    int listener_closed;
    void (*drained)(void *arg);
    void *drained_arg;
};

typedef struct write_req {
    uv_write_t req;
    http_conn *c;
    char data[];
} write_req;

const char *http_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
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
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void maybe_drained(http_server *s);
static void nothing(void *arg);
static void on_listener_closed(uv_handle_t *h);

static void on_handle_closed(uv_handle_t *h) {
    http_conn *c = h->data;
    if (--c->handles > 0)
        return;
    http_server *s = c->srv;
    free(c->buf);
    free(c);
    s->n_alive--;
    maybe_drained(s);
}

static void conn_close(http_conn *c) {
    if (c->state == CONN_CLOSING)
        return;
    int was_handling = c->state == CONN_HANDLING;
    c->state = CONN_CLOSING;
    http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (was_handling && s->h.on_abort)
        s->h.on_abort(c, s->h.ctx);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t) {
    http_conn *c = t->data;
    /* A request cut off mid-way is counted; a quiet kept-alive connection
     * is not a refusal. */
    if ((c->state == CONN_HEAD || c->state == CONN_BODY) && c->srv->h.on_refused)
        c->srv->h.on_refused(408, c->srv->h.ctx);
    conn_close(c);
}

static void arm(http_conn *c, enum conn_state st) {
    const http_limits *l = &c->srv->lim;
    c->state = st;
    uint64_t ms = st == CONN_IDLE   ? l->idle_timeout_ms
                  : st == CONN_HEAD ? l->header_timeout_ms
                  : st == CONN_BODY ? l->body_timeout_ms
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* The answer is written and the connection is to close: FIN, then what
 * the client still sends is read and dropped until it closes or
 * LINGER_MS pass. */
static void linger(http_conn *c) {
    c->state = CONN_LINGER;
    c->len = 0;
    uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shut) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_written(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    http_conn *c = w->c;
    free(w);
    c->writes--;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes == 0 && c->close_after && c->state != CONN_HANDLING && c->state != CONN_LINGER)
        linger(c);
}

/* Queues len bytes (copied) after what is queued; the client may have gone. */
static void conn_write(http_conn *c, const char *data, size_t len) {
    if (c->state == CONN_CLOSING)
        return;
    write_req *w = malloc(sizeof(*w) + len);
    if (!w) {
        conn_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->c = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    c->writes++;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        c->writes--;
        free(w);
        conn_close(c);
    }
}

/* An answer before the handler, then the close. */
static void refuse(http_conn *c, int status, const char *message) {
    http_server *s = c->srv;
    if (s->h.on_refused)
        s->h.on_refused(status, s->h.ctx);
    char body[512], head[256];
    int bl = snprintf(body, sizeof(body),
                      "{\"error\": {\"message\": \"%s\", \"type\": \"invalid_request_error\", "
                      "\"param\": null, \"code\": null}}\n",
                      message);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                      "%d\r\nConnection: close\r\n\r\n",
                      status, http_reason(status), bl);
    c->close_after = 1;
    c->state = CONN_HANDLING; /* nothing more is read */
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    conn_write(c, head, (size_t)hl);
    conn_write(c, body, (size_t)bl);
    c->state = CONN_IDLE; /* on_written lingers, then closes */
    if (c->writes == 0)
        linger(c);
}

static int header_is(const struct phr_header *h, const char *name) {
    return h->name && h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

static int value_has(const struct phr_header *h, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= h->value_len; i++)
        if (strncasecmp(h->value + i, token, n) == 0)
            return 1;
    return 0;
}

static void try_parse(http_conn *c);

const char *http_header(const http_request *r, const char *name, size_t *len) {
    for (size_t i = 0; i < r->n_headers; i++)
        if (header_is(&r->headers[i], name)) {
            *len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    *len = 0;
    return NULL;
}

static void dispatch(http_conn *c, const char *method, size_t method_len, const char *path,
                     size_t path_len, const char *auth, size_t auth_len,
                     const struct phr_header *hs, size_t nh) {
    http_request r = {method,      path, method_len, path_len, auth, auth_len, c->buf + c->head_len,
                      c->body_len, hs,   nh};
    arm(c, CONN_HANDLING);
    c->in_handler = 1;
    c->srv->h.on_request(c, &r, c->srv->h.ctx);
    c->in_handler = 0;
}

/* Reads as much of a request as the buffer holds: its head, then its body,
 * then hands it over. */
static void parse_one(http_conn *c) {
    if (c->state != CONN_IDLE && c->state != CONN_HEAD && c->state != CONN_BODY)
        return;
    if (c->len == 0)
        return;
    if (c->state == CONN_IDLE) {
        arm(c, CONN_HEAD);
        c->last_len = 0;
    }
    const http_limits *l = &c->srv->lim;
    const char *method, *path;
    size_t method_len, path_len, nh = MAX_HEADERS;
    int minor;
    struct phr_header hs[MAX_HEADERS];
    /* The head is parsed again once the body is complete (cheap), so that
     * the handler gets pointers into the buffer as it then is. */
    int rc = phr_parse_request(c->buf, c->len, &method, &method_len, &path, &path_len, &minor, hs,
                               &nh, c->state == CONN_HEAD ? c->last_len : 0);
    if (rc == -2) {
        c->last_len = c->len;
        if (c->len > l->max_header)
            refuse(c, 431, "the request's head is too large");
        return;
    }
    if (rc < 0) {
        refuse(c, 400, "malformed HTTP request");
        return;
    }
    if ((size_t)rc > l->max_header) {
        refuse(c, 431, "the request's head is too large");
        return;
    }
    size_t content_length = 0;
    int keep_alive = minor >= 1, expect = 0, has_length = 0, chunked = 0;
    const char *auth = NULL;
    size_t auth_len = 0;
    for (size_t i = 0; i < nh; i++) {
        const struct phr_header *h = &hs[i];
        if (header_is(h, "content-length")) {
            char digits[24];
            if (h->value_len == 0 || h->value_len >= sizeof(digits)) {
                refuse(c, h->value_len ? 413 : 400,
                       h->value_len ? "the body is too large" : "bad Content-Length");
                return;
            }
            memcpy(digits, h->value, h->value_len);
            digits[h->value_len] = 0;
            char *end;
            errno = 0;
            unsigned long long v = strtoull(digits, &end, 10);
            if (*end || digits[0] < '0' || digits[0] > '9' || errno) {
                refuse(c, 400, "bad Content-Length");
                return;
            }
            content_length = (size_t)v;
            has_length = 1;
        } else if (header_is(h, "transfer-encoding")) {
            /* chunked alone: a coding under it (gzip) is not decoded here */
            if (chunked || h->value_len != 7 || strncasecmp(h->value, "chunked", 7) != 0) {
                refuse(c, 501, "of Transfer-Encodings only chunked is supported");
                return;
            }
            chunked = 1;
        } else if (header_is(h, "connection")) {
            if (value_has(h, "close"))
                keep_alive = 0;
            else if (value_has(h, "keep-alive"))
                keep_alive = 1;
        } else if (header_is(h, "authorization")) {
            auth = h->value, auth_len = h->value_len;
        } else if (header_is(h, "expect") && value_has(h, "100-continue")) {
            expect = 1;
        }
    }
    if (content_length > l->max_body) {
        refuse(c, 413, "the body is too large");
        return;
    }
    if (chunked && has_length) { /* which one frames the body: a smuggling attempt, or a bug */
        refuse(c, 400, "Content-Length and Transfer-Encoding: chunked together");
        return;
    }
    c->keep_alive = keep_alive;
    c->head_len = (size_t)rc;
    if (chunked) {
        if (c->state == CONN_HEAD) {
            memset(&c->dec, 0, sizeof(c->dec));
            c->dec.consume_trailer = 1;
            c->chunked = 1;
            c->chunk_len = 0;
            arm(c, CONN_BODY);
            if (expect && c->len == c->head_len)
                conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        char *raw = c->buf + c->head_len + c->chunk_len;
        size_t n = c->len - c->head_len - c->chunk_len;
        long left = phr_decode_chunked(&c->dec, raw, &n);
        c->chunk_len += n;
        if (c->chunk_len > l->max_body) {
            refuse(c, 413, "the body is too large");
            return;
        }
        if (left == -1) {
            refuse(c, 400, "malformed chunked body");
            return;
        }
        /* decoded bytes are n; what follows the last chunk (a pipelined
         * request) is the left bytes after them */
        c->len = c->head_len + c->chunk_len + (left > 0 ? (size_t)left : 0);
        if (left == -2)
            return;
        c->body_len = c->chunk_len;
        dispatch(c, method, method_len, path, path_len, auth, auth_len, hs, nh);
        return;
    }
    c->body_len = content_length;
    if (c->len < c->head_len + content_length) {
        if (c->state == CONN_HEAD) {
            arm(c, CONN_BODY);
            if (expect && c->len == c->head_len)
                conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        return;
    }
    dispatch(c, method, method_len, path, path_len, auth, auth_len, hs, nh);
}

/* Each pipelined request in turn: one answered at once (within
 * on_request) asks for the next through c->again rather than by recursion,
 * which a client pipelining thousands of requests would take deep. */
static void try_parse(http_conn *c) {
    do {
        c->again = 0;
        parse_one(c);
    } while (c->again);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    http_conn *c = h->data;
    (void)suggested;
    /* Room for a head and a body at their limits, and a little more so
     * that a request over them is seen as such; grown as bytes come. */
    size_t limit = c->srv->lim.max_header + c->srv->lim.max_body + 1;
    if (c->cap - c->len < 16384 && c->cap < limit) {
        size_t cap = c->cap ? c->cap * 2 : 16384;
        if (cap > limit)
            cap = limit;
        char *nb = realloc(c->buf, cap);
        if (nb)
            c->buf = nb, c->cap = cap;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    http_conn *c = st->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_LINGER) {
        c->len = 0;
        return;
    }
    c->len += (size_t)n;
    try_parse(c);
    /* The buffer full at the limits (a head and a body at their largest,
     * and a byte): what is being read is over them, or, while a request
     * is answered, too much is pipelined behind it: read no more. */
    if (c->len == c->srv->lim.max_header + c->srv->lim.max_body + 1) {
        if (c->state == CONN_BODY)
            refuse(c, 413, "the body is too large");
        else if (c->state == CONN_HEAD)
            refuse(c, 431, "the request's head is too large");
        else if (c->state == CONN_HANDLING)
            uv_read_stop(st);
    }
}

static void on_connection(uv_stream_t *ls, int status) {
    http_server *s = ls->data;
    if (status < 0)
        return;
    http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    if (s->conns)
        s->conns->prev = c;
    c->next = s->conns;
    s->conns = c;
    s->n_conns++;
    s->n_alive++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 || s->draining ||
        s->n_conns > s->lim.max_connections) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    arm(c, CONN_IDLE);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* The request handled is done: its bytes leave the buffer, and the next
 * one (pipelined) is read, or the connection closes. */
static void finish(http_conn *c, int close_after) {
    if (c->state != CONN_HANDLING)
        return;
    if (close_after || !c->keep_alive || c->srv->draining) {
        c->close_after = 1;
        c->state = CONN_IDLE;
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_timer_stop(&c->timer);
        if (c->writes == 0)
            linger(c);
        return;
    }
    size_t used = c->head_len + c->body_len;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->head_len = c->body_len = 0;
    c->chunked = 0;
    c->chunk_len = 0;
    arm(c, CONN_IDLE);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->in_handler)
        c->again = 1;
    else
        try_parse(c);
}

static int head(char *out, size_t size, http_conn *c, int status, const char *type,
                const char *length_or_chunked, const char *extra, int close_after) {
    int closing = close_after || !c->keep_alive || c->srv->draining;
    return snprintf(out, size, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%sConnection: %s\r\n\r\n",
                    status, http_reason(status), type, length_or_chunked, extra ? extra : "",
                    closing ? "close" : "keep-alive");
}

void http_respond(http_conn *c, int status, const char *type, const char *body, size_t len,
                  const char *extra, int close_after) {
    if (c->state != CONN_HANDLING)
        return;
    char h[1024], cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", len);
    int n = head(h, sizeof(h), c, status, type, cl, extra, close_after);
    conn_write(c, h, (size_t)n);
    if (len)
        conn_write(c, body, len);
    finish(c, close_after);
}

void http_stream_begin(http_conn *c, int status, const char *type) {
    char h[1024];
    int n = head(h, sizeof(h), c, status, type,
                 "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n", NULL, 0);
    conn_write(c, h, (size_t)n);
}

void http_stream_write(http_conn *c, const char *data, size_t len) {
    if (!len || c->state != CONN_HANDLING)
        return;
    char *chunk = malloc(len + 32);
    if (!chunk) {
        conn_close(c);
        return;
    }
    int n = snprintf(chunk, 32, "%zx\r\n", len);
    memcpy(chunk + n, data, len);
    memcpy(chunk + n + len, "\r\n", 2);
    conn_write(c, chunk, (size_t)n + len + 2);
    free(chunk);
}

void http_stream_end(http_conn *c) {
    if (c->state != CONN_HANDLING)
        return;
    conn_write(c, "0\r\n\r\n", 5);
    finish(c, 0);
}

const char *http_request_bytes(const http_conn *c, size_t *len) {
    *len = c->head_len + c->body_len;
    return c->state == CONN_HANDLING && !c->chunked ? c->buf : NULL;
}

void http_raw_write(http_conn *c, const char *data, size_t len) {
    if (len && c->state == CONN_HANDLING)
        conn_write(c, data, len);
}

void http_raw_end(http_conn *c) { finish(c, 1); }

void http_conn_set_user(http_conn *c, void *user) { c->user = user; }

void *http_conn_user(const http_conn *c) { return c->user; }

unsigned http_server_connections(const http_server *s) { return s->n_conns; }

static int parse_address(const char *address, struct sockaddr_storage *sa, char *err, size_t size) {
    char host[256];
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || (size_t)(colon - address) >= sizeof(host)) {
        snprintf(err, size, "--listen '%s': give HOST:PORT (127.0.0.1:8080, [::1]:8080)", address);
        return -EINVAL;
    }
    const char *h = address;
    size_t hl = (size_t)(colon - address);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) {
        snprintf(err, size, "--listen '%s': the port is not a number from 0 to 65535", address);
        return -EINVAL;
    }
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    snprintf(err, size, "--listen '%s': '%s' is not an IPv4 or IPv6 address", address, host);
    return -EINVAL;
}

int http_server_new(uv_loop_t *loop, const char *address, const http_limits *limits,
                    const http_handler *handler, http_server **out, int *port, char *err,
                    size_t size) {
    *out = NULL;
    struct sockaddr_storage sa;
    int rc = parse_address(address, &sa, err, size);
    if (rc)
        return rc;
    http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, size, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->lim = *limits;
    s->h = *handler;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection)) != 0) {
        snprintf(err, size, "--listen %s: %s", address, uv_strerror(rc));
        /* the handle's memory outlives its close: s is freed once closed */
        s->draining = 1;
        s->drained = nothing;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return rc;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

static void maybe_drained(http_server *s) {
    if (!s->draining || s->n_alive || !s->listener_closed || !s->drained)
        return;
    void (*done)(void *) = s->drained;
    void *arg = s->drained_arg;
    free(s);
    done(arg);
}

static void on_listener_closed(uv_handle_t *h) {
    http_server *s = h->data;
    s->listener_closed = 1;
    maybe_drained(s);
}

static void nothing(void *arg) { (void)arg; }

void http_server_drain(http_server *s, void (*done)(void *arg), void *arg) {
    if (s->draining)
        return;
    s->draining = 1;
    s->drained = done ? done : nothing;
    s->drained_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        /* waiting for a request, or reading one: nothing to finish */
        if (c->state != CONN_HANDLING && !c->close_after)
            conn_close(c);
    }
    maybe_drained(s);
}
