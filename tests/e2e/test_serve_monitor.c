/* test_serve_monitor.c - watching `sluice serve` end to end: its prompt
 * traces in the store read back through `sluice traces` (in order, with
 * the token counts and statuses the answers gave, the prompt and answer
 * whole, an API key never written, the retention bound held, a record cut
 * short by a crash skipped), and its /metrics scraped by a real Prometheus
 * (Debian's) whose query API gives back the requests the test made. */
#include <bson/bson.h>
#include <dirent.h>

#include "require.h"
#include "serve_fixture.h"

TestSuite(serve_monitor, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

static const char key[] = "sk-trace-test-0123456789abcdef";

/* POSTs body to path with the test's key; the answer whole in out. */
static int post_keyed(int port, const char *path, const char *body, char *out, size_t size) {
    char req[8192];
    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, key, strlen(body), body);
    exchange(port, req, out, size);
    return status_of(out);
}

/* A JSON document: the body of an HTTP answer, or a command's output. */
static bson_t *json_of(const char *text) {
    const char *body = strstr(text, "\r\n\r\n");
    body = body ? body + 4 : text;
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)body, -1, &e);
    cr_assert_not_null(doc, "not JSON (%s): %s", e.message, body);
    return doc;
}

static long long int_at(const bson_t *doc, const char *dotted) {
    bson_iter_t it, v;
    cr_assert(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, dotted, &v), "no %s",
              dotted);
    return bson_iter_as_int64(&v);
}

static const char *str_at(const bson_t *doc, const char *dotted) {
    bson_iter_t it, v;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, dotted, &v) ||
        !BSON_ITER_HOLDS_UTF8(&v))
        return NULL;
    return bson_iter_utf8(&v, NULL);
}

/* `sluice traces list --json` of the test's store, at most limit. */
static bson_t *traces_list(const char *limit) {
    result r = RUN(test_store_arg, "traces", "list", "--json", "--limit", (char *)limit);
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_expect_str_eq(r.err, "", "nothing to warn about");
    bson_t *doc = json_of(r.out);
    result_free(&r);
    return doc;
}

static int traces_count(const bson_t *list) {
    bson_iter_t it, a;
    cr_assert(bson_iter_init_find(&it, list, "traces") && bson_iter_recurse(&it, &a));
    int n = 0;
    while (bson_iter_next(&a))
        n++;
    return n;
}

/* Every byte of the store's trace segments, joined; *files says how many. */
static char *trace_files(int *files) {
    char dir[160];
    snprintf(dir, sizeof(dir), "%s/store/traces", test_dir);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no %s", dir);
    char *all = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&all, &len);
    struct dirent *de;
    *files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        char *text = slurp(path);
        cr_assert_not_null(text);
        fputs(text, m);
        free(text);
        (*files)++;
    }
    closedir(d);
    fclose(m);
    return all;
}

/* n completions of one token, the prompts made by printf(prompt, i);
 * each must answer 200. */
static void completions(int port, const char *prompt, int n) {
    for (int i = 0; i < n; i++) {
        char text[64], body[160], req[512], out[16384];
        snprintf(text, sizeof(text), prompt, i);
        snprintf(body, sizeof(body), "{\"prompt\": \"%s\", \"max_tokens\": 1}", text);
        post(req, sizeof(req), "/v1/completions", body);
        exchange(port, req, out, sizeof(out));
        cr_assert_eq(status_of(out), 200, "%s", out);
    }
}

Test(serve_monitor, traces_record_each_generation_request) {
    make_model();
    char keys[160], out[65536];
    snprintf(keys, sizeof(keys), "%s/keys", test_dir);
    FILE *f = fopen(keys, "w");
    fprintf(f, "%s\n", key);
    fclose(f);
    int port;
    pid_t pid = start_serve((const char *[]){"--api-key-file", keys, NULL}, 1, &port);

    /* 1: a whole completion */
    cr_assert_eq(
        post_keyed(port, "/v1/completions",
                   "{\"prompt\": \"A pipeline is\", \"max_tokens\": 6, \"temperature\": 0}", out,
                   sizeof(out)),
        200, "%s", out);
    bson_t *a1 = json_of(out);
    /* 2: a streamed chat, its usage asked for */
    cr_assert_eq(
        post_keyed(port, "/v1/chat/completions",
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"What is a store?\"}], "
                   "\"max_tokens\": 4, \"stream\": true, \"seed\": 3, "
                   "\"stream_options\": {\"include_usage\": true}}",
                   out, sizeof(out)),
        200, "%s", out);
    cr_assert(strstr(out, "data: [DONE]"), "%s", out);
    const char *usage = strstr(out, "\"usage\"");
    cr_assert_not_null(usage, "%s", out);
    long p2 = strtol(strstr(usage, "\"prompt_tokens\": ") + 17, NULL, 10);
    long c2 = strtol(strstr(usage, "\"completion_tokens\": ") + 21, NULL, 10);
    /* 3: malformed JSON */
    cr_assert_eq(post_keyed(port, "/v1/completions", "{\"prompt\": ", out, sizeof(out)), 400);
    /* 4: a prompt holding the server's key: traced with the key blanked out */
    char body[256];
    snprintf(body, sizeof(body), "{\"prompt\": \"my key is %s, keep it\", \"max_tokens\": 2}", key);
    cr_assert_eq(post_keyed(port, "/v1/completions", body, out, sizeof(out)), 200, "%s", out);
    bson_t *a4 = json_of(out);
    /* not traced: a request without a key, another route */
    char req[512];
    post(req, sizeof(req), "/v1/completions", "{\"prompt\": \"x\"}");
    exchange(port, req, out, sizeof(out));
    cr_assert_eq(status_of(out), 401);
    cr_assert_eq(health(port), 200);
    cr_assert_eq(stop_serve(pid), 0, "%s", server_log());

    /* newest first */
    bson_t *list = traces_list("100");
    cr_assert_eq(traces_count(list), 4);
    cr_expect_eq(int_at(list, "traces.0.status"), 200);
    cr_expect_eq(int_at(list, "traces.1.status"), 400);
    cr_expect_eq(int_at(list, "traces.2.status"), 200);
    cr_expect_eq(int_at(list, "traces.3.status"), 200);
    cr_expect_str_eq(str_at(list, "traces.2.route"), "/v1/chat/completions");
    cr_expect_str_eq(str_at(list, "traces.3.route"), "/v1/completions");
    cr_expect_eq(int_at(list, "traces.3.prompt_tokens"), int_at(a1, "usage.prompt_tokens"));
    cr_expect_eq(int_at(list, "traces.3.completion_tokens"), int_at(a1, "usage.completion_tokens"));
    cr_expect_eq(int_at(list, "traces.2.prompt_tokens"), p2);
    cr_expect_eq(int_at(list, "traces.2.completion_tokens"), c2);
    cr_expect_eq(int_at(list, "traces.0.completion_tokens"), int_at(a4, "usage.completion_tokens"));
    cr_expect_str_eq(str_at(list, "traces.0.model"), "tiny");
    cr_expect_str_eq(str_at(list, "traces.3.finish_reason"), "length");
    cr_expect(strstr(str_at(list, "traces.1.error"), "JSON") != NULL, "%s",
              str_at(list, "traces.1.error"));
    cr_expect(strstr(str_at(list, "traces.0.prompt"), "my key is ***, keep it") != NULL, "%s",
              str_at(list, "traces.0.prompt"));
    /* the stream's pieces joined are its answer; the chat template applied */
    cr_expect(strstr(str_at(list, "traces.2.prompt"), "What is a store?") != NULL);
    cr_expect_gt(strlen(str_at(list, "traces.2.answer")), 0);

    /* show: the prompt and the answer whole */
    char id[32];
    snprintf(id, sizeof(id), "%s", str_at(list, "traces.3.id"));
    result r = RUN(test_store_arg, "traces", "show", id);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, "    A pipeline is\n"), "%s", r.out);
    char answer[1024];
    snprintf(answer, sizeof(answer), "answer:\n    %s", str_at(a1, "choices.0.text"));
    cr_expect(strstr(r.out, answer), "no '%s' in %s", answer, r.out);
    cr_expect(strstr(r.out, "/v1/completions"));
    result_free(&r);
    r = RUN(test_store_arg, "--json", "traces", "show", id);
    cr_assert_eq(r.status, 0, "%s", r.err);
    bson_t *one = json_of(r.out);
    cr_expect_str_eq(str_at(one, "answer"), str_at(a1, "choices.0.text"));
    cr_expect_str_eq(str_at(one, "prompt"), "A pipeline is");
    result_free(&r);
    bson_destroy(one);

    /* the key is in no trace file, nor the header's name */
    int files;
    char *all = trace_files(&files);
    cr_expect_gt(files, 0);
    cr_expect_null(strstr(all, key), "the API key was written to a trace");
    cr_expect_null(strstr(all, "Bearer"));
    cr_expect_null(strstr(all, "uthorization"));
    free(all);

    /* --since and --limit */
    r = RUN(test_store_arg, "traces", "list", "--since", "1h");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "/v1/"), 4, "%s", r.out);
    result_free(&r);
    r = RUN(test_store_arg, "traces", "list", "--since", "2999-01-01");
    cr_expect_eq(r.status, 0, "%s", r.err);
    cr_expect_eq(count(r.out, "/v1/"), 0, "%s", r.out);
    result_free(&r);
    bson_t *two = traces_list("2");
    cr_expect_eq(traces_count(two), 2);
    cr_expect_str_eq(str_at(two, "traces.1.id"), str_at(list, "traces.1.id"));
    bson_destroy(two);

    /* bad input */
    r = RUN(test_store_arg, "traces", "show", "0123456789abcdef");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "no trace '0123456789abcdef'"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "traces", "show", "zz");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "not a trace id"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "traces", "list", "--since", "yesterday");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--since 'yesterday'"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "traces", "list", "--since", "2026-02-30");
    cr_expect_eq(r.status, 2, "February has no 30th");
    result_free(&r);
    bson_destroy(list);
    bson_destroy(a1);
    bson_destroy(a4);
}

/* Many requests through a small retention: the oldest segments go whole,
 * never more than the bound is kept, the newest record is always there. */
Test(serve_monitor, retention_bounds_what_is_kept) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--trace-retention", "8", NULL}, 1, &port);
    completions(port, "request %d", 30);
    cr_assert_eq(stop_serve(pid), 0);
    bson_t *list = traces_list("1000");
    int n = traces_count(list);
    /* segments of 2 records; the oldest goes when a 9th comes */
    cr_expect(n >= 6 && n <= 8, "%d traces kept", n);
    cr_expect_str_eq(str_at(list, "traces.0.prompt"), "request 29");
    bson_destroy(list);
    int files;
    free(trace_files(&files));
    cr_expect_leq(files, 5);

    /* by bytes: every record is some 600 bytes, so 4 KB keeps a few */
    char dir[160], cmd[256];
    snprintf(dir, sizeof(dir), "%s/store/traces", test_dir);
    snprintf(cmd, sizeof(cmd), "rm -r '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    pid = start_serve((const char *[]){"--trace-retention", "4KB", NULL}, 1, &port);
    completions(port, "request %d", 30);
    cr_assert_eq(stop_serve(pid), 0);
    char *all = trace_files(&files);
    cr_expect_leq(strlen(all), 4000);
    cr_expect_geq(count(all, "\n"), 2);
    free(all);
    list = traces_list("1000");
    cr_expect_str_eq(str_at(list, "traces.0.prompt"), "request 29");
    bson_destroy(list);

    /* --no-traces writes nothing */
    cr_assert_eq(system(cmd), 0);
    pid = start_serve((const char *[]){"--no-traces", NULL}, 1, &port);
    completions(port, "x", 1);
    cr_assert_eq(stop_serve(pid), 0);
    struct stat st;
    cr_expect_neq(stat(dir, &st), 0, "--no-traces made %s", dir);

    result r = RUN("serve", "--model", model_dir, "--trace-retention", "5,6");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--trace-retention '5,6'"), "%s", r.err);
    result_free(&r);
}

/* A server killed while writing leaves a last line cut short: it is no
 * record, the others read as before, and the next server writes on. */
Test(serve_monitor, a_record_cut_short_is_skipped) {
    make_model();
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    completions(port, "A", 3);
    cr_assert_eq(stop_serve(pid), 0);
    char seg[256];
    snprintf(seg, sizeof(seg), "%s/store/traces/0000000001.jsonl", test_dir);
    FILE *f = fopen(seg, "a");
    cr_assert_not_null(f);
    fputs("{\"id\": \"0000000000000000\", \"time\": \"2026-12-06T", f);
    fclose(f);
    bson_t *list = traces_list("100"); /* and no warning */
    cr_expect_eq(traces_count(list), 3);
    bson_destroy(list);

    pid = start_serve(NULL, 1, &port);
    completions(port, "B", 1);
    cr_assert_eq(stop_serve(pid), 0);
    list = traces_list("100");
    cr_expect_eq(traces_count(list), 4);
    cr_expect_str_eq(str_at(list, "traces.0.prompt"), "B");
    bson_destroy(list);

    /* a whole line that is no record: skipped with a warning naming it */
    f = fopen(seg, "a");
    fputs("\nnot json\n", f);
    fclose(f);
    result r = RUN(test_store_arg, "traces", "list");
    cr_expect_eq(r.status, 0);
    cr_expect_eq(count(r.out, "/v1/completions"), 4, "%s", r.out);
    cr_expect(strstr(r.err, "0000000001.jsonl line 5 is not a trace record"), "%s", r.err);
    result_free(&r);
}

/* ---- Prometheus ---- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The value Prometheus's query API gives for query (URL-encoded), or -1
 * while it has none (not scraped yet, not up yet). */
static double prometheus_value(int port, const char *query) {
    char req[1024], out[65536];
    snprintf(req, sizeof(req),
             "GET /api/v1/query?query=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             query);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    send_all(fd, req, strlen(req));
    read_all(fd, out, sizeof(out));
    close(fd);
    const char *v = strstr(out, "\"value\":[");
    v = v ? strstr(v, ",\"") : NULL;
    return v ? strtod(v + 2, NULL) : -1;
}

Test(serve_monitor, prometheus_scrapes_the_metrics) {
    const char *prometheus = "/usr/bin/prometheus";
    if (access(prometheus, X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no %s (Debian's prometheus package)", prometheus);
    make_model();
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    int made = 3;
    completions(port, "A", made);

    char conf[160], data[160], log[160], listen[64];
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", test_dir);
    snprintf(data, sizeof(data), "%s/prometheus-data", test_dir);
    snprintf(log, sizeof(log), "%s/prometheus.log", test_dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n"
            "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
            port);
    fclose(f);
    int pport = free_port();
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", pport);
    char conf_arg[200], data_arg[200];
    snprintf(conf_arg, sizeof(conf_arg), "--config.file=%s", conf);
    snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", data);
    pid_t prom = fork();
    cr_assert_geq(prom, 0);
    if (prom == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(prometheus, "prometheus", conf_arg, data_arg, listen, (char *)NULL);
        _exit(127);
    }
    /* the series back through Prometheus: poll until a scrape has it (a
     * bound on the wait, so that a Prometheus that never scrapes fails
     * the test with its log rather than hanging it) */
    const char *query = "sluice_serve_requests_total%7Broute%3D%22%2Fv1%2Fcompletions%22%2C"
                        "status%3D%22200%22%7D";
    double value = -1;
    for (int i = 0; i < 1200 && value < 0; i++) {
        int ws;
        if (waitpid(prom, &ws, WNOHANG) == prom) {
            char *text = slurp(log);
            cr_assert_fail("prometheus exited: %s", text ? text : "");
        }
        value = prometheus_value(pport, query);
        if (value < 0)
            nanosleep(&(struct timespec){0, 100000000L}, NULL);
    }
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
    char *text = slurp(log);
    cr_assert_geq(value, 0, "Prometheus never had the series; its log:\n%s", text ? text : "");
    free(text);
    cr_expect_eq(value, made);
    /* and what it read is what the server says */
    cr_expect_eq(
        metric(port, "sluice_serve_requests_total{route=\"/v1/completions\",status=\"200\"}"),
        made);
    cr_expect_eq(stop_serve(pid), 0);
}
