#include "dag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int by_from_to(const void *pa, const void *pb) {
    const dag_edge *a = pa, *b = pb;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    return (a->to > b->to) - (a->to < b->to);
}

/* Fills compressed rows start/adj from sorted, unique edges: keyed by from
 * (successors) or, reversed, by to (predecessors). fill is scratch of n+1. */
static void fill_rows(size_t n, const dag_edge *e, size_t m, int reverse, uint32_t *start,
                      uint32_t *adj, uint32_t *fill) {
    memset(start, 0, (n + 1) * sizeof(*start));
    for (size_t i = 0; i < m; i++)
        start[(reverse ? e[i].to : e[i].from) + 1]++;
    for (size_t v = 0; v < n; v++)
        start[v + 1] += start[v];
    memcpy(fill, start, (n + 1) * sizeof(*fill));
    for (size_t i = 0; i < m; i++) {
        if (reverse)
            adj[fill[e[i].to]++] = e[i].from;
        else
            adj[fill[e[i].from]++] = e[i].to;
    }
}

/* Kahn's algorithm with a min-heap of ready nodes, so the order is the file
 * order wherever the edges leave a choice. */
static void heap_push(uint32_t *h, size_t *n, uint32_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint32_t heap_pop(uint32_t *h, size_t *n) {
    uint32_t top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= last)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static int toposort(dag *g) {
    size_t n = g->n;
    uint32_t *indeg = malloc((n + 1) * sizeof(*indeg));
    uint32_t *heap = malloc((n + 1) * sizeof(*heap));
    if (!indeg || !heap) {
        free(indeg);
        free(heap);
        return -ENOMEM;
    }
    size_t hn = 0, done = 0;
    for (size_t v = 0; v < n; v++) {
        indeg[v] = g->pred_start[v + 1] - g->pred_start[v];
        g->level[v] = 0;
        if (indeg[v] == 0)
            heap_push(heap, &hn, (uint32_t)v);
    }
    g->n_levels = n ? 1 : 0;
    while (hn) {
        uint32_t v = heap_pop(heap, &hn);
        g->order[done++] = v;
        for (uint32_t i = g->succ_start[v]; i < g->succ_start[v + 1]; i++) {
            uint32_t w = g->succ[i];
            if (g->level[w] < g->level[v] + 1) {
                g->level[w] = g->level[v] + 1;
                if (g->level[w] + 1 > g->n_levels)
                    g->n_levels = g->level[w] + 1;
            }
            if (--indeg[w] == 0)
                heap_push(heap, &hn, w);
        }
    }
    g->acyclic = done == n;
    free(indeg);
    free(heap);
    return 0;
}

int dag_build(dag *g, size_t n, const dag_edge *edges, size_t n_edges) {
    memset(g, 0, sizeof(*g));
    if (n > UINT32_MAX - 1 || n_edges > UINT32_MAX - 1)
        return -ENOMEM;
    dag_edge *e = malloc((n_edges + 1) * sizeof(*e));
    if (!e)
        return -ENOMEM;
    memcpy(e, edges, n_edges * sizeof(*e));
    qsort(e, n_edges, sizeof(*e), by_from_to);
    size_t m = 0;
    for (size_t i = 0; i < n_edges; i++)
        if (m == 0 || e[m - 1].from != e[i].from || e[m - 1].to != e[i].to)
            e[m++] = e[i];
    g->n = n;
    g->succ_start = malloc((n + 1) * sizeof(uint32_t));
    g->pred_start = malloc((n + 1) * sizeof(uint32_t));
    g->succ = malloc((m + 1) * sizeof(uint32_t));
    g->pred = malloc((m + 1) * sizeof(uint32_t));
    g->order = malloc((n + 1) * sizeof(uint32_t));
    g->level = malloc((n + 1) * sizeof(uint32_t));
    uint32_t *fill = malloc((n + 1) * sizeof(uint32_t));
    int rc = -ENOMEM;
    if (fill && g->succ_start && g->pred_start && g->succ && g->pred && g->order && g->level) {
        fill_rows(n, e, m, 0, g->succ_start, g->succ, fill);
        fill_rows(n, e, m, 1, g->pred_start, g->pred, fill);
        rc = toposort(g);
    }
    free(fill);
    free(e);
    if (rc)
        dag_free(g);
    return rc;
}

void dag_free(dag *g) {
    free(g->succ_start);
    free(g->succ);
    free(g->pred_start);
    free(g->pred);
    free(g->order);
    free(g->level);
    memset(g, 0, sizeof(*g));
}

/* Tarjan's strongly connected components, iteratively: pipelines of
 * thousands of steps in a chain must not exhaust the C stack. comp[v]
 * receives v's component number. */
static int tarjan(const dag *g, uint32_t *comp) {
    size_t n = g->n;
    const uint32_t NONE = UINT32_MAX;
    uint32_t *index = malloc((n + 1) * sizeof(*index));
    uint32_t *low = malloc((n + 1) * sizeof(*low));
    uint32_t *stack = malloc((n + 1) * sizeof(*stack));
    uint32_t *call = malloc((n + 1) * sizeof(*call)); /* DFS path */
    uint32_t *edge = malloc((n + 1) * sizeof(*edge)); /* next edge to try per node */
    char *on_stack = calloc(n + 1, 1);
    int rc = -ENOMEM;
    if (!index || !low || !stack || !call || !edge || !on_stack)
        goto out;
    for (size_t v = 0; v < n; v++)
        index[v] = NONE;
    uint32_t next_index = 0, next_comp = 0;
    size_t sp = 0, cp = 0;
    for (size_t root = 0; root < n; root++) {
        if (index[root] != NONE)
            continue;
        call[cp++] = (uint32_t)root;
        index[root] = low[root] = next_index++;
        edge[root] = g->succ_start[root];
        stack[sp++] = (uint32_t)root;
        on_stack[root] = 1;
        while (cp) {
            uint32_t v = call[cp - 1];
            if (edge[v] < g->succ_start[v + 1]) {
                uint32_t w = g->succ[edge[v]++];
                if (index[w] == NONE) {
                    index[w] = low[w] = next_index++;
                    edge[w] = g->succ_start[w];
                    stack[sp++] = w;
                    on_stack[w] = 1;
                    call[cp++] = w;
                } else if (on_stack[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            cp--;
            if (cp && low[v] < low[call[cp - 1]])
                low[call[cp - 1]] = low[v];
            if (low[v] == index[v]) {
                uint32_t w;
                do {
                    w = stack[--sp];
                    on_stack[w] = 0;
                    comp[w] = next_comp;
                } while (w != v);
                next_comp++;
            }
        }
    }
    rc = 0;
out:
    free(index);
    free(low);
    free(stack);
    free(call);
    free(edge);
    free(on_stack);
    return rc;
}

/* A shortest cycle through s within its component, by breadth-first search
 * from s back to s. */
static int cycle_through(const dag *g, const uint32_t *comp, uint32_t s, uint32_t *parent,
                         uint32_t *queue, dag_cycle *out) {
    const uint32_t NONE = UINT32_MAX;
    size_t head = 0, tail = 0;
    for (size_t v = 0; v < g->n; v++)
        parent[v] = NONE;
    queue[tail++] = s;
    uint32_t last = NONE;
    while (head < tail && last == NONE) {
        uint32_t v = queue[head++];
        for (uint32_t i = g->succ_start[v]; i < g->succ_start[v + 1]; i++) {
            uint32_t w = g->succ[i];
            if (comp[w] != comp[s])
                continue;
            if (w == s) {
                last = v;
                break;
            }
            if (parent[w] == NONE) {
                parent[w] = v;
                queue[tail++] = w;
            }
        }
    }
    size_t len = 1;
    for (uint32_t v = last; v != s; v = parent[v])
        len++;
    out->nodes = malloc(len * sizeof(uint32_t));
    if (!out->nodes)
        return -ENOMEM;
    out->n = len;
    size_t i = len;
    for (uint32_t v = last; v != s; v = parent[v])
        out->nodes[--i] = v;
    out->nodes[0] = s;
    return 0;
}

int dag_find_cycles(const dag *g, dag_cycle **out, size_t *count) {
    *out = NULL;
    *count = 0;
    if (g->acyclic)
        return 0;
    size_t n = g->n;
    uint32_t *comp = malloc((n + 1) * sizeof(*comp));
    uint32_t *size = calloc(n + 1, sizeof(*size));
    uint32_t *parent = malloc((n + 1) * sizeof(*parent));
    uint32_t *queue = malloc((n + 1) * sizeof(*queue));
    char *seen = calloc(n + 1, 1);
    dag_cycle *cycles = NULL;
    size_t nc = 0;
    int rc = -ENOMEM;
    if (!comp || !size || !parent || !queue || !seen || tarjan(g, comp))
        goto out;
    for (size_t v = 0; v < n; v++)
        size[comp[v]]++;
    rc = 0;
    for (size_t v = 0; v < n && rc == 0; v++) {
        int self_loop = 0;
        for (uint32_t i = g->succ_start[v]; i < g->succ_start[v + 1]; i++)
            self_loop |= g->succ[i] == v;
        if (seen[comp[v]] || (size[comp[v]] < 2 && !self_loop))
            continue;
        seen[comp[v]] = 1; /* v is the component's lowest node: loop goes up */
        dag_cycle *grown = realloc(cycles, (nc + 1) * sizeof(*cycles));
        if (!grown) {
            rc = -ENOMEM;
            break;
        }
        cycles = grown;
        rc = cycle_through(g, comp, (uint32_t)v, parent, queue, &cycles[nc]);
        if (rc == 0)
            nc++;
    }
out:
    free(comp);
    free(size);
    free(parent);
    free(queue);
    free(seen);
    if (rc) {
        dag_cycles_free(cycles, nc);
        return rc;
    }
    *out = cycles;
    *count = nc;
    return 0;
}

void dag_cycles_free(dag_cycle *cycles, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(cycles[i].nodes);
    free(cycles);
}
