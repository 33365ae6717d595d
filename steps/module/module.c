/* module.c - finding and loading sluice's modules (see module.h). */
#define _GNU_SOURCE /* dladdr */
#include "module.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* dlopen and dlerror are not reentrant together: one load at a time. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Where to look, and what was looked at, for the message when nothing is. */
typedef struct search {
    const char *name;
    void *handle;
    char *err;
    size_t err_size;
    char looked[1024];
    size_t used;
} search;

/* Whether the module loaded from path is this build's (module.h,
 * "Versions"); if not, err says why. */
static int stamp_ok(void *handle, const char *path, char *err, size_t err_size) {
    void *sym = dlsym(handle, MODULE_ENTRY_NAME);
    module_entry entry;
    memcpy(&entry, &sym, sizeof(entry));
    const module_stamp *st = sym ? entry() : NULL;
    if (!st) {
        snprintf(err, err_size,
                 "%s is not a module of this sluice: it exports no " MODULE_ENTRY_NAME
                 "() (left from an older install?)",
                 path);
        return 0;
    }
    if (st->abi != MODULE_ABI || st->size < sizeof(*st) || !st->signature ||
        strcmp(st->signature, MODULE_SIGNATURE) != 0) {
        snprintf(err, err_size,
                 "%s was built as '%s', not as this sluice's '" MODULE_SIGNATURE
                 "' (install the module of this sluice)",
                 path, st->size >= sizeof(*st) && st->signature ? st->signature : "(no signature)");
        return 0;
    }
    return 1;
}

/* Tries dir[0, dir_len) + suffix + "/NAME.so": 1 when the file exists
 * (s->handle is then set, or s->err says why it did not load), else 0. */
static int try_dir(search *s, const char *dir, size_t dir_len, const char *suffix) {
    char path[PATH_MAX];
    int len = snprintf(path, sizeof(path), "%.*s%s/%s.so", (int)dir_len, dir, suffix, s->name);
    if (len < 0 || (size_t)len >= sizeof(path))
        return 0;
    if (access(path, R_OK) != 0) {
        if (s->used < sizeof(s->looked))
            s->used += (size_t)snprintf(s->looked + s->used, sizeof(s->looked) - s->used,
                                        "%s%.*s%s", s->used ? ", " : "", (int)dir_len, dir, suffix);
        return 0;
    }
    s->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!s->handle)
        snprintf(s->err, s->err_size, "%s", dlerror());
    else if (!stamp_ok(s->handle, path, s->err, s->err_size)) {
        dlclose(s->handle);
        s->handle = NULL;
    }
    return 1;
}

static int find(search *s) {
    for (const char *p = getenv("SLUICE_MODULE_PATH"); p && *p;) {
        size_t len = strcspn(p, ":");
        if (len && try_dir(s, p, len, ""))
            return s->handle ? 0 : -EINVAL;
        p += len + (p[len] == ':');
    }
    /* Beside the binary or plugin that holds this code. */
    static const char *const beside[] = {"/modules", "/../modules", "/../lib/sluice/modules"};
    Dl_info info;
    char self[PATH_MAX];
    /* A plugin's name is the path it was loaded by; the main program's is
     * its argv[0], which may name nothing from here: /proc/self/exe does. */
    int found = dladdr((void *)module_symbol, &info) && info.dli_fname &&
                strchr(info.dli_fname, '/') && realpath(info.dli_fname, self);
    if (!found)
        found = realpath("/proc/self/exe", self) != NULL;
    if (found) {
        const char *slash = strrchr(self, '/');
        for (size_t i = 0; slash && i < sizeof(beside) / sizeof(beside[0]); i++)
            if (try_dir(s, self, (size_t)(slash - self), beside[i]))
                return s->handle ? 0 : -EINVAL;
    }
    if (try_dir(s, SLUICE_MODULE_DIR, strlen(SLUICE_MODULE_DIR), ""))
        return s->handle ? 0 : -EINVAL;
    snprintf(s->err, s->err_size, "sluice's module %s.so is not installed (looked in %s)", s->name,
             s->looked);
    return -ENOENT;
}

int module_symbol(const char *name, const char *symbol, void **sym, char *err, size_t err_size) {
    search s = {.name = name, .err = err, .err_size = err_size};
    pthread_mutex_lock(&lock);
    int rc = find(&s);
    if (rc == 0 && !(*sym = dlsym(s.handle, symbol))) {
        snprintf(err, err_size, "sluice's module %s.so has no %s", name, symbol);
        rc = -EINVAL;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
