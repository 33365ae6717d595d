#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct hmap_slot {
    const char *key; /* NULL marks an empty slot */
    size_t len;
    uint32_t hash;
    uint32_t value;
};

/* FNV-1a: short keys, no adversary able to choose collisions cheaply enough
 * to matter against the file-size limit the loader enforces. */
static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static hmap_slot *find_slot(hmap_slot *slots, size_t cap, const char *key, size_t len,
                            uint32_t hash) {
    size_t mask = cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        hmap_slot *s = &slots[i];
        if (!s->key || (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static int grow(hmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    hmap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        hmap_slot *old = &m->slots[i];
        if (old->key)
            *find_slot(slots, cap, old->key, old->len, old->hash) = *old;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static int insert(hmap *m, const char *key, size_t len, uint32_t value, int replace,
                  uint32_t *existing) {
    if ((m->n + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    uint32_t h = hash_bytes(key, len);
    hmap_slot *s = find_slot(m->slots, m->cap, key, len, h);
    if (s->key) {
        if (existing)
            *existing = s->value;
        if (replace)
            s->value = value;
        return 1;
    }
    s->key = key;
    s->len = len;
    s->hash = h;
    s->value = value;
    m->n++;
    return 0;
}

int hmap_put(hmap *m, const char *key, size_t len, uint32_t value, uint32_t *existing) {
    return insert(m, key, len, value, 0, existing);
}

int hmap_set(hmap *m, const char *key, size_t len, uint32_t value) {
    int rc = insert(m, key, len, value, 1, NULL);
    return rc < 0 ? rc : 0;
}

int hmap_get(const hmap *m, const char *key, size_t len, uint32_t *value) {
    if (!m->cap)
        return 0;
    hmap_slot *s = find_slot(m->slots, m->cap, key, len, hash_bytes(key, len));
    if (!s->key)
        return 0;
    *value = s->value;
    return 1;
}

void hmap_free(hmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
