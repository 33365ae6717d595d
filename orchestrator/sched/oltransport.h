/* oltransport.h - delivering OpenLineage events, as the OpenLineage clients'
 * file and HTTP transports do.
 *
 * A file gets one event a line (JSON Lines), each line written whole by one
 * append, so that lines of several runs writing the same file never mix. A
 * URL gets each event POSTed as JSON (to /api/v1/lineage when the URL has no
 * path, as Marquez expects) from a thread of the transport's own, in the
 * order the events were sent: the caller, libuv's loop thread, only queues
 * them. A POST that fails (no connection, a timeout, 429 or a 5xx) is tried
 * again twice, 250 ms then 500 ms later; once an event has failed so, the
 * next ones are tried once each until one gets through, so that a receiver
 * that is down costs a run no more than one try per event. Failures are
 * counted, never returned: lineage is a by-product and must not fail the
 * pipeline it describes. */
#ifndef SLUICE_SCHED_OLTRANSPORT_H
#define SLUICE_SCHED_OLTRANSPORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ol_transport ol_transport;

typedef struct ol_stats {
    uint64_t events;    /* handed to the transport */
    uint64_t delivered; /* written whole, or answered with a 2xx */
    uint64_t failed;    /* events given up on (delivered + failed = events) */
    uint64_t retries;   /* extra POSTs made */
    char last_error[256];
} ol_stats;

/* Opens target: an http(s) URL, or a file path (created if need be), as
 * pipeline_lineage_target() accepts them. Returns 0, or a negative code
 * with why (size bytes) saying what failed; *out is freed by
 * ol_transport_close(). */
int ol_transport_open(const char *target, ol_transport **out, char *why, size_t size);

/* Hands over one event: json (len bytes, without a newline) is copied. For
 * a file, one write(2); for a URL, a queue (at most 100,000 events wait:
 * past that one is dropped and counted failed). */
void ol_transport_send(ol_transport *t, const char *json, size_t len);

/* Delivers what is still queued, giving up on what is not delivered within
 * drain_ms, then fills st and frees t. t may be NULL (st zeroed). */
void ol_transport_close(ol_transport *t, int64_t drain_ms, ol_stats *st);

#endif
