/* The crawl step end to end: the real sluice binary crawling the demo site
 * (pipelines/demo/site, served on loopback by scripts/demo-serve, with its
 * redirects, 404s, slow, flaky, oversized, non-HTML and robots-forbidden
 * pages) and a git repository made by scripts/demo-repo, into the
 * warehouse. */
#include <bson/bson.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "runner.h"
#include "serve.h"

static pid_t server;
static char base[64]; /* http://127.0.0.1:PORT */
static char articles[8][128];
static size_t n_articles;

static void list_articles(void) {
    DIR *d = opendir(SLUICE_SOURCE_DIR "/pipelines/demo/site/articles");
    cr_assert_not_null(d);
    struct dirent *e;
    n_articles = 0;
    while ((e = readdir(d)) && n_articles < 8) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".html") == 0 &&
            strcmp(e->d_name, "index.html") != 0)
            snprintf(articles[n_articles++], sizeof(articles[0]), "%s", e->d_name);
    }
    closedir(d);
    cr_assert_geq(n_articles, 3, "the demo site has its articles");
    qsort(articles, n_articles, sizeof(articles[0]), (int (*)(const void *, const void *))strcmp);
}

static void setup(void) {
    test_dir_setup();
    list_articles();
    char port_file[128];
    snprintf(port_file, sizeof(port_file), "%s/port", test_dir);
    int port;
    server = demo_serve(NULL, port_file, &port);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), SLUICE_SOURCE_DIR "/scripts/demo-repo %s/repo >/dev/null", test_dir);
    cr_assert_eq(system(cmd), 0, "the demo repository was made");
}

static void teardown(void) {
    local_server_stop(&server);
    test_dir_teardown();
}

TestSuite(crawl, .init = setup, .fini = teardown, .timeout = 120);

typedef struct expect {
    /* %s: the server; after a "DIR:" prefix, the test's folder instead */
    const char *link_fmt;
    const char *status;
    const char *error; /* a part of the error, for failures */
} expect;

/* Writes the pipeline crawling every link of ex, then runs it. */
static result crawl_links(const expect *ex, size_t n, const char *extra) {
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    fprintf(f,
            "version: 1\npipeline: crawl_demo\nsteps:\n  crawl:\n    uses: crawl\n"
            "    cache: false\n    with:\n      user_full_name: Ada Lovelace\n"
            "      timeout: 1\n      retries: 2\n      retry_backoff: 0.05\n"
            "      max_page_bytes: 1000000\n%s%s      links:\n",
            strstr(extra, "allow_private") ? "" : "      allow_private: true\n", extra);
    for (size_t i = 0; i < n; i++) {
        fputs("        - \"", f);
        int local = strncmp(ex[i].link_fmt, "DIR:", 4) == 0;
        fprintf(f, ex[i].link_fmt + (local ? 4 : 0), local ? test_dir : base);
        fputs("\"\n", f);
    }
    fclose(f);
    char *path = write_test_file(test_dir, "crawl.yaml", yaml);
    free(yaml);
    return RUN_PIPELINE(path);
}

/* The report of the latest crawl, checked line by line against ex. */
static void check_report(const expect *ex, size_t n, const char *first_status) {
    result cat = {0, last_output("report"), NULL};
    char *line = cat.out;
    for (size_t i = 0; i < n; i++) {
        cr_assert_not_null(line, "a report line for link %zu", i + 1);
        char *end = strchr(line, '\n');
        cr_assert_not_null(end);
        bson_error_t e;
        bson_t *rec = bson_new_from_json((const uint8_t *)line, end - line, &e);
        cr_assert_not_null(rec, "%s", e.message);
        bson_iter_t it;
        cr_assert(bson_iter_init_find(&it, rec, "status"));
        const char *status = bson_iter_utf8(&it, NULL);
        const char *want = i == 0 && first_status ? first_status : ex[i].status;
        cr_expect_str_eq(status, want, "link %zu (%s): %.*s", i + 1, ex[i].link_fmt,
                         (int)(end - line), line);
        if (ex[i].error && strcmp(want, "failed") == 0) {
            cr_assert(bson_iter_init_find(&it, rec, "error"), "%.*s", (int)(end - line), line);
            cr_expect(strstr(bson_iter_utf8(&it, NULL), ex[i].error), "link %zu: %s, not '%s'",
                      i + 1, bson_iter_utf8(&it, NULL), ex[i].error);
        }
        bson_destroy(rec);
        line = end + 1;
    }
    cr_expect_eq(*line, '\0', "one report line per link");
    result_free(&cat);
}

/* The warehouse's export, as one string per collection file. */
static char *exported(const char *file) {
    char dir[128], path[256];
    snprintf(dir, sizeof(dir), "%s/export", test_dir);
    result r = RUN(test_store_arg, "warehouse", "export", dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    char *text = slurp(path);
    cr_assert_not_null(text);
    return text;
}

Test(crawl, the_demo_site_and_repository_into_the_warehouse_with_each_failure_reported) {
    char a0[160], a1[160], redirect[200], flaky[200], slow[200];
    snprintf(a0, sizeof(a0), "%%s/articles/%s", articles[0]);
    snprintf(a1, sizeof(a1), "%%s/articles/%s", articles[1]);
    snprintf(redirect, sizeof(redirect), "%%s/redirect/articles/%s", articles[2]);
    snprintf(flaky, sizeof(flaky), "%%s/flaky/k%d/2/articles/%s", (int)getpid(), articles[1]);
    snprintf(slow, sizeof(slow), "%%s/slow/5/articles/%s", articles[0]);
    expect ex[] = {
        {a0, "crawled", NULL},
        {a1, "crawled", NULL},
        {redirect, "crawled", NULL},
        {flaky, "crawled", NULL},
        {"DIR:%s/repo", "crawled", NULL},
        {"DIR:file://%s/repo", "crawled", NULL},
        {"%s/missing.html", "failed", "HTTP 404"},
        {"%s/private/secret.html", "failed", "disallowed by"},
        {"%s/files/dataset.bin", "failed", "not an HTML page"},
        {"%s/big/2000", "failed", "larger than the 1000000-byte limit"},
        {"%s/redirect-loop", "failed", "redirects"},
        {slow, "failed", "timed out after 1000 ms"},
        {"DIR:%s/no-such-repo", "failed", "no-such-repo"},
    };
    size_t n = sizeof(ex) / sizeof(ex[0]);
    double t0 = now_seconds();
    result r = crawl_links(ex, n, "");
    cr_assert_eq(r.status, 0, "one bad link does not fail the crawl: %s%s", r.out, r.err);
    cr_log_info("crawl of %zu links: %.2f s", n, now_seconds() - t0);
    result_free(&r);
    check_report(ex, n, NULL);

    char *arts = exported("ArticleDocument.json");
    cr_expect_eq(count(arts, "\"link\" : "), 4, "%s", arts);
    cr_expect_eq(count(arts, "SHOULD_NOT_APPEAR"), 0, "no script, style, nav or footer text");
    cr_expect_eq(count(arts, "\"author_full_name\" : \"Ada Lovelace\""), 4);
    cr_expect_eq(count(arts, "\"Title\" : \"\""), 0, "every article has a title");
    cr_expect_eq(count(arts, "\"crawled_at\" : \"20"), 4, "every document says when");
    free(arts);
    char *repos = exported("RepositoryDocument.json");
    cr_expect_eq(count(repos, "\"link\" : "), 2);
    cr_expect_eq(count(repos, "\"README.md\" : "), 2);
    cr_expect_eq(count(repos, "\"src/notes.c\" : "), 2);
    cr_expect_eq(count(repos, "package-lock.json"), 0, "lock files are left out");
    cr_expect_eq(count(repos, "Cargo.lock"), 0);
    cr_expect_eq(count(repos, "logo.png"), 0, "images are left out");
    cr_expect_eq(count(repos, "blob.bin"), 0, "binaries are left out");
    cr_expect_eq(count(repos, "huge.txt"), 0, "files over the size limit are left out");
    free(repos);
    char *users = exported("UserDocument.json");
    cr_expect_eq(count(users, "\"first_name\" : \"Ada\", \"last_name\" : \"Lovelace\""), 1, "%s",
                 users);
    free(users);

    /* Metrics per domain and in all. */
    r = RUN(test_store_arg, "runs", "show", last_run, "--json");
    cr_expect(strstr(r.out, "\"key\" : \"failed.127.0.0.1\", \"value\" : 6.0"), "%.300s",
              strstr(r.out, "metrics"));
    cr_expect(strstr(r.out, "\"key\" : \"crawled.127.0.0.1\", \"value\" : 4.0"));
    cr_expect(strstr(r.out, "\"key\" : \"crawled.local\", \"value\" : 2.0"));
    cr_expect(strstr(r.out, "\"key\" : \"failed.local\", \"value\" : 1.0"));
    result_free(&r);

    /* Again: what is stored is skipped, what failed is tried again. */
    expect_success(crawl_links(ex, n, ""));
    for (size_t i = 0; i < n; i++)
        if (strcmp(ex[i].status, "crawled") == 0)
            ex[i].status = "skipped";
    check_report(ex, n, NULL);
    arts = exported("ArticleDocument.json");
    cr_expect_eq(count(arts, "\"link\" : "), 4, "nothing stored twice");
    free(arts);
}

Test(crawl, a_crawl_where_every_link_fails_fails_and_names_them) {
    expect ex[] = {
        {"%s/missing.html", "failed", "HTTP 404"},
        {"%s/private/secret.html", "failed", "disallowed"},
    };
    result r = crawl_links(ex, 2, "");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.err, "2 of 2 links failed") || strstr(r.out, "2 of 2 links failed"), "%s%s",
              r.out, r.err);
    result_free(&r);
    /* strict: one failure is enough. */
    char a0[160];
    snprintf(a0, sizeof(a0), "%%s/articles/%s", articles[0]);
    expect one_bad[] = {{a0, "crawled", NULL}, {"%s/missing.html", "failed", "HTTP 404"}};
    r = crawl_links(one_bad, 2, "      strict: true\n");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    result_free(&r);
}

Test(crawl, robots_can_be_ignored_and_rules_added_by_the_pipeline) {
    expect ex[] = {{"%s/private/secret.html", "crawled", NULL}};
    result r = crawl_links(ex, 1, "      robots: false\n");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    check_report(ex, 1, NULL);
    /* The pipeline's rule sends 127.0.0.1 to the post crawler. */
    char a0[160];
    snprintf(a0, sizeof(a0), "%%s/articles/%s", articles[0]);
    expect post[] = {{a0, "crawled", NULL}};
    r = crawl_links(post, 1, "      crawlers: [\"127.0.0.1=post:blog\"]\n");
    cr_expect_eq(r.status, 0, "%s%s", r.out, r.err);
    result_free(&r);
    char *posts = exported("PostDocument.json");
    cr_expect_eq(count(posts, "\"platform\" : \"blog\""), 1, "%s", posts);
    free(posts);
    /* A bad rule is a clear failure naming it. */
    r = crawl_links(post, 1, "      crawlers: [\"127.0.0.1=ftp\"]\n");
    cr_expect_eq(r.status, 1);
    cr_expect(strstr(r.out, "no crawler 'ftp'") || strstr(r.err, "no crawler 'ftp'"), "%s%s", r.out,
              r.err);
    result_free(&r);
}

/* Redirects are followed one hop at a time: each is checked against the
 * robots.txt of where it leads, and may lead only to the link's own host or
 * an allowed one; a site on a private address needs allow_private. */
Test(crawl, redirects_are_checked_hop_by_hop_and_private_addresses_need_allowing) {
    char a0[160], other[400], port[16];
    snprintf(a0, sizeof(a0), "%%s/articles/%s", articles[0]);
    snprintf(port, sizeof(port), "%s", strrchr(base, ':') + 1);
    snprintf(other, sizeof(other),
             "%%s/redirect-to/http%%%%3A%%%%2F%%%%2Flocalhost%%%%3A%s%%%%2Farticles%%%%2F%s", port,
             articles[1]);
    expect ex[] = {
        {"%s/redirect/private/secret.html", "failed", "/private/secret.html: disallowed by"},
        {"%s/redirect-chain/2/private/secret.html", "failed", "disallowed by"},
        {other, "failed", "redirected to another host, localhost (add it to allowed_hosts"},
        {"%s/huge-header/1024", "failed", "the response's headers are too large"},
        {"%s/huge-header/300", "failed", "the response's headers are too large"},
        {a0, "crawled", NULL},
    };
    size_t n = sizeof(ex) / sizeof(ex[0]);
    expect_success(crawl_links(ex, n, ""));
    check_report(ex, n, NULL);

    /* The other host once allowed. */
    expect allowed[] = {{other, "crawled", NULL}};
    expect_success(crawl_links(allowed, 1, "      allowed_hosts: [localhost]\n"));
    check_report(allowed, 1, NULL);

    /* Loopback without allow_private: refused, not retried. */
    char a2[160];
    snprintf(a2, sizeof(a2), "%%s/articles/%s", articles[2]);
    expect refused[] = {{a2, "failed", "refused to connect to 127.0.0.1, a loopback address"}};
    result r = crawl_links(refused, 1, "      allow_private: false\n      robots: false\n");
    cr_expect_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "refused to connect to 127.0.0.1, a loopback address (set "
                            "allow_private: true to crawl it)") != NULL,
              "%s", r.out);
    result_free(&r);
}

/* A credential in a link's query is masked wherever the link is shown. */
Test(crawl, secrets_in_a_links_query_are_masked_in_the_report_and_the_warehouse) {
    char link[200];
    snprintf(link, sizeof(link), "%%s/articles/%s?api_key=S3cretValue&page=2", articles[0]);
    expect ex[] = {{link, "crawled", NULL},
                   {"DIR:file://%s/no-such-repo.git?token=S3cretValue", "failed",
                    "no-such-repo.git?token=***"}};
    result r = crawl_links(ex, 2, "");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect(strstr(r.out, "S3cretValue") == NULL && strstr(r.err, "S3cretValue") == NULL);
    result_free(&r);
    char *report = last_output("report");
    cr_expect(strstr(report, "?api_key=***&page=2") != NULL, "%s", report);
    check_report(ex, 2, NULL);
    cr_expect(strstr(report, "S3cretValue") == NULL, "%s", report);
    free(report);
    char *arts = exported("ArticleDocument.json");
    cr_expect(strstr(arts, "?api_key=***&page=2\"") != NULL, "%s", arts);
    cr_expect(strstr(arts, "S3cretValue") == NULL);
    free(arts);
}

/* A free loopback port (bound, then released). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The README's first command run twice gives the same warehouse: the demo
 * site's port, part of every link, does not change between runs. */
Test(crawl, scripts_demo_etl_twice_stores_each_document_once) {
    char home[160], port[48], bin[160];
    snprintf(home, sizeof(home), "SLUICE_HOME=%s/store", test_dir);
    snprintf(port, sizeof(port), "SLUICE_DEMO_PORT=%d", free_port());
    snprintf(bin, sizeof(bin), "SLUICE=%s", SLUICE_BIN);
    run_env[1] = home;
    run_env[2] = port;
    run_env[3] = bin;
    run_env[4] = NULL;
    for (int i = 0; i < 2; i++) {
        result r = run_in(NULL, NULL, (char *[]){SLUICE_SOURCE_DIR "/scripts/demo-etl", NULL});
        cr_assert_eq(r.status, 0, "run %d: %s%s", i + 1, r.out, r.err);
        result_free(&r);
    }
    char *arts = exported("ArticleDocument.json");
    cr_expect_eq(count(arts, "\"link\" : "), 6, "each article once: %s", arts);
    free(arts);
    char *repos = exported("RepositoryDocument.json");
    cr_expect_eq(count(repos, "\"link\" : "), 1, "the repository once");
    free(repos);
}

Test(crawl, the_shipped_etl_pipeline_then_clean_and_chunk_on_the_demo_data) {
    char site[128], repo[128];
    snprintf(site, sizeof(site), "SLUICE_DEMO_SITE=%s", base);
    snprintf(repo, sizeof(repo), "SLUICE_DEMO_REPO=%s/repo", test_dir);
    run_env[1] = site;
    run_env[2] = repo;
    run_env[3] = NULL;
    expect_success(RUN_PIPELINE(SLUICE_SOURCE_DIR "/pipelines/digital_data_etl.yaml"));
    char *report = last_output("report");
    cr_expect_eq(count(report, "\"status\" : \"crawled\""), 7, "%s", report);
    free(report);

    expect_success(RUN_PIPELINE(SLUICE_SOURCE_DIR "/pipelines/examples/twin_chunks.yaml", "-p",
                                "author_full_names=[Paul Iusztin]"));
    char *chunks = last_output("chunks");
    size_t n = count(chunks, "\n");
    cr_expect_geq(n, 7, "at least a chunk per document: %zu", n);
    cr_expect_geq(count(chunks, "\"category\" : \"articles\""), 6);
    cr_expect_geq(count(chunks, "\"category\" : \"repositories\""), 1);
    cr_expect_eq(count(chunks, "SHOULD_NOT_APPEAR"), 0);
    free(chunks);

    /* The feature pipeline on what was crawled: the demo's judged queries
     * all find their article, and a search from the command line too. */
    expect_success(RUN_PIPELINE(SLUICE_SOURCE_DIR "/pipelines/feature_engineering.yaml"));
    char *metrics = last_output("metrics");
    cr_expect(strstr(metrics, "\"queries\" : 8,") && strstr(metrics, "\"recall@5\" : 1.0,"), "%s",
              metrics);
    free(metrics);
    result r = RUN(test_store_arg, "search", "index",
                   "Kahn's algorithm: a ready queue and a pool of workers", "-k", "1");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, " 1. ") && strstr(r.out, "/articles/scheduling-dags.html\n"), "%s",
              r.out);
    result_free(&r);
}
