/* dsgen_prompt.h - the API path's two pure halves: the messages sent for an
 * extract (the LLM Engineer's Handbook's prompt structure, written again
 * for sluice: docs/dataset_gen.md, "The API path") and the reading of
 * what the model answered. */
#ifndef SLUICE_STEPS_DSGEN_PROMPT_H
#define SLUICE_STEPS_DSGEN_PROMPT_H

#include <stddef.h>

#include "dsgen.h"

/* The system message for kind: static text. */
const char *dsgen_system_prompt(dsgen_kind kind);

/* The user message asking for `pairs` samples of kind from extract:
 * malloc'ed (the caller frees), NULL on no memory. */
char *dsgen_user_prompt(dsgen_kind kind, size_t pairs, const char *extract);

/* What one response gave. */
typedef struct dsgen_parsed {
    long items;        /* objects in the list */
    long kept;         /* added to the set */
    long not_verbatim; /* preference: kept, but chosen is not a substring of the extract */
} dsgen_parsed;

/* Reads content, a model's answer to dsgen_user_prompt(): a JSON list of
 * objects, bare or as the one list inside an object (JSON modes answer
 * with an object), optionally in a ```json fence. Each object must have
 * the kind's fields as non-empty strings (instruction and answer; or
 * instruction, chosen and rejected); one without is counted in
 * set->dropped (missing_field) and skipped, the others go through
 * dsgen_set_add as extract source's, under category. Content that is no
 * JSON counts one not_json, or one truncated when it opens a list or
 * object it never closes (the model reached max_tokens); JSON without a list of objects one
 * wrong_shape (an item that is no object, one wrong_shape too). extract
 * (may be NULL) is checked for the chosen answers. 0, or -ENOMEM. */
int dsgen_parse_response(dsgen_set *set, size_t source, const char *category, const char *content,
                         const char *extract, dsgen_parsed *out);

#endif
