/* olevent.c - the OpenLineage run events of a run (docs/lineage.md): one
 * job per step (PIPELINE.STEP) whose runs have the pipeline's run as their
 * parent, and one for the pipeline itself. Built on the loop thread when a
 * step starts and ends; oltransport.c delivers them. */
#include "run_internal.h"

#include "hash.h"

#define OL_SPEC "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define OL_FACETS "https://openlineage.io/spec/facets/"
#define OL_PRODUCER SLUICE_OPENLINEAGE_HOME "/releases/" SLUICE_VERSION
#define OL_OWN_FACETS SLUICE_OPENLINEAGE_HOME "/spec/facets/1-0-0/"
#define OL_DRAIN_MS 5000 /* how long the run's end waits for a slow receiver */

/* A UUID that stays the same for a step run whoever computes it: version
 * 7's layout (the run's start in milliseconds first, so ids sort by
 * time, as OpenLineage recommends for runIds), the rest the SHA-256 of the
 * run id and the step id ("" for the pipeline's own run). */
static void run_uuid(const run *r, const char *step_id, char out[37]) {
    char hex[HASH_HEX_LEN + 1];
    hash_ctx *h = hash_new();
    if (!h) {
        memset(hex, '0', HASH_HEX_LEN);
        hex[HASH_HEX_LEN] = '\0';
    } else {
        hash_update(h, "sluice-openlineage", 19);
        hash_update(h, r->run_id, strlen(r->run_id) + 1);
        hash_update(h, step_id, strlen(step_id));
        hash_finish(h, hex);
    }
    uint64_t ms = (uint64_t)(r->wall_t0 * 1000.0);
    char d[33];
    snprintf(d, sizeof(d), "%012llx%.20s", (unsigned long long)(ms & 0xffffffffffffULL), hex);
    d[12] = '7';                                              /* the version */
    d[16] = "89ab"[strtol((char[]){d[16], 0}, NULL, 16) & 3]; /* the variant */
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", d, d + 8, d + 12, d + 16, d + 20);
}

/* RFC 3339 in UTC, to the millisecond. */
static void iso_time(double t, char out[32]) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    char day[24];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)((t - (double)s) * 1000.0);
    snprintf(out, 32, "%s.%03dZ", day, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

static void facet_begin(bson_t *parent, const char *key, bson_t *f, const char *schema) {
    BSON_APPEND_DOCUMENT_BEGIN(parent, key, f);
    BSON_APPEND_UTF8(f, "_producer", OL_PRODUCER);
    BSON_APPEND_UTF8(f, "_schemaURL", schema);
}

static void append_job(const run *r, bson_t *ev, const char *step_id) {
    bson_t job, facets, f;
    const char *ns = r->p->settings.openlineage_namespace;
    BSON_APPEND_DOCUMENT_BEGIN(ev, "job", &job);
    BSON_APPEND_UTF8(&job, "namespace", ns ? ns : "sluice");
    char name[2 * PIPELINE_MAX_ID + 2];
    snprintf(name, sizeof(name), "%s%s%s", r->p->name, *step_id ? "." : "", step_id);
    BSON_APPEND_UTF8(&job, "name", name);
    BSON_APPEND_DOCUMENT_BEGIN(&job, "facets", &facets);
    facet_begin(&facets, "jobType", &f,
                OL_FACETS "2-0-2/JobTypeJobFacet.json#/$defs/JobTypeJobFacet");
    BSON_APPEND_UTF8(&f, "processingType", "BATCH");
    BSON_APPEND_UTF8(&f, "integration", "SLUICE");
    BSON_APPEND_UTF8(&f, "jobType", *step_id ? "STEP" : "PIPELINE");
    bson_append_document_end(&facets, &f);
    bson_append_document_end(&job, &facets);
    bson_append_document_end(ev, &job);
}

/* An artifact as a dataset: its hash in the job's namespace. */
static void append_dataset(const run *r, bson_t *list, uint32_t i, const char *hash,
                           const char *port, const char *type, const char *made_by) {
    char idx[16];
    const char *k;
    bson_uint32_to_string(i, &k, idx, sizeof(idx));
    bson_t ds, facets, f;
    const char *ns = r->p->settings.openlineage_namespace;
    BSON_APPEND_DOCUMENT_BEGIN(list, k, &ds);
    BSON_APPEND_UTF8(&ds, "namespace", ns ? ns : "sluice");
    BSON_APPEND_UTF8(&ds, "name", hash);
    BSON_APPEND_DOCUMENT_BEGIN(&ds, "facets", &facets);
    facet_begin(&facets, "sluice_artifact", &f,
                OL_OWN_FACETS "SluiceArtifactDatasetFacet.json#/$defs/SluiceArtifactDatasetFacet");
    BSON_APPEND_UTF8(&f, "port", port);
    BSON_APPEND_UTF8(&f, "type", type ? type : "any");
    if (made_by)
        BSON_APPEND_UTF8(&f, "output", made_by);
    bson_append_document_end(&facets, &f);
    bson_append_document_end(&ds, &facets);
    bson_append_document_end(list, &ds);
}

static void append_inputs(const step_run *sr, bson_t *ev) {
    run *r = sr->r;
    const step *s = sr->s;
    bson_t list;
    uint32_t n = 0;
    BSON_APPEND_ARRAY_BEGIN(ev, "inputs", &list);
    for (size_t i = 0; i < s->n_inputs; i++) {
        const step_input *in = &s->inputs[i];
        const char *hash = sched_input_hash(r, in);
        if (!hash)
            continue;
        /* The artifact's type is its maker's output port's; an artifact:ID
         * input's was checked against the input port's when the run began. */
        const step *maker = in->from_step ? &r->p->steps[in->from] : NULL;
        const sl_port *port =
            maker     ? (maker->impl ? plugin_step_output(maker->impl, in->from_output) : NULL)
            : s->impl ? plugin_step_input(s->impl, in->port)
                      : NULL;
        char from[2 * PIPELINE_MAX_ID + 24]; /* an instance id ends in [N] */
        if (in->from_step)
            snprintf(from, sizeof(from), "%s.%s", in->from_step, in->from_output);
        append_dataset(r, &list, n++, hash, in->port, port ? port->type : NULL,
                       in->from_step ? from : NULL);
    }
    bson_append_array_end(ev, &list);
}

static void append_outputs(const step_run *sr, bson_t *ev) {
    bson_t list;
    BSON_APPEND_ARRAY_BEGIN(ev, "outputs", &list);
    for (size_t i = 0; i < sr->n_out; i++) {
        const sl_port *port =
            sr->s->impl ? plugin_step_output(sr->s->impl, sr->out_names[i]) : NULL;
        char from[2 * PIPELINE_MAX_ID + 24]; /* an instance id ends in [N] */
        snprintf(from, sizeof(from), "%s.%s", sr->s->id, sr->out_names[i]);
        append_dataset(sr->r, &list, (uint32_t)i, sr->out_hashes[i], sr->out_names[i],
                       port ? port->type : NULL, from);
    }
    bson_append_array_end(ev, &list);
}

/* Starts an event: its type, time, producer and schema, and its run with
 * the facets every event of it carries. run_facets is left open for more. */
static void event_begin(const run *r, bson_t *ev, bson_t *run_doc, bson_t *run_facets,
                        const char *type, const char *step_id) {
    char when[32], id[37];
    iso_time(sched_wall_now(), when);
    bson_init(ev);
    BSON_APPEND_UTF8(ev, "eventType", type);
    BSON_APPEND_UTF8(ev, "eventTime", when);
    BSON_APPEND_UTF8(ev, "producer", OL_PRODUCER);
    BSON_APPEND_UTF8(ev, "schemaURL", OL_SPEC);
    run_uuid(r, step_id, id);
    BSON_APPEND_DOCUMENT_BEGIN(ev, "run", run_doc);
    BSON_APPEND_UTF8(run_doc, "runId", id);
    BSON_APPEND_DOCUMENT_BEGIN(run_doc, "facets", run_facets);
    if (*step_id) {
        bson_t f, pr, pj;
        run_uuid(r, "", id);
        facet_begin(run_facets, "parent", &f,
                    OL_FACETS "1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet");
        BSON_APPEND_DOCUMENT_BEGIN(&f, "run", &pr);
        BSON_APPEND_UTF8(&pr, "runId", id);
        bson_append_document_end(&f, &pr);
        BSON_APPEND_DOCUMENT_BEGIN(&f, "job", &pj);
        const char *ns = r->p->settings.openlineage_namespace;
        BSON_APPEND_UTF8(&pj, "namespace", ns ? ns : "sluice");
        BSON_APPEND_UTF8(&pj, "name", r->p->name);
        bson_append_document_end(&f, &pj);
        bson_append_document_end(run_facets, &f);
    }
}

/* Appends text as a string JSON can carry: a byte that is not valid UTF-8
 * (a step's message may hold any) becomes '?', where libbson would give no
 * JSON at all. */
static void append_text(bson_t *doc, const char *key, const char *text) {
    size_t len = strlen(text);
    if (bson_utf8_validate(text, len, false)) {
        BSON_APPEND_UTF8(doc, key, text);
        return;
    }
    char *copy = strdup(text);
    if (!copy)
        return;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    BSON_APPEND_UTF8(doc, key, copy);
    free(copy);
}

static void error_facet(bson_t *run_facets, const char *why) {
    bson_t f;
    facet_begin(run_facets, "errorMessage", &f,
                OL_FACETS "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet");
    append_text(&f, "message", why);
    BSON_APPEND_UTF8(&f, "programmingLanguage", "C");
    bson_append_document_end(run_facets, &f);
}

static void event_send(run *r, bson_t *ev) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(ev, &len);
    if (json)
        ol_transport_send(r->ol, json, len);
    bson_free(json);
    bson_destroy(ev);
}

void sched_lineage_open(run *r) {
    const char *target = r->p->settings.openlineage;
    if (!target)
        return;
    char why[1024];
    int rc = ol_transport_open(target, &r->ol, why, sizeof(why));
    if (rc)
        fprintf(stderr, "sluice run: openlineage: %s; the run goes on without lineage events\n",
                why);
}

void sched_lineage_run(run *r, const char *type, const char *why) {
    if (!r->ol)
        return;
    bson_t ev, run_doc, facets, f;
    event_begin(r, &ev, &run_doc, &facets, type, "");
    facet_begin(&facets, "sluice_run", &f,
                OL_OWN_FACETS "SluiceRunRunFacet.json#/$defs/SluiceRunRunFacet");
    BSON_APPEND_UTF8(&f, "run", r->run_id);
    append_text(&f, "file", r->p->file);
    bson_append_document_end(&facets, &f);
    if (why)
        error_facet(&facets, why);
    bson_append_document_end(&run_doc, &facets);
    bson_append_document_end(&ev, &run_doc);
    append_job(r, &ev, "");
    event_send(r, &ev);
}

/* The step's own run facet: what sluice knows of the step run that
 * OpenLineage has no facet for. */
static void step_facet(const step_run *sr, bson_t *facets, const char *status) {
    bson_t f;
    facet_begin(facets, "sluice_step", &f,
                OL_OWN_FACETS "SluiceStepRunFacet.json#/$defs/SluiceStepRunFacet");
    BSON_APPEND_UTF8(&f, "run", sr->r->run_id);
    BSON_APPEND_UTF8(&f, "step", sr->s->id);
    append_text(&f, "uses", sr->s->uses);
    if (sr->s->impl && sr->s->impl->step->version)
        append_text(&f, "version", sr->s->impl->step->version);
    if (status) {
        BSON_APPEND_UTF8(&f, "status", status);
        BSON_APPEND_INT32(&f, "attempts", sr->attempt_no);
        BSON_APPEND_BOOL(&f, "cached", sr->cached_from[0] != '\0');
        if (sr->cached_from[0])
            BSON_APPEND_UTF8(&f, "cachedFrom", sr->cached_from);
    }
    bson_append_document_end(facets, &f);
}

void sched_lineage_step_started(step_run *sr) {
    run *r = sr->r;
    if (!r->ol || sr->ol_started)
        return;
    sr->ol_started = 1;
    bson_t ev, run_doc, facets;
    event_begin(r, &ev, &run_doc, &facets, "START", sr->s->id);
    step_facet(sr, &facets, NULL);
    bson_append_document_end(&run_doc, &facets);
    bson_append_document_end(&ev, &run_doc);
    append_job(r, &ev, sr->s->id);
    append_inputs(sr, &ev);
    event_send(r, &ev);
}

void sched_lineage_step_finished(step_run *sr, step_outcome outcome, const char *why) {
    run *r = sr->r;
    /* A skipped step never ran; a step cancelled before it started neither. */
    if (!r->ol || outcome == STEP_SKIPPED || (outcome == STEP_CANCELLED && !sr->ol_started))
        return;
    /* A cached step, or one that failed before it could start, still gets
     * its START: every run has one, and the cached one is a run that read
     * its inputs and gave its outputs, in no time. */
    sched_lineage_step_started(sr);
    const char *type = outcome == STEP_FAILED      ? "FAIL"
                       : outcome == STEP_CANCELLED ? "ABORT"
                                                   : "COMPLETE";
    bson_t ev, run_doc, facets;
    event_begin(r, &ev, &run_doc, &facets, type, sr->s->id);
    step_facet(sr, &facets, sched_record_status[outcome]);
    if (outcome == STEP_FAILED || outcome == STEP_CANCELLED)
        error_facet(&facets, why ? why : "failed");
    bson_append_document_end(&run_doc, &facets);
    bson_append_document_end(&ev, &run_doc);
    append_job(r, &ev, sr->s->id);
    append_inputs(sr, &ev);
    append_outputs(sr, &ev);
    event_send(r, &ev);
}

void sched_lineage_close(run *r) {
    if (!r->ol)
        return;
    ol_transport_close(r->ol, OL_DRAIN_MS, &r->ol_stats);
    r->ol = NULL;
    r->ol_closed = 1;
    if (r->ol_stats.failed) {
        buf masked = BUF_INIT; /* a URL made with ${secret.X} */
        fprintf(
            stderr, "sluice run: openlineage: %llu of %llu events not delivered to %s (last: %s)\n",
            (unsigned long long)r->ol_stats.failed, (unsigned long long)r->ol_stats.events,
            sched_mask_secrets(r->p, r->p->settings.openlineage, &masked), r->ol_stats.last_error);
        buf_free(&masked);
    }
}
