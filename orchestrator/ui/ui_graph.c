/* ui_graph.c - a run's DAG and an artifact's lineage as SVG, laid out by
 * Graphviz's library (libgvc). The run's graph is the dot text 'sluice
 * graph' prints (pipeline_render), with each node's state added. */
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "record.h"
#include "recorded.h"
#include "render.h"
#include "ui_run.h"

void ui_run_pipeline_steps(const bson_t *run, ui_run_steps *out) {
    out->ids = NULL;
    out->n = 0;
    pipeline *p = recorded_pipeline(run);
    if (!p)
        return;
    if ((out->ids = calloc(p->n_steps + 1, sizeof(*out->ids))))
        for (size_t i = 0; i < p->n_steps; i++)
            if ((out->ids[out->n] = strdup(p->steps[i].id)))
                out->n++;
    pipeline_free(p);
}

void ui_run_steps_free(ui_run_steps *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
}

void ui_graph_close(ui_ctx *c) {
    if (c->gvc)
        gvFreeContext(c->gvc);
    c->gvc = NULL;
}

/* Inside a dot "quoted string" only the quote and backslash are special. */
static void dot_quoted(buf *b, const char *s) {
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

/* A state's fill; the state is also written in the node, in words. */
static const char *state_colour(const char *state) {
    static const struct {
        const char *state, *colour;
    } colours[] = {
        {"done", "#c8ebc8"},    {"cached", "#cfe0f7"},  {"failed", "#f7c4c4"},
        {"running", "#fff0a8"}, {"skipped", "#e4e4e4"}, {"cancelled", "#e4e4e4"},
    };
    for (size_t i = 0; i < sizeof(colours) / sizeof(colours[0]); i++)
        if (strcmp(colours[i].state, state) == 0)
            return colours[i].colour;
    return "#f4f4f4";
}

/* Lays dot out and renders it as SVG into res. */
static void render_svg(ui_ctx *c, Agraph_t *g, ui_response *res) {
    char *data = NULL;
    unsigned int len = 0;
    if (gvLayout(c->gvc, g, "dot") != 0) {
        ui_error(res, 500, "Graphviz cannot lay the graph out");
        return;
    }
    if (gvRenderData(c->gvc, g, "svg", &data, &len) == 0 && data) {
        buf_reset(&res->body);
        buf_append(&res->body, data, len);
        res->status = 200;
        res->type = "image/svg+xml";
    } else {
        ui_error(res, 500, "Graphviz cannot render SVG");
    }
    if (data)
        gvFreeRenderData(data);
    gvFreeLayout(c->gvc, g);
}

static Agraph_t *read_dot(ui_ctx *c, const char *dot, ui_response *res) {
    if (!c->gvc && !(c->gvc = gvContext())) {
        ui_error(res, 500, "cannot start Graphviz");
        return NULL;
    }
    Agraph_t *g = agmemread(dot);
    if (!g)
        ui_error(res, 500, "Graphviz cannot read the graph");
    return g;
}

static void set(void *obj, const char *name, const char *val) {
    agsafeset(obj, (char *)name, (char *)val, "");
}

typedef struct states {
    Agraph_t *g;
} states;

static int is_artifact(Agnode_t *n) {
    char *cls = agget(n, "class");
    return cls && strcmp(cls, "artifact") == 0;
}

/* The artifact nodes feeding step node n (drawn from "artifact:ID" inputs)
 * link to the artifact the step run read, by the hash its record has. */
static void link_artifacts(Agraph_t *g, Agnode_t *n, const bson_t *doc) {
    for (Agedge_t *e = agfstin(g, n); e; e = agnxtin(g, e)) {
        Agnode_t *from = agtail(e);
        char *port = agget(e, "label");
        if (!is_artifact(from) || !port)
            continue;
        bson_iter_t it, in;
        if (!bson_iter_init_find(&it, doc, "inputs") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
            !bson_iter_recurse(&it, &in) || !bson_iter_find(&in, port) ||
            !BSON_ITER_HOLDS_UTF8(&in))
            continue;
        const char *hash = bson_iter_utf8(&in, NULL);
        buf href = BUF_INIT;
        buf_printf(&href, "#/artifact/%s", hash);
        set(from, "href", buf_str(&href));
        buf_free(&href);
    }
}

/* Marks the node of one step record with its state. */
static int mark_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    states *s = ud;
    const char *slash = memchr(key, '/', len);
    if (!slash)
        return 0;
    char id[300];
    snprintf(id, sizeof(id), "%.*s", (int)(key + len - slash - 1), slash + 1);
    Agnode_t *n = agnode(s->g, id, 0);
    if (!n)
        n = agnode(s->g, id, 1); /* a step the pipeline no longer has */
    if (!n)
        return 0;
    const char *state = ui_str(doc, "status", "unknown");
    char *old = agget(n, "label");
    buf label = BUF_INIT;
    buf_puts(&label, old && old[0] && strcmp(old, "\\N") ? old : id);
    double t0 = ui_num(doc, "started"), t1 = ui_num(doc, "finished");
    if (t0 > 0 && t1 > 0)
        buf_printf(&label, "\n%s %.2fs", state, t1 - t0);
    else
        buf_printf(&label, "\n%s", state);
    set(n, "label", buf_str(&label));
    set(n, "style", "rounded,filled");
    set(n, "fillcolor", state_colour(state));
    set(n, "class", state);
    buf_free(&label);
    link_artifacts(s->g, n, doc);
    return 0;
}

void ui_graph_svg(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    char id[256];
    bson_t run;
    if (ui_open_run(c, spec, &txn, id, sizeof(id), &run, res) != 0)
        return;
    /* The graph 'sluice graph' draws, when the file still reads as the
     * pipeline that ran; else the steps recorded, without edges. */
    buf dot = BUF_INIT;
    pipeline *p = recorded_pipeline(&run);
    dag d;
    if (p && pipeline_dag(p, &d) == 0) {
        pipeline_render(p, &d, GRAPH_DOT, &dot);
        dag_free(&d);
    }
    if (!dot.len) {
        buf_puts(&dot, "digraph ");
        dot_quoted(&dot, ui_str(&run, "pipeline", "pipeline"));
        buf_puts(&dot, " {\n  rankdir=LR;\n  node [shape=box, style=rounded, "
                       "fontname=\"Helvetica\"];\n}\n");
    }
    Agraph_t *g = buf_failed(&dot) ? NULL : read_dot(c, buf_str(&dot), res);
    buf_free(&dot);
    if (g) {
        states s = {g};
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "%s/", id);
        meta_each(txn, c->m.steps, prefix, mark_step, &s);
        /* The nodes no record names: waiting (or, the run over, not run). */
        const char *effective = record_effective_status(&run);
        const char *pending = strcmp(effective, "running") ? "not run" : "waiting";
        for (Agnode_t *n = agfstnode(g); n; n = agnxtnode(g, n)) {
            char *cls = agget(n, "class");
            if (cls && cls[0])
                continue;
            char *old = agget(n, "label");
            buf label = BUF_INIT;
            buf_printf(&label, "%s\n%s", old && old[0] && strcmp(old, "\\N") ? old : agnameof(n),
                       pending);
            set(n, "label", buf_str(&label));
            buf_free(&label);
            set(n, "style", "rounded,filled");
            set(n, "fillcolor", state_colour(pending));
            set(n, "class", pending);
        }
        /* Links to each step's details, reachable with the keyboard. */
        for (Agnode_t *n = agfstnode(g); n; n = agnxtnode(g, n)) {
            if (is_artifact(n)) {
                set(n, "tooltip", agnameof(n));
                continue;
            }
            buf href = BUF_INIT;
            buf_printf(&href, "#/run/%s/step/%s", id, agnameof(n));
            set(n, "href", buf_str(&href));
            set(n, "tooltip", agnameof(n));
            buf_reset(&href);
            buf_printf(&href, "step-%s", agnameof(n));
            set(n, "id", buf_str(&href));
            buf_free(&href);
        }
        render_svg(c, g, res);
        agclose(g);
    }
    pipeline_free(p);
    meta_abort(txn);
}

void ui_lineage_svg(ui_ctx *c, const char *spec, ui_response *res) {
    MDB_txn *txn;
    if (ui_begin(c, &txn, res) != 0)
        return;
    bson_t doc = BSON_INITIALIZER;
    if (ui_lineage_doc(c, txn, spec, &doc, res) != 0) {
        bson_destroy(&doc);
        meta_abort(txn);
        return;
    }
    meta_abort(txn);
    const char *root = ui_str(&doc, "artifact", "");
    buf dot = BUF_INIT;
    buf_puts(&dot, "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    bson_iter_t it, items, f;
    if (bson_iter_init_find(&it, &doc, "nodes") && bson_iter_recurse(&it, &items))
        while (bson_iter_next(&items)) {
            const char *nid = "", *kind = "", *label = "", *href = "";
            if (!bson_iter_recurse(&items, &f))
                continue;
            while (bson_iter_next(&f)) {
                if (!BSON_ITER_HOLDS_UTF8(&f))
                    continue;
                const char *k = bson_iter_key(&f);
                if (!strcmp(k, "id"))
                    nid = bson_iter_utf8(&f, NULL);
                else if (!strcmp(k, "kind"))
                    kind = bson_iter_utf8(&f, NULL);
                else if (!strcmp(k, "label"))
                    label = bson_iter_utf8(&f, NULL);
                else if (!strcmp(k, "href"))
                    href = bson_iter_utf8(&f, NULL);
            }
            buf_puts(&dot, "  ");
            dot_quoted(&dot, nid);
            buf_puts(&dot, " [label=");
            dot_quoted(&dot, label);
            buf_puts(&dot, ", href=");
            dot_quoted(&dot, href);
            buf_puts(&dot, ", tooltip=");
            dot_quoted(&dot, label);
            buf_printf(&dot, ", shape=%s, style=\"%s\", fillcolor=\"%s\"];\n",
                       strcmp(kind, "step") ? "note" : "box",
                       strcmp(kind, "step") ? "filled" : "rounded,filled",
                       !strcmp(nid, root)     ? "#fff0a8"
                       : strcmp(kind, "step") ? "#eef3fb"
                                              : "#f4f4f4");
        }
    if (bson_iter_init_find(&it, &doc, "edges") && bson_iter_recurse(&it, &items))
        while (bson_iter_next(&items)) {
            bson_t e;
            uint32_t len;
            const uint8_t *data;
            if (!BSON_ITER_HOLDS_DOCUMENT(&items))
                continue;
            bson_iter_document(&items, &len, &data);
            if (!bson_init_static(&e, data, len))
                continue;
            buf_puts(&dot, "  ");
            dot_quoted(&dot, ui_str(&e, "from", ""));
            buf_puts(&dot, " -> ");
            dot_quoted(&dot, ui_str(&e, "to", ""));
            buf_puts(&dot, ";\n");
        }
    buf_puts(&dot, "}\n");
    bson_destroy(&doc);
    Agraph_t *g = buf_failed(&dot) ? NULL : read_dot(c, buf_str(&dot), res);
    buf_free(&dot);
    if (g) {
        render_svg(c, g, res);
        agclose(g);
    }
}
