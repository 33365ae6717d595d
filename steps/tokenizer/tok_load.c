/* tok_load.c - reading a Hugging Face tokenizer.json: a BPE model over
 * GPT-2's byte alphabet, its added tokens, pre-tokenizer, post-processor
 * and decoder. What is not done exactly as `tokenizers` does it is refused,
 * naming the field, rather than approximated. */
#include "tok_impl.h"

#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

/* Ids beyond this are refused: a file cannot make the loader allocate
 * gigabytes with one number (the largest real vocabularies are ~256k). */
#define TOK_MAX_ID (1 << 22)

typedef struct loader {
    const char *name;
    char *err;
    size_t err_size;
} loader;

#define FAIL(L, rc, ...) errbuf_set((L)->err, (L)->err_size, (rc), __VA_ARGS__)

static int utf8_cmp(const bson_iter_t *it, const char *s) {
    uint32_t len;
    const char *v = bson_iter_utf8(it, &len);
    return strlen(s) == len && memcmp(v, s, len) == 0;
}

/* The member key of doc, or 0 if absent or null. */
static int find(const bson_t *doc, const char *key, bson_iter_t *it) {
    return bson_iter_init_find(it, doc, key) && BSON_ITER_HOLDS_NULL(it) == 0;
}

/* The sub-document (object or array) member key of it's document. */
static int sub_doc(const bson_iter_t *it, bson_t *out) {
    uint32_t len;
    const uint8_t *data;
    if (BSON_ITER_HOLDS_DOCUMENT(it))
        bson_iter_document(it, &len, &data);
    else if (BSON_ITER_HOLDS_ARRAY(it))
        bson_iter_array(it, &len, &data);
    else
        return 0;
    return bson_init_static(out, data, len);
}

static int get_bool(loader *L, const bson_t *doc, const char *key, const char *where, int dflt,
                    int *out) {
    bson_iter_t it;
    if (!find(doc, key, &it)) {
        *out = dflt;
        return 0;
    }
    if (!BSON_ITER_HOLDS_BOOL(&it))
        return FAIL(L, -EINVAL, "%s: %s.%s: expected true or false", L->name, where, key);
    *out = bson_iter_bool(&it);
    return 0;
}

static int get_int(loader *L, const bson_iter_t *it, const char *where, int64_t *out) {
    if (BSON_ITER_HOLDS_INT32(it) || BSON_ITER_HOLDS_INT64(it))
        *out = bson_iter_as_int64(it);
    else
        return FAIL(L, -EINVAL, "%s: %s: expected an integer", L->name, where);
    return 0;
}

/* The "type" of a component, or "" when it has none. */
static const char *type_of(const bson_t *doc) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "type") && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return "";
}

/* Decodes a token string of GPT-2's alphabet into its bytes; a string with
 * a character outside the alphabet stands for its own UTF-8, as the
 * ByteLevel decoder reads it. Returns 1 if the string was of the alphabet. */
static int token_bytes(const char *s, size_t len, tok_buf *out) {
    size_t i = 0;
    out->n = 0;
    while (i < len) {
        uint32_t cp = tok_utf8_next(s, &i);
        if (cp >= 324 || tok_char_byte[cp] < 0) {
            out->n = 0;
            tok_buf_add(out, s, len);
            return 0;
        }
        char b = (char)tok_char_byte[cp];
        if (tok_buf_add(out, &b, 1) != 0)
            return -ENOMEM;
    }
    if (tok_buf_reserve(out, 0) != 0)
        return -ENOMEM;
    out->p[out->n] = '\0';
    return 1;
}

/* Keeps a replaced token's strings alive: the maps still point at them (a
 * vocabulary token that an added token of another content takes over keeps
 * its own id by its own string). */
static int retire(tok_tokenizer *t, char *p) {
    if (!p)
        return 0;
    char **r = realloc(t->retired, (t->n_retired + 1) * sizeof(*r));
    if (!r) {
        free(p);
        return -ENOMEM;
    }
    t->retired = r;
    r[t->n_retired++] = p;
    return 0;
}

static int set_token(tok_tokenizer *t, int32_t id, const char *s, size_t len, tok_buf *scratch) {
    if (retire(t, t->str[id]) || retire(t, t->bytes[id])) {
        t->str[id] = t->bytes[id] = NULL;
        return -ENOMEM;
    }
    t->str[id] = t->bytes[id] = NULL;
    t->str[id] = malloc(len + 1);
    if (!t->str[id])
        return -ENOMEM;
    memcpy(t->str[id], s, len);
    t->str[id][len] = '\0';
    int rc = token_bytes(s, len, scratch);
    if (rc < 0)
        return rc;
    t->bytes[id] = malloc(scratch->n + 1);
    if (!t->bytes[id])
        return -ENOMEM;
    if (scratch->n)
        memcpy(t->bytes[id], scratch->p, scratch->n);
    t->bytes[id][scratch->n] = '\0';
    t->bytes_len[id] = (uint32_t)scratch->n;
    return rc;
}

static int merge_put(tok_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t j = tok_hash(&key, sizeof(key)) & (t->merges_cap - 1);
    while (t->merges[j].key != UINT64_MAX && t->merges[j].key != key)
        j = (j + 1) & (t->merges_cap - 1);
    /* A pair listed twice keeps its last rank, as HashMap::collect does. */
    t->merges[j] = (tok_merge_slot){.key = key, .rank = rank, .id = id};
    return 0;
}

const tok_merge_slot *tok_merge_find(const tok_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t j = tok_hash(&key, sizeof(key)) & (t->merges_cap - 1);
    while (t->merges[j].key != UINT64_MAX) {
        if (t->merges[j].key == key)
            return &t->merges[j];
        j = (j + 1) & (t->merges_cap - 1);
    }
    return NULL;
}

static int check_model(loader *L, const bson_t *model) {
    const char *type = type_of(model);
    if (strcmp(type, "BPE") != 0)
        return FAIL(L, -ENOTSUP, "%s: model.type: \"%s\" is not supported (only BPE)", L->name,
                    type);
    bson_iter_t it;
    if (find(model, "dropout", &it) &&
        !((BSON_ITER_HOLDS_DOUBLE(&it) || BSON_ITER_HOLDS_INT32(&it)) &&
          bson_iter_as_double(&it) == 0))
        return FAIL(L, -ENOTSUP, "%s: model.dropout: BPE dropout is not supported", L->name);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++)
        if (find(model, affixes[i], &it) && !(BSON_ITER_HOLDS_UTF8(&it) && utf8_cmp(&it, "")))
            return FAIL(L, -ENOTSUP, "%s: model.%s: only null or \"\" is supported", L->name,
                        affixes[i]);
    int fallback;
    int rc = get_bool(L, model, "byte_fallback", "model", 0, &fallback);
    if (rc == 0 && fallback)
        rc = FAIL(L, -ENOTSUP, "%s: model.byte_fallback: true is not supported", L->name);
    return rc;
}

static int load_vocab(loader *L, tok_tokenizer *t, const bson_t *model, const bson_t *added,
                      tok_buf *scratch) {
    bson_iter_t it, v;
    if (!bson_iter_init_find(&it, model, "vocab") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return FAIL(L, -EINVAL, "%s: model.vocab: expected an object of token: id", L->name);
    /* First the largest id, so the per-id tables are allocated once. */
    int64_t max = -1;
    bson_iter_recurse(&it, &v);
    while (bson_iter_next(&v)) {
        int64_t id;
        char where[64];
        snprintf(where, sizeof(where), "model.vocab[\"%.32s\"]", bson_iter_key(&v));
        if (get_int(L, &v, where, &id) != 0)
            return -EINVAL;
        if (id < 0 || id >= TOK_MAX_ID)
            return FAIL(L, -EINVAL, "%s: %s: id %lld is out of range", L->name, where,
                        (long long)id);
        if (id > max)
            max = id;
    }
    bson_iter_t a;
    if (added && bson_iter_init(&a, added))
        while (bson_iter_next(&a)) {
            bson_t tokdoc;
            bson_iter_t idit;
            int64_t id;
            if (!sub_doc(&a, &tokdoc) || !bson_iter_init_find(&idit, &tokdoc, "id") ||
                get_int(L, &idit, "added_tokens[].id", &id) != 0)
                return FAIL(L, -EINVAL, "%s: added_tokens[%s]: expected an object with an id",
                            L->name, bson_iter_key(&a));
            if (id < 0 || id >= TOK_MAX_ID)
                return FAIL(L, -EINVAL, "%s: added_tokens[%s].id: %lld is out of range", L->name,
                            bson_iter_key(&a), (long long)id);
            if (id > max)
                max = id;
        }
    t->n_ids = (size_t)(max + 1);
    t->str = calloc(t->n_ids + 1, sizeof(*t->str));
    t->bytes = calloc(t->n_ids + 1, sizeof(*t->bytes));
    t->bytes_len = calloc(t->n_ids + 1, sizeof(*t->bytes_len));
    t->special = calloc(t->n_ids + 1, 1);
    if (!t->str || !t->bytes || !t->bytes_len || !t->special)
        return -ENOMEM;
    bson_iter_recurse(&it, &v);
    while (bson_iter_next(&v)) {
        int32_t id = (int32_t)bson_iter_as_int64(&v);
        const char *key = bson_iter_key(&v);
        int rc = set_token(t, id, key, strlen(key), scratch);
        if (rc < 0)
            return rc;
        if (tok_smap_put(&t->str2id, t->str[id], strlen(t->str[id]), id) != 0)
            return -ENOMEM;
        /* Only tokens of the alphabet can equal a pre-tokenized word. */
        if (rc == 1 && tok_smap_put(&t->bytes2id, t->bytes[id], t->bytes_len[id], id) != 0)
            return -ENOMEM;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok_smap_get(&t->bytes2id, &c, 1);
    }
    return 0;
}

static int load_merges(loader *L, tok_tokenizer *t, const bson_t *model) {
    bson_iter_t it, m;
    if (!bson_iter_init_find(&it, model, "merges") || !BSON_ITER_HOLDS_ARRAY(&it))
        return FAIL(L, -EINVAL, "%s: model.merges: expected an array", L->name);
    size_t n = 0;
    bson_iter_recurse(&it, &m);
    while (bson_iter_next(&m))
        n++;
    t->merges_cap = 16;
    while (t->merges_cap < 2 * n + 16)
        t->merges_cap *= 2;
    t->merges = malloc(t->merges_cap * sizeof(*t->merges));
    if (!t->merges)
        return -ENOMEM;
    for (size_t i = 0; i < t->merges_cap; i++)
        t->merges[i].key = UINT64_MAX;
    bson_iter_recurse(&it, &m);
    int32_t rank = 0;
    char buf[512];
    for (; bson_iter_next(&m); rank++) {
        const char *parts[2];
        size_t lens[2];
        if (BSON_ITER_HOLDS_UTF8(&m)) { /* "a b": one space, as `tokenizers` splits it */
            uint32_t len;
            const char *s = bson_iter_utf8(&m, &len);
            const char *sp = memchr(s, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
                return FAIL(L, -EINVAL,
                            "%s: model.merges[%d]: \"%.64s\" is not two tokens "
                            "separated by one space",
                            L->name, rank, s);
            parts[0] = s, lens[0] = (size_t)(sp - s);
            parts[1] = sp + 1, lens[1] = len - lens[0] - 1;
        } else if (BSON_ITER_HOLDS_ARRAY(&m)) { /* ["a", "b"] */
            bson_iter_t p;
            size_t k = 0;
            bson_iter_recurse(&m, &p);
            while (bson_iter_next(&p)) {
                if (k >= 2 || !BSON_ITER_HOLDS_UTF8(&p))
                    break;
                uint32_t len;
                parts[k] = bson_iter_utf8(&p, &len);
                lens[k++] = len;
            }
            if (k != 2 || bson_iter_next(&p))
                return FAIL(L, -EINVAL, "%s: model.merges[%d]: expected two strings", L->name,
                            rank);
        } else {
            return FAIL(L, -EINVAL, "%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]",
                        L->name, rank);
        }
        int32_t ids[2];
        for (int k = 0; k < 2; k++) {
            ids[k] = tok_smap_get(&t->str2id, parts[k], lens[k]);
            if (ids[k] < 0)
                return FAIL(L, -EINVAL, "%s: model.merges[%d]: \"%.*s\" is not in model.vocab",
                            L->name, rank, (int)(lens[k] > 64 ? 64 : lens[k]), parts[k]);
        }
        if (lens[0] + lens[1] >= sizeof(buf))
            return FAIL(L, -EINVAL, "%s: model.merges[%d]: the merged token is too long", L->name,
                        rank);
        memcpy(buf, parts[0], lens[0]);
        memcpy(buf + lens[0], parts[1], lens[1]);
        int32_t id = tok_smap_get(&t->str2id, buf, lens[0] + lens[1]);
        if (id < 0)
            return FAIL(L, -EINVAL,
                        "%s: model.merges[%d]: the merged token \"%.*s\" is not in "
                        "model.vocab",
                        L->name, rank, (int)(lens[0] + lens[1]), buf);
        merge_put(t, ids[0], ids[1], rank, id);
    }
    return 0;
}

static int load_added(loader *L, tok_tokenizer *t, const bson_t *added, tok_buf *scratch) {
    bson_iter_t a;
    size_t n = 0;
    if (!bson_iter_init(&a, added))
        return 0;
    while (bson_iter_next(&a))
        n++;
    t->added = calloc(n + 1, sizeof(*t->added));
    if (!t->added)
        return -ENOMEM;
    bson_iter_init(&a, added);
    while (bson_iter_next(&a)) {
        bson_t doc;
        bson_iter_t c, idit;
        char where[48];
        snprintf(where, sizeof(where), "added_tokens[%s]", bson_iter_key(&a));
        sub_doc(&a, &doc); /* checked in load_vocab */
        bson_iter_init_find(&idit, &doc, "id");
        int32_t id = (int32_t)bson_iter_as_int64(&idit);
        if (!bson_iter_init_find(&c, &doc, "content") || !BSON_ITER_HOLDS_UTF8(&c))
            return FAIL(L, -EINVAL, "%s: %s.content: expected a string", L->name, where);
        uint32_t len;
        const char *content = bson_iter_utf8(&c, &len);
        if (len == 0)
            return FAIL(L, -EINVAL, "%s: %s.content: is empty", L->name, where);
        tok_added *x = &t->added[t->n_added];
        int special, lstrip, rstrip, single, normalized;
        if (get_bool(L, &doc, "special", where, 0, &special) ||
            get_bool(L, &doc, "lstrip", where, 0, &lstrip) ||
            get_bool(L, &doc, "rstrip", where, 0, &rstrip) ||
            get_bool(L, &doc, "single_word", where, 0, &single) ||
            get_bool(L, &doc, "normalized", where, !special, &normalized))
            return -EINVAL;
        x->content = malloc(len + 1);
        if (!x->content)
            return -ENOMEM;
        memcpy(x->content, content, len + 1);
        x->len = len;
        x->id = id;
        x->special = special != 0;
        x->lstrip = lstrip != 0;
        x->rstrip = rstrip != 0;
        x->single_word = single != 0;
        x->normalized = normalized != 0;
        t->n_added++;
        int rc = set_token(t, id, content, len, scratch);
        if (rc < 0)
            return rc;
        t->special[id] = x->special;
        t->first_byte[x->normalized][(unsigned char)content[0]] = 1;
        if (x->single_word && !t->word_re &&
            (rc = tok_regex_compile("[\\p{Alphabetic}\\p{N}]", 0, &t->word_re, L->name, L->err,
                                    L->err_size)))
            return rc;
        if (tok_smap_put(&t->str2id, t->str[id], len, id) != 0)
            return -ENOMEM;
    }
    return 0;
}

static int load_normalizer(loader *L, tok_tokenizer *t, const bson_t *root) {
    bson_iter_t it;
    bson_t doc;
    if (!find(root, "normalizer", &it))
        return 0;
    if (!sub_doc(&it, &doc))
        return FAIL(L, -EINVAL, "%s: normalizer: expected an object or null", L->name);
    const char *type = type_of(&doc);
    if (strcmp(type, "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) { /* an empty Sequence changes nothing */
        bson_iter_t n, x;
        if (bson_iter_init_find(&n, &doc, "normalizers") && BSON_ITER_HOLDS_ARRAY(&n) &&
            bson_iter_recurse(&n, &x) && !bson_iter_next(&x))
            return 0;
    }
    return FAIL(L, -ENOTSUP, "%s: normalizer: type \"%s\" is not supported (only null or NFC)",
                L->name, type);
}

static int add_step(loader *L, tok_tokenizer *t, const bson_t *doc, const char *where) {
    const char *type = type_of(doc);
    tok_step *s = &t->steps[t->n_steps];
    if (strcmp(type, "ByteLevel") == 0) {
        int use_regex, aps;
        if (get_bool(L, doc, "add_prefix_space", where, 1, &aps) ||
            get_bool(L, doc, "use_regex", where, 1, &use_regex))
            return -EINVAL;
        s->kind = TOK_STEP_BYTELEVEL;
        s->add_prefix_space = aps;
        t->n_steps++;
        return use_regex
                   ? tok_regex_compile(TOK_GPT2_PATTERN, 0, &s->re, L->name, L->err, L->err_size)
                   : 0;
    }
    if (strcmp(type, "Digits") == 0) { /* SmolLM, StarCoder: numbers cut out, one by one or whole */
        int individual;
        if (get_bool(L, doc, "individual_digits", where, 0, &individual))
            return -EINVAL;
        s->kind = TOK_STEP_SPLIT;
        s->behavior = TOK_SPLIT_ISOLATED;
        t->n_steps++;
        return tok_regex_compile(individual ? "\\p{N}" : "\\p{N}+", 0, &s->re, L->name, L->err,
                                 L->err_size);
    }
    if (strcmp(type, "Split") != 0)
        return FAIL(L, -ENOTSUP,
                    "%s: %s: type \"%s\" is not supported (only ByteLevel, Split, "
                    "Digits and a Sequence of them)",
                    L->name, where, type);
    bson_iter_t it, p;
    int invert;
    if (get_bool(L, doc, "invert", where, 0, &invert))
        return -EINVAL;
    if (invert)
        return FAIL(L, -ENOTSUP, "%s: %s.invert: true is not supported", L->name, where);
    if (!bson_iter_init_find(&it, doc, "behavior") || !BSON_ITER_HOLDS_UTF8(&it))
        return FAIL(L, -EINVAL, "%s: %s.behavior: expected a string", L->name, where);
    if (utf8_cmp(&it, "Isolated"))
        s->behavior = TOK_SPLIT_ISOLATED;
    else if (utf8_cmp(&it, "Removed"))
        s->behavior = TOK_SPLIT_REMOVED;
    else
        return FAIL(L, -ENOTSUP,
                    "%s: %s.behavior: \"%s\" is not supported (only Isolated and "
                    "Removed)",
                    L->name, where, bson_iter_utf8(&it, NULL));
    int literal;
    if (bson_iter_init_find(&it, doc, "pattern") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &p) && bson_iter_next(&p) && BSON_ITER_HOLDS_UTF8(&p) &&
        ((literal = strcmp(bson_iter_key(&p), "String") == 0) ||
         strcmp(bson_iter_key(&p), "Regex") == 0)) {
        s->kind = TOK_STEP_SPLIT;
        t->n_steps++;
        char what[300];
        snprintf(what, sizeof(what), "%s: %s.pattern", L->name, where);
        return tok_regex_compile(bson_iter_utf8(&p, NULL), literal, &s->re, what, L->err,
                                 L->err_size);
    }
    return FAIL(L, -EINVAL, "%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                L->name, where);
}

static int load_pre_tokenizer(loader *L, tok_tokenizer *t, const bson_t *root) {
    bson_iter_t it, x;
    bson_t doc, list, item;
    if (!find(root, "pre_tokenizer", &it) || !sub_doc(&it, &doc))
        return FAIL(L, -ENOTSUP, "%s: pre_tokenizer: a byte-level tokenizer needs ByteLevel",
                    L->name);
    int rc;
    if (strcmp(type_of(&doc), "Sequence") == 0) {
        if (!bson_iter_init_find(&it, &doc, "pretokenizers") || !sub_doc(&it, &list))
            return FAIL(L, -EINVAL, "%s: pre_tokenizer.pretokenizers: expected an array", L->name);
        size_t n = 0;
        bson_iter_init(&x, &list);
        while (bson_iter_next(&x))
            n++;
        t->steps = calloc(n + 1, sizeof(*t->steps));
        if (!t->steps)
            return -ENOMEM;
        bson_iter_init(&x, &list);
        while (bson_iter_next(&x)) {
            char where[64];
            snprintf(where, sizeof(where), "pre_tokenizer.pretokenizers[%s]", bson_iter_key(&x));
            if (!sub_doc(&x, &item))
                return FAIL(L, -EINVAL, "%s: %s: expected an object", L->name, where);
            if ((rc = add_step(L, t, &item, where)) != 0)
                return rc;
        }
    } else {
        t->steps = calloc(1, sizeof(*t->steps));
        if (!t->steps)
            return -ENOMEM;
        if ((rc = add_step(L, t, &doc, "pre_tokenizer")) != 0)
            return rc;
    }
    /* The byte alphabet is the model's: splitting after it would cut
     * through the characters bytes became. */
    if (t->n_steps == 0 || t->steps[t->n_steps - 1].kind != TOK_STEP_BYTELEVEL)
        return FAIL(L, -ENOTSUP, "%s: pre_tokenizer: ByteLevel must come last (after any Split)",
                    L->name);
    for (size_t i = 0; i + 1 < t->n_steps; i++)
        if (t->steps[i].kind == TOK_STEP_BYTELEVEL)
            return FAIL(L, -ENOTSUP, "%s: pre_tokenizer: ByteLevel may appear only once", L->name);
    return 0;
}

static int add_ids(loader *L, int32_t **ids, size_t *n, const bson_t *specials, const char *name) {
    bson_iter_t it, x;
    bson_t doc, list;
    if (!specials || !bson_iter_init_find(&it, specials, name) || !sub_doc(&it, &doc) ||
        !bson_iter_init_find(&x, &doc, "ids") || !sub_doc(&x, &list))
        return FAIL(L, -EINVAL, "%s: post_processor.special_tokens: \"%s\" has no ids", L->name,
                    name);
    bson_iter_init(&x, &list);
    while (bson_iter_next(&x)) {
        int64_t id;
        if (get_int(L, &x, "post_processor.special_tokens[].ids[]", &id) != 0)
            return -EINVAL;
        if (id < 0 || id >= TOK_MAX_ID)
            return FAIL(L, -EINVAL,
                        "%s: post_processor.special_tokens[\"%s\"]: id %lld is out "
                        "of range",
                        L->name, name, (long long)id);
        int32_t *p = realloc(*ids, (*n + 1) * sizeof(**ids));
        if (!p)
            return -ENOMEM;
        *ids = p;
        p[(*n)++] = (int32_t)id;
    }
    return 0;
}

static int load_template(loader *L, tok_tokenizer *t, const bson_t *doc) {
    bson_iter_t it, x, y;
    bson_t single, specials, item, body;
    int have_specials = bson_iter_init_find(&it, doc, "special_tokens") && sub_doc(&it, &specials);
    if (!bson_iter_init_find(&it, doc, "single") || !sub_doc(&it, &single))
        return FAIL(L, -EINVAL, "%s: post_processor.single: expected an array", L->name);
    int seen_a = 0;
    bson_iter_init(&x, &single);
    while (bson_iter_next(&x)) {
        if (!sub_doc(&x, &item) || !bson_iter_init(&y, &item) || !bson_iter_next(&y) ||
            !sub_doc(&y, &body))
            return FAIL(L, -EINVAL,
                        "%s: post_processor.single[%s]: expected {\"SpecialToken\": "
                        "...} or {\"Sequence\": ...}",
                        L->name, bson_iter_key(&x));
        bson_iter_t id;
        if (!bson_iter_init_find(&id, &body, "id") || !BSON_ITER_HOLDS_UTF8(&id))
            return FAIL(L, -EINVAL, "%s: post_processor.single[%s]: expected an id", L->name,
                        bson_iter_key(&x));
        if (strcmp(bson_iter_key(&y), "Sequence") == 0) {
            if (!utf8_cmp(&id, "A") || seen_a)
                return FAIL(L, -ENOTSUP,
                            "%s: post_processor.single: only one sequence, A, is "
                            "supported",
                            L->name);
            seen_a = 1;
        } else if (strcmp(bson_iter_key(&y), "SpecialToken") == 0) {
            int rc = seen_a ? add_ids(L, &t->suffix, &t->n_suffix, have_specials ? &specials : NULL,
                                      bson_iter_utf8(&id, NULL))
                            : add_ids(L, &t->prefix, &t->n_prefix, have_specials ? &specials : NULL,
                                      bson_iter_utf8(&id, NULL));
            if (rc)
                return rc;
        } else {
            return FAIL(L, -ENOTSUP, "%s: post_processor.single[%s]: \"%s\" is not supported",
                        L->name, bson_iter_key(&x), bson_iter_key(&y));
        }
    }
    if (!seen_a)
        return FAIL(L, -EINVAL, "%s: post_processor.single: no Sequence A", L->name);
    return 0;
}

static int load_post_processor(loader *L, tok_tokenizer *t, const bson_t *doc, int depth) {
    const char *type = type_of(doc);
    if (strcmp(type, "ByteLevel") == 0) /* offsets only */
        return 0;
    if (strcmp(type, "TemplateProcessing") == 0) {
        if (t->n_prefix || t->n_suffix)
            return FAIL(L, -ENOTSUP, "%s: post_processor: only one TemplateProcessing", L->name);
        return load_template(L, t, doc);
    }
    if (strcmp(type, "Sequence") == 0 && depth == 0) {
        bson_iter_t it, x;
        bson_t list, item;
        if (!bson_iter_init_find(&it, doc, "processors") || !sub_doc(&it, &list))
            return FAIL(L, -EINVAL, "%s: post_processor.processors: expected an array", L->name);
        bson_iter_init(&x, &list);
        while (bson_iter_next(&x)) {
            if (!sub_doc(&x, &item))
                return FAIL(L, -EINVAL, "%s: post_processor.processors[%s]: expected an object",
                            L->name, bson_iter_key(&x));
            int rc = load_post_processor(L, t, &item, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    return FAIL(L, -ENOTSUP,
                "%s: post_processor: type \"%s\" is not supported (only "
                "ByteLevel, TemplateProcessing and a Sequence of them)",
                L->name, type);
}

static int load_root(loader *L, tok_tokenizer *t, const bson_t *root) {
    bson_iter_t it;
    bson_t model, added, doc;
    int rc, have_added = 0;
    if (!bson_iter_init_find(&it, root, "model") || !sub_doc(&it, &model))
        return FAIL(L, -EINVAL, "%s: model: expected an object", L->name);
    if ((rc = check_model(L, &model)) != 0)
        return rc;
    if (find(root, "added_tokens", &it)) {
        if (!BSON_ITER_HOLDS_ARRAY(&it))
            return FAIL(L, -EINVAL, "%s: added_tokens: expected an array", L->name);
        have_added = sub_doc(&it, &added);
    }
    tok_buf scratch = {0};
    rc = load_vocab(L, t, &model, have_added ? &added : NULL, &scratch);
    if (rc == 0)
        rc = load_merges(L, t, &model);
    if (rc == 0 && have_added)
        rc = load_added(L, t, &added, &scratch);
    free(scratch.p);
    if (rc)
        return rc == -ENOMEM ? FAIL(L, rc, "%s: out of memory", L->name) : rc;
    if ((rc = get_bool(L, &model, "ignore_merges", "model", 0, &t->ignore_merges)) ||
        (rc = get_bool(L, &model, "fuse_unk", "model", 0, &t->fuse_unk)))
        return rc;
    t->unk = -1;
    if (find(&model, "unk_token", &it)) {
        if (!BSON_ITER_HOLDS_UTF8(&it) ||
            (t->unk = tok_smap_get(&t->str2id, bson_iter_utf8(&it, NULL),
                                   strlen(bson_iter_utf8(&it, NULL)))) < 0)
            return FAIL(L, -EINVAL, "%s: model.unk_token: not a token of the vocabulary", L->name);
    }
    if ((rc = load_normalizer(L, t, root)) || (rc = load_pre_tokenizer(L, t, root)))
        return rc;
    if (find(root, "post_processor", &it)) {
        if (!sub_doc(&it, &doc))
            return FAIL(L, -EINVAL, "%s: post_processor: expected an object or null", L->name);
        if ((rc = load_post_processor(L, t, &doc, 0)))
            return rc;
    }
    if (!find(root, "decoder", &it) || !sub_doc(&it, &doc) ||
        strcmp(type_of(&doc), "ByteLevel") != 0)
        return FAIL(L, -ENOTSUP, "%s: decoder: only ByteLevel is supported", L->name);
    for (size_t i = 0; i < t->n_prefix; i++)
        if (t->prefix[i] >= (int32_t)t->n_ids || !t->str[t->prefix[i]])
            return FAIL(L, -EINVAL, "%s: post_processor: id %d names no token", L->name,
                        t->prefix[i]);
    for (size_t i = 0; i < t->n_suffix; i++)
        if (t->suffix[i] >= (int32_t)t->n_ids || !t->str[t->suffix[i]])
            return FAIL(L, -EINVAL, "%s: post_processor: id %d names no token", L->name,
                        t->suffix[i]);
    t->md = pcre2_match_data_create(8, NULL);
    return t->md ? 0 : FAIL(L, -ENOMEM, "%s: out of memory", L->name);
}

int tok_load_json(const char *json, size_t len, const char *name, tok_tokenizer **out, char *err,
                  size_t err_size) {
    tok_bytemap_init();
    *out = NULL;
    loader L = {.name = name ? name : "tokenizer.json", .err = err, .err_size = err_size};
    bson_error_t berr;
    bson_t *root = bson_new_from_json((const uint8_t *)json, (ssize_t)len, &berr);
    if (!root)
        return FAIL(&L, -EINVAL, "%s: not a JSON object: %s", L.name, berr.message);
    tok_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) {
        bson_destroy(root);
        return FAIL(&L, -ENOMEM, "%s: out of memory", L.name);
    }
    int rc = load_root(&L, t, root);
    bson_destroy(root);
    if (rc) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tok_load(const char *path, tok_tokenizer **out, char *err, size_t err_size) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errbuf_set(err, err_size, -errno, "%s: %s", path, strerror(errno));
    tok_buf b = {0};
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (tok_buf_add(&b, chunk, n) != 0) {
            rc = errbuf_set(err, err_size, -ENOMEM, "%s: out of memory", path);
            break;
        }
    if (rc == 0 && ferror(f))
        rc = errbuf_set(err, err_size, -EIO, "%s: read error", path);
    fclose(f);
    if (rc == 0)
        rc = tok_load_json(b.p ? b.p : "", b.n, path, out, err, err_size);
    free(b.p);
    return rc;
}

void tok_free(tok_tokenizer *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n_ids; i++) {
        if (t->str)
            free(t->str[i]);
        if (t->bytes)
            free(t->bytes[i]);
    }
    free(t->str);
    free(t->bytes);
    for (size_t i = 0; i < t->n_retired; i++)
        free(t->retired[i]);
    free(t->retired);
    free(t->bytes_len);
    free(t->special);
    tok_smap_free(&t->str2id);
    tok_smap_free(&t->bytes2id);
    free(t->merges);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    for (size_t i = 0; i < t->n_steps; i++)
        pcre2_code_free(t->steps[i].re);
    free(t->steps);
    free(t->prefix);
    free(t->suffix);
    pcre2_match_data_free(t->md);
    pcre2_code_free(t->word_re);
    free(t->cache);
    free(t->cache_bytes.p);
    free(t->cache_ids);
    free(t);
}
