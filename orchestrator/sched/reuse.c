/* reuse.c - settling a step without running it (the cache, a resumed run,
 * --only/--from), and recording step runs. */
#include "run_internal.h"

#include "value_json.h"

/* A cache entry holds what a pipeline's step may have. */
_Static_assert(RECORD_MAX_ID == PIPELINE_MAX_ID && RECORD_MAX_PORTS == PIPELINE_MAX_PORTS,
               "record.h and pipeline.h disagree on the limits of a step");

void run_step_record(const step *s, step_record *rec, bson_t *params) {
    bson_init(params);
    for (size_t i = 0; i < s->n_args; i++) /* secrets masked: never stored */
        value_append_bson(params, s->args[i].name, strlen(s->args[i].name), s->args[i].value, 1);
    rec->step_id = s->id;
    rec->uses = s->uses;
    rec->version = s->impl ? s->impl->step->version : NULL;
    rec->params = params;
}

/* The registry hook (metadata/modelreg.h): a step that declares a
 * parameter model_name (train does) has its model outputs registered as
 * versions of that model, or of one named as the pipeline when it is
 * empty. NULL: the step registers nothing. */
static const char *model_name_of(const run *r, const step *s) {
    if (!s->impl || !plugin_step_param(s->impl, "model_name", NULL))
        return NULL;
    for (size_t i = 0; i < s->n_args; i++)
        if (strcmp(s->args[i].name, "model_name") == 0 && s->args[i].value->kind == VAL_STR &&
            s->args[i].value->u.str.len > 0)
            return s->args[i].value->u.str.s;
    return r->p->name;
}

/* Writes the step run's records; a failure to record is reported and
 * returned (0 or a meta code): the caller fails the step, since an output
 * without its record is lost to the steps and runs after it. */
int sched_record(step_run *sr, const char *status, const char *why) {
    run *r = sr->r;
    if (!r->meta_open)
        return 0;
    const step *s = sr->s;
    size_t n_in = s->n_inputs, n_out = sr->n_out;
    record_port *ins = calloc(n_in + 1, sizeof(*ins)), *outs = calloc(n_out + 1, sizeof(*outs));
    if (!ins || !outs) {
        free(ins);
        free(outs);
        fprintf(stderr, "sluice run: cannot record step '%s': out of memory\n", s->id);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_in; i++)
        ins[i] = (record_port){step_input_key(&s->inputs[i]), sched_input_hash(r, &s->inputs[i]),
                               NULL, 0, 0};
    for (size_t i = 0; i < n_out; i++) {
        const sl_port *port = s->impl ? plugin_step_output(s->impl, sr->out_names[i]) : NULL;
        outs[i] =
            (record_port){sr->out_names[i], sr->out_hashes[i], port ? port->type : "any", 0, 0};
        struct stat st;
        if (lstat(sr->out_paths[i], &st) == 0) {
            /* A folder's size is its files', as 'artifacts' shows it. */
            outs[i].is_dir = S_ISDIR(st.st_mode);
            if (!outs[i].is_dir || fs_content_size(sr->out_paths[i], &outs[i].size) != 0)
                outs[i].size = (uint64_t)st.st_size;
        }
    }
    char log[4096];
    snprintf(log, sizeof(log), "%s.log", sr->dir);
    step_record rec = {
        .run_id = r->run_id,
        .status = status,
        .started = sr->wall_started,
        .finished = sched_wall_now(),
        .attempts = sr->attempt_no,
        .error = why,
        .log = path_exists(log) ? log : NULL,
        .cache_key = sr->key[0] ? sr->key : NULL,
        .key_parts = sr->has_parts ? &sr->key_parts : NULL,
        .cached_from = sr->cached_from[0] ? sr->cached_from : NULL,
        .job_id = sr->job_id[0] ? sr->job_id : NULL,
        .node = sr->job_node[0] ? sr->job_node : NULL,
        .metrics = sr->has_metrics ? &sr->metrics : NULL,
        .inputs = ins,
        .n_inputs = n_in,
        .outputs = outs,
        .n_outputs = n_out,
        .cacheable = sched_step_cacheable(sr),
        .model_name = model_name_of(r, s),
    };
    bson_t params;
    run_step_record(s, &rec, &params);
    int rc = record_step(&r->meta, &rec);
    bson_destroy(&params);
    free(ins);
    free(outs);
    if (rc)
        fprintf(stderr, "sluice run: cannot record step '%s' in the metadata store: %s\n", s->id,
                meta_strerror(rc));
    return rc;
}

const char *const sched_record_status[] = {"done", "failed", "skipped", "cancelled", "cached"};

int sched_alloc_outputs(step_run *sr, size_t n) {
    sr->out_names = calloc(n + 1, sizeof(*sr->out_names));
    sr->out_paths = calloc(n + 1, sizeof(*sr->out_paths));
    sr->out_hashes = calloc(n + 1, sizeof(*sr->out_hashes));
    return sr->out_names && sr->out_paths && sr->out_hashes ? 0 : -ENOMEM;
}

/* The hash of a plugin's shared object when this run has made it, else
 * NULL. Read and written on the loop thread only. */
static const char *known_plugin_hash(const run *r, const plugin_step *ps) {
    for (size_t i = 0; i < r->n_plugin_hashes; i++)
        if (r->plugin_hashes[i].lib == ps->lib)
            return r->plugin_hashes[i].hash;
    return NULL;
}

static void remember_plugin_hash(run *r, const plugin_step *ps, const char *hash) {
    if (known_plugin_hash(r, ps))
        return;
    struct plugin_hash_entry *grown =
        realloc(r->plugin_hashes, (r->n_plugin_hashes + 1) * sizeof(*grown));
    if (!grown)
        return; /* hashed again next time */
    r->plugin_hashes = grown;
    grown[r->n_plugin_hashes].lib = ps->lib;
    memcpy(grown[r->n_plugin_hashes].hash, hash, HASH_HEX_LEN + 1);
    r->n_plugin_hashes++;
}

/* Whether a result of this step may be reused: caching is on for it, and
 * it declares outputs. A step without outputs runs for its effects (a
 * deployment, a notification), and skipping it would skip them. */
int sched_step_cacheable(const step_run *sr) {
    const step *s = sr->s;
    size_t outputs = s->impl                 ? s->impl->n_outputs
                     : step_known_outputs(s) ? step_known_outputs(s)->u.map.n
                                             : 0;
    return outputs > 0 && step_cache_enabled(sr->r->p, s);
}

enum { SEL_OUT = 0, SEL_RUN = 1, SEL_SUPPLY = 2 };

/* Marks the steps --only/--from select, and those upstream of them. Returns
 * 0, or -EINVAL when the named step does not exist (reported). */
int sched_select_steps(run *r) {
    const char *target = r->o->only ? r->o->only : r->o->from;
    if (!target)
        return 0;
    long t = pipeline_find_step(r->p, target);
    size_t n = r->p->n_steps, top = 0;
    /* A fan-out step's id as written selects all its instances. */
    for (size_t i = 0; t < 0 && i < n; i++)
        if (r->p->steps[i].group && strcmp(r->p->steps[i].group, target) == 0)
            t = (long)i;
    if (t < 0) {
        fprintf(stderr, "sluice run: the pipeline has no step '%s' (for --%s)\n", target,
                r->o->only ? "only" : "from");
        return -EINVAL;
    }
    r->selection = calloc(n + 1, 1);
    uint32_t *stack = malloc((n + 1) * sizeof(*stack));
    if (!r->selection || !stack) {
        free(stack);
        return -ENOMEM;
    }
    size_t count = r->p->steps[t].group && strcmp(r->p->steps[t].id, target) != 0
                       ? r->p->steps[t].n_instances
                       : 1;
    for (size_t i = (size_t)t; i < (size_t)t + count; i++) {
        r->selection[i] = SEL_RUN;
        stack[top++] = (uint32_t)i;
    }
    while (r->o->from && top) { /* everything downstream of --from */
        uint32_t v = stack[--top];
        for (uint32_t i = r->g.succ_start[v]; i < r->g.succ_start[v + 1]; i++)
            if (r->selection[r->g.succ[i]] != SEL_RUN) {
                r->selection[r->g.succ[i]] = SEL_RUN;
                stack[top++] = r->g.succ[i];
            }
    }
    top = 0; /* what --only pushed is pushed again below: each step at most once */
    for (size_t v = 0; v < n; v++) /* everything upstream of what runs supplies */
        if (r->selection[v] == SEL_RUN)
            stack[top++] = (uint32_t)v;
    while (top) {
        uint32_t v = stack[--top];
        for (uint32_t i = r->g.pred_start[v]; i < r->g.pred_start[v + 1]; i++)
            if (r->selection[r->g.pred[i]] == SEL_OUT) {
                r->selection[r->g.pred[i]] = SEL_SUPPLY;
                stack[top++] = r->g.pred[i];
            }
    }
    free(stack);
    return 0;
}

/* A step settled from the cache shows the metrics of the step run it came
 * from (RUN_ID/STEP_ID), as recorded there: they describe the outputs it
 * reuses. Nothing is copied when that record has none. */
static void take_cached_metrics(step_run *sr, const char *from) {
    run *r = sr->r;
    MDB_txn *txn;
    if (!r->meta_open || sr->has_metrics || meta_begin(&r->meta, 0, &txn) != 0)
        return;
    bson_t rec;
    bson_iter_t it;
    if (meta_get(txn, r->meta.steps, from, &rec) == 0 &&
        bson_iter_init_find(&it, &rec, "metrics") &&
        (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it))) {
        uint32_t len;
        const uint8_t *data;
        if (BSON_ITER_HOLDS_ARRAY(&it))
            bson_iter_array(&it, &len, &data);
        else
            bson_iter_document(&it, &len, &data);
        bson_t view;
        if (bson_init_static(&view, data, len)) {
            bson_copy_to(&view, &sr->metrics);
            sr->has_metrics = 1;
            sr->n_metrics = bson_count_keys(&sr->metrics);
        }
    }
    meta_abort(txn);
}

/* Making a cache key reads files to their ends (the plugin's shared
 * object, cache_on files, what path parameters name: a model can weigh
 * gigabytes), so it runs on the thread pool, never on the loop thread,
 * which must keep answering signals, timers and children meanwhile. The
 * step counts as running while it is keyed. */
typedef struct keying {
    uv_work_t work;
    step_run *sr;
    cache_input *ins; /* the inputs' hashes, borrowed from the steps upstream */
    size_t n_in;
    char plugin_hash[HASH_HEX_LEN + 1]; /* "" until known */
    int rc;
} keying;

static void keying_work(uv_work_t *w) {
    keying *k = w->data;
    step_run *sr = k->sr;
    const step *s = sr->s;
    if (s->impl && !k->plugin_hash[0] &&
        (k->rc = hash_path(s->impl->lib->real_path, k->plugin_hash, NULL)) != 0) {
        k->plugin_hash[0] = '\0';
        return;
    }
    unsigned char secret[CACHE_SECRET_BYTES];
    int needs = cache_key_needs_secret(sr->r->p, s);
    if (needs && (k->rc = cache_store_secret(sr->r->store.root, 1, secret)) != 0)
        return;
    k->rc = cache_key(sr->r->p, s, s->impl ? k->plugin_hash : NULL, k->ins, k->n_in,
                      needs ? secret : NULL, sr->key, &sr->key_parts);
}

static void keying_done(uv_work_t *w, int status) {
    keying *k = w->data;
    step_run *sr = k->sr;
    run *r = sr->r;
    r->running--;
    sr->keyed = 1;
    if (k->plugin_hash[0])
        remember_plugin_hash(r, sr->s->impl, k->plugin_hash);
    if (status != 0 || k->rc != 0) {
        sr->key[0] = '\0';
        sched_log(sr, SL_LOG_WARN,
                  "no cache key: a plugin, a cache_on file, a path parameter or "
                  "the store's cache.key could not be read");
    }
    free(k->ins);
    free(k);
    if (r->cancelling)
        sched_finish_step(sr, STEP_CANCELLED, "the run was interrupted before the step started");
    else
        sched_start_attempt(sr);
    sched_schedule(r);
}

/* Queues the making of sr's key. Returns 0, or a negative errno when it
 * could not be queued (the step then runs without a key). */
static int start_keying(step_run *sr) {
    run *r = sr->r;
    const step *s = sr->s;
    keying *k = calloc(1, sizeof(*k));
    if (!k || !(k->ins = calloc(s->n_inputs + 1, sizeof(*k->ins)))) {
        free(k);
        return -ENOMEM;
    }
    k->sr = sr;
    k->n_in = s->n_inputs;
    for (size_t i = 0; i < k->n_in; i++)
        k->ins[i] =
            (cache_input){step_input_key(&s->inputs[i]), sched_input_hash(r, &s->inputs[i])};
    const char *ph = s->impl ? known_plugin_hash(r, s->impl) : NULL;
    if (ph)
        memcpy(k->plugin_hash, ph, HASH_HEX_LEN + 1);
    bson_init(&sr->key_parts);
    sr->has_parts = 1;
    k->work.data = k;
    int rc = uv_queue_work(&r->loop, &k->work, keying_work, keying_done);
    if (rc) {
        free(k->ins);
        free(k);
        return rc;
    }
    r->running++;
    return 0;
}

/* Settles the step from the cache when caching is on and an earlier step
 * run has the same key with all its objects intact, reusing its outputs.
 * The first call only starts making the key (start_keying), and returns 1:
 * the step is then started again once the key is made. Returns 1 when the
 * step is settled or being keyed, 0 when it is to run. */
int sched_try_cache(step_run *sr) {
    run *r = sr->r;
    const step *s = sr->s;
    if (!sr->keyed) {
        sr->wall_started = sched_wall_now();
        if (start_keying(sr) == 0)
            return 1;
        sr->keyed = 1;
        sr->key[0] = '\0';
        sched_log(sr, SL_LOG_WARN, "no cache key: out of memory");
        return 0;
    }
    if (!sr->key[0])
        return 0;
    cache_hit hit;
    int found = 0;
    int sel = r->selection ? r->selection[sr->index] : SEL_RUN;
    if (sel == SEL_OUT) {
        sched_finish_step(sr, STEP_SKIPPED,
                          r->o->only ? "not selected by --only" : "not selected by --from");
        return 1;
    }
    if (sel == SEL_SUPPLY) {
        /* Upstream of the selection: its latest outputs, whatever changed. */
        found = r->meta_open && record_latest_finished(&r->meta, r->p->name, s->id, &hit) == 1;
        if (!found) {
            sched_finish_step(sr, STEP_FAILED,
                              "it has never finished in this pipeline, so --only/--from have no "
                              "outputs of it to use: run the whole pipeline first");
            return 1;
        }
    }
    /* A resumed run takes what finished in the run it resumes, whether it is
     * cached or not (a step without outputs too). */
    if (!found && r->o->resume && r->meta_open)
        found = record_finished_step(&r->meta, r->o->resume, s->id, &hit) == 1;
    if (!found && (r->o->no_cache || r->selection || !sched_step_cacheable(sr) || !r->meta_open))
        return 0;
    if (!found && record_cache_lookup(&r->meta, sr->key, &hit) != 1)
        return 0;
    /* Trust the hit only when every object is there and intact. */
    for (size_t i = 0; i < hit.n_outputs; i++) {
        int v = store_verify(&r->store, hit.outputs[i].hash);
        if (v) {
            char msg[512];
            snprintf(msg, sizeof(msg), "cached output '%s' (%.12s) is %s: running the step again",
                     hit.outputs[i].name, hit.outputs[i].hash,
                     v == -ENOENT ? "missing from the store" : "altered in the store");
            sched_log(sr, SL_LOG_WARN, msg);
            record_cache_forget(&r->meta, sr->key);
            return 0;
        }
    }
    if (sched_alloc_outputs(sr, hit.n_outputs) != 0)
        return 0;
    const value *shell_outs = s->impl ? NULL : step_known_outputs(s);
    for (size_t i = 0; i < hit.n_outputs; i++) {
        const char *name = NULL; /* a name that lives as long as the pipeline */
        if (s->impl) {
            const sl_port *port = plugin_step_output(s->impl, hit.outputs[i].name);
            name = port ? port->name : NULL;
        } else {
            for (size_t k = 0; shell_outs && k < shell_outs->u.map.n; k++)
                if (strcmp(shell_outs->u.map.keys[k], hit.outputs[i].name) == 0)
                    name = shell_outs->u.map.keys[k];
        }
        char object[4096];
        store_object_path(&r->store, hit.outputs[i].hash, object, sizeof(object));
        if (!name || !(sr->out_paths[sr->n_out] = strdup(object)))
            return 0;
        sr->out_names[sr->n_out] = name;
        memcpy(sr->out_hashes[sr->n_out], hit.outputs[i].hash, HASH_HEX_LEN + 1);
        sr->n_out++;
    }
    snprintf(sr->cached_from, sizeof(sr->cached_from), "%s", hit.from);
    take_cached_metrics(sr, hit.from);
    report_step_outputs(&r->rep, s->id, sr->out_names, sr->out_paths, sr->n_out, 0);
    sched_finish_step(sr, STEP_CACHED, hit.from);
    return 1;
}
