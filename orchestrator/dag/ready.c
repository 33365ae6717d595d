#include "ready.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void make_ready(dag_ready *r, uint32_t v) {
    r->state[v] = NODE_READY;
    r->queue[r->tail++] = v;
}

int dag_ready_init(dag_ready *r, const dag *g) {
    memset(r, 0, sizeof(*r));
    r->g = g;
    r->state = malloc((g->n + 1) * sizeof(*r->state));
    r->pending = malloc((g->n + 1) * sizeof(*r->pending));
    r->queue = malloc((g->n + 1) * sizeof(*r->queue));
    r->work = malloc((g->n + 1) * sizeof(*r->work));
    if (!r->state || !r->pending || !r->queue || !r->work) {
        dag_ready_free(r);
        return -ENOMEM;
    }
    r->unfinished = g->n;
    for (size_t v = 0; v < g->n; v++) {
        r->pending[v] = g->pred_start[v + 1] - g->pred_start[v];
        r->state[v] = NODE_WAITING;
    }
    /* In topological order so that roots are queued in file order. */
    for (size_t i = 0; i < g->n; i++)
        if (r->pending[g->order[i]] == 0)
            make_ready(r, g->order[i]);
    return 0;
}

/* Releases v's successors after v is satisfied. */
static void release(dag_ready *r, uint32_t v) {
    const dag *g = r->g;
    for (uint32_t i = g->succ_start[v]; i < g->succ_start[v + 1]; i++) {
        uint32_t w = g->succ[i];
        if (--r->pending[w] == 0 && r->state[w] == NODE_WAITING)
            make_ready(r, w);
    }
}

/* Skips everything downstream of v that has not finished; returns how many. */
static size_t skip_downstream(dag_ready *r, uint32_t v) {
    const dag *g = r->g;
    size_t n = 0, top = 0;
    r->work[top++] = v;
    while (top) {
        uint32_t u = r->work[--top];
        for (uint32_t i = g->succ_start[u]; i < g->succ_start[u + 1]; i++) {
            uint32_t w = g->succ[i];
            if (r->state[w] == NODE_WAITING || r->state[w] == NODE_READY) {
                r->state[w] = NODE_SKIPPED; /* once: so work never holds more than n */
                r->unfinished--;
                n++;
                r->work[top++] = w;
            }
        }
    }
    return n;
}

void dag_ready_exclude(dag_ready *r, uint32_t node, int satisfied) {
    node_state s = r->state[node];
    if (s != NODE_WAITING && s != NODE_READY)
        return;
    r->unfinished--;
    if (satisfied) {
        r->state[node] = NODE_DONE;
        release(r, node);
    } else {
        r->state[node] = NODE_SKIPPED;
    }
}

int dag_ready_next(dag_ready *r, uint32_t *node) {
    while (r->head < r->tail) {
        uint32_t v = r->queue[r->head++];
        if (r->state[v] != NODE_READY)
            continue; /* excluded or skipped after it was queued */
        r->state[v] = NODE_RUNNING;
        r->running++;
        *node = v;
        return 1;
    }
    return 0;
}

size_t dag_ready_finish(dag_ready *r, uint32_t node, int ok) {
    if (r->state[node] != NODE_RUNNING)
        return 0;
    r->running--;
    r->unfinished--;
    if (ok) {
        r->state[node] = NODE_DONE;
        release(r, node);
        return 0;
    }
    r->state[node] = NODE_FAILED;
    return skip_downstream(r, node);
}

/* Grows one array of r to n + 1 items of size bytes each. */
static int grow_array(void *pp, size_t n, size_t size) {
    void **p = pp, *grown = realloc(*p, (n + 1) * size);
    if (!grown)
        return -ENOMEM;
    *p = grown;
    return 0;
}

int dag_ready_grow(dag_ready *r, size_t n_old) {
    const dag *g = r->g;
    if (grow_array(&r->state, g->n, sizeof(*r->state)) ||
        grow_array(&r->pending, g->n, sizeof(*r->pending)) ||
        grow_array(&r->queue, g->n, sizeof(*r->queue)) ||
        grow_array(&r->work, g->n, sizeof(*r->work)))
        return -ENOMEM;
    for (size_t v = n_old; v < g->n; v++)
        r->state[v] = NODE_WAITING;
    r->unfinished += g->n - n_old;
    for (size_t i = 0; i < g->n; i++) {
        uint32_t v = g->order[i];
        if (r->state[v] != NODE_WAITING)
            continue;
        r->pending[v] = 0;
        for (uint32_t e = g->pred_start[v]; e < g->pred_start[v + 1]; e++)
            r->pending[v] += r->state[g->pred[e]] != NODE_DONE;
        if (r->pending[v] == 0)
            make_ready(r, v);
    }
    return 0;
}

int dag_ready_idle(const dag_ready *r) {
    if (r->running)
        return 0;
    for (size_t i = r->head; i < r->tail; i++)
        if (r->state[r->queue[i]] == NODE_READY)
            return 0;
    return 1;
}

void dag_ready_free(dag_ready *r) {
    free(r->state);
    free(r->pending);
    free(r->queue);
    free(r->work);
    memset(r, 0, sizeof(*r));
}
