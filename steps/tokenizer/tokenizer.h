/* tokenizer.h - byte-level BPE tokenizers as Hugging Face `tokenizers`
 * defines them (GPT-2, Llama 3, Qwen2 and the ones sluice trains), read from
 * and written to `tokenizer.json` (docs/tokenizer.md says what is supported
 * and what is refused).
 *
 * Errors follow the steps' convention: 0 or a negative errno, the message in
 * err (err may be NULL). A tokenizer is read-only after loading except for
 * its word cache and regex scratch space, so tok_encode needs the handle to
 * itself: one handle per thread (loading twice is cheap next to a model). */
#ifndef SLUICE_STEPS_TOKENIZER_H
#define SLUICE_STEPS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* Reads the tokenizer.json at path into *out (the caller's, freed with
 * tok_free). Anything the file asks for that this library does not do
 * exactly as Hugging Face does (another model type, a normalizer other than
 * NFC, another pre-tokenizer, dropout...) is refused with -ENOTSUP naming
 * the file and the field; a file that is not a valid tokenizer is -EINVAL. */
int tok_load(const char *path, tok_tokenizer **out, char *err, size_t err_size);
/* The same from the len bytes of JSON at json (borrowed for the call); name
 * is what messages call it. */
int tok_load_json(const char *json, size_t len, const char *name, tok_tokenizer **out, char *err,
                  size_t err_size);
void tok_free(tok_tokenizer *t);

/* A growable list of token ids, the caller's: zero-initialise it, let
 * tok_encode append to it, reset n to reuse it, tok_ids_free at the end. */
typedef struct tok_ids {
    int32_t *ids;
    size_t n, cap;
} tok_ids;
void tok_ids_free(tok_ids *v);

/* Appends the ids of text[0, len) (UTF-8; invalid UTF-8 is -EILSEQ naming
 * the offset) to out. add_special adds what the post-processor's template
 * adds around a single sequence (Llama 3's <|begin_of_text|>). On error out
 * keeps the ids it had before the call. */
int tok_encode(tok_tokenizer *t, const char *text, size_t len, int add_special, tok_ids *out,
               char *err, size_t err_size);

/* The bytes of ids[0, n) (ByteLevel decoding) into *out, malloc'ed,
 * NUL-terminated, the caller's; skip_special leaves special tokens out.
 * The bytes are returned as they are, also when a cut through a character
 * leaves invalid UTF-8 (Hugging Face would replace it by U+FFFD): a stream
 * of tokens decoded piece by piece joins up. An id out of range is -EINVAL. */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **out,
               size_t *out_len, char *err, size_t err_size);

/* One past the largest id (model vocabulary and added tokens). */
size_t tok_vocab_size(const tok_tokenizer *t);
/* The id of a token as written in tokenizer.json (the byte-level string for
 * model tokens, the content for added ones), or -1. */
int32_t tok_token_id(const tok_tokenizer *t, const char *token);
/* A token's string as written in tokenizer.json, borrowed until tok_free;
 * NULL for an id that names no token. */
const char *tok_token_str(const tok_tokenizer *t, int32_t id);
/* 1 if id is an added token marked special. */
int tok_is_special(const tok_tokenizer *t, int32_t id);

/* Training a byte-level BPE tokenizer as Hugging Face's BpeTrainer does with
 * the ByteLevel pre-tokenizer (GPT-2's pattern, no prefix space) and its
 * byte alphabet as initial alphabet: special tokens take ids 0.., the 256
 * byte symbols follow in code point order of their characters, then one
 * token per merge, the most frequent pair first and, among pairs as
 * frequent, the smaller (left id, right id) first, until vocab_size tokens
 * or no pair occurs min_frequency times. */
typedef struct tok_trainer tok_trainer;

/* specials[0, n_special) (copied) are the special tokens, e.g.
 * "<|endoftext|>"; a pair is merged only if it occurs at least min_frequency
 * times (0 and 1: at all). vocab_size must leave room for the specials and
 * the 256 bytes. */
int tok_trainer_new(size_t vocab_size, const char *const *specials, size_t n_special,
                    uint64_t min_frequency, tok_trainer **out, char *err, size_t err_size);
/* Counts the words of text[0, len) (UTF-8). */
int tok_trainer_feed(tok_trainer *tr, const char *text, size_t len, char *err, size_t err_size);
/* Runs the merges and writes the tokenizer.json into *json (malloc'ed,
 * NUL-terminated, the caller's). */
int tok_trainer_json(tok_trainer *tr, char **json, size_t *json_len, char *err, size_t err_size);
/* The same, written to path (replaced only once complete). */
int tok_trainer_save(tok_trainer *tr, const char *path, char *err, size_t err_size);
void tok_trainer_free(tok_trainer *tr);

#endif
