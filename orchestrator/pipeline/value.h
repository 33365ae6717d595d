/* value.h - typed values of pipeline parameters and step arguments.
 *
 * Plain YAML scalars are typed by the YAML 1.2 core schema: null, true and
 * false, integers (decimal, 0x, 0o), floats (with .inf and .nan); everything
 * else, and every quoted scalar, is a string. "yes", "no", "on" and "off" are
 * strings, as in YAML 1.2 (no Norway problem).
 *
 * Values are immutable once built and may be shared (a ${params.x} that forms
 * a whole value is the parameter's own value); all live in an arena. */
#ifndef SLUICE_PIPELINE_VALUE_H
#define SLUICE_PIPELINE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "ydoc.h"

typedef enum {
    VAL_NULL,
    VAL_BOOL,
    VAL_INT,
    VAL_FLOAT,
    VAL_STR,
    VAL_LIST,
    VAL_MAP,
} value_kind;

typedef struct value value;

struct value {
    value_kind kind;
    int secret;         /* made from a ${secret.X}: shown as *** everywhere */
    int failed;         /* a null left where an error was reported, so none follows */
    unsigned line, col; /* where it was written; 0 when it was not in a file */
    union {
        int boolean;
        int64_t integer;
        double real;
        struct {
            const char *s; /* NUL-terminated */
            size_t len;
        } str;
        struct {
            value **items;
            size_t n;
        } list;
        struct {
            const char **keys;
            value **vals;
            size_t n;
        } map;
    } u;
};

/* Types a plain (unquoted) scalar's text into *out, allocated in a.
 * Returns 0, -ERANGE for an integer that does not fit in 64 bits, -ENOMEM. */
int value_from_plain(arena *a, const char *text, size_t len, value **out);

/* Converts a YAML tree (no substitution) into *out; plain scalars are typed.
 * Returns 0, -ERANGE (an integer out of range), or -ENOMEM. */
int value_from_ynode(arena *a, const ynode *n, value **out);

/* The same walk with scalars converted by convert_scalar (which returns 0
 * or a negative errno, the walk stopping at the first failure). A scalar's
 * result keeps the position convert_scalar gave it; collections get theirs. */
typedef int (*value_scalar_fn)(void *ud, const ynode *scalar, value **out);
int value_from_ynode_with(arena *a, const ynode *n, value_scalar_fn convert_scalar, void *ud,
                          value **out);

/* Parses text as one YAML value (flow or block syntax): "3", "[a, b]",
 * "{k: v}". The empty text gives null. Returns 0, or -EINVAL with a message
 * in err, or -ENOMEM. */
int value_parse(arena *a, const char *text, value **out, char *err, size_t err_size);

value *value_new(arena *a, value_kind kind);
value *value_new_str(arena *a, const char *s, size_t len);

/* "a string", "an integer", "a list", ... for messages. */
const char *value_kind_name(value_kind k);

/* Appends v as text for embedding in a string: strings as they are, numbers
 * in their shortest round-trip form, null as nothing. Lists and mappings are
 * written in YAML flow syntax. Secrets are written as ***. */
void value_write_text(buf *b, const value *v);

/* Appends v in YAML flow syntax, strings quoted where plain text would read
 * back as something else. Secrets are written as "***". */
void value_write_flow(buf *b, const value *v);

/* Converts v to the kind of like where the conversion loses nothing (an
 * integer where a float is expected, a scalar where a list is expected
 * becomes a one-item list, any scalar's text where a string is expected).
 * raw is v's source text when v came from a plain scalar (so "1.10" stays
 * "1.10" as a string), else NULL. A null like accepts anything. Returns 0
 * with *out set, or -EINVAL when the kinds cannot agree, -ENOMEM. */
int value_coerce(arena *a, const value *v, const char *raw, const value *like, value **out);

#endif
