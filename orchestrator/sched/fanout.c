/* fanout.c - 'foreach: STEP.OUTPUT' when the pipeline runs. The template
 * step becomes ready once the step it reads has finished; then, instead of
 * running, it reads that step's output from the store, one JSON object a
 * row, has the pipeline make one instance per row (pipeline_expand_rows:
 * the same instances a load-time 'foreach' makes), and grows the run to
 * hold them: their step runs, the graph and the ready set. From then on
 * they are steps like any other: cached, retried, recorded, submitted to
 * Slurm. */
#include "run_internal.h"

#include <bson/bson.h>

#include "value_json.h"

/* Reads the JSON Lines file path into *out, a list of values (mappings)
 * in a. Blank lines are passed over. Returns 0, -ENOMEM, or -EINVAL with
 * why saying which line (of what, as label names it) and what is wrong. */
static int read_rows(arena *a, const char *path, const char *label, value **out, char *why,
                     size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, size, "cannot read %s (%s): %s", label, path, strerror(errno));
        return -EINVAL;
    }
    value *list = value_new(a, VAL_LIST);
    value **items = NULL;
    size_t n = 0, cap = 0, line_no = 0, len = 0;
    char *line = NULL;
    ssize_t got;
    int rc = list ? 0 : -ENOMEM;
    while (rc == 0 && (got = getline(&line, &len, f)) >= 0) {
        line_no++;
        size_t k = (size_t)got;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' ||
                     line[k - 1] == '\t'))
            k--;
        size_t at = strspn(line, " \t");
        if (at >= k)
            continue;
        if (n == PIPELINE_MAX_INSTANCES) {
            snprintf(why, size, "%s has more than %d rows, the limit of instances of a step", label,
                     PIPELINE_MAX_INSTANCES);
            rc = -EINVAL;
            break;
        }
        bson_t doc, wrap = BSON_INITIALIZER;
        bson_error_t err;
        bson_iter_t it;
        int brace = line[at] == '{';
        if (!brace || !bson_init_from_json(&doc, line + at, (ssize_t)(k - at), &err)) {
            snprintf(why, size, "%s, line %zu: not a JSON object%s%s", label, line_no,
                     brace ? ": " : " (each row is one {...} on its line)",
                     brace ? err.message : "");
            bson_destroy(&wrap);
            rc = -EINVAL;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            value **grown = arena_calloc(a, cap, sizeof(*grown));
            if (!grown)
                rc = -ENOMEM;
            else if (n)
                memcpy(grown, items, n * sizeof(*grown));
            items = grown;
        }
        if (rc == 0 &&
            (!BSON_APPEND_DOCUMENT(&wrap, "r", &doc) || !bson_iter_init_find(&it, &wrap, "r")))
            rc = -ENOMEM;
        if (rc == 0 && (rc = value_from_bson(a, &it, &items[n])) == -EINVAL)
            snprintf(why, size, "%s, line %zu: a value of a kind sluice does not read", label,
                     line_no);
        n += rc == 0;
        bson_destroy(&doc);
        bson_destroy(&wrap);
    }
    free(line);
    fclose(f);
    if (rc)
        return rc;
    if (n == 0) {
        snprintf(why, size,
                 "%s has no rows: a fan-out needs at least one (as 'foreach' of an empty list "
                 "is an error)",
                 label);
        return -EINVAL;
    }
    list->u.list.items = items;
    list->u.list.n = n;
    *out = list;
    return 0;
}

/* Grows the run by the steps first..n_steps-1 the pipeline just made:
 * their step runs, the graph (rebuilt: the steps reading the template now
 * read the instances) and the ready set. Returns 0 or -ENOMEM, the run
 * then as it was but for the step runs made. */
static int grow_run(run *r, size_t first) {
    size_t n = r->p->n_steps;
    for (size_t i = first; i < n; i++) {
        int rc = sched_init_step_run(r, i);
        if (rc)
            return rc;
    }
    if (r->selection) { /* filled by the caller */
        unsigned char *grown = realloc(r->selection, n + 1);
        if (!grown)
            return -ENOMEM;
        r->selection = grown;
    }
    dag g;
    int rc = pipeline_dag(r->p, &g);
    if (rc)
        return rc;
    size_t n_old = r->g.n;
    dag_free(&r->g);
    r->g = g;
    return dag_ready_grow(&r->ready, n_old);
}

/* Makes the instances of template steps[tpl] from the rows of its source's
 * output at path (hash its content): the run's and graph --run's one way.
 * Returns 0, -ENOMEM, or -EINVAL with why (size bytes) naming the
 * artifact and what is wrong: a row, or what a row gives ${item}. */
static int expand_from(pipeline *p, uint32_t tpl, const char *path, const char *hash, char *why,
                       size_t size) {
    const step *t = &p->steps[tpl];
    char label[PIPELINE_MAX_ID * 2 + 64];
    snprintf(label, sizeof(label), "%s.%s (artifact %.12s)", t->foreach_step, t->foreach_output,
             hash);
    value *rows = NULL;
    int rc = read_rows(&p->arena, path, label, &rows, why, size);
    if (rc)
        return rc;
    diag_list d = DIAG_LIST_INIT;
    rc = pipeline_expand_rows(p, tpl, rows, &d);
    if (rc == -EINVAL && d.n)
        snprintf(why, size, "its instances cannot be made from the rows of %s: %s:%u:%u: %s%s",
                 label, d.items[0].file ? d.items[0].file : p->file, d.items[0].line,
                 d.items[0].col, d.items[0].msg, d.errors > 1 ? " (and more like it)" : "");
    diag_clear(&d);
    return rc;
}

void sched_expand(step_run *sr) {
    run *r = sr->r;
    const step *t = sr->s;
    const step_run *up = &r->steps[t->foreach_from];
    char why[2048];
    size_t out = up->n_out;
    for (size_t i = 0; i < up->n_out && out == up->n_out; i++)
        if (strcmp(up->out_names[i], t->foreach_output) == 0)
            out = i;
    sr->wall_started = sched_wall_now();
    if (up->cond_skipped) { /* skipped by a condition: so are its rows' instances */
        snprintf(why, sizeof(why), "it fans out over the rows of %s.%s, and step '%s' was skipped",
                 t->foreach_step, t->foreach_output, t->foreach_step);
        sr->cond_skipped = 1;
        sched_finish_step(sr, STEP_SKIPPED, why);
        return;
    }
    if (out == up->n_out) {
        snprintf(why, sizeof(why), "'foreach' reads %s.%s, which step '%s' did not write",
                 t->foreach_step, t->foreach_output, t->foreach_step);
        sched_finish_step(sr, STEP_FAILED, why);
        return;
    }
    size_t first = r->p->n_steps;
    int rc =
        expand_from(r->p, sr->index, up->out_paths[out], up->out_hashes[out], why, sizeof(why));
    if (rc == 0) {
        rc = grow_run(r, first);
        if (rc == 0 && r->selection)
            memset(r->selection + first, r->selection[sr->index], r->p->n_steps - first);
    }
    if (rc == -ENOMEM)
        snprintf(why, sizeof(why), "out of memory making its instances");
    if (rc) {
        sched_finish_step(sr, STEP_FAILED, why);
        return;
    }
    /* It stands for its instances now: done, with no record of its own. */
    sr->state = SR_FINISHED;
    dag_ready_finish(&r->ready, sr->index, 1);
    char msg[256];
    snprintf(msg, sizeof(msg), "%zu rows of %s.%s: instances %s[0..%zu]", r->p->n_steps - first,
             t->foreach_step, t->foreach_output, t->id, r->p->n_steps - first - 1);
    report_step_log(&r->rep, t->id, SL_LOG_INFO, msg);
}

int sched_expand_recorded(pipeline *p, const char *store_root, meta_db *m, const char *run_id,
                          char *why, size_t size) {
    artifact_store st;
    int rc = store_open(&st, store_root);
    if (rc) {
        snprintf(why, size, "cannot open the store %s: %s", store_root, strerror(-rc));
        return rc;
    }
    size_t n = p->n_steps;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const step *t = &p->steps[i];
        cache_hit hit;
        if (!step_is_template(t) || t->foreach_from == UINT32_MAX ||
            record_finished_step(m, run_id, t->foreach_step, &hit) != 1)
            continue; /* its source did not finish in that run: it stays ID[*] */
        for (size_t k = 0; rc == 0 && k < hit.n_outputs; k++) {
            char path[4096];
            store_object_path(&st, hit.outputs[k].hash, path, sizeof(path));
            if (strcmp(hit.outputs[k].name, t->foreach_output) == 0)
                rc = expand_from(p, (uint32_t)i, path, hit.outputs[k].hash, why, size);
        }
    }
    store_close(&st);
    return rc;
}
