/* chunk - the LLM twin's chunk step: each document cut into chunks by its
 * category, as the Handbook does. Articles: sentences gathered into chunks
 * of min_length to max_length code points (the Handbook's rule, byte for
 * byte). Posts and repositories: overlapping windows of a fixed number of
 * code points, ended at a word boundary where one is near
 * (text_chunk_window() in steps/text/text.h). Then, when a tokenizer is
 * given, every chunk longer than the embedding model's limit is cut again
 * into overlapping pieces of at most that many WordPiece tokens. Every chunk
 * is a record with a deterministic id and its byte offsets in the
 * document's content. */
#include <sluice/plugin.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"
#include "text.h"
#include "wordpiece.h"

typedef struct chunk_params {
    int64_t min, max;                 /* articles */
    int64_t post_size, post_overlap;  /* posts */
    int64_t repo_size, repo_overlap;  /* repositories */
    wordpiece *wp;                    /* the token cap's tokenizer, or NULL */
    size_t max_tokens, token_overlap; /* tokens, [CLS] and [SEP] excluded */
} chunk_params;

/* One document's chunks: texts (malloc'ed) and where each lies in the
 * content. */
typedef struct cut {
    char **texts;
    text_span *spans;
    size_t n;
} cut;

static void cut_free(cut *c) {
    text_chunks_free(c->texts, c->n);
    free(c->spans);
}

/* Articles: the sentence rule. The offsets come with the chunks; a chunk
 * that is not exactly content[start, end) (content that was not cleaned:
 * line breaks or repeated spaces between sentences, bad UTF-8) fails the
 * step rather than give offsets that do not hold. */
static int cut_article(sl_ctx *ctx, const chunk_params *p, const char *content, size_t len,
                       uint64_t index, cut *c) {
    if (text_chunk_article_spans(content, len, (size_t)p->min, (size_t)p->max, &c->texts, &c->spans,
                                 &c->n) != 0)
        return sl_fail(ctx, "out of memory chunking document %llu", (unsigned long long)index + 1);
    for (size_t i = 0; i < c->n; i++) {
        const text_span *s = &c->spans[i];
        size_t tlen = strlen(c->texts[i]);
        if (s->end - s->start != tlen || memcmp(content + s->start, c->texts[i], tlen) != 0) {
            int rc = sl_fail(ctx,
                             "document %llu: its article chunk of index %zu is not the "
                             "content's bytes %zu to %zu (sentences must be separated by one "
                             "space: run clean first)",
                             (unsigned long long)index + 1, i, s->start, s->end);
            cut_free(c);
            return rc;
        }
    }
    return SL_OK;
}

/* Posts and repositories: windows of size code points, overlap shared. */
static int cut_windows(sl_ctx *ctx, int64_t size, int64_t overlap, const char *content, size_t len,
                       uint64_t index, cut *c) {
    int rc = text_chunk_window(content, len, (size_t)size, (size_t)overlap, &c->spans, &c->n);
    if (rc != 0) /* run() checked the parameters, so only memory is left */
        return sl_fail(ctx, "%s chunking document %llu",
                       rc == -EINVAL ? "bad window size" : "out of memory",
                       (unsigned long long)index + 1);
    c->texts = calloc(c->n ? c->n : 1, sizeof(*c->texts));
    if (!c->texts) {
        free(c->spans);
        return sl_fail(ctx, "out of memory chunking document %llu", (unsigned long long)index + 1);
    }
    for (size_t i = 0; i < c->n; i++) {
        size_t tlen;
        /* The bytes themselves when the content is valid UTF-8 (as cleaned
         * content is); a bad byte becomes U+FFFD, never broken output. */
        if (text_utf8_dup(content + c->spans[i].start, c->spans[i].end - c->spans[i].start,
                          &c->texts[i], &tlen) != 0) {
            cut_free(c);
            return sl_fail(ctx, "out of memory chunking document %llu",
                           (unsigned long long)index + 1);
        }
    }
    return SL_OK;
}

/* Adds to out the piece [start, end) of text (a chunk that lies at byte
 * base of the content), trimmed of spaces. */
static int add_piece(cut *out, const char *text, size_t start, size_t end, size_t base) {
    while (start < end && text[start] == ' ')
        start++;
    while (end > start && text[end - 1] == ' ')
        end--;
    if (start == end)
        return 0;
    char **texts = realloc(out->texts, (out->n + 1) * sizeof(*texts));
    if (texts)
        out->texts = texts;
    text_span *spans = texts ? realloc(out->spans, (out->n + 1) * sizeof(*spans)) : NULL;
    if (spans)
        out->spans = spans;
    char *piece = spans ? malloc(end - start + 1) : NULL;
    if (!piece)
        return -ENOMEM;
    memcpy(piece, text + start, end - start);
    piece[end - start] = '\0';
    out->texts[out->n] = piece;
    out->spans[out->n++] = (text_span){base + start, base + end};
    return 0;
}

/* Whether token i begins a word, or is punctuation: what a piece may start
 * with and tokenize the same. Conservative: a token glued to the one before
 * (a "##" piece, or a CJK character) does not. */
static int starts_word(const char *text, const wordpiece_tokens *t, size_t i) {
    if (i == 0 || t->start[i] > t->end[i - 1])
        return 1;
    unsigned char here = (unsigned char)text[t->start[i]];
    unsigned char before = (unsigned char)text[t->end[i - 1] - 1];
    return (here < 0x80 && ispunct(here)) || (before < 0x80 && ispunct(before));
}

/* Cuts one chunk into pieces of at most max_tokens tokens, each but the
 * first sharing at most token_overlap tokens with the one before (fewer
 * where the overlap would begin inside a word). */
static int cap_one(const chunk_params *p, const char *text, size_t len, size_t base,
                   wordpiece_tokens *t, cut *out) {
    int rc = wordpiece_tokenize(p->wp, text, len, t);
    if (rc)
        return rc;
    if (t->n <= p->max_tokens)
        return add_piece(out, text, 0, len, base);
    size_t i = 0; /* the first token of the piece */
    while (i < t->n) {
        size_t from = t->start[i], prefix;
        if ((rc = wordpiece_prefix_bytes(p->wp, text + from, len - from, p->max_tokens, &prefix)))
            return rc;
        size_t cut_at = from + prefix;
        if (cut_at >= len || prefix == 0) /* the rest fits, or no clean cut: one token */
            cut_at = cut_at >= len ? len : t->end[i];
        if ((rc = add_piece(out, text, from, cut_at, base)))
            return rc;
        if (cut_at >= len)
            break;
        size_t k = i; /* the first token after the cut */
        while (k < t->n && t->start[k] < cut_at)
            k++;
        /* Back token_overlap tokens, then forward to a token a word begins
         * with: a piece never starts inside a word ("##" pieces). */
        size_t next = k > i + p->token_overlap ? k - p->token_overlap : i + 1;
        while (next < k && !starts_word(text, t, next))
            next++;
        i = next;
    }
    return 0;
}

/* Replaces c's chunks by their capped pieces. */
static int cap_tokens(sl_ctx *ctx, const chunk_params *p, uint64_t index, cut *c) {
    cut out = {NULL, NULL, 0};
    wordpiece_tokens t = WORDPIECE_TOKENS_INIT;
    int rc = 0;
    for (size_t i = 0; i < c->n && rc == 0; i++)
        rc = cap_one(p, c->texts[i], strlen(c->texts[i]), c->spans[i].start, &t, &out);
    wordpiece_tokens_fini(&t);
    cut_free(c);
    if (rc) {
        cut_free(&out);
        return sl_fail(ctx, "out of memory capping the chunks of document %llu at %zu tokens",
                       (unsigned long long)index + 1, p->max_tokens);
    }
    *c = out;
    return SL_OK;
}

static int chunk_one(sl_ctx *ctx, const bson_t *in, uint64_t index, void *ud,
                     int (*emit)(void *, const bson_t *), void *sink) {
    const chunk_params *p = ud;
    uint32_t len;
    const char *content = records_str(in, "content", &len);
    if (!content)
        return sl_fail(ctx, "document %llu has no cleaned text content (run clean first)",
                       (unsigned long long)index + 1);
    const char *category = records_str(in, "category", NULL);
    if (!category && bson_has_field(in, "category"))
        return sl_fail(ctx, "document %llu has a category that is not a string",
                       (unsigned long long)index + 1);
    if (!category)
        category = "articles"; /* the Handbook's chunker's only kind before categories */
    cut c = {NULL, NULL, 0};
    int rc;
    if (strcmp(category, "articles") == 0)
        rc = cut_article(ctx, p, content, len, index, &c);
    else if (strcmp(category, "posts") == 0)
        rc = cut_windows(ctx, p->post_size, p->post_overlap, content, len, index, &c);
    else if (strcmp(category, "repositories") == 0)
        rc = cut_windows(ctx, p->repo_size, p->repo_overlap, content, len, index, &c);
    else
        return sl_fail(ctx,
                       "document %llu is of category '%s': chunk knows articles, posts and "
                       "repositories",
                       (unsigned long long)index + 1, category);
    if (rc == SL_OK && p->wp)
        rc = cap_tokens(ctx, p, index, &c);
    if (rc != SL_OK)
        return rc;
    const char *doc_id = records_str(in, "id", NULL);
    for (size_t i = 0; i < c.n && rc == SL_OK; i++) {
        char id[37];
        size_t tlen = strlen(c.texts[i]);
        if (text_chunk_id(c.texts[i], tlen, id) != 0) {
            rc = sl_fail(ctx, "cannot hash chunk %zu of document %llu", i,
                         (unsigned long long)index + 1);
            break;
        }
        bson_t out = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&out, "id", id);
        BSON_APPEND_UTF8(&out, "content", c.texts[i]);
        const char *fields[] = {"platform", "author_id", "author_full_name", "link"};
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            const char *v = records_str(in, fields[f], NULL);
            if (v)
                BSON_APPEND_UTF8(&out, fields[f], v);
        }
        if (doc_id)
            BSON_APPEND_UTF8(&out, "document_id", doc_id);
        BSON_APPEND_UTF8(&out, "category", category);
        BSON_APPEND_INT64(&out, "index", (int64_t)i);
        BSON_APPEND_INT64(&out, "start", (int64_t)c.spans[i].start);
        BSON_APPEND_INT64(&out, "end", (int64_t)c.spans[i].end);
        rc = emit(sink, &out);
        bson_destroy(&out);
    }
    cut_free(&c);
    return rc;
}

/* A window size and its overlap: 1 <= size, 0 <= overlap < size. */
static int check_window(sl_ctx *ctx, const char *size_name, int64_t size, const char *overlap_name,
                        int64_t overlap) {
    if (size < 1 || (uint64_t)size > SIZE_MAX / 2)
        return sl_fail(ctx, "%s is %lld: it must be at least 1 (code points)", size_name,
                       (long long)size);
    if (overlap < 0 || overlap >= size)
        return sl_fail(ctx,
                       "%s is %lld: it must be from 0 to %s - 1 (%lld), so that each window "
                       "moves on",
                       overlap_name, (long long)overlap, size_name, (long long)size - 1);
    return SL_OK;
}

static int run(sl_ctx *ctx) {
    chunk_params p = {
        sl_param_int(ctx, "min_length"),
        sl_param_int(ctx, "max_length"),
        sl_param_int(ctx, "post_size"),
        sl_param_int(ctx, "post_overlap"),
        sl_param_int(ctx, "repository_size"),
        sl_param_int(ctx, "repository_overlap"),
        NULL,
        0,
        0,
    };
    if (p.min < 0 || p.max < 1 || p.min > p.max || (uint64_t)p.max > SIZE_MAX / 2)
        return sl_fail(ctx,
                       "min_length %lld and max_length %lld do not make a range (0 <= min_length "
                       "<= max_length, max_length >= 1)",
                       (long long)p.min, (long long)p.max);
    int rc = check_window(ctx, "post_size", p.post_size, "post_overlap", p.post_overlap);
    if (rc == SL_OK)
        rc =
            check_window(ctx, "repository_size", p.repo_size, "repository_overlap", p.repo_overlap);
    if (rc != SL_OK)
        return rc;
    const char *tokenizer = sl_param_str(ctx, "tokenizer");
    if (tokenizer && *tokenizer) {
        /* The model's limit counts [CLS] and [SEP]. */
        int64_t max_tokens = sl_param_int(ctx, "max_tokens"),
                overlap = sl_param_int(ctx, "token_overlap");
        if (max_tokens < 3 || max_tokens > 1 << 20)
            return sl_fail(ctx,
                           "max_tokens is %lld: it must be from 3 to 1048576 (it counts "
                           "[CLS] and [SEP])",
                           (long long)max_tokens);
        if (overlap < 0 || overlap >= max_tokens - 2)
            return sl_fail(ctx, "token_overlap is %lld: it must be from 0 to max_tokens - 3 (%lld)",
                           (long long)overlap, (long long)max_tokens - 3);
        char err[512];
        if (wordpiece_new(tokenizer, &p.wp, err, sizeof(err)) != 0)
            return sl_fail(ctx, "tokenizer: %s", err);
        p.max_tokens = (size_t)max_tokens - 2;
        p.token_overlap = (size_t)overlap;
    }
    rc = records_map(ctx, "documents", "chunks", "chunks", chunk_one, &p);
    wordpiece_free(p.wp);
    return rc;
}

static const sl_port inputs[] = {
    {"documents", "documents", "cleaned documents (JSON Lines)", 0},
    {NULL, NULL, NULL, 0},
};
static const sl_port outputs[] = {
    {"chunks", "chunks",
     "id, content, document_id, author, category, index, start and end in the content (JSON Lines)",
     0},
    {NULL, NULL, NULL, 0},
};
static const sl_param params[] = {
    {"min_length", SL_PARAM_INT, "1000", "articles: shorter chunks are dropped (code points)", 0},
    {"max_length", SL_PARAM_INT, "2000",
     "articles: sentences are gathered up to this length (code points)", 0},
    {"post_size", SL_PARAM_INT, "250", "posts: window length (code points)", 0},
    {"post_overlap", SL_PARAM_INT, "25",
     "posts: code points a window shares with the next, less than post_size", 0},
    {"repository_size", SL_PARAM_INT, "1500", "repositories: window length (code points)", 0},
    {"repository_overlap", SL_PARAM_INT, "100",
     "repositories: code points a window shares with the next, less than repository_size", 0},
    {"tokenizer", SL_PARAM_PATH, "\"\"",
     "a Hugging Face BERT model folder (vocab.txt): cap chunks at max_tokens of its WordPiece "
     "tokens; empty: no token cap",
     0},
    {"max_tokens", SL_PARAM_INT, "256", "the embedding model's limit, [CLS] and [SEP] included", 0},
    {"token_overlap", SL_PARAM_INT, "25", "tokens a capped piece shares with the next", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step steps[] = {
    {"chunk", "1.2",
     "chunk documents by category as the LLM Engineer's Handbook does: articles by sentences, "
     "posts and repositories in overlapping windows, then capped at a token limit",
     inputs, outputs, params, run},
};

SL_PLUGIN_DEFINE("chunk", "1.2", steps, NULL, NULL)
