/* builtin.c - the steps sluice provides itself: promote (promote.c) and
 * deploy (deploy.c).
 *
 * Plugins build on the SDK alone and never open the metadata store: only
 * the orchestrator writes it, and LMDB must not be opened twice in one
 * process. So these steps are declared like a plugin's (their ports and
 * parameters are static data the registry checks pipelines against) but
 * the scheduler runs them itself, on its loop, in the run's own metadata
 * handle. Their sl_step.run is never called; should anything call it, it
 * fails saying so. */
#include "run_internal.h"

static int builtin_elsewhere(sl_ctx *ctx) {
    return sl_fail(ctx, "the steps sluice provides itself run inside 'sluice run' only");
}

static const sl_port promote_inputs[] = {
    {"model", "model", "the model to promote: a version of model_name (a train step's model)", 0},
    {"metrics", "metrics",
     "an evaluation's figures (a JSON object), over those the registry links to the model", 1},
    {NULL, NULL, NULL, 0},
};
static const sl_port no_outputs[] = {{NULL, NULL, NULL, 0}};
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

static const sl_port deploy_inputs[] = {
    {"model", "model", "the model to serve: a version of model_name (a train step's model)", 0},
    {"index", "index", "a retrieval index, passed to sluice serve as --index", 1},
    {NULL, NULL, NULL, 0},
};
static const sl_param deploy_params[] = {
    {"model_name", SL_PARAM_STRING, "\"\"", "the registry's model, \"\": the pipeline's name", 0},
    {"alias", SL_PARAM_STRING, "\"production\"", "the alias the model is promoted to", 0},
    {"listen", SL_PARAM_STRING, "\"127.0.0.1:8080\"",
     "where the server listens (HOST:PORT; port 0: any free one)", 0},
    {"name", SL_PARAM_STRING, "\"\"", "the model's id in /v1/models, \"\": model_name", 0},
    {"parallel", SL_PARAM_INT, "1", "generations at once (sluice serve --parallel)", 0},
    {"api_key_file", SL_PARAM_PATH, "\"\"", "Bearer keys of the API (sluice serve --api-key-file)",
     0},
    {"wait", SL_PARAM_FLOAT, "120", "seconds to wait for the server's /health or its reload", 0},
    {"reason", SL_PARAM_STRING, "\"\"", "why, for the audit trail", 0},
    {NULL, 0, NULL, NULL, 0},
};

static const sl_step builtin_steps[] = {
    {SCHED_PROMOTE_STEP, "1.0", "point a registry alias at a model version, if its gates hold",
     promote_inputs, no_outputs, promote_params, builtin_elsewhere},
    {SCHED_DEPLOY_STEP, "1.0",
     "serve a model version with sluice serve (started, or reloaded), promoted to an alias",
     deploy_inputs, no_outputs, deploy_params, builtin_elsewhere},
};
static const sl_plugin builtin = {SL_ABI_VERSION,
                                  (uint32_t)sizeof(sl_plugin),
                                  SL_BUILD_SIGNATURE,
                                  "sluice",
                                  "1.0",
                                  builtin_steps,
                                  2,
                                  NULL,
                                  NULL,
                                  (uint32_t)sizeof(sl_step),
                                  (uint32_t)sizeof(sl_port),
                                  (uint32_t)sizeof(sl_param),
                                  0,
                                  NULL,
                                  NULL};

const sl_plugin *sched_builtin_plugin(void) { return &builtin; }

int sched_is_builtin(const step *s) { return s->impl && s->impl->step->run == builtin_elsewhere; }

int sched_run_builtin(attempt *at, char *why, size_t why_size) {
    if (strcmp(at->sr->s->impl->step->name, SCHED_DEPLOY_STEP) == 0)
        return sched_run_deploy(at, why, why_size);
    return sched_run_promote(at, why, why_size);
}
