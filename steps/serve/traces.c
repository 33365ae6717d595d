/* traces.c - sluice-serve's trace log (serve_traces.h): records formatted
 * on the loop's thread, written to rotated JSON Lines segments by a thread
 * of their own. */
#define _GNU_SOURCE /* memmem */
#include "serve_traces.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "serve_api.h"

/* A string literal onto b. */
#define ADD(b, lit) api_buf_add(b, lit, sizeof(lit) - 1)

/* A line waiting for the writer. */
typedef struct trace_line {
    struct trace_line *next;
    size_t len;
    char text[];
} trace_line;

/* A segment on disk: its sequence number, records and bytes. */
typedef struct trace_segment {
    uint64_t seq, records, bytes;
} trace_segment;

struct trace_log {
    char dir[4096];
    uint64_t max_records, max_bytes;
    uint64_t seg_records, seg_bytes; /* a segment rotates past these */
    const char *const *secrets;
    const size_t *secret_lens;
    int n_secrets;
    uint64_t counter; /* for ids: records made by this process */

    /* The queue, under mu: from trace_record to the writer. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    trace_line *head, *tail;
    size_t queued_bytes;
    int stopping;
    uint64_t dropped; /* under mu */

    /* The writer's alone (and traces_open's before it starts). */
    pthread_t thread;
    trace_segment *segs; /* oldest first; the last one is being written when fd >= 0 */
    size_t n_segs, cap_segs;
    int fd;
    uint64_t total_records, total_bytes;
    int write_failed; /* an error was printed: say it once, not per record */
};

static int is_segment_name(const char *name, uint64_t *seq) {
    size_t n = strlen(name);
    if (n != 16 || strcmp(name + 10, ".jsonl") != 0)
        return 0;
    *seq = 0;
    for (int i = 0; i < 10; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        *seq = *seq * 10 + (uint64_t)(name[i] - '0');
    }
    return 1;
}

static int seg_cmp(const void *a, const void *b) {
    uint64_t x = ((const trace_segment *)a)->seq, y = ((const trace_segment *)b)->seq;
    return x < y ? -1 : x > y;
}

static void seg_path(const trace_log *t, uint64_t seq, char *out, size_t size) {
    snprintf(out, size, "%s/%010llu.jsonl", t->dir, (unsigned long long)seq);
}

static int seg_push(trace_log *t, trace_segment s) {
    if (t->n_segs == t->cap_segs) {
        size_t cap = t->cap_segs ? 2 * t->cap_segs : 16;
        trace_segment *p = realloc(t->segs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->segs = p, t->cap_segs = cap;
    }
    t->segs[t->n_segs++] = s;
    return 0;
}

/* Counts the whole records of a segment (its lines; a cut-short last line
 * is no record). */
static int seg_measure(const char *path, trace_segment *s) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[65536];
    ssize_t n;
    s->records = s->bytes = 0;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        s->bytes += (uint64_t)n;
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))); p++)
            s->records++;
    }
    close(fd);
    return 0;
}

static int mkdirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* ---- the writer ---- */

static void say_failure(trace_log *t, const char *what, int e) {
    if (!t->write_failed)
        fprintf(stderr, "sluice serve: traces: %s: %s (records are dropped until it works again)\n",
                what, strerror(e));
    t->write_failed = 1;
}

static void seg_finish(trace_log *t) {
    if (t->fd < 0)
        return;
    fdatasync(t->fd);
    close(t->fd);
    t->fd = -1;
}

/* A new segment after the last one: made exclusively, so that a second
 * server on the store takes the next number rather than this file. */
static int seg_start(trace_log *t) {
    uint64_t seq = t->n_segs ? t->segs[t->n_segs - 1].seq + 1 : 1;
    char path[4200];
    for (int tries = 0; tries < 1000; tries++, seq++) {
        seg_path(t, seq, path, sizeof(path));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return -errno;
        if (seg_push(t, (trace_segment){seq, 0, 0}) != 0) {
            close(fd);
            unlink(path);
            return -ENOMEM;
        }
        t->fd = fd;
        return 0;
    }
    return -EEXIST;
}

/* Removes the oldest segments while more than the retention is kept; the
 * one being written stays. */
static void enforce_retention(trace_log *t) {
    size_t drop = 0;
    uint64_t records = t->total_records, bytes = t->total_bytes;
    while (drop + 1 < t->n_segs && ((t->max_records && records > t->max_records) ||
                                    (t->max_bytes && bytes > t->max_bytes))) {
        char path[4200];
        seg_path(t, t->segs[drop].seq, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT) {
            say_failure(t, path, errno);
            break;
        }
        records -= t->segs[drop].records;
        bytes -= t->segs[drop].bytes;
        drop++;
    }
    if (!drop)
        return;
    memmove(t->segs, t->segs + drop, (t->n_segs - drop) * sizeof(*t->segs));
    t->n_segs -= drop;
    t->total_records = records, t->total_bytes = bytes;
}

static void write_line(trace_log *t, const trace_line *l) {
    trace_segment *cur = t->fd >= 0 ? &t->segs[t->n_segs - 1] : NULL;
    if (cur && cur->records &&
        ((t->seg_records && cur->records >= t->seg_records) ||
         (t->seg_bytes && cur->bytes + l->len > t->seg_bytes)))
        seg_finish(t), cur = NULL;
    if (!cur) {
        int rc = seg_start(t);
        if (rc) {
            say_failure(t, "cannot start a segment", -rc);
            pthread_mutex_lock(&t->mu);
            t->dropped++;
            pthread_mutex_unlock(&t->mu);
            return;
        }
        cur = &t->segs[t->n_segs - 1];
    }
    /* one write of the whole line: a crash leaves it whole or cut short at
     * the end, which readers skip */
    ssize_t n;
    while ((n = write(t->fd, l->text, l->len)) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)l->len) {
        say_failure(t, "cannot write a record", n < 0 ? errno : ENOSPC);
        if (n > 0) {
            /* a partial line: end this segment, so that the next record
             * starts on a line of its own in the next one */
            cur->bytes += (uint64_t)n, t->total_bytes += (uint64_t)n;
            seg_finish(t);
        }
        pthread_mutex_lock(&t->mu);
        t->dropped++;
        pthread_mutex_unlock(&t->mu);
        return;
    }
    t->write_failed = 0;
    cur->records++, cur->bytes += l->len;
    t->total_records++, t->total_bytes += l->len;
    enforce_retention(t);
}

static void *writer_main(void *arg) {
    trace_log *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->head && !t->stopping)
            pthread_cond_wait(&t->cv, &t->mu);
        trace_line *batch = t->head;
        t->head = t->tail = NULL;
        t->queued_bytes = 0;
        int stop = t->stopping;
        pthread_mutex_unlock(&t->mu);
        while (batch) {
            trace_line *next = batch->next;
            write_line(t, batch);
            free(batch);
            batch = next;
        }
        if (stop)
            break;
        pthread_mutex_lock(&t->mu);
    }
    seg_finish(t);
    return NULL;
}

/* ---- the loop's side ---- */

/* s[0..n), at most TRACE_TEXT_MAX bytes of it, with every secret written
 * "***", as a JSON string into b; *cut says whether it was cut short. */
static void add_text(const trace_log *t, api_buf *b, const char *s, size_t n, int *cut) {
    if (!s)
        s = "", n = 0;
    *cut = n > TRACE_TEXT_MAX;
    if (*cut) {
        n = TRACE_TEXT_MAX;
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* not inside a UTF-8 character */
    }
    api_buf clean = {0};
    const char *p = s, *end = s + n;
    while (p < end) {
        /* the earliest secret from p on */
        const char *hit = NULL;
        size_t hit_len = 0;
        for (int i = 0; i < t->n_secrets; i++) {
            if (!t->secret_lens[i])
                continue;
            const char *h = memmem(p, (size_t)(end - p), t->secrets[i], t->secret_lens[i]);
            if (h && (!hit || h < hit))
                hit = h, hit_len = t->secret_lens[i];
        }
        if (!hit) {
            if (p == s) { /* nothing to blank out: no copy */
                api_buf_json(b, s, n);
                return;
            }
            api_buf_add(&clean, p, (size_t)(end - p));
            break;
        }
        api_buf_add(&clean, p, (size_t)(hit - p));
        ADD(&clean, "***");
        p = hit + hit_len;
    }
    if (clean.failed)
        b->failed = 1;
    else
        api_buf_json(b, clean.p ? clean.p : "", clean.len);
    api_buf_free(&clean);
}

static void add_string_or_null(api_buf *b, const char *s) {
    if (s)
        api_buf_json(b, s, strlen(s));
    else
        ADD(b, "null");
}

/* A token count; a negative one (not known) as null. */
static void add_count(api_buf *b, long n) {
    if (n < 0)
        ADD(b, "null");
    else
        api_buf_printf(b, "%ld", n);
}

void trace_record(trace_log *t, const trace_entry *e) {
    if (!t)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t secs = tv.tv_sec;
    gmtime_r(&secs, &tm);
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    /* time first, so ids sort as records are made; the low part tells
     * this process's records apart, and mostly another server's */
    unsigned low = (unsigned)(((uint64_t)getpid() * 7919 + t->counter++) & 0xfffff);
    api_buf b = {0};
    api_buf_printf(&b,
                   "{\"id\": \"%011llx%05x\", \"time\": \"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\", "
                   "\"route\": ",
                   (unsigned long long)ms, low, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    add_string_or_null(&b, e->route);
    api_buf_printf(&b, ", \"status\": %d, \"model\": ", e->status);
    add_string_or_null(&b, e->model);
    ADD(&b, ", \"model_version\": ");
    add_string_or_null(&b, e->model_version);
    ADD(&b, ", \"model_folder\": ");
    add_string_or_null(&b, e->model_folder);
    ADD(&b, ", \"prompt_tokens\": ");
    add_count(&b, e->prompt_tokens);
    ADD(&b, ", \"completion_tokens\": ");
    add_count(&b, e->completion_tokens);
    api_buf_printf(&b, ", \"latency_ms\": %.3f, \"stream\": %s, \"finish_reason\": ",
                   e->latency_s * 1000, e->stream ? "true" : "false");
    add_string_or_null(&b, e->finish_reason);
    int cut;
    ADD(&b, ", \"context\": [");
    for (size_t i = 0; i < e->n_context; i++) {
        if (i)
            ADD(&b, ", ");
        add_string_or_null(&b, e->context_ids[i]);
    }
    ADD(&b, "], \"prompt\": ");
    add_text(t, &b, e->prompt, e->prompt_len, &cut);
    api_buf_printf(&b, ", \"prompt_truncated\": %s, \"answer\": ", cut ? "true" : "false");
    add_text(t, &b, e->answer, e->answer_len, &cut);
    api_buf_printf(&b, ", \"answer_truncated\": %s, \"error\": ", cut ? "true" : "false");
    if (e->error)
        add_text(t, &b, e->error, strlen(e->error), &cut);
    else
        ADD(&b, "null");
    ADD(&b, "}\n");

    trace_line *l = b.failed ? NULL : malloc(sizeof(*l) + b.len);
    if (l) {
        l->next = NULL;
        l->len = b.len;
        memcpy(l->text, b.p, b.len);
    }
    api_buf_free(&b);
    pthread_mutex_lock(&t->mu);
    if (!l || t->queued_bytes + l->len > TRACE_QUEUE_BYTES) {
        t->dropped++;
        free(l);
    } else {
        if (t->tail)
            t->tail->next = l;
        else
            t->head = l;
        t->tail = l;
        t->queued_bytes += l->len;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

int traces_open(const trace_config *c, trace_log **out, char *err, size_t err_size) {
    *out = NULL;
    trace_log *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    t->fd = -1;
    snprintf(t->dir, sizeof(t->dir), "%s", c->dir);
    t->max_records = c->max_records, t->max_bytes = c->max_bytes;
    /* a quarter of the bound a segment: removing the oldest keeps at
     * least three quarters of what the bound allows */
    t->seg_records = c->max_records ? (c->max_records + 3) / 4 : 0;
    t->seg_bytes = c->max_bytes ? (c->max_bytes + 3) / 4 : 0;
    t->secrets = c->secrets, t->secret_lens = c->secret_lens, t->n_secrets = c->n_secrets;
    int rc = mkdirs(t->dir);
    DIR *d = rc ? NULL : opendir(t->dir);
    if (!d) {
        rc = rc ? rc : -errno;
        snprintf(err, err_size, "traces folder %s: %s", c->dir, strerror(-rc));
        free(t);
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        trace_segment s;
        char path[4200];
        if (!is_segment_name(de->d_name, &s.seq))
            continue;
        seg_path(t, s.seq, path, sizeof(path));
        if ((rc = seg_measure(path, &s)) != 0 || (rc = seg_push(t, s)) != 0) {
            snprintf(err, err_size, "%s: %s", path, strerror(-rc));
            closedir(d);
            free(t->segs);
            free(t);
            return rc;
        }
        t->total_records += s.records, t->total_bytes += s.bytes;
    }
    closedir(d);
    if (t->n_segs)
        qsort(t->segs, t->n_segs, sizeof(*t->segs), seg_cmp);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if ((rc = pthread_create(&t->thread, NULL, writer_main, t)) != 0) {
        snprintf(err, err_size, "cannot start the traces' writer: %s", strerror(rc));
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t->segs);
        free(t);
        return -rc;
    }
    *out = t;
    return 0;
}

void traces_close(trace_log *t) {
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    if (t->dropped)
        fprintf(stderr, "sluice serve: traces: %llu records dropped\n",
                (unsigned long long)t->dropped);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->segs);
    free(t);
}

/* ---- --trace-retention ---- */

static int parse_bound(const char *s, size_t n, uint64_t *records, uint64_t *bytes) {
    char text[64];
    if (!n || n >= sizeof(text))
        return -EINVAL;
    memcpy(text, s, n);
    text[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !(v >= 1) || v > 1e15)
        return -EINVAL;
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"B", 1},        {"KB", 1e3},        {"MB", 1e6},          {"GB", 1e9},
                 {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    if (!*end) {
        if (v != (double)(uint64_t)v)
            return -EINVAL;
        *records = (uint64_t)v;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].unit) == 0) {
            *bytes = (uint64_t)(v * units[i].scale);
            return 0;
        }
    return -EINVAL;
}

int traces_parse_retention(const char *text, uint64_t *records, uint64_t *bytes, char *err,
                           size_t err_size) {
    uint64_t r = 0, b = 0;
    const char *comma = strchr(text, ',');
    size_t first = comma ? (size_t)(comma - text) : strlen(text);
    uint64_t r2 = 0, b2 = 0;
    int rc = parse_bound(text, first, &r, &b);
    if (!rc && comma) {
        rc = parse_bound(comma + 1, strlen(comma + 1), &r2, &b2);
        /* one bound of each kind */
        if (!rc && ((r && r2) || (b && b2)))
            rc = -EINVAL;
    }
    if (rc) {
        snprintf(err, err_size,
                 "--trace-retention '%s': a number of records (5000), a size (64MB, 1GiB), or "
                 "both (5000,64MB)",
                 text);
        return rc;
    }
    if (r || r2)
        *records = r ? r : r2;
    if (b || b2)
        *bytes = b ? b : b2;
    return 0;
}
