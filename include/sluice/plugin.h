/* sluice/plugin.h - the one header a sluice step plugin includes.
 *
 * A plugin is a shared object exporting one function, sluice_plugin_v1(),
 * that returns a static descriptor: the ABI version and the descriptor's own
 * size first, then the steps it provides. Each step declares its typed input
 * and output ports and its parameter schema as static data, so that sluice
 * lists plugins and checks pipelines against them without running any step.
 *
 * A step's run() receives an sl_ctx. Everything a step asks of sluice (its
 * parameters, input and output paths, logging, progress, metrics, whether it
 * should stop, how it failed) goes through the host-services table reachable
 * from the context, wrapped below as sl_param_str(), sl_log() and so on. The
 * table only ever grows at its end: SL_HOST_HAS() tells whether the running
 * sluice is new enough to offer a service. Nothing here requires the plugin
 * to link against sluice.
 *
 * Ownership: strings sluice returns are borrowed for the duration of run().
 * Strings a plugin hands over (messages) are copied. Memory never changes
 * owner across the boundary.
 *
 * Versions: SL_ABI_MAJOR changes only if a released layout changes (never, we
 * hope); SL_ABI_MINOR grows when fields or services are appended. sluice
 * refuses a plugin of another major or a newer minor; an older minor works.
 * docs/plugins.md records what each version added.
 *
 * Layout: every struct a plugin hands to sluice says how big it was when
 * the plugin was built. The descriptor carries its own size and (since 1.3)
 * the element sizes of the step, port and parameter arrays, written by
 * SL_PLUGIN_DEFINE; sluice walks each array by that stride and copies every
 * element into its own, zero-filled, current-size struct. A field appended to
 * any of them in a later minor therefore reads as zero from an older plugin.
 * Plugins built for 1.0 to 1.2 carry no element sizes: sluice uses the sizes
 * those versions had.
 *
 * Threads (what sluice does today, and what a plugin may rely on):
 *   - init and teardown run on the thread that loads or unloads the plugin,
 *     never concurrently with each other or with a run of the plugin. A
 *     plugin the registry cache knows is loaded only when one of its steps
 *     first runs, so init may come long after sluice started.
 *   - run is called on libuv's thread pool, not the main thread, and
 *     concurrently: different steps of one plugin (and several steps using
 *     the same plugin step) may be running at once, on different threads,
 *     with one sl_ctx each; one step runs one attempt at a time. Whatever init set up and run shares
 *     (the user data) must be safe to use from several threads at once.
 *   - A step with 'isolation: process' runs in a child 'sluice exec' that
 *     loads the plugin, runs its init, one run, and its teardown: user data
 *     is per process, never shared between the parent and a child.
 *   - Every host service may be called from run's thread or from any thread
 *     run starts, until run returns; none may be called after.
 *
 * Cancellation and abandonment: on a timeout or an interrupt sl_cancelled()
 * turns non-zero; run should then return SL_ECANCELLED soon. In process,
 * a run that has not returned about a second later is abandoned: its step
 * is reported as failed, its thread is left running, and sluice exits when
 * the rest of the run ends without waiting for it, without calling teardown
 * and without unloading the plugin (in a child, SIGTERM then SIGKILL). A
 * plugin must therefore keep no state on disk that a killed run leaves
 * inconsistent, and check sl_cancelled() in every long loop. */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ABI_MAJOR 1
#define SL_ABI_MINOR 3
#define SL_ABI_VERSION ((uint32_t)((SL_ABI_MAJOR << 16) | SL_ABI_MINOR))

/* A build fingerprint: a plugin built for another word size or ABI is
 * refused before any of its pointers are followed. */
#define SL_STRINGIFY_(x) #x
#define SL_STRINGIFY(x) SL_STRINGIFY_(x)
/* clang-format off */
#define SL_BUILD_SIGNATURE                                                                         \
    "sluice-abi-" SL_STRINGIFY(SL_ABI_MAJOR) "/ptr" SL_STRINGIFY(__SIZEOF_POINTER__)               \
        "/long" SL_STRINGIFY(__SIZEOF_LONG__)
/* clang-format on */

#if defined(_WIN32)
#define SL_EXPORT __declspec(dllexport)
#else
#define SL_EXPORT __attribute__((visibility("default")))
#endif

/* Status codes: 0 is success; errors are negative. The SL_E* codes live in
 * a range of their own, [SL_ERANGE_END, SL_ERANGE_BEGIN], apart from negated
 * errno values (-1 to -4095), libuv's and LMDB's: run may return either an
 * SL_E* code or a negated errno (-ENOENT), and sl_strerror() names both.
 * ABI 1.3 moved the SL_E* codes here from -1..-5, where SL_EINVAL was
 * -ESRCH; the names are unchanged, and sluice reads -1..-5 returned by a
 * plugin built for 1.2 or older as the codes they were. Codes are appended,
 * never renumbered again. */
#define SL_ERANGE_BEGIN (-20001)
#define SL_ERANGE_END (-20999)
enum {
    SL_OK = 0,
    SL_EFAIL = -20001,      /* the step failed; sl_fail() said why */
    SL_ECANCELLED = -20002, /* the step stopped because sl_cancelled() said so */
    SL_EINVAL = -20003,     /* a bad argument: unknown parameter, port, ... */
    SL_ENOMEM = -20004,
    SL_EIO = -20005,
};

/* The message for a status: an SL_E* code or a negated errno. Static text,
 * never NULL; usable without sluice (it is in this header). */
static inline const char *sl_strerror(int code) {
    switch (code) {
    case SL_OK:
        return "success";
    case SL_EFAIL:
        return "the step failed";
    case SL_ECANCELLED:
        return "cancelled";
    case SL_EINVAL:
        return "invalid argument";
    case SL_ENOMEM:
        return "out of memory";
    case SL_EIO:
        return "input/output error";
    default:
        if (code < 0 && code > -4096)
            return strerror(-code);
        return "unknown error code";
    }
}

/* Log levels for sl_log(). */
enum { SL_LOG_DEBUG = 0, SL_LOG_INFO = 1, SL_LOG_WARN = 2, SL_LOG_ERROR = 3 };

/* Parameter kinds. */
typedef enum {
    SL_PARAM_STRING = 1,
    SL_PARAM_INT = 2,   /* 64-bit signed */
    SL_PARAM_FLOAT = 3, /* double; an integer is accepted */
    SL_PARAM_BOOL = 4,
    SL_PARAM_LIST = 5, /* a list of scalars, read as strings */
    SL_PARAM_JSON = 6, /* any value (mapping, nested list), read as JSON text */
    /* ABI 1.2: a file or folder the step reads (a model, a tokenizer), read
     * as a string. sluice makes a relative path absolute against the
     * pipeline file's folder, refuses one naming a FIFO or a device, and
     * hashes what it names (a file's bytes, a folder's tree) into the step's
     * cache key, so that rewriting the file re-runs the step. Empty or null:
     * no path. */
    SL_PARAM_PATH = 7,
} sl_param_kind;

/* A typed port. type is "documents", "chunks", "embeddings", "dataset",
 * "model", "metrics", "report", "any", or a plugin's own [a-z0-9_]+ name; an
 * output feeds an input when the types are equal or either is "any". */
typedef struct sl_port {
    const char *name; /* [A-Za-z_][A-Za-z0-9_]*; NULL ends the array */
    const char *type;
    const char *doc;
    int optional; /* an input that may be left unconnected, an output that may
                     not be written */
} sl_port;

typedef struct sl_param {
    const char *name; /* as for ports; NULL ends the array */
    sl_param_kind kind;
    const char *default_value; /* YAML flow syntax ("500", "[a, b]"), or NULL */
    const char *doc;
    int required; /* the pipeline must give it; default_value is then unused */
} sl_param;

typedef struct sl_ctx sl_ctx;

typedef struct sl_step {
    const char *name;    /* what pipelines write after 'uses:' */
    const char *version; /* joins the cache key: bump it when outputs change */
    const char *summary;
    const sl_port *inputs;   /* NULL-name terminated; NULL for none */
    const sl_port *outputs;  /* likewise */
    const sl_param *params;  /* likewise */
    int (*run)(sl_ctx *ctx); /* SL_OK, a negative SL_E* code, or -errno */
    /* Fields appended in a later minor read as zero from this plugin (the
     * descriptor's step_size). No reserved space: a plugin that initializes
     * by position would then warn (-Wmissing-field-initializers) at every
     * appended field. */
} sl_step;

typedef struct sl_host sl_host;

typedef struct sl_plugin {
    uint32_t abi_version;  /* SL_ABI_VERSION */
    uint32_t size;         /* sizeof(sl_plugin) as the plugin was built */
    const char *signature; /* SL_BUILD_SIGNATURE */
    const char *name;
    const char *version;
    const sl_step *steps;
    size_t n_steps;
    /* Optional: called once after loading, before any step runs; a non-zero
     * return (with a message in err) refuses the plugin. teardown runs at
     * unload, and only if init succeeded. A plugin sluice has listed before
     * is loaded only when one of its steps first runs (the registry cache,
     * docs/plugins.md): a failing init then fails that step. Since 1.3 a
     * plugin may give init_data and teardown_data instead (not both pairs). */
    int (*init)(const sl_host *host, char *err, size_t err_size);
    void (*teardown)(void);
    /* ABI 1.3. The size of one element of steps, of every inputs and outputs
     * array, and of every params array, as the plugin was built: sluice
     * walks the arrays by these strides. */
    uint32_t step_size;
    uint32_t port_size;
    uint32_t param_size;
    uint32_t reserved0; /* zero */
    /* ABI 1.3: init with user data. What it stores in *user_data (a state
     * the plugin allocated, say) is what sl_user_data() returns in every
     * run of the plugin's steps and what teardown_data receives; sluice
     * never reads or frees it. Same rules as init/teardown otherwise. */
    int (*init_data)(const sl_host *host, void **user_data, char *err, size_t err_size);
    void (*teardown_data)(void *user_data);
} sl_plugin;

/* The one symbol every plugin exports. */
typedef const sl_plugin *(*sl_plugin_entry)(void);
#define SL_PLUGIN_ENTRY_NAME "sluice_plugin_v1"

/* Writes the entry point: SL_PLUGIN_DEFINE("name", "1.0", steps, init, teardown)
 * where steps is a static array of sl_step, init and teardown functions or
 * NULL. SL_PLUGIN_DEFINE_DATA takes init_data and teardown_data instead. */
#define SL_PLUGIN_DEFINE_(plugin_name, plugin_version, step_array, i, t, id, td)                   \
    SL_EXPORT const sl_plugin *sluice_plugin_v1(void);                                             \
    SL_EXPORT const sl_plugin *sluice_plugin_v1(void) {                                            \
        static const sl_plugin plugin = {SL_ABI_VERSION,                                           \
                                         (uint32_t)sizeof(sl_plugin),                              \
                                         SL_BUILD_SIGNATURE,                                       \
                                         plugin_name,                                              \
                                         plugin_version,                                           \
                                         step_array,                                               \
                                         sizeof(step_array) / sizeof((step_array)[0]),             \
                                         i,                                                        \
                                         t,                                                        \
                                         (uint32_t)sizeof(sl_step),                                \
                                         (uint32_t)sizeof(sl_port),                                \
                                         (uint32_t)sizeof(sl_param),                               \
                                         0,                                                        \
                                         id,                                                       \
                                         td};                                                      \
        return &plugin;                                                                            \
    }
#define SL_PLUGIN_DEFINE(plugin_name, plugin_version, step_array, init_fn, teardown_fn)            \
    SL_PLUGIN_DEFINE_(plugin_name, plugin_version, step_array, init_fn, teardown_fn, NULL, NULL)
#define SL_PLUGIN_DEFINE_DATA(plugin_name, plugin_version, step_array, init_fn, teardown_fn)       \
    SL_PLUGIN_DEFINE_(plugin_name, plugin_version, step_array, NULL, NULL, init_fn, teardown_fn)

/* Host services. Append only: new members go at the end, and a plugin tests
 * SL_HOST_HAS(host, member) before using one newer than the minor it was
 * built for (store_dir came in 1.1). */
struct sl_host {
    uint32_t size; /* sizeof(sl_host) in the running sluice */
    uint32_t abi_version;
    /* Parameters, as resolved: the pipeline's value or the declared default
     * (zero, NULL or an empty list when neither). A name the step does not
     * declare logs an error in the step's log and reads as 0, 0.0, false,
     * NULL or an empty list. A value of another kind is converted where it
     * reads losslessly as the asked kind, which validation guarantees for the
     * declared kind: param_int takes an integer, a float (truncated), a bool
     * (0/1) or decimal text (strtoll, 0 if none); param_f64 an integer, a
     * float or text (strtod); param_bool a bool or an integer (non-zero),
     * anything else false; param_str any scalar as its text, NULL for null
     * (read a list or mapping with param_list_* or param_json);
     * param_list_* a list, a single scalar as a one-item list, null as empty,
     * NULL past the end; param_json any value. Strings are valid until run
     * returns. */
    const char *(*param_str)(sl_ctx *ctx, const char *name); /* NULL if null */
    int64_t (*param_int)(sl_ctx *ctx, const char *name);
    double (*param_f64)(sl_ctx *ctx, const char *name);
    int (*param_bool)(sl_ctx *ctx, const char *name);
    size_t (*param_list_len)(sl_ctx *ctx, const char *name);
    const char *(*param_list_item)(sl_ctx *ctx, const char *name, size_t i);
    const char *(*param_json)(sl_ctx *ctx, const char *name); /* any kind, as JSON */
    /* Ports: an input's path (NULL if an optional input is unconnected), and
     * the path where an output is to be written, file or folder. */
    const char *(*input_path)(sl_ctx *ctx, const char *port);
    const char *(*output_path)(sl_ctx *ctx, const char *port);
    const char *(*work_dir)(sl_ctx *ctx); /* scratch space for this attempt */
    void (*vlog)(sl_ctx *ctx, int level, const char *fmt, va_list ap);
    void (*progress)(sl_ctx *ctx, uint64_t done, uint64_t total);
    void (*metric)(sl_ctx *ctx, const char *key, double value, int64_t step);
    int (*cancelled)(sl_ctx *ctx); /* nonzero: stop soon, return SL_ECANCELLED */
    int (*vfail)(sl_ctx *ctx, const char *fmt, va_list ap); /* returns SL_EFAIL */
    /* ABI 1.1: the store the run keeps its artifacts and warehouse in. */
    const char *(*store_dir)(sl_ctx *ctx);
    /* ABI 1.3: what init_data stored; NULL for a plugin without it. */
    void *(*user_data)(sl_ctx *ctx);
};

/* Every context begins with the host table; the rest is sluice's. */
struct sl_ctx {
    const sl_host *host;
};

#define SL_HOST_HAS(host, member)                                                                  \
    ((host)->size >= offsetof(sl_host, member) + sizeof((host)->member) && (host)->member != NULL)

/* Convenience wrappers. */
static inline const char *sl_param_str(sl_ctx *c, const char *n) {
    return c->host->param_str(c, n);
}
static inline int64_t sl_param_int(sl_ctx *c, const char *n) { return c->host->param_int(c, n); }
static inline double sl_param_f64(sl_ctx *c, const char *n) { return c->host->param_f64(c, n); }
static inline int sl_param_bool(sl_ctx *c, const char *n) { return c->host->param_bool(c, n); }
static inline size_t sl_param_list_len(sl_ctx *c, const char *n) {
    return c->host->param_list_len(c, n);
}
static inline const char *sl_param_list_item(sl_ctx *c, const char *n, size_t i) {
    return c->host->param_list_item(c, n, i);
}
static inline const char *sl_param_json(sl_ctx *c, const char *n) {
    return c->host->param_json(c, n);
}
static inline const char *sl_input_path(sl_ctx *c, const char *port) {
    return c->host->input_path(c, port);
}
static inline const char *sl_output_path(sl_ctx *c, const char *port) {
    return c->host->output_path(c, port);
}
static inline const char *sl_work_dir(sl_ctx *c) { return c->host->work_dir(c); }
/* NULL from a sluice older than ABI 1.1. */
static inline const char *sl_store_dir(sl_ctx *c) {
    return SL_HOST_HAS(c->host, store_dir) ? c->host->store_dir(c) : NULL;
}
/* What the plugin's init_data stored; NULL from a sluice older than 1.3. */
static inline void *sl_user_data(sl_ctx *c) {
    return SL_HOST_HAS(c->host, user_data) ? c->host->user_data(c) : NULL;
}
static inline FILE *sl_input_open(sl_ctx *c, const char *port) {
    const char *p = sl_input_path(c, port);
    return p ? fopen(p, "rb") : NULL;
}
static inline FILE *sl_output_create(sl_ctx *c, const char *port) {
    const char *p = sl_output_path(c, port);
    return p ? fopen(p, "wb") : NULL;
}
static inline void sl_progress(sl_ctx *c, uint64_t done, uint64_t total) {
    c->host->progress(c, done, total);
}
static inline void sl_metric(sl_ctx *c, const char *key, double v, int64_t index) {
    c->host->metric(c, key, v, index);
}
static inline int sl_cancelled(sl_ctx *c) { return c->host->cancelled(c); }

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void
sl_log(sl_ctx *c, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    c->host->vlog(c, level, fmt, ap);
    va_end(ap);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline int
sl_fail(sl_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = c->host->vfail(c, fmt, ap);
    va_end(ap);
    return rc;
}

#ifdef __cplusplus
}
#endif

#endif
