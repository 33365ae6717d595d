/* failnth.c - an LD_PRELOAD shim that makes one allocation fail, the idea
 * of curl's 'runtests.pl -t' and SQLite's malloc tests: a program run over
 * and over, failing the 1st allocation, then the 2nd, and so on, must each
 * time stop with a clean error (or carry on), never crash or leak.
 *
 * SLUICE_FAIL_ALLOC=N    the Nth malloc, calloc, realloc, strdup or strndup
 *                        after the shim is loaded returns NULL (ENOMEM), or
 *                        the first after it not made by a library that
 *                        aborts on a failed allocation (below); 0 or unset
 *                        fails none.
 * SLUICE_ALLOC_COUNT=F   at exit, appends "<count>\n" to file F: how many
 *                        allocations the process made, so that a sweep knows
 *                        how far to go.
 *
 * Both are taken out of the environment at load, as is LD_PRELOAD when it
 * names only this shim, so processes the program starts run unharmed: a
 * sweep tests one process. Under AddressSanitizer (preset dev-asan) the
 * calls go on to ASan's allocator, which still sees every leak; ASan must
 * then be told not to insist on coming first (verify_asan_link_order=0).
 * Allocations made while libraries unload are never failed (below).
 * Counting is atomic: steps allocate on several threads, so which
 * allocation is the Nth may differ between two runs of the same N. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static char *(*real_strdup)(const char *);
static char *(*real_strndup)(const char *, size_t);

static atomic_ulong made;
static unsigned long fail_at;
static char count_path[4096];

/* dlsym may itself allocate before the real functions are known: those
 * few early requests are served from here and never freed. */
static _Alignas(16) char early[8192];
static size_t early_used;

static int is_early(const void *p) {
    return (const char *)p >= early && (const char *)p < early + sizeof(early);
}

static void *early_alloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (early_used + n > sizeof(early))
        return NULL;
    void *p = early + early_used;
    early_used += n;
    return p;
}

static void resolve(void) {
    static int resolving;
    if (real_free || resolving)
        return;
    resolving = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_strdup = (char *(*)(const char *))dlsym(RTLD_NEXT, "strdup");
    real_strndup = (char *(*)(const char *, size_t))dlsym(RTLD_NEXT, "strndup");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

/* Libraries that cannot survive a failed allocation: libbson aborts, by
 * design (bson_malloc); so does libgfortran (OpenBLAS's runtime) in its
 * constructor; OpenSSL 3.0 builds its global state (locks, the provider
 * store) on first use and, when an allocation there fails, goes on to take
 * the lock it could not make (a crash in CRYPTO_THREAD_read_lock, within
 * the same EVP_MD_fetch); libgit2 1.5 likewise with its per-thread error
 * state (a crash in git_error_set). Failing one of their allocations tests nothing of
 * ours: when the Nth is theirs, the next allocation of anyone else's fails
 * instead. */
static const char *const aborting[] = {"libbson-1.0.so", "libgfortran.so", "libcrypto.so",
                                       "libgit2.so"};

/* dl_iterate_phdr's callback: 1 when the address *data lies in the code of
 * one of the aborting libraries. */
static int in_aborting(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t at = *(const uintptr_t *)data;
    int known = 0;
    for (size_t k = 0; info->dlpi_name && k < sizeof(aborting) / sizeof(*aborting); k++)
        known |= strstr(info->dlpi_name, aborting[k]) != NULL;
    for (int i = 0; known && i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && at >= lo && at < lo + ph->p_memsz)
            return 1;
    }
    return 0;
}

static atomic_int failed_one;

/* Nonzero while libraries are unloaded (dlclose, and exit from the time its
 * handlers run): their finalizers allocate without looking, gcov's dump of
 * a --coverage build among them (a crash in gcov_do_dump), and what they do
 * is not the program's doing. */
static atomic_int unloading;

static void exiting(void) { atomic_store(&unloading, 1); }

/* exiting() must run before the libraries' destructors, so it is registered
 * after the loader's finalizer, which __libc_start_main registers before it
 * calls main (a constructor of ours would come first and so run last): the
 * shim starts main itself. */
typedef int main_fn(int, char **, char **);
static main_fn *program_main;

static int main_hooked(int argc, char **argv, char **envp) {
    atexit(exiting);
    return program_main(argc, argv, envp);
}

int __libc_start_main(main_fn *main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end);
int __libc_start_main(main_fn *main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
    int (*real_start)(main_fn *, int, char **, void (*)(void), void (*)(void), void (*)(void),
                      void *) =
        (int (*)(main_fn *, int, char **, void (*)(void), void (*)(void), void (*)(void),
                 void *))dlsym(RTLD_NEXT, "__libc_start_main");
    program_main = main;
    return real_start(main_hooked, argc, argv, init, fini, rtld_fini, stack_end);
}

int dlclose(void *handle) {
    static int (*real_dlclose)(void *);
    if (!real_dlclose)
        real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    atomic_fetch_add(&unloading, 1);
    int rc = real_dlclose(handle);
    atomic_fetch_sub(&unloading, 1);
    return rc;
}

/* Set on a thread once its start function runs (on the main thread, at
 * load): what a new thread allocates before that is the thread library's
 * and the sanitizer runtime's setting up (ASan CHECKs that its
 * pthread_getattr_np succeeds), not the program's. */
static __thread int started;

typedef struct trampoline {
    void *(*fn)(void *);
    void *arg;
} trampoline;

static void *start_thread(void *data) {
    trampoline t = *(trampoline *)data;
    real_free(data);
    started = 1;
    return t.fn(t.arg);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    static int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real_create)
        real_create = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                               void *))dlsym(RTLD_NEXT, "pthread_create");
    resolve();
    trampoline *t = real_malloc(sizeof(*t)); /* not counted: the shim's own */
    if (!t)
        return EAGAIN;
    t->fn = fn;
    t->arg = arg;
    int rc = real_create(thread, attr, start_thread, t);
    if (rc)
        real_free(t);
    return rc;
}

/* Whether this allocation, requested from caller, is the one to fail. The
 * libraries are looked up only from the Nth on, where it is (nearly) one
 * look-up: libraries load all through a run. */
#define failing() failing_from(__builtin_return_address(0))
static int failing_from(const void *caller) {
    unsigned long n = atomic_fetch_add(&made, 1) + 1;
    if (!fail_at || n < fail_at || atomic_load(&failed_one))
        return 0;
    uintptr_t at = (uintptr_t)caller;
    if (dl_iterate_phdr(in_aborting, &at))
        return 0;
    if (!started || atomic_load(&unloading))
        return 0;
    if (atomic_exchange(&failed_one, 1))
        return 0;
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n) {
    resolve();
    if (!real_malloc)
        return early_alloc(n);
    return failing() ? NULL : real_malloc(n);
}

void *calloc(size_t n, size_t size) {
    resolve();
    if (!real_calloc)
        return early_alloc(n * size); /* static: already zero */
    return failing() ? NULL : real_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    resolve();
    if (is_early(p) || !real_realloc) {
        void *q = malloc(n);
        if (q && p)
            memcpy(q, p, n); /* early blocks are small and never shrink below n here */
        return q;
    }
    return failing() ? NULL : real_realloc(p, n);
}

void free(void *p) {
    resolve();
    if (p && !is_early(p) && real_free)
        real_free(p);
}

char *strdup(const char *s) {
    resolve();
    return failing() ? NULL : real_strdup(s);
}

char *strndup(const char *s, size_t n) {
    resolve();
    return failing() ? NULL : real_strndup(s, n);
}

/* Drops NAME=... from the environment without allocating. */
static void forget(const char *name) {
    size_t len = strlen(name);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
            char **d = e;
            do
                d[0] = d[1];
            while (*d++);
            e--;
        }
}

__attribute__((constructor)) static void failnth_start(void) {
    resolve();
    const char *n = getenv("SLUICE_FAIL_ALLOC");
    const char *c = getenv("SLUICE_ALLOC_COUNT");
    if (c)
        snprintf(count_path, sizeof(count_path), "%s", c);
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "failnth") && !strchr(pre, ':') && !strchr(pre, ' '))
        forget("LD_PRELOAD");
    forget("SLUICE_FAIL_ALLOC");
    forget("SLUICE_ALLOC_COUNT");
    started = 1;
    /* Set last: what the constructor did is not the program's doing. */
    atomic_store(&made, 0);
    fail_at = n ? strtoul(n, NULL, 10) : 0;
}

__attribute__((destructor)) static void failnth_stop(void) {
    if (!count_path[0])
        return;
    FILE *f = fopen(count_path, "a");
    if (f) {
        fprintf(f, "%lu\n", atomic_load(&made));
        fclose(f);
    }
}
