#include <criterion/criterion.h>
#include <stdlib.h>

#include "dag.h"
#include "ready.h"

#define E(a, b)                                                                                    \
    { a, b }

Test(dag, topological_order_keeps_file_order_where_free) {
    /* 0 -> 2, 1 -> 2, 2 -> 3, 4 alone; duplicate edge 0 -> 2. */
    dag_edge e[] = {E(2, 3), E(0, 2), E(1, 2), E(0, 2)};
    dag g;
    cr_assert_eq(dag_build(&g, 5, e, 4), 0);
    cr_assert(g.acyclic);
    uint32_t want[] = {0, 1, 2, 3, 4};
    /* 4 is a root with a higher index than 0 and 1 but lower than 2: the
     * min-heap takes 0, 1, then 2 (ready) vs 4: 2 first. */
    for (int i = 0; i < 5; i++)
        cr_expect_eq(g.order[i], want[i], "order[%d] = %u", i, g.order[i]);
    cr_expect_eq(g.succ_start[1] - g.succ_start[0], 1, "the duplicate edge counts once");
    cr_expect_eq(g.level[0], 0);
    cr_expect_eq(g.level[2], 1);
    cr_expect_eq(g.level[3], 2);
    cr_expect_eq(g.level[4], 0);
    cr_expect_eq(g.n_levels, 3);
    dag_free(&g);
}

Test(dag, levels_follow_the_longest_path) {
    dag_edge e[] = {E(0, 1), E(1, 2), E(0, 2)};
    dag g;
    cr_assert_eq(dag_build(&g, 3, e, 3), 0);
    cr_expect_eq(g.level[2], 2);
    dag_free(&g);
}

Test(dag, every_cyclic_component_reports_one_shortest_cycle) {
    /* 0->1->2->0 plus chord 1->0; 3 self-loop; 4->5->4; 6 acyclic. */
    dag_edge e[] = {E(0, 1), E(1, 2), E(2, 0), E(1, 0), E(3, 3), E(5, 4), E(4, 5), E(6, 0)};
    dag g;
    cr_assert_eq(dag_build(&g, 7, e, 8), 0);
    cr_expect_not(g.acyclic);
    dag_cycle *c;
    size_t n;
    cr_assert_eq(dag_find_cycles(&g, &c, &n), 0);
    cr_assert_eq(n, 3);
    cr_expect_eq(c[0].n, 2, "0 -> 1 -> 0 is the shortest through 0");
    cr_expect_eq(c[0].nodes[0], 0);
    cr_expect_eq(c[0].nodes[1], 1);
    cr_expect_eq(c[1].n, 1);
    cr_expect_eq(c[1].nodes[0], 3);
    cr_expect_eq(c[2].n, 2);
    cr_expect_eq(c[2].nodes[0], 4);
    cr_expect_eq(c[2].nodes[1], 5);
    dag_cycles_free(c, n);
    dag_free(&g);
}

Test(dag, a_long_chain_does_not_exhaust_the_stack) {
    size_t n = 200000;
    dag_edge *e = malloc(n * sizeof(*e));
    for (size_t i = 0; i + 1 < n; i++)
        e[i] = (dag_edge){(uint32_t)i, (uint32_t)i + 1};
    e[n - 1] = (dag_edge){(uint32_t)n - 1, 0};
    dag g;
    cr_assert_eq(dag_build(&g, n, e, n), 0);
    dag_cycle *c;
    size_t nc;
    cr_assert_eq(dag_find_cycles(&g, &c, &nc), 0);
    cr_assert_eq(nc, 1);
    cr_expect_eq(c[0].n, n);
    dag_cycles_free(c, nc);
    dag_free(&g);
    free(e);
}

static size_t take_all(dag_ready *r, uint32_t *out) {
    size_t n = 0;
    uint32_t v;
    while (dag_ready_next(r, &v))
        out[n++] = v;
    return n;
}

Test(ready, nodes_start_when_all_inputs_are_done) {
    /* diamond 0 -> {1, 2} -> 3 */
    dag_edge e[] = {E(0, 1), E(0, 2), E(1, 3), E(2, 3)};
    dag g;
    cr_assert_eq(dag_build(&g, 4, e, 4), 0);
    dag_ready r;
    cr_assert_eq(dag_ready_init(&r, &g), 0);
    uint32_t got[4];
    cr_assert_eq(take_all(&r, got), 1);
    cr_expect_eq(got[0], 0);
    cr_expect_not(dag_ready_idle(&r));
    dag_ready_finish(&r, 0, 1);
    cr_assert_eq(take_all(&r, got), 2, "both branches run at once");
    dag_ready_finish(&r, 1, 1);
    cr_expect_eq(take_all(&r, got), 0, "3 still waits for 2");
    dag_ready_finish(&r, 2, 1);
    cr_assert_eq(take_all(&r, got), 1);
    cr_expect_eq(got[0], 3);
    dag_ready_finish(&r, 3, 1);
    cr_expect(dag_ready_idle(&r));
    cr_expect_eq(r.unfinished, 0);
    dag_ready_free(&r);
    dag_free(&g);
}

Test(ready, a_failure_skips_exactly_its_descendants) {
    /* 0 -> 1 -> 2, 0 -> 3, 4 -> 2, 5 independent */
    dag_edge e[] = {E(0, 1), E(1, 2), E(0, 3), E(4, 2)};
    dag g;
    cr_assert_eq(dag_build(&g, 6, e, 4), 0);
    dag_ready r;
    cr_assert_eq(dag_ready_init(&r, &g), 0);
    uint32_t got[6];
    cr_assert_eq(take_all(&r, got), 3); /* 0, 4, 5 */
    dag_ready_finish(&r, 0, 1);
    cr_assert_eq(take_all(&r, got), 2); /* 1, 3 */
    cr_expect_eq(dag_ready_finish(&r, 1, 0), 1, "only 2 is downstream of 1");
    cr_expect_eq(r.state[2], NODE_SKIPPED);
    cr_expect_eq(r.state[3], NODE_RUNNING);
    dag_ready_finish(&r, 3, 1);
    dag_ready_finish(&r, 4, 1);
    dag_ready_finish(&r, 5, 1);
    cr_expect_eq(take_all(&r, got), 0, "a skipped node never becomes ready");
    cr_expect(dag_ready_idle(&r));
    cr_expect_eq(r.unfinished, 0);
    dag_ready_free(&r);
    dag_free(&g);
}

Test(ready, excluded_nodes) {
    dag_edge e[] = {E(0, 1), E(1, 2)};
    dag g;
    cr_assert_eq(dag_build(&g, 3, e, 2), 0);
    dag_ready r;
    cr_assert_eq(dag_ready_init(&r, &g), 0);
    dag_ready_exclude(&r, 0, 1); /* cached: satisfies 1 */
    uint32_t v;
    cr_assert(dag_ready_next(&r, &v));
    cr_expect_eq(v, 1);
    dag_ready_exclude(&r, 2, 0);
    dag_ready_finish(&r, 1, 1);
    cr_expect_not(dag_ready_next(&r, &v));
    cr_expect(dag_ready_idle(&r));
    dag_ready_free(&r);
    dag_free(&g);
}

Test(ready, a_grown_graph_keeps_states_and_readies_its_new_nodes) {
    /* 0 -> 1 (a template) -> 2, and 3 -> 2 still running; 1 expands into
     * 4 and 5: 0 -> {4, 5} -> 2. */
    dag_edge e[] = {E(0, 1), E(1, 2), E(3, 2)};
    dag g;
    cr_assert_eq(dag_build(&g, 4, e, 3), 0);
    dag_ready r;
    cr_assert_eq(dag_ready_init(&r, &g), 0);
    uint32_t got[6];
    cr_assert_eq(take_all(&r, got), 2); /* 0 and 3 */
    dag_ready_finish(&r, 0, 1);
    cr_assert_eq(take_all(&r, got), 1);
    cr_expect_eq(got[0], 1);
    dag_edge grown[] = {E(0, 1), E(3, 2), E(0, 4), E(0, 5), E(4, 2), E(5, 2)};
    dag_free(&g);
    cr_assert_eq(dag_build(&g, 6, grown, 6), 0);
    cr_assert_eq(dag_ready_grow(&r, 4), 0);
    cr_expect_eq(r.state[3], NODE_RUNNING, "a running node stays so");
    dag_ready_finish(&r, 1, 1);
    cr_assert_eq(take_all(&r, got), 2, "both new nodes are ready: 0 is done");
    cr_expect(got[0] == 4 && got[1] == 5);
    dag_ready_finish(&r, 4, 1);
    dag_ready_finish(&r, 5, 1);
    cr_expect_eq(take_all(&r, got), 0, "2 still waits for 3");
    dag_ready_finish(&r, 3, 1);
    cr_assert_eq(take_all(&r, got), 1);
    cr_expect_eq(got[0], 2);
    dag_ready_finish(&r, 2, 1);
    cr_expect(dag_ready_idle(&r));
    cr_expect_eq(r.unfinished, 0);
    dag_ready_free(&r);
    dag_free(&g);
}
