/* dag.h - a directed graph of n nodes, checked for cycles and ordered.
 *
 * Nodes are indices 0..n-1 (steps, in file order). Edges are deduplicated:
 * two steps linked by both data and order edges depend on each other once.
 * Adjacency is kept both ways in compressed rows, so the scheduler can walk
 * successors as steps finish and predecessors to explain why one waits. */
#ifndef SLUICE_DAG_DAG_H
#define SLUICE_DAG_DAG_H

#include <stddef.h>
#include <stdint.h>

typedef struct dag_edge {
    uint32_t from, to;
} dag_edge;

typedef struct dag {
    size_t n;
    uint32_t *succ_start, *succ; /* successors of v: succ[succ_start[v] .. succ_start[v+1]) */
    uint32_t *pred_start, *pred;
    /* Filled when the graph is acyclic: a topological order (ties broken by
     * node index, so file order is kept where the edges allow), and each
     * node's level, the length of the longest path reaching it. */
    int acyclic;
    uint32_t *order;
    uint32_t *level;
    uint32_t n_levels;
} dag;

/* Builds g from edges (each from, to < n). Returns 0 or -ENOMEM; on failure
 * g is left empty. Free with dag_free(). */
int dag_build(dag *g, size_t n, const dag_edge *edges, size_t n_edges);

void dag_free(dag *g);

/* One cycle: nodes[0] -> nodes[1] -> ... -> nodes[n-1] -> nodes[0]. */
typedef struct dag_cycle {
    uint32_t *nodes;
    size_t n;
} dag_cycle;

/* Finds one cycle in each strongly connected component that has one, so a
 * graph with three separate cycles reports three. Each cycle starts at its
 * lowest-numbered node and is a shortest cycle through it. Returns 0 with
 * *out (free with dag_cycles_free()) and *count, or -ENOMEM. */
int dag_find_cycles(const dag *g, dag_cycle **out, size_t *count);
void dag_cycles_free(dag_cycle *cycles, size_t count);

#endif
