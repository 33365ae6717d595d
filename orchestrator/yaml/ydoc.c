#include "ydoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "hmap.h"

const ydoc_limits ydoc_default_limits = {
    .max_depth = 64,
    .max_scalar = 1u << 20,
    .max_alias_nodes = 100000,
};

#define TAG_PREFIX "tag:yaml.org,2002:"
#define WEIGHT_CAP (UINT64_MAX / 4)

/* An open collection: its node and the children read so far (a temporary
 * heap vector, copied into the arena when the collection ends). */
typedef struct frame {
    ynode *node;
    ynode **kids;
    size_t n, cap;
    uint32_t anchor; /* index into builder.anchors, or NO_ANCHOR */
} frame;

#define NO_ANCHOR UINT32_MAX

typedef struct anchor {
    ynode *node;
    int complete; /* an alias to an open anchor would make the tree cyclic */
} anchor;

typedef struct builder {
    arena *a;
    const char *file;
    diag_list *d;
    const ydoc_limits *lim;
    frame *stack;
    size_t depth, stack_cap;
    anchor *anchors;
    size_t n_anchors, anchors_cap;
    hmap anchor_names; /* name (in the arena) -> latest index in anchors */
    uint64_t alias_nodes;
    ynode *root;
    int documents;
} builder;

static int fail(builder *b, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports an error at m and returns -EINVAL, for one-line error exits. */
static int fail(builder *b, const yaml_mark_t *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(b->d, DIAG_ERROR, b->file, (unsigned)m->line + 1, (unsigned)m->column + 1, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static ynode *new_node(builder *b, ynode_kind kind, const yaml_mark_t *m) {
    ynode *n = arena_calloc(b->a, 1, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->line = (unsigned)m->line + 1;
        n->col = (unsigned)m->column + 1;
        n->weight = 1;
    }
    return n;
}

static int add_child(builder *b, ynode *child) {
    if (b->depth == 0) {
        b->root = child;
        return 0;
    }
    frame *f = &b->stack[b->depth - 1];
    if (f->node->kind == YNODE_MAP && f->n % 2 == 0 && child->kind != YNODE_SCALAR) {
        diag_add(b->d, DIAG_ERROR, b->file, child->line, child->col,
                 "mapping keys must be strings, not %s", ynode_kind_name(child));
        return -EINVAL;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        ynode **kids = realloc(f->kids, cap * sizeof(*kids));
        if (!kids)
            return -ENOMEM;
        f->kids = kids;
        f->cap = cap;
    }
    f->kids[f->n++] = child;
    return 0;
}

static int tag_is(const yaml_char_t *tag, const char *name) {
    size_t lp = sizeof(TAG_PREFIX) - 1;
    return tag && strncmp((const char *)tag, TAG_PREFIX, lp) == 0 &&
           strcmp((const char *)tag + lp, name) == 0;
}

/* Records an anchor at a node; returns its index, NO_ANCHOR with *rc set on
 * failure. */
static uint32_t define_anchor(builder *b, const yaml_char_t *name, ynode *node, int complete,
                              int *rc) {
    *rc = 0;
    if (!name)
        return NO_ANCHOR;
    if (b->n_anchors == b->anchors_cap) {
        size_t cap = b->anchors_cap ? b->anchors_cap * 2 : 8;
        anchor *v = realloc(b->anchors, cap * sizeof(*v));
        if (!v) {
            *rc = -ENOMEM;
            return NO_ANCHOR;
        }
        b->anchors = v;
        b->anchors_cap = cap;
    }
    char *key = arena_strdup(b->a, (const char *)name);
    if (!key || hmap_set(&b->anchor_names, key, strlen(key), (uint32_t)b->n_anchors) < 0) {
        *rc = -ENOMEM;
        return NO_ANCHOR;
    }
    b->anchors[b->n_anchors] = (anchor){node, complete};
    return (uint32_t)b->n_anchors++;
}

static int on_scalar(builder *b, const yaml_event_t *ev) {
    const yaml_char_t *tag = ev->data.scalar.tag;
    size_t len = ev->data.scalar.length;
    if (len > b->lim->max_scalar) {
        diag_add(b->d, DIAG_ERROR, b->file, (unsigned)ev->start_mark.line + 1,
                 (unsigned)ev->start_mark.column + 1,
                 "string of %zu bytes is longer than the limit of %zu", len, b->lim->max_scalar);
        return -EINVAL;
    }
    if (memchr(ev->data.scalar.value, '\0', len))
        return fail(b, &ev->start_mark, "string holds a NUL character");
    if (tag && strcmp((const char *)tag, "!") != 0 && !tag_is(tag, "str") && !tag_is(tag, "int") &&
        !tag_is(tag, "float") && !tag_is(tag, "bool") && !tag_is(tag, "null"))
        return fail(b, &ev->start_mark, "unsupported YAML tag '%s'", (const char *)tag);
    ynode *n = new_node(b, YNODE_SCALAR, &ev->start_mark);
    if (!n)
        return -ENOMEM;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag_is(tag, "str") ||
                (tag && strcmp((const char *)tag, "!") == 0);
    n->tag = tag_is(tag, "int")     ? YTAG_INT
             : tag_is(tag, "float") ? YTAG_FLOAT
             : tag_is(tag, "bool")  ? YTAG_BOOL
             : tag_is(tag, "null")  ? YTAG_NULL
                                    : YTAG_NONE;
    if (n->tag != YTAG_NONE)
        n->quoted = 0; /* !!int "5" is the integer 5 */
    n->u.scalar.text = arena_strndup(b->a, (const char *)ev->data.scalar.value, len);
    n->u.scalar.len = len;
    if (!n->u.scalar.text)
        return -ENOMEM;
    int rc;
    define_anchor(b, ev->data.scalar.anchor, n, 1, &rc);
    return rc ? rc : add_child(b, n);
}

static int on_start(builder *b, const yaml_event_t *ev, ynode_kind kind) {
    const yaml_char_t *tag =
        kind == YNODE_MAP ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    const yaml_char_t *anchor_name =
        kind == YNODE_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    if (tag && !tag_is(tag, kind == YNODE_MAP ? "map" : "seq") && strcmp((const char *)tag, "!"))
        return fail(b, &ev->start_mark, "unsupported YAML tag '%s'", (const char *)tag);
    if (b->depth >= b->lim->max_depth) {
        diag_add(b->d, DIAG_ERROR, b->file, (unsigned)ev->start_mark.line + 1,
                 (unsigned)ev->start_mark.column + 1,
                 "nesting is deeper than the limit of %zu levels", b->lim->max_depth);
        return -EINVAL;
    }
    ynode *n = new_node(b, kind, &ev->start_mark);
    if (!n)
        return -ENOMEM;
    if (b->depth == b->stack_cap) {
        size_t cap = b->stack_cap ? b->stack_cap * 2 : 8;
        frame *s = realloc(b->stack, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        b->stack = s;
        b->stack_cap = cap;
    }
    int rc;
    uint32_t idx = define_anchor(b, anchor_name, n, 0, &rc);
    if (rc)
        return rc;
    b->stack[b->depth++] = (frame){n, NULL, 0, 0, idx};
    return 0;
}

static uint64_t add_weight(uint64_t a, uint64_t b) {
    return a > WEIGHT_CAP - b ? WEIGHT_CAP : a + b;
}

static int same_key(const ynode *a, const ynode *b) {
    return a->u.scalar.len == b->u.scalar.len &&
           memcmp(a->u.scalar.text, b->u.scalar.text, a->u.scalar.len) == 0;
}

static int is_merge_key(const ynode *k) {
    return !k->quoted && k->u.scalar.len == 2 && memcmp(k->u.scalar.text, "<<", 2) == 0;
}

/* The keys of a mapping under construction: a linear scan while it is
 * small, a hash map once scanning would cost more than hashing. */
typedef struct keyset {
    ypair *pairs;
    size_t n;
    hmap index;
} keyset;

#define KEYSET_LINEAR_MAX 8

/* 1 if key is present (*at = its pair), 0 if absent, -ENOMEM. */
static int keyset_find(keyset *ks, const ynode *key, size_t *at) {
    if (ks->n <= KEYSET_LINEAR_MAX) {
        for (size_t i = 0; i < ks->n; i++)
            if (same_key(ks->pairs[i].key, key)) {
                *at = i;
                return 1;
            }
        return 0;
    }
    if (ks->index.n == 0)
        for (size_t i = 0; i < ks->n; i++)
            if (hmap_put(&ks->index, ks->pairs[i].key->u.scalar.text,
                         ks->pairs[i].key->u.scalar.len, (uint32_t)i, NULL) < 0)
                return -ENOMEM;
    uint32_t v;
    if (hmap_get(&ks->index, key->u.scalar.text, key->u.scalar.len, &v)) {
        *at = v;
        return 1;
    }
    return 0;
}

static int keyset_add(keyset *ks, ynode *key, ynode *value) {
    if (ks->index.n &&
        hmap_put(&ks->index, key->u.scalar.text, key->u.scalar.len, (uint32_t)ks->n, NULL) < 0)
        return -ENOMEM;
    ks->pairs[ks->n++] = (ypair){key, value};
    return 0;
}

static int merge_source(keyset *ks, const ynode *src) {
    for (size_t i = 0; i < src->u.map.n; i++) {
        size_t at;
        int found = keyset_find(ks, src->u.map.pairs[i].key, &at);
        if (found < 0)
            return found;
        if (!found) {
            int rc = keyset_add(ks, src->u.map.pairs[i].key, src->u.map.pairs[i].value);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static size_t merged_size(const ynode *v) {
    if (v->kind == YNODE_MAP)
        return v->u.map.n;
    size_t n = 0;
    if (v->kind == YNODE_SEQ)
        for (size_t i = 0; i < v->u.seq.n; i++)
            if (v->u.seq.items[i]->kind == YNODE_MAP)
                n += v->u.seq.items[i]->u.map.n;
    return n;
}

/* Turns a mapping's key/value children into pairs: duplicates are errors
 * (the later one dropped), then merge keys add what is not already there. */
static int finish_map(builder *b, frame *f) {
    size_t room = f->n / 2;
    for (size_t i = 0; i + 1 < f->n; i += 2)
        if (is_merge_key(f->kids[i]))
            room += merged_size(f->kids[i + 1]);
    keyset ks = {arena_calloc(b->a, room ? room : 1, sizeof(ypair)), 0, HMAP_INIT};
    if (!ks.pairs)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i + 1 < f->n && rc == 0; i += 2) {
        ynode *k = f->kids[i], *v = f->kids[i + 1];
        if (is_merge_key(k))
            continue;
        size_t at;
        int found = keyset_find(&ks, k, &at);
        if (found < 0)
            rc = found;
        else if (found)
            diag_add(b->d, DIAG_ERROR, b->file, k->line, k->col,
                     "duplicate key '%s' (first given at line %u)", k->u.scalar.text,
                     ks.pairs[at].key->line);
        else
            rc = keyset_add(&ks, k, v);
    }
    for (size_t i = 0; i + 1 < f->n && rc == 0; i += 2) {
        ynode *k = f->kids[i], *v = f->kids[i + 1];
        if (!is_merge_key(k))
            continue;
        if (v->kind == YNODE_MAP) {
            rc = merge_source(&ks, v);
            continue;
        }
        int ok = v->kind == YNODE_SEQ;
        for (size_t j = 0; ok && j < v->u.seq.n; j++)
            ok = v->u.seq.items[j]->kind == YNODE_MAP;
        if (!ok) {
            diag_add(b->d, DIAG_ERROR, b->file, v->line, v->col,
                     "merge key '<<' needs a mapping or a list of mappings");
            continue;
        }
        for (size_t j = 0; j < v->u.seq.n && rc == 0; j++)
            rc = merge_source(&ks, v->u.seq.items[j]);
    }
    hmap_free(&ks.index);
    f->node->u.map.pairs = ks.pairs;
    f->node->u.map.n = ks.n;
    return rc;
}

static int on_end(builder *b) {
    frame *f = &b->stack[b->depth - 1];
    ynode *n = f->node;
    int rc = 0;
    for (size_t i = 0; i < f->n; i++)
        n->weight = add_weight(n->weight, f->kids[i]->weight);
    if (n->kind == YNODE_SEQ) {
        n->u.seq.items = arena_alloc(b->a, (f->n ? f->n : 1) * sizeof(ynode *));
        if (!n->u.seq.items)
            rc = -ENOMEM;
        else if (f->n)
            memcpy(n->u.seq.items, f->kids, f->n * sizeof(ynode *));
        n->u.seq.n = f->n;
    } else {
        rc = finish_map(b, f);
    }
    if (f->anchor != NO_ANCHOR)
        b->anchors[f->anchor].complete = 1;
    free(f->kids);
    b->depth--;
    return rc ? rc : add_child(b, n);
}

static int on_alias(builder *b, const yaml_event_t *ev) {
    const char *name = (const char *)ev->data.alias.anchor;
    uint32_t idx;
    if (!hmap_get(&b->anchor_names, name, strlen(name), &idx))
        return fail(b, &ev->start_mark, "alias '*%s' names no anchor defined before it", name);
    anchor *an = &b->anchors[idx];
    if (!an->complete)
        return fail(b, &ev->start_mark, "alias '*%s' refers to a node that contains it", name);
    b->alias_nodes = add_weight(b->alias_nodes, an->node->weight);
    if (b->alias_nodes > b->lim->max_alias_nodes) {
        diag_add(b->d, DIAG_ERROR, b->file, (unsigned)ev->start_mark.line + 1,
                 (unsigned)ev->start_mark.column + 1,
                 "aliases expand to more than %llu nodes (an alias bomb?)",
                 (unsigned long long)b->lim->max_alias_nodes);
        return -EINVAL;
    }
    return add_child(b, an->node);
}

/* libyaml reports reader errors (bad encoding) by byte offset only. */
static void offset_to_mark(const char *data, size_t len, size_t offset, yaml_mark_t *m) {
    m->line = m->column = 0;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (data[i] == '\n') {
            m->line++;
            m->column = 0;
        } else if (((unsigned char)data[i] & 0xC0) != 0x80) {
            m->column++;
        }
    }
}

static void parser_error(builder *b, const yaml_parser_t *p, const char *data, size_t len) {
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_MEMORY_ERROR) {
        diag_add(b->d, DIAG_ERROR, b->file, 0, 0, "out of memory while reading YAML");
        return;
    }
    if (p->error == YAML_READER_ERROR)
        offset_to_mark(data, len, p->problem_offset, &m);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->context)
        diag_add(b->d, DIAG_ERROR, b->file, (unsigned)m.line + 1, (unsigned)m.column + 1,
                 "malformed YAML: %s (%s at line %zu, column %zu)", problem, p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    else
        diag_add(b->d, DIAG_ERROR, b->file, (unsigned)m.line + 1, (unsigned)m.column + 1,
                 "malformed YAML: %s", problem);
}

static int on_event(builder *b, const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
            return fail(b, &ev->start_mark,
                        "a pipeline file holds one YAML document; a second one starts here");
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, YNODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, YNODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    default:
        return 0;
    }
}

int ydoc_parse(arena *a, const char *data, size_t len, const char *file, const ydoc_limits *limits,
               diag_list *d, ynode **root) {
    builder b = {.a = a,
                 .file = file,
                 .d = d,
                 .lim = limits ? limits : &ydoc_default_limits,
                 .anchor_names = HMAP_INIT};
    yaml_parser_t parser;
    *root = NULL;
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int rc = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            parser_error(&b, &parser, data, len);
            rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        rc = on_event(&b, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    while (b.depth > 0)
        free(b.stack[--b.depth].kids);
    free(b.stack);
    free(b.anchors);
    hmap_free(&b.anchor_names);
    if (rc == -ENOMEM)
        diag_add(d, DIAG_ERROR, file, 0, 0, "out of memory while reading YAML");
    if (rc == 0)
        *root = b.root;
    return rc;
}

ynode *ynode_get(const ynode *map, const char *key) {
    if (!map || map->kind != YNODE_MAP)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < map->u.map.n; i++) {
        const ynode *k = map->u.map.pairs[i].key;
        if (k->u.scalar.len == len && memcmp(k->u.scalar.text, key, len) == 0)
            return map->u.map.pairs[i].value;
    }
    return NULL;
}

const char *ynode_kind_name(const ynode *n) {
    switch (n->kind) {
    case YNODE_SCALAR:
        return "a scalar";
    case YNODE_SEQ:
        return "a list";
    default:
        return "a mapping";
    }
}
