/* serve_http.h - HTTP/1.1 on libuv for sluice-serve: connections with
 * keep-alive, requests parsed by picohttpparser, and the limits a server
 * open to a network needs: header and body sizes, header, body and idle
 * timeouts (a client sending a byte now and then is cut off when its
 * header or body deadline passes, not when it goes quiet), a cap on
 * connections, and a drain that lets requests being answered finish.
 *
 * One request at a time per connection; a pipelined request waits in the
 * buffer until the one before it is answered. The handler answers with
 * http_respond or a chunked stream (http_stream_*), now or later, from the
 * loop's thread. Everything here runs on the loop's thread. */
#ifndef SLUICE_SERVE_HTTP_H
#define SLUICE_SERVE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server;
struct phr_header;
typedef struct http_conn http_conn;

typedef struct http_limits {
    size_t max_header;          /* request line and headers, bytes (431 beyond) */
    size_t max_body;            /* Content-Length, bytes (413 beyond) */
    uint64_t header_timeout_ms; /* from a request's first byte to its blank line */
    uint64_t body_timeout_ms;   /* from the blank line to the body's last byte */
    uint64_t idle_timeout_ms;   /* between requests on a kept-alive connection */
    unsigned max_connections;   /* more are accepted and closed at once */
} http_limits;

/* A request, borrowed for the call of on_request only (it points into the
 * connection's buffer). */
typedef struct http_request {
    const char *method, *path;
    size_t method_len, path_len;
    const char *authorization; /* the header's value, NULL when absent */
    size_t authorization_len;
    const char *body; /* a chunked body decoded */
    size_t body_len;
    const struct phr_header *headers; /* all of them, for http_header */
    size_t n_headers;
} http_request;

/* The value of r's header name (case-insensitive; the first of that
 * name), its length in *len; NULL when absent. */
const char *http_header(const http_request *r, const char *name, size_t *len);

typedef struct http_handler {
    /* A request has come; answer it on c (now or later). */
    void (*on_request)(http_conn *c, const http_request *r, void *ctx);
    /* c closed (the client left, a write failed) before its answer was
     * complete: the handler drops c, which is freed after this returns. */
    void (*on_abort)(http_conn *c, void *ctx);
    /* A request refused here, before the handler saw it (status 400, 408,
     * 413, 431, 501), for the metrics. May be NULL. */
    void (*on_refused)(int status, void *ctx);
    void *ctx;
} http_handler;

/* Listens on address ("127.0.0.1:8080", "[::1]:0"; port 0: any free port,
 * *port says which). *out is the caller's, ended by http_server_drain then
 * the loop running out. limits and handler are copied. */
int http_server_new(uv_loop_t *loop, const char *address, const http_limits *limits,
                    const http_handler *handler, http_server **out, int *port, char *err,
                    size_t err_size);
/* Stops accepting, closes the idle connections and each other one once its
 * answer is complete, then frees the server and calls done (which may be
 * NULL). */
void http_server_drain(http_server *s, void (*done)(void *arg), void *arg);
/* Open connections. */
unsigned http_server_connections(const http_server *s);

/* A whole answer: status, Content-Type, body[0..len) (copied), then the
 * next request (or the close: after HTTP/1.0, Connection: close, a drain,
 * or close_after). extra_headers: NULL or lines each ending in "\r\n". */
void http_respond(http_conn *c, int status, const char *content_type, const char *body, size_t len,
                  const char *extra_headers, int close_after);
/* A chunked answer: the head, then pieces, then the end. */
void http_stream_begin(http_conn *c, int status, const char *content_type);
void http_stream_write(http_conn *c, const char *data, size_t len);
void http_stream_end(http_conn *c);

/* The request being handled as it came, its head then its body
 * (*len bytes, borrowed until it is answered); NULL when its body came
 * chunked, as that was decoded in place. */
const char *http_request_bytes(const http_conn *c, size_t *len);
/* An answer relayed as it is, head included: bytes written to c as they
 * come, then the end, after which the connection closes (the answer's
 * own framing may be none but the close). */
void http_raw_write(http_conn *c, const char *data, size_t len);
void http_raw_end(http_conn *c);

/* The handler's own pointer on a connection (NULL at first). */
void http_conn_set_user(http_conn *c, void *user);
void *http_conn_user(const http_conn *c);

/* The reason phrase of status. */
const char *http_reason(int status);

#endif
