/* registry_cache.c - plugin descriptors kept between sluice processes. */
#include "registry_cache.h"

#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "formats.h"

struct registry_cache {
    char path[PATH_MAX];
    int64_t exe_size, exe_mtime;
    bson_t *plugins; /* real path -> entry */
    int dirty;
};

static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int cache_path(char *out, size_t size) {
    const char *env = getenv("SLUICE_PLUGIN_CACHE");
    if (env && strcmp(env, "off") == 0)
        return -1;
    int n;
    if (env && *env)
        n = snprintf(out, size, "%s", env);
    else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
        n = snprintf(out, size, "%s/sluice/plugins.json", getenv("XDG_CACHE_HOME"));
    else if (getenv("HOME") && *getenv("HOME"))
        n = snprintf(out, size, "%s/.cache/sluice/plugins.json", getenv("HOME"));
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static int64_t num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)
               ? bson_iter_as_int64(&it)
               : -1;
}

/* The file's plugins, when it was written by this very sluice. */
static bson_t *read_plugins(const registry_cache *c) {
    bson_t *doc = NULL;
    if (json_file_read(c->path, &doc, NULL, 0) != 0)
        doc = NULL; /* absent or unreadable: no cache */
    bson_t *plugins = NULL;
    bson_iter_t it;
    if (doc && num(doc, "exe_size") == c->exe_size && num(doc, "exe_mtime_ns") == c->exe_mtime &&
        bson_iter_init_find(&it, doc, "plugins") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t dlen;
        const uint8_t *data;
        bson_iter_document(&it, &dlen, &data);
        plugins = bson_new_from_data(data, dlen);
    }
    if (doc)
        bson_destroy(doc);
    return plugins;
}

registry_cache *registry_cache_open(void) {
    registry_cache *c = calloc(1, sizeof(*c));
    struct stat exe;
    if (!c || cache_path(c->path, sizeof(c->path)) != 0 || stat("/proc/self/exe", &exe) != 0) {
        free(c);
        return NULL;
    }
    c->exe_size = (int64_t)exe.st_size;
    c->exe_mtime = mtime_ns(&exe);
    c->plugins = read_plugins(c);
    if (!c->plugins && !(c->plugins = bson_new())) {
        free(c);
        return NULL;
    }
    return c;
}

/* ---- reading an entry --------------------------------------------------- */

static const char *str(arena *a, const bson_t *doc, const char *key, int *bad) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || BSON_ITER_HOLDS_NULL(&it))
        return NULL;
    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        *bad = 1;
        return NULL;
    }
    const char *s = arena_strdup(a, bson_iter_utf8(&it, NULL));
    if (!s)
        *bad = -ENOMEM;
    return s;
}

/* The array under key as a document to iterate, or 0. */
static int array(const bson_t *doc, const char *key, bson_iter_t *out) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
           bson_iter_recurse(&it, out);
}

static size_t count_items(const bson_t *doc, const char *key) {
    bson_iter_t it;
    size_t n = 0;
    if (array(doc, key, &it))
        while (bson_iter_next(&it))
            n++;
    return n;
}

static bson_t *sub_doc(const bson_iter_t *it, bson_t *storage) {
    uint32_t len;
    const uint8_t *data;
    if (!BSON_ITER_HOLDS_DOCUMENT(it))
        return NULL;
    bson_iter_document(it, &len, &data);
    return bson_init_static(storage, data, len) ? storage : NULL;
}

static sl_port *read_ports(arena *a, const bson_t *step, const char *key, int *bad) {
    bson_iter_t it;
    size_t n = count_items(step, key);
    sl_port *ports = arena_calloc(a, n + 1, sizeof(*ports));
    if (!ports) {
        *bad = -ENOMEM;
        return NULL;
    }
    size_t i = 0;
    if (array(step, key, &it))
        while (i < n && bson_iter_next(&it)) {
            bson_t storage, *p = sub_doc(&it, &storage);
            if (!p) {
                *bad = 1;
                break;
            }
            ports[i] = (sl_port){str(a, p, "name", bad), str(a, p, "type", bad),
                                 str(a, p, "doc", bad), (int)num(p, "optional") == 1};
            i++;
        }
    return ports;
}

static sl_param *read_params(arena *a, const bson_t *step, int *bad) {
    bson_iter_t it;
    size_t n = count_items(step, "params");
    sl_param *params = arena_calloc(a, n + 1, sizeof(*params));
    if (!params) {
        *bad = -ENOMEM;
        return NULL;
    }
    size_t i = 0;
    if (array(step, "params", &it))
        while (i < n && bson_iter_next(&it)) {
            bson_t storage, *p = sub_doc(&it, &storage);
            if (!p) {
                *bad = 1;
                break;
            }
            params[i] = (sl_param){str(a, p, "name", bad), (sl_param_kind)num(p, "kind"),
                                   str(a, p, "default", bad), str(a, p, "doc", bad),
                                   (int)num(p, "required") == 1};
            i++;
        }
    return params;
}

int registry_cache_get(registry_cache *c, const char *real_path, const struct stat *st, arena *a,
                       sl_plugin *desc) {
    bson_iter_t it, steps;
    bson_t storage, *e;
    if (!c || !bson_iter_init_find(&it, c->plugins, real_path) || !(e = sub_doc(&it, &storage)))
        return 0;
    if (num(e, "size") != (int64_t)st->st_size || num(e, "mtime_ns") != mtime_ns(st) ||
        num(e, "ino") != (int64_t)st->st_ino || num(e, "dev") != (int64_t)st->st_dev)
        return 0;
    int bad = 0;
    memset(desc, 0, sizeof(*desc));
    desc->abi_version = (uint32_t)num(e, "abi_version");
    desc->size = (uint32_t)num(e, "size_of");
    desc->signature = str(a, e, "signature", &bad);
    desc->name = str(a, e, "name", &bad);
    desc->version = str(a, e, "version", &bad);
    size_t n = count_items(e, "steps");
    sl_step *st_arr = arena_calloc(a, n + 1, sizeof(*st_arr));
    if (!st_arr)
        return -ENOMEM;
    size_t i = 0;
    if (array(e, "steps", &steps))
        while (!bad && i < n && bson_iter_next(&steps)) {
            bson_t s_storage, *s = sub_doc(&steps, &s_storage);
            if (!s) {
                bad = 1;
                break;
            }
            st_arr[i].name = str(a, s, "name", &bad);
            st_arr[i].version = str(a, s, "version", &bad);
            st_arr[i].summary = str(a, s, "summary", &bad);
            st_arr[i].inputs = read_ports(a, s, "inputs", &bad);
            st_arr[i].outputs = read_ports(a, s, "outputs", &bad);
            st_arr[i].params = read_params(a, s, &bad);
            i++;
        }
    if (bad < 0)
        return bad;
    desc->steps = st_arr;
    desc->n_steps = i;
    return bad || i != n || i == 0 ? 0 : 1; /* a damaged entry is a miss */
}

/* ---- writing an entry --------------------------------------------------- */

static void put_str(bson_t *doc, const char *key, const char *s) {
    if (s)
        BSON_APPEND_UTF8(doc, key, s);
    else
        BSON_APPEND_NULL(doc, key);
}

static void put_ports(bson_t *step, const char *key, const sl_port *ports) {
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(step, key, &arr);
    for (uint32_t i = 0; ports && ports[i].name; i++) {
        char k[16];
        const char *kp;
        bson_uint32_to_string(i, &kp, k, sizeof(k));
        bson_t p;
        bson_append_document_begin(&arr, kp, -1, &p);
        put_str(&p, "name", ports[i].name);
        put_str(&p, "type", ports[i].type);
        put_str(&p, "doc", ports[i].doc);
        BSON_APPEND_INT32(&p, "optional", ports[i].optional != 0);
        bson_append_document_end(&arr, &p);
    }
    bson_append_array_end(step, &arr);
}

static void put_params(bson_t *step, const sl_param *params) {
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(step, "params", &arr);
    for (uint32_t i = 0; params && params[i].name; i++) {
        char k[16];
        const char *kp;
        bson_uint32_to_string(i, &kp, k, sizeof(k));
        bson_t p;
        bson_append_document_begin(&arr, kp, -1, &p);
        put_str(&p, "name", params[i].name);
        BSON_APPEND_INT32(&p, "kind", (int32_t)params[i].kind);
        put_str(&p, "default", params[i].default_value);
        put_str(&p, "doc", params[i].doc);
        BSON_APPEND_INT32(&p, "required", params[i].required != 0);
        bson_append_document_end(&arr, &p);
    }
    bson_append_array_end(step, &arr);
}

int registry_cache_put(registry_cache *c, const char *real_path, const struct stat *st,
                       const sl_plugin *desc) {
    if (!c)
        return 0;
    bson_t *next = bson_new();
    if (!next)
        return -ENOMEM;
    bson_iter_t it;
    if (bson_iter_init(&it, c->plugins))
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), real_path) != 0)
                bson_append_iter(next, NULL, 0, &it);
    bson_t e, steps;
    bson_append_document_begin(next, real_path, -1, &e);
    BSON_APPEND_INT64(&e, "size", (int64_t)st->st_size);
    BSON_APPEND_INT64(&e, "mtime_ns", mtime_ns(st));
    BSON_APPEND_INT64(&e, "ino", (int64_t)st->st_ino);
    BSON_APPEND_INT64(&e, "dev", (int64_t)st->st_dev);
    BSON_APPEND_INT64(&e, "abi_version", desc->abi_version);
    BSON_APPEND_INT64(&e, "size_of", desc->size);
    put_str(&e, "signature", desc->signature);
    put_str(&e, "name", desc->name);
    put_str(&e, "version", desc->version);
    BSON_APPEND_ARRAY_BEGIN(&e, "steps", &steps);
    for (uint32_t i = 0; i < desc->n_steps; i++) {
        char k[16];
        const char *kp;
        bson_uint32_to_string(i, &kp, k, sizeof(k));
        bson_t s;
        bson_append_document_begin(&steps, kp, -1, &s);
        put_str(&s, "name", desc->steps[i].name);
        put_str(&s, "version", desc->steps[i].version);
        put_str(&s, "summary", desc->steps[i].summary);
        put_ports(&s, "inputs", desc->steps[i].inputs);
        put_ports(&s, "outputs", desc->steps[i].outputs);
        put_params(&s, desc->steps[i].params);
        bson_append_document_end(&steps, &s);
    }
    bson_append_array_end(&e, &steps);
    bson_append_document_end(next, &e);
    bson_destroy(c->plugins);
    c->plugins = next;
    c->dirty = 1;
    return 0;
}

/* A writer holds its temporary for milliseconds; one an hour old is what a
 * killed process left between mkstemp and rename, and nobody's to keep. */
enum { STALE_TEMP_SECONDS = 3600 };

static void sweep_stale_temporaries(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t base_len = strlen(base);
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* base + "." + mkstemp's six characters */
        if (strncmp(e->d_name, base, base_len) != 0 || e->d_name[base_len] != '.' ||
            strlen(e->d_name + base_len + 1) != 6)
            continue;
        char path[PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path) &&
            lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > STALE_TEMP_SECONDS)
            unlink(path);
    }
    closedir(d);
}

void registry_cache_close(registry_cache *c) {
    if (!c)
        return;
    if (c->dirty) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_INT64(&doc, "exe_size", c->exe_size);
        BSON_APPEND_INT64(&doc, "exe_mtime_ns", c->exe_mtime);
        BSON_APPEND_DOCUMENT(&doc, "plugins", c->plugins);
        char dir[PATH_MAX], tmp[PATH_MAX + 16];
        snprintf(dir, sizeof(dir), "%s", c->path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            mkdir_p(dir, 0755);
            sweep_stale_temporaries(dir, slash + 1);
        }
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", c->path);
        /* A unique name, written and renamed over the cache whole. */
        int fd = mkstemp(tmp);
        if (fd >= 0) {
            close(fd);
            if (json_file_write(tmp, &doc, NULL, 0) != 0 || rename(tmp, c->path) != 0)
                unlink(tmp);
        }
        bson_destroy(&doc);
    }
    bson_destroy(c->plugins);
    free(c);
}
