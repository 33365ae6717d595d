/* test_serve.c - `sluice serve` end to end: the real binary serving a small
 * random GPT-2 (made here with the model and tokenizer libraries), talked
 * to by real clients (Python's urllib, the official openai npm package)
 * and by raw sockets doing what a hostile or careless client does:
 * malformed requests, bodies and heads over the limits, idle connections
 * beyond the cap, a slowloris, a client leaving mid-stream. After each the
 * server still answers /health. Also: 503 while the model loads, 429 when
 * the queue is full, and SIGTERM letting a stream finish before exit 0. */
#include <pthread.h>
#include <stdatomic.h>

#include "embedder.h"
#include "require.h"
#include "retriever.h"
#include "serve_fixture.h"

TestSuite(serve, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

/* ---- real clients ---- */

Test(serve, python_urllib_client) {
    make_model();
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    result r = run_in(
        NULL, NULL,
        (char *[]){TEST_PYTHON, SLUICE_SOURCE_DIR "/tests/serve/urllib_client.py", url, NULL});
    cr_expect_eq(r.status, 0, "%s%s\nserver:\n%s", r.out, r.err, server_log());
    cr_expect_str_eq(r.out, "ok\n");
    result_free(&r);
    cr_expect_eq(stop_serve(pid), 0);
}

Test(serve, python_urllib_client_with_api_keys) {
    make_model();
    char *keys = write_test_file(test_dir, "keys", "# the team's keys\nsk-first\nsk-second\n");
    int port;
    pid_t pid = start_serve((const char *[]){"--api-key-file", keys, NULL}, 1, &port);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    result r = run_in(NULL, NULL,
                      (char *[]){TEST_PYTHON, SLUICE_SOURCE_DIR "/tests/serve/urllib_client.py",
                                 url, "sk-second", NULL});
    cr_expect_eq(r.status, 0, "%s%s\nserver:\n%s", r.out, r.err, server_log());
    result_free(&r);
    cr_expect_eq(stop_serve(pid), 0);
}

Test(serve, official_openai_npm_client) {
    if (system("node --version >/dev/null 2>&1") != 0 ||
        access(SLUICE_SOURCE_DIR "/tests/node_modules/openai/package.json", R_OK) != 0)
        SKIP_UNLESS_REQUIRED("node or the openai package (npm ci in tests/) is missing");
    make_model();
    char *keys = write_test_file(test_dir, "keys", "sk-test\n");
    int port;
    pid_t pid = start_serve((const char *[]){"--api-key-file", keys, NULL}, 1, &port);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
    result r = run_in(NULL, NULL,
                      (char *[]){"/usr/bin/env", "node",
                                 SLUICE_SOURCE_DIR "/tests/serve/openai_client.mjs", url, "sk-test",
                                 NULL});
    cr_expect_eq(r.status, 0, "%s%s\nserver:\n%s", r.out, r.err, server_log());
    cr_expect_str_eq(r.out, "ok\n");
    result_free(&r);
    cr_expect_eq(stop_serve(pid), 0);
}

/* ---- the index: /v1/embeddings and /rag ---- */

#define HANDBOOK SLUICE_SOURCE_DIR "/../shared/handbook/data_warehouse_raw_data"

static char index_folder[512];

/* The Handbook's articles through a small real feature pipeline (warehouse
 * query, clean, chunks of 200 to 400 code points so that three fit the
 * test model's context, the built-in embedder, index), the index's folder
 * in index_folder. */
static void make_index(void) {
    if (access(HANDBOOK, R_OK) != 0)
        SKIP_UNLESS_REQUIRED("needs ../shared/handbook");
    expect_success(RUN(test_store_arg, "warehouse", "import", HANDBOOK));
    char *p = write_test_file(
        test_dir, "features.yaml",
        "pipeline: small_features\n"
        "steps:\n"
        "  query: {uses: warehouse_query, with: {authors: [Maxime Labonne, Paul Iusztin]}}\n"
        "  clean: {uses: clean, inputs: {documents: query.documents}}\n"
        "  chunk:\n"
        "    uses: chunk\n"
        "    inputs: {documents: clean.documents}\n"
        "    with: {min_length: 200, max_length: 400}\n"
        "  embed: {uses: embed, inputs: {chunks: chunk.chunks}}\n"
        "  index:\n"
        "    uses: index\n"
        "    inputs: {embeddings: embed.embeddings, chunks: chunk.chunks, model: embed.model}\n");
    expect_success(RUN_PIPELINE(p));
    result r = RUN(test_store_arg, "artifacts", "path", "--type", "index", "index");
    cr_assert_eq(r.status, 0, "%s", r.err);
    snprintf(index_folder, sizeof(index_folder), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    result_free(&r);
}

static void write_floats(FILE *f, const float *v, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%.9g", i ? ", " : "", (double)v[i]);
    fputc(']', f);
}

static const char rag_query[] = "How does GPTQ quantize a model to 4 bits?";

/* What the clients compare the server's answers with, as JSON in
 * test_dir/expected.json: texts and their vectors as the index's own model
 * embeds them (the embedder library, in this process), a chunk's text and
 * its vector as the index holds it, and `sluice search`'s chunk ids for
 * rag_query. Returns the file's path. */
static const char *write_expected(void) {
    static char path[200];
    char err[512];
    retriever *rt;
    cr_assert_eq(retriever_open(index_folder, &rt, err, sizeof(err)), 0, "%s", err);
    const embedder *e = retriever_embedder(rt);
    size_t dim = embedder_dim(e);
    index_row row;
    cr_assert_eq(index_get(retriever_index(rt), 7, &row), 0);
    const char *texts[] = {"What is GraphSAGE?", "fine-tuning with LoRA adapters", row.text};
    size_t lens[3] = {strlen(texts[0]), strlen(texts[1]), strlen(texts[2])};
    float *v = malloc(3 * dim * sizeof(float));
    cr_assert_not_null(v);
    cr_assert_eq(embedder_embed(e, texts, lens, 3, 0, v, err, sizeof(err)), 0, "%s", err);
    snprintf(path, sizeof(path), "%s/expected.json", test_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"texts\": [");
    for (int i = 0; i < 3; i++) {
        fputc(i ? ',' : ' ', f);
        fputc('"', f);
        for (const char *c = texts[i]; *c; c++)
            if (*c == '"' || *c == '\\')
                fprintf(f, "\\%c", *c);
            else if ((unsigned char)*c < 0x20)
                fprintf(f, "\\u%04x", *c);
            else
                fputc(*c, f);
        fputc('"', f);
    }
    fprintf(f, "],\n\"vectors\": [");
    for (int i = 0; i < 3; i++) {
        fputs(i ? ", " : "", f);
        write_floats(f, v + (size_t)i * dim, dim);
    }
    fprintf(f, "],\n\"row_vector\": ");
    write_floats(f, row.vector, dim);
    free(v);
    retriever_close(rt);
    /* the ids `sluice search` ranks first for the query, k = 3 */
    result r = RUN(test_store_arg, "search", "index", (char *)rag_query, "-k", "3", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    fprintf(f, ",\n\"query\": \"%s\", \"ids\": [", rag_query);
    const char *at = r.out;
    for (int i = 0; (at = strstr(at, "\"chunk_id\" : \"")); i++) {
        at += 14;
        fprintf(f, "%s\"%.*s\"", i ? ", " : "", (int)strcspn(at, "\""), at);
    }
    fprintf(f, "]}\n");
    cr_assert_eq(count(r.out, "\"chunk_id\""), 3, "%s", r.out);
    result_free(&r);
    fclose(f);
    return path;
}

/* The urllib client against a server with the index: embeddings equal to
 * the embedder's (floats and base64), /rag's context the chunks `sluice
 * search` ranks first and an answer, the errors; then a /rag request
 * queued behind a running stream is refused with 429 when the queue is 0,
 * and after the index's routes /health still answers. */
Test(serve, embeddings_and_rag_answer_from_the_index) {
    make_index();
    make_model_of_context(2048); /* room for three chunks in the prompt */
    const char *expected = write_expected();
    int port;
    pid_t pid = start_serve((const char *[]){test_store_arg, "--index", "index", "--parallel", "1",
                                             "--queue", "0", NULL},
                            1, &port);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    result r = run_in(NULL, NULL,
                      (char *[]){TEST_PYTHON, SLUICE_SOURCE_DIR "/tests/serve/urllib_client.py",
                                 url, "--retrieval", (char *)expected, NULL});
    cr_expect_eq(r.status, 0, "%s%s\nserver:\n%s", r.out, r.err, server_log());
    cr_expect_str_eq(r.out, "ok\n");
    result_free(&r);
    /* /rag runs in a slot like chat: none free and no queue, 429 */
    static char req[4096], out[65536];
    post(req, sizeof(req), "/v1/completions",
         "{\"prompt\": \"go on\", \"max_tokens\": 1000, \"seed\": 2, \"stream\": true}");
    int fd = connect_to(port);
    send_all(fd, req, strlen(req));
    cr_assert(read_until(fd, out, sizeof(out), "\"text\": "), "%s", out);
    post(req, sizeof(req), "/rag", "{\"query\": \"GPTQ\"}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 429, "%s", out);
    post(req, sizeof(req), "/v1/embeddings", "{\"input\": \"GPTQ\"}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 429, "%s", out);
    close(fd);
    while (metric(port, "sluice_serve_requests_running") != 0)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_expect_eq(metric(port, "sluice_serve_requests_total{route=\"/rag\",status=\"429\"}"), 1);
    /* a /rag client that leaves while its answer is generated cancels it */
    post(req, sizeof(req), "/rag",
         "{\"query\": \"GPTQ\", \"k\": 1, \"max_tokens\": 1000, \"seed\": 4}");
    fd = connect_to(port);
    send_all(fd, req, strlen(req));
    while (metric(port, "sluice_serve_requests_running") != 1)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    close(fd);
    while (metric(port, "sluice_serve_requests_running") != 0)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_expect_eq(metric(port, "sluice_serve_requests_total{route=\"/rag\",status=\"499\"}"), 1);
    post(req, sizeof(req), "/rag", "{\"query\": \"GPTQ\", \"k\": 2, \"max_tokens\": 4}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect_eq(count(out, "\"score\": "), 2, "%s", out);
    cr_expect_eq(health(port), 200);
    cr_expect_eq(stop_serve(pid), 0);
}

/* The official client's embeddings.create (base64 on the wire unless
 * asked otherwise, decoded by the client) gives the embedder's vectors. */
Test(serve, official_openai_npm_client_embeds_with_the_index) {
    if (system("node --version >/dev/null 2>&1") != 0 ||
        access(SLUICE_SOURCE_DIR "/tests/node_modules/openai/package.json", R_OK) != 0)
        SKIP_UNLESS_REQUIRED("node or the openai package (npm ci in tests/) is missing");
    make_index();
    make_model();
    const char *expected = write_expected();
    char *keys = write_test_file(test_dir, "keys", "sk-test\n");
    int port;
    pid_t pid = start_serve(
        (const char *[]){test_store_arg, "--index", index_folder, "--api-key-file", keys, NULL}, 1,
        &port);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
    result r = run_in(NULL, NULL,
                      (char *[]){"/usr/bin/env", "node",
                                 SLUICE_SOURCE_DIR "/tests/serve/openai_client.mjs", url, "sk-test",
                                 (char *)expected, NULL});
    cr_expect_eq(r.status, 0, "%s%s\nserver:\n%s", r.out, r.err, server_log());
    cr_expect_str_eq(r.out, "ok\n");
    result_free(&r);
    cr_expect_eq(stop_serve(pid), 0);
}

/* --index names something that is not an index: refused before serving. */
Test(serve, a_bad_index_is_refused) {
    make_model();
    /* the step id of an index, in a store that has no run */
    result r = RUN(test_store_arg, "serve", "--model", model_dir, "--index", "index");
    cr_expect_eq(r.status, 2);
    cr_expect_not_null(strstr(r.err, "no runs in"), "%s", r.err);
    result_free(&r);
    /* a folder without an index: the loader's message, exit 1 */
    r = RUN("serve", "--model", model_dir, "--index", test_dir, "--listen", "127.0.0.1:0");
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "index.sluidx"), "%s", r.err);
    result_free(&r);
}

/* ---- bad input ---- */

Test(serve, malformed_and_oversized_requests_are_refused) {
    make_model();
    int port;
    pid_t pid = start_serve(
        (const char *[]){"--max-body-bytes", "65536", "--max-header-bytes", "4096", NULL}, 1,
        &port);
    static char out[65536], req[300000];
    exchange(port, "HELLO\r\n\r\n", out, sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    exchange(port, "GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n", out, sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    /* a 100 MB body announced: refused before a byte of it is read */
    exchange(port,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 413, "%s", out);
    cr_expect_not_null(strstr(out, "\"error\""), "%s", out);
    /* a body over the limit sent whole */
    char *big = malloc(200001);
    memset(big, 'a', 200000);
    big[200000] = 0;
    post(req, sizeof(req), "/v1/chat/completions", big);
    free(big);
    int fd = connect_to(port);
    send(fd, req, strlen(req), MSG_NOSIGNAL); /* the server may close before all is sent */
    read_all(fd, out, sizeof(out));
    close(fd);
    cr_expect_eq(status_of(out), 413, "%s", out);
    /* a head over the limit */
    char *head = req;
    size_t n = (size_t)snprintf(head, sizeof(req), "GET /health HTTP/1.1\r\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(head + n, sizeof(req) - n, "X-Filler-%d: %0200d\r\n", i, 0);
    snprintf(head + n, sizeof(req) - n, "\r\n");
    exchange(port, head, out, sizeof(out));
    cr_expect_eq(status_of(out), 431, "%s", out);
    exchange(port,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 501, "%s", out); /* chunked is decoded: test_serve_hooks.c */
    exchange(port, "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", out,
             sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    /* JSON that is not a request: OpenAI error objects naming what is wrong */
    const char *bodies[] = {"{",
                            "null",
                            "{\"messages\": [{\"role\": \"user\"}]}",
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                            "\"top_p\": [1]}",
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000b\"}]}",
                            "{\"$date\": 1}"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        post(req, sizeof(req), "/v1/chat/completions", bodies[i]);
        exchange(port, req, out, sizeof(out));
        cr_expect_eq(status_of(out), 400, "%s: %s", bodies[i], out);
        cr_expect_not_null(strstr(out, "\"type\": \"invalid_request_error\""), "%s", out);
    }
    /* A key given twice is refused (found by fuzzing: the first value leaked). */
    const char *twice[] = {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                           "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                           "{\"model\": \"a\", \"model\": \"b\", "
                           "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                           "{\"stop\": [\"a\"], \"stop\": \"b\", "
                           "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"};
    for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
        post(req, sizeof(req), "/v1/chat/completions", twice[i]);
        exchange(port, req, out, sizeof(out));
        cr_expect_eq(status_of(out), 400, "%s: %s", twice[i], out);
        cr_expect_not_null(strstr(out, "is given twice"), "%s: %s", twice[i], out);
    }
    cr_expect_eq(health(port), 200);
    cr_expect_eq(metric(port, "sluice_serve_requests_total{route=\"none\",status=\"413\"}"), 2);
    cr_expect_eq(stop_serve(pid), 0);
}

/* Keep-alive: several requests on one connection, pipelined too. */
Test(serve, keep_alive_and_pipelining) {
    make_model();
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    int fd = connect_to(port);
    char out[8192];
    for (int i = 0; i < 3; i++) {
        const char *r = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
        send_all(fd, r, strlen(r));
        cr_assert(read_until(fd, out, sizeof(out), "\"ok\"}\n"), "%s", out);
        cr_expect_eq(status_of(out), 200);
        cr_expect_not_null(strstr(out, "Connection: keep-alive"), "%s", out);
    }
    const char *two = "GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /v1/models HTTP/1.1\r\n"
                      "Host: t\r\nConnection: close\r\n\r\n";
    send_all(fd, two, strlen(two));
    read_all(fd, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect_not_null(strstr(out, "\"object\": \"list\""), "both answered in order: %s", out);
    cr_expect_lt(strstr(out, "\"ok\""), strstr(out, "\"object\": \"list\""));
    close(fd);
    /* thousands pipelined in one write are answered in turn (not by
     * recursion, which would run out of stack) */
    enum { MANY = 5000 };
    const char *one = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t len = strlen(one);
    char *many = malloc(MANY * len + 64);
    cr_assert_not_null(many);
    for (int i = 0; i < MANY; i++)
        memcpy(many + (size_t)i * len, one, len);
    strcpy(many + (size_t)MANY * len, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    fd = connect_to(port);
    send_all(fd, many, strlen(many));
    free(many);
    char *answers = malloc(1 << 20);
    cr_assert_not_null(answers);
    read_all(fd, answers, 1 << 20);
    close(fd);
    cr_expect_eq(count(answers, "HTTP/1.1 200 OK\r\n"), MANY + 1);
    free(answers);
    cr_expect_eq(stop_serve(pid), 0);
}

/* 1,000 idle connections: those beyond the cap are closed at once, the
 * others at the idle timeout; a slowloris client, a byte every 100 ms, is cut off at its
 * header deadline while still sending. */
Test(serve, idle_connections_and_slowloris_are_cut_off) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--max-connections", "40", "--idle-timeout", "5",
                                             "--header-timeout", "1", NULL},
                            1, &port);
    enum { N = 1000, CAP = 40 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_to(port);
    /* every connection over the cap is closed by the server at once, while
     * the first 40 stay open; then the idle timeout closes those too */
    char c;
    for (int i = CAP; i < N; i++) {
        cr_expect_leq(recv(fds[i], &c, 1, 0), 0, "connection %d got a byte", i);
        close(fds[i]);
    }
    int open_now = 0;
    for (int i = 0; i < CAP; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        open_now += poll(&p, 1, 0) == 0;
    }
    cr_expect_eq(open_now, CAP, "the connections under the cap are kept until they idle out");
    for (int i = 0; i < CAP; i++) {
        cr_expect_leq(recv(fds[i], &c, 1, 0), 0, "connection %d got a byte", i);
        close(fds[i]);
    }
    cr_expect_eq(health(port), 200);
    int fd = connect_to(port);
    const char *start = "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    send_all(fd, start, strlen(start));
    int cut = 0;
    for (int i = 0; i < 600 && !cut; i++) { /* 60 s of bytes if never cut */
        if (send(fd, "a", 1, MSG_NOSIGNAL) < 0) {
            cut = 1;
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0)
            cut = 1;
    }
    close(fd);
    cr_expect(cut, "the slowloris client was never cut off");
    cr_expect_eq(health(port), 200);
    cr_expect_geq(metric(port, "sluice_serve_requests_total{route=\"none\",status=\"408\"}"), 1);
    cr_expect_eq(stop_serve(pid), 0);
}

static const char long_chat[] =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"go on\"}], \"max_tokens\": 1000, "
    "\"temperature\": 1, \"seed\": 3, \"stream\": true}";

/* A client that leaves mid-stream cancels its generation: the slot is free
 * again long before the 1000 tokens asked for would have been made, and the
 * request counts as 499. With --parallel 1 --queue 0 a second request while
 * the first runs is refused with 429. */
Test(serve, a_client_leaving_mid_stream_cancels_its_generation) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--parallel", "1", "--queue", "0", NULL}, 1, &port);
    static char req[4096], out[65536];
    post(req, sizeof(req), "/v1/chat/completions", long_chat);
    int fd = connect_to(port);
    send_all(fd, req, strlen(req));
    cr_assert(read_until(fd, out, sizeof(out), "\"delta\": {\"content\""), "%s", out);
    /* the only slot is busy, and nothing may wait */
    char busy[4096];
    exchange(port, req, busy, sizeof(busy));
    cr_expect_eq(status_of(busy), 429, "%s", busy);
    cr_expect_not_null(strstr(busy, "\"type\": \"rate_limit_error\""), "%s", busy);
    close(fd);
    while (metric(port, "sluice_serve_requests_running") != 0)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_expect_eq(
        metric(port, "sluice_serve_requests_total{route=\"/v1/chat/completions\",status=\"499\"}"),
        1);
    /* what it made before it stopped counts; far fewer than asked */
    double generated = metric(port, "sluice_serve_generated_tokens_total");
    cr_expect(generated >= 1 && generated < 1000, "%g tokens generated", generated);
    /* the slot takes the next request */
    post(req, sizeof(req), "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect_eq(health(port), 200);
    cr_expect_eq(stop_serve(pid), 0);
}

/* The body of the answer to req, on a connection of its own already sent. */
static char *answer_of(int fd) {
    char *out = malloc(1 << 16);
    cr_assert_not_null(out);
    read_all(fd, out, 1 << 16);
    close(fd);
    cr_assert_eq(status_of(out), 200, "%s", out);
    char *body = strstr(out, "\r\n\r\n");
    cr_assert_not_null(body);
    memmove(out, body + 4, strlen(body + 4) + 1);
    /* the id and time differ between answers; the text and counts must not */
    char *choices = strstr(out, "\"choices\"");
    cr_assert_not_null(choices, "%s", out);
    memmove(out, choices, strlen(choices) + 1);
    return out;
}

/* With --parallel 2 two generations run at once over the one model, each
 * with its own KV cache and sampler: a second stream starts while the
 * first still runs, and two sampled answers made side by side (their
 * tokens in one batched step) are each the answer its request gets alone.
 * A batched step's logits equal a lone step's to float rounding only: on
 * this model they differ by at most about 1e-6, which moves a draw to
 * another token with a probability of about 2e-6 a token, so the answers
 * are kept short (48 tokens each: about 2e-4 that a run fails by
 * rounding alone, against any mixing of two slots' caches or samplers,
 * which changes the text at once). */
Test(serve, parallel_slots_generate_at_once_and_alike) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--parallel", "2", "--queue", "0", NULL}, 1, &port);
    static char req[2][4096], out[65536];
    const char *bodies[2] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"first\"}], \"max_tokens\": 48, "
        "\"temperature\": 1, \"seed\": 11}",
        "{\"prompt\": \"second\", \"max_tokens\": 48, \"temperature\": 0.8, \"top_p\": 0.9, "
        "\"seed\": 12}"};
    const char *paths[2] = {"/v1/chat/completions", "/v1/completions"};
    char *alone[2];
    for (int k = 0; k < 2; k++) {
        post(req[k], sizeof(req[k]), paths[k], bodies[k]);
        int fd = connect_to(port);
        send_all(fd, req[k], strlen(req[k]));
        alone[k] = answer_of(fd);
    }
    int fds[2];
    for (int k = 0; k < 2; k++) {
        fds[k] = connect_to(port);
        send_all(fds[k], req[k], strlen(req[k]));
    }
    for (int k = 0; k < 2; k++) {
        char *both = answer_of(fds[k]);
        cr_expect_str_eq(both, alone[k], "request %d side by side differs from alone", k);
        free(both);
        free(alone[k]);
    }
    /* a stream begins while another runs: the second slot is its own */
    post(req[0], sizeof(req[0]), "/v1/chat/completions", long_chat);
    int a = connect_to(port), b = connect_to(port);
    send_all(a, req[0], strlen(req[0]));
    cr_assert(read_until(a, out, sizeof(out), "\"delta\": {\"content\""), "%s", out);
    send_all(b, req[0], strlen(req[0]));
    cr_assert(read_until(b, out, sizeof(out), "\"delta\": {\"content\""), "%s", out);
    cr_expect_eq(metric(port, "sluice_serve_requests_running"), 2);
    close(a);
    close(b);
    cr_expect_eq(health(port), 200);
    cr_expect_eq(stop_serve(pid), 0);
}

/* SIGTERM while a stream runs: the stream ends whole ([DONE]), then the
 * server exits 0. */
Test(serve, sigterm_drains_the_requests_in_flight) {
    make_model();
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    static char req[4096], out[1 << 20];
    post(req, sizeof(req), "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"go on\"}], \"max_tokens\": 300, "
         "\"temperature\": 1, \"seed\": 5, \"stream\": true}");
    int fd = connect_to(port);
    send_all(fd, req, strlen(req));
    cr_assert(read_until(fd, out, sizeof(out), "\"delta\": {\"content\""), "%s", out);
    kill(pid, SIGTERM);
    size_t n = strlen(out);
    n += read_all(fd, out + n, sizeof(out) - n);
    close(fd);
    cr_expect_not_null(strstr(out, "data: [DONE]\n\n\r\n0\r\n\r\n"), "the stream was cut: %s",
                       out + (n > 300 ? n - 300 : 0));
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "exit status %d", ws);
}

/* While the model loads, /health and the generation routes say 503
 * (start_serve's wait for 200 is the other half). Loading is held up by a
 * FIFO in place of config.json, which the loader blocks on opening; once
 * the test opens and closes its end, the loader finds no JSON there, and
 * the server says so and exits 1. */
Test(serve, health_is_503_while_loading) {
    make_model();
    char config[200];
    snprintf(config, sizeof(config), "%s/config.json", model_dir);
    cr_assert_eq(unlink(config), 0);
    cr_assert_eq(mkfifo(config, 0644), 0);
    int port;
    pid_t pid = start_serve(NULL, 0, &port);
    cr_expect_eq(health(port), 503);
    static char req[4096], out[8192];
    post(req, sizeof(req), "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 503, "%s", out);
    cr_expect_not_null(strstr(out, "\"code\": \"model_loading\""), "%s", out);
    cr_expect_not_null(strstr(out, "Retry-After"), "%s", out);
    exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect_eq(metric(port, "sluice_serve_ready"), 0);
    int fd = open(config, O_WRONLY);
    cr_assert_geq(fd, 0);
    close(fd);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "exit status %d", ws);
    char *log = server_log();
    cr_expect_not_null(strstr(log, "config.json"), "%s", log);
    free(log);
}

/* --model may name a model artifact in the store, as `sluice model` does. */
Test(serve, serves_a_model_artifact_by_its_id) {
    make_model();
    result r = RUN(test_store_arg, "artifacts", "import", model_dir, "--type", "model");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char id[16];
    const char *at = strstr(r.out, "as artifact ");
    cr_assert_not_null(at, "%s", r.out);
    snprintf(id, sizeof(id), "%.12s", at + 12);
    result_free(&r);
    int port;
    pid_t pid = start_serve((const char *[]){test_store_arg, "--model", id, NULL}, 1, &port);
    char out[4096];
    exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, sizeof(out));
    char want[64];
    snprintf(want, sizeof(want), "\"id\": \"%s\"", id);
    cr_expect_not_null(strstr(out, want), "%s", out);
    cr_expect_eq(stop_serve(pid), 0);
    r = RUN(test_store_arg, "serve", "--model", "0000000000ff");
    cr_expect_eq(r.status, 2);
    cr_expect_not_null(strstr(r.err, "0000000000ff"), "%s", r.err);
    result_free(&r);
}

Test(serve, bad_options_and_models_are_refused) {
    make_model();
    result r = RUN("serve");
    cr_expect_eq(r.status, 2);
    cr_expect_not_null(strstr(r.err, "give --model DIR"), "%s", r.err);
    result_free(&r);
    r = RUN("serve", "--model", model_dir, "--listen", "nowhere");
    cr_expect_eq(r.status, 2);
    cr_expect_not_null(strstr(r.err, "--listen 'nowhere'"), "%s", r.err);
    result_free(&r);
    r = RUN("serve", "--model", model_dir, "--parallel", "0");
    cr_expect_eq(r.status, 2);
    result_free(&r);
    /* a folder that is not a model: the loader's message, exit 1 */
    r = RUN("serve", "--model", test_dir, "--listen", "127.0.0.1:0");
    cr_expect_eq(r.status, 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "config.json"), "%s", r.err);
    result_free(&r);
    r = RUN("serve", "--help");
    cr_expect_eq(r.status, 0);
    cr_expect_not_null(strstr(r.out, "--api-key-file"), "%s", r.out);
    result_free(&r);
}

/* ---- reloading ---- */

static char admin_keys[200];

/* test_dir/admin.key with the key "adm1". */
static const char *admin_key_file(void) {
    snprintf(admin_keys, sizeof(admin_keys), "%s/admin.key", test_dir);
    FILE *f = fopen(admin_keys, "w");
    cr_assert_not_null(f);
    fputs("# the admin's\nadm1\n", f);
    fclose(f);
    return admin_keys;
}

/* POST /admin/reload with body, authorized by key (NULL: no header); the
 * whole answer into out, its status returned. */
static int reload_to(int port, const char *key, const char *body, char *out, size_t size) {
    char req[8192], auth[128] = "";
    if (key)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", key);
    snprintf(req, sizeof(req),
             "POST /admin/reload HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             auth, strlen(body), body);
    exchange(port, req, out, size);
    return status_of(out);
}

/* Seeded: the same text from one model every time. (Greedy would not
 * tell two random models apart: each repeats the prompt's last token.) */
static const char seeded_body[] = "{\"prompt\": \"A pipeline is\", \"max_tokens\": 8, "
                                  "\"seed\": 11}";

/* The text of a completion's answer (from "text" to "logprobs"). */
static void text_of(const char *answer, char *out, size_t size) {
    const char *a = strstr(answer, "\"text\": "), *b = a ? strstr(a, ", \"logprobs\"") : NULL;
    cr_assert(a && b, "no text in %s", answer);
    snprintf(out, size, "%.*s", (int)(b - a), a);
}

/* The completion of seeded_body by the model served now. */
static void seeded(int port, char *text, size_t size) {
    static char req[4096], out[8192];
    post(req, sizeof(req), "/v1/completions", seeded_body);
    exchange(port, req, out, sizeof(out));
    cr_assert_eq(status_of(out), 200, "%s", out);
    text_of(out, text, size);
}

/* A client sending seeded completions one after another until told to
 * stop, counting the answers by status. No asserts: it runs on a thread. */
typedef struct client_loop {
    int port;
    atomic_int stop;
    atomic_int ok, failed;
    char failure[512];
} client_loop;

static void *client_main(void *arg) {
    client_loop *l = arg;
    static char req[4096], out[8192];
    post(req, sizeof(req), "/v1/completions", seeded_body);
    while (!atomic_load(&l->stop)) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int status = 0;
        out[0] = 0;
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
            read_all(fd, out, sizeof(out));
            status = status_of(out);
        }
        if (fd >= 0)
            close(fd);
        if (status == 200) {
            atomic_fetch_add(&l->ok, 1);
        } else {
            if (!atomic_load(&l->failed))
                snprintf(l->failure, sizeof(l->failure), "%s", out[0] ? out : "no answer");
            atomic_fetch_add(&l->failed, 1);
        }
    }
    return NULL;
}

/* Until the client has had n more answers. */
static void wait_answers(client_loop *l, int n) {
    int until = atomic_load(&l->ok) + atomic_load(&l->failed) + n;
    while (atomic_load(&l->ok) + atomic_load(&l->failed) < until)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
}

/* Reloads swap the model while a client keeps asking: every request is
 * answered 200, a stream begun before a reload ends on the model it began
 * with, and afterwards the answers are the new model's. */
Test(serve, reloads_swap_the_model_without_failing_a_request) {
    make_model();
    char other[160];
    snprintf(other, sizeof(other), "%s/other", test_dir);
    make_model_in(other, 300, 1024, 8);
    int port;
    pid_t pid = start_serve(
        (const char *[]){"--admin-key-file", admin_key_file(), "--parallel", "2", NULL}, 1, &port);
    char first[512], second[512], now[512];
    seeded(port, first, sizeof(first));

    /* a long stream on the first model, under way across the reloads */
    static char req[4096], out[1 << 20];
    post(req, sizeof(req), "/v1/completions",
         "{\"prompt\": \"A pipeline\", \"max_tokens\": 1000, \"stream\": true}");
    int stream = connect_to(port);
    send_all(stream, req, strlen(req));
    cr_assert(read_until(stream, out, 4096, "data: "), "%s", out);

    client_loop l = {.port = port};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, client_main, &l), 0);
    wait_answers(&l, 3);
    for (int i = 1; i <= 5; i++) {
        char body[512], answer[4096];
        snprintf(body, sizeof(body), "{\"model\": \"%s\", \"name\": \"%s\", \"version\": %d}",
                 i % 2 ? other : model_dir, i % 2 ? "other" : "tiny", i);
        cr_assert_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 200, "%s", answer);
        cr_expect_not_null(strstr(answer, i % 2 ? "\"id\": \"other\"" : "\"id\": \"tiny\""), "%s",
                           answer);
        if (i == 1)
            seeded(port, second, sizeof(second));
        wait_answers(&l, 3);
    }
    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    cr_expect_eq(atomic_load(&l.failed), 0, "%d of %d failed, the first: %s",
                 atomic_load(&l.failed), atomic_load(&l.failed) + atomic_load(&l.ok), l.failure);
    cr_expect_geq(atomic_load(&l.ok), 18);

    /* the models answer apart, and the one served now is the last one loaded */
    cr_expect_str_neq(first, second);
    seeded(port, now, sizeof(now));
    cr_expect_str_eq(now, second);
    exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, 4096);
    cr_expect_not_null(strstr(out, "\"id\": \"other\""), "%s", out);
    cr_expect_not_null(strstr(out, "\"version\": \"5\""), "%s", out);
    cr_expect_eq(metric(port, "sluice_serve_reloads_total{result=\"ok\"}"), 5);
    cr_expect_eq(metric(port, "sluice_serve_model_info{model=\"other\",version=\"5\"}"), 1);

    /* the stream ran to its end on the model it began with */
    cr_expect(read_until(stream, out, sizeof(out), "data: [DONE]"), "%.2000s", out);
    close(stream);
    cr_expect_not_null(strstr(out, "\"model\": \"tiny\""), "%.2000s", out);
    cr_expect_null(strstr(out, "\"model\": \"other\""), "%.2000s", out);
    cr_expect_eq(health(port), 200);
    cr_expect_eq(stop_serve(pid), 0);

    /* and its trace names that model, not the one served when it ended */
    result r = RUN(test_store_arg, "traces", "list", "--json", "--limit", "100000");
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *streamed = strstr(r.out, "\"stream\": true");
    cr_assert_not_null(streamed, "%.3000s", r.out);
    const char *rec = streamed;
    while (rec > r.out && strncmp(rec, "{\"id\"", 6) != 0)
        rec--;
    char *one = strndup(rec, (size_t)(streamed - rec));
    char want[300];
    snprintf(want, sizeof(want), "\"model_version\": \"%s\"", model_dir);
    cr_expect(strstr(one, "\"model\": \"tiny\"") && strstr(one, want), "%s", one);
    free(one);
    result_free(&r);
}

/* A model that does not load leaves the one served in place. */
Test(serve, a_failed_reload_keeps_the_model_served) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--admin-key-file", admin_key_file(), NULL}, 1, &port);
    char before[512], after[512], answer[4096], body[512];
    seeded(port, before, sizeof(before));
    snprintf(body, sizeof(body), "{\"model\": \"%s/nowhere\"}", test_dir);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 400, "%s", answer);
    cr_expect_not_null(strstr(answer, "the one served is kept"), "%s", answer);
    /* a folder that is no model: no config.json */
    snprintf(body, sizeof(body), "{\"model\": \"%s\"}", test_dir);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 400, "%s", answer);
    cr_expect_not_null(strstr(answer, "config.json"), "%s", answer);
    cr_expect_eq(reload_to(port, "adm1", "{\"model\": 3}", answer, sizeof(answer)), 400, "%s",
                 answer);
    cr_expect_not_null(strstr(answer, "\"param\": \"model\""), "%s", answer);
    cr_expect_eq(reload_to(port, "adm1", "{not json", answer, sizeof(answer)), 400, "%s", answer);
    seeded(port, after, sizeof(after));
    cr_expect_str_eq(before, after);
    exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", answer, sizeof(answer));
    cr_expect_not_null(strstr(answer, "\"id\": \"tiny\""), "%s", answer);
    cr_expect_eq(metric(port, "sluice_serve_reloads_total{result=\"failed\"}"), 2);
    cr_expect_eq(metric(port, "sluice_serve_reloads_total{result=\"ok\"}"), 0);
    cr_expect_eq(stop_serve(pid), 0);
}

/* /admin/reload is off without --admin-key-file and takes only its keys:
 * an API key is not one. */
Test(serve, reloading_needs_an_admin_key) {
    make_model();
    char body[512], answer[4096];
    snprintf(body, sizeof(body), "{\"model\": \"%s\"}", model_dir);
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    cr_expect_eq(reload_to(port, NULL, body, answer, sizeof(answer)), 403, "%s", answer);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 403, "%s", answer);
    cr_expect_eq(stop_serve(pid), 0);

    char api_keys[200];
    snprintf(api_keys, sizeof(api_keys), "%s/api.key", test_dir);
    FILE *f = fopen(api_keys, "w");
    cr_assert_not_null(f);
    fputs("sk-user\n", f);
    fclose(f);
    pid = start_serve(
        (const char *[]){"--admin-key-file", admin_key_file(), "--api-key-file", api_keys, NULL}, 1,
        &port);
    cr_expect_eq(reload_to(port, NULL, body, answer, sizeof(answer)), 401, "%s", answer);
    cr_expect_not_null(strstr(answer, "WWW-Authenticate: Bearer"), "%s", answer);
    cr_expect_eq(reload_to(port, "sk-user", body, answer, sizeof(answer)), 401, "%s", answer);
    cr_expect_eq(reload_to(port, "adm", body, answer, sizeof(answer)), 401, "%s", answer);
    exchange(
        port,
        "GET /admin/reload HTTP/1.1\r\nAuthorization: Bearer adm1\r\nConnection: close\r\n\r\n",
        answer, sizeof(answer));
    cr_expect_eq(status_of(answer), 405, "%s", answer);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 200, "%s", answer);
    cr_expect_eq(stop_serve(pid), 0);
}

/* ---- an index alone, index reloads, /rag's filter and stream ---- */

/* The chunk ids `sluice search` ranks first for query under filter
 * (KEY=VALUE, or NULL), joined by spaces. */
static void search_ids(const char *query, const char *filter, char *out, size_t size) {
    result r = filter ? RUN(test_store_arg, "search", "index", (char *)query, "-k", "3", "--filter",
                            (char *)filter, "--json")
                      : RUN(test_store_arg, "search", "index", (char *)query, "-k", "3", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    out[0] = 0;
    for (const char *at = r.out; (at = strstr(at, "\"chunk_id\" : \""));) {
        at += 14;
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%.*s", n ? " " : "", (int)strcspn(at, "\""), at);
    }
    result_free(&r);
}

/* The ids of an answer's context, in order, joined by spaces. */
static void context_ids(const char *answer, char *out, size_t size) {
    out[0] = 0;
    const char *ctx = strstr(answer, "\"context\": ");
    for (const char *at = ctx; at && (at = strstr(at, "{\"id\": \""));) {
        at += 8;
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%.*s", n ? " " : "", (int)strcspn(at, "\""), at);
    }
}

/* sluice serve --index without --model: embeddings and /rag's retrieval
 * (answer null) work, generation routes say no model is loaded; /rag's
 * filter keeps an author's chunks only; a reload swaps the index (a bad
 * one is refused and the old one serves on), then gives the server a
 * model, after which /rag streams: the context event, then the answer. */
Test(serve, an_index_alone_then_reloads_and_rag_filter_and_stream) {
    make_index();
    make_model_of_context(2048);
    int port;
    const char *argv[] = {SLUICE_BIN,         "serve",          test_store_arg,
                          "--index",          "index",          "--listen",
                          "127.0.0.1:0",      "--port-file",    port_file,
                          "--admin-key-file", admin_key_file(), NULL};
    snprintf(port_file, sizeof(port_file), "%s/port", test_dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char log[200];
        snprintf(log, sizeof(log), "%s/serve.log", test_dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(SLUICE_BIN, (char *const *)argv);
        _exit(127);
    }
    port = local_server_port(pid, port_file, "sluice serve --index");
    while (health(port) != 200) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "died: %s", server_log());
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    static char req[8192], out[1 << 18];
    char want[512], got[512];
    post(req, sizeof(req), "/v1/embeddings", "{\"input\": [\"GPTQ\", \"LoRA\"]}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect_eq(count(out, "\"object\": \"embedding\""), 2, "%.400s", out);
    post(req, sizeof(req), "/rag", "{\"query\": \"How does GPTQ quantize a model to 4 bits?\"}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect(strstr(out, "\"answer\": null"), "%.400s", out);
    search_ids("How does GPTQ quantize a model to 4 bits?", NULL, want, sizeof(want));
    context_ids(out, got, sizeof(got));
    cr_expect_str_eq(got, want);
    post(req, sizeof(req), "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 404, "%s", out);
    cr_expect(strstr(out, "no model is loaded"), "%s", out);
    exchange(port, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n", out, sizeof(out));
    cr_expect(strstr(out, "\"data\": []"), "%s", out);

    /* the filter: an author's chunks only, as `sluice search --filter` */
    post(req, sizeof(req), "/rag",
         "{\"query\": \"How does GPTQ quantize a model to 4 bits?\", \"filter\": {\"author\": "
         "\"Paul Iusztin\"}}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    search_ids("How does GPTQ quantize a model to 4 bits?", "author=Paul Iusztin", want,
               sizeof(want));
    context_ids(out, got, sizeof(got));
    cr_expect(want[0]);
    cr_expect_str_eq(got, want);
    post(req, sizeof(req), "/rag", "{\"query\": \"GPTQ\", \"filter\": {\"author\": \"Nobody\"}}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect(strstr(out, "\"context\": []"), "%s", out);
    post(req, sizeof(req), "/rag", "{\"query\": \"GPTQ\", \"filter\": {\"platform\": \"x\"}}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    cr_expect(strstr(out, "\"param\": \"filter\""), "%s", out);

    /* an index reload: a bad one keeps the index served; a good one swaps */
    char body[1024], answer[4096];
    cr_expect_eq(reload_to(port, "adm1", "{\"index\": \"/nonexistent\"}", answer, sizeof(answer)),
                 400, "%s", answer);
    cr_expect(strstr(answer, "\"param\": \"index\""), "%s", answer);
    snprintf(body, sizeof(body), "{\"index\": \"%s\"}", index_folder);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 200, "%s", answer);
    cr_expect(strstr(answer, index_folder), "%s", answer);
    post(req, sizeof(req), "/v1/embeddings", "{\"input\": \"GPTQ\"}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);

    /* a model reloaded in: /rag generates, and streams */
    snprintf(body, sizeof(body), "{\"model\": \"%s\", \"name\": \"tiny\"}", model_dir);
    cr_expect_eq(reload_to(port, "adm1", body, answer, sizeof(answer)), 200, "%s", answer);
    post(req, sizeof(req), "/rag",
         "{\"query\": \"How does GPTQ quantize a model to 4 bits?\", \"k\": 2, \"max_tokens\": 4, "
         "\"stream\": true}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect(strstr(out, "text/event-stream"), "%s", out);
    const char *ctx = strstr(out, "data: {\"id\": \"");
    cr_assert_not_null(ctx, "%s", out);
    const char *obj = strstr(ctx, "\"object\": \"rag.context\""), *end = strstr(ctx, "\n\n");
    cr_expect(obj && end && obj < end, "the first event is the context: %s", out);
    cr_expect_eq(count(ctx, "\"score\": "), 2, "%s", out);
    cr_expect(strstr(out, "\"text\": "), "%s", out);
    cr_expect(strstr(out, "data: [DONE]"), "%s", out);
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
}
