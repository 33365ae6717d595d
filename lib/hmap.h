/* hmap.h - an open-addressing hash map from borrowed strings to 32-bit values.
 *
 * Keys are not copied: each must stay valid, unchanged, for the map's life
 * (in sluice they live in the pipeline's arena). Used wherever a name is
 * looked up among thousands: step ids, YAML anchors, mapping keys. */
#ifndef SLUICE_CORE_HMAP_H
#define SLUICE_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hmap_slot hmap_slot;

typedef struct hmap {
    hmap_slot *slots; /* owned */
    size_t cap, n;
} hmap;

#define HMAP_INIT                                                                                  \
    { NULL, 0, 0 }

/* Inserts key -> value. Returns 0 if inserted, 1 if the key was present (its
 * value is left unchanged and stored in *existing when that is not NULL),
 * -ENOMEM on allocation failure. */
int hmap_put(hmap *m, const char *key, size_t len, uint32_t value, uint32_t *existing);

/* Replaces or inserts; 0 or -ENOMEM. */
int hmap_set(hmap *m, const char *key, size_t len, uint32_t value);

/* 1 and *value when found, else 0. */
int hmap_get(const hmap *m, const char *key, size_t len, uint32_t *value);

void hmap_free(hmap *m);

#endif
