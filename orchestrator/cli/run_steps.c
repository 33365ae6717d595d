/* run_steps.c - a run's step runs in reading order (run_steps.h). */
#include "run_steps.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "inspect.h"
#include "recorded.h"

static int keep_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    step_rows *s = ud;
    step_row *rows = realloc(s->rows, (s->n + 1) * sizeof(*rows));
    char *copy = rows ? strndup(key, len) : NULL;
    if (rows)
        s->rows = rows;
    if (!copy) {
        s->failed = 1;
        return 1;
    }
    const char *slash = strchr(copy, '/');
    long i = s->p && slash ? pipeline_find_step(s->p, slash + 1) : -1;
    s->rows[s->n++] =
        (step_row){copy, i >= 0 ? (long)s->pos[i] : LONG_MAX, inspect_num(doc, "started")};
    return 0;
}

/* DAG order first (from the run's pipeline file, when it still reads), then
 * start time (a step starts after those it depends on), then the id. */
static int step_row_cmp(const void *a, const void *b) {
    const step_row *x = a, *y = b;
    if (x->dag_pos != y->dag_pos)
        return x->dag_pos < y->dag_pos ? -1 : 1;
    if (x->started != y->started)
        return x->started < y->started ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* The run's step runs, sorted (see step_row_cmp). */
int run_steps_collect(MDB_txn *txn, const meta_db *m, const char *id, const bson_t *run,
                      step_rows *s) {
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s/", id);
    pipeline *p = recorded_pipeline(run);
    dag g = {0};
    uint32_t *pos = NULL;
    if (p && pipeline_dag(p, &g) == 0 && g.acyclic &&
        (pos = calloc(p->n_steps + 1, sizeof(*pos)))) {
        for (uint32_t i = 0; i < p->n_steps; i++)
            pos[g.order[i]] = i;
        s->p = p;
        s->pos = pos;
    }
    int rc = meta_each(txn, m->steps, prefix, keep_step, s);
    if (s->rows)
        qsort(s->rows, s->n, sizeof(*s->rows), step_row_cmp);
    s->p = NULL;
    s->pos = NULL;
    free(pos);
    dag_free(&g);
    pipeline_free(p);
    return rc || s->failed ? -1 : 0;
}

void run_steps_free(step_rows *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->rows[i].key);
    free(s->rows);
}

const char *run_steps_id(const char *key) {
    const char *slash = strchr(key, '/');
    return slash ? slash + 1 : key;
}
