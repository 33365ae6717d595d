/* render.h - a pipeline's graph as Graphviz dot, Mermaid, or JSON. */
#ifndef SLUICE_PIPELINE_RENDER_H
#define SLUICE_PIPELINE_RENDER_H

#include "buf.h"
#include "dag.h"
#include "pipeline.h"

typedef enum { GRAPH_DOT, GRAPH_MERMAID, GRAPH_JSON } graph_format;

/* Parses "dot", "mermaid" or "json"; returns 0 or -EINVAL. */
int graph_format_parse(const char *name, graph_format *out);

/* Appends the graph of p (g = pipeline_dag(p)) to out. Data edges are
 * labelled with the input they feed, order-only edges are dashed; an
 * "artifact:ID" input is an edge from a source node of its own (one per ID,
 * a cylinder in dot and Mermaid, "artifacts" in JSON). Returns 0
 * or -ENOMEM. The JSON form is documented in docs/cli.md. */
int pipeline_render(const pipeline *p, const dag *g, graph_format f, buf *out);

#endif
