/* metrics.c - sluice-serve's counters and their Prometheus text
 * (serve_metrics.h). Statuses are few: a small table of those seen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_metrics.h"

#define MAX_STATUSES 24

static const char *const route_names[ROUTE_COUNT] = {
    "/health",        "/v1/models", "/v1/chat/completions", "/v1/completions", "/metrics",
    "/v1/embeddings", "/rag",       "/admin/reload",        "/hooks",          "other",
    "none",
};

const char *metrics_route_name(metrics_route route) {
    return route < ROUTE_COUNT ? route_names[route] : "other";
}

/* Request latency buckets, seconds: from a /health answer to a long
 * generation. */
static const double bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                1,     2.5,   5,    10,    30,   60,  120};
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct metrics {
    int statuses[MAX_STATUSES];
    int n_statuses;
    uint64_t requests[ROUTE_COUNT][MAX_STATUSES];
    uint64_t buckets[ROUTE_COUNT][N_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    double seconds[ROUTE_COUNT];
    uint64_t count[ROUTE_COUNT];
    uint64_t prompt_tokens, generated_tokens;
    uint64_t reloads[2]; /* failed, ok */
    char model[256], version[64];
};

metrics *metrics_new(void) { return calloc(1, sizeof(metrics)); }

void metrics_free(metrics *m) { free(m); }

void metrics_request(metrics *m, metrics_route route, int status, double seconds) {
    int k = 0;
    while (k < m->n_statuses && m->statuses[k] != status)
        k++;
    if (k == m->n_statuses) {
        if (k == MAX_STATUSES)
            k--; /* more statuses than sluice-serve answers with: lumped with the last */
        else
            m->statuses[m->n_statuses++] = status;
    }
    m->requests[route][k]++;
    size_t b = 0;
    while (b < N_BOUNDS && seconds > bounds[b])
        b++;
    m->buckets[route][b]++;
    m->seconds[route] += seconds;
    m->count[route]++;
}

void metrics_tokens(metrics *m, long prompt, long generated) {
    m->prompt_tokens += (uint64_t)(prompt > 0 ? prompt : 0);
    m->generated_tokens += (uint64_t)(generated > 0 ? generated : 0);
}

void metrics_reload(metrics *m, int ok) { m->reloads[ok ? 1 : 0]++; }

void metrics_model(metrics *m, const char *name, const char *version) {
    snprintf(m->model, sizeof(m->model), "%s", name ? name : "");
    snprintf(m->version, sizeof(m->version), "%s", version ? version : "");
}

/* s as a label value: backslash, quote and newline escaped, as the text
 * format asks. */
static void label(api_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            api_buf_add(b, "\\", 1);
        if (*s == '\n')
            api_buf_add(b, "\\n", 2);
        else
            api_buf_add(b, s, 1);
    }
}

void metrics_write(const metrics *m, api_buf *b, int queued, int running, unsigned connections,
                   int ready) {
    api_buf_printf(b, "# HELP sluice_serve_requests_total Requests answered, by route and "
                      "status (499: the client left first).\n"
                      "# TYPE sluice_serve_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int k = 0; k < m->n_statuses; k++)
            if (m->requests[r][k])
                api_buf_printf(b, "sluice_serve_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                               route_names[r], m->statuses[k],
                               (unsigned long long)m->requests[r][k]);
    api_buf_printf(b, "# HELP sluice_serve_request_duration_seconds Time from a request's "
                      "head to its answer's last byte queued.\n"
                      "# TYPE sluice_serve_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        if (!m->count[r])
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k <= N_BOUNDS; k++) {
            cum += m->buckets[r][k];
            if (k < N_BOUNDS)
                api_buf_printf(b,
                               "sluice_serve_request_duration_seconds_bucket{route=\"%s\","
                               "le=\"%g\"} %llu\n",
                               route_names[r], bounds[k], (unsigned long long)cum);
            else
                api_buf_printf(b,
                               "sluice_serve_request_duration_seconds_bucket{route=\"%s\","
                               "le=\"+Inf\"} %llu\n",
                               route_names[r], (unsigned long long)cum);
        }
        api_buf_printf(b, "sluice_serve_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                       route_names[r], m->seconds[r]);
        api_buf_printf(b, "sluice_serve_request_duration_seconds_count{route=\"%s\"} %llu\n",
                       route_names[r], (unsigned long long)m->count[r]);
    }
    api_buf_printf(b,
                   "# HELP sluice_serve_prompt_tokens_total Prompt tokens of generations "
                   "(cancelled ones too).\n# TYPE sluice_serve_prompt_tokens_total counter\n"
                   "sluice_serve_prompt_tokens_total %llu\n"
                   "# HELP sluice_serve_generated_tokens_total Tokens generated.\n"
                   "# TYPE sluice_serve_generated_tokens_total counter\n"
                   "sluice_serve_generated_tokens_total %llu\n",
                   (unsigned long long)m->prompt_tokens, (unsigned long long)m->generated_tokens);
    api_buf_printf(b,
                   "# HELP sluice_serve_requests_queued Generations waiting for a slot.\n"
                   "# TYPE sluice_serve_requests_queued gauge\nsluice_serve_requests_queued %d\n"
                   "# HELP sluice_serve_requests_running Generations running.\n"
                   "# TYPE sluice_serve_requests_running gauge\nsluice_serve_requests_running %d\n"
                   "# HELP sluice_serve_connections Open client connections.\n"
                   "# TYPE sluice_serve_connections gauge\nsluice_serve_connections %u\n"
                   "# HELP sluice_serve_ready 1 once the model is loaded.\n"
                   "# TYPE sluice_serve_ready gauge\nsluice_serve_ready %d\n",
                   queued, running, connections, ready);
    api_buf_printf(b,
                   "# HELP sluice_serve_reloads_total Model reloads by POST /admin/reload, by "
                   "result (failed: the model served before is kept).\n"
                   "# TYPE sluice_serve_reloads_total counter\n"
                   "sluice_serve_reloads_total{result=\"ok\"} %llu\n"
                   "sluice_serve_reloads_total{result=\"failed\"} %llu\n",
                   (unsigned long long)m->reloads[1], (unsigned long long)m->reloads[0]);
    if (!m->model[0])
        return;
    api_buf_printf(b, "# HELP sluice_serve_model_info The model served: its id and version.\n"
                      "# TYPE sluice_serve_model_info gauge\nsluice_serve_model_info{model=\"");
    label(b, m->model);
    api_buf_add(b, "\",version=\"", 11);
    label(b, m->version);
    api_buf_add(b, "\"} 1\n", 5);
}
