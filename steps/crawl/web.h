/* web.h - fetching web pages politely with libcurl's multi interface: a
 * few transfers in flight at once, redirects followed one hop at a time
 * (each checked against robots.txt, and only to the link's own host or an
 * allowed one), a timeout and a size cap per transfer, connections to
 * private addresses refused unless allowed, transient failures (timeouts, refused connections, HTTP
 * 429 and 5xx) retried with doubling backoff, and robots.txt fetched once per
 * origin and honoured before any page of it is asked for. */
#ifndef SLUICE_CRAWL_WEB_H
#define SLUICE_CRAWL_WEB_H

#include <stddef.h>

typedef struct web_options {
    long timeout_ms;          /* per transfer, connection included */
    size_t max_bytes;         /* a larger body fails the page */
    int concurrency;          /* transfers in flight at once, >= 1 */
    int retries;              /* further attempts after a transient failure */
    long backoff_ms;          /* before the first retry; doubles each time */
    const char *user_agent;   /* sent, and matched against robots.txt groups */
    const char *robots_agent; /* the product token robots.txt groups name */
    int honour_robots;
    /* Connections to loopback, private, link-local and unspecified
     * addresses are refused unless allow_private. */
    int allow_private;
    /* Hosts a redirect may lead to besides the link's own. */
    const char *const *allowed_hosts;
    size_t n_allowed_hosts;
    /* Polled while waiting: nonzero stops the remaining transfers. */
    int (*cancelled)(void *ud);
    void *cancel_ud;
} web_options;

typedef struct web_page {
    const char *url; /* in: what to fetch (the caller's) */
    /* out, owned by the page until web_page_clear(): */
    int ok;      /* 1: a 2xx body within the limits */
    long status; /* the last HTTP status, 0 if none */
    int attempts;
    char *body; /* NUL-terminated; len bytes */
    size_t len;
    char *content_type; /* the Content-Type header, or NULL */
    char *final_url;    /* after redirects */
    char error[256];    /* why not ok */
} web_page;

/* Fetches every page (results in place). Returns 0 when every page was
 * tried (each says whether it succeeded), or a negative code with err when
 * the crawl itself could not run (out of memory, cancelled). */
int web_fetch(web_page *pages, size_t n, const web_options *o, char *err, size_t err_size);
void web_page_clear(web_page *p);

/* At most this many redirects per page, and this many bytes of response
 * headers (libcurl itself refuses a header line over 100 KB). */
#define WEB_MAX_REDIRECTS 5
#define WEB_MAX_HEADER_BYTES (256 * 1024)

/* url with credentials masked, for reports and messages: a password in
 * its authority and the value of every query parameter whose key looks
 * like a credential (key, token, secret, password, passwd, pwd, auth,
 * signature, sig, session, credential, code as a part of the key, or k, pw,
 * pass as the whole key, case-insensitively) become "***". Truncated to fit size. */
void web_redact_url(const char *url, char *out, size_t size);
/* Masks in text (NUL-terminated, in a buffer of size bytes) every
 * credential that url carries, as web_redact_url finds them, wherever it
 * appears (a library's message quoting the link); values shorter than 4
 * bytes are left alone. */
void web_redact_text(char *text, size_t size, const char *url);

/* The "scheme://host[:port]" of url and its lower-cased host, or -1 when
 * url is not an absolute http(s) URL. */
int web_origin(const char *url, char *origin, size_t origin_size, char *host, size_t host_size);

#endif
