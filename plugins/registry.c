#include "registry.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"
#include "registry_cache.h"

const char *sl_param_kind_name(int kind) {
    switch (kind) {
    case SL_PARAM_STRING:
        return "string";
    case SL_PARAM_INT:
        return "integer";
    case SL_PARAM_FLOAT:
        return "number";
    case SL_PARAM_BOOL:
        return "boolean";
    case SL_PARAM_LIST:
        return "list";
    case SL_PARAM_JSON:
        return "json";
    case SL_PARAM_PATH:
        return "path";
    default:
        return "unknown";
    }
}

static int ident_ok(const char *s) {
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return 0;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return n <= 64;
}

int registry_type_ok(const char *s) {
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Step names follow step ids, so that 'uses: x' reads like the rest. */
int registry_name_ok(const char *s) {
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* Counts a NULL-name-terminated array, refusing a runaway one. */
#define MAX_ENTRIES REGISTRY_MAX_ENTRIES
#define COUNT_ENTRIES(arr, n)                                                                      \
    do {                                                                                           \
        n = 0;                                                                                     \
        if (arr)                                                                                   \
            while (n <= MAX_ENTRIES && (arr)[n].name)                                              \
                n++;                                                                               \
    } while (0)

typedef struct refusal {
    buf why;
    diag_level level; /* a shadowed step is a warning: the first in the path wins */
} refusal;

static int refuse(refusal *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(refusal *f, const char *fmt, ...) {
    if (f->why.len)
        return -EINVAL; /* the first reason is the one to fix first */
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    buf_puts(&f->why, tmp);
    return -EINVAL;
}

/* ---- layouts -------------------------------------------------------------
 * A plugin's arrays are walked by the element sizes it was built with and
 * copied into zero-filled current-size structs (include/sluice/plugin.h,
 * "Layout"); nothing else in sluice indexes a plugin's own arrays. Before
 * ABI 1.3 the descriptor carried no sizes: those versions' are known. */
#define STEP_SIZE_1_2 sizeof(sl_step)
#define PORT_SIZE_1_2 sizeof(sl_port)
#define PARAM_SIZE_1_2 sizeof(sl_param)
#define HAS_FIELD(d, field) ((d)->size >= offsetof(sl_plugin, field) + sizeof((d)->field))

typedef struct layout {
    size_t step, port, param;
} layout;

static int stride_ok(refusal *f, const char *type, uint32_t size, size_t least) {
    if (size >= least && size % sizeof(void *) == 0 && size <= 65536)
        return 1;
    refuse(f,
           "its descriptor gives %s as %u bytes; ABI %d needs a multiple of %zu from %zu "
           "(is it built with SL_PLUGIN_DEFINE?)",
           type, size, SL_ABI_MAJOR, sizeof(void *), least);
    return 0;
}

/* The element sizes of d's arrays, or 0 with a refusal. A descriptor from
 * the registry cache (native) was written by this sluice. */
static int layout_of(refusal *f, const sl_plugin *d, int native, layout *l) {
    if (native) {
        *l = (layout){sizeof(sl_step), sizeof(sl_port), sizeof(sl_param)};
        return 1;
    }
    if (!HAS_FIELD(d, param_size)) {
        *l = (layout){STEP_SIZE_1_2, PORT_SIZE_1_2, PARAM_SIZE_1_2};
        return 1;
    }
    *l = (layout){d->step_size, d->port_size, d->param_size};
    return stride_ok(f, "sizeof(sl_step)", d->step_size, STEP_SIZE_1_2) &&
           stride_ok(f, "sizeof(sl_port)", d->port_size, PORT_SIZE_1_2) &&
           stride_ok(f, "sizeof(sl_param)", d->param_size, PARAM_SIZE_1_2);
}

/* Copies a NULL-name-terminated array of stride-sized elements into a
 * terminated array of elem-sized ones, at most MAX_ENTRIES + 1 of them (so
 * that the checks still see a runaway one as too long). NULL for NULL. */
static void *copy_array(arena *a, const void *src, size_t stride, size_t elem, int *oom) {
    if (!src)
        return NULL;
    const char *p = src;
    size_t n = 0;
    while (n <= MAX_ENTRIES && *(const char *const *)(const void *)(p + n * stride))
        n++;
    char *out = arena_calloc(a, n + 1, elem);
    if (!out) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * elem, p + i * stride, stride < elem ? stride : elem);
    return out;
}

/* Replaces d->steps (the plugin's) by copies in the current layout. Returns
 * 0, -EINVAL refused in f, or -ENOMEM. A descriptor the checks will refuse
 * anyway (no steps, too many) is left alone. */
static int copy_steps(arena *a, refusal *f, sl_plugin *d, int native) {
    layout l;
    if (!layout_of(f, d, native, &l))
        return -EINVAL;
    if (!d->steps || d->n_steps == 0 || d->n_steps > MAX_ENTRIES)
        return 0;
    sl_step *steps = arena_calloc(a, d->n_steps, sizeof(*steps));
    if (!steps)
        return -ENOMEM;
    int oom = 0;
    const char *src = (const char *)d->steps;
    for (size_t i = 0; i < d->n_steps; i++) {
        memcpy(&steps[i], src + i * l.step, l.step < sizeof(sl_step) ? l.step : sizeof(sl_step));
        steps[i].inputs = copy_array(a, steps[i].inputs, l.port, sizeof(sl_port), &oom);
        steps[i].outputs = copy_array(a, steps[i].outputs, l.port, sizeof(sl_port), &oom);
        steps[i].params = copy_array(a, steps[i].params, l.param, sizeof(sl_param), &oom);
    }
    d->steps = steps;
    return oom ? -ENOMEM : 0;
}

/* The steps as the host runs them: lib's, with its ABI and
 * where its user data is. NULL when out of memory. */
static host_step *bind_steps(arena *a, plugin_lib *lib) {
    host_step *hs = arena_calloc(a, lib->desc.n_steps, sizeof(*hs));
    for (size_t i = 0; hs && i < lib->desc.n_steps; i++)
        hs[i] = (host_step){lib->desc.steps[i], lib->desc.abi_version, &lib->user_data};
    return hs;
}

/* Runs the plugin's init or init_data. Returns 0, or -EINVAL with why. */
static int lib_init(const registry_host *host, plugin_lib *lib, char *why, size_t why_size) {
    int rc = 0;
    if (lib->desc.init_data)
        rc = lib->desc.init_data(host->services, &lib->user_data, why, why_size);
    else if (lib->desc.init)
        rc = lib->desc.init(host->services, why, why_size);
    else
        return 0;
    if (rc != 0) {
        lib->user_data = NULL; /* whatever a failing init left there is not ours to pass on */
        return -EINVAL;
    }
    lib->inited = 1;
    return 0;
}

static void lib_teardown(plugin_lib *lib) {
    if (!lib->inited)
        return;
    lib->inited = 0;
    if (lib->desc.teardown_data)
        lib->desc.teardown_data(lib->user_data);
    else if (lib->desc.teardown)
        lib->desc.teardown();
    lib->user_data = NULL;
}

static int check_ports(refusal *f, const sl_step *st, const sl_port *ports, const char *what,
                       size_t *count) {
    size_t n;
    COUNT_ENTRIES(ports, n);
    if (n > MAX_ENTRIES)
        return refuse(f, "step '%s' declares more than %d %s (is its array terminated?)", st->name,
                      MAX_ENTRIES, what);
    for (size_t i = 0; i < n; i++) {
        if (!ident_ok(ports[i].name))
            return refuse(f, "step '%s' has an %s named '%s': use letters, digits and '_'",
                          st->name, what, ports[i].name);
        if (!registry_type_ok(ports[i].type))
            return refuse(f, "step '%s': %s '%s' has no valid type (use [a-z0-9_]+, or \"any\")",
                          st->name, what, ports[i].name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ports[i].name, ports[j].name) == 0)
                return refuse(f, "step '%s' declares %s '%s' twice", st->name, what, ports[i].name);
    }
    *count = n;
    return 0;
}

static int check_params(plugin_registry *r, refusal *f, const sl_step *st, plugin_step *ps) {
    size_t n;
    COUNT_ENTRIES(st->params, n);
    if (n > MAX_ENTRIES)
        return refuse(f, "step '%s' declares more than %d parameters (is its array terminated?)",
                      st->name, MAX_ENTRIES);
    ps->defaults = arena_calloc(&r->arena, n + 1, sizeof(void *));
    if (!ps->defaults)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const sl_param *p = &st->params[i];
        if (!ident_ok(p->name))
            return refuse(f, "step '%s' has a parameter named '%s': use letters, digits and '_'",
                          st->name, p->name);
        if (p->kind < SL_PARAM_STRING || p->kind > SL_PARAM_PATH)
            return refuse(f, "step '%s': parameter '%s' has unknown kind %d", st->name, p->name,
                          (int)p->kind);
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->name, st->params[j].name) == 0)
                return refuse(f, "step '%s' declares parameter '%s' twice", st->name, p->name);
        if (!p->default_value)
            continue;
        char err[256] = "";
        void *v;
        int rc = r->host->parse_default(&r->arena, p->default_value, p->kind, &v, err, sizeof(err));
        if (rc == -ENOMEM)
            return rc;
        if (rc == -EINVAL)
            return refuse(f, "step '%s': the default of parameter '%s' is not YAML: %s", st->name,
                          p->name, err);
        if (rc)
            return refuse(f, "step '%s': the default '%s' of parameter '%s' is not of kind %s",
                          st->name, p->default_value, p->name, sl_param_kind_name(p->kind));
        ps->defaults[i] = v;
    }
    ps->n_params = n;
    return 0;
}

/* Checks the descriptor and every step; fills steps[0..n) on success. */
static int check_plugin(plugin_registry *r, refusal *f, const sl_plugin *d, int lazy,
                        plugin_step *steps) {
    if (!d->name || !*d->name)
        return refuse(f, "the plugin has no name");
    if ((d->init || d->teardown) && (d->init_data || d->teardown_data))
        return refuse(f,
                      "plugin '%s' gives both init/teardown and init_data/teardown_data: "
                      "use one pair",
                      d->name);
    if (d->reserved0)
        return refuse(f, "plugin '%s' sets its descriptor's reserved field", d->name);
    if (!d->steps || d->n_steps == 0)
        return refuse(f, "plugin '%s' declares no steps", d->name);
    if (d->n_steps > MAX_ENTRIES)
        return refuse(f, "plugin '%s' declares %zu steps, more than %d", d->name, d->n_steps,
                      MAX_ENTRIES);
    for (size_t i = 0; i < d->n_steps; i++) {
        const sl_step *st = &d->steps[i];
        plugin_step *ps = &steps[i];
        if (!registry_name_ok(st->name))
            return refuse(f, "plugin '%s' has a step named '%s': use a-z, 0-9, '_' and '-'",
                          d->name, st->name ? st->name : "(null)");
        if (!st->run && !lazy) /* a cached descriptor has none until loaded */
            return refuse(f, "step '%s' has no run function", st->name);
        if (!st->version || !*st->version)
            return refuse(f, "step '%s' has no version", st->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(st->name, d->steps[j].name) == 0)
                return refuse(f, "plugin '%s' declares step '%s' twice", d->name, st->name);
        ps->step = st;
        int rc;
        if ((rc = check_ports(f, st, st->inputs, "input", &ps->n_inputs)) ||
            (rc = check_ports(f, st, st->outputs, "output", &ps->n_outputs)) ||
            (rc = check_params(r, f, st, ps)))
            return rc;
    }
    return 0;
}

static void report(diag_list *d, const char *path, const char *why) {
    diag_add(d, DIAG_ERROR, path, 0, 0, "plugin refused: %s", why);
}

/* Whether the file at path is a shared object this process could load: a
 * regular file (opened without blocking, so a FIFO cannot hold sluice)
 * that starts with the ELF magic, of this process's class, of type ET_DYN.
 * dlopen runs a library's constructors, so nothing else is ever given to
 * it. Returns 0, or -EINVAL with why filled. */
static int shared_object_check(const char *path, char *why, size_t size) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, size, "%s", strerror(errno));
        return -EINVAL;
    }
    struct stat st;
    unsigned char h[EI_NIDENT + 2];
    int rc = -EINVAL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(why, size, "not a regular file");
    else if (read(fd, h, sizeof(h)) != (ssize_t)sizeof(h) || memcmp(h, ELFMAG, SELFMAG) != 0)
        snprintf(why, size, "not a shared object (no ELF header)");
    else if (h[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32))
        snprintf(why, size, "a shared object for another word size");
    else if ((h[EI_DATA] == ELFDATA2LSB ? h[EI_NIDENT] | h[EI_NIDENT + 1] << 8
                                        : h[EI_NIDENT] << 8 | h[EI_NIDENT + 1]) != ET_DYN)
        snprintf(why, size, "an ELF file that is not a shared object (build it with -shared)");
    else
        rc = 0;
    close(fd);
    return rc;
}

int registry_load_file(plugin_registry *r, const char *path, diag_list *d, const plugin_lib **out) {
    *out = NULL;
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        diag_add(d, DIAG_ERROR, path, 0, 0, "cannot load plugin: %s", strerror(errno));
        return 0;
    }
    uint32_t idx;
    if (hmap_get(&r->by_path, real, strlen(real), &idx)) {
        *out = r->libs[idx];
        return 0;
    }
    char why[256];
    if (shared_object_check(real, why, sizeof(why)) != 0) {
        diag_add(d, DIAG_ERROR, path, 0, 0, "cannot load plugin: %s", why);
        return 0;
    }
    dlerror();
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        diag_add(d, DIAG_ERROR, path, 0, 0, "cannot load plugin: %s", e ? e : "dlopen failed");
        return 0;
    }
    /* dlsym gives a data pointer; POSIX guarantees it converts to a function. */
    void *sym = dlsym(h, SL_PLUGIN_ENTRY_NAME);
    if (!sym) {
        report(d, path,
               "not a sluice plugin: it exports no " SL_PLUGIN_ENTRY_NAME
               "() (write SL_PLUGIN_DEFINE)");
        dlclose(h);
        return 0;
    }
    sl_plugin_entry entry;
    memcpy(&entry, &sym, sizeof(entry));
    int rc = registry_add(r, path, real, h, entry(), d, out);
    if (!*out)
        dlclose(h);
    return rc;
}

/* registry_add(), or for lazy (a descriptor from the registry cache, whose
 * file is not loaded): no run functions, no init yet. */
static int add(plugin_registry *r, const char *path, const char *key_path, void *handle,
               const sl_plugin *desc, int lazy, diag_list *d, const plugin_lib **out) {
    refusal f = {BUF_INIT, DIAG_ERROR};
    plugin_step *steps = NULL;
    plugin_lib *lib = NULL;
    int rc = 0;
    *out = NULL;
    if (!desc) {
        refuse(&f, "%s() returned no descriptor", SL_PLUGIN_ENTRY_NAME);
    } else if (desc->abi_version >> 16 != SL_ABI_MAJOR) {
        refuse(&f, "built for plugin ABI %u.%u; this sluice speaks %d.%d (rebuild it)",
               desc->abi_version >> 16, desc->abi_version & 0xFFFF, SL_ABI_MAJOR, SL_ABI_MINOR);
    } else if ((desc->abi_version & 0xFFFF) > SL_ABI_MINOR) {
        refuse(&f, "needs plugin ABI %u.%u, newer than this sluice's %d.%d (upgrade sluice)",
               desc->abi_version >> 16, desc->abi_version & 0xFFFF, SL_ABI_MAJOR, SL_ABI_MINOR);
    } else if (desc->size < offsetof(sl_plugin, init)) {
        refuse(&f, "its descriptor is %u bytes, too small for ABI %d", desc->size, SL_ABI_MAJOR);
    } else if (!desc->signature || strcmp(desc->signature, SL_BUILD_SIGNATURE) != 0) {
        refuse(&f, "built as '%s', not as this sluice's '%s'",
               desc->signature ? desc->signature : "(no signature)", SL_BUILD_SIGNATURE);
    }
    if (!f.why.len) {
        lib = arena_calloc(&r->arena, 1, sizeof(*lib));
        if (!lib) {
            rc = -ENOMEM;
            goto out;
        }
        /* Take what the plugin was built with; newer fields stay zero. */
        memcpy(&lib->desc, desc, desc->size < sizeof(lib->desc) ? desc->size : sizeof(lib->desc));
        rc = copy_steps(&r->arena, &f, &lib->desc, lazy);
        if (rc == -ENOMEM)
            goto out;
        steps = calloc(lib->desc.n_steps ? lib->desc.n_steps : 1, sizeof(*steps));
        if (!steps) {
            rc = -ENOMEM;
            goto out;
        }
        if (!f.why.len)
            rc = check_plugin(r, &f, &lib->desc, lazy, steps);
        if (rc == -ENOMEM)
            goto out;
        rc = 0;
    }
    for (size_t i = 0; !f.why.len && i < lib->desc.n_steps; i++) {
        const plugin_step *other = registry_find(r, steps[i].step->name);
        if (other) {
            refuse(&f,
                   "step '%s' is already declared by %s, which comes first in the search "
                   "path",
                   steps[i].step->name, other->lib->path);
            f.level = DIAG_WARNING;
        }
    }
    if (!f.why.len && !lazy) {
        char err[512] = "";
        if (lib_init(r->host, lib, err, sizeof(err)) != 0)
            refuse(&f, "its init failed: %s", err[0] ? err : "(no message)");
    }
    if (f.why.len) {
        diag_add(d, f.level, path, 0, 0, "plugin %s: %s",
                 f.level == DIAG_WARNING ? "not loaded" : "refused", buf_str(&f.why));
        goto out;
    }
    /* Accepted: register the file and its steps. */
    lib->handle = handle;
    lib->lazy = lazy;
    lib->owner = r;
    lib->path = arena_strdup(&r->arena, path);
    char *key = arena_strdup(&r->arena, key_path);
    lib->real_path = key;
    plugin_lib **libs = realloc(r->libs, (r->n_libs + 1) * sizeof(*libs));
    if (!lib->path || !key || !libs) {
        rc = -ENOMEM;
        goto out;
    }
    r->libs = libs;
    if (r->n_steps + lib->desc.n_steps > r->cap_steps) {
        size_t cap = (r->n_steps + lib->desc.n_steps) * 2;
        plugin_step *grown = realloc(r->steps, cap * sizeof(*grown));
        if (!grown) {
            rc = -ENOMEM;
            goto out;
        }
        r->steps = grown;
        r->cap_steps = cap;
    }
    if (hmap_put(&r->by_path, key, strlen(key), (uint32_t)r->n_libs, NULL) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    host_step *hs = bind_steps(&r->arena, lib);
    if (!hs) {
        rc = -ENOMEM;
        goto out;
    }
    r->libs[r->n_libs++] = lib;
    /* From here the registry owns lib: registry_free tears it down and closes
     * it, so a failure below must neither do so nor let the caller close it. */
    *out = lib;
    for (size_t i = 0; i < lib->desc.n_steps && rc == 0; i++) {
        steps[i].lib = lib;
        steps[i].step = &hs[i].step;
        r->steps[r->n_steps] = steps[i];
        const char *name = steps[i].step->name;
        if (hmap_put(&r->by_name, name, strlen(name), (uint32_t)r->n_steps, NULL) < 0)
            rc = -ENOMEM;
        else
            r->n_steps++;
    }
    free(steps);
    buf_free(&f.why);
    return rc;
out:
    if (lib)
        lib_teardown(lib);
    free(steps);
    buf_free(&f.why);
    return rc;
}

int registry_add(plugin_registry *r, const char *path, const char *key_path, void *handle,
                 const sl_plugin *desc, diag_list *d, const plugin_lib **out) {
    return add(r, path, key_path, handle, desc, 0, d, out);
}

/* A file of a plugin folder: from the cache when it knows the file as it
 * is, else loaded, and cached when accepted. */
static int load_listed(plugin_registry *r, const char *path, diag_list *d) {
    char real[PATH_MAX];
    struct stat st;
    const plugin_lib *lib = NULL;
    uint32_t known;
    if (!r->cache || !realpath(path, real) || stat(real, &st) != 0 ||
        hmap_get(&r->by_path, real, strlen(real), &known))
        return registry_load_file(r, path, d, &lib);
    sl_plugin desc;
    int hit = registry_cache_get(r->cache, real, &st, &r->arena, &desc);
    if (hit < 0)
        return hit;
    if (hit) {
        size_t before = d->n;
        int rc = add(r, path, real, NULL, &desc, 1, d, &lib);
        if (rc || lib || d->n > before)
            return rc; /* registered, or refused as the file would have been */
    }
    int rc = registry_load_file(r, path, d, &lib);
    if (rc == 0 && lib)
        rc = registry_cache_put(r->cache, real, &st, &lib->desc);
    return rc;
}

static int same_step(const sl_step *a, const sl_step *b) {
    return a->name && b->name && strcmp(a->name, b->name) == 0 && a->version && b->version &&
           strcmp(a->version, b->version) == 0;
}

int registry_materialize(const plugin_step *ps, char *err, size_t err_size) {
    plugin_lib *lib = (plugin_lib *)ps->lib; /* the registry's own: it owns every lib */
    if (!lib->lazy)
        return 0;
    char why_not[256];
    if (shared_object_check(lib->real_path, why_not, sizeof(why_not)) != 0) {
        snprintf(err, err_size, "cannot load plugin %s: %s", lib->path, why_not);
        return -EINVAL;
    }
    dlerror();
    void *h = dlopen(lib->real_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(err, err_size, "cannot load plugin %s: %s", lib->path, e ? e : "dlopen failed");
        return -EINVAL;
    }
    void *sym = dlsym(h, SL_PLUGIN_ENTRY_NAME);
    sl_plugin_entry entry;
    memcpy(&entry, &sym, sizeof(entry));
    const sl_plugin *desc = sym ? entry() : NULL;
    plugin_registry *r = lib->owner;
    /* Take what the plugin was built with; newer fields stay zero. */
    sl_plugin real;
    memset(&real, 0, sizeof(real));
    if (desc && desc->size >= offsetof(sl_plugin, init))
        memcpy(&real, desc, desc->size < sizeof(real) ? desc->size : sizeof(real));
    refusal f = {BUF_INIT, DIAG_ERROR};
    int rc = desc ? copy_steps(&r->arena, &f, &real, 0) : -EINVAL;
    buf_free(&f.why);
    if (rc == -ENOMEM) {
        snprintf(err, err_size, "cannot load plugin %s: %s", lib->path, strerror(ENOMEM));
        dlclose(h);
        return rc;
    }
    int same = rc == 0 && real.abi_version == lib->desc.abi_version && real.signature &&
               lib->desc.signature && strcmp(real.signature, lib->desc.signature) == 0 &&
               real.n_steps == lib->desc.n_steps && real.steps;
    for (size_t i = 0; same && i < real.n_steps; i++)
        same = same_step(&real.steps[i], &lib->desc.steps[i]) && real.steps[i].run;
    if (!same) {
        snprintf(err, err_size,
                 "plugin %s no longer declares what it did when sluice listed it (rebuilt "
                 "while sluice ran?): run again",
                 lib->path);
        dlclose(h);
        return -EINVAL;
    }
    sl_plugin cached = lib->desc;
    lib->desc = real;
    char why[512] = "";
    if (lib_init(r->host, lib, why, sizeof(why)) != 0) {
        snprintf(err, err_size, "plugin %s: its init failed: %s", lib->path,
                 why[0] ? why : "(no message)");
        lib->desc = cached;
        dlclose(h);
        return -EINVAL;
    }
    lib->handle = h;
    lib->lazy = 0;
    /* The steps keep the descriptors bound from the cache (the registry's
     * own host_steps, in its arena: same ABI version, same user data),
     * which the keying of a step of this plugin on the thread pool may be
     * reading now: only their run functions, which nothing reads before a
     * step starts, are filled in; no step is re-pointed. */
    for (size_t i = 0; i < r->n_steps; i++)
        if (r->steps[i].lib == lib)
            for (size_t j = 0; j < real.n_steps; j++)
                if (strcmp(real.steps[j].name, r->steps[i].step->name) == 0)
                    ((sl_step *)r->steps[i].step)->run = real.steps[j].run;
    return 0;
}

static int is_shared_object(const char *name) {
    size_t len = strlen(name);
    return len > 3 && strcmp(name + len - 3, ".so") == 0;
}

int registry_load_dir(plugin_registry *r, const char *dir, int optional, diag_list *d) {
    char **names;
    size_t n;
    int rc = dir_list(dir, is_shared_object, &names, &n);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        if (!optional || rc != -ENOENT)
            diag_add(d, DIAG_ERROR, dir, 0, 0, "cannot read plugin folder: %s", strerror(-rc));
        return 0;
    }
    rc = 0;
    r->cache = registry_cache_open(); /* NULL: no cache, every file loaded */
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = load_listed(r, path, d);
    }
    registry_cache_close(r->cache);
    r->cache = NULL;
    dir_list_free(names, n);
    return rc;
}

int registry_load_default(plugin_registry *r, const char *exe_dir, diag_list *d) {
    int rc = 0;
    const char *env = getenv("SLUICE_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy)
            return -ENOMEM;
        char *save = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir && rc == 0;
             dir = strtok_r(NULL, ":", &save))
            rc = registry_load_dir(r, dir, 0, d);
        free(copy);
    }
    if (exe_dir && rc == 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/plugins", exe_dir);
        rc = registry_load_dir(r, path, 1, d);
        snprintf(path, sizeof(path), "%s/../lib/sluice/plugins", exe_dir);
        if (rc == 0)
            rc = registry_load_dir(r, path, 1, d);
    }
    return rc;
}

const plugin_step *registry_find(const plugin_registry *r, const char *name) {
    uint32_t idx;
    return hmap_get(&r->by_name, name, strlen(name), &idx) ? &r->steps[idx] : NULL;
}

const sl_param *plugin_step_param(const plugin_step *s, const char *name, size_t *index) {
    for (size_t i = 0; i < s->n_params; i++)
        if (strcmp(s->step->params[i].name, name) == 0) {
            if (index)
                *index = i;
            return &s->step->params[i];
        }
    return NULL;
}

static const sl_port *find_port(const sl_port *ports, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ports[i].name, name) == 0)
            return &ports[i];
    return NULL;
}

const sl_port *plugin_step_input(const plugin_step *s, const char *name) {
    return find_port(s->step->inputs, s->n_inputs, name);
}

const sl_port *plugin_step_output(const plugin_step *s, const char *name) {
    return find_port(s->step->outputs, s->n_outputs, name);
}

void registry_free(plugin_registry *r) {
    for (size_t i = r->n_libs; i-- > 0;) {
        plugin_lib *lib = r->libs[i];
        lib_teardown(lib);
        if (lib->handle)
            dlclose(lib->handle);
    }
    free(r->libs);
    free(r->steps);
    hmap_free(&r->by_name);
    hmap_free(&r->by_path);
    arena_free(&r->arena);
    const registry_host *host = r->host;
    *r = (plugin_registry)PLUGIN_REGISTRY_INIT(host);
}
