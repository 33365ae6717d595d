/* strtab.c - interned strings: open addressing on FNV-1a, load factor at
 * most 1/2, so a lookup touches one or two slots. */
#include "strtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

void strtab_free(strtab *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->len);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

uint32_t strtab_find(const strtab *t, const char *s, size_t len) {
    if (!t->nslots)
        return STRTAB_NONE;
    size_t mask = t->nslots - 1;
    for (size_t i = (size_t)hash(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = t->slots[i];
        if (!v)
            return STRTAB_NONE;
        if (t->len[v - 1] == len && memcmp(t->s[v - 1], s, len) == 0)
            return v - 1;
    }
}

static void place(uint32_t *slots, size_t nslots, const strtab *t, uint32_t id) {
    size_t mask = nslots - 1;
    size_t i = (size_t)hash(t->s[id], t->len[id]) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = id + 1;
}

int strtab_intern(strtab *t, const char *s, size_t len, uint32_t *id) {
    uint32_t found = strtab_find(t, s, len);
    if (found != STRTAB_NONE) {
        *id = found;
        return 0;
    }
    if (t->n >= UINT32_MAX - 1 || len > UINT32_MAX)
        return -ENOMEM;
    if ((t->n + 1) * 2 > t->nslots) { /* load factor at most 1/2 */
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        uint32_t *slots = calloc(ns, sizeof(*slots));
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; i < t->n; i++)
            place(slots, ns, t, (uint32_t)i);
        free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        char **ns = realloc(t->s, nc * sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        t->s = ns;
        uint32_t *nl = realloc(t->len, nc * sizeof(*nl));
        if (!nl)
            return -ENOMEM;
        t->len = nl;
        t->cap = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->s[t->n] = copy;
    t->len[t->n] = (uint32_t)len;
    place(t->slots, t->nslots, t, (uint32_t)t->n);
    *id = (uint32_t)t->n++;
    return 0;
}
