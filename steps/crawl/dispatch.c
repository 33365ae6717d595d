#include "dispatch.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web.h"

typedef struct rule {
    char domain[256];
    char platform[256];
    crawl_kind kind;
} rule;

struct dispatch {
    rule *rules; /* searched first to last */
    size_t n;
};

static const char *const kind_names[] = {"article", "post", "git"};
static const char *const kind_categories[] = {"articles", "posts", "repositories"};

const char *crawl_kind_name(crawl_kind kind) { return kind_names[kind]; }
const char *crawl_kind_category(crawl_kind kind) { return kind_categories[kind]; }

/* The built-in table, searched after the pipeline's rules. */
static const char *const builtin[] = {
    "github.com=git:github",      "gitlab.com=git:gitlab",     "bitbucket.org=git:bitbucket",
    "codeberg.org=git:codeberg",  "medium.com=article:medium", "substack.com=article:substack",
    "linkedin.com=post:linkedin",
};

dispatch *dispatch_new(void) {
    dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    char err[128];
    for (size_t i = sizeof(builtin) / sizeof(*builtin); i-- > 0;)
        if (dispatch_add(d, builtin[i], err, sizeof(err)) != 0) {
            dispatch_free(d);
            return NULL;
        }
    return d;
}

void dispatch_free(dispatch *d) {
    if (d)
        free(d->rules);
    free(d);
}

int dispatch_add(dispatch *d, const char *spec, char *err, size_t err_size) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof(((rule *)0)->domain)) {
        snprintf(err, err_size, "crawler rule '%s': write DOMAIN=KIND (article, post or git)",
                 spec);
        return -EINVAL;
    }
    rule r;
    memset(&r, 0, sizeof(r));
    snprintf(r.domain, sizeof(r.domain), "%.*s", (int)(eq - spec), spec);
    for (char *c = r.domain; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *kind = eq + 1, *colon = strchr(kind, ':');
    size_t klen = colon ? (size_t)(colon - kind) : strlen(kind);
    int found = 0;
    for (int k = 0; k < 3; k++)
        if (strlen(kind_names[k]) == klen && strncmp(kind, kind_names[k], klen) == 0) {
            r.kind = (crawl_kind)k;
            found = 1;
        }
    if (!found) {
        snprintf(err, err_size, "crawler rule '%s': no crawler '%.*s' (article, post or git)", spec,
                 (int)klen, kind);
        return -EINVAL;
    }
    snprintf(r.platform, sizeof(r.platform), "%s", colon ? colon + 1 : "");
    rule *grown = realloc(d->rules, (d->n + 1) * sizeof(*grown));
    if (!grown) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    memmove(grown + 1, grown, d->n * sizeof(*grown));
    grown[0] = r;
    d->rules = grown;
    d->n++;
    return 0;
}

static int host_matches(const char *host, const char *domain) {
    size_t h = strlen(host), n = strlen(domain);
    if (h == n)
        return strcmp(host, domain) == 0;
    return h > n && host[h - n - 1] == '.' && strcmp(host + h - n, domain) == 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int dispatch_link(const dispatch *d, const char *link, dispatch_result *out, char *err,
                  size_t err_size) {
    memset(out, 0, sizeof(*out));
    char origin[512];
    if (web_origin(link, origin, sizeof(origin), out->domain, sizeof(out->domain)) != 0) {
        if (strncmp(link, "file://", 7) == 0 || !strstr(link, "://")) {
            out->kind = CRAWL_GIT;
            snprintf(out->domain, sizeof(out->domain), "local");
            snprintf(out->platform, sizeof(out->platform), "local");
            return 0;
        }
        if (strncmp(link, "ssh://", 6) == 0 || strncmp(link, "git://", 6) == 0) {
            out->kind = CRAWL_GIT;
            snprintf(out->domain, sizeof(out->domain), "%s", "git");
            snprintf(out->platform, sizeof(out->platform), "git");
            return 0;
        }
        snprintf(err, err_size, "no crawler takes '%s' (http(s) pages, git repositories, paths)",
                 link);
        return -EINVAL;
    }
    for (size_t i = 0; i < d->n; i++)
        if (host_matches(out->domain, d->rules[i].domain)) {
            out->kind = d->rules[i].kind;
            snprintf(out->platform, sizeof(out->platform), "%s",
                     *d->rules[i].platform ? d->rules[i].platform : out->domain);
            return 0;
        }
    out->kind = ends_with(link, ".git") || ends_with(link, ".git/") ? CRAWL_GIT : CRAWL_ARTICLE;
    snprintf(out->platform, sizeof(out->platform), "%s", out->domain);
    return 0;
}
