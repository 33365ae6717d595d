#include "render.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int graph_format_parse(const char *name, graph_format *out) {
    if (strcmp(name, "dot") == 0)
        *out = GRAPH_DOT;
    else if (strcmp(name, "mermaid") == 0)
        *out = GRAPH_MERMAID;
    else if (strcmp(name, "json") == 0)
        *out = GRAPH_JSON;
    else
        return -EINVAL;
    return 0;
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

/* The artifacts the pipeline reads from the store ("artifact:ID" inputs),
 * each ID once in the order first written: the graph's source nodes. */
typedef struct artifact_nodes {
    const char **ids; /* borrowed from p; NULL when there are none or out of memory */
    size_t n;
} artifact_nodes;

/* The node of id in a (its index), or a->n when it has none. */
static size_t artifact_node(const artifact_nodes *a, const char *id) {
    size_t i = 0;
    while (i < a->n && strcmp(a->ids[i], id) != 0)
        i++;
    return i;
}

static int artifact_nodes_of(const pipeline *p, artifact_nodes *a) {
    size_t total = 0;
    a->ids = NULL;
    a->n = 0;
    for (size_t i = 0; i < p->n_steps; i++)
        for (size_t k = 0; k < p->steps[i].n_inputs; k++)
            total += p->steps[i].inputs[k].artifact != NULL;
    if (!total)
        return 0;
    if (!(a->ids = malloc(total * sizeof(*a->ids))))
        return -ENOMEM;
    for (size_t i = 0; i < p->n_steps; i++)
        for (size_t k = 0; k < p->steps[i].n_inputs; k++) {
            const char *id = p->steps[i].inputs[k].artifact;
            if (id && artifact_node(a, id) == a->n)
                a->ids[a->n++] = id;
        }
    return 0;
}

/* An artifact's node is named and labelled "artifact:ID", as the input
 * writes it (no step id has a ':'), and drawn as a cylinder: the store. */
static void dot_artifact_name(buf *b, const char *id) {
    buf name = BUF_INIT;
    buf_printf(&name, "artifact:%s", id);
    dot_quoted(b, buf_str(&name));
    buf_free(&name);
}

/* A 'foreach: STEP.OUTPUT' step whose instances were made from a run
 * (graph --run): they are drawn in its place. */
static int expanded(const step *s) { return step_is_template(s) && s->n_instances; }

/* Whether s has the edge of a 'foreach: STEP.OUTPUT' to draw: a template
 * not expanded, or one of its instances. */
static int foreach_edge(const step *s) {
    return s->foreach_step && s->foreach_from != UINT32_MAX && !expanded(s);
}

static void render_dot(const pipeline *p, const artifact_nodes *a, buf *b) {
    buf_puts(b, "digraph ");
    dot_quoted(b, p->name ? p->name : "pipeline");
    buf_puts(b, " {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
                "  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (size_t i = 0; i < a->n; i++) {
        buf_puts(b, "  ");
        dot_artifact_name(b, a->ids[i]);
        buf_puts(b, " [shape=cylinder, style=solid, class=\"artifact\"];\n");
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        if (expanded(s))
            continue;
        if (s->group && s->instance == 0) { /* a fan-out step's instances, boxed together */
            buf str = BUF_INIT;
            buf_printf(&str, "cluster_%s", s->group);
            buf_puts(b, "  subgraph ");
            dot_quoted(b, buf_str(&str));
            buf_reset(&str);
            step_group_label(s, &str);
            buf_puts(b, " {\n    label=");
            dot_quoted(b, buf_str(&str));
            buf_puts(b, ";\n");
            buf_free(&str);
        }
        buf_puts(b, s->group ? "    " : "  ");
        dot_quoted(b, s->id);
        buf_puts(b, " [label=");
        buf str = BUF_INIT;
        buf_printf(&str, "%s%s\n%s", s->id, step_is_template(s) ? "[*]" : "",
                   s->uses ? s->uses : "?");
        /* A literal newline in a dot string is a line break as well. */
        dot_quoted(b, buf_str(&str));
        buf_free(&str);
        buf_puts(b, "];\n");
        if (s->group && s->instance + 1 == s->n_instances)
            buf_puts(b, "  }\n");
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        if (expanded(s))
            continue;
        for (size_t k = 0; k < s->n_inputs; k++) {
            const step_input *in = &s->inputs[k];
            if (in->from == UINT32_MAX && !in->artifact)
                continue;
            buf_puts(b, "  ");
            if (in->artifact)
                dot_artifact_name(b, in->artifact);
            else
                dot_quoted(b, in->from_step);
            buf_puts(b, " -> ");
            dot_quoted(b, s->id);
            buf_printf(b, " [label=\"%s\"];\n", s->inputs[k].port);
        }
        for (size_t k = 0; k < s->n_after; k++) {
            if (s->after[k].from == UINT32_MAX)
                continue;
            buf_puts(b, "  ");
            dot_quoted(b, s->after[k].step);
            buf_puts(b, " -> ");
            dot_quoted(b, s->id);
            buf_puts(b, " [style=dashed];\n");
        }
        if (foreach_edge(s)) {
            buf_puts(b, "  ");
            dot_quoted(b, s->foreach_step);
            buf_puts(b, " -> ");
            dot_quoted(b, s->id);
            buf_puts(b, " [label=\"foreach ");
            buf_puts(b, s->foreach_output); /* an identifier: nothing to quote */
            buf_puts(b, "\", style=bold];\n");
        }
    }
    buf_puts(b, "}\n");
}

/* Mermaid labels go in "..."; its entity codes keep the markup intact. */
static void mermaid_text(buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"')
            buf_puts(b, "#quot;");
        else if (*s == '<')
            buf_puts(b, "#lt;");
        else if (*s == '>')
            buf_puts(b, "#gt;");
        else
            buf_putc(b, *s);
    }
}

static void render_mermaid(const pipeline *p, const artifact_nodes *a, buf *b) {
    buf_puts(b, "flowchart LR\n");
    /* artifacts a0, a1, ... as cylinders: [("...")] */
    for (size_t i = 0; i < a->n; i++) {
        buf_printf(b, "  a%zu[(\"artifact:", i);
        mermaid_text(b, a->ids[i]);
        buf_puts(b, "\")]\n");
    }
    /* Node ids are generated (s0, s1, ...): step ids may hold '-', which
     * Mermaid would read as part of an arrow. */
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        if (expanded(s))
            continue;
        if (s->group && s->instance == 0) {
            buf label = BUF_INIT;
            step_group_label(s, &label);
            buf_printf(b, "  subgraph g%zu[\"", i);
            mermaid_text(b, buf_str(&label));
            buf_puts(b, "\"]\n");
            buf_free(&label);
        }
        buf_printf(b, "%ss%zu[\"", s->group ? "    " : "  ", i);
        mermaid_text(b, s->id);
        if (step_is_template(s))
            buf_puts(b, "[*]");
        buf_puts(b, "<br/><i>");
        mermaid_text(b, s->uses ? s->uses : "?");
        buf_puts(b, "</i>\"]\n");
        if (s->group && s->instance + 1 == s->n_instances)
            buf_puts(b, "  end\n");
    }
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        if (expanded(s))
            continue;
        for (size_t k = 0; k < s->n_inputs; k++)
            if (s->inputs[k].artifact)
                buf_printf(b, "  a%zu -->|%s| s%zu\n", artifact_node(a, s->inputs[k].artifact),
                           s->inputs[k].port, i);
            else if (s->inputs[k].from != UINT32_MAX)
                buf_printf(b, "  s%u -->|%s| s%zu\n", s->inputs[k].from, s->inputs[k].port, i);
        for (size_t k = 0; k < s->n_after; k++)
            if (s->after[k].from != UINT32_MAX)
                buf_printf(b, "  s%u -.-> s%zu\n", s->after[k].from, i);
        if (foreach_edge(s))
            buf_printf(b, "  s%u ==>|foreach %s| s%zu\n", s->foreach_from, s->foreach_output, i);
    }
}

static int render_json(const pipeline *p, const dag *g, const artifact_nodes *a, buf *b) {
    bson_t doc, steps, edges, order, arts;
    char key[16];
    const char *k;
    bson_init(&doc);
    BSON_APPEND_UTF8(&doc, "pipeline", p->name ? p->name : "");
    BSON_APPEND_ARRAY_BEGIN(&doc, "steps", &steps);
    for (size_t i = 0, n_shown = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        bson_t item, needs;
        if (expanded(s))
            continue;
        bson_uint32_to_string((uint32_t)n_shown++, &k, key, sizeof(key));
        BSON_APPEND_DOCUMENT_BEGIN(&steps, k, &item);
        BSON_APPEND_UTF8(&item, "id", s->id);
        BSON_APPEND_UTF8(&item, "uses", s->uses ? s->uses : "");
        if (s->group) {
            BSON_APPEND_UTF8(&item, "group", s->group);
            BSON_APPEND_INT32(&item, "instance", (int32_t)s->instance);
        }
        if (step_is_template(s)) { /* instances known at run time: "ID[*]" */
            buf label = BUF_INIT;
            step_group_label(s, &label);
            BSON_APPEND_UTF8(&item, "label", buf_str(&label));
            buf_reset(&label);
            buf_printf(&label, "%s.%s", s->foreach_step, s->foreach_output);
            BSON_APPEND_UTF8(&item, "foreach", buf_str(&label));
            buf_free(&label);
        }
        BSON_APPEND_INT32(&item, "level", g->acyclic ? (int32_t)g->level[i] : -1);
        BSON_APPEND_ARRAY_BEGIN(&item, "needs", &needs);
        for (uint32_t e = g->pred_start[i], n = 0; e < g->pred_start[i + 1]; e++, n++) {
            bson_uint32_to_string(n, &k, key, sizeof(key));
            BSON_APPEND_UTF8(&needs, k, p->steps[g->pred[e]].id);
        }
        bson_append_array_end(&item, &needs);
        bson_append_document_end(&steps, &item);
    }
    bson_append_array_end(&doc, &steps);
    BSON_APPEND_ARRAY_BEGIN(&doc, "edges", &edges);
    uint32_t n_edges = 0;
    for (size_t i = 0; i < p->n_steps; i++) {
        const step *s = &p->steps[i];
        if (expanded(s))
            continue;
        for (size_t e = 0; e < s->n_inputs + s->n_after; e++) {
            int data = e < s->n_inputs;
            const step_input *in = data ? &s->inputs[e] : NULL;
            const step_after *af = data ? NULL : &s->after[e - s->n_inputs];
            if ((data ? in->from : af->from) == UINT32_MAX)
                continue;
            bson_t item;
            bson_uint32_to_string(n_edges++, &k, key, sizeof(key));
            BSON_APPEND_DOCUMENT_BEGIN(&edges, k, &item);
            BSON_APPEND_UTF8(&item, "from", data ? in->from_step : af->step);
            BSON_APPEND_UTF8(&item, "to", s->id);
            BSON_APPEND_UTF8(&item, "kind", data ? "data" : "order");
            if (data) {
                BSON_APPEND_UTF8(&item, "output", in->from_output);
                BSON_APPEND_UTF8(&item, "input", in->port);
            }
            bson_append_document_end(&edges, &item);
        }
        if (foreach_edge(s)) {
            bson_t item;
            bson_uint32_to_string(n_edges++, &k, key, sizeof(key));
            BSON_APPEND_DOCUMENT_BEGIN(&edges, k, &item);
            BSON_APPEND_UTF8(&item, "from", s->foreach_step);
            BSON_APPEND_UTF8(&item, "to", s->id);
            BSON_APPEND_UTF8(&item, "kind", "foreach");
            BSON_APPEND_UTF8(&item, "output", s->foreach_output);
            bson_append_document_end(&edges, &item);
        }
    }
    bson_append_array_end(&doc, &edges);
    /* The artifacts read from the store, apart from the edges between steps. */
    BSON_APPEND_ARRAY_BEGIN(&doc, "artifacts", &arts);
    for (size_t i = 0; i < a->n; i++) {
        bson_t item, to;
        uint32_t n_to = 0;
        bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
        BSON_APPEND_DOCUMENT_BEGIN(&arts, k, &item);
        BSON_APPEND_UTF8(&item, "artifact", a->ids[i]);
        BSON_APPEND_ARRAY_BEGIN(&item, "to", &to);
        for (size_t j = 0; j < p->n_steps; j++)
            for (size_t e = 0; e < p->steps[j].n_inputs; e++) {
                const step_input *in = &p->steps[j].inputs[e];
                if (!in->artifact || strcmp(in->artifact, a->ids[i]) != 0)
                    continue;
                bson_t edge;
                bson_uint32_to_string(n_to++, &k, key, sizeof(key));
                BSON_APPEND_DOCUMENT_BEGIN(&to, k, &edge);
                BSON_APPEND_UTF8(&edge, "step", p->steps[j].id);
                BSON_APPEND_UTF8(&edge, "input", in->port);
                bson_append_document_end(&to, &edge);
            }
        bson_append_array_end(&item, &to);
        bson_append_document_end(&arts, &item);
    }
    bson_append_array_end(&doc, &arts);
    BSON_APPEND_ARRAY_BEGIN(&doc, "order", &order);
    for (size_t i = 0, n_shown = 0; g->acyclic && i < g->n; i++) {
        if (expanded(&p->steps[g->order[i]]))
            continue;
        bson_uint32_to_string((uint32_t)n_shown++, &k, key, sizeof(key));
        BSON_APPEND_UTF8(&order, k, p->steps[g->order[i]].id);
    }
    bson_append_array_end(&doc, &order);
    BSON_APPEND_INT32(&doc, "levels", (int32_t)g->n_levels);
    size_t len = 0;
    char *json = bson_as_relaxed_extended_json(&doc, &len);
    bson_destroy(&doc);
    if (!json)
        return -ENOMEM;
    buf_append(b, json, len);
    buf_putc(b, '\n');
    bson_free(json);
    return 0;
}

int pipeline_render(const pipeline *p, const dag *g, graph_format f, buf *out) {
    artifact_nodes a;
    int rc = artifact_nodes_of(p, &a);
    if (rc)
        return rc;
    switch (f) {
    case GRAPH_DOT:
        render_dot(p, &a, out);
        break;
    case GRAPH_MERMAID:
        render_mermaid(p, &a, out);
        break;
    case GRAPH_JSON:
        rc = render_json(p, g, &a, out);
        break;
    }
    free(a.ids);
    return rc ? rc : buf_failed(out) ? -ENOMEM : 0;
}
