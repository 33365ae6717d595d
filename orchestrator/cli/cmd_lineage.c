/* cmd_lineage.c - sluice lineage ID [--up|--down] [--format text|dot|json]:
 * what an artifact was made from, and what was made from it, through the
 * step runs in between. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "buf.h"
#include "inspect.h"

/* The graph found: artifacts (by hash) and step runs (RUN/STEP). */
typedef struct node {
    char id[320];
    int is_step;
    int depth; /* negative upwards, positive downwards */
} node;

typedef struct edge {
    size_t from, to; /* indices in nodes: producer -> artifact -> consumer */
} edge;

typedef struct graph {
    node *nodes;
    size_t n, cap;
    edge *edges;
    size_t n_edges, cap_edges;
} graph;

static long find(const graph *g, const char *id, int is_step) {
    for (size_t i = 0; i < g->n; i++)
        if (g->nodes[i].is_step == is_step && strcmp(g->nodes[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* Adds a node if new; returns its index and whether it was new. */
static long add(graph *g, const char *id, int is_step, int depth, int *fresh) {
    long at = find(g, id, is_step);
    *fresh = at < 0;
    if (at >= 0)
        return at;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        node *grown = realloc(g->nodes, cap * sizeof(*grown));
        if (!grown)
            return -1;
        g->nodes = grown;
        g->cap = cap;
    }
    node *n = &g->nodes[g->n];
    snprintf(n->id, sizeof(n->id), "%s", id);
    n->is_step = is_step;
    n->depth = depth;
    return (long)g->n++;
}

static void link_nodes(graph *g, long from, long to) {
    if (from < 0 || to < 0)
        return;
    for (size_t i = 0; i < g->n_edges; i++)
        if (g->edges[i].from == (size_t)from && g->edges[i].to == (size_t)to)
            return;
    if (g->n_edges == g->cap_edges) {
        size_t cap = g->cap_edges ? g->cap_edges * 2 : 16;
        edge *grown = realloc(g->edges, cap * sizeof(*grown));
        if (!grown)
            return;
        g->edges = grown;
        g->cap_edges = cap;
    }
    g->edges[g->n_edges++] = (edge){(size_t)from, (size_t)to};
}

/* The hashes under key (a document of name -> hash) of a step record. */
typedef void (*port_fn)(graph *g, MDB_txn *txn, meta_db *m, long step_node, const char *hash,
                        int depth);

static void each_port(graph *g, MDB_txn *txn, meta_db *m, long step_node, const char *key,
                      port_fn fn, int depth) {
    bson_t rec;
    if (meta_get(txn, m->steps, g->nodes[step_node].id, &rec) != 0)
        return;
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, &rec, key) || !bson_iter_recurse(&it, &sub))
        return;
    while (bson_iter_next(&sub))
        if (BSON_ITER_HOLDS_UTF8(&sub))
            fn(g, txn, m, step_node, bson_iter_utf8(&sub, NULL), depth);
}

static void walk_up(graph *g, MDB_txn *txn, meta_db *m, long artifact, int depth);

static void up_input(graph *g, MDB_txn *txn, meta_db *m, long step_node, const char *hash,
                     int depth) {
    int fresh;
    long a = add(g, hash, 0, depth, &fresh);
    link_nodes(g, a, step_node);
    if (fresh)
        walk_up(g, txn, m, a, depth);
}

/* artifact <- its producer <- the producer's inputs <- ... */
static void walk_up(graph *g, MDB_txn *txn, meta_db *m, long artifact, int depth) {
    bson_t rec;
    bson_iter_t it;
    /* An imported artifact has no producer: its record says where from. */
    if (meta_get(txn, m->artifacts, g->nodes[artifact].id, &rec) != 0 ||
        !bson_iter_init_find(&it, &rec, "run"))
        return;
    char step_id[320];
    snprintf(step_id, sizeof(step_id), "%s/%s", inspect_str(&rec, "run", "?"),
             inspect_str(&rec, "step", "?"));
    int fresh;
    long s = add(g, step_id, 1, depth - 1, &fresh);
    link_nodes(g, s, artifact);
    if (fresh)
        each_port(g, txn, m, s, "inputs", up_input, depth - 2);
}

static void walk_down(graph *g, MDB_txn *txn, meta_db *m, long artifact, int depth);

static void down_output(graph *g, MDB_txn *txn, meta_db *m, long step_node, const char *hash,
                        int depth) {
    int fresh;
    long a = add(g, hash, 0, depth, &fresh);
    link_nodes(g, step_node, a);
    if (fresh)
        walk_down(g, txn, m, a, depth);
}

typedef struct down_ctx {
    graph *g;
    MDB_txn *txn;
    meta_db *m;
    long artifact;
    int depth;
    char (*found)[320];
    size_t n_found;
} down_ctx;

static int collect_consumer(void *ud, const char *key, size_t len, const bson_t *doc) {
    down_ctx *c = ud;
    (void)doc;
    const char *slash = memchr(key, '/', len);
    if (!slash || c->n_found == 256)
        return 0;
    snprintf(c->found[c->n_found++], 320, "%.*s", (int)(len - (size_t)(slash + 1 - key)),
             slash + 1);
    return 0;
}

/* artifact -> the step runs that read it -> their outputs -> ... */
static void walk_down(graph *g, MDB_txn *txn, meta_db *m, long artifact, int depth) {
    char prefix[sizeof(g->nodes[0].id) + 2];
    snprintf(prefix, sizeof(prefix), "%s/", g->nodes[artifact].id);
    char(*found)[320] = malloc(256 * 320);
    if (!found)
        return;
    down_ctx c = {g, txn, m, artifact, depth, found, 0};
    meta_each(txn, m->consumers, prefix, collect_consumer, &c);
    for (size_t i = 0; i < c.n_found; i++) {
        int fresh;
        long s = add(g, found[i], 1, depth + 1, &fresh);
        link_nodes(g, artifact, s);
        if (fresh)
            each_port(g, txn, m, s, "outputs", down_output, depth + 2);
    }
    free(found);
}

static const char *label(MDB_txn *txn, meta_db *m, const node *n, char *out, size_t size) {
    bson_t rec;
    if (n->is_step) {
        if (meta_get(txn, m->steps, n->id, &rec) == 0)
            snprintf(out, size, "step run %s (%s, %s)", n->id, inspect_str(&rec, "uses", "?"),
                     inspect_str(&rec, "status", "?"));
        else
            snprintf(out, size, "step run %s", n->id);
    } else if (meta_get(txn, m->artifacts, n->id, &rec) == 0 && !inspect_str(&rec, "run", NULL)) {
        char origin[4096];
        snprintf(out, size, "artifact %.12s (%s, %s)", n->id, inspect_str(&rec, "type", "?"),
                 inspect_origin(&rec, origin, sizeof(origin)));
    } else if (meta_get(txn, m->artifacts, n->id, &rec) == 0) {
        snprintf(out, size, "artifact %.12s (%s, %s.%s)", n->id, inspect_str(&rec, "type", "?"),
                 inspect_str(&rec, "step", "?"), inspect_str(&rec, "output", "?"));
    } else {
        snprintf(out, size, "artifact %.12s", n->id);
    }
    return out;
}

/* The "imports" of lineage's JSON: {artifact, path, name, time}. */
typedef struct import_list {
    bson_t *array;
    const char *artifact;
    uint32_t n;
} import_list;

static void append_import(void *ud, const char *path, const char *name, double time) {
    import_list *il = ud;
    char idx[16];
    const char *k;
    bson_uint32_to_string(il->n++, &k, idx, sizeof(idx));
    bson_t item;
    BSON_APPEND_DOCUMENT_BEGIN(il->array, k, &item);
    BSON_APPEND_UTF8(&item, "artifact", il->artifact);
    BSON_APPEND_UTF8(&item, "path", path);
    if (name)
        BSON_APPEND_UTF8(&item, "name", name);
    BSON_APPEND_DOUBLE(&item, "time", time);
    bson_append_document_end(il->array, &item);
}

static int by_depth(const void *a, const void *b) {
    const node *x = a, *y = b;
    return (x->depth > y->depth) - (x->depth < y->depth);
}

int cmd_lineage(const cli_globals *g, int argc, char **argv) {
    enum { OPT_UP = 256, OPT_DOWN, OPT_FORMAT };
    static const struct option longopts[] = {
        {"up", no_argument, NULL, OPT_UP},
        {"down", no_argument, NULL, OPT_DOWN},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"json", no_argument, NULL, 'J'},
        {NULL, 0, NULL, 0},
    };
    int up = 0, down = 0, c;
    const char *format = "text";
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c == OPT_UP)
            up = 1;
        else if (c == OPT_DOWN)
            down = 1;
        else if (c == OPT_FORMAT)
            format = optarg;
        else if (c == 'J')
            format = "json";
        else
            return EXIT_BAD_INPUT;
    }
    if (strcmp(format, "text") && strcmp(format, "json") && strcmp(format, "dot")) {
        fprintf(stderr, "sluice lineage: unknown format '%s' (use text, dot or json)\n", format);
        return EXIT_BAD_INPUT;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "sluice lineage: give one artifact id (see 'sluice lineage --help')\n");
        return EXIT_BAD_INPUT;
    }
    if (!up && !down)
        up = down = 1;
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin(g->store, &m, &txn))
        return EXIT_BAD_INPUT;
    char hash[HASH_HEX_LEN + 1];
    int status = inspect_resolve_artifact(txn, &m, argv[optind], hash, sizeof(hash));
    graph gr = {0};
    if (status == 0) {
        int fresh;
        long root = add(&gr, hash, 0, 0, &fresh);
        if (up)
            walk_up(&gr, txn, &m, root, 0);
        if (down)
            walk_down(&gr, txn, &m, root, 0);
        char text[4600];
        if (strcmp(format, "json") == 0) {
            bson_t doc = BSON_INITIALIZER, arts, steps, edges;
            BSON_APPEND_UTF8(&doc, "artifact", hash);
            /* libbson builds one child at a time: artifacts, then step runs. */
            for (int pass = 0; pass < 2; pass++) {
                bson_t *arr = pass ? &steps : &arts;
                BSON_APPEND_ARRAY_BEGIN(&doc, pass ? "step_runs" : "artifacts", arr);
                uint32_t n = 0;
                for (size_t i = 0; i < gr.n; i++) {
                    if (gr.nodes[i].is_step != pass)
                        continue;
                    char idx[16];
                    const char *k;
                    bson_uint32_to_string(n++, &k, idx, sizeof(idx));
                    BSON_APPEND_UTF8(arr, k, gr.nodes[i].id);
                }
                bson_append_array_end(&doc, arr);
            }
            BSON_APPEND_ARRAY_BEGIN(&doc, "edges", &edges);
            for (size_t i = 0; i < gr.n_edges; i++) {
                char idx[16];
                const char *k;
                bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
                bson_t e;
                BSON_APPEND_DOCUMENT_BEGIN(&edges, k, &e);
                BSON_APPEND_UTF8(&e, "from", gr.nodes[gr.edges[i].from].id);
                BSON_APPEND_UTF8(&e, "to", gr.nodes[gr.edges[i].to].id);
                bson_append_document_end(&edges, &e);
            }
            bson_append_array_end(&doc, &edges);
            bson_t imports;
            import_list il = {&imports, NULL, 0};
            BSON_APPEND_ARRAY_BEGIN(&doc, "imports", &imports);
            for (size_t i = 0; i < gr.n; i++) {
                bson_t rec;
                il.artifact = gr.nodes[i].id;
                if (!gr.nodes[i].is_step && meta_get(txn, m.artifacts, il.artifact, &rec) == 0)
                    inspect_each_import(&rec, append_import, &il);
            }
            bson_append_array_end(&doc, &imports);
            inspect_print_json(&doc);
            bson_destroy(&doc);
        } else if (strcmp(format, "dot") == 0) {
            printf("digraph lineage {\n  rankdir=LR;\n");
            for (size_t i = 0; i < gr.n; i++)
                printf("  n%zu [shape=%s, label=\"%s\"];\n", i,
                       gr.nodes[i].is_step ? "box" : "ellipse",
                       label(txn, &m, &gr.nodes[i], text, sizeof(text)));
            for (size_t i = 0; i < gr.n_edges; i++)
                printf("  n%zu -> n%zu;\n", gr.edges[i].from, gr.edges[i].to);
            printf("}\n");
        } else {
            /* Upstream first, the artifact, then downstream: in data-flow order. */
            qsort(gr.nodes, gr.n, sizeof(*gr.nodes), by_depth);
            for (size_t i = 0; i < gr.n; i++) {
                int d = gr.nodes[i].depth;
                printf("%s%*s%s\n", d == 0 ? "* " : "  ", 0, "",
                       label(txn, &m, &gr.nodes[i], text, sizeof(text)));
            }
        }
    }
    free(gr.nodes);
    free(gr.edges);
    inspect_end(&m, txn);
    return status;
}
