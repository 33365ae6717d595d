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

/* A request's head and body are read whole before the handler runs; the
 * API takes no large bodies. */
#define MAX_HEAD (64 * 1024)
#define MAX_BODY (1024 * 1024)

typedef struct conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    uv_timer_t timer;
    ui_server *srv;
    char *in; /* owned: what was read so far */
    size_t in_len, in_cap;
    int answered, closing, handles; /* handles: open uv handles left to close */
    int timer_on;
    int head;    /* a HEAD request: the answer's headers only */
    void *state; /* an event stream's, owned */
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
    int is_unix, listening;
    ui_handler handler;
    void *ctx;
    unsigned poll_ms;
    char address[300];
    conn *conns; /* every open connection, for stop */
};

typedef struct write_req {
    uv_write_t w;
    char *data; /* owned */
    int then_close;
} write_req;

static void conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->free_state && c->state)
        c->free_state(c->state);
    free(c->in);
    free(c);
}

static void conn_close(conn *c) {
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->srv->conns == c)
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->timer_on) {
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, conn_closed);
    }
    uv_close(&c->h.handle, conn_closed);
}

static void written(uv_write_t *w, int status) {
    write_req *r = (write_req *)w;
    conn *c = w->handle->data;
    free(r->data);
    if (status < 0 || r->then_close)
        conn_close(c);
    free(r);
}

/* Sends data (taken: freed here in every case), closing after if asked. */
static void conn_send(conn *c, char *data, size_t len, int then_close) {
    write_req *r = calloc(1, sizeof(*r));
    if (!r || c->closing) {
        free(data);
        free(r);
        conn_close(c);
        return;
    }
    r->data = data;
    r->then_close = then_close;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(&r->w, &c->h.stream, &b, 1, written) != 0) {
        free(data);
        free(r);
        conn_close(c);
    }
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

static void send_response(conn *c, ui_response *res) {
    int status = res->status ? res->status : 200;
    const void *body = res->static_body ? res->static_body : res->body.data;
    size_t len = res->static_body ? res->static_len : res->body.len;
    buf out = BUF_INIT;
    buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status),
               res->type ? res->type : "application/json");
    if (res->stream) {
        buf_puts(&out, "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n\r\n");
    } else {
        buf_printf(&out, "Content-Length: %zu\r\nCache-Control: no-store\r\n", len);
        if (res->disposition)
            buf_printf(&out, "Content-Disposition: %s\r\n", res->disposition);
        buf_puts(&out, "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n");
        if (!c->head)
            buf_append(&out, body ? body : "", len);
    }
    buf_free(&res->body);
    if (buf_failed(&out)) {
        buf_free(&out);
        conn_close(c);
        return;
    }
    size_t n = out.len;
    conn_send(c, buf_detach(&out), n, !res->stream);
}

static void stream_tick(uv_timer_t *t) {
    conn *c = t->data;
    buf out = BUF_INIT;
    int end = c->poll(c->srv->ctx, c->state, &out);
    if (buf_failed(&out)) {
        buf_free(&out);
        conn_close(c);
        return;
    }
    if (out.len) {
        size_t n = out.len;
        conn_send(c, buf_detach(&out), n, end);
    } else {
        buf_free(&out);
        if (end)
            conn_close(c);
    }
    if (end && c->timer_on)
        uv_timer_stop(&c->timer);
}

static void answer_error(conn *c, int status, const char *message) {
    ui_response res = {.status = status};
    buf_printf(&res.body, "{\"error\":\"%s\"}", message);
    send_response(c, &res);
}

/* A full request is in c->in: hands it to the handler. */
static void dispatch(conn *c, const char *method, size_t method_len, const char *path,
                     size_t path_len, const struct phr_header *hs, size_t nh, size_t head,
                     size_t body_len) {
    ui_request *req = calloc(1, sizeof(*req));
    if (!req) {
        conn_close(c);
        return;
    }
    snprintf(req->method, sizeof(req->method), "%.*s", (int)method_len, method);
    c->head = strcmp(req->method, "HEAD") == 0;
    const char *q = memchr(path, '?', path_len);
    size_t plen = q ? (size_t)(q - path) : path_len;
    if (plen >= sizeof(req->path) || path_len >= sizeof(req->query)) {
        free(req);
        answer_error(c, 414, "the path is too long");
        return;
    }
    memcpy(req->path, path, plen);
    if (q)
        snprintf(req->query, sizeof(req->query), "%.*s", (int)(path + path_len - q - 1), q + 1);
    for (size_t i = 0; i < nh; i++)
        if (hs[i].name && hs[i].name_len == 13 && strncasecmp(hs[i].name, "authorization", 13) == 0)
            snprintf(req->auth, sizeof(req->auth), "%.*s", (int)hs[i].value_len, hs[i].value);
    req->body = c->in + head;
    req->body_len = body_len;
    ui_response res = {0};
    c->srv->handler(c->srv->ctx, req, &res);
    free(req);
    if (res.stream && res.poll) {
        c->state = res.state;
        c->poll = res.poll;
        c->free_state = res.free_state;
        res.state = NULL;
        send_response(c, &res);
        if (uv_timer_init(c->srv->loop, &c->timer) == 0) {
            c->timer.data = c;
            c->timer_on = 1;
            c->handles++;
            uv_timer_start(&c->timer, stream_tick, 0, c->srv->poll_ms);
        }
        return;
    }
    send_response(c, &res);
}

static void try_parse(conn *c) {
    const char *method, *path;
    size_t method_len, path_len, nh = 64;
    struct phr_header hs[64];
    int minor;
    int head = phr_parse_request(c->in, c->in_len, &method, &method_len, &path, &path_len, &minor,
                                 hs, &nh, 0);
    if (head == -2) {
        if (c->in_len >= MAX_HEAD) {
            c->answered = 1;
            answer_error(c, 431, "the request's head is too large");
        }
        return;
    }
    if (head < 0) {
        c->answered = 1;
        answer_error(c, 400, "malformed request");
        return;
    }
    size_t body_len = 0;
    for (size_t i = 0; i < nh; i++)
        if (hs[i].name && hs[i].name_len == 14 &&
            strncasecmp(hs[i].name, "content-length", 14) == 0)
            body_len = strtoul(hs[i].value, NULL, 10);
    if (body_len > MAX_BODY) {
        c->answered = 1;
        answer_error(c, 413, "the request's body is too large");
        return;
    }
    if (c->in_len < (size_t)head + body_len)
        return;
    c->answered = 1;
    dispatch(c, method, method_len, path, path_len, hs, nh, (size_t)head, body_len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    conn *c = h->data;
    (void)suggested;
    if (c->in_cap - c->in_len < 16384) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
        char *grown = realloc(c->in, cap);
        if (!grown) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        c->in = grown;
        c->in_cap = cap;
    }
    *b = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->answered || n == 0)
        return;
    c->in_len += (size_t)n;
    if (c->in_len > MAX_HEAD + MAX_BODY) {
        conn_close(c);
        return;
    }
    try_parse(c);
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
    c->h.handle.data = c;
    c->handles = 1;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, &c->h.stream) != 0 || uv_read_start(&c->h.stream, alloc_cb, read_cb) != 0)
        conn_close(c);
}

int ui_server_start(uv_loop_t *loop, const char *listen, ui_handler handler, void *ctx,
                    unsigned poll_ms, ui_server **out, char *why, size_t size) {
    ui_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(why, size, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    s->poll_ms = poll_ms ? poll_ms : 250;
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
        rc = uv_listen(&s->listener.stream, 128, on_connection);
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
    if (s->listening) {
        s->listening = 0;
        uv_close(&s->listener.handle, NULL);
        /* The socket's file would refuse the next start on that path. */
        if (s->is_unix)
            unlink(s->address + 5);
    }
    while (s->conns)
        conn_close(s->conns);
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
