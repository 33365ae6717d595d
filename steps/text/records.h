/* records.h - the loop the record steps share: read a JSON Lines input one
 * record at a time, hand each to a function, write what it returns. */
#ifndef SLUICE_STEPS_RECORDS_H
#define SLUICE_STEPS_RECORDS_H

#include <bson/bson.h>
#include <sluice/plugin.h>

/* Called per input record; appends zero or more records to out (through
 * emit). Returns SL_OK or an SL_E* code after sl_fail(). */
typedef int (*record_fn)(sl_ctx *ctx, const bson_t *in, uint64_t index, void *ud,
                         int (*emit)(void *sink, const bson_t *rec), void *sink);

/* Reads input port `in_port`, writes output port `out_port`; reports
 * progress by bytes and the counts as metrics `<prefix>_in` and
 * `<prefix>_out`. Honours cancellation. */
int records_map(sl_ctx *ctx, const char *in_port, const char *out_port, const char *prefix,
                record_fn fn, void *ud);

/* The string field key of doc, or NULL. */
const char *records_str(const bson_t *doc, const char *key, uint32_t *len);

/* A document's text, malloc'ed: its content string, or, when the content
 * is an object (Title, Subtitle, Content, ...), its non-empty string values
 * joined with " #### " as the Handbook does. NULL when there is none. */
char *records_content(const bson_t *doc, size_t *len);

/* Chunks as the embed and index steps hold them: every record of a JSON
 * Lines file, in order, by column. Strings are malloc'ed; a missing field
 * is "" (content too when with_content is 0; else a record without a string
 * content is refused).
 * author is the record's author_full_name, else its author. */
typedef struct chunk_table {
    size_t n;
    char **id, **content, **document_id, **author, **category, **link;
    size_t *content_len;
} chunk_table;

/* Reads the file at path (what names it in messages: "input 'chunks'") into
 * t. SL_OK, or an SL_E* code after sl_fail() naming the record at fault;
 * honours cancellation. Free with chunk_table_free() either way. */
int chunk_table_read(sl_ctx *ctx, const char *path, const char *what, int with_content,
                     chunk_table *t);
void chunk_table_free(chunk_table *t);

/* Writes the payload of every row (id, document_id, author_full_name,
 * category, link; not the content) to path as JSON Lines, which
 * chunk_table_read(..., 0, ...) reads back. SL_OK or an SL_E* code after
 * sl_fail() naming what. */
int chunk_table_write_rows(sl_ctx *ctx, const chunk_table *t, const char *path, const char *what);

#endif
