/* bench_dataset_gen - the steps' API client (steps/llm/llm_client.h) against
 * tests/llm_server.py answering every chat completion in 50 ms, at 1, 8 and 32 requests in
 * flight, beside the same requests sent one after another by the curl program (one process, one
 * kept-alive connection).
 *
 * The ideal at c in flight is c / 50 ms: the server's latency is the only cost. What the client
 * itself costs is its process's CPU time (getrusage: the server is another process), per request
 * and as a share of one core while it runs. Every run has prompts of its own, so none is answered
 * from the cache (which is on, in a temporary folder, as the step uses it). */
#define _XOPEN_SOURCE 700
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "llm_client.h"

#define DELAY_MS 50
#define PER_SLOT 25 /* requests per request in flight: each run lasts about 25 x 50 ms */
#define KEY "bench-key"

static char dir[64], endpoint[96];

static pid_t start_server(void) {
    char port_file[128], delay[16];
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    snprintf(delay, sizeof(delay), "%d", DELAY_MS);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", SLUICE_SOURCE_DIR "/tests/llm_server.py",
              "--port-file", port_file, "--delay-ms", delay, "--api-key", KEY, (char *)NULL);
        _exit(127);
    }
    int port = wait_port("bench_dataset_gen", "tests/llm_server.py", port_file, pid);
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/v1", port);
    return pid;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static const char *extract =
    "A scheduler orders the steps of a pipeline by their dependencies: a step runs once every "
    "step it reads from has finished, and steps with nothing between them run at once. The "
    "artifacts each step writes are kept by the hash of their content, so that a rerun with the "
    "same inputs and parameters finds them and skips the work.";

static llm_options options(int concurrency, const char *cache) {
    return (llm_options){.endpoint = endpoint,
                         .model = "bench-model",
                         .api_key = KEY,
                         .temperature = 0.7,
                         .seed = 7,
                         .concurrency = concurrency,
                         .timeout_s = 30,
                         .max_retries = 2,
                         .backoff_s = 0.5,
                         .cache_dir = cache};
}

/* The user message of request i of the run tag. */
static void prompt(char *out, size_t size, const char *tag, int i) {
    snprintf(out, size, "Extract %s-%d. Write 5 instruction-answer pairs about it.\n\n%s", tag, i,
             extract);
}

/* Sends n requests c at a time, keeping the answers in a cache folder or not; their rate, and
 * the client's CPU seconds in *cpu. */
static double run_client(int c, int n, int cached, double *cpu) {
    char cache[128], tag[16];
    snprintf(cache, sizeof(cache), "%s/cache%d", dir, c);
    snprintf(tag, sizeof(tag), "c%d%s", c, cached ? "" : "-nocache");
    llm_call *calls = calloc((size_t)n, sizeof(*calls));
    char(*texts)[640] = calloc((size_t)n, sizeof(*texts));
    if (!calls || !texts) {
        fprintf(stderr, "bench_dataset_gen: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        prompt(texts[i], sizeof(texts[i]), tag, i);
        calls[i].system = "You are a helpful assistant who generates datasets.";
        calls[i].user = texts[i];
    }
    llm_options o = options(c, cached ? cache : NULL);
    llm_totals t;
    char err[256];
    double c0 = cpu_seconds(), t0 = now();
    int rc = llm_run(&o, calls, (size_t)n, &t, NULL, NULL, NULL, err, sizeof(err));
    double wall = now() - t0;
    *cpu = cpu_seconds() - c0;
    if (rc != 0 || t.failed || t.requests != n) {
        fprintf(stderr, "bench_dataset_gen: c=%d: %s (%ld failed, %ld requests)\n", c,
                rc ? err : calls[0].error, t.failed, t.requests);
        exit(1);
    }
    llm_calls_free(calls, (size_t)n);
    free(calls);
    free(texts);
    return n / wall;
}

/* The same kind of requests, one after another, by one curl process. */
static double run_curl(int n) {
    char config[128];
    snprintf(config, sizeof(config), "%s/curl.cfg", dir);
    FILE *cfg = fopen(config, "w");
    if (!cfg) {
        perror("bench_dataset_gen");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        char body_path[128], text[640];
        snprintf(body_path, sizeof(body_path), "%s/body%d.json", dir, i);
        prompt(text, sizeof(text), "curl", i);
        llm_options o = options(1, NULL);
        FILE *b = fopen(body_path, "w");
        if (!b) {
            perror("bench_dataset_gen");
            exit(1);
        }
        /* The body as the client sends it: no JSON escaping is needed but the newlines'. */
        fprintf(
            b,
            "{\"model\": \"%s\", \"messages\": [{\"role\": \"system\", \"content\": \"You are a "
            "helpful assistant who generates datasets.\"}, {\"role\": \"user\", \"content\": \"",
            o.model);
        for (const char *p = text; *p; p++)
            fputs(*p == '\n' ? "\\n" : (char[]){*p, 0}, b);
        fprintf(b, "\"}], \"temperature\": 0.7, \"seed\": 7}");
        fclose(b);
        fprintf(cfg,
                "url = \"%s/chat/completions\"\nheader = \"Content-Type: application/json\"\n"
                "header = \"Accept: application/json\"\nheader = \"Authorization: Bearer %s\"\n"
                "header = \"Expect:\"\ndata-binary = \"@%s\"\noutput = \"/dev/null\"\n%s",
                endpoint, KEY, body_path, i + 1 < n ? "next\n" : "");
    }
    fclose(cfg);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "curl -sf --no-progress-meter --config %s", config);
    return n / timed("bench_dataset_gen", "curl", cmd);
}

int main(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-bench-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    pid_t server = start_server();
    printf("bench_dataset_gen: chat completions from tests/llm_server.py answering in %d ms; "
           "%d requests per request in flight\n",
           DELAY_MS, PER_SLOT);
    double ideal1 = 1000.0 / DELAY_MS;
    double curl_rate = run_curl(PER_SLOT);
    printf("  curl, one by one (%3d requests)      %7.1f req/s  = %3.0f%% of the ideal %.0f/s\n",
           PER_SLOT, curl_rate, 100 * curl_rate / ideal1, ideal1);
    /* Last, 32 in flight without the cache: what writing one file per answer costs. */
    const int levels[] = {1, 8, 32, 32};
    double rate1 = 0;
    for (int k = 0; k < 4; k++) {
        int c = levels[k], n = c * PER_SLOT, cached = k < 3;
        double cpu, rate = run_client(c, n, cached, &cpu);
        double ideal = c * ideal1;
        if (c == 1)
            rate1 = rate;
        printf("  llm_run, %2d in flight (%4d requests) %7.1f req/s  = %3.0f%% of the ideal "
               "%.0f/s; CPU %.3f ms/request, %.1f%% of a core%s\n",
               c, n, rate, 100 * rate / ideal, ideal, 1e3 * cpu / n, 100 * cpu * rate / n,
               cached ? "" : " (no cache)");
    }
    printf("  llm_run at 1 in flight = %.2fx curl one by one\n", rate1 / curl_rate);
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
