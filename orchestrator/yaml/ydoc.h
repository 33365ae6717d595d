/* ydoc.h - a YAML document as a tree of positioned nodes.
 *
 * Built from libyaml's event stream rather than its document API so that
 * every node keeps its line and column, mapping keys are checked for
 * duplicates, and hostile input is refused as it streams in: nesting past
 * max_depth, scalars past max_scalar bytes, and alias expansion past
 * max_alias_nodes (the "billion laughs") are errors, not hangs.
 *
 * Aliases are resolved by sharing: an alias node is the anchored node itself,
 * so the tree is a DAG whose expanded size the alias budget bounds. YAML 1.1
 * merge keys ("<<: *defaults") are applied, explicit keys winning. */
#ifndef SLUICE_YAML_YDOC_H
#define SLUICE_YAML_YDOC_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef enum { YNODE_SCALAR, YNODE_SEQ, YNODE_MAP } ynode_kind;

typedef struct ynode ynode;

typedef enum { YTAG_NONE, YTAG_INT, YTAG_FLOAT, YTAG_BOOL, YTAG_NULL } ytag;

typedef struct ypair {
    ynode *key; /* always a scalar */
    ynode *value;
} ypair;

struct ynode {
    ynode_kind kind;
    unsigned line, col; /* 1-based, in characters */
    /* For scalars: nonzero when quoted, block (| >) or tagged !!str, i.e.
     * when the text must be taken as a string and never typed. */
    int quoted;
    /* For scalars: the type a standard tag asks for (!!int 5), which the
     * text must then read as; YTAG_NONE without one (or with !!str). */
    ytag tag;
    union {
        struct {
            const char *text; /* NUL-terminated; no NUL inside */
            size_t len;
        } scalar;
        struct {
            ynode **items;
            size_t n;
        } seq;
        struct {
            ypair *pairs;
            size_t n;
        } map;
    } u;
    uint64_t weight; /* nodes in the expanded subtree, itself included */
};

typedef struct ydoc_limits {
    size_t max_depth;         /* nested collections */
    size_t max_scalar;        /* bytes in one scalar */
    uint64_t max_alias_nodes; /* nodes that aliases may add by repetition */
} ydoc_limits;

extern const ydoc_limits ydoc_default_limits;

/* Parses data[0..len) as exactly one YAML document into *root (NULL for an
 * empty stream). Returns 0 when a tree was built: it may still carry errors
 * that did not stop the parse (duplicate keys, whose later copy is dropped;
 * bad merge keys), so the caller checks d->errors. Returns -EINVAL when the
 * input could not be read as a whole (malformed YAML, a limit passed), or
 * -ENOMEM; either way located errors are in d. file is borrowed for those
 * diagnostics. All nodes live in a until arena_free(a). limits may be NULL. */
int ydoc_parse(arena *a, const char *data, size_t len, const char *file, const ydoc_limits *limits,
               diag_list *d, ynode **root);

/* The value of key in a mapping, or NULL. Linear: for small mappings. */
ynode *ynode_get(const ynode *map, const char *key);

/* A short name of a node's kind for messages: "a string", "a list", ... */
const char *ynode_kind_name(const ynode *n);

#endif
