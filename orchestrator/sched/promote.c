/* promote.c - the promote step, which sluice provides itself.
 *
 * Plugins build on the SDK alone and never open the metadata store: only
 * the orchestrator writes it, and LMDB must not be opened twice in one
 * process. So 'uses: promote' is declared like a plugin's step (its ports
 * and parameters are static data the registry checks pipelines against)
 * but the scheduler runs it itself, on its loop, in the run's own metadata
 * handle: one write transaction that checks the gates and moves the alias
 * (metadata/modelreg.h), as 'sluice models promote' does. Its sl_step.run
 * is never called; should anything call it, it fails saying so. */
#include "run_internal.h"

#include "modelreg.h"

static int promote_elsewhere(sl_ctx *ctx) {
    return sl_fail(ctx, "the promote step runs inside 'sluice run' only");
}

static const sl_port promote_inputs[] = {
    {"model", "model", "the model to promote: a version of model_name (a train step's model)", 0},
    {"metrics", "metrics",
     "an evaluation's figures (a JSON object), over those the registry links to the model", 1},
    {NULL, NULL, NULL, 0},
};
static const sl_port promote_outputs[] = {{NULL, NULL, NULL, 0}};
static const sl_param promote_params[] = {
    {"model_name", SL_PARAM_STRING, "\"\"", "the registry's model, \"\": the pipeline's name", 0},
    {"alias", SL_PARAM_STRING, NULL, "the alias to point at the model: staging, production, ...",
     1},
    {"if", SL_PARAM_JSON, "[]", "a gate METRIC<=VALUE (<, >=, >, ==, !=), or a list: all must hold",
     0},
    {"better_than", SL_PARAM_STRING, "\"\"",
     "ALIAS:METRIC[:lower|:higher]: better than the version ALIAS points to", 0},
    {"reason", SL_PARAM_STRING, "\"\"", "why, for the audit trail", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step promote_steps[] = {
    {SCHED_PROMOTE_STEP, "1.0", "point a registry alias at a model version, if its gates hold",
     promote_inputs, promote_outputs, promote_params, promote_elsewhere},
};
static const sl_plugin builtin = {SL_ABI_VERSION,
                                  (uint32_t)sizeof(sl_plugin),
                                  SL_BUILD_SIGNATURE,
                                  "sluice",
                                  "1.0",
                                  promote_steps,
                                  1,
                                  NULL,
                                  NULL,
                                  (uint32_t)sizeof(sl_step),
                                  (uint32_t)sizeof(sl_port),
                                  (uint32_t)sizeof(sl_param),
                                  0,
                                  NULL,
                                  NULL};

const sl_plugin *sched_builtin_plugin(void) { return &builtin; }

int sched_is_builtin(const step *s) { return s->impl && s->impl->step->run == promote_elsewhere; }

static const char *param_str(const task *t, const char *name) {
    const task_param *p = task_find_param(t, name);
    return p && p->value && p->value->kind == VAL_STR ? p->value->u.str.s : "";
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

int sched_run_promote(attempt *at, char *why, size_t why_size) {
    run *r = at->r;
    const step *s = at->sr->s;
    const task *t = &at->t;
    const char *name = param_str(t, "model_name");
    if (!name[0])
        name = r->p->name ? r->p->name : "";
    const char *artifact = NULL;
    for (size_t i = 0; i < s->n_inputs; i++)
        if (strcmp(s->inputs[i].port, "model") == 0)
            artifact = sched_input_hash(r, &s->inputs[i]);
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
    char user[128], who[512];
    modelreg_user_name(user, sizeof(user));
    snprintf(who, sizeof(who), "%s (run %s, step %s)", user, r->run_id, s->id);
    const char *better = param_str(t, "better_than");
    modelreg_promotion p = {.name = name,
                            .artifact = artifact,
                            .alias = param_str(t, "alias"),
                            .ifs = ifs,
                            .n_ifs = n_ifs,
                            .better_than = better[0] ? better : NULL,
                            .reason = param_str(t, "reason"),
                            .who = who,
                            .time = sched_wall_now(),
                            .metrics = figures};
    int version = 0, previous = 0;
    char reg_why[1024] = "";
    int rc = r->meta_open
                 ? modelreg_promote(&r->meta, &p, &version, &previous, reg_why, sizeof(reg_why))
                 : -ENOENT;
    if (figures)
        bson_destroy(figures);
    char msg[1200];
    if (rc == MODELREG_PROMOTED) {
        if (previous)
            snprintf(msg, sizeof(msg), "%s@%d is now %s (it was version %d)", name, version,
                     p.alias, previous);
        else
            snprintf(msg, sizeof(msg), "%s@%d is now %s", name, version, p.alias);
        sched_log(at->sr, SL_LOG_INFO, msg);
        return 1;
    }
    if (rc == MODELREG_UNCHANGED) {
        sched_log(at->sr, SL_LOG_INFO, reg_why);
        return 1;
    }
    if (rc == MODELREG_REFUSED)
        snprintf(why, why_size, "promotion of %s@%d to %s refused: %s", name, version, p.alias,
                 reg_why);
    else
        snprintf(why, why_size, "cannot promote to %s: %s", p.alias,
                 reg_why[0] ? reg_why : meta_strerror(rc));
    return 0;
}
