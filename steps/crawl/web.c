#include "web.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "capbuf.h"
#include "curl_transient.h"
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

/* ---- what a link may reach -------------------------------------------- */

/* Query parameters whose values are credentials by their name: matched
 * case-insensitively as a part of the key ("api_key", "X-Amz-Signature"). */
static const char *const secret_keys[] = {"key",        "token", "secret",    "password", "passwd",
                                          "pwd",        "auth",  "signature", "sig",      "session",
                                          "credential", "code",  NULL};

/* Short keys taken for credentials only when they are the whole key. */
static const char *const secret_short_keys[] = {"k", "pw", "pass", NULL};

static int secret_key(const char *key, size_t len) {
    for (const char *const *k = secret_short_keys; *k; k++)
        if (strlen(*k) == len && strncasecmp(key, *k, len) == 0)
            return 1;
    for (const char *const *k = secret_keys; *k; k++) {
        size_t n = strlen(*k);
        for (size_t i = 0; i + n <= len; i++)
            if (strncasecmp(key + i, *k, n) == 0)
                return 1;
    }
    return 0;
}

typedef struct span {
    const char *at;
    size_t len;
} span;

/* The credentials in url, in order: the password of "user:password@host"
 * and the value of each query parameter secret_key names. At most max. */
static size_t secret_spans(const char *url, span *out, size_t max) {
    size_t n = 0;
    const char *p = url;
    const char *scheme_end = strstr(url, "://");
    if (scheme_end) {
        const char *auth = scheme_end + 3, *end = auth + strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', (size_t)(end - auth));
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon && n < max)
            out[n++] = (span){colon + 1, (size_t)(at - colon - 1)};
        if (at)
            p = at;
    }
    const char *query = strchr(p, '?'), *fragment = strchr(p, '#');
    if (!query || (fragment && fragment < query))
        return n;
    for (const char *q = query + 1; *q && *q != '#' && n < max;) {
        size_t len = strcspn(q, "&#");
        const char *eq = memchr(q, '=', len);
        if (eq && secret_key(q, (size_t)(eq - q)))
            out[n++] = (span){eq + 1, len - (size_t)(eq - q) - 1};
        q += len;
        if (*q == '&')
            q++;
    }
    return n;
}

enum { MAX_SECRETS = 64 };

void web_redact_url(const char *url, char *out, size_t size) {
    span secrets[MAX_SECRETS];
    size_t n = secret_spans(url, secrets, MAX_SECRETS), k = 0, i = 0;
    for (const char *p = url; *p && k + 1 < size;) {
        if (i < n && p == secrets[i].at) {
            k += (size_t)snprintf(out + k, size - k, "***");
            p += secrets[i++].len;
        } else {
            out[k++] = *p++;
        }
    }
    out[k < size ? k : size - 1] = '\0';
}

void web_redact_text(char *text, size_t size, const char *url) {
    span secrets[MAX_SECRETS];
    size_t n = secret_spans(url, secrets, MAX_SECRETS);
    char *out = n ? malloc(size) : NULL;
    for (size_t i = 0; out && i < n; i++) {
        const span *v = &secrets[i];
        if (v->len < 4) /* "***" for every "1" of a message would say nothing */
            continue;
        size_t k = 0;
        for (const char *p = text; *p && k + 1 < size;) {
            if (strncmp(p, v->at, v->len) == 0) {
                k += (size_t)snprintf(out + k, size - k, "***");
                p += v->len;
            } else {
                out[k++] = *p++;
            }
        }
        out[k < size ? k : size - 1] = '\0';
        memcpy(text, out, strlen(out) + 1);
    }
    free(out);
}

/* What kind of address a is when a crawl should not reach it by default
 * ("a loopback address", ...), or NULL for a public one. */
static const char *private_kind(const struct sockaddr *a) {
    const unsigned char *b;
    unsigned char mapped[4];
    if (a->sa_family == AF_INET6) {
        const unsigned char *v6 = ((const struct sockaddr_in6 *)(const void *)a)->sin6_addr.s6_addr;
        static const unsigned char v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char zero[16] = {0};
        if (memcmp(v6, v4_prefix, 12) == 0) {
            memcpy(mapped, v6 + 12, 4);
            b = mapped;
        } else if (memcmp(v6, zero, 15) == 0) {
            return v6[15] == 1 ? "a loopback address" : "an unspecified address";
        } else if ((v6[0] & 0xfe) == 0xfc) {
            return "a private address";
        } else if (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) {
            return "a link-local address";
        } else {
            return NULL;
        }
    } else if (a->sa_family == AF_INET) {
        b = (const unsigned char *)&((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr;
    } else {
        return "not an internet address";
    }
    if (b[0] == 127)
        return "a loopback address";
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
        (b[0] == 100 && (b[1] & 0xc0) == 64))
        return "a private address";
    if (b[0] == 169 && b[1] == 254)
        return "a link-local address";
    if (b[0] == 0)
        return "an unspecified address";
    return NULL;
}

/* ---- the transfer engine ------------------------------------------------ */

typedef struct fetcher fetcher;

typedef struct job {
    web_page *page;
    CURL *easy;
    long not_before; /* a retry waits until then */
    int over_cap;
    size_t cap;
    fetcher *f;
    int is_robots;   /* a robots.txt: its redirects are not checked against rules */
    char *url;       /* after redirects (malloc'ed), or NULL: page->url */
    int hops;        /* redirects followed */
    int redirecting; /* the next start follows a redirect: not a new attempt */
    size_t header_bytes;
    int over_header;
    char refused[160]; /* why a connection was refused, or "" */
} job;

static const char *job_url(const job *j) { return j->url ? j->url : j->page->url; }

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    job *j = ud;
    web_page *p = j->page;
    int rc = capbuf_append(&p->body, &p->len, j->cap, data, size * n);
    if (rc == CAPBUF_OVER)
        j->over_cap = 1;
    return rc == 0 ? size * n : 0; /* 0 stops the transfer */
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    job *j = ud;
    (void)data;
    j->header_bytes += size * n;
    if (j->header_bytes > WEB_MAX_HEADER_BYTES) {
        j->over_header = 1;
        return 0;
    }
    return size * n;
}

static int allow_private_of(const fetcher *f);

/* Every connection, the first and each redirect's, after name resolution:
 * the address itself is checked, so that a name resolving to a private
 * address (or one that changes between lookups) is refused too. */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
    job *j = ud;
    (void)purpose;
    const char *kind = private_kind(&a->addr);
    if (kind && !allow_private_of(j->f)) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&a->addr)->sin_addr, host,
                      sizeof(host));
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr, host,
                      sizeof(host));
        snprintf(j->refused, sizeof(j->refused),
                 "refused to connect to %s, %s (set allow_private: true to crawl it)", host, kind);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static int start(CURLM *multi, job *j, const web_options *o) {
    web_page *p = j->page;
    free(p->body);
    p->body = NULL;
    p->len = 0;
    j->over_cap = 0;
    j->over_header = 0;
    j->header_bytes = 0;
    j->refused[0] = '\0';
    if (!j->redirecting)
        p->attempts++;
    j->redirecting = 0;
    CURL *e = curl_easy_init();
    if (!e)
        return -ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, job_url(j));
    /* Redirects are followed here, one hop at a time, so that each is
     * checked (host, robots.txt) before it is asked for. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)j->cap);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -ENOMEM;
    }
    j->easy = e;
    return 0;
}

static int transient(CURLcode rc, long status) {
    return rc == CURLE_OK
               ? (status == 429 || status == 500 || status == 502 || status == 503 || status == 504)
               : curl_transfer_transient(rc);
}

static int redirect_allowed(job *j, const char *to, char *why, size_t why_size);

enum { DONE, RETRY, FOLLOW };

/* Records the outcome of j's transfer: DONE, RETRY (a transient failure)
 * or FOLLOW (an allowed redirect, in j->url). */
static int finish(CURLM *multi, job *j, CURLcode rc, const web_options *o) {
    web_page *p = j->page;
    CURL *e = j->easy;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &p->status);
    char *ct = NULL, *location = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &location);
    free(p->content_type);
    free(p->final_url);
    p->content_type = ct ? strdup(ct) : NULL;
    p->final_url = strdup(job_url(j));
    p->ok = 0;
    int outcome = DONE;
    char shown[512];
    if (*j->refused)
        snprintf(p->error, sizeof(p->error), "%s", j->refused);
    else if (j->over_header || (rc == CURLE_OUT_OF_MEMORY && p->len == 0))
        /* libcurl gives up on a header line over its 100 KB as if memory ran out */
        snprintf(p->error, sizeof(p->error),
                 "the response's headers are too large (over %d bytes, or a line over 100 KB)",
                 WEB_MAX_HEADER_BYTES);
    else if (j->over_cap || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(p->error, sizeof(p->error), "larger than the %zu-byte limit", j->cap);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(p->error, sizeof(p->error), "timed out after %ld ms", o->timeout_ms);
    else if (rc != CURLE_OK)
        snprintf(p->error, sizeof(p->error), "%s", curl_easy_strerror(rc));
    else if (p->status >= 300 && p->status < 400 && location) {
        web_redact_url(location, shown, sizeof(shown));
        if (j->hops >= WEB_MAX_REDIRECTS)
            snprintf(p->error, sizeof(p->error), "more than %d redirects (the last to %.180s)",
                     WEB_MAX_REDIRECTS, shown);
        else if (redirect_allowed(j, location, p->error, sizeof(p->error))) {
            char *next = strdup(location);
            if (!next) {
                snprintf(p->error, sizeof(p->error), "out of memory");
            } else {
                free(j->url);
                j->url = next;
                j->hops++;
                j->redirecting = 1;
                outcome = FOLLOW;
            }
        }
    } else if (p->status >= 400 || p->status < 200)
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
    if (outcome == FOLLOW)
        return FOLLOW;
    int again = !p->ok && !j->over_cap && !*j->refused && transient(rc, p->status) &&
                p->attempts <= o->retries;
    if (again)
        j->not_before = now_ms() + (o->backoff_ms << (p->attempts - 1 < 16 ? p->attempts - 1 : 16));
    return again ? RETRY : DONE;
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
            if (finish(multi, j, m->data.result, o) != DONE) {
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
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].easy) {
            curl_multi_remove_handle(multi, jobs[i].easy);
            curl_easy_cleanup(jobs[i].easy);
            jobs[i].easy = NULL;
        }
        free(jobs[i].url);
        jobs[i].url = NULL;
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

struct fetcher {
    const web_options *o;
    origin **origins; /* each its own allocation: a page points into it */
    size_t n_origins, cap;
};

static int allow_private_of(const fetcher *f) { return f->o->allow_private; }

static robots *rules_from(const web_page *p, const char *agent) {
    if (p->ok)
        return robots_parse(p->body, p->len, agent);
    /* RFC 9309 2.3.1: a 4xx means no rules; anything else (5xx, no answer)
     * means the site cannot say, so nothing may be fetched. */
    if (p->status >= 400 && p->status < 500)
        return robots_allow_all();
    return robots_disallow_all();
}

/* The origin named name, added (without rules) when new; NULL when out of
 * memory. */
static origin *origin_of(fetcher *f, const char *name) {
    for (size_t k = 0; k < f->n_origins; k++)
        if (strcmp(f->origins[k]->name, name) == 0)
            return f->origins[k];
    if (f->n_origins == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        origin **grown = realloc(f->origins, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        f->origins = grown;
        f->cap = cap;
    }
    origin *org = calloc(1, sizeof(*org));
    if (!org)
        return NULL;
    snprintf(org->name, sizeof(org->name), "%s", name);
    snprintf(org->url, sizeof(org->url), "%s/robots.txt", name);
    org->page.url = org->url;
    f->origins[f->n_origins++] = org;
    return org;
}

/* Fetches the robots.txt of every origin in orgs without rules yet. */
static int fetch_rules(fetcher *f, origin **orgs, size_t n, char *err, size_t err_size) {
    job *rjobs = calloc(n ? n : 1, sizeof(*rjobs));
    if (!rjobs)
        return -ENOMEM;
    web_options ro = *f->o;
    ro.retries = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!orgs[i]->rules)
            rjobs[k++] = (job){.page = &orgs[i]->page, .cap = 512 * 1024, .f = f, .is_robots = 1};
    int rc = run_jobs(rjobs, k, &ro, err, err_size);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!orgs[i]->rules && !(orgs[i]->rules = rules_from(&orgs[i]->page, f->o->robots_agent)))
            rc = -ENOMEM;
    free(rjobs);
    return rc;
}

/* 1 when org's rules allow url; 0 with why filled when not; -ENOMEM. */
static int robots_permit(const origin *org, const char *url, char *why, size_t why_size) {
    char *path = robots_path(url);
    if (!path)
        return -ENOMEM;
    int allowed = robots_allowed(org->rules, path);
    free(path);
    if (allowed)
        return 1;
    if (org->page.ok || (org->page.status >= 400 && org->page.status < 500))
        snprintf(why, why_size, "disallowed by %.200s", org->url);
    else if (org->page.status == 0) /* no answer at all */
        snprintf(why, why_size, "cannot reach %.120s: %.100s", org->name, org->page.error);
    else /* RFC 9309: a server error on robots.txt forbids the whole site */
        snprintf(why, why_size,
                 "%.120s answered %ld, so the site's rules are unknown and nothing may be fetched",
                 org->url, org->page.status);
    return 0;
}

/* Whether j may follow a redirect to url: an http(s) URL on the same host
 * as the link (or one the pipeline allows) that robots.txt permits. */
static int redirect_allowed(job *j, const char *to, char *why, size_t why_size) {
    const web_options *o = j->f->o;
    char name[512], host[256], from_name[512], from_host[256], shown[300];
    web_redact_url(to, shown, sizeof(shown));
    if (web_origin(to, name, sizeof(name), host, sizeof(host)) != 0) {
        snprintf(why, why_size, "redirected to %.200s, not an http(s) URL", shown);
        return 0;
    }
    if (web_origin(j->page->url, from_name, sizeof(from_name), from_host, sizeof(from_host)) != 0)
        from_host[0] = '\0';
    int allowed_host = strcmp(host, from_host) == 0;
    for (size_t i = 0; !allowed_host && i < o->n_allowed_hosts; i++)
        allowed_host = strcasecmp(host, o->allowed_hosts[i]) == 0;
    if (!allowed_host) {
        snprintf(why, why_size,
                 "redirected to another host, %.120s (add it to allowed_hosts to follow)", host);
        return 0;
    }
    if (j->is_robots || !o->honour_robots)
        return 1;
    origin *org = origin_of(j->f, name);
    char err[256];
    if (!org || (!org->rules && fetch_rules(j->f, &org, 1, err, sizeof(err)) != 0)) {
        snprintf(why, why_size, "cannot read the robots.txt of %.200s", name);
        return 0;
    }
    char because[256];
    int rc = robots_permit(org, to, because, sizeof(because));
    if (rc == 1)
        return 1;
    snprintf(why, why_size, "redirected to %.110s: %.120s", shown,
             rc == 0 ? because : "out of memory");
    return 0;
}

int web_fetch(web_page *pages, size_t n, const web_options *o, char *err, size_t err_size) {
    pthread_once(&once, init_once);
    if (global_rc != CURLE_OK) {
        snprintf(err, err_size, "libcurl did not initialise: %s", curl_easy_strerror(global_rc));
        return -EIO;
    }
    fetcher f = {.o = o};
    origin **of_page = calloc(n ? n : 1, sizeof(*of_page));
    job *jobs = calloc(n ? n : 1, sizeof(*jobs));
    int rc = of_page && jobs ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        web_page_clear(&pages[i]);
        char name[512], host[256];
        if (web_origin(pages[i].url, name, sizeof(name), host, sizeof(host)) != 0) {
            snprintf(pages[i].error, sizeof(pages[i].error), "not an http(s) URL");
            continue;
        }
        if (!(of_page[i] = origin_of(&f, name)))
            rc = -ENOMEM;
    }
    if (rc == 0 && o->honour_robots && f.n_origins)
        rc = fetch_rules(&f, f.origins, f.n_origins, err, err_size);
    size_t n_jobs = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!of_page[i])
            continue;
        if (of_page[i]->rules) {
            int allowed =
                robots_permit(of_page[i], pages[i].url, pages[i].error, sizeof(pages[i].error));
            if (allowed < 0)
                rc = allowed;
            if (allowed != 1)
                continue;
        }
        jobs[n_jobs++] = (job){.page = &pages[i], .cap = o->max_bytes, .f = &f};
    }
    if (rc == 0)
        rc = run_jobs(jobs, n_jobs, o, err, err_size);
    else if (rc == -ENOMEM)
        snprintf(err, err_size, "out of memory");
    for (size_t k = 0; k < f.n_origins; k++) {
        robots_free(f.origins[k]->rules);
        web_page_clear(&f.origins[k]->page);
        free(f.origins[k]);
    }
    free(f.origins);
    free(of_page);
    free(jobs);
    return rc;
}
