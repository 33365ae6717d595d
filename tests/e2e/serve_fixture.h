/* serve_fixture.h - the real `sluice serve` for end-to-end tests: a small
 * random GPT-2 made with the model and tokenizer libraries, the server
 * started on it on a free port (writing its traces to the test's store),
 * and a raw client to talk to it. Used by test_serve.c and
 * test_serve_monitor.c. */
#ifndef SLUICE_TESTS_SERVE_FIXTURE_H
#define SLUICE_TESTS_SERVE_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "local_server.h"
#include "model.h"
#include "runner.h"
#include "tokenizer.h"

static char model_dir[128];

/* A GPT-2 of random weights big enough that a long generation takes a
 * while (4 layers of width 256, a context of context tokens), with a
 * byte-level BPE tokenizer trained on a few Handbook-like sentences; EOS is
 * <|endoftext|>. */
static void make_model_of_context(int context) {
    snprintf(model_dir, sizeof(model_dir), "%s/tiny", test_dir);
    cr_assert_eq(mkdir(model_dir, 0755), 0);
    char err[512], path[256];
    const char *specials[] = {"<|endoftext|>"};
    tok_trainer *tr;
    cr_assert_eq(tok_trainer_new(400, specials, 1, 1, &tr, err, sizeof(err)), 0, "%s", err);
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
    cr_assert_eq(model_config_init(&c, "gpt2", 256, 4, 4, 0, 0, context, vocab, err, sizeof(err)),
                 0, "%s", err);
    model *m;
    cr_assert_eq(model_new(&c, 7, &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(model_save(m, model_dir, err, sizeof(err)), 0, "%s", err);
    model_free(m);
}

static void make_model(void) { make_model_of_context(1024); }

/* ---- a raw client ---- */

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Whatever the server sends until it closes (or 60 s pass), into out. */
static size_t read_all(int fd, char *out, size_t size) {
    size_t n = 0;
    ssize_t k;
    while (n + 1 < size && (k = recv(fd, out + n, size - 1 - n, 0)) > 0)
        n += (size_t)k;
    out[n] = 0;
    return n;
}

/* Reads until needle has arrived (or the server closes); returns whether it did. */
static int read_until(int fd, char *out, size_t size, const char *needle) {
    size_t n = 0;
    ssize_t k;
    out[0] = 0;
    while (!strstr(out, needle) && n + 1 < size && (k = recv(fd, out + n, size - 1 - n, 0)) > 0)
        out[n += (size_t)k] = 0;
    return strstr(out, needle) != NULL;
}

static void send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t k = send(fd, data, len, MSG_NOSIGNAL);
        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        data += k, len -= (size_t)k;
    }
}

/* One request on a fresh connection (closed after), the whole answer in out. */
static void exchange(int port, const char *request, char *out, size_t size) {
    int fd = connect_to(port);
    send_all(fd, request, strlen(request));
    read_all(fd, out, size);
    close(fd);
}

static int status_of(const char *response) {
    int status = 0;
    sscanf(response, "HTTP/1.1 %d", &status);
    return status;
}

static int health(int port) {
    char out[4096];
    exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
             sizeof(out));
    return status_of(out);
}

static void post(char *req, size_t size, const char *path, const char *body) {
    snprintf(req, size,
             "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, strlen(body), body);
}

/* A metric's value in /metrics (-1 when absent). */
static double metric(int port, const char *series) {
    static char out[65536];
    exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
             sizeof(out));
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *at = strstr(out, needle);
    return at ? strtod(at + strlen(needle), NULL) : -1;
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
        /* the test's store (unless args name one): the traces go there */
        char store[128];
        snprintf(store, sizeof(store), "%s/store", test_dir);
        setenv("SLUICE_HOME", store, 1);
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

#endif
