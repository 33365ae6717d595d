/* relay.c - the dashboard relayed to a 'sluice ui' child (serve_relay.h).
 * A relay is a Unix-socket connection per request: the request's bytes
 * written as they came with 'Connection: close' put after its request line
 * (the child keeps connections alive otherwise, and so would never end the
 * answer), the answer's bytes written back as they come, and the child's
 * close is the answer's end (the client's connection closes then, whatever
 * framing the answer had: a server-sent event stream lasts until its
 * client or the child goes). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_api.h"
#include "serve_relay.h"

#define KILL_AFTER_MS 5000

typedef struct relay_conn {
    serve_relay *r;
    http_conn *c; /* NULL once its client left or it is answered */
    uv_pipe_t pipe;
    uv_connect_t connect;
    uv_write_t write;
    char *bytes; /* the request, copied: the connection's buffer may move */
    size_t len;
    size_t answered; /* bytes relayed back */
    int closing;
    struct relay_conn *next;
} relay_conn;

struct serve_relay {
    uv_loop_t *loop;
    char exe[4096], store[4096], key_file[4096]; /* key_file "": none */
    char dir[4096], sock[4200];
    uv_process_t proc;
    uv_timer_t kill_timer;
    int running;   /* the child is up (as far as its exit says) */
    int proc_open; /* proc is a handle to close */
    int timer_open;
    int restarts, stopping;
    relay_conn *conns;
};

static void spawn_child(serve_relay *r);

static void timer_closed(uv_handle_t *h) { (void)h; }

static void close_timer(serve_relay *r) {
    if (r->timer_open) {
        r->timer_open = 0;
        uv_close((uv_handle_t *)&r->kill_timer, timer_closed);
    }
}

static void proc_closed(uv_handle_t *h) {
    serve_relay *r = h->data;
    r->proc_open = 0;
    if (r->stopping) {
        close_timer(r);
    } else if (r->restarts < 1) {
        r->restarts++;
        fprintf(stderr, "sluice serve: the dashboard (sluice ui) stopped: starting it again\n");
        spawn_child(r);
    } else {
        fprintf(stderr, "sluice serve: the dashboard (sluice ui) stopped again: its paths "
                        "answer 503 from now on\n");
    }
}

static void child_exited(uv_process_t *p, int64_t status, int signum) {
    serve_relay *r = p->data;
    r->running = 0;
    if (!r->stopping)
        fprintf(stderr, "sluice serve: sluice ui exited (status %lld, signal %d)\n",
                (long long)status, signum);
    uv_close((uv_handle_t *)p, proc_closed);
}

static void spawn_child(serve_relay *r) {
    const char *args[12];
    int k = 0;
    args[k++] = r->exe;
    args[k++] = "--store";
    args[k++] = r->store;
    args[k++] = "ui";
    args[k++] = "--listen";
    char listen[4300];
    snprintf(listen, sizeof(listen), "unix:%s", r->sock);
    args[k++] = listen;
    if (r->key_file[0])
        args[k++] = "--api-key-file", args[k++] = r->key_file;
    args[k] = NULL;
    unlink(r->sock); /* a child that died leaves its socket's file, which a bind refuses */
    /* its 'listening' line and its errors go with the server's own log */
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t o = {.file = args[0],
                              .args = (char **)args,
                              .exit_cb = child_exited,
                              .stdio_count = 3,
                              .stdio = stdio};
    r->proc.data = r;
    r->proc_open = 1;
    int rc = uv_spawn(r->loop, &r->proc, &o);
    if (rc) {
        fprintf(stderr, "sluice serve: cannot start %s ui for the dashboard: %s\n", r->exe,
                uv_strerror(rc));
        uv_close((uv_handle_t *)&r->proc, proc_closed); /* closed even when not started */
        return;
    }
    r->running = 1;
}

int serve_relay_start(uv_loop_t *loop, const char *exe, const char *store, const char *key_file,
                      serve_relay **out, char *err, size_t err_size) {
    *out = NULL;
    serve_relay *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    r->loop = loop;
    snprintf(r->exe, sizeof(r->exe), "%s", exe);
    snprintf(r->store, sizeof(r->store), "%s", store);
    snprintf(r->key_file, sizeof(r->key_file), "%s", key_file ? key_file : "");
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof(r->dir), "%s/sluice-serve-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    /* a socket's path must fit sockaddr_un's 108 bytes */
    if (strlen(r->dir) + 8 >= 108 || !mkdtemp(r->dir)) {
        snprintf(err, err_size, "cannot make a folder for the dashboard's socket (%s): %s", r->dir,
                 strlen(r->dir) + 8 >= 108 ? "TMPDIR is too long a path" : strerror(errno));
        free(r);
        return -EINVAL;
    }
    snprintf(r->sock, sizeof(r->sock), "%s/ui.sock", r->dir);
    uv_timer_init(loop, &r->kill_timer);
    r->kill_timer.data = r;
    r->timer_open = 1;
    spawn_child(r);
    *out = r;
    return 0;
}

int serve_relay_wants(const char *path, size_t len) {
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    return (len == 1 && path[0] == '/') || (len > 5 && memcmp(path, "/api/", 5) == 0) ||
           (len > 8 && memcmp(path, "/assets/", 8) == 0);
}

/* An answer of serve's own, as OpenAI's errors are; the connection closes. */
static void refuse(http_conn *c, int status, const char *message, const char *code) {
    api_buf b = {0};
    api_error(&b, message,
              status == 503   ? "unavailable_error"
              : status == 411 ? "invalid_request_error"
                              : "server_error",
              NULL, code);
    if (b.failed)
        http_respond(c, 500, "text/plain", "out of memory\n", 14, NULL, 1);
    else
        http_respond(c, status, "application/json", b.p, b.len,
                     status == 503 ? "Retry-After: 1\r\n" : NULL, 1);
    api_buf_free(&b);
}

static void conn_closed(uv_handle_t *h) {
    relay_conn *rc = h->data;
    for (relay_conn **p = &rc->r->conns; *p; p = &(*p)->next)
        if (*p == rc) {
            *p = rc->next;
            break;
        }
    free(rc->bytes);
    free(rc);
}

static void conn_close(relay_conn *rc) {
    if (rc->closing)
        return;
    rc->closing = 1;
    uv_close((uv_handle_t *)&rc->pipe, conn_closed);
}

/* The child closed (or the relay failed): the answer ends here. */
static void conn_end(relay_conn *rc) {
    http_conn *c = rc->c;
    rc->c = NULL;
    if (c && rc->answered)
        http_raw_end(c);
    else if (c)
        refuse(c, 502, "the dashboard (sluice ui) closed the connection without an answer", NULL);
    conn_close(rc);
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    (void)h;
    (void)suggested;
    static char chunk[65536]; /* copied out at once: one buffer does for all */
    *b = uv_buf_init(chunk, sizeof(chunk));
}

static void relay_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    relay_conn *rc = st->data;
    if (rc->closing)
        return;
    if (n < 0) {
        conn_end(rc);
        return;
    }
    if (n > 0 && rc->c) {
        rc->answered += (size_t)n;
        http_raw_write(rc->c, b->base, (size_t)n); /* may abort: rc->c NULL, rc closing */
    }
}

static void relay_written(uv_write_t *w, int status) {
    relay_conn *rc = w->data;
    if (status < 0 && !rc->closing)
        conn_end(rc);
}

static void relay_connected(uv_connect_t *req, int status) {
    relay_conn *rc = req->data;
    if (rc->closing)
        return;
    if (status < 0) {
        http_conn *c = rc->c;
        rc->c = NULL;
        if (c)
            refuse(c, 503, "the dashboard is not up yet (sluice ui): try again", "dashboard_down");
        conn_close(rc);
        return;
    }
    uv_buf_t b = uv_buf_init(rc->bytes, (unsigned)rc->len);
    rc->write.data = rc;
    if (uv_write(&rc->write, (uv_stream_t *)&rc->pipe, &b, 1, relay_written) != 0 ||
        uv_read_start((uv_stream_t *)&rc->pipe, relay_alloc, relay_read) != 0)
        conn_end(rc);
}

void serve_relay_request(serve_relay *r, http_conn *c) {
    size_t len;
    const char *bytes = http_request_bytes(c, &len);
    if (!bytes) {
        refuse(c, 411, "the dashboard takes a body with Content-Length, not chunked", NULL);
        return;
    }
    if (r->stopping || !r->running) {
        refuse(c, 503,
               r->stopping ? "the server is stopping"
                           : "the dashboard (sluice ui) is not running (see the server's log)",
               "dashboard_down");
        return;
    }
    static const char close_hdr[] = "Connection: close\r\n";
    const char *eol = memchr(bytes, '\n', len); /* the request line's end: it was parsed */
    size_t line = eol ? (size_t)(eol - bytes) + 1 : len;
    relay_conn *rc = calloc(1, sizeof(*rc));
    if (!rc || !(rc->bytes = malloc(len + sizeof(close_hdr)))) {
        free(rc);
        refuse(c, 500, "out of memory", NULL);
        return;
    }
    memcpy(rc->bytes, bytes, line);
    memcpy(rc->bytes + line, close_hdr, sizeof(close_hdr) - 1);
    memcpy(rc->bytes + line + sizeof(close_hdr) - 1, bytes + line, len - line);
    rc->len = len + sizeof(close_hdr) - 1;
    rc->r = r;
    rc->c = c;
    uv_pipe_init(r->loop, &rc->pipe, 0);
    rc->pipe.data = rc->connect.data = rc;
    rc->next = r->conns;
    r->conns = rc;
    uv_pipe_connect(&rc->connect, &rc->pipe, r->sock, relay_connected);
}

int serve_relay_abort(serve_relay *r, http_conn *c) {
    if (!r)
        return 0;
    for (relay_conn *rc = r->conns; rc; rc = rc->next)
        if (rc->c == c) {
            rc->c = NULL;
            conn_close(rc);
            return 1;
        }
    return 0;
}

static void kill_late(uv_timer_t *t) {
    serve_relay *r = t->data;
    if (r->running)
        uv_process_kill(&r->proc, SIGKILL);
}

void serve_relay_stop(serve_relay *r) {
    if (!r || r->stopping)
        return;
    r->stopping = 1;
    if (r->running) {
        uv_process_kill(&r->proc, SIGTERM);
        uv_timer_start(&r->kill_timer, kill_late, KILL_AFTER_MS, 0);
    } else if (!r->proc_open) {
        close_timer(r);
    }
}

void serve_relay_free(serve_relay *r) {
    if (!r)
        return;
    unlink(r->sock);
    rmdir(r->dir);
    free(r);
}
