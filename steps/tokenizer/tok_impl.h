/* tok_impl.h - what the tokenizer's files share: the byte-level alphabet,
 * a hash map from byte strings to ids, a byte buffer, and the loaded
 * tokenizer itself. Internal to steps/tokenizer. */
#ifndef SLUICE_STEPS_TOK_IMPL_H
#define SLUICE_STEPS_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* GPT-2's pre-tokenization pattern, the one ByteLevel(use_regex) runs. */
#define TOK_GPT2_PATTERN                                                                           \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* GPT-2's bytes_to_unicode: byte b is written as the code point
 * tok_byte_char[b]; tok_char_byte maps code points below 324 back (-1 for
 * the ones no byte is written as). */
extern uint16_t tok_byte_char[256];
extern int16_t tok_char_byte[324];
void tok_bytemap_init(void);

/* Makes the array *p (of *cap elements of size bytes) hold need elements,
 * doubling; 0 or -ENOMEM (and *p unchanged). */
int tok_grow(void **p, size_t *cap, size_t need, size_t size);

/* A byte buffer that grows. */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
int tok_buf_reserve(tok_buf *b, size_t more);
int tok_buf_add(tok_buf *b, const void *data, size_t len);
/* Appends s as a JSON string literal (quotes included), escaped as
 * serde_json escapes: '"', '\\' and control characters. */
int tok_buf_json_str(tok_buf *b, const char *s, size_t len);
int tok_buf_printf(tok_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Byte strings (borrowed: the memory must outlive the map) to int32 values,
 * open addressing. */
typedef struct tok_smap_slot {
    const char *key;
    uint32_t len, hash;
    int32_t val;
} tok_smap_slot;
typedef struct tok_smap {
    tok_smap_slot *slots;
    size_t cap, n; /* cap a power of two */
} tok_smap;
uint32_t tok_hash(const void *p, size_t len);
/* Sets key's value; replaces an earlier one. */
int tok_smap_put(tok_smap *m, const char *key, size_t len, int32_t val);
/* The value, or -1. */
int32_t tok_smap_get(const tok_smap *m, const char *key, size_t len);
void tok_smap_free(tok_smap *m);

/* Appends the UTF-8 of code point cp to b. */
int tok_buf_utf8(tok_buf *b, uint32_t cp);
/* The offset of the first byte of s[0, len) that is not part of valid
 * UTF-8, or len. */
size_t tok_utf8_invalid(const char *s, size_t len);
/* Decodes the code point at s[*i] (valid UTF-8) and advances *i. */
uint32_t tok_utf8_next(const char *s, size_t *i);

/* Merges: (left id, right id) -> rank and the id they make. */
typedef struct tok_merge_slot {
    uint64_t key; /* left << 32 | right, UINT64_MAX when empty */
    int32_t rank, id;
} tok_merge_slot;

typedef struct tok_added {
    char *content; /* NUL-terminated */
    size_t len;
    int32_t id;
    unsigned special : 1, lstrip : 1, rstrip : 1, single_word : 1, normalized : 1;
} tok_added;

enum { TOK_STEP_SPLIT, TOK_STEP_BYTELEVEL };
enum { TOK_SPLIT_ISOLATED, TOK_SPLIT_REMOVED };

typedef struct tok_step {
    int kind;
    int behavior;         /* TOK_STEP_SPLIT */
    int add_prefix_space; /* TOK_STEP_BYTELEVEL */
    pcre2_code *re;       /* NULL for ByteLevel without its regex */
} tok_step;

/* 16 bytes, so that more of the table stays in the CPU's caches: probing
 * it is most of a warm encode. key_len 0 is an empty slot. */
typedef struct tok_cache_slot {
    uint32_t hash;
    uint32_t key_off, ids_off; /* into cache_bytes / cache_ids */
    uint16_t key_len, n_ids;
} tok_cache_slot;

struct tok_tokenizer {
    size_t n_ids; /* one past the largest id */
    char **str;   /* per id: its tokenizer.json string, NULL if none */
    char **bytes; /* per id: the bytes it decodes to */
    uint32_t *bytes_len;
    uint8_t *special; /* per id */
    char **retired;   /* replaced strings the maps still point at */
    size_t n_retired;
    tok_smap str2id;   /* model vocabulary and added tokens, by string */
    tok_smap bytes2id; /* model vocabulary, by the bytes of byte-level tokens */
    int32_t byte_id[256];
    tok_merge_slot *merges;
    size_t merges_cap;
    int ignore_merges;
    int32_t unk; /* -1: none */
    int fuse_unk;
    int nfc; /* the normalizer is NFC */
    tok_added *added;
    size_t n_added;
    uint8_t first_byte[2][256]; /* [normalized][b]: some added token starts with b */
    pcre2_code *word_re;        /* an alphanumeric character, for single_word */
    tok_step *steps;
    size_t n_steps;
    int32_t *prefix, *suffix; /* the single-sequence template's special ids */
    size_t n_prefix, n_suffix;
    pcre2_match_data *md;
    /* the word cache: bytes -> ids */
    tok_cache_slot *cache;
    size_t cache_cap, cache_n;
    tok_buf cache_bytes;
    int32_t *cache_ids;
    size_t cache_ids_n, cache_ids_cap;
};

/* The rank and id of merging (a, b), or NULL. */
const tok_merge_slot *tok_merge_find(const tok_tokenizer *t, int32_t a, int32_t b);
/* Compiles a pre-tokenizer pattern with Unicode properties (PCRE2_UTF |
 * PCRE2_UCP), JIT-compiled where the machine allows. */
int tok_regex_compile(const char *pattern, int literal, pcre2_code **re, const char *what,
                      char *err, size_t err_size);
/* Calls fn for each piece of s[0, len) that re's matches cut it into: the
 * text between matches and, if isolated, the matches (Split's Isolated and
 * Removed behaviours); empty pieces are left out, as `tokenizers` drops
 * them. Stops at fn's first non-zero return, which it returns. */
int tok_regex_split(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t len,
                    int isolated, int (*fn)(void *ctx, size_t off, size_t len), void *ctx,
                    char *err, size_t err_size);

#endif
