/* ui_http.h - the dashboard's small HTTP/1.1 server on libuv: persistent
 * connections (keep-alive, pipelined requests answered in order), parsed by
 * picohttpparser, server-sent event streams that stay open, and limits
 * (ui_limits) so that a slow or greedy client cannot hold the server.
 *
 * The server knows no routes: it hands each request to the handler, which
 * fills a response, or asks for an event stream (ui_response.stream). */
#ifndef SLUICE_UI_HTTP_H
#define SLUICE_UI_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "buf.h"

typedef struct ui_request {
    char method[8];
    char path[2048];  /* decoded of nothing: as sent, query string cut off */
    char query[2048]; /* after '?', or "" */
    char auth[256];   /* the Authorization header, or "" */
    const char *body; /* borrowed for the handler's call */
    size_t body_len;
} ui_request;

typedef struct ui_response {
    int status;              /* 200 when the handler leaves it 0 */
    const char *type;        /* Content-Type; static */
    const char *disposition; /* Content-Disposition or NULL; static or in extra */
    char extra[512];         /* storage for a built header value */
    buf body;                /* owned by the server, freed after sending */
    const void *static_body; /* when set, sent instead of body (not freed) */
    size_t static_len;
    /* An event stream: the server keeps the connection and calls poll
     * every interval ms with state (owned by the stream; freed with
     * free_state), which appends events to out and returns 1 to end. */
    int stream;
    void *state;
    int (*poll)(void *ctx, void *state, buf *out);
    void (*free_state)(void *state);
} ui_response;

typedef void (*ui_handler)(void *ctx, const ui_request *req, ui_response *res);

typedef struct ui_server ui_server;

/* What a client may take. A timeout of 0 is none. */
typedef struct ui_limits {
    unsigned max_connections;   /* open at once; beyond, 503 and closed */
    size_t max_header;          /* request line and headers, bytes (431 beyond) */
    size_t max_body;            /* request body, bytes (413 beyond) */
    unsigned header_timeout_ms; /* from a request's first byte to its head's end */
    unsigned body_timeout_ms;   /* from the head's end to the body's end */
    unsigned idle_timeout_ms;   /* a kept-alive connection waiting for a request */
} ui_limits;

/* The defaults: 256 connections, 64 KiB of head, 1 MiB of body, 10 s, 30 s, 60 s. */
extern const ui_limits ui_default_limits;

/* Listens on listen ("HOST:PORT", port 0 for any free one, or "unix:PATH")
 * on loop, handing requests to handler with ctx, within limits (copied;
 * NULL: ui_default_limits). *out is the caller's, freed with
 * ui_server_free() after the loop ends. Returns 0 or a negative code, with
 * why (size bytes) saying what failed. */
int ui_server_start(uv_loop_t *loop, const char *listen, ui_handler handler, void *ctx,
                    unsigned poll_ms, const ui_limits *limits, ui_server **out, char *why,
                    size_t size);
/* The address it listens on, "HOST:PORT" (the real port) or "unix:PATH". */
const char *ui_server_address(const ui_server *s);
/* Drains: stops listening, closes idle connections, those reading a request
 * and event streams, and lets answers being written finish (for 5 s at
 * most); the loop then ends. */
void ui_server_stop(ui_server *s);
void ui_server_free(ui_server *s);

/* One query parameter's value, %-decoded and '+' as a space, into out
 * (size bytes): 1 when present, 0 when not. */
int ui_query(const char *query, const char *name, char *out, size_t size);

/* s %-decoded in place; returns 0 or -1 for a malformed escape. */
int ui_unescape(char *s);

#endif
