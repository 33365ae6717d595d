/* cache.h - the cache key of a step: what must be equal for a previous
 * result to stand in for running it again.
 *
 * key = SHA-256 over: the step's name ('uses'), its plugin's version and the
 * hash of the plugin's shared object, the parameters as resolved (secrets
 * included, so a new secret re-runs the step; only the hash is kept), the
 * hashes of its input artifacts, and the values of the environment
 * variables and hashes of the files it names in 'cache_on'. The parts are
 * also kept (hashed) with the step run, so that a later run can say which
 * one changed.
 *
 * Where a secret takes part (a parameter made from ${secret.X}, a cache_on
 * variable holding one), a plain hash of a short secret could be found again
 * by trying guesses, so the key and its parts are HMAC-SHA-256 under the
 * store's own random secret (STORE/cache.key, 32 bytes, mode 0600, made by
 * the first run that needs it): only who can read that file can test a
 * guess. */
#ifndef SLUICE_SCHED_CACHE_H
#define SLUICE_SCHED_CACHE_H

#include <bson/bson.h>

#include "hash.h"
#include "pipeline.h"

typedef struct cache_input {
    const char *port;
    const char *hash; /* NULL when the input is unconnected */
} cache_input;

#define CACHE_SECRET_BYTES 32

/* Whether a secret takes part in step s's key (then it needs the store's). */
int cache_key_needs_secret(const pipeline *p, const step *s);

/* Reads the store's cache secret into secret; with create, makes it first
 * when the store has none. Returns 0, -ENOENT (none, and not create), or
 * another negative errno. */
int cache_store_secret(const char *store_root, int create,
                       unsigned char secret[CACHE_SECRET_BYTES]);

/* Computes the key of step s into key, and its parts into parts (an
 * initialised document). plugin_hash is the hash of the plugin's .so (NULL
 * for shell). secret is the store's cache secret when
 * cache_key_needs_secret(), else NULL. Returns 0 or -errno. */
int cache_key(const pipeline *p, const step *s, const char *plugin_hash, const cache_input *inputs,
              size_t n_inputs, const unsigned char *secret, char key[HASH_HEX_LEN + 1],
              bson_t *parts);

#endif
