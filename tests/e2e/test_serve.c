/* test_serve.c - `sluice serve` end to end: the real binary serving a small
 * random GPT-2 (made here with the model and tokenizer libraries), talked
 * to by real clients (Python's urllib, the official openai npm package)
 * and by raw sockets doing what a hostile or careless client does:
 * malformed requests, bodies and heads over the limits, idle connections
 * beyond the cap, a slowloris, a client leaving mid-stream. After each the
 * server still answers /health. Also: 503 while the model loads, 429 when
 * the queue is full, and SIGTERM letting a stream finish before exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "local_server.h"
#include "model.h"
#include "raw_http.h"
#include "require.h"
#include "runner.h"
#include "tokenizer.h"

TestSuite(serve, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 240);

static char model_dir[128];

/* A GPT-2 of random weights big enough that a long generation takes a
 * while (4 layers of width 256, a context of 1024), with a byte-level BPE
 * tokenizer trained on a few Handbook-like sentences; EOS is
 * <|endoftext|>. */
static void make_model_in(const char *model_dir, int vocab_size, uint64_t seed) {
    cr_assert_eq(mkdir(model_dir, 0755), 0);
    char err[512], path[256];
    const char *specials[] = {"<|endoftext|>"};
    tok_trainer *tr;
    cr_assert_eq(tok_trainer_new(vocab_size, specials, 1, 1, &tr, err, sizeof(err)), 0, "%s", err);
    static const char text[] =
        "A pipeline is a graph of steps. Each step reads artifacts and writes new ones, and the "
        "store keeps them by the hash of their bytes. What is a content-addressed store? A map "
        "from hashes to byte strings. Sentence packing splits text into sentences first. The "
        "scheduler runs the steps whose inputs are ready, in parallel, and caches the results.";
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tok_trainer_feed(tr, text, sizeof(text) - 1, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s/tokenizer.json", model_dir);
    cr_assert_eq(tok_trainer_save(tr, path, err, sizeof(err)), 0, "%s", err);
    tok_trainer_free(tr);
    tok_tokenizer *t;
    cr_assert_eq(tok_load(path, &t, err, sizeof(err)), 0, "%s", err);
    int vocab = (int)tok_vocab_size(t);
    tok_free(t);
    model_config c;
    cr_assert_eq(model_config_init(&c, "gpt2", 256, 4, 4, 0, 0, 1024, vocab, err, sizeof(err)), 0,
                 "%s", err);
    model *m;
    cr_assert_eq(model_new(&c, seed, &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(model_save(m, model_dir, err, sizeof(err)), 0, "%s", err);
    model_free(m);
}

/* The model the tests serve: test_dir/tiny. */
static void make_model(void) {
    snprintf(model_dir, sizeof(model_dir), "%s/tiny", test_dir);
    make_model_in(model_dir, 400, 7);
}

/* ---- the server ---- */

static char port_file[160];

static char *server_log(void) {
    char log[200];
    snprintf(log, sizeof(log), "%s/serve.log", test_dir);
    char *text = slurp(log);
    return text ? text : strdup("");
}

/* Starts sluice serve on the model with args (NULL-ended), waits for its
 * port and, unless loading is held up on purpose, for /health to say 200. */
static pid_t start_serve(const char *const *args, int wait_ready, int *port) {
    const char *argv[40] = {SLUICE_BIN, "serve",       "--model",     model_dir,
                            "--listen", "127.0.0.1:0", "--port-file", port_file};
    size_t n = 8;
    for (; args && *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    snprintf(port_file, sizeof(port_file), "%s/port", test_dir);
    unlink(port_file);
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
    char what[256];
    snprintf(what, sizeof(what), "sluice serve (its output: %s/serve.log)", test_dir);
    *port = local_server_port(pid, port_file, what);
    while (wait_ready && health(*port) != 200) {
        cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "sluice serve died loading: %s", server_log());
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    return pid;
}

/* SIGTERM, then the exit status. */
static int stop_serve(pid_t pid) {
    kill(pid, SIGTERM);
    int ws;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

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
             "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 501, "%s", out);
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
 * first still runs, and two sampled answers made side by side are each the
 * answer its request gets alone. */
Test(serve, parallel_slots_generate_at_once_and_alike) {
    make_model();
    int port;
    pid_t pid = start_serve((const char *[]){"--parallel", "2", "--queue", "0", NULL}, 1, &port);
    static char req[2][4096], out[65536];
    const char *bodies[2] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"first\"}], \"max_tokens\": 200, "
        "\"temperature\": 1, \"seed\": 11}",
        "{\"prompt\": \"second\", \"max_tokens\": 200, \"temperature\": 0.8, \"top_p\": 0.9, "
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
    make_model_in(other, 300, 8);
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
