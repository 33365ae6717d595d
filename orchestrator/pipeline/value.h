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

#include "../core/arena.h"
#include "../core/buf.h"
#include "../yaml/ydoc.h"

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
    int secret; /* made from a ${secret.X}: shown as *** everywhere */
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
