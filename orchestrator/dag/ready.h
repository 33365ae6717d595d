/* ready.h - which nodes of an acyclic dag may start now.
 *
 * The scheduler's bookkeeping, apart from any event loop: a node becomes
 * ready when all its predecessors have succeeded; when one fails, every node
 * downstream of it is skipped while independent branches go on. Each call
 * is O(edges touched), so a run of n steps costs O(n + edges) in all. */
#ifndef SLUICE_DAG_READY_H
#define SLUICE_DAG_READY_H

#include <stddef.h>
#include <stdint.h>

#include "dag.h"

typedef enum {
    NODE_WAITING, /* some predecessor has not finished */
    NODE_READY,   /* may start: queued for dag_ready_next() */
    NODE_RUNNING,
    NODE_DONE,
    NODE_FAILED,
    NODE_SKIPPED, /* downstream of a failure, or excluded from the run */
} node_state;

typedef struct dag_ready {
    const dag *g; /* borrowed: must outlive the tracker */
    node_state *state;
    uint32_t *pending; /* unfinished predecessors per node */
    uint32_t *queue;   /* ready nodes, FIFO in the order they became ready */
    size_t head, tail;
    uint32_t *work;             /* scratch for skipping, allocated up front so that
                          recording a failure cannot itself fail */
    size_t running, unfinished; /* unfinished: not DONE, FAILED or SKIPPED */
} dag_ready;

/* g must be acyclic. Returns 0 or -ENOMEM. Roots are ready at once. */
int dag_ready_init(dag_ready *r, const dag *g);

/* Marks node as not part of this run before anything starts (for --only,
 * --from, or a cached step): treated as done for its successors when
 * satisfied is set, as skipped otherwise. */
void dag_ready_exclude(dag_ready *r, uint32_t node, int satisfied);

/* Takes the next ready node (now RUNNING). Returns 1 and *node, or 0 when
 * nothing is ready at the moment. */
int dag_ready_next(dag_ready *r, uint32_t *node);

/* Records that a RUNNING node finished. On failure the nodes downstream
 * become SKIPPED; their count is returned (0 on success). */
size_t dag_ready_finish(dag_ready *r, uint32_t node, int ok);

/* Takes r over to g, the graph it follows grown by nodes n_old..g->n-1 and
 * with edges changed (a fan-out made at run time: its instances, and the
 * steps reading them): r->g must be g's address, the grown graph in the
 * same place. Nodes keep their states; each waiting one waits again for
 * its predecessors in g that are not done, and is ready when none is.
 * Returns 0, or -ENOMEM with r as it was (but for its arrays' size). */
int dag_ready_grow(dag_ready *r, size_t n_old);

/* Nothing is running or ready and nothing more can become ready. */
int dag_ready_idle(const dag_ready *r);

void dag_ready_free(dag_ready *r);

#endif
