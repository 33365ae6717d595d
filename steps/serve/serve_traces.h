/* serve_traces.h - prompt monitoring: every generation request sluice-serve
 * answers is recorded as one JSON line in the store's traces/ folder
 * (docs/serve.md, "Traces"; docs/store.md), which `sluice traces` reads.
 *
 * The folder holds segments, STORE/traces/NNNNNNNNNN.jsonl (a sequence
 * number, ten digits, so names sort in write order), each a run of
 * records, one a line, appended and never rewritten. A server starts a new
 * segment (made exclusively: two servers never share one), rotates to the
 * next when the segment holds a quarter of the retention, and removes the
 * oldest segments whole while the folder holds more than the retention.
 * A record is written by one write(2) of its whole line: a crash can only
 * leave the last line of a segment cut short, which readers skip.
 *
 * trace_record runs on the loop's thread: it formats the line (the texts
 * capped, the server's API keys blanked out of them) and queues it; a
 * thread of its own writes the queue, so the loop never waits on the disk.
 * When the disk falls behind by more than TRACE_QUEUE_BYTES, records are
 * dropped (and counted on stderr), never the requests. */
#ifndef SLUICE_SERVE_TRACES_H
#define SLUICE_SERVE_TRACES_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_TEXT_MAX 65536             /* bytes of a prompt or answer kept */
#define TRACE_QUEUE_BYTES (8u << 20)     /* records waiting for the disk, at most */
#define TRACE_DEFAULT_RECORDS 10000      /* --trace-retention's default ... */
#define TRACE_DEFAULT_BYTES (256u << 20) /* ... both bounds */

typedef struct trace_log trace_log;

typedef struct trace_config {
    const char *dir;      /* the segments' folder (made if missing, mode 0700) */
    uint64_t max_records; /* at most this many records kept; 0: no bound */
    uint64_t max_bytes;   /* at most this many bytes kept; 0: no bound */
    /* Texts never written: each occurrence in a prompt, answer or error is
     * written as "***" (the server's API keys). Borrowed until
     * traces_close. */
    const char *const *secrets;
    const size_t *secret_lens;
    int n_secrets;
} trace_config;

/* One request's trace. Every pointer is borrowed for the call only; a NULL
 * string is written as null (texts: as ""). */
typedef struct trace_entry {
    const char *route;         /* "/v1/chat/completions", "/rag", ... */
    int status;                /* the HTTP status answered; 499: the client left */
    const char *model;         /* the served model's name */
    const char *model_version; /* which model: as given (--model), ... */
    const char *model_folder;  /* ... and the folder it resolved to */
    const char *prompt;        /* as the model read it (chat: the template applied) */
    size_t prompt_len;
    const char *const *context_ids; /* retrieved chunks' ids (/rag), n_context of them */
    size_t n_context;
    const char *answer; /* the text generated (a stream's pieces joined) */
    size_t answer_len;
    long prompt_tokens, completion_tokens; /* -1: not known */
    double latency_s;                      /* from the request's head to its answer's end */
    const char *finish_reason;             /* "stop", "length", or NULL */
    int stream;                            /* answered as server-sent events */
    const char *error;                     /* the error's message when status is not 200, or NULL */
} trace_entry;

/* Opens the traces folder of c->dir (reading the sizes of the segments
 * there) and starts the writer's thread: 0, else -errno with a message. */
int traces_open(const trace_config *c, trace_log **out, char *err, size_t err_size);

/* Records e: formats it and queues it for the writer. t NULL (--no-traces)
 * records nothing. Never fails the request: a record that cannot be kept
 * (out of memory, the queue full, a write error) is counted as dropped. */
void trace_record(trace_log *t, const trace_entry *e);

/* Writes what is queued, syncs the segment, stops the thread and frees t
 * (NULL: nothing). Prints how many records were dropped, if any. */
void traces_close(trace_log *t);

/* Parses a --trace-retention value: "N" records, "SIZE" bytes with a unit
 * (B, KB, MB, GB; KiB, MiB, GiB), or both joined by a comma ("5000,64MB").
 * 0, else -EINVAL with a message. */
int traces_parse_retention(const char *text, uint64_t *records, uint64_t *bytes, char *err,
                           size_t err_size);

#endif
