/* tok_train.c - training a byte-level BPE tokenizer as `tokenizers`'
 * BpeTrainer does (bpe/trainer.rs, do_train), so that the same corpus gives
 * the same merges: words are counted after GPT-2's pre-tokenization, each
 * pair's count is kept up to date as words are merged, and a max-heap of
 * (count, pair) entries, each with the words it was seen in, is popped
 * lazily (an entry whose count is stale goes back in with the current one).
 * Ties go to the smaller (left id, right id), the order `tokenizers`' Merge
 * defines. Token strings are kept in GPT-2's alphabet, as the trainer keys
 * them, so that a merged string equal to a special token is that token. */
#include "tok_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "file_replace.h"

#define BLOCK (1u << 20)

/* Strings that do not move: the maps keep pointers to them. */
typedef struct pool {
    char **blocks;
    size_t n_blocks, used; /* used: of the last block */
} pool;

static char *pool_dup(pool *p, const char *s, size_t len) {
    if (!p->n_blocks || p->used + len + 1 > BLOCK) {
        size_t size = len + 1 > BLOCK ? len + 1 : BLOCK;
        char **b = realloc(p->blocks, (p->n_blocks + 1) * sizeof(*b));
        if (!b)
            return NULL;
        p->blocks = b;
        if (!(b[p->n_blocks] = malloc(size)))
            return NULL;
        p->n_blocks++;
        p->used = 0;
    }
    char *d = p->blocks[p->n_blocks - 1] + p->used;
    memcpy(d, s, len);
    d[len] = '\0';
    p->used += len + 1;
    return d;
}

static void pool_free(pool *p) {
    for (size_t i = 0; i < p->n_blocks; i++)
        free(p->blocks[i]);
    free(p->blocks);
}

typedef struct word {
    const char *bytes; /* in the pool */
    uint32_t len;
    uint64_t count;
} word;

struct tok_trainer {
    size_t vocab_size;
    uint64_t min_frequency;
    char **specials;
    size_t n_special;
    pcre2_code *re;
    pcre2_match_data *md;
    pool strings;
    tok_smap word_ids; /* word bytes -> index in words */
    word *words;
    size_t n_words, cap_words;
};

int tok_trainer_new(size_t vocab_size, const char *const *specials, size_t n_special,
                    uint64_t min_frequency, tok_trainer **out, char *err, size_t err_size) {
    tok_bytemap_init();
    *out = NULL;
    if (vocab_size < 256 + n_special || vocab_size > (1u << 22))
        return errbuf_set(err, err_size, -EINVAL,
                          "vocab_size %zu: must be between 256 + %zu "
                          "special tokens and %u",
                          vocab_size, n_special, 1u << 22);
    tok_trainer *tr = calloc(1, sizeof(*tr));
    if (!tr || !(tr->specials = calloc(n_special + 1, sizeof(char *))))
        goto oom;
    tr->vocab_size = vocab_size;
    tr->min_frequency = min_frequency;
    for (size_t i = 0; i < n_special; i++) {
        if (!specials[i][0] ||
            tok_utf8_invalid(specials[i], strlen(specials[i])) < strlen(specials[i])) {
            tok_trainer_free(tr);
            return errbuf_set(err, err_size, -EINVAL, "special token %zu: empty or not UTF-8", i);
        }
        if (!(tr->specials[i] = strdup(specials[i])))
            goto oom;
        tr->n_special++;
    }
    int rc = tok_regex_compile(TOK_GPT2_PATTERN, 0, &tr->re, "GPT-2's pattern", err, err_size);
    if (rc) {
        tok_trainer_free(tr);
        return rc;
    }
    if (!(tr->md = pcre2_match_data_create(8, NULL)))
        goto oom;
    *out = tr;
    return 0;
oom:
    tok_trainer_free(tr);
    return errbuf_set(err, err_size, -ENOMEM, "out of memory");
}

void tok_trainer_free(tok_trainer *tr) {
    if (!tr)
        return;
    for (size_t i = 0; i < tr->n_special; i++)
        free(tr->specials[i]);
    free(tr->specials);
    pcre2_code_free(tr->re);
    pcre2_match_data_free(tr->md);
    pool_free(&tr->strings);
    tok_smap_free(&tr->word_ids);
    free(tr->words);
    free(tr);
}

typedef struct feed_ctx {
    tok_trainer *tr;
    const char *text;
} feed_ctx;

static int count_word(void *ctx, size_t off, size_t len) {
    feed_ctx *c = ctx;
    tok_trainer *tr = c->tr;
    const char *w = c->text + off;
    int32_t i = tok_smap_get(&tr->word_ids, w, len);
    if (i >= 0) {
        tr->words[i].count++;
        return 0;
    }
    if (tr->n_words >= INT32_MAX)
        return -E2BIG;
    if (tok_grow((void **)&tr->words, &tr->cap_words, tr->n_words + 1, sizeof(*tr->words)))
        return -ENOMEM;
    const char *key = pool_dup(&tr->strings, w, len);
    if (!key || tok_smap_put(&tr->word_ids, key, len, (int32_t)tr->n_words))
        return -ENOMEM;
    tr->words[tr->n_words++] = (word){key, (uint32_t)len, 1};
    return 0;
}

int tok_trainer_feed(tok_trainer *tr, const char *text, size_t len, char *err, size_t err_size) {
    size_t bad = tok_utf8_invalid(text, len);
    if (bad < len)
        return errbuf_set(err, err_size, -EILSEQ, "the text is not UTF-8 at byte %zu", bad);
    feed_ctx c = {tr, text};
    int rc = tok_regex_split(tr->re, tr->md, text, len, 1, count_word, &c, err, err_size);
    if (rc == -ENOMEM || rc == -E2BIG)
        errbuf_set(err, err_size, rc, rc == -E2BIG ? "too many distinct words" : "out of memory");
    return rc;
}

/* ---- the merge loop ---- */

typedef struct pair_count {
    uint64_t key; /* left << 32 | right; UINT64_MAX when empty */
    int64_t count;
    int32_t upd; /* index in the round's list of pairs to requeue, or -1 */
} pair_count;

typedef struct ulist {
    uint32_t *v;
    size_t n, cap;
} ulist;

typedef struct qentry {
    uint64_t pair;
    int64_t count;
    ulist pos; /* the words the pair was seen in */
} qentry;

typedef struct trainer_run {
    tok_trainer *tr;
    /* per word: its symbols */
    int32_t *syms;
    size_t *sym_off;
    uint32_t *sym_n;
    /* pair -> count */
    pair_count *pc;
    size_t pc_cap, pc_n;
    /* the heap */
    qentry *q;
    size_t q_n, q_cap;
    /* this round's pairs with new occurrences */
    qentry *upd;
    size_t upd_n, upd_cap;
    /* tokens: strings (GPT-2's alphabet) and the map */
    char **tok;
    size_t n_tok, cap_tok;
    tok_smap tok_ids;
    pool strings;
    uint64_t *merges; /* pairs, in order */
    size_t n_merges, cap_merges;
} trainer_run;

static int ulist_add(ulist *l, uint32_t x) {
    if (l->n && l->v[l->n - 1] == x) /* a word adds itself once per round */
        return 0;
    if (tok_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)))
        return -ENOMEM;
    l->v[l->n++] = x;
    return 0;
}

static pair_count *pc_slot(trainer_run *r, uint64_t key) {
    if ((r->pc_n + 1) * 2 > r->pc_cap) {
        size_t cap = r->pc_cap ? r->pc_cap * 2 : 1024;
        pair_count *n = malloc(cap * sizeof(*n));
        if (!n)
            return NULL;
        for (size_t i = 0; i < cap; i++)
            n[i].key = UINT64_MAX;
        for (size_t i = 0; i < r->pc_cap; i++) {
            if (r->pc[i].key == UINT64_MAX)
                continue;
            size_t j = tok_hash(&r->pc[i].key, 8) & (cap - 1);
            while (n[j].key != UINT64_MAX)
                j = (j + 1) & (cap - 1);
            n[j] = r->pc[i];
        }
        free(r->pc);
        r->pc = n;
        r->pc_cap = cap;
    }
    size_t j = tok_hash(&key, 8) & (r->pc_cap - 1);
    while (r->pc[j].key != UINT64_MAX && r->pc[j].key != key)
        j = (j + 1) & (r->pc_cap - 1);
    if (r->pc[j].key == UINT64_MAX) {
        r->pc[j] = (pair_count){key, 0, -1};
        r->pc_n++;
    }
    return &r->pc[j];
}

/* Max-heap order: the larger count, then the smaller pair. */
static int q_before(const qentry *a, const qentry *b) {
    return a->count != b->count ? a->count > b->count : a->pair < b->pair;
}

static int q_push(trainer_run *r, qentry x) {
    if (tok_grow((void **)&r->q, &r->q_cap, r->q_n + 1, sizeof(*r->q)))
        return -ENOMEM;
    size_t i = r->q_n++;
    while (i > 0 && q_before(&x, &r->q[(i - 1) / 2])) {
        r->q[i] = r->q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->q[i] = x;
    return 0;
}

static qentry q_pop(trainer_run *r) {
    qentry top = r->q[0], x = r->q[--r->q_n];
    size_t i = 0, n = r->q_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && q_before(&r->q[c + 1], &r->q[c]))
            c++;
        if (!q_before(&r->q[c], &x))
            break;
        r->q[i] = r->q[c];
        i = c;
    }
    if (n)
        r->q[i] = x;
    return top;
}

/* A pair's count changes by delta in word w; a new occurrence queues the
 * pair again at the round's end. */
static int change(trainer_run *r, int32_t a, int32_t b, int64_t delta, uint32_t w) {
    pair_count *p = pc_slot(r, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (!p)
        return -ENOMEM;
    p->count += delta;
    if (delta <= 0)
        return 0;
    if (p->upd < 0) {
        if (tok_grow((void **)&r->upd, &r->upd_cap, r->upd_n + 1, sizeof(*r->upd)))
            return -ENOMEM;
        p->upd = (int32_t)r->upd_n;
        r->upd[r->upd_n++] = (qentry){p->key, 0, {0}};
    }
    return ulist_add(&r->upd[p->upd].pos, w);
}

/* Queues the pairs gathered by change() with their current counts. */
static int requeue(trainer_run *r) {
    int rc = 0;
    for (size_t i = 0; i < r->upd_n; i++) {
        pair_count *p = pc_slot(r, r->upd[i].pair);
        if (!p) {
            rc = -ENOMEM;
        } else {
            p->upd = -1;
            r->upd[i].count = p->count;
        }
        if (rc == 0 && r->upd[i].count > 0) {
            if ((rc = q_push(r, r->upd[i])) == 0)
                continue;
        }
        free(r->upd[i].pos.v);
    }
    r->upd_n = 0;
    return rc;
}

/* Word::merge: every (a, b) in word w becomes id, left to right. */
static int merge_word(trainer_run *r, uint32_t w, int32_t a, int32_t b, int32_t id) {
    int32_t *s = r->syms + r->sym_off[w];
    size_t n = r->sym_n[w], out = 0, i = 0;
    int64_t count = (int64_t)r->tr->words[w].count;
    while (i < n) {
        if (s[i] == a && i + 1 < n && s[i + 1] == b) {
            if (out > 0 &&
                (change(r, s[out - 1], a, -count, w) || change(r, s[out - 1], id, count, w)))
                return -ENOMEM;
            if (i + 2 < n &&
                (change(r, b, s[i + 2], -count, w) || change(r, id, s[i + 2], count, w)))
                return -ENOMEM;
            s[out++] = id;
            i += 2;
        } else {
            s[out++] = s[i++];
        }
    }
    r->sym_n[w] = (uint32_t)out;
    return 0;
}

static int add_token(trainer_run *r, const char *s, size_t len, int32_t *id) {
    int32_t have = tok_smap_get(&r->tok_ids, s, len);
    if (have >= 0) {
        *id = have;
        return 0;
    }
    if (tok_grow((void **)&r->tok, &r->cap_tok, r->n_tok + 1, sizeof(*r->tok)))
        return -ENOMEM;
    char *d = pool_dup(&r->strings, s, len);
    if (!d || tok_smap_put(&r->tok_ids, d, len, (int32_t)r->n_tok))
        return -ENOMEM;
    *id = (int32_t)r->n_tok;
    r->tok[r->n_tok++] = d;
    return 0;
}

static int run_merges(trainer_run *r) {
    tok_trainer *tr = r->tr;
    int32_t id;
    int rc;
    for (size_t i = 0; i < tr->n_special; i++)
        if ((rc = add_token(r, tr->specials[i], strlen(tr->specials[i]), &id)))
            return rc;
    /* The alphabet in code point order of the characters, as the trainer
     * sorts it. */
    int32_t byte_tok[256];
    for (uint32_t cp = 0; cp < 324; cp++) {
        if (tok_char_byte[cp] < 0)
            continue;
        tok_buf u = {0};
        if (tok_buf_utf8(&u, cp) || add_token(r, u.p, u.n, &byte_tok[tok_char_byte[cp]])) {
            free(u.p);
            return -ENOMEM;
        }
        free(u.p);
    }
    /* Each word as symbols, and the pairs' first counts. */
    size_t total = 0;
    for (size_t w = 0; w < tr->n_words; w++)
        total += tr->words[w].len;
    r->syms = malloc((total + 1) * sizeof(*r->syms));
    r->sym_off = malloc((tr->n_words + 1) * sizeof(*r->sym_off));
    r->sym_n = malloc((tr->n_words + 1) * sizeof(*r->sym_n));
    if (!r->syms || !r->sym_off || !r->sym_n)
        return -ENOMEM;
    size_t off = 0;
    for (size_t w = 0; w < tr->n_words; w++) {
        r->sym_off[w] = off;
        r->sym_n[w] = tr->words[w].len;
        for (uint32_t k = 0; k < tr->words[w].len; k++)
            r->syms[off + k] = byte_tok[(unsigned char)tr->words[w].bytes[k]];
        for (uint32_t k = 0; k + 1 < tr->words[w].len; k++)
            if ((rc = change(r, r->syms[off + k], r->syms[off + k + 1], (int64_t)tr->words[w].count,
                             (uint32_t)w)))
                return rc;
        off += tr->words[w].len;
    }
    if ((rc = requeue(r)))
        return rc;
    tok_buf joined = {0};
    while (r->n_tok < tr->vocab_size && r->q_n) {
        qentry top = q_pop(r);
        pair_count *p = pc_slot(r, top.pair);
        if (!p) {
            rc = -ENOMEM;
            free(top.pos.v);
            break;
        }
        if (top.count != p->count) {
            top.count = p->count;
            if ((rc = q_push(r, top))) {
                free(top.pos.v);
                break;
            }
            continue;
        }
        if (top.count < 1 || (uint64_t)top.count < tr->min_frequency) {
            free(top.pos.v);
            break;
        }
        int32_t a = (int32_t)(top.pair >> 32), b = (int32_t)(uint32_t)top.pair;
        joined.n = 0;
        if (tok_buf_add(&joined, r->tok[a], strlen(r->tok[a])) ||
            tok_buf_add(&joined, r->tok[b], strlen(r->tok[b])) ||
            add_token(r, joined.p, joined.n, &id)) {
            rc = -ENOMEM;
            free(top.pos.v);
            break;
        }
        if (tok_grow((void **)&r->merges, &r->cap_merges, r->n_merges + 1, sizeof(*r->merges))) {
            rc = -ENOMEM;
            free(top.pos.v);
            break;
        }
        r->merges[r->n_merges++] = top.pair;
        for (size_t k = 0; k < top.pos.n && rc == 0; k++)
            rc = merge_word(r, top.pos.v[k], a, b, id);
        free(top.pos.v);
        if (rc || (rc = requeue(r)))
            break;
    }
    free(joined.p);
    return rc;
}

static int write_json(trainer_run *r, tok_buf *b, tok_buf *joined) {
    tok_trainer *tr = r->tr;
    int rc = tok_buf_printf(b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                               "\"added_tokens\":[");
    for (size_t i = 0; rc == 0 && i < tr->n_special; i++) {
        int32_t id = tok_smap_get(&r->tok_ids, tr->specials[i], strlen(tr->specials[i]));
        rc = tok_buf_printf(b, "%s{\"id\":%d,\"content\":", i ? "," : "", id);
        if (rc == 0)
            rc = tok_buf_json_str(b, tr->specials[i], strlen(tr->specials[i]));
        if (rc == 0)
            rc = tok_buf_printf(b, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                                   "\"normalized\":false,\"special\":true}");
    }
    static const char bytelevel[] =
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
        "\"use_regex\":true}";
    if (rc == 0)
        rc = tok_buf_printf(b,
                            "],\"normalizer\":null,\"pre_tokenizer\":%s,\"post_processor\":%s,"
                            "\"decoder\":%s,\"model\":{\"type\":\"BPE\",\"dropout\":null,"
                            "\"unk_token\":null,\"continuing_subword_prefix\":null,"
                            "\"end_of_word_suffix\":null,\"fuse_unk\":false,"
                            "\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{",
                            bytelevel, bytelevel, bytelevel);
    for (size_t i = 0; rc == 0 && i < r->n_tok; i++) {
        rc = tok_buf_json_str(b, r->tok[i], strlen(r->tok[i]));
        if (rc == 0)
            rc = tok_buf_printf(b, ":%zu%s", i, i + 1 < r->n_tok ? "," : "");
    }
    if (rc == 0)
        rc = tok_buf_printf(b, "},\"merges\":[");
    /* Merges as "a b", which every version of `tokenizers` reads (the
     * pair form is 0.20's): no token of the byte alphabet holds a space. */
    for (size_t i = 0; rc == 0 && i < r->n_merges; i++) {
        const char *a = r->tok[r->merges[i] >> 32], *c = r->tok[(uint32_t)r->merges[i]];
        size_t la = strlen(a), lc = strlen(c);
        joined->n = 0;
        rc = tok_buf_add(joined, a, la) || tok_buf_add(joined, " ", 1) ||
                     tok_buf_add(joined, c, lc) || tok_buf_add(b, i ? "," : "", i ? 1 : 0)
                 ? -ENOMEM
                 : tok_buf_json_str(b, joined->p, joined->n);
    }
    if (rc == 0)
        rc = tok_buf_printf(b, "]}}\n");
    return rc;
}

int tok_trainer_json(tok_trainer *tr, char **json, size_t *json_len, char *err, size_t err_size) {
    tok_bytemap_init();
    trainer_run r = {.tr = tr};
    tok_buf b = {0}, joined = {0};
    *json = NULL;
    int rc = run_merges(&r);
    if (rc == 0)
        rc = write_json(&r, &b, &joined);
    free(joined.p);
    for (size_t i = 0; i < r.q_n; i++)
        free(r.q[i].pos.v);
    for (size_t i = 0; i < r.upd_n; i++)
        free(r.upd[i].pos.v);
    free(r.q);
    free(r.upd);
    free(r.pc);
    free(r.syms);
    free(r.sym_off);
    free(r.sym_n);
    free(r.tok);
    free(r.merges);
    tok_smap_free(&r.tok_ids);
    pool_free(&r.strings);
    if (rc) {
        free(b.p);
        return errbuf_set(err, err_size, rc, "training the tokenizer: out of memory");
    }
    *json = b.p;
    *json_len = b.n;
    return 0;
}

int tok_trainer_save(tok_trainer *tr, const char *path, char *err, size_t err_size) {
    char *json;
    size_t len;
    int rc = tok_trainer_json(tr, &json, &len, err, err_size);
    if (rc)
        return rc;
    rc = file_replace(path, json, len, err, err_size);
    free(json);
    return rc;
}
