/* value_json.h - values to and from BSON and JSON (through libbson), for the
 * manifest a child step reads and for parameters a plugin takes as JSON. */
#ifndef SLUICE_PIPELINE_VALUE_JSON_H
#define SLUICE_PIPELINE_VALUE_JSON_H

#include <bson/bson.h>

#include "value.h"

/* Appends v under key. With mask set, secrets are written as "***". Returns
 * 0, or -ENOMEM when the document would exceed BSON's limits. */
int value_append_bson(bson_t *doc, const char *key, size_t key_len, const value *v, int mask);

/* Reads the element it points at into *out (in a). Returns 0, -EINVAL for
 * a BSON type values do not have, -ENOMEM. */
int value_from_bson(arena *a, const bson_iter_t *it, value **out);

/* Writes v as JSON text into b (secrets masked when mask is set). */
int value_write_json(buf *b, const value *v, int mask);

#endif
