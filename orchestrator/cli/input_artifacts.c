/* input_artifacts.c - finding the artifacts a pipeline's inputs name as
 * "artifact:ID" (docs/pipeline-format.md) in the store, before it runs. The
 * pipeline layer knows no store: the commands that run a pipeline (run,
 * resume, status) resolve these here, with the ids every other command
 * takes (inspect_resolve_artifact), and hand the scheduler a hash and an
 * object path per such input. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"

/* Says where, then why (the resolver has already printed its part). */
static int located(const pipeline *p, const step *s, const step_input *in, const char *why) {
    fprintf(stderr, "%s:%u:%u: error: input '%s' of step '%s': artifact:%s %s\n", p->file,
            in->pos.line, in->pos.col, in->port, s->id, in->artifact, why);
    return EXIT_BAD_INPUT;
}

static int resolve_one(pipeline *p, const step *s, step_input *in, const char *store, MDB_txn *txn,
                       const meta_db *m, const artifact_store *st) {
    char hash[HASH_HEX_LEN + 1], path[4200];
    bson_t rec;
    if (inspect_resolve_artifact(txn, m, in->artifact, hash, sizeof(hash)) != 0 ||
        meta_get(txn, m->artifacts, hash, &rec) != 0)
        return located(p, s, in, "is not in the store");
    const char *have = inspect_str(&rec, "type", "any");
    const sl_port *port = s->impl ? plugin_step_input(s->impl, in->port) : NULL;
    if (port && strcmp(port->type, "any") && strcmp(have, "any") && strcmp(port->type, have)) {
        fprintf(
            stderr, "%s:%u:%u: error: input '%s' of step '%s' takes %s, but artifact:%s is %s\n",
            p->file, in->pos.line, in->pos.col, in->port, s->id, port->type, in->artifact, have);
        return EXIT_BAD_INPUT;
    }
    int v = store_verify(st, hash);
    if (v) {
        char why[160];
        snprintf(why, sizeof(why), "(%.12s) is %s in %s", hash,
                 v == -ENOENT ? "missing from the objects" : "corrupt: its content changed", store);
        return located(p, s, in, why);
    }
    store_object_path(st, hash, path, sizeof(path));
    in->artifact_hash = arena_strdup(&p->arena, hash);
    in->artifact_path = arena_strdup(&p->arena, path);
    if (!in->artifact_hash || !in->artifact_path) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    return 0;
}

int cli_resolve_artifact_inputs(pipeline *p, const char *store) {
    int any = 0;
    for (size_t i = 0; i < p->n_steps && !any; i++)
        for (size_t k = 0; k < p->steps[i].n_inputs && !any; k++)
            any = p->steps[i].inputs[k].artifact != NULL;
    if (!any)
        return 0;
    meta_db m;
    MDB_txn *txn;
    artifact_store st;
    if (inspect_begin(store, &m, &txn))
        return EXIT_BAD_INPUT;
    int status = EXIT_DONE, rc = store_open(&st, store);
    if (rc) {
        fprintf(stderr, "sluice: cannot open the store %s: %s\n", store, strerror(-rc));
        inspect_end(&m, txn);
        return EXIT_BAD_INPUT;
    }
    /* Every bad reference is reported, not only the first. */
    for (size_t i = 0; i < p->n_steps; i++)
        for (size_t k = 0; k < p->steps[i].n_inputs; k++) {
            step_input *in = &p->steps[i].inputs[k];
            if (in->artifact && resolve_one(p, &p->steps[i], in, store, txn, &m, &st))
                status = EXIT_BAD_INPUT;
        }
    store_close(&st);
    inspect_end(&m, txn);
    return status;
}
