/* oltransport.c - OpenLineage events to a file (one append each) or to an
 * HTTP endpoint (a thread of its own, libcurl's easy interface). */
#include "oltransport.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUED 100000
#define TRIES 3              /* a POST, then two retries */
#define FIRST_BACKOFF_MS 250 /* doubled for each retry */
#define CONNECT_TIMEOUT_MS 2000
#define REQUEST_TIMEOUT_MS 5000

typedef struct ol_event {
    struct ol_event *next;
    size_t len;
    char json[];
} ol_event;

struct ol_transport {
    int fd; /* the file; -1 for a URL */
    char *url;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ol_event *head, *tail;
    size_t queued;
    int closing;
    struct timespec deadline; /* CLOCK_MONOTONIC: give up past it once closing */
    ol_stats st;              /* under mu */
};

static int64_t ms_until(const struct timespec *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
}

static void fail(ol_transport *t, const char *what, const char *detail) {
    t->st.failed++;
    snprintf(t->st.last_error, sizeof(t->st.last_error), "%s%s", what, detail);
}

/* ---- the file ---------------------------------------------------------- */

static void file_send(ol_transport *t, const char *json, size_t len) {
    char *line = malloc(len + 1);
    t->st.events++;
    if (!line) {
        fail(t, "out of memory", "");
        return;
    }
    memcpy(line, json, len);
    line[len] = '\n';
    /* O_APPEND: the kernel places each write at the end, whole; a short
     * write (a full disk) is finished by the loop, as nothing else can. */
    size_t done = 0;
    while (done < len + 1) {
        ssize_t n = write(t->fd, line + done, len + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fail(t, "cannot write: ", strerror(n < 0 ? errno : EIO));
            free(line);
            return;
        }
        done += (size_t)n;
    }
    t->st.delivered++;
    free(line);
}

/* ---- HTTP -------------------------------------------------------------- */

static size_t discard(char *data, size_t size, size_t n, void *ud) {
    (void)data;
    (void)ud;
    return size * n;
}

/* One POST: 0 when answered 2xx, 1 when worth retrying (no answer, 429,
 * 5xx), -1 when not (another status: the receiver refuses the event). */
static int post(ol_transport *t, CURL *c, const char *curl_err, const ol_event *e, char *err,
                size_t size) {
    long timeout = REQUEST_TIMEOUT_MS;
    pthread_mutex_lock(&t->mu);
    if (t->closing) {
        int64_t left = ms_until(&t->deadline);
        timeout = left < 1 ? 1 : left < timeout ? (long)left : timeout;
    }
    pthread_mutex_unlock(&t->mu);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)e->json);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(err, size, "%s", *curl_err ? curl_err : curl_easy_strerror(cc));
        return 1;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return 0;
    snprintf(err, size, "HTTP status %ld", status);
    return status == 429 || status >= 500 ? 1 : -1;
}

/* Ends a request still going when the close's deadline passes. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    ol_transport *t = ud;
    pthread_mutex_lock(&t->mu);
    int late = t->closing && ms_until(&t->deadline) <= 0;
    pthread_mutex_unlock(&t->mu);
    return late;
}

/* Sleeps ms, or less when the close's deadline comes first. */
static void backoff(ol_transport *t, int64_t ms) {
    pthread_mutex_lock(&t->mu);
    if (t->closing) {
        int64_t left = ms_until(&t->deadline);
        ms = left < ms ? left : ms;
    }
    pthread_mutex_unlock(&t->mu);
    if (ms > 0)
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

static void *http_thread(void *arg) {
    ol_transport *t = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char curl_err[CURL_ERROR_SIZE];
    if (c) {
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(c, CURLOPT_URL, t->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "sluice");
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    int healthy = 1; /* no event has failed every try since the last success */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->head && !t->closing)
            pthread_cond_wait(&t->cv, &t->mu);
        ol_event *e = t->head;
        if (!e) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        t->head = e->next;
        if (!t->head)
            t->tail = NULL;
        t->queued--;
        int late = t->closing && ms_until(&t->deadline) <= 0;
        pthread_mutex_unlock(&t->mu);
        char err[CURL_ERROR_SIZE + 32] = "the transport could not start";
        int rc = 1, tries = 0, most = healthy ? TRIES : 1;
        while (c && headers && !late && tries < most) {
            if (tries)
                backoff(t, (int64_t)FIRST_BACKOFF_MS << (tries - 1));
            curl_err[0] = '\0';
            rc = post(t, c, curl_err, e, err, sizeof(err));
            tries++;
            if (rc <= 0)
                break;
            pthread_mutex_lock(&t->mu);
            late = t->closing && ms_until(&t->deadline) <= 0;
            pthread_mutex_unlock(&t->mu);
        }
        pthread_mutex_lock(&t->mu);
        t->st.retries += tries > 1 ? (uint64_t)(tries - 1) : 0;
        if (rc == 0)
            t->st.delivered++;
        else if (late && !tries)
            fail(t, "not sent: the run ended and the receiver was too slow", "");
        else
            fail(t, err, "");
        pthread_mutex_unlock(&t->mu);
        healthy = rc == 0 || (healthy && rc < 0);
        free(e);
    }
    curl_slist_free_all(headers);
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

/* The URL to POST to: Marquez's /api/v1/lineage when url has no path. */
static char *endpoint(const char *url) {
    const char *host = strstr(url, "://") + 3;
    const char *path = host + strcspn(host, "/?#");
    int bare = *path == '\0' || (path[0] == '/' && path[1] == '\0');
    size_t len = strlen(url) + sizeof("/api/v1/lineage");
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%.*s%s", (int)(path - url), url, bare ? "/api/v1/lineage" : path);
    return out;
}

int ol_transport_open(const char *target, ol_transport **out, char *why, size_t size) {
    *out = NULL;
    ol_transport *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->fd = -1;
    if (strncasecmp(target, "http://", 7) != 0 && strncasecmp(target, "https://", 8) != 0) {
        t->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (t->fd < 0) {
            int rc = -errno;
            snprintf(why, size, "cannot open %s: %s", target, strerror(errno));
            free(t);
            return rc;
        }
        *out = t;
        return 0;
    }
    /* Thread-safe since curl 7.84 where atomics exist; a plugin calling it
     * too is fine. Never cleaned up: plugins may still use libcurl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(t->url = endpoint(target))) {
        snprintf(why, size, "cannot start libcurl");
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    /* Signals are the loop's to handle: the thread starts with all blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->thread, NULL, http_thread, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(why, size, "cannot start its thread: %s", strerror(rc));
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t->url);
        free(t);
        return -rc;
    }
    t->thread_started = 1;
    *out = t;
    return 0;
}

void ol_transport_send(ol_transport *t, const char *json, size_t len) {
    if (!t)
        return;
    if (t->fd >= 0) {
        file_send(t, json, len);
        return;
    }
    ol_event *e = malloc(sizeof(*e) + len + 1);
    pthread_mutex_lock(&t->mu);
    t->st.events++;
    if (!e || t->queued >= MAX_QUEUED) {
        fail(t, e ? "too many events waiting for the receiver" : "out of memory", "");
        pthread_mutex_unlock(&t->mu);
        free(e);
        return;
    }
    e->next = NULL;
    e->len = len;
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->queued++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void ol_transport_close(ol_transport *t, int64_t drain_ms, ol_stats *st) {
    memset(st, 0, sizeof(*st));
    if (!t)
        return;
    if (t->fd >= 0) {
        close(t->fd);
        *st = t->st;
        free(t);
        return;
    }
    pthread_mutex_lock(&t->mu);
    clock_gettime(CLOCK_MONOTONIC, &t->deadline);
    t->deadline.tv_sec += drain_ms / 1000;
    t->deadline.tv_nsec += (drain_ms % 1000) * 1000000;
    if (t->deadline.tv_nsec >= 1000000000) {
        t->deadline.tv_sec++;
        t->deadline.tv_nsec -= 1000000000;
    }
    t->closing = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    *st = t->st;
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->url);
    free(t);
}
