/* tok_encode.c - text to ids and back, in the order `tokenizers` runs its
 * pipeline: added tokens are cut out first (those not normalized on the raw
 * text, then NFC if the file asks for it, then the normalized ones), the
 * rest is pre-tokenized into words (Split patterns, then ByteLevel), each
 * word goes through the BPE merges (a priority queue over a linked list of
 * symbols, as `tokenizers`' Word::merge_all), and the template's special
 * tokens go around the result. Words work on raw bytes: GPT-2's alphabet is
 * a bijection, so merging bytes is merging their characters. */
#include "tok_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "text.h"

#define CACHE_CAP (1u << 15) /* slots; emptied when half full */
#define CACHE_MAX_WORD 256u  /* longer words are not cached */

typedef struct span {
    size_t off, len;
} span;

typedef struct sym {
    int32_t id;
    int32_t prev, next;
    uint32_t len;
} sym;

typedef struct qent {
    int32_t rank, pos, id;
} qent;

/* One call's working memory. */
typedef struct enc {
    tok_tokenizer *t;
    tok_ids *out;
    tok_buf arena;
    span *spans[2];
    size_t n_spans[2], cap_spans[2];
    sym *syms;
    size_t cap_syms;
    qent *heap;
    size_t n_heap, cap_heap;
    char *err;
    size_t err_size;
} enc;

void tok_ids_free(tok_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static int ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap && tok_grow((void **)&v->ids, &v->cap, v->n + 1, sizeof(*v->ids)))
        return -ENOMEM;
    v->ids[v->n++] = id;
    return 0;
}

/* ---- the BPE of one word ---- */

static int heap_push(enc *e, qent x) {
    if (tok_grow((void **)&e->heap, &e->cap_heap, e->n_heap + 1, sizeof(*e->heap)))
        return -ENOMEM;
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        qent *q = &e->heap[p];
        if (q->rank < x.rank || (q->rank == x.rank && q->pos < x.pos))
            break;
        e->heap[i] = *q;
        i = p;
    }
    e->heap[i] = x;
    return 0;
}

static qent heap_pop(enc *e) {
    qent top = e->heap[0], x = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n &&
            (e->heap[c + 1].rank < e->heap[c].rank ||
             (e->heap[c + 1].rank == e->heap[c].rank && e->heap[c + 1].pos < e->heap[c].pos)))
            c++;
        if (x.rank < e->heap[c].rank || (x.rank == e->heap[c].rank && x.pos <= e->heap[c].pos))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n)
        e->heap[i] = x;
    return top;
}

static int push_pair(enc *e, int32_t pos) {
    const sym *s = e->syms;
    if (s[pos].next < 0)
        return 0;
    const tok_merge_slot *m = tok_merge_find(e->t, s[pos].id, s[s[pos].next].id);
    return m ? heap_push(e, (qent){m->rank, pos, m->id}) : 0;
}

/* The ids of word w[0, len) appended to ids. */
static int bpe_merge(enc *e, const char *w, size_t len, tok_ids *ids) {
    tok_tokenizer *t = e->t;
    if (tok_grow((void **)&e->syms, &e->cap_syms, len, sizeof(*e->syms)))
        return -ENOMEM;
    sym *s = e->syms;
    int32_t n = 0;
    int pending_unk = 0; /* the last symbol is an unknown byte run */
    for (size_t i = 0; i < len; i++) {
        int32_t id = t->byte_id[(unsigned char)w[i]];
        if (id < 0) { /* not in the vocabulary: unk_token if any, else dropped */
            if (t->unk < 0)
                continue;
            if (pending_unk && t->fuse_unk) {
                s[n - 1].len++;
                continue;
            }
            id = t->unk;
            pending_unk = 1;
        } else {
            pending_unk = 0;
        }
        s[n] = (sym){id, n - 1, n + 1, 1};
        n++;
    }
    if (n == 0)
        return 0;
    s[n - 1].next = -1;
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if (push_pair(e, i))
            return -ENOMEM;
    while (e->n_heap) {
        qent top = heap_pop(e);
        sym *a = &s[top.pos];
        if (a->len == 0 || a->next < 0)
            continue;
        const tok_merge_slot *m = tok_merge_find(t, a->id, s[a->next].id);
        if (!m || m->id != top.id)
            continue;
        sym *b = &s[a->next];
        a->id = top.id;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (a->next >= 0)
            s[a->next].prev = top.pos;
        if ((a->prev >= 0 && push_pair(e, a->prev)) || push_pair(e, top.pos))
            return -ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (ids_push(ids, s[i].id))
            return -ENOMEM;
    return 0;
}

static void cache_clear(tok_tokenizer *t) {
    memset(t->cache, 0, t->cache_cap * sizeof(*t->cache));
    t->cache_n = 0;
    t->cache_bytes.n = 0;
    t->cache_ids_n = 0;
}

static int bpe_word(enc *e, const char *w, size_t len) {
    tok_tokenizer *t = e->t;
    if (t->ignore_merges) {
        int32_t id = tok_smap_get(&t->bytes2id, w, len);
        if (id >= 0)
            return ids_push(e->out, id);
    }
    if (len == 1 && t->byte_id[(unsigned char)w[0]] >= 0)
        return ids_push(e->out, t->byte_id[(unsigned char)w[0]]);
    if (len > CACHE_MAX_WORD) {
        return bpe_merge(e, w, len, e->out);
    }
    if (!t->cache) {
        t->cache = calloc(CACHE_CAP, sizeof(*t->cache));
        if (!t->cache)
            return -ENOMEM;
        t->cache_cap = CACHE_CAP;
    }
    uint32_t h = tok_hash(w, len);
    size_t j = h & (t->cache_cap - 1);
    for (; t->cache[j].key_len; j = (j + 1) & (t->cache_cap - 1)) {
        tok_cache_slot *c = &t->cache[j];
        if (c->hash == h && c->key_len == len &&
            memcmp(t->cache_bytes.p + c->key_off, w, len) == 0) {
            for (uint32_t k = 0; k < c->n_ids; k++)
                if (ids_push(e->out, t->cache_ids[c->ids_off + k]))
                    return -ENOMEM;
            return 0;
        }
    }
    size_t before = e->out->n;
    int rc = bpe_merge(e, w, len, e->out);
    if (rc)
        return rc;
    size_t n_ids = e->out->n - before;
    if (t->cache_n * 2 >= t->cache_cap) { /* full: start again rather than evict */
        cache_clear(t);
        for (j = h & (t->cache_cap - 1); t->cache[j].key_len; j = (j + 1) & (t->cache_cap - 1))
            ;
    }
    if (tok_grow((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_n + n_ids,
                 sizeof(*t->cache_ids)))
        return 0; /* an uncached word is still encoded */
    size_t key_off = t->cache_bytes.n;
    if (tok_buf_add(&t->cache_bytes, w, len))
        return 0;
    if (n_ids) /* a word of bytes without tokens has none */
        memcpy(t->cache_ids + t->cache_ids_n, e->out->ids + before, n_ids * sizeof(int32_t));
    t->cache[j] = (tok_cache_slot){.hash = h,
                                   .key_off = (uint32_t)key_off,
                                   .ids_off = (uint32_t)t->cache_ids_n,
                                   .key_len = (uint16_t)len,
                                   .n_ids = (uint16_t)n_ids};
    t->cache_ids_n += n_ids;
    t->cache_n++;
    return 0;
}

/* ---- pre-tokenization ---- */

static int span_push(enc *e, int k, size_t off, size_t len) {
    if (len == 0) /* `tokenizers` drops empty splits */
        return 0;
    if (tok_grow((void **)&e->spans[k], &e->cap_spans[k], e->n_spans[k] + 1, sizeof(span)))
        return -ENOMEM;
    e->spans[k][e->n_spans[k]++] = (span){off, len};
    return 0;
}

typedef struct split_ctx {
    enc *e;
    size_t base;
    int k;
} split_ctx;

static int split_piece(void *ctx, size_t off, size_t len) {
    split_ctx *c = ctx;
    return span_push(c->e, c->k, c->base + off, len);
}

/* Splits arena[off, off + len) into list k. */
static int regex_split(enc *e, const pcre2_code *re, int behavior, size_t off, size_t len, int k) {
    split_ctx c = {e, off, k};
    return tok_regex_split(re, e->t->md, e->arena.p + off, len, behavior == TOK_SPLIT_ISOLATED,
                           split_piece, &c, e->err, e->err_size);
}

static int pretokenize_and_encode(enc *e, const char *s, size_t len) {
    tok_tokenizer *t = e->t;
    e->arena.n = 0;
    if (len == 0 || tok_buf_add(&e->arena, s, len))
        return len == 0 ? 0 : -ENOMEM;
    int cur = 0;
    e->n_spans[0] = 0;
    if (span_push(e, 0, 0, len))
        return -ENOMEM;
    for (size_t i = 0; i < t->n_steps; i++) {
        const tok_step *st = &t->steps[i];
        int nxt = !cur;
        e->n_spans[nxt] = 0;
        for (size_t j = 0; j < e->n_spans[cur]; j++) {
            span sp = e->spans[cur][j];
            if (st->kind == TOK_STEP_BYTELEVEL && st->add_prefix_space &&
                e->arena.p[sp.off] != ' ') {
                if (tok_buf_reserve(&e->arena, sp.len + 1))
                    return -ENOMEM;
                size_t at = e->arena.n;
                e->arena.p[at] = ' ';
                memcpy(e->arena.p + at + 1, e->arena.p + sp.off, sp.len);
                e->arena.n += sp.len + 1;
                sp = (span){at, sp.len + 1};
            }
            int rc =
                st->re ? regex_split(e, st->re,
                                     st->kind == TOK_STEP_SPLIT ? st->behavior : TOK_SPLIT_ISOLATED,
                                     sp.off, sp.len, nxt)
                       : span_push(e, nxt, sp.off, sp.len);
            if (rc)
                return rc;
        }
        cur = nxt;
    }
    for (size_t j = 0; j < e->n_spans[cur]; j++) {
        int rc = bpe_word(e, e->arena.p + e->spans[cur][j].off, e->spans[cur][j].len);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- added tokens ---- */

static int is_white_space(uint32_t c) { /* Unicode White_Space, as Rust's char::is_whitespace */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Whether the character at s[i] (or the one ending before i, if before) is
 * alphanumeric as Rust's char::is_alphanumeric: Alphabetic or a number. */
static int is_word_char_at(tok_tokenizer *t, const char *s, size_t len, size_t i, int before) {
    if (before) {
        if (i == 0)
            return 0;
        do
            i--;
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    } else if (i >= len) {
        return 0;
    }
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)s, len, i, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED,
                         t->md, NULL);
    return rc >= 0;
}

static int encode_text(enc *e, const char *s, size_t len, int pass);

/* Finds the added tokens of one pass (normalized or not) in s[0, len),
 * leftmost first and the longest there, as the Aho-Corasick automaton of
 * `tokenizers` (LeftmostLongest) does. */
static int split_added(enc *e, const char *s, size_t len, int pass) {
    tok_tokenizer *t = e->t;
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        if (!t->first_byte[pass][(unsigned char)s[pos]]) {
            pos++;
            continue;
        }
        const tok_added *best = NULL;
        for (size_t k = 0; k < t->n_added; k++) {
            const tok_added *a = &t->added[k];
            if (a->normalized == pass && a->len <= len - pos && (!best || a->len > best->len) &&
                memcmp(s + pos, a->content, a->len) == 0)
                best = a;
        }
        if (!best) {
            pos++;
            continue;
        }
        size_t start = pos, stop = pos + best->len;
        pos = stop;
        if (best->single_word &&
            (is_word_char_at(t, s, len, start, 1) || is_word_char_at(t, s, len, stop, 0)))
            continue;
        if (best->lstrip) {
            size_t i = start;
            while (i > 0) {
                size_t j = i;
                do
                    j--;
                while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80);
                size_t q = j;
                if (!is_white_space(tok_utf8_next(s, &q)))
                    break;
                i = j;
            }
            start = i > start_offset ? i : start_offset;
        }
        if (best->rstrip) {
            while (stop < len) {
                size_t q = stop;
                if (!is_white_space(tok_utf8_next(s, &q)))
                    break;
                stop = q;
            }
            pos = stop;
        }
        if (start > start_offset) {
            int rc = encode_text(e, s + start_offset, start - start_offset, pass);
            if (rc)
                return rc;
        }
        if (ids_push(e->out, best->id))
            return -ENOMEM;
        start_offset = stop;
    }
    return start_offset < len ? encode_text(e, s + start_offset, len - start_offset, pass) : 0;
}

/* Text between the added tokens of a pass: after the raw pass, NFC (if
 * asked) and the normalized pass; after that, the model. */
static int encode_text(enc *e, const char *s, size_t len, int pass) {
    if (pass == 1)
        return pretokenize_and_encode(e, s, len);
    if (!e->t->nfc)
        return split_added(e, s, len, 1);
    char *norm;
    size_t norm_len;
    if (text_nfc(s, len, &norm, &norm_len))
        return -ENOMEM;
    int rc = split_added(e, norm, norm_len, 1);
    free(norm);
    return rc;
}

int tok_encode(tok_tokenizer *t, const char *text, size_t len, int add_special, tok_ids *out,
               char *err, size_t err_size) {
    size_t bad = tok_utf8_invalid(text, len);
    if (bad < len)
        return errbuf_set(err, err_size, -EILSEQ, "the text is not UTF-8 at byte %zu", bad);
    enc e = {.t = t, .out = out, .err = err, .err_size = err_size};
    size_t before = out->n;
    int rc = 0;
    for (size_t i = 0; add_special && rc == 0 && i < t->n_prefix; i++)
        rc = ids_push(out, t->prefix[i]);
    if (rc == 0)
        rc = split_added(&e, text, len, 0);
    for (size_t i = 0; add_special && rc == 0 && i < t->n_suffix; i++)
        rc = ids_push(out, t->suffix[i]);
    free(e.arena.p);
    free(e.spans[0]);
    free(e.spans[1]);
    free(e.syms);
    free(e.heap);
    if (rc) {
        out->n = before;
        if (rc == -ENOMEM)
            errbuf_set(err, err_size, rc, "out of memory");
    }
    return rc;
}

int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **out,
               size_t *out_len, char *err, size_t err_size) {
    tok_buf b = {0};
    *out = NULL;
    if (tok_buf_reserve(&b, 0))
        return errbuf_set(err, err_size, -ENOMEM, "out of memory");
    b.p[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n_ids || !t->bytes[id]) {
            free(b.p);
            return errbuf_set(err, err_size, -EINVAL, "id %d (at %zu) names no token", id, i);
        }
        if (skip_special && t->special[id])
            continue;
        if (tok_buf_add(&b, t->bytes[id], t->bytes_len[id])) {
            free(b.p);
            return errbuf_set(err, err_size, -ENOMEM, "out of memory");
        }
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

size_t tok_vocab_size(const tok_tokenizer *t) { return t->n_ids; }

int32_t tok_token_id(const tok_tokenizer *t, const char *token) {
    return tok_smap_get(&t->str2id, token, strlen(token));
}

const char *tok_token_str(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_ids ? t->str[id] : NULL;
}

int tok_is_special(const tok_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_ids && t->special[id];
}
