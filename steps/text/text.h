/* text.h - the text rules of the LLM twin's data steps, exactly as the
 * LLM Engineer's Handbook applies them (see ../shared/handbook/README.md),
 * with Python's Unicode semantics through utf8proc: a word character is a
 * letter, a number or '_'; whitespace is what Python's str.isspace() says.
 * Lengths are counted in code points, as Python's len() does. Invalid UTF-8
 * never passes through: each bad byte reads as U+FFFD. */
#ifndef SLUICE_STEPS_TEXT_H
#define SLUICE_STEPS_TEXT_H

#include <stddef.h>

/* The Handbook's clean rule on one text: every character that is not a word
 * character, whitespace or one of . , ! ? becomes a space, then runs of
 * whitespace fold into one space and the ends are trimmed. *out is
 * malloc'ed and NUL-terminated. Returns 0 or -ENOMEM. */
int text_clean(const char *in, size_t len, char **out, size_t *out_len);

/* Unicode NFC normalisation (utf8proc), so that "é" written as e + U+0301
 * and as U+00E9 clean the same. Invalid UTF-8 comes out as it went in.
 * *out is malloc'ed. Returns 0 or -ENOMEM. */
int text_nfc(const char *in, size_t len, char **out, size_t *out_len);

/* Removes URLs: from "http://", "https://" or "www." to the next
 * whitespace. *out is malloc'ed. Returns 0 or -ENOMEM. */
int text_remove_urls(const char *in, size_t len, char **out, size_t *out_len);

/* Chunks an article as the Handbook does: sentences (split after . ? or !
 * followed by whitespace, except after an abbreviation such as "e.g." or
 * "Mr.") are appended while the chunk stays within max code points; a
 * chunk is kept when it has at least min. *chunks is a malloc'ed array of
 * malloc'ed strings; free with text_chunks_free(). Returns 0 or -ENOMEM. */
int text_chunk_article(const char *in, size_t len, size_t min, size_t max, char ***chunks,
                       size_t *n);
void text_chunks_free(char **chunks, size_t n);

/* The Handbook's chunk id: the MD5 of the text read as a version-4 UUID,
 * "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" into out. Returns 0 or -ENOMEM. */
int text_chunk_id(const char *text, size_t len, char out[37]);

/* Python's str.isspace() and \w for one code point. */
int text_is_space(long cp);
int text_is_word(long cp);

#endif
