#include "dedupe.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

#define K 128
#define BANDS 32
#define ROWS (K / BANDS)
#define SHINGLE 5

typedef struct entry {
    uint64_t key; /* a band's hash, or an exact text hash */
    uint32_t doc;
    struct entry *next;
} entry;

struct dedupe {
    int near;
    double threshold;
    entry **table; /* chained: band or exact keys -> documents */
    size_t buckets, count;
    uint32_t (*sigs)[K]; /* kept documents' signatures (near) */
    size_t n_docs, cap_docs;
};

static uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t fnv(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A shingle's hash as near-duplicate detection sees words: case and the
 * sentence punctuation clean keeps do not make texts different. */
static uint64_t word_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' || c == ',' || c == '!' || c == '?')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

dedupe *dedupe_new(int near, double threshold) {
    dedupe *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->near = near;
    d->threshold = threshold;
    d->buckets = 4096;
    d->table = calloc(d->buckets, sizeof(*d->table));
    if (!d->table) {
        free(d);
        return NULL;
    }
    return d;
}

void dedupe_free(dedupe *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->buckets; i++)
        for (entry *e = d->table[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(d->table);
    free(d->sigs);
    free(d);
}

/* Doubles the buckets once chains average two entries, so that lookups stay
 * constant-time however many documents a run sees. */
static int table_grow(dedupe *d) {
    size_t buckets = d->buckets * 2;
    entry **table = calloc(buckets, sizeof(*table));
    if (!table)
        return -ENOMEM;
    for (size_t i = 0; i < d->buckets; i++)
        for (entry *e = d->table[i], *next; e; e = next) {
            next = e->next;
            size_t b = (size_t)(e->key % buckets);
            e->next = table[b];
            table[b] = e;
        }
    free(d->table);
    d->table = table;
    d->buckets = buckets;
    return 0;
}

static int table_add(dedupe *d, uint64_t key, uint32_t doc) {
    if (d->count >= d->buckets * 2 && table_grow(d) != 0)
        return -ENOMEM;
    entry *e = malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    size_t b = (size_t)(key % d->buckets);
    *e = (entry){key, doc, d->table[b]};
    d->table[b] = e;
    d->count++;
    return 0;
}

static void add_hash(uint32_t sig[K], uint64_t h) {
    for (int k = 0; k < K; k++) {
        uint32_t v = (uint32_t)mix(h ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1)));
        if (v < sig[k])
            sig[k] = v;
    }
}

/* The MinHash signature of text's 5-word shingles (words split at spaces:
 * the text is cleaned already). A text of fewer words is one shingle. */
static void signature(const char *text, size_t len, uint32_t sig[K]) {
    for (int i = 0; i < K; i++)
        sig[i] = UINT32_MAX;
    size_t begins[SHINGLE], words = 0, i = 0;
    while (i < len) {
        while (i < len && text[i] == ' ')
            i++;
        if (i >= len)
            break;
        begins[words % SHINGLE] = i;
        while (i < len && text[i] != ' ')
            i++;
        words++;
        if (words >= SHINGLE) { /* the shingle from SHINGLE words back to here */
            size_t first = begins[words % SHINGLE];
            add_hash(sig, word_hash(text + first, i - first));
        }
    }
    if (words > 0 && words < SHINGLE)
        add_hash(sig, word_hash(text, len));
}

static double similarity(const uint32_t *a, const uint32_t *b) {
    int same = 0;
    for (int k = 0; k < K; k++)
        same += a[k] == b[k];
    return (double)same / K;
}

double dedupe_similarity(const char *a, size_t alen, const char *b, size_t blen) {
    uint32_t sa[K], sb[K];
    signature(a, alen, sa);
    signature(b, blen, sb);
    return similarity(sa, sb);
}

int dedupe_seen(dedupe *d, const char *text, size_t len) {
    if (!d->near) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) != 1)
            return -ENOMEM;
        uint64_t key;
        memcpy(&key, md, sizeof(key));
        /* 64 bits of SHA-256 as the key, the full text compared would need
         * the texts kept: a 2^-64 collision is accepted. */
        for (entry *e = d->table[key % d->buckets]; e; e = e->next)
            if (e->key == key)
                return 1;
        return table_add(d, key, (uint32_t)d->n_docs++);
    }
    uint32_t sig[K];
    signature(text, len, sig);
    uint64_t bands[BANDS];
    for (int b = 0; b < BANDS; b++) {
        bands[b] = mix(fnv((const char *)(sig + b * ROWS), ROWS * sizeof(uint32_t)) + (uint64_t)b);
        for (entry *e = d->table[bands[b] % d->buckets]; e; e = e->next)
            if (e->key == bands[b] && similarity(sig, d->sigs[e->doc]) >= d->threshold)
                return 1;
    }
    if (d->n_docs == d->cap_docs) {
        size_t cap = d->cap_docs ? d->cap_docs * 2 : 64;
        uint32_t(*grown)[K] = realloc(d->sigs, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        d->sigs = grown;
        d->cap_docs = cap;
    }
    memcpy(d->sigs[d->n_docs], sig, sizeof(sig));
    for (int b = 0; b < BANDS; b++)
        if (table_add(d, bands[b], (uint32_t)d->n_docs) != 0)
            return -ENOMEM;
    d->n_docs++;
    return 0;
}
