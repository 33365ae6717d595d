/* Unit tests of metadata/modelreg.c: versions registered with their step
 * record, metrics through lineage, gates, aliases and the audit trail. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modelreg.h"

static char dir[64];
static meta_db m;

static void setup(void) {
    snprintf(dir, sizeof(dir), "/tmp/sluice-modelreg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(meta_open(&m, dir, 0), 0);
}

static void teardown(void) {
    meta_close(&m);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(modelreg, .init = setup, .fini = teardown);

/* A 64-hex-digit hash made of one digit. */
static const char *hash_of(char c) {
    static char h[8][65];
    static int next;
    char *out = h[next++ % 8];
    memset(out, c, 64);
    out[64] = '\0';
    return out;
}

/* Records step run RUN/STEP that read `in` (may be NULL) and made an
 * output `out` of type out_type (may be NULL), with a metric and the
 * model name given. */
static void step(const char *run, const char *id, const char *status, const char *in,
                 const char *out, const char *out_type, const char *metric, double value,
                 const char *model_name) {
    record_port ins[1] = {{"model", in, NULL, 0, 0}}, outs[1] = {{"model", out, out_type, 10, 1}};
    bson_t metrics = BSON_INITIALIZER, one, params = BSON_INITIALIZER;
    BSON_APPEND_INT32(&params, "seed", 7);
    if (metric) {
        /* A series: the last point counts. */
        for (int i = 0; i < 2; i++) {
            char idx[4];
            snprintf(idx, sizeof(idx), "%d", i);
            BSON_APPEND_DOCUMENT_BEGIN(&metrics, idx, &one);
            BSON_APPEND_UTF8(&one, "key", metric);
            BSON_APPEND_DOUBLE(&one, "value", i ? value : value * 10);
            bson_append_document_end(&metrics, &one);
        }
    }
    step_record rec = {.run_id = run,
                       .step_id = id,
                       .uses = "x",
                       .params = &params,
                       .status = status,
                       .started = 1,
                       .finished = 2,
                       .attempts = 1,
                       .metrics = metric ? &metrics : NULL,
                       .inputs = ins,
                       .n_inputs = in ? 1 : 0,
                       .outputs = outs,
                       .n_outputs = out ? 1 : 0,
                       .model_name = model_name};
    cr_assert_eq(record_step(&m, &rec), 0);
    bson_destroy(&metrics);
    bson_destroy(&params);
}

static int version_of(const char *name, int version, const char *field) {
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t doc;
    int rc = modelreg_get_version(&m, txn, name, version, &doc);
    bson_iter_t it;
    int v = rc == 0 && bson_iter_init_find(&it, &doc, field) ? (int)bson_iter_as_int64(&it) : -1;
    meta_abort(txn);
    return v;
}

static double metric(const char *artifact, const char *key) {
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t figs;
    cr_assert_eq(modelreg_metrics(&m, txn, artifact, &figs, NULL), 0);
    bson_iter_t it;
    double v = bson_iter_init_find(&it, &figs, key) ? bson_iter_as_double(&it) : -1;
    bson_destroy(&figs);
    meta_abort(txn);
    return v;
}

Test(modelreg, versions_count_per_name_and_an_artifact_is_one_version) {
    const char *a = hash_of('a'), *b = hash_of('b');
    step("r1", "train", "done", NULL, a, "model", NULL, 0, "twin");
    step("r2", "train", "cached", NULL, a, "model", NULL, 0, "twin");
    step("r3", "train", "done", NULL, b, "model", NULL, 0, "twin");
    step("r4", "train", "done", NULL, b, "model", NULL, 0, "other");
    cr_expect_eq(version_of("twin", 0, "version"), 2);
    cr_expect_eq(version_of("twin", 1, "version"), 1);
    cr_expect_eq(version_of("other", 0, "version"), 1);
    cr_expect_eq(version_of("twin", 3, "version"), -1);
    /* Not a model, failed, or no model name: nothing registered. */
    step("r5", "tok", "done", NULL, hash_of('c'), "tokenizer", NULL, 0, "third");
    step("r6", "train", "failed", NULL, hash_of('d'), "model", NULL, 0, "third");
    step("r7", "train", "done", NULL, hash_of('e'), "model", NULL, 0, NULL);
    cr_expect_eq(version_of("third", 0, "version"), -1);
    /* A bad name fails the record whole: the step run is not half written. */
    record_port outs[1] = {{"model", hash_of('f'), "model", 1, 0}};
    step_record rec = {.run_id = "r8",
                       .step_id = "train",
                       .status = "done",
                       .started = 1,
                       .finished = 1,
                       .outputs = outs,
                       .n_outputs = 1,
                       .model_name = "Bad"};
    cr_expect_eq(record_step(&m, &rec), -EINVAL);
}

Test(modelreg, metrics_come_from_evaluations_not_from_further_trainings) {
    const char *a = hash_of('a');
    step("r1", "train", "done", NULL, a, "model", NULL, 0, "twin");
    cr_expect_eq(metric(a, "perplexity"), -1);
    step("r1", "eval", "done", a, NULL, NULL, "perplexity", 12, NULL);
    cr_expect_eq(metric(a, "perplexity"), 12, "the last point of the series");
    step("r2", "eval", "done", a, NULL, NULL, "perplexity", 11, NULL);
    cr_expect_eq(metric(a, "perplexity"), 11, "the newer run's");
    step("r3", "finetune", "done", a, hash_of('b'), "model", "loss", 0.5, NULL);
    cr_expect_eq(metric(a, "loss"), -1, "a training that read it made a model");
    step("r4", "eval", "failed", a, NULL, NULL, "perplexity", 99, NULL);
    cr_expect_eq(metric(a, "perplexity"), 11, "a failed evaluation does not count");
}

static int promote(const char *name, int version, const char *alias, const char *gate,
                   const char *better, char *why) {
    modelreg_promotion p = {.name = name,
                            .version = version,
                            .alias = alias,
                            .ifs = gate ? &gate : NULL,
                            .n_ifs = gate ? 1 : 0,
                            .better_than = better,
                            .who = "tester",
                            .reason = "because",
                            .time = 100};
    int v, prev;
    return modelreg_promote(&m, &p, &v, &prev, why, 512);
}

static int alias(const char *name, const char *a) {
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    int v = modelreg_alias_version(&m, txn, name, a);
    meta_abort(txn);
    return v;
}

Test(modelreg, gates_refuse_naming_the_figure_and_aliases_move_with_a_trail) {
    const char *a = hash_of('a'), *b = hash_of('b');
    step("r1", "train", "done", NULL, a, "model", NULL, 0, "twin");
    step("r1", "eval", "done", a, NULL, NULL, "perplexity", 20, NULL);
    step("r2", "train", "done", NULL, b, "model", NULL, 0, "twin");
    step("r2", "eval", "done", b, NULL, NULL, "perplexity", 30, NULL);
    char why[512];
    cr_expect_eq(promote("twin", 1, "production", NULL, "production:perplexity", why),
                 MODELREG_PROMOTED, "%s", why);
    cr_expect_eq(promote("twin", 2, "production", NULL, "production:perplexity", why),
                 MODELREG_REFUSED);
    cr_expect(strstr(why, "perplexity = 30") && strstr(why, "20"), "%s", why);
    cr_expect_eq(promote("twin", 2, "production", "perplexity<25", NULL, why), MODELREG_REFUSED);
    cr_expect(strstr(why, "which is not < 25"), "%s", why);
    cr_expect_eq(
        promote("twin", 2, "production", "perplexity<=30", "production:perplexity:higher", why),
        MODELREG_PROMOTED, "%s", why);
    cr_expect_eq(alias("twin", "production"), 2);
    cr_expect_eq(promote("twin", 2, "production", NULL, NULL, why), MODELREG_UNCHANGED);
    cr_expect_eq(promote("twin", 2, "production", "perplexity~3", NULL, why), MODELREG_UNCHANGED,
                 "an alias already there is checked first");
    cr_expect_eq(promote("twin", 1, "staging", "perplexity~3", NULL, why), -EINVAL);
    cr_expect_eq(promote("twin", 1, "staging", NULL, "nocolon", why), -EINVAL);
    cr_expect_eq(promote("twin", 5, "staging", NULL, NULL, why), -ENOENT);
    cr_expect_eq(promote("nobody", 1, "staging", NULL, NULL, why), -ENOENT);
    cr_expect_eq(promote("twin", 1, "Bad Alias", NULL, NULL, why), -EINVAL);
    cr_expect_eq(alias("twin", "staging"), 0);

    /* Two changes of production, in order, with who, why and before. */
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    bson_t doc;
    cr_assert_eq(meta_get(txn, m.models, "twin/audit/0000000002", &doc), 0);
    bson_iter_t it;
    cr_expect(bson_iter_init_find(&it, &doc, "previous") && bson_iter_as_int64(&it) == 1);
    cr_expect(bson_iter_init_find(&it, &doc, "version") && bson_iter_as_int64(&it) == 2);
    cr_expect(bson_iter_init_find(&it, &doc, "who") &&
              strcmp(bson_iter_utf8(&it, NULL), "tester") == 0);
    cr_expect(bson_iter_init_find(&it, &doc, "reason") &&
              strcmp(bson_iter_utf8(&it, NULL), "because") == 0);
    cr_expect_eq(meta_get(txn, m.models, "twin/audit/0000000003", &doc), MDB_NOTFOUND);
    meta_abort(txn);
}

Test(modelreg, promotion_by_artifact_and_resolution_of_specs) {
    const char *a = hash_of('a');
    step("r1", "train", "done", NULL, a, "model", NULL, 0, "twin");
    modelreg_promotion p = {.name = "twin", .artifact = a, .alias = "staging", .who = "t"};
    int v, prev;
    char why[256];
    cr_expect_eq(modelreg_promote(&m, &p, &v, &prev, why, sizeof(why)), MODELREG_PROMOTED);
    cr_expect_eq(v, 1);
    p.artifact = hash_of('9');
    cr_expect_eq(modelreg_promote(&m, &p, &v, &prev, why, sizeof(why)), -ENOENT);
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    char name[MODELREG_MAX_NAME + 1];
    cr_expect_eq(modelreg_resolve(&m, txn, "twin@staging", name, &v, why, sizeof(why)), 0);
    cr_expect_eq(v, 1);
    cr_expect_eq(modelreg_resolve(&m, txn, "twin", name, &v, why, sizeof(why)), 0);
    cr_expect_eq(modelreg_resolve(&m, txn, "twin@production", name, &v, why, sizeof(why)), -ENOENT);
    cr_expect_eq(modelreg_resolve(&m, txn, "twin@-1", name, &v, why, sizeof(why)), -EINVAL);
    cr_expect_eq(modelreg_resolve(&m, txn, "Twin", name, &v, why, sizeof(why)), -EINVAL);
    meta_abort(txn);
}

Test(modelreg, which_way_is_better) {
    cr_expect(modelreg_lower_is_better("perplexity"));
    cr_expect(modelreg_lower_is_better("eval_loss"));
    cr_expect(modelreg_lower_is_better("Error_rate"));
    cr_expect_not(modelreg_lower_is_better("rouge_l"));
    cr_expect_not(modelreg_lower_is_better("recall@5"));
    cr_expect_not(modelreg_lower_is_better("accuracy"));
}

Test(modelreg, a_store_older_than_the_registry_reads_as_empty_and_a_writer_adds_it) {
    /* Made as a sluice before the registry made it: without "models". */
    MDB_txn *txn;
    cr_assert_eq(meta_begin(&m, 1, &txn), 0);
    cr_assert_eq(mdb_drop(txn, m.models, 1), 0);
    cr_assert_eq(meta_commit(txn), 0);
    meta_close(&m);
    cr_assert_eq(meta_open(&m, dir, 1), 0);
    cr_expect_eq(m.has_models, 0);
    cr_assert_eq(meta_begin(&m, 0, &txn), 0);
    char name[MODELREG_MAX_NAME + 1], why[128];
    int v;
    cr_expect_eq(modelreg_resolve(&m, txn, "twin", name, &v, why, sizeof(why)), -ENOENT);
    cr_expect_eq(modelreg_alias_version(&m, txn, "twin", "production"), 0);
    meta_abort(txn);
    meta_close(&m);
    cr_assert_eq(meta_open(&m, dir, 0), 0);
    cr_expect_eq(m.has_models, 1);
    step("r1", "train", "done", NULL, hash_of('a'), "model", NULL, 0, "twin");
    cr_expect_eq(version_of("twin", 0, "version"), 1);
}
