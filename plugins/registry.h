/* registry.h - step plugins found, loaded and checked.
 *
 * A registry loads plugins from folders (every *.so in them, in name order)
 * or single files, with dlopen(RTLD_NOW | RTLD_LOCAL). Before following any
 * pointer of a plugin's descriptor it checks the ABI version, the size and
 * the build signature; then every step's name, ports and parameter schema.
 * A plugin that fails any check is refused whole, with a diagnostic naming
 * its file and the reason; the others still load. A step name declared
 * twice (by one plugin or two) refuses the later plugin. */
#ifndef SLUICE_PLUGINS_REGISTRY_H
#define SLUICE_PLUGINS_REGISTRY_H

#include <sluice/plugin.h>
#include <stddef.h>

#include "arena.h"
#include "diag.h"
#include "hmap.h"

/* The most ports or parameters a step may declare (the pipeline holds as
 * many: pipeline.h). */
#define REGISTRY_MAX_ENTRIES 256

struct plugin_registry;

/* What the registry needs of the program that hosts the plugins (sluice's
 * orchestrator: exec/host.h), which lies above it and so is given, not
 * called. Static data, valid while any registry using it lives. */
typedef struct registry_host {
    const sl_host *services; /* passed to every plugin's init */
    /* Parses the default text of a parameter of kind (an SL_PARAM_* value)
     * into *out, allocated in a; the registry keeps it as
     * plugin_step.defaults for the host. Returns 0, -EINVAL when the text
     * does not parse (why in err), -EDOM when it parses to something not of
     * that kind, or -ENOMEM. */
    int (*parse_default)(arena *a, const char *text, int kind, void **out, char *err,
                         size_t err_size);
} registry_host;

/* A step as the host runs it: the plugin's sl_step copied into the current
 * layout (registry.c), followed by what a run needs of its plugin. Every
 * plugin_step.step points at the step member of one. */
typedef struct host_step {
    sl_step step;           /* first */
    uint32_t abi_version;   /* the plugin's: codes of ABI <= 1.2 are translated */
    void *const *user_data; /* where the plugin's init_data stored it */
} host_step;

typedef struct plugin_lib {
    char *path;      /* as found, for messages */
    char *real_path; /* absolute, for a child 'sluice exec' in another folder */
    void *handle;    /* dlopen's; NULL while lazy */
    sl_plugin desc;  /* the plugin's descriptor, zero-filled past its size;
                       its arrays are copies in the current layout */
    int inited;      /* init succeeded: teardown is owed */
    void *user_data; /* what the plugin's init_data stored; the plugin's */
    /* Known from the registry cache (registry_cache.h) and not loaded yet:
     * desc is the cached copy, without run, init or teardown, until
     * registry_materialize() loads the file. */
    int lazy;
    struct plugin_registry *owner;
} plugin_lib;

/* One step of a loaded plugin, with its parameter defaults parsed. */
typedef struct plugin_step {
    const sl_step *step; /* the step member of a host_step */
    const plugin_lib *lib;
    /* Per param, what registry_host.parse_default made of its default, NULL
     * where none; in the registry's arena. */
    void **defaults;
    size_t n_inputs, n_outputs, n_params;
} plugin_step;

typedef struct plugin_registry {
    const registry_host *host; /* borrowed; set by PLUGIN_REGISTRY_INIT */
    arena arena;
    struct registry_cache *cache; /* open while folders load */
    plugin_lib **libs;
    size_t n_libs;
    plugin_step *steps;
    size_t n_steps, cap_steps;
    hmap by_name; /* step name -> index in steps */
    hmap by_path; /* real path of a loaded file -> index in libs */
} plugin_registry;

#define PLUGIN_REGISTRY_INIT(host)                                                                 \
    { (host), ARENA_INIT, NULL, NULL, 0, NULL, 0, 0, HMAP_INIT, HMAP_INIT }

/* Loads every *.so in dir. A missing folder is not an error when optional
 * is set (the default search path), and one when not (a pipeline's own
 * 'plugins' folders). Refusals go to d as errors. Returns 0 or -ENOMEM.
 * A plugin the registry cache knows as it is on disk is registered from
 * its cached descriptor without being opened (lazy); the others are
 * loaded, checked, and cached when accepted. */
int registry_load_dir(plugin_registry *r, const char *dir, int optional, diag_list *d);

/* Loads one file. Returns 0 with *lib (NULL when refused, reported in d), or
 * -ENOMEM. Loading the same file twice returns the first load. */
int registry_load_file(plugin_registry *r, const char *path, diag_list *d, const plugin_lib **lib);

/* Checks and registers a descriptor already in memory (what load_file does
 * after dlsym; fuzzing calls it directly). key_path identifies the file;
 * handle (may be NULL) is dlclose'd by registry_free once accepted; on
 * refusal the caller keeps it. desc's data must outlive the registry. */
int registry_add(plugin_registry *r, const char *path, const char *key_path, void *handle,
                 const sl_plugin *desc, diag_list *d, const plugin_lib **lib);

/* Loads the default search path: $SLUICE_PLUGIN_PATH (':'-separated), then
 * the plugins installed beside the sluice binary (exe_dir/plugins in a build
 * tree, exe_dir/../lib/sluice/plugins when installed). exe_dir may be NULL. */
int registry_load_default(plugin_registry *r, const char *exe_dir, diag_list *d);

/* Loads the plugin of a lazy step (a no-op for a loaded one), checks that
 * it still declares what the cache said (the same steps and versions, a
 * run function each), runs its init, and fills in the run function of each
 * of its steps' cached descriptors: ps->step is then the one to run. The
 * descriptors do not move, so a step being keyed on the thread pool may
 * read them meanwhile. Returns 0, or
 * -EINVAL with the reason in err (the step cannot run). Not thread-safe:
 * the scheduler calls it from its loop. */
int registry_materialize(const plugin_step *ps, char *err, size_t err_size);

/* 1 when s is a valid artifact type ([a-z0-9_]+, as a port's), else 0;
 * registry_name_ok: 1 for a valid step name ([a-z0-9_-], at most 64),
 * the rule sluice's other names follow too (an imported artifact's). */
int registry_type_ok(const char *s);
int registry_name_ok(const char *s);

/* The step called name, or NULL. */
const plugin_step *registry_find(const plugin_registry *r, const char *name);

/* A step's parameter and port by name, or NULL. */
const sl_param *plugin_step_param(const plugin_step *s, const char *name, size_t *index);
const sl_port *plugin_step_input(const plugin_step *s, const char *name);
const sl_port *plugin_step_output(const plugin_step *s, const char *name);

/* Runs teardowns, closes every plugin and frees the registry. */
void registry_free(plugin_registry *r);

/* The name of a parameter kind: "string", "integer", ... */
const char *sl_param_kind_name(int kind);

#endif
