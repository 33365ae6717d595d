/* dispatch.h - which crawler takes a link: a table of domain rules, the
 * pipeline's own first (the crawl step's `crawlers` parameter), then the
 * built-in ones. A rule's domain matches the link's host and its
 * subdomains. Links with no matching rule are web articles when they are
 * http(s), git repositories when they end in ".git", are file:// URLs or
 * local paths. */
#ifndef SLUICE_CRAWL_DISPATCH_H
#define SLUICE_CRAWL_DISPATCH_H

#include <stddef.h>

typedef enum crawl_kind { CRAWL_ARTICLE = 0, CRAWL_POST, CRAWL_GIT } crawl_kind;

typedef struct dispatch dispatch;

/* A table holding the built-in rules; NULL when out of memory. */
dispatch *dispatch_new(void);
void dispatch_free(dispatch *d);

/* Adds a rule ahead of the existing ones. spec is "DOMAIN=KIND" with KIND
 * article, post or git (optionally "DOMAIN=KIND:PLATFORM" to name the
 * platform documents record). Returns 0, or -EINVAL with a message in err. */
int dispatch_add(dispatch *d, const char *spec, char *err, size_t err_size);

typedef struct dispatch_result {
    crawl_kind kind;
    char domain[256];   /* the link's host, or "local" */
    char platform[256]; /* what documents record: "github", "medium", the host... */
} dispatch_result;

/* Classifies link. Returns 0, or -EINVAL with a message in err for a link
 * no crawler takes (an ftp:// URL, say). */
int dispatch_link(const dispatch *d, const char *link, dispatch_result *out, char *err,
                  size_t err_size);

const char *crawl_kind_name(crawl_kind kind);
/* The warehouse category a kind fills: articles, posts, repositories. */
const char *crawl_kind_category(crawl_kind kind);

#endif
