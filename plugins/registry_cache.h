/* registry_cache.h - the descriptors of plugins already loaded and checked,
 * kept in a file so that listing steps and binding a pipeline need not load
 * any plugin: a plugin is opened only when one of its steps runs
 * (GStreamer's registry cache). Loading every plugin of the search path
 * costs each sluice command milliseconds per plugin (their libraries:
 * libcurl, libgit2, OpenBLAS, ...), which this saves.
 *
 * The file is JSON, at $SLUICE_PLUGIN_CACHE, else
 * $XDG_CACHE_HOME/sluice/plugins.json, else ~/.cache/sluice/plugins.json;
 * SLUICE_PLUGIN_CACHE=off turns the cache off. An entry is trusted only
 * while its plugin file has the same size, modification time, inode and
 * device, and the whole file only while the sluice that wrote it is the
 * running one (the size and modification time of its executable): a
 * rebuilt plugin or sluice is loaded and checked again. Only plugins that
 * were accepted are cached. The file is replaced atomically (a temporary
 * file renamed), so concurrent sluice processes at worst redo a check; a
 * file that cannot be read or written is no cache, never an error. */
#ifndef SLUICE_PLUGINS_REGISTRY_CACHE_H
#define SLUICE_PLUGINS_REGISTRY_CACHE_H

#include <sluice/plugin.h>
#include <sys/stat.h>

#include "arena.h"

typedef struct registry_cache registry_cache;

/* Reads the cache file (absent, unreadable or stale: an empty cache).
 * Returns NULL when the cache is off or memory runs out. */
registry_cache *registry_cache_open(void);

/* When the cache holds the plugin at real_path as it is now (st, from
 * stat), a copy of its descriptor in a (strings, steps, ports and
 * parameters; run, init and teardown NULL) into *desc, and 1; else 0
 * (-ENOMEM when a runs out). */
int registry_cache_get(registry_cache *c, const char *real_path, const struct stat *st, arena *a,
                       sl_plugin *desc);

/* Records an accepted plugin's descriptor. 0 or -ENOMEM. */
int registry_cache_put(registry_cache *c, const char *real_path, const struct stat *st,
                       const sl_plugin *desc);

/* Writes the file back when something was put; failures are ignored (the
 * cache only saves time). Then frees c. c may be NULL. */
void registry_cache_close(registry_cache *c);

#endif
