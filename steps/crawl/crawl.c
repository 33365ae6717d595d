/* crawl - the LLM twin's first step (the Handbook's digital_data_etl): a
 * user's links, each dispatched by domain to a crawler (web pages through
 * libcurl and gumbo, git repositories through libgit2), stored as
 * documents in the warehouse; links already there are skipped, and a
 * report records what became of every link. */
#include <sluice/artifacts.h>
#include <sluice/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dispatch.h"
#include "git.h"
#include "html.h"
#include "text.h"
#include "warehouse.h"
#include "web.h"

typedef enum outcome { PENDING = 0, CRAWLED, SKIPPED, FAILED } outcome;

typedef struct crawl_link {
    const char *url;
    /* url with credentials masked (web_redact_url): what the report, the
     * warehouse and the log show, and what the document's id is made of */
    char *shown;
    dispatch_result where;
    outcome result;
    char id[37];
    char error[320];
    web_page page; /* web links */
} crawl_link;

typedef struct crawl {
    sl_ctx *ctx;
    warehouse *w;
    char user_id[64], first[256], last[256], full_name[512];
    char crawled_at[32]; /* when the crawl began, ISO 8601 UTC */
    crawl_link *links;
    size_t n;
} crawl;

static void fail_link(crawl_link *l, const char *why) {
    l->result = FAILED;
    snprintf(l->error, sizeof(l->error), "%.*s", (int)sizeof(l->error) - 1, why);
}

/* The Handbook splits a full name at its last space. */
static void split_name(crawl *c, const char *full) {
    snprintf(c->full_name, sizeof(c->full_name), "%s", full);
    const char *space = strrchr(full, ' ');
    if (!space) {
        snprintf(c->first, sizeof(c->first), "%s", full);
        snprintf(c->last, sizeof(c->last), "%s", full);
        return;
    }
    snprintf(c->first, sizeof(c->first), "%.*s", (int)(space - full), full);
    snprintf(c->last, sizeof(c->last), "%s", space + 1);
}

/* The user, found by name or created with an id derived from it. */
static int get_or_create_user(crawl *c) {
    bson_t user;
    int rc = warehouse_find_user(c->w, c->first, c->last, &user);
    if (rc < 0)
        return sl_fail(c->ctx, "%s", warehouse_error(c->w));
    if (rc == 1) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, &user, "_id") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(c->user_id, sizeof(c->user_id), "%s", bson_iter_utf8(&it, NULL));
        bson_destroy(&user);
        return SL_OK;
    }
    char key[600];
    int n = snprintf(key, sizeof(key), "user:%s", c->full_name);
    text_chunk_id(key, (size_t)n, c->user_id);
    bson_init(&user);
    BSON_APPEND_UTF8(&user, "first_name", c->first);
    BSON_APPEND_UTF8(&user, "last_name", c->last);
    BSON_APPEND_UTF8(&user, "_id", c->user_id);
    rc = warehouse_put_user(c->w, &user);
    bson_destroy(&user);
    if (rc == 0)
        rc = warehouse_flush(c->w);
    return rc ? sl_fail(c->ctx, "%s", warehouse_error(c->w)) : SL_OK;
}

static void append_common(crawl *c, crawl_link *l, bson_t *doc) {
    BSON_APPEND_UTF8(doc, "platform", l->where.platform);
    BSON_APPEND_UTF8(doc, "author_id", c->user_id);
    BSON_APPEND_UTF8(doc, "author_full_name", c->full_name);
    BSON_APPEND_UTF8(doc, "link", l->shown);
    BSON_APPEND_UTF8(doc, "crawled_at", c->crawled_at);
    BSON_APPEND_UTF8(doc, "_id", l->id);
}

static void put_doc(crawl *c, crawl_link *l, const bson_t *doc) {
    if (warehouse_put_document(c->w, crawl_kind_category(l->where.kind), doc) != 0)
        fail_link(l, warehouse_error(c->w));
    else
        l->result = CRAWLED;
}

static int is_html(const char *content_type) {
    if (!content_type)
        return 0;
    return strncasecmp(content_type, "text/html", 9) == 0 ||
           strncasecmp(content_type, "application/xhtml+xml", 21) == 0;
}

/* The charset parameter of a Content-Type header, into out. */
static const char *charset_of(const char *content_type, char *out, size_t size) {
    const char *p = content_type;
    while (p && *p && strncasecmp(p, "charset=", 8) != 0)
        p++;
    if (!p || !*p)
        return NULL;
    p += 8;
    if (*p == '"')
        p++;
    size_t n = strcspn(p, "\"; \t");
    snprintf(out, size, "%.*s", (int)n, p);
    return n ? out : NULL;
}

static void store_page(crawl *c, crawl_link *l) {
    web_page *p = &l->page;
    if (!p->ok) {
        fail_link(l, p->error);
        return;
    }
    if (!is_html(p->content_type)) {
        char why[300];
        snprintf(why, sizeof(why), "not an HTML page (Content-Type %.200s)",
                 p->content_type ? p->content_type : "missing");
        fail_link(l, why);
        return;
    }
    char charset[64], err[256];
    html_page page;
    if (html_extract(p->body, p->len, charset_of(p->content_type, charset, sizeof(charset)), &page,
                     err, sizeof(err)) != 0) {
        fail_link(l, err);
        return;
    }
    if (!*page.text) {
        fail_link(l, "the page has no text");
    } else {
        bson_t doc = BSON_INITIALIZER, content;
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "content", &content);
        if (l->where.kind == CRAWL_POST) {
            BSON_APPEND_UTF8(&content, "Post", page.text);
        } else {
            BSON_APPEND_UTF8(&content, "Title", page.title);
            if (page.description)
                BSON_APPEND_UTF8(&content, "Subtitle", page.description);
            else
                BSON_APPEND_NULL(&content, "Subtitle");
            BSON_APPEND_UTF8(&content, "Content", page.text);
            if (page.language)
                BSON_APPEND_UTF8(&content, "language", page.language);
            else
                BSON_APPEND_NULL(&content, "language");
        }
        bson_append_document_end(&doc, &content);
        append_common(c, l, &doc);
        put_doc(c, l, &doc);
        bson_destroy(&doc);
    }
    html_page_free(&page);
}

static void crawl_repository(crawl *c, crawl_link *l, size_t max_file_bytes) {
    char err[512];
    bson_t doc = BSON_INITIALIZER, files;
    git_stats stats;
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "content", &files);
    int rc =
        git_crawl(l->url, sl_work_dir(c->ctx), max_file_bytes, &files, &stats, err, sizeof(err));
    bson_append_document_end(&doc, &files);
    if (rc) {
        web_redact_text(err, sizeof(err), l->url);
        fail_link(l, err);
    } else {
        char name[256];
        git_repo_name(l->url, name, sizeof(name));
        BSON_APPEND_UTF8(&doc, "name", name);
        append_common(c, l, &doc);
        put_doc(c, l, &doc);
        sl_log(c->ctx, SL_LOG_INFO,
               "%s: %zu files kept; skipped %zu binary, %zu by name, %zu over %zu bytes", l->shown,
               stats.kept, stats.skipped_binary, stats.skipped_ignored, stats.skipped_large,
               max_file_bytes);
    }
    bson_destroy(&doc);
}

static int cancelled(void *ud) { return sl_cancelled(ud); }

/* Counts per domain and in all, as metrics crawled.DOMAIN, failed.DOMAIN,
 * skipped.DOMAIN and crawled, failed, skipped. */
static void report_metrics(crawl *c, size_t totals[4]) {
    static const char *const names[] = {"", "crawled", "skipped", "failed"};
    for (size_t i = 0; i < c->n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(c->links[j].where.domain, c->links[i].where.domain) == 0;
        if (seen)
            continue;
        size_t counts[4] = {0};
        for (size_t j = i; j < c->n; j++)
            if (strcmp(c->links[j].where.domain, c->links[i].where.domain) == 0)
                counts[c->links[j].result]++;
        for (int k = 1; k < 4; k++) {
            char key[300];
            snprintf(key, sizeof(key), "%s.%s", names[k], c->links[i].where.domain);
            sl_metric(c->ctx, key, (double)counts[k], 0);
        }
    }
    for (int k = 1; k < 4; k++)
        sl_metric(c->ctx, names[k], (double)totals[k], 0);
}

static int write_report(crawl *c) {
    static const char *const names[] = {"pending", "crawled", "skipped", "failed"};
    char err[256];
    sl_records_writer *out;
    if (sl_records_create(sl_output_path(c->ctx, "report"), &out, err, sizeof(err)) != 0)
        return sl_fail(c->ctx, "the report: %s", err);
    int rc = 0;
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        crawl_link *l = &c->links[i];
        bson_t rec = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&rec, "link", l->shown);
        BSON_APPEND_UTF8(&rec, "crawler", crawl_kind_name(l->where.kind));
        BSON_APPEND_UTF8(&rec, "domain", l->where.domain);
        BSON_APPEND_UTF8(&rec, "status", names[l->result]);
        if (l->result == CRAWLED || l->result == SKIPPED)
            BSON_APPEND_UTF8(&rec, "category", crawl_kind_category(l->where.kind));
        if (l->result == CRAWLED)
            BSON_APPEND_UTF8(&rec, "id", l->id);
        if (l->result == FAILED)
            BSON_APPEND_UTF8(&rec, "error", l->error);
        if (l->page.attempts)
            BSON_APPEND_INT32(&rec, "attempts", l->page.attempts);
        rc = sl_records_write(out, &rec, err, sizeof(err));
        bson_destroy(&rec);
    }
    /* After a failed write, err keeps that write's reason. */
    int closed = sl_records_close(out, rc ? NULL : err, rc ? 0 : sizeof(err));
    rc = rc ? rc : closed;
    return rc ? sl_fail(c->ctx, "the report: %s", err) : SL_OK;
}

static int crawl_links(crawl *c) {
    sl_ctx *ctx = c->ctx;
    size_t n_web = 0;
    for (size_t i = 0; i < c->n; i++) {
        crawl_link *l = &c->links[i];
        int has = warehouse_has_link(c->w, crawl_kind_category(l->where.kind), l->shown);
        if (has < 0)
            return sl_fail(ctx, "%s", warehouse_error(c->w));
        if (has) {
            l->result = SKIPPED;
            sl_log(ctx, SL_LOG_INFO, "%s: already in the warehouse", l->shown);
        } else if (l->where.kind != CRAWL_GIT) {
            n_web++;
        }
    }
    /* The web links, all at once, so that transfers overlap. */
    web_page *pages = calloc(n_web ? n_web : 1, sizeof(*pages));
    crawl_link **owners = calloc(n_web ? n_web : 1, sizeof(*owners));
    if (!pages || !owners) {
        free(pages);
        free(owners);
        return sl_fail(ctx, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->links[i].result == PENDING && c->links[i].where.kind != CRAWL_GIT) {
            owners[k] = &c->links[i];
            pages[k++].url = c->links[i].url;
        }
    const char *agent = sl_param_str(ctx, "user_agent");
    size_t n_allowed = sl_param_list_len(ctx, "allowed_hosts");
    const char **allowed = calloc(n_allowed ? n_allowed : 1, sizeof(*allowed));
    if (!allowed) {
        free(pages);
        free(owners);
        return sl_fail(ctx, "out of memory");
    }
    for (size_t i = 0; i < n_allowed; i++)
        allowed[i] = sl_param_list_item(ctx, "allowed_hosts", i);
    web_options o = {
        .timeout_ms = (long)(sl_param_f64(ctx, "timeout") * 1000),
        .max_bytes = (size_t)sl_param_int(ctx, "max_page_bytes"),
        .concurrency = (int)sl_param_int(ctx, "concurrency"),
        .retries = (int)sl_param_int(ctx, "retries"),
        .backoff_ms = (long)(sl_param_f64(ctx, "retry_backoff") * 1000),
        .user_agent = agent,
        .robots_agent = "sluice-crawl",
        .honour_robots = sl_param_bool(ctx, "robots"),
        .allow_private = sl_param_bool(ctx, "allow_private"),
        .allowed_hosts = allowed,
        .n_allowed_hosts = n_allowed,
        .cancelled = cancelled,
        .cancel_ud = ctx,
    };
    char err[512];
    int rc = web_fetch(pages, n_web, &o, err, sizeof(err));
    for (size_t i = 0; i < n_web; i++) {
        owners[i]->page = pages[i];
        if (rc == 0)
            store_page(c, owners[i]);
    }
    free(pages);
    free(owners);
    free(allowed);
    if (rc)
        return sl_cancelled(ctx) ? SL_ECANCELLED : sl_fail(ctx, "crawling the web links: %s", err);
    size_t max_file = (size_t)sl_param_int(ctx, "max_file_bytes");
    for (size_t i = 0; i < c->n && !sl_cancelled(ctx); i++)
        if (c->links[i].result == PENDING && c->links[i].where.kind == CRAWL_GIT)
            crawl_repository(c, &c->links[i], max_file);
    if (sl_cancelled(ctx))
        return SL_ECANCELLED;
    if (warehouse_flush(c->w) != 0)
        return sl_fail(ctx, "%s", warehouse_error(c->w));
    return SL_OK;
}

static int check_params(sl_ctx *ctx) {
    if (sl_param_f64(ctx, "timeout") <= 0)
        return sl_fail(ctx, "timeout must be a positive number of seconds");
    if (sl_param_int(ctx, "concurrency") < 1 || sl_param_int(ctx, "concurrency") > 64)
        return sl_fail(ctx, "concurrency must be between 1 and 64");
    if (sl_param_int(ctx, "retries") < 0 || sl_param_int(ctx, "retries") > 10)
        return sl_fail(ctx, "retries must be between 0 and 10");
    if (sl_param_f64(ctx, "retry_backoff") < 0)
        return sl_fail(ctx, "retry_backoff cannot be negative");
    if (sl_param_int(ctx, "max_page_bytes") < 1 || sl_param_int(ctx, "max_file_bytes") < 1)
        return sl_fail(ctx, "max_page_bytes and max_file_bytes must be positive");
    const char *agent = sl_param_str(ctx, "user_agent");
    if (!agent || !*agent)
        return sl_fail(ctx, "user_agent cannot be empty: sites should know who asks");
    return SL_OK;
}

static void free_links(crawl *c) {
    for (size_t i = 0; i < c->n; i++) {
        web_page_clear(&c->links[i].page);
        free(c->links[i].shown);
    }
    free(c->links);
}

static int run(sl_ctx *ctx) {
    int rc = check_params(ctx);
    if (rc)
        return rc;
    const char *name = sl_param_str(ctx, "user_full_name");
    if (!name || !*name)
        return sl_fail(ctx, "user_full_name is empty");
    char err[1024];
    if (git_crawl_init(err, sizeof(err)) != 0)
        return sl_fail(ctx, "%s", err);
    dispatch *d = dispatch_new();
    if (!d)
        return sl_fail(ctx, "out of memory");
    for (size_t i = 0; i < sl_param_list_len(ctx, "crawlers"); i++)
        if (dispatch_add(d, sl_param_list_item(ctx, "crawlers", i), err, sizeof(err)) != 0) {
            dispatch_free(d);
            return sl_fail(ctx, "%s", err);
        }
    crawl c = {.ctx = ctx, .n = sl_param_list_len(ctx, "links")};
    split_name(&c, name);
    time_t now = time(NULL);
    struct tm utc;
    strftime(c.crawled_at, sizeof(c.crawled_at), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
    c.links = calloc(c.n ? c.n : 1, sizeof(*c.links));
    if (!c.links) {
        dispatch_free(d);
        return sl_fail(ctx, "out of memory");
    }
    for (size_t i = 0; i < c.n && rc == SL_OK; i++) {
        crawl_link *l = &c.links[i];
        l->url = sl_param_list_item(ctx, "links", i);
        size_t room = strlen(l->url) * 2 + 16; /* "=***" per short value at most */
        if (!(l->shown = malloc(room))) {
            rc = sl_fail(ctx, "out of memory");
            break;
        }
        web_redact_url(l->url, l->shown, room);
        for (size_t j = 0; j < i && rc == SL_OK; j++)
            if (strcmp(c.links[j].url, l->url) == 0)
                rc = sl_fail(ctx, "link %zu repeats link %zu: %s", i + 1, j + 1, l->shown);
        if (rc == SL_OK && dispatch_link(d, l->url, &l->where, err, sizeof(err)) != 0) {
            web_redact_text(err, sizeof(err), l->url);
            rc = sl_fail(ctx, "link %zu: %s", i + 1, err);
        }
        text_chunk_id(l->shown, strlen(l->shown), l->id);
    }
    dispatch_free(d);
    if (rc == SL_OK && c.n == 0)
        rc = sl_fail(ctx, "no links to crawl");
    if (rc == SL_OK && warehouse_open(&c.w, sl_store_dir(ctx), sl_param_str(ctx, "warehouse"), 0,
                                      err, sizeof(err)) != 0)
        rc = sl_fail(ctx, "%s", err);
    if (rc == SL_OK)
        rc = get_or_create_user(&c);
    if (rc == SL_OK)
        rc = crawl_links(&c);
    warehouse_close(c.w);
    size_t totals[4] = {0};
    for (size_t i = 0; rc == SL_OK && i < c.n; i++) {
        crawl_link *l = &c.links[i];
        totals[l->result]++;
        if (l->result == FAILED)
            sl_log(ctx, SL_LOG_WARN, "%s: %s", l->shown, l->error);
    }
    if (rc == SL_OK) {
        report_metrics(&c, totals);
        rc = write_report(&c);
        sl_log(ctx, SL_LOG_INFO, "%zu links: %zu crawled, %zu already stored, %zu failed", c.n,
               totals[CRAWLED], totals[SKIPPED], totals[FAILED]);
    }
    if (rc == SL_OK && totals[FAILED] && (totals[FAILED] == c.n || sl_param_bool(ctx, "strict")))
        rc = sl_fail(ctx, "%zu of %zu links failed (see the report)", totals[FAILED], c.n);
    free_links(&c);
    return rc;
}

static const sl_port outputs[] = {
    {"report", "report", "one JSON line per link: link, crawler, domain, status, error", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"user_full_name", SL_PARAM_STRING, NULL, "the author the documents belong to", 1},
    {"links", SL_PARAM_LIST, NULL, "web pages and git repositories (URLs or local paths)", 1},
    {"warehouse", SL_PARAM_STRING, "\"\"", "empty: the store's own warehouse; or a mongodb:// URI",
     0},
    {"crawlers", SL_PARAM_LIST, "[]",
     "extra dispatch rules DOMAIN=KIND[:PLATFORM], KIND article, post or git", 0},
    {"timeout", SL_PARAM_FLOAT, "20", "seconds allowed per web transfer", 0},
    {"retries", SL_PARAM_INT, "2", "further attempts after a timeout, refusal, 429 or 5xx", 0},
    {"retry_backoff", SL_PARAM_FLOAT, "1", "seconds before the first retry; doubles each time", 0},
    {"concurrency", SL_PARAM_INT, "4", "web transfers in flight at once", 0},
    {"max_page_bytes", SL_PARAM_INT, "10485760", "a larger page fails", 0},
    {"max_file_bytes", SL_PARAM_INT, "1048576", "larger repository files are left out", 0},
    {"robots", SL_PARAM_BOOL, "true", "honour robots.txt (for every redirect too)", 0},
    {"allow_private", SL_PARAM_BOOL, "false",
     "connect to loopback, private and link-local addresses (a local test site)", 0},
    {"allowed_hosts", SL_PARAM_LIST, "[]",
     "hosts a redirect may lead to besides the link's own (others fail the link)", 0},
    {"user_agent", SL_PARAM_STRING, "\"sluice-crawl/1.0 (LLM twin data pipeline)\"",
     "the User-Agent sent with every request", 0},
    {"strict", SL_PARAM_BOOL, "false", "fail the step when any link fails", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"crawl", "1.0", "crawl a user's links (web pages, git repositories) into the warehouse", NULL,
     outputs, params, run},
};

SL_PLUGIN_DEFINE("crawl", "1.0", steps, NULL, NULL)
