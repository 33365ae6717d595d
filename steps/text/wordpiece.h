/* wordpiece.h - BERT's WordPiece tokenizer, as Hugging Face's slow
 * BertTokenizer applies it (PreTrainedTokenizer.tokenize, BasicTokenizer,
 * WordpieceTokenizer), with Python's Unicode semantics through utf8proc.
 *
 * For one text, in this order:
 *  1. The special tokens [PAD] [UNK] [CLS] [SEP] [MASK] that the vocabulary
 *     has are cut out where the raw text spells them exactly (case
 *     matters); each is its own token. The pieces between go on alone.
 *  2. With do_lower_case, every code point is lowercased on its own (as
 *     the slow tokenizer's regex does before anything else), so there is no
 *     Greek final-sigma rule; U+0130 becomes "i" + U+0307 as in Python.
 *  3. Clean: U+0000, U+FFFD and every code point whose category starts
 *     with C (Cc Cf Co Cn Cs; Hugging Face's _is_control) are dropped, except
 *     \t \n \r which, like category Zs, are whitespace.
 *  4. CJK ideographs (4E00-9FFF, 3400-4DBF, 20000-2A6DF, 2A700-2B73F,
 *     2B740-2B81F, 2B820-2CEAF, F900-FAFF, 2F800-2FA1F) stand alone.
 *  5. NFC, then split on whitespace (str.split(): what is left of it after
 *     cleaning is the space, U+2028 and U+2029).
 *  6. A word that is exactly a special token's name is kept whole. Any
 *     other word is lowercased again and, when strip_accents says so
 *     (do_lower_case and strip_accents not false, or strip_accents true),
 *     decomposed (NFD) with its category-Mn code points dropped; then every
 *     punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, or a
 *     category starting with P) is a word of its own.
 *  7. WordPiece: greedy longest-match-first from the left, continuation
 *     pieces prefixed "##"; a word of more than 100 code points, or one
 *     with a part that matches nothing, is a single [UNK].
 *
 * Invalid UTF-8 reads as U+FFFD per bad byte, which step 3 drops: the same
 * text Python gets from bytes.decode("utf-8", errors="replace"). Input is
 * taken by pointer and length: an embedded NUL byte is U+0000, dropped.
 *
 * Known differences from Hugging Face: the Unicode tables are utf8proc's,
 * not Python's, and only the versions' common ground agrees: with
 * utf8proc 2.8 (Unicode 15.0) and Python 3.11 (14.0), the 4,489 code points
 * new in 15.0 are letters, marks or punctuation here but unassigned, hence
 * dropped, in Python (lowercasing agrees on every code point, U+0130
 * included; measured over all of them); a [MASK] absent
 * from vocab.txt is not recognised in the text (Hugging Face would add it as
 * a new token past the vocabulary); tokenizer_config.json's custom special
 * token names, never_split and added tokens are not read; an empty line in
 * vocab.txt is an error here (Python would give "" an id).
 *
 * A wordpiece handle is immutable once made: any number of threads may use
 * one at the same time. */
#ifndef SLUICE_STEPS_WORDPIECE_H
#define SLUICE_STEPS_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wordpiece wordpiece;

/* The ids of the special tokens; mask is -1 when the vocabulary has no
 * [MASK] (the others are required). */
typedef struct wordpiece_special_ids {
    int32_t pad, unk, cls, sep, mask;
} wordpiece_special_ids;

/* Loads a model folder: dir/vocab.txt (one token per line, the id is the
 * 0-based line number; lines end with \n, \r\n or \r as Python's universal
 * newlines; a token listed twice takes its last line's id, as
 * Hugging Face's dict does) and, if present, dir/tokenizer_config.json for
 * do_lower_case (default true), strip_accents (true, false or null; default
 * null) and tokenize_chinese_chars (default true).
 * On success *out is a new handle the caller frees with wordpiece_free().
 * On failure returns a negative code (-errno of a failed read, -EINVAL for
 * bad content, -ENOMEM) and writes a message naming the file and, where it
 * has one, the line into err (err_size bytes, always NUL-terminated when
 * err_size > 0; err may be NULL), e.g. "m/vocab.txt:3: empty token",
 * "m/vocab.txt: missing [UNK]". */
int wordpiece_new(const char *dir, wordpiece **out, char *err, size_t err_size);
void wordpiece_free(wordpiece *wp);

/* Lines in vocab.txt (ids run from 0 to this minus 1). */
size_t wordpiece_vocab_size(const wordpiece *wp);
wordpiece_special_ids wordpiece_specials(const wordpiece *wp);
/* The id of a token spelled exactly (bytes, not normalised), or -1. */
int32_t wordpiece_token_id(const wordpiece *wp, const char *token, size_t len);

/* The tokens of one text, without [CLS]/[SEP]: ids[i] covers the bytes
 * [start[i], end[i]) of the text it came from (for [UNK], the whole word;
 * when normalisation merged code points, all of them). The arrays belong to
 * the struct: zero it (WORDPIECE_TOKENS_INIT) before first use, reuse it
 * across calls (it grows, never shrinks) and release them with
 * wordpiece_tokens_fini(). */
typedef struct wordpiece_tokens {
    int32_t *ids;
    size_t *start, *end;
    size_t n, cap;
} wordpiece_tokens;
#define WORDPIECE_TOKENS_INIT                                                                      \
    { NULL, NULL, NULL, 0, 0 }
void wordpiece_tokens_fini(wordpiece_tokens *t);

/* Tokenizes text[0..len) into out (replacing what it held). text may be
 * NULL when len is 0. Returns 0 or -ENOMEM (out then holds a prefix). */
int wordpiece_tokenize(const wordpiece *wp, const char *text, size_t len, wordpiece_tokens *out);

/* The number of tokens of text, without [CLS]/[SEP]. Returns 0 or -ENOMEM. */
int wordpiece_count(const wordpiece *wp, const char *text, size_t len, size_t *n);

/* *prefix_len is the byte length of the longest prefix of text that has at
 * most max_tokens tokens (without [CLS]/[SEP]: pass the model's limit minus
 * 2) and whose tokens are the first tokens of the whole text: the whole text
 * when it fits, otherwise the text up to where token k starts, for the
 * largest k <= max_tokens at which a cut is clean (a cut never falls inside
 * a word's [UNK], nor between two pieces that came from the same code
 * point). The prefix ends on a code point boundary; what follows it starts
 * with a token, so re-tokenizing the prefix gives exactly k tokens and one
 * more would exceed max_tokens (k == max_tokens) unless no clean cut lies
 * between. Tokenizes only as far as needed. Returns 0 or -ENOMEM. */
int wordpiece_prefix_bytes(const wordpiece *wp, const char *text, size_t len, size_t max_tokens,
                           size_t *prefix_len);

/* Model inputs for a batch, as BertTokenizer(texts, truncation=True,
 * max_length=..., padding=...) gives them: each row is [CLS], the text's
 * first max_length - 2 tokens, [SEP], then [PAD] to the row width.
 * Row-major arrays of rows * width, int64 as ONNX BERT models take them. */
typedef struct wordpiece_batch {
    size_t rows, width;
    int64_t *input_ids;
    int64_t *attention_mask; /* 1 for [CLS], tokens and [SEP]; 0 for [PAD] */
    int64_t *token_type_ids; /* all 0: single sequences */
    size_t *lengths;         /* per row: tokens with [CLS]/[SEP], before padding */
} wordpiece_batch;

typedef struct wordpiece_encode_opts {
    size_t max_length; /* the model's limit; 0 means 512; at least 2 */
    int pad_to_max;    /* nonzero: every row max_length wide; 0: the longest row */
} wordpiece_encode_opts;

/* Encodes n >= 1 texts (texts[i] of lens[i] bytes; opts NULL for the
 * defaults). On success *out is a new batch the caller frees with
 * wordpiece_batch_free(). Returns 0, -EINVAL (n == 0, max_length 1) or
 * -ENOMEM. */
int wordpiece_batch_new(const wordpiece *wp, const char *const *texts, const size_t *lens, size_t n,
                        const wordpiece_encode_opts *opts, wordpiece_batch **out);
void wordpiece_batch_free(wordpiece_batch *b);

#endif
