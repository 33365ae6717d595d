#include "web.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robots.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* Never cleaned up: the process may hold other users of libcurl. */
static void init_once(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void web_page_clear(web_page *p) {
    free(p->body);
    free(p->content_type);
    free(p->final_url);
    const char *url = p->url;
    memset(p, 0, sizeof(*p));
    p->url = url;
}

int web_origin(const char *url, char *origin, size_t origin_size, char *host, size_t host_size) {
    CURLU *u = curl_url();
    if (!u)
        return -1;
    char *scheme = NULL, *h = NULL, *port = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        for (char *c = h; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(origin, origin_size, "%s://%s%s%s", scheme, h, port ? ":" : "", port ? port : "");
        snprintf(host, host_size, "%s", h);
        rc = 0;
    }
    curl_free(scheme);
    curl_free(h);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* The path and query robots.txt rules are matched against. */
static char *robots_path(const char *url) {
    CURLU *u = curl_url();
    char *path = NULL, *query = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        size_t n = strlen(path) + (query ? strlen(query) + 1 : 0) + 1;
        if ((out = malloc(n)))
            snprintf(out, n, "%s%s%s", path, query ? "?" : "", query ? query : "");
    }
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return out;
}

/* ---- the transfer engine ------------------------------------------------ */

typedef struct job {
    web_page *page;
    CURL *easy;
    long not_before; /* a retry waits until then */
    int over_cap;
    size_t cap;
} job;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    job *j = ud;
    web_page *p = j->page;
    size_t len = size * n;
    if (p->len + len > j->cap) {
        j->over_cap = 1;
        return 0; /* stops the transfer */
    }
    char *grown = realloc(p->body, p->len + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + p->len, data, len);
    p->body = grown;
    p->len += len;
    p->body[p->len] = '\0';
    return len;
}

static int start(CURLM *multi, job *j, const web_options *o) {
    web_page *p = j->page;
    free(p->body);
    p->body = NULL;
    p->len = 0;
    j->over_cap = 0;
    p->attempts++;
    CURL *e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, p->url);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)j->cap);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -ENOMEM;
    }
    j->easy = e;
    return 0;
}

static int transient(CURLcode rc, long status) {
    switch (rc) {
    case CURLE_OK:
        return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
    case CURLE_OPERATION_TIMEDOUT: case CURLE_COULDNT_CONNECT: case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
        return 1;
    default:
        return 0;
    }
}

/* Records the outcome of j's transfer; returns 1 when it should be retried. */
static int finish(CURLM *multi, job *j, CURLcode rc, const web_options *o) {
    web_page *p = j->page;
    CURL *e = j->easy;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &p->status);
    char *ct = NULL, *final = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &final);
    free(p->content_type);
    free(p->final_url);
    p->content_type = ct ? strdup(ct) : NULL;
    p->final_url = final ? strdup(final) : NULL;
    p->ok = 0;
    if (j->over_cap || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(p->error, sizeof(p->error), "larger than the %zu-byte limit", j->cap);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(p->error, sizeof(p->error), "timed out after %ld ms", o->timeout_ms);
    else if (rc != CURLE_OK)
        snprintf(p->error, sizeof(p->error), "%s", curl_easy_strerror(rc));
    else if (p->status >= 400 || p->status < 200)
        snprintf(p->error, sizeof(p->error), "HTTP %ld", p->status);
    else
        p->ok = 1;
    if (p->ok && !p->body && !(p->body = calloc(1, 1))) {
        p->ok = 0;
        snprintf(p->error, sizeof(p->error), "out of memory");
    }
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
    j->easy = NULL;
    int again = !p->ok && !j->over_cap && transient(rc, p->status) && p->attempts <= o->retries;
    if (again)
        j->not_before = now_ms() + (o->backoff_ms << (p->attempts - 1 < 16 ? p->attempts - 1 : 16));
    return again;
}

/* Runs every job to an outcome, at most o->concurrency at once. */
static int run_jobs(job *jobs, size_t n, const web_options *o, char *err, size_t err_size) {
    CURLM *multi = curl_multi_init();
    if (!multi) {
        snprintf(err, err_size, "libcurl: cannot create a transfer set");
        return -ENOMEM;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->concurrency);
    /* Waiting jobs are those not started yet or due for a retry: state is
     * 0 waiting, 1 running, 2 done. */
    unsigned char *state = calloc(n ? n : 1, 1);
    if (!state) {
        curl_multi_cleanup(multi);
        return -ENOMEM;
    }
    size_t done = 0, running = 0;
    int rc = 0;
    while (done < n && rc == 0) {
        if (o->cancelled && o->cancelled(o->cancel_ud)) {
            snprintf(err, err_size, "cancelled");
            rc = -ECANCELED;
            break;
        }
        long now = now_ms(), wake = now + 200;
        for (size_t i = 0; i < n && running < (size_t)o->concurrency; i++) {
            if (state[i] != 0)
                continue;
            if (jobs[i].not_before > now) {
                if (jobs[i].not_before < wake)
                    wake = jobs[i].not_before;
                continue;
            }
            if ((rc = start(multi, &jobs[i], o)) != 0) {
                snprintf(err, err_size, "libcurl: cannot start a transfer");
                break;
            }
            state[i] = 1;
            running++;
        }
        int still, finished = 0;
        curl_multi_perform(multi, &still);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            job *j;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            size_t i = (size_t)(j - jobs);
            running--;
            finished++;
            if (finish(multi, j, m->data.result, o)) {
                state[i] = 0;
            } else {
                state[i] = 2;
                done++;
            }
        }
        /* A transfer ended: start the next one before waiting. */
        if (done < n && rc == 0 && !finished) {
            long wait = wake - now_ms();
            curl_multi_poll(multi, NULL, 0, (int)(wait < 1 ? 1 : wait > 200 ? 200 : wait), NULL);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (jobs[i].easy) {
            curl_multi_remove_handle(multi, jobs[i].easy);
            curl_easy_cleanup(jobs[i].easy);
            jobs[i].easy = NULL;
        }
    free(state);
    curl_multi_cleanup(multi);
    return rc;
}

/* ---- robots.txt, then the pages ---------------------------------------- */

typedef struct origin {
    char name[512];
    char url[560];
    web_page page;
    robots *rules;
} origin;

static robots *rules_from(const web_page *p, const char *agent) {
    if (p->ok)
        return robots_parse(p->body, p->len, agent);
    /* RFC 9309 2.3.1: a 4xx means no rules; anything else (5xx, no answer)
     * means the site cannot say, so nothing may be fetched. */
    if (p->status >= 400 && p->status < 500)
        return robots_allow_all();
    return robots_disallow_all();
}

int web_fetch(web_page *pages, size_t n, const web_options *o, char *err, size_t err_size) {
    pthread_once(&once, init_once);
    if (global_rc != CURLE_OK) {
        snprintf(err, err_size, "libcurl did not initialise: %s", curl_easy_strerror(global_rc));
        return -EIO;
    }
    origin *origins = calloc(n ? n : 1, sizeof(*origins));
    size_t *origin_of = calloc(n ? n : 1, sizeof(*origin_of));
    job *jobs = calloc(n ? n : 1, sizeof(*jobs));
    int rc = origins && origin_of && jobs ? 0 : -ENOMEM;
    size_t n_origins = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        web_page_clear(&pages[i]);
        char name[512], host[256];
        origin_of[i] = SIZE_MAX;
        if (web_origin(pages[i].url, name, sizeof(name), host, sizeof(host)) != 0) {
            snprintf(pages[i].error, sizeof(pages[i].error), "not an http(s) URL");
            continue;
        }
        size_t k = 0;
        while (k < n_origins && strcmp(origins[k].name, name) != 0)
            k++;
        if (k == n_origins) {
            snprintf(origins[k].name, sizeof(origins[k].name), "%s", name);
            snprintf(origins[k].url, sizeof(origins[k].url), "%s/robots.txt", name);
            origins[k].page.url = origins[k].url;
            n_origins++;
        }
        origin_of[i] = k;
    }
    if (rc == 0 && o->honour_robots && n_origins) {
        job *rjobs = calloc(n_origins, sizeof(*rjobs));
        if (!rjobs)
            rc = -ENOMEM;
        web_options ro = *o;
        ro.retries = 0;
        for (size_t k = 0; rc == 0 && k < n_origins; k++)
            rjobs[k] = (job){&origins[k].page, NULL, 0, 0, 512 * 1024};
        if (rc == 0)
            rc = run_jobs(rjobs, n_origins, &ro, err, err_size);
        for (size_t k = 0; rc == 0 && k < n_origins; k++)
            if (!(origins[k].rules = rules_from(&origins[k].page, o->robots_agent)))
                rc = -ENOMEM;
        free(rjobs);
    }
    size_t n_jobs = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (origin_of[i] == SIZE_MAX)
            continue;
        const origin *org = &origins[origin_of[i]];
        if (org->rules) {
            char *path = robots_path(pages[i].url);
            if (!path) {
                rc = -ENOMEM;
                break;
            }
            int allowed = robots_allowed(org->rules, path);
            free(path);
            if (!allowed) {
                if (org->page.ok || (org->page.status >= 400 && org->page.status < 500))
                    snprintf(pages[i].error, sizeof(pages[i].error), "disallowed by %.200s",
                             org->url);
                else if (org->page.status == 0) /* no answer at all */
                    snprintf(pages[i].error, sizeof(pages[i].error), "cannot reach %.120s: %.100s",
                             org->name, org->page.error);
                else /* RFC 9309: a server error on robots.txt forbids the whole site */
                    snprintf(pages[i].error, sizeof(pages[i].error),
                             "%.120s answered %ld, so the site's rules are unknown and nothing "
                             "may be fetched",
                             org->url, org->page.status);
                continue;
            }
        }
        jobs[n_jobs++] = (job){&pages[i], NULL, 0, 0, o->max_bytes};
    }
    if (rc == 0)
        rc = run_jobs(jobs, n_jobs, o, err, err_size);
    else if (rc == -ENOMEM)
        snprintf(err, err_size, "out of memory");
    for (size_t k = 0; origins && k < n_origins; k++) {
        robots_free(origins[k].rules);
        web_page_clear(&origins[k].page);
    }
    free(origins);
    free(origin_of);
    free(jobs);
    return rc;
}
