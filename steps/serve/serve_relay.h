/* serve_relay.h - the dashboard in sluice-serve (docs/serve.md,
 * "Dashboard"): 'sluice ui' runs as a child listening on a Unix socket of
 * its own, and each request for one of its paths is relayed to it byte
 * for byte, its answer streamed back until the child closes it. The
 * store's metadata thus stays the orchestrator's to read. Everything here
 * runs on the loop's thread. */
#ifndef SLUICE_SERVE_RELAY_H
#define SLUICE_SERVE_RELAY_H

#include <stddef.h>
#include <uv.h>

#include "serve_http.h"

typedef struct serve_relay serve_relay;

/* Starts 'EXE --store STORE ui --listen unix:DIR/ui.sock' (with
 * --api-key-file KEY_FILE unless that is NULL) in a fresh folder under
 * $TMPDIR. *out is the caller's, stopped by serve_relay_stop and freed by
 * serve_relay_free once the loop has run out. */
int serve_relay_start(uv_loop_t *loop, const char *exe, const char *store, const char *key_file,
                      serve_relay **out, char *err, size_t err_size);
/* Whether path (a query after it or not) is the dashboard's: "/",
 * "/api/..." or "/assets/...". */
int serve_relay_wants(const char *path, size_t len);
/* Relays the request c is handling; the connection closes after the
 * answer (503 when the child is not up). */
void serve_relay_request(serve_relay *r, http_conn *c);
/* Whether c was being relayed (its client left: the relay is dropped). */
int serve_relay_abort(serve_relay *r, http_conn *c);
/* SIGTERM to the child (SIGKILL 5 s later if still there), no restart; its
 * closing ends the relays under way. r may be NULL. */
void serve_relay_stop(serve_relay *r);
/* Frees r (NULL or stopped, its handles closed: after the loop ran out). */
void serve_relay_free(serve_relay *r);

#endif
