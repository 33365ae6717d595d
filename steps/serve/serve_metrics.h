/* serve_metrics.h - sluice-serve's counters, in Prometheus's text
 * exposition format (version 0.0.4) for GET /metrics. Updated and read on
 * the loop's thread only. */
#ifndef SLUICE_SERVE_METRICS_H
#define SLUICE_SERVE_METRICS_H

#include <stdint.h>

#include "serve_api.h"

/* The routes counted apart; anything else is ROUTE_OTHER, and a request
 * refused before its route was read ROUTE_NONE. */
typedef enum metrics_route {
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_CHAT,
    ROUTE_COMPLETIONS,
    ROUTE_METRICS,
    ROUTE_EMBEDDINGS,
    ROUTE_RAG,
    ROUTE_RELOAD,
    ROUTE_HOOKS, /* POST /hooks/NAME, whatever NAME */
    ROUTE_OTHER,
    ROUTE_NONE,
    ROUTE_COUNT
} metrics_route;

typedef struct metrics metrics;

/* The route's label ("/v1/chat/completions", "other", ...). */
const char *metrics_route_name(metrics_route route);

/* NULL when out of memory; metrics_free ends it. */
metrics *metrics_new(void);
void metrics_free(metrics *m);
/* One request answered (status 499: its client left first) after
 * seconds. */
void metrics_request(metrics *m, metrics_route route, int status, double seconds);
void metrics_tokens(metrics *m, long prompt, long generated);
/* A reload through POST /admin/reload: ok, or failed (the old model
 * kept). */
void metrics_reload(metrics *m, int ok);
/* The model served now: its id and version label (copied; "" when none),
 * for the sluice_serve_model_info series. */
void metrics_model(metrics *m, const char *name, const char *version);
/* The text, with the gauges given now, appended to b. */
void metrics_write(const metrics *m, api_buf *b, int queued, int running, unsigned connections,
                   int ready);

#endif
