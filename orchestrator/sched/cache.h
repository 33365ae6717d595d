/* cache.h - the cache key of a step: what must be equal for a previous
 * result to stand in for running it again.
 *
 * key = SHA-256 over: the step's name ('uses'), its plugin's version and the
 * hash of the plugin's shared object, the parameters as resolved (secrets
 * included, so a new secret re-runs the step; only the hash is kept), the
 * hashes of its input artifacts, and the values of the environment
 * variables and hashes of the files it names in 'cache_on'. The parts are
 * also kept (hashed) with the step run, so that a later run can say which
 * one changed. */
#ifndef SLUICE_SCHED_CACHE_H
#define SLUICE_SCHED_CACHE_H

#include <bson/bson.h>

#include "artifacts/hash.h"
#include "pipeline/pipeline.h"

typedef struct cache_input {
    const char *port;
    const char *hash; /* NULL when the input is unconnected */
} cache_input;

/* Computes the key of step s into key, and its parts into parts (an
 * initialised document). plugin_hash is the hash of the plugin's .so (NULL
 * for shell). Returns 0 or -errno. */
int cache_key(const pipeline *p, const step *s, const char *plugin_hash,
              const cache_input *inputs, size_t n_inputs, char key[HASH_HEX_LEN + 1],
              bson_t *parts);

#endif
