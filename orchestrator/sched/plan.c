#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "cache.h"
#include "fsutil.h"
#include "dag.h"
#include "record.h"
#include "check.h"
#include "registry.h"

typedef struct planner {
    const pipeline *p;
    meta_db meta;
    int have_meta;
    artifact_store store;
    plan_step *steps;
    /* Per step, its output hashes when they are known without running (a
     * cache hit): malloc'ed, freed when planning ends. */
    cache_hit **known;
} planner;

static size_t declared_outputs(const step *s) {
    if (s->impl)
        return s->impl->n_outputs;
    const value *outs = step_known_outputs(s);
    return outs ? outs->u.map.n : 0;
}

void plan_explain(const bson_t *before, const bson_t *now, char *why, size_t size) {
    static const struct {
        const char *field, *label;
    } simple[] = {{"step", "the step it uses"},
                  {"version", "its plugin's version"},
                  {"plugin", "its plugin's binary"}};
    size_t used = 0;
    why[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(why + used, used < size ? size - used : 0, __VA_ARGS__);                 \
        if (w_ > 0)                                                                                \
            used += (size_t)w_;                                                                    \
    } while (0)
    bson_iter_t a, b;
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        const char *x = bson_iter_init_find(&a, before, simple[i].field) && BSON_ITER_HOLDS_UTF8(&a)
                            ? bson_iter_utf8(&a, NULL)
                            : "";
        const char *y = bson_iter_init_find(&b, now, simple[i].field) && BSON_ITER_HOLDS_UTF8(&b)
                            ? bson_iter_utf8(&b, NULL)
                            : "";
        if (strcmp(x, y) != 0)
            ADD("%s%s changed", used ? "; " : "", simple[i].label);
    }
    static const struct {
        const char *field, *label;
    } maps[] = {{"params", "parameter"},
                {"inputs", "input"},
                {"env", "environment variable"},
                {"files", "file"}};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        bson_iter_t ma, mb, it;
        int has_a =
            bson_iter_init_find(&ma, before, maps[i].field) && BSON_ITER_HOLDS_DOCUMENT(&ma);
        int has_b = bson_iter_init_find(&mb, now, maps[i].field) && BSON_ITER_HOLDS_DOCUMENT(&mb);
        if (!has_b)
            continue;
        bson_iter_recurse(&mb, &it);
        while (bson_iter_next(&it)) {
            const char *name = bson_iter_key(&it);
            const char *y = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
            const char *x = NULL;
            bson_iter_t old;
            if (has_a && bson_iter_recurse(&ma, &old) && bson_iter_find(&old, name) &&
                BSON_ITER_HOLDS_UTF8(&old))
                x = bson_iter_utf8(&old, NULL);
            if (!x || strcmp(x, y) != 0)
                ADD("%s%s '%s' %s", used ? "; " : "", maps[i].label, name,
                    x ? "changed" : "is new");
        }
    }
    if (!used)
        ADD("its cached outputs are gone from the store");
#undef ADD
}

typedef struct scan {
    const char *pipeline;
    const char *step_id;
    meta_db *m;
    MDB_txn *txn;
    bson_t parts;
    int found;
    char run[64];
} scan;

static int scan_run(void *ud, const char *key, size_t len, const bson_t *doc) {
    scan *sc = ud;
    const char *name = NULL;
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "pipeline") && BSON_ITER_HOLDS_UTF8(&it))
        name = bson_iter_utf8(&it, NULL);
    if (!name || strcmp(name, sc->pipeline) != 0)
        return 0;
    char step_key[512];
    snprintf(step_key, sizeof(step_key), "%.*s/%s", (int)len, key, sc->step_id);
    bson_t rec;
    if (meta_get(sc->txn, sc->m->steps, step_key, &rec) != 0)
        return 0;
    bson_iter_t kp;
    if (!bson_iter_init_find(&kp, &rec, "key_parts") || !BSON_ITER_HOLDS_DOCUMENT(&kp))
        return 0;
    uint32_t dlen;
    const uint8_t *data;
    bson_iter_document(&kp, &dlen, &data);
    if (sc->found)
        bson_destroy(&sc->parts);
    bson_t view;
    if (!bson_init_static(&view, data, dlen))
        return 0;
    bson_copy_to(&view, &sc->parts);
    sc->found = 1;
    snprintf(sc->run, sizeof(sc->run), "%.*s", (int)len, key);
    return 0;
}

/* Keys step index on its inputs' hashes and looks the key up. */
static void plan_key(planner *pl, size_t index, int no_cache, const cache_input *ins, size_t n_in) {
    const pipeline *p = pl->p;
    const step *s = &p->steps[index];
    plan_step *ps = &pl->steps[index];
    if (declared_outputs(s) == 0) {
        snprintf(ps->why, sizeof(ps->why), "it declares no outputs, so it runs for its effects");
        return;
    }
    if (no_cache || !step_cache_enabled(p, s)) {
        snprintf(ps->why, sizeof(ps->why), "caching is off for it");
        return;
    }
    char plugin_hash[HASH_HEX_LEN + 1];
    if (s->impl && hash_path(s->impl->lib->real_path, plugin_hash, NULL) != 0) {
        snprintf(ps->why, sizeof(ps->why), "its plugin cannot be read");
        return;
    }
    /* A store without its cache secret has cached nothing a secret keyed. */
    unsigned char secret[CACHE_SECRET_BYTES];
    int needs = cache_key_needs_secret(p, s);
    if (needs && !(pl->have_meta && cache_store_secret(pl->store.root, 0, secret) == 0)) {
        snprintf(ps->why, sizeof(ps->why), "it has not run before");
        return;
    }
    bson_t parts = BSON_INITIALIZER;
    if (cache_key(p, s, s->impl ? plugin_hash : NULL, ins, n_in, needs ? secret : NULL, ps->key,
                  &parts) != 0) {
        snprintf(ps->why, sizeof(ps->why), "a file it names in cache_on cannot be read");
        bson_destroy(&parts);
        return;
    }
    cache_hit hit;
    int found = pl->have_meta ? record_cache_lookup(&pl->meta, ps->key, &hit) : 0;
    int intact = found == 1;
    for (size_t i = 0; intact && i < hit.n_outputs; i++)
        intact = store_verify(&pl->store, hit.outputs[i].hash) == 0;
    if (intact) {
        ps->runs = 0;
        snprintf(ps->from, sizeof(ps->from), "%s", hit.from);
        /* Without a copy, downstream steps are planned as running. */
        if ((pl->known[index] = malloc(sizeof(hit))))
            *pl->known[index] = hit;
    } else if (found == 1) {
        snprintf(ps->why, sizeof(ps->why),
                 "its cached outputs are missing or altered in the store");
    } else {
        /* What changed since this step last ran in this pipeline? */
        scan sc = {p->name, s->id, &pl->meta, NULL, BSON_INITIALIZER, 0, ""};
        if (pl->have_meta && meta_begin(&pl->meta, 0, &sc.txn) == 0) {
            meta_each(sc.txn, pl->meta.runs, "", scan_run, &sc);
            meta_abort(sc.txn);
        }
        if (sc.found) {
            char diff[400];
            plan_explain(&sc.parts, &parts, diff, sizeof(diff));
            snprintf(ps->why, sizeof(ps->why), "since run %s: %s", sc.run, diff);
            bson_destroy(&sc.parts);
        } else {
            snprintf(ps->why, sizeof(ps->why), "it has not run before");
        }
    }
    bson_destroy(&parts);
}

static void plan_one(planner *pl, size_t index, int no_cache) {
    const step *s = &pl->p->steps[index];
    plan_step *ps = &pl->steps[index];
    ps->runs = 1;
    if (step_is_template(s)) {
        snprintf(ps->why, sizeof(ps->why),
                 "its instances are made when the pipeline runs, one per row of %s.%s",
                 s->foreach_step, s->foreach_output);
        return;
    }
    size_t n_in = s->n_inputs;
    cache_input *ins = calloc(n_in + 1, sizeof(*ins));
    if (!ins) {
        snprintf(ps->why, sizeof(ps->why), "out of memory while planning it");
        return;
    }
    for (size_t i = 0; i < n_in; i++) {
        const step_input *in = &s->inputs[i];
        if (in->artifact) { /* no step upstream: the artifact's hash joins the key */
            ins[i] = (cache_input){step_input_key(in), in->artifact_hash};
            continue;
        }
        const plan_step *up = &pl->steps[in->from];
        const cache_hit *known = pl->known[in->from];
        ins[i] = (cache_input){step_input_key(in), NULL};
        if (up->runs) {
            snprintf(ps->why, sizeof(ps->why), "its input '%s' comes from '%s', which runs",
                     in->port, in->from_step);
            free(ins);
            return;
        }
        for (size_t k = 0; known && k < known->n_outputs; k++)
            if (strcmp(known->outputs[k].name, in->from_output) == 0)
                ins[i].hash = known->outputs[k].hash;
    }
    plan_key(pl, index, no_cache, ins, n_in);
    free(ins);
}

int plan_pipeline(const pipeline *p, const char *store_root, int no_cache, plan_step *steps,
                  char *err, size_t err_size) {
    planner pl = {.p = p, .steps = steps};
    memset(steps, 0, p->n_steps * sizeof(*steps));
    pl.known = calloc(p->n_steps + 1, sizeof(*pl.known));
    if (!pl.known) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    /* A store that does not exist yet is not made: nothing has run. */
    int have_store = path_exists(store_root);
    int rc = have_store ? meta_open(&pl.meta, store_root, 1) : -ENOENT;
    pl.have_meta = rc == 0;
    if (rc && rc != -ENOENT) { /* a damaged store is not one where nothing ran */
        snprintf(err, err_size, "cannot read the metadata in %s/meta: %s", store_root,
                 meta_error(&pl.meta, rc));
        free(pl.known);
        return -EUCLEAN;
    }
    rc = have_store ? store_open(&pl.store, store_root) : 0;
    if (rc) {
        snprintf(err, err_size, "cannot read the store %s: %s", store_root, strerror(-rc));
        if (pl.have_meta)
            meta_close(&pl.meta);
        free(pl.known);
        return rc;
    }
    dag g;
    rc = pipeline_dag(p, &g);
    for (size_t i = 0; rc == 0 && i < g.n; i++)
        plan_one(&pl, g.order[i], no_cache);
    if (rc == 0)
        dag_free(&g);
    else
        snprintf(err, err_size, "cannot order the steps: %s", strerror(-rc));
    store_close(&pl.store);
    if (pl.have_meta)
        meta_close(&pl.meta);
    for (size_t i = 0; i < p->n_steps; i++)
        free(pl.known[i]);
    free(pl.known);
    return rc;
}
