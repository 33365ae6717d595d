/* promote.c - the promote step, which sluice provides itself (builtin.c):
 * one write transaction that checks the gates and moves the alias
 * (metadata/modelreg.h), as 'sluice models promote' does, in the run's own
 * metadata handle. The deploy step promotes through it too. */
#include "run_internal.h"

#include "modelreg.h"

const char *sched_param_str(const task *t, const char *name) {
    const task_param *p = task_find_param(t, name);
    return p && p->value && p->value->kind == VAL_STR ? p->value->u.str.s : "";
}

const char *sched_model_name(const attempt *at) {
    const char *name = sched_param_str(&at->t, "model_name");
    return name[0] ? name : at->r->p->name ? at->r->p->name : "";
}

const char *sched_input_artifact(const attempt *at, const char *port) {
    const step *s = at->sr->s;
    for (size_t i = 0; i < s->n_inputs; i++)
        if (strcmp(s->inputs[i].port, port) == 0)
            return sched_input_hash(at->r, &s->inputs[i]);
    return NULL;
}

/* The figures of the metrics input: the numbers of its JSON object. */
static int read_figures(const char *path, bson_t **out, char *why, size_t why_size) {
    *out = NULL;
    if (!path)
        return 0;
    bson_error_t err = {0};
    bson_json_reader_t *reader = bson_json_reader_new_from_file(path, &err);
    bson_t *doc = bson_new();
    int got = reader && doc ? bson_json_reader_read(reader, doc, &err) : -1;
    if (reader)
        bson_json_reader_destroy(reader);
    if (got != 1) {
        snprintf(why, why_size, "input 'metrics' is not one JSON object: %s",
                 err.message[0] ? err.message : "it is empty");
        if (doc)
            bson_destroy(doc);
        return -EINVAL;
    }
    *out = doc;
    return 0;
}

int sched_promote(attempt *at, const modelreg_promotion *p, char *why, size_t why_size) {
    run *r = at->r;
    int version = 0, previous = 0;
    char reg_why[1024] = "";
    int rc = r->meta_open
                 ? modelreg_promote(&r->meta, p, &version, &previous, reg_why, sizeof(reg_why))
                 : -ENOENT;
    char msg[1200];
    if (rc == MODELREG_PROMOTED) {
        if (previous)
            snprintf(msg, sizeof(msg), "%s@%d is now %s (it was version %d)", p->name, version,
                     p->alias, previous);
        else
            snprintf(msg, sizeof(msg), "%s@%d is now %s", p->name, version, p->alias);
        sched_log(at->sr, SL_LOG_INFO, msg);
        return 1;
    }
    if (rc == MODELREG_UNCHANGED) {
        sched_log(at->sr, SL_LOG_INFO, reg_why);
        return 1;
    }
    if (rc == MODELREG_REFUSED)
        snprintf(why, why_size, "promotion of %s@%d to %s refused: %s", p->name, version, p->alias,
                 reg_why);
    else
        snprintf(why, why_size, "cannot promote to %s: %s", p->alias,
                 reg_why[0] ? reg_why : meta_strerror(rc));
    return 0;
}

void sched_promotion_who(const attempt *at, char *who, size_t size) {
    char user[128];
    modelreg_user_name(user, sizeof(user));
    snprintf(who, size, "%s (run %s, step %s)", user, at->r->run_id, at->sr->s->id);
}

int sched_run_promote(attempt *at, char *why, size_t why_size) {
    const task *t = &at->t;
    const task_port *mp = task_find_port(t->inputs, t->n_inputs, "metrics");
    bson_t *figures = NULL;
    if (read_figures(mp ? mp->path : NULL, &figures, why, why_size) != 0)
        return 0;
    const task_param *ifp = task_find_param(t, "if");
    const char *ifs[64];
    size_t n_ifs = 0;
    if (ifp && ifp->value && ifp->value->kind == VAL_STR && ifp->value->u.str.len)
        ifs[n_ifs++] = ifp->value->u.str.s;
    for (size_t i = 0; ifp && ifp->value && ifp->value->kind == VAL_LIST &&
                       i < ifp->value->u.list.n && n_ifs < 64;
         i++) {
        const value *v = ifp->value->u.list.items[i];
        if (v->kind != VAL_STR) {
            snprintf(why, why_size, "parameter 'if': item %zu is not a condition METRIC<=VALUE",
                     i + 1);
            if (figures)
                bson_destroy(figures);
            return 0;
        }
        ifs[n_ifs++] = v->u.str.s;
    }
    char who[512];
    sched_promotion_who(at, who, sizeof(who));
    const char *better = sched_param_str(t, "better_than");
    modelreg_promotion p = {.name = sched_model_name(at),
                            .artifact = sched_input_artifact(at, "model"),
                            .alias = sched_param_str(t, "alias"),
                            .ifs = ifs,
                            .n_ifs = n_ifs,
                            .better_than = better[0] ? better : NULL,
                            .reason = sched_param_str(t, "reason"),
                            .who = who,
                            .time = sched_wall_now(),
                            .metrics = figures};
    int ok = sched_promote(at, &p, why, why_size);
    if (figures)
        bson_destroy(figures);
    return ok;
}
