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
#include "raw_http.h"
#include "runner.h"
#include "tokenizer.h"

static char model_dir[128];

/* A GPT-2 of random weights (from seed) big enough that a long generation
 * takes a while (4 layers of width 256, a context of context tokens), in
 * folder dir, with a byte-level BPE tokenizer of vocab_size ids trained on
 * a few Handbook-like sentences; EOS is <|endoftext|>. */
static void make_model_in(const char *dir, int vocab_size, int context, uint64_t seed) {
    cr_assert_eq(mkdir(dir, 0755), 0);
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
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
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
    cr_assert_eq(model_new(&c, seed, &m, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(model_save(m, dir, err, sizeof(err)), 0, "%s", err);
    model_free(m);
}

/* The model the tests serve, test_dir/tiny, with a context of context tokens. */
static void make_model_of_context(int context) {
    snprintf(model_dir, sizeof(model_dir), "%s/tiny", test_dir);
    make_model_in(model_dir, 400, context, 7);
}

static void make_model(void) { make_model_of_context(1024); }

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
