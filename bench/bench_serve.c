/* bench_serve - sluice serve's speed, beside what bounds it, in one run:
 *
 *   1. GET /health answered per second under wrk (one thread, 50
 *      kept-alive connections, 5 s), against nginx (one worker) serving a
 *      static file of the same body on the same machine: the ratio is how
 *      close the HTTP layer comes to a server built for nothing else (goal
 *      at least 50%).
 *   2. Single-stream decode tokens/s of a GPT-2-small-shaped model (12
 *      layers of width 768, F32; a small vocabulary, so the layers are
 *      nearly all of the weights) through POST /v1/completions, against the
 *      memory-bandwidth bound: one token reads every weight once, so the
 *      machine's single-thread read bandwidth, measured here, divided by
 *      the weight bytes is the most tokens/s a single stream can reach.
 *      The rate is the difference of two generations (16 and 144 tokens),
 *      which takes out the request's and the prompt's cost.
 *   3. Aggregate decode tokens/s of N streams at once (N = 1, 2, 4) on a
 *      server started with --parallel N, each stream its own completion,
 *      the tokens of all summed, again as a difference of two lengths;
 *      printed against the single-stream bound and one stream. The
 *      slots' decode steps are batched (one model_decoder_step_batch for
 *      all the slots past their prompt), so one read of the weights serves
 *      N tokens.
 *   4. The batched step itself, in this process on the same model: B
 *      decoders advanced by one model_decoder_step_batch (every linear
 *      layer one sgemm over the B rows) against the same B tokens by B
 *      model_decoder_steps (matrix-vector products), tokens/s of each and
 *      their ratio, for B = 2, 4 and 8: what batching gains without the
 *      HTTP server, the sampling and the other slots' prompts.
 *
 * The model has random weights and a tokenizer without EOS, so that every
 * generation runs to max_tokens. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"
#include "tokenizer.h"

#define NAME "bench_serve"

/* OpenBLAS's (linked through sluice_model, whose headers do not expose
 * cblas.h): section 4 runs on one thread, as a server's slot does. */
void openblas_set_num_threads(int n);

static char dir[64];

static void die(const char *what) {
    fprintf(stderr, NAME ": %s\n", what);
    exit(1);
}

/* Section 4: tokens/s of B decoders stepped one by one and batched, best
 * of 3 rounds of 16 steps each, the decoders 32 positions in. */
static void batch_rates(const char *model_dir, int B, double *alone, double *batched) {
    char err[512];
    model *m;
    if (model_open(model_dir, &m, err, sizeof(err)) != 0)
        die(err);
    model_decoder *d[8];
    int32_t tok[8];
    const float *z[8];
    for (int b = 0; b < B; b++) {
        if (model_decoder_new(m, 1024, &d[b], err, sizeof(err)) != 0)
            die(err);
        tok[b] = (int32_t)(b + 1);
    }
    *alone = *batched = 0;
    for (int round = 0; round < 3; round++) {
        for (int b = 0; b < B; b++) {
            int32_t prompt[32];
            for (int i = 0; i < 32; i++)
                prompt[i] = (int32_t)((i * 7 + b) % 100);
            if (model_decoder_reset(d[b], 1024, err, sizeof(err)) != 0 ||
                model_decoder_prefill(d[b], prompt, 32, NULL, err, sizeof(err)) != 0)
                die(err);
        }
        double t0 = now();
        for (int s = 0; s < 16; s++)
            for (int b = 0; b < B; b++)
                if (model_decoder_step(d[b], tok[b], &z[b], err, sizeof(err)) != 0)
                    die(err);
        double t1 = now();
        for (int s = 0; s < 16; s++)
            if (model_decoder_step_batch(d, tok, B, z, err, sizeof(err)) != 0)
                die(err);
        double t2 = now(), a = 16.0 * B / (t1 - t0), r = 16.0 * B / (t2 - t1);
        *alone = a > *alone ? a : *alone;
        *batched = r > *batched ? r : *batched;
    }
    for (int b = 0; b < B; b++)
        model_decoder_free(d[b]);
    model_free(m);
}

static void make_model(const char *path, size_t *weight_bytes) {
    char err[512], tok_path[256];
    if (mkdir(path, 0755) != 0)
        die("cannot make the model folder");
    tok_trainer *tr;
    static const char text[] =
        "A pipeline is a graph of steps. Each step reads artifacts and writes new ones, and the "
        "store keeps them by the hash of their bytes. The scheduler runs the steps whose inputs "
        "are ready, in parallel, and caches the results so that a second run does nothing.";
    if (tok_trainer_new(512, NULL, 0, 1, &tr, err, sizeof(err)) != 0)
        die(err);
    for (int i = 0; i < 8; i++)
        tok_trainer_feed(tr, text, sizeof(text) - 1, err, sizeof(err));
    snprintf(tok_path, sizeof(tok_path), "%s/tokenizer.json", path);
    if (tok_trainer_save(tr, tok_path, err, sizeof(err)) != 0)
        die(err);
    tok_trainer_free(tr);
    tok_tokenizer *t;
    if (tok_load(tok_path, &t, err, sizeof(err)) != 0)
        die(err);
    int vocab = (int)tok_vocab_size(t);
    tok_free(t);
    model_config c;
    model *m;
    if (model_config_init(&c, "gpt2", 768, 12, 12, 0, 0, 1024, vocab, err, sizeof(err)) != 0 ||
        model_new(&c, 1, &m, err, sizeof(err)) != 0 || model_save(m, path, err, sizeof(err)) != 0)
        die(err);
    /* what a token reads: every weight but the position table, of which
     * it reads one row */
    *weight_bytes = (model_param_count(m) - (size_t)c.context * c.d_model) * sizeof(float);
    model_free(m);
}

static pid_t spawn(char *const argv[], const char *log) {
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed");
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("no free port");
    close(fd);
    return ntohs(a.sin_port);
}

/* Waits until url answers 200 (10 s at most). */
static void wait_ok(const char *url, const char *server) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "curl -sf -o /dev/null '%s'", url);
    for (int i = 0; i < 200; i++) {
        if (system(cmd) == 0)
            return;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    fprintf(stderr, NAME ": %s did not answer %s\n", server, url);
    exit(1);
}

/* What wrk measured: requests/s and, with --latency, the 50th and 99th
 * percentiles of latency in ms. */
typedef struct wrk_figures {
    double rps, p50_ms, p99_ms;
} wrk_figures;

/* wrk's milliseconds from its "1.23ms", "456.78us" or "1.02s". */
static double wrk_ms(const char *v) {
    char unit[8] = "";
    double x = 0;
    if (sscanf(v, "%lf%7s", &x, unit) < 1)
        return -1;
    return strcmp(unit, "us") == 0 ? x / 1000 : strcmp(unit, "s") == 0 ? x * 1000 : x;
}

/* Runs wrk with options at url; any non-2xx answer or socket error makes
 * the figures void (the bench stops). */
static wrk_figures wrk_run(const char *options, const char *url) {
    char cmd[1024], line[512], v[64];
    snprintf(cmd, sizeof(cmd), "wrk %s '%s' 2>&1", options, url);
    FILE *p = popen(cmd, "r");
    if (!p)
        die("cannot run wrk");
    wrk_figures w = {0, -1, -1};
    int bad = 0;
    while (fgets(line, sizeof(line), p)) {
        sscanf(line, "Requests/sec: %lf", &w.rps);
        if (sscanf(line, " 50%% %63s", v) == 1)
            w.p50_ms = wrk_ms(v);
        if (sscanf(line, " 99%% %63s", v) == 1)
            w.p99_ms = wrk_ms(v);
        if (strstr(line, "Non-2xx") || strstr(line, "Socket errors"))
            bad = 1, fputs(line, stderr);
    }
    if (pclose(p) != 0 || w.rps <= 0 || bad)
        die("wrk failed or saw errors (is wrk installed?)");
    return w;
}

static double wrk(const char *url) { return wrk_run("-t1 -c50 -d5s", url).rps; }

static double nginx_rps(const char *body) {
    char conf[128], www[128], path[160], url[96], prefix[96];
    int port = free_port();
    snprintf(www, sizeof(www), "%s/www", dir);
    snprintf(prefix, sizeof(prefix), "%s/", dir);
    mkdir(www, 0755);
    snprintf(path, sizeof(path), "%s/health", www);
    FILE *f = fopen(path, "w");
    fputs(body, f);
    fclose(f);
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    f = fopen(conf, "w");
    fprintf(f,
            "worker_processes 1;\nerror_log %s/nginx.err;\npid %s/nginx.pid;\n"
            "events { worker_connections 1024; }\n"
            "http { access_log off; default_type application/json;\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  server { listen 127.0.0.1:%d; location / { root %s; } } }\n",
            dir, dir, dir, dir, dir, dir, dir, port, www);
    fclose(f);
    char log[128];
    snprintf(log, sizeof(log), "%s/nginx.out", dir);
    pid_t pid =
        spawn((char *[]){"nginx", "-p", prefix, "-c", conf, "-g", "daemon off;", NULL}, log);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    wait_ok(url, "nginx (is nginx-light installed?)");
    double rps = wrk(url);
    stop(pid);
    return rps;
}

/* The answer in path must say it generated n tokens. */
static void check_answer(const char *out, int n) {
    FILE *f = fopen(out, "r");
    char text[65536];
    size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f)
        fclose(f);
    text[len] = 0;
    const char *u = strstr(text, "\"completion_tokens\": ");
    if (!u || atoi(u + 21) != n) {
        fprintf(stderr, NAME ": asked %d tokens, got: %s\n", n, text);
        exit(1);
    }
}

/* The wall time of streams completions of n tokens each, sent at once,
 * until the last one ends; each answer must say n. */
static double completions(int port, int streams, int n) {
    char cmd[1024], out[128];
    snprintf(cmd, sizeof(cmd),
             "pids=; for i in $(seq %d); do curl -sf -o %s/answer-$i.json "
             "http://127.0.0.1:%d/v1/completions -d '{\"prompt\": \"A pipeline\", "
             "\"max_tokens\": %d, \"temperature\": 0}' & pids=\"$pids $!\"; done; "
             "fail=0; for p in $pids; do wait $p || fail=1; done; exit $fail",
             streams, dir, port, n);
    double t = timed(NAME, "completions", cmd);
    for (int i = 1; i <= streams; i++) {
        snprintf(out, sizeof(out), "%s/answer-%d.json", dir, i);
        check_answer(out, n);
    }
    return t;
}

static double completion(int port, int n) { return completions(port, 1, n); }

/* Decode tokens/s of streams at once: the difference of a long and a short
 * generation per stream (best of two), so the requests and prompts are
 * not in it. */
static double decode_rate(int port, int streams, int reps) {
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double dt = completions(port, streams, 144) - completions(port, streams, 16);
        best = dt < best ? dt : best;
    }
    return streams * 128 / best;
}

static pid_t start_serve(const char *model_dir, const char *parallel, const char *port_file,
                         const char *log, int *port) {
    unlink(port_file);
    pid_t pid =
        spawn((char *[]){SLUICE_SERVE_BIN, "--model", (char *)model_dir, "--listen", "127.0.0.1:0",
                         "--port-file", (char *)port_file, "--parallel", (char *)parallel, NULL},
              log);
    *port = wait_port(NAME, "sluice serve", port_file, pid);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", *port);
    wait_ok(url, "sluice serve");
    return pid;
}

/* Single-thread memory read rate, bytes/s: best of 5 reads of a buffer of
 * the model's size (decoding runs on one thread). */
static double bandwidth(size_t bytes) {
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *p = malloc(n * sizeof(uint64_t)), sink = 0;
    if (!p)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        p[i] = i;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        sink += read_all(p, n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(p);
    if (sink == 42)
        puts("");
    return (double)(n * sizeof(uint64_t)) / best;
}

int main(void) {
    snprintf(dir, sizeof(dir), "/tmp/bench-serve-XXXXXX");
    /* nginx's worker (user nobody under root) reads the file in it */
    if (!mkdtemp(dir) || chmod(dir, 0755) != 0)
        die("cannot make a temporary folder");
    char model_dir[96], port_file[96], log[96], cmd[256];
    snprintf(model_dir, sizeof(model_dir), "%s/model", dir);
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    snprintf(log, sizeof(log), "%s/serve.log", dir);
    size_t weight_bytes;
    make_model(model_dir, &weight_bytes);

    /* the servers' traces (on, as by default) go to a store of the run's */
    char store[96];
    snprintf(store, sizeof(store), "%s/store", dir);
    setenv("SLUICE_HOME", store, 1);
    int port;
    pid_t pid = start_serve(model_dir, "1", port_file, log, &port);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    double ours = wrk(url);
    double theirs = nginx_rps("{\"status\": \"ok\"}\n");
    printf("GET /health, wrk -t1 -c50 -d5s (requests/s)\n");
    printf("  sluice serve  %10.0f\n", ours);
    printf("  nginx static  %10.0f\n", theirs);
    printf("  ratio         %10.0f%%   (goal >= 50%%)\n", 100 * ours / theirs);

    completion(port, 4); /* warm: the weights paged in */
    double rate = decode_rate(port, 1, 3), bw = bandwidth(weight_bytes),
           bound = bw / (double)weight_bytes;
    printf("single-stream decode, GPT-2-small-shaped (12 x 768, %.0f MB of F32 weights)\n",
           (double)weight_bytes / 1e6);
    printf("  sluice serve  %10.1f tokens/s\n", rate);
    printf("  bound         %10.1f tokens/s   (read bandwidth %.1f GB/s, one thread)\n", bound,
           bw / 1e9);
    printf("  ratio         %10.0f%%\n", 100 * rate / bound);
    stop(pid);

    /* Load: chat completions from 4 connections on 2 slots for a fixed time;
     * every answer must be a 200 (the queue holds the other two). */
    pid = start_serve(model_dir, "2", port_file, log, &port);
    char script[128], chat_url[96];
    snprintf(script, sizeof(script), "%s/chat.lua", dir);
    FILE *lua = fopen(script, "w");
    if (!lua)
        die("cannot write the wrk script");
    fputs("wrk.method = \"POST\"\n"
          "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
          "wrk.body = '{\"messages\": [{\"role\": \"user\", \"content\": \"What is a "
          "pipeline?\"}], \"max_tokens\": 8, \"temperature\": 0}'\n",
          lua);
    fclose(lua);
    snprintf(chat_url, sizeof(chat_url), "http://127.0.0.1:%d/v1/chat/completions", port);
    snprintf(cmd, sizeof(cmd), "-t2 -c4 -d5s --timeout 30s --latency -s '%s'", script);
    wrk_figures load = wrk_run(cmd, chat_url);
    printf("POST /v1/chat/completions (8 tokens) under wrk -t2 -c4 -d5s, --parallel 2: no "
           "non-2xx\n");
    printf("  %.1f requests/s   latency p50 %.0f ms   p99 %.0f ms\n", load.rps, load.p50_ms,
           load.p99_ms);
    stop(pid);

    printf("aggregate decode, N streams at once on sluice serve --parallel N (%ld cores; the\n"
           "slots' decode steps batched into one)\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    static const char *const parallel[] = {"1", "2", "4"};
    for (int i = 0; i < 3; i++) {
        int n = atoi(parallel[i]);
        pid = start_serve(model_dir, parallel[i], port_file, log, &port);
        completions(port, n, 4);
        double agg = decode_rate(port, n, 2);
        printf("  --parallel %d  %10.1f tokens/s   %3.0f%% of the single-stream bound, %.2fx one "
               "stream\n",
               n, agg, 100 * agg / bound, agg / rate);
        stop(pid);
    }
    printf("batched decode step in process (OpenBLAS on one thread), B decoders 32 positions in\n");
    openblas_set_num_threads(1);
    for (int B = 2; B <= 8; B *= 2) {
        double alone, batched;
        batch_rates(model_dir, B, &alone, &batched);
        printf("  B = %d  %7.1f tokens/s batched, %7.1f one by one: %.2fx\n", B, batched, alone,
               batched / alone);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
