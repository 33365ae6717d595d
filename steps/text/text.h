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

/* Removes what markup leaves in crawled text: HTML tags and comments
 * ("<p class=x>", "</div>", "<!-- -->": a '<' followed by a letter, '/' or
 * '!', up to the next '>' within 1,024 bytes; each becomes a space), HTML
 * character references (&amp; &lt; &gt; &quot; &apos; &nbsp; and numeric
 * ones decoded, other named ones removed), and Markdown links and images
 * ("[text](url)" and "![alt](url)" keep text and alt). Anything else is
 * kept byte for byte. *out is malloc'ed. Returns 0 or -ENOMEM. */
int text_remove_markup(const char *in, size_t len, char **out, size_t *out_len);

/* A piece of a text: bytes [start, end) of the UTF-8 it was cut from. */
typedef struct text_span {
    size_t start, end;
} text_span;

/* Chunks an article as the Handbook does: sentences (split after . ? or !
 * followed by whitespace, except after an abbreviation such as "e.g." or
 * "Mr.") are appended while the chunk stays within max code points; a
 * chunk is kept when it has at least min. *chunks is a malloc'ed array of
 * malloc'ed strings; free with text_chunks_free(). Returns 0 or -ENOMEM. */
int text_chunk_article(const char *in, size_t len, size_t min, size_t max, char ***chunks,
                       size_t *n);

/* text_chunk_article(), and where each chunk lies in `in`: (*spans)[i]
 * runs from the first byte of chunk i's first sentence to the last byte of
 * its last sentence. The chunk joins its sentences with one ' ', so it is
 * exactly in[start, end) when the text between them is one ' ' and the
 * text is valid UTF-8, as the clean rule's output always is; otherwise
 * (other or repeated whitespace, bad bytes) it is not, and a caller that
 * needs offsets must compare. spans may be NULL; *spans is malloc'ed (NULL
 * when *n is 0), free it with free(). Returns 0 or -ENOMEM. */
int text_chunk_article_spans(const char *in, size_t len, size_t min, size_t max, char ***chunks,
                             text_span **spans, size_t *n);
void text_chunks_free(char **chunks, size_t n);

/* The sentences of a text by the rule text_chunk_article() splits with:
 * each stripped of whitespace, empty ones skipped, as byte ranges into in
 * (on valid UTF-8 each is the substring in[start, end)). *spans is
 * malloc'ed (NULL when *n is 0), free it with free(). Returns 0 or -ENOMEM. */
int text_sentence_spans(const char *in, size_t len, text_span **spans, size_t *n);

/* Cuts a text into overlapping windows of at most `size` code points, for
 * posts and repositories (the Handbook's 250/25 and 1,500/100). Code points
 * are counted as Python's len() does; a byte that is not part of valid
 * UTF-8 counts as one (a U+FFFD); whitespace is text_is_space(). Positions
 * below are code point indexes p of the text t of n code points; a word
 * start is a p with t[p] not whitespace and p == 0 or t[p-1] whitespace.
 *
 * Window i starts at s (never whitespace; the first at the first
 * non-whitespace code point) and ends at e, found so:
 *   1. If s + size >= n, e = n (the rest fits: this is the last window).
 *   2. Else let L = s + size. If t[L-1] or t[L] is whitespace, the window
 *      cuts no word and e = L.
 *   3. Else (L falls inside a word) let w be the last whitespace in
 *      (s, L), and e' the position after the last non-whitespace before w.
 *      If there is such a w, e' - s >= size / 2 (rounded up: the window
 *      stays at least half full) and e' is beyond the previous window's
 *      end, e = e'. Otherwise e = L: a cut between two code points inside
 *      the word (never inside a UTF-8 sequence).
 *   4. Trailing whitespace is trimmed off e.
 * So every window is 1 to `size` code points, begins and ends with a
 * non-whitespace code point, and ends beyond the previous one. Let u be
 * the first non-whitespace code point at or after e (where the text no
 * window holds yet begins). If there is none, the windows are done.
 * Otherwise the next window starts at the first word start in [p, u],
 * where
 *   p = max(e - overlap, s + 1),
 * or at p itself when there is none (p then lies inside a word that step
 * 3 had to cut at e, and the overlap is that word's cut tail); but at u
 * when that start is `size` or more code points before u (whitespace
 * longer than a window follows e, so a window from there would hold
 * nothing new). So a window never begins with the tail of a word that the
 * previous one holds whole, every window holds text that the ones before
 * it do not, and no text is skipped: every non-whitespace code point is in
 * some window. The next window starts after s and at or before u; t[next, e)
 * is the shared part, a suffix of window i and a prefix of window i+1, of
 * at most `overlap` code points: exactly the last `overlap` of window i
 * when e - overlap > s and is a word start; shorter by the partial word
 * and whitespace in front of the first word start after e - overlap
 * otherwise; empty when the next window starts at u (window i's last
 * word is longer than overlap, overlap is 0, or the whitespace after e is
 * too long).
 *
 * Requires size >= 1 and overlap < size (else -EINVAL and nothing is
 * allocated). *spans is a malloc'ed array of *n byte ranges into `in`
 * (NULL when *n is 0: empty or all-whitespace text); free it with free().
 * Boundaries fall between UTF-8 sequences, so on valid UTF-8 every window
 * is the valid substring in[start, end); on invalid input copy windows out
 * with text_utf8_dup(), which never gives broken UTF-8. Returns 0, -EINVAL
 * or -ENOMEM. */
int text_chunk_window(const char *in, size_t len, size_t size, size_t overlap, text_span **spans,
                      size_t *n);

/* A malloc'ed, NUL-terminated copy of in[0, len) in which every byte that
 * is not part of valid UTF-8 becomes U+FFFD, as the text rules read it;
 * valid UTF-8 is copied unchanged. Returns 0 or -ENOMEM. */
int text_utf8_dup(const char *in, size_t len, char **out, size_t *out_len);

/* The Handbook's chunk id: the MD5 of the text read as a version-4 UUID,
 * "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" into out. Returns 0 or -ENOMEM. */
int text_chunk_id(const char *text, size_t len, char out[37]);

/* Python's str.isspace() and \w for one code point. */
int text_is_space(long cp);
int text_is_word(long cp);

/* The terms of a text, as the retrieval index and the built-in embedder
 * count them: maximal runs of word characters (text_is_word: Python's \w),
 * each code point lower-cased (utf8proc_tolower); a bad UTF-8 byte
 * separates terms. Calls fn(term, term_len, ctx) for each in order (term
 * is not NUL-terminated and is valid only during the call) and stops at
 * the first non-zero return, which it returns; -ENOMEM when a term does not
 * fit in memory; else 0. */
typedef int (*text_term_fn)(const char *term, size_t len, void *ctx);
int text_each_term(const char *text, size_t len, text_term_fn fn, void *ctx);

#endif
