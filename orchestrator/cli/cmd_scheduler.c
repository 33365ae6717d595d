/* cmd_scheduler.c - sluice scheduler: runs a store's schedules on a libuv
 * loop (docs/schedules.md). One per store, held by a lock on
 * STORE/scheduler.lock. Each fire's state is written (and synced) before
 * its run starts, as a child 'sluice run' process with --cause, so that the
 * loop never waits on a run and a restart neither fires twice nor forgets.
 * Trigger polls (git fetches, LMDB reads) run on libuv's thread pool. */
#define _DEFAULT_SOURCE /* flock */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "fsutil.h"
#include "schedule.h"
#include "schedules.h"
#include "store.h"

typedef struct scheduler scheduler;

/* A run the scheduler started and waits for. */
typedef struct child {
    uv_process_t proc;
    scheduler *s;
    char name[65];
    struct child *next;
} child;

struct scheduler {
    uv_loop_t *loop;
    uv_timer_t tick, poll;
    uv_signal_t sigint, sigterm;
    uv_work_t work;
    meta_db m;
    const char *store;
    int once, poll_s, poll_busy, polled_once, stopping;
    int64_t once_now;
    child *children;
    /* The poll in flight: defs (owned), one value, code and message each. */
    sched_def *pdefs;
    size_t n_pdefs;
    char (*values)[128];
    char (*whys)[256];
    int *codes;
};

static int64_t now_of(const scheduler *s) { return s->once ? s->once_now : sched_now(); }

static int is_running(const scheduler *s, const char *name) {
    for (const child *c = s->children; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return 1;
    return 0;
}

/* Its run goes on: started by this scheduler, or by one before a restart. */
static int busy(const scheduler *s, const sched_def *d) {
    return is_running(s, d->name) || (d->pid && sched_run_alive(d, d->pid));
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char when[32];
    sched_iso(sched_now(), when, sizeof(when));
    printf("%s ", when);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- the records ---- */

typedef struct defs {
    sched_def *items;
    size_t n, cap;
} defs;

static int collect(void *ud, const char *key, size_t key_len, const bson_t *doc) {
    defs *ds = ud;
    char why[512];
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 8;
        sched_def *items = realloc(ds->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        ds->items = items;
        ds->cap = cap;
    }
    if (sched_def_from_bson(doc, &ds->items[ds->n], why, sizeof(why)) != 0) {
        sched_def_free(&ds->items[ds->n]);
        fprintf(stderr, "sluice scheduler: schedule %.*s: %s\n", (int)key_len, key, why);
        return 0;
    }
    ds->n++;
    return 0;
}

static void defs_free(defs *ds) {
    for (size_t i = 0; i < ds->n; i++)
        sched_def_free(&ds->items[i]);
    free(ds->items);
    memset(ds, 0, sizeof(*ds));
}

/* Writes d's state and syncs it: the fire is then remembered. */
static int save_state(scheduler *s, const sched_def *d) {
    bson_t ch = BSON_INITIALIZER, st;
    BSON_APPEND_DOCUMENT_BEGIN(&ch, "state", &st);
    BSON_APPEND_INT64(&st, "last_fire", d->last_fire);
    BSON_APPEND_UTF8(&st, "last_seen", d->last_seen);
    BSON_APPEND_INT64(&st, "runs", d->runs);
    BSON_APPEND_INT64(&st, "skipped", d->skipped);
    bson_append_document_end(&ch, &st);
    int rc = schedules_update(&s->m, d->name, &ch);
    bson_destroy(&ch);
    if (rc == 0)
        rc = meta_sync(&s->m);
    if (rc && rc != -ENOENT) /* -ENOENT: removed meanwhile, nothing to run */
        fprintf(stderr, "sluice scheduler: schedule %s: cannot record its state: %s\n", d->name,
                meta_strerror(rc));
    return rc;
}

/* Notes the process of name's run (0: none now), for a restarted
 * scheduler to wait for. */
static void set_pid(scheduler *s, const char *name, int64_t pid) {
    bson_t ch = BSON_INITIALIZER;
    BSON_APPEND_INT64(&ch, "run_pid", pid);
    int rc = schedules_update(&s->m, name, &ch);
    bson_destroy(&ch);
    if (rc && rc != -ENOENT)
        fprintf(stderr, "sluice scheduler: schedule %s: cannot record its run's pid: %s\n", name,
                meta_strerror(rc));
}

/* ---- runs ---- */

static void tick(scheduler *s);
static void once_check(scheduler *s);

static void child_closed(uv_handle_t *h) { free(h->data); }

static void child_exited(uv_process_t *proc, int64_t status, int signal) {
    child *c = proc->data;
    scheduler *s = c->s;
    if (signal)
        say("schedule %s: run ended by signal %d", c->name, signal);
    else
        say("schedule %s: run exited with status %d", c->name, (int)status);
    for (child **p = &s->children; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    uv_close((uv_handle_t *)proc, child_closed);
    if (s->stopping)
        return;
    set_pid(s, c->name, 0);
    if (s->once)
        once_check(s);
    else
        tick(s); /* a catchup may owe more */
}

/* Starts 'sluice run' for d with cause pairs extra ("key=value"). */
static int start_run(scheduler *s, const sched_def *d, int64_t fire, const char *extra) {
    char logdir[4200], logpath[4400], when[32], c_name[100], c_kind[40], c_when[60];
    snprintf(logdir, sizeof(logdir), "%s/scheduler/logs", s->store);
    snprintf(logpath, sizeof(logpath), "%s/%s.log", logdir, d->name);
    mkdir_p(logdir, 0755);
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        fprintf(stderr, "sluice scheduler: %s: %s\n", logpath, strerror(errno));
        return -errno;
    }
    sched_iso(fire, when, sizeof(when));
    snprintf(c_name, sizeof(c_name), "schedule=%s", d->name);
    snprintf(c_kind, sizeof(c_kind), "trigger=%s", sched_kind_name(d->kind));
    snprintf(c_when, sizeof(c_when), "fired_at=%s", when);
    char *args[64 * 2 + 20];
    int n = 0;
    args[n++] = (char *)cli_exe_path();
    args[n++] = "--store";
    args[n++] = (char *)s->store;
    args[n++] = "run";
    args[n++] = (char *)d->file;
    for (size_t i = 0; i < d->n_params; i++) {
        args[n++] = "-p";
        args[n++] = d->params[i];
    }
    args[n++] = "--cause";
    args[n++] = c_name;
    args[n++] = "--cause";
    args[n++] = c_kind;
    args[n++] = "--cause";
    args[n++] = c_when;
    if (extra) {
        args[n++] = "--cause";
        args[n++] = (char *)extra;
    }
    args[n] = NULL;
    child *c = calloc(1, sizeof(*c));
    if (!c) {
        close(log);
        return -ENOMEM;
    }
    c->s = s;
    snprintf(c->name, sizeof(c->name), "%s", d->name);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = log},
        {.flags = UV_INHERIT_FD, .data.fd = log},
    };
    uv_process_options_t o = {
        .file = args[0], .args = args, .exit_cb = child_exited, .stdio_count = 3, .stdio = stdio};
    c->proc.data = c;
    int rc = uv_spawn(s->loop, &c->proc, &o);
    close(log);
    if (rc) {
        fprintf(stderr, "sluice scheduler: schedule %s: cannot start %s: %s\n", d->name, args[0],
                uv_strerror(rc));
        uv_close((uv_handle_t *)&c->proc, child_closed);
        return rc;
    }
    c->next = s->children;
    s->children = c;
    set_pid(s, d->name, c->proc.pid);
    say("schedule %s: started run (pid %d) for %s%s%s, log %s", d->name, c->proc.pid, when,
        extra ? ", " : "", extra ? extra : "", logpath);
    return 0;
}

/* ---- time schedules ---- */

static void tick_timer_cb(uv_timer_t *t) { tick(t->data); }

/* Fires what is due and arms the timer for the next fire time (at the
 * latest the poll interval away, when records are read again). Returns
 * the number of runs started. */
static int tick_once(scheduler *s) {
    defs ds = {0};
    int started = 0, rc = schedules_each(&s->m, collect, &ds);
    if (rc)
        fprintf(stderr, "sluice scheduler: cannot read the schedules: %s\n", meta_strerror(rc));
    int64_t now = now_of(s), wake = now + s->poll_s;
    for (size_t i = 0; i < ds.n; i++) {
        sched_def *d = &ds.items[i];
        if (d->paused || d->kind > SK_AT || busy(s, d))
            continue;
        sched_due due;
        sched_due_at(d, now, &due);
        if (due.n_due) {
            d->last_fire = due.run_at;
            d->runs += due.run;
            d->skipped += due.skipped;
            if (due.skipped)
                say("schedule %s: %lld fire time(s) skipped (catchup %s)", d->name,
                    (long long)due.skipped, sched_catchup_name(d->catchup));
            if (save_state(s, d) == 0 && due.run && start_run(s, d, due.run_at, NULL) == 0)
                started++;
        }
        int64_t next;
        if (!is_running(s, d->name) &&
            sched_next_after(d, d->last_fire ? d->last_fire : d->created, &next) == 0 &&
            next < wake)
            wake = next > now ? next : now + 1; /* owed but not started: retry in 1 s */
    }
    defs_free(&ds);
    if (!s->once && !s->stopping)
        uv_timer_start(&s->tick, tick_timer_cb, (uint64_t)(wake - now) * 1000 + 5, 0);
    return started;
}

static void tick(scheduler *s) { tick_once(s); }

/* ---- triggers ---- */

static void poll_work(uv_work_t *w) {
    scheduler *s = w->data;
    for (size_t i = 0; i < s->n_pdefs; i++)
        s->codes[i] = sched_poll(&s->pdefs[i], s->store, &s->m, s->values[i], sizeof(s->values[i]),
                                 s->whys[i], sizeof(s->whys[i]));
}

static void poll_free(scheduler *s) {
    for (size_t i = 0; i < s->n_pdefs; i++)
        sched_def_free(&s->pdefs[i]);
    free(s->pdefs);
    free(s->values);
    free(s->whys);
    free(s->codes);
    s->pdefs = NULL;
    s->values = NULL;
    s->whys = NULL;
    s->codes = NULL;
    s->n_pdefs = 0;
}

static void poll_done(uv_work_t *w, int status) {
    scheduler *s = w->data;
    s->poll_busy = 0;
    for (size_t i = 0; status == 0 && !s->stopping && i < s->n_pdefs; i++) {
        sched_def *d = &s->pdefs[i];
        if (s->codes[i]) {
            fprintf(stderr, "sluice scheduler: schedule %s: %s\n", d->name, s->whys[i]);
            continue;
        }
        if (!sched_poll_is_new(d, s->values[i]))
            continue;
        /* A repository 'add' could not read: its first commit seen is the
         * baseline. (Warehouse and artifact baselines are always taken at
         * 'add'; "" there is a value: no artifact yet.) */
        int baseline = !d->last_seen[0] && d->kind == SK_GIT;
        snprintf(d->last_seen, sizeof(d->last_seen), "%s", s->values[i]);
        if (baseline) { /* the first look: only what comes later fires */
            save_state(s, d);
            continue;
        }
        d->last_fire = now_of(s);
        d->runs++;
        char extra[200];
        snprintf(extra, sizeof(extra), "%s=%s",
                 d->kind == SK_GIT        ? "commit"
                 : d->kind == SK_ARTIFACT ? "artifact"
                                          : "documents",
                 s->values[i]);
        if (save_state(s, d) == 0)
            start_run(s, d, d->last_fire, extra);
    }
    poll_free(s);
    if (s->once && !s->stopping)
        once_check(s);
}

static void poll_start(scheduler *s) {
    if (s->poll_busy || s->stopping)
        return;
    defs ds = {0};
    if (schedules_each(&s->m, collect, &ds) != 0) {
        defs_free(&ds);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < ds.n; i++) {
        sched_def *d = &ds.items[i];
        if (!d->paused && d->kind > SK_AT && !busy(s, d))
            ds.items[n++] = *d; /* moved: its params go with it */
        else
            sched_def_free(d);
    }
    ds.n = n;
    if (n == 0) {
        defs_free(&ds);
        return;
    }
    s->pdefs = ds.items;
    s->n_pdefs = n;
    s->values = calloc(n, sizeof(*s->values));
    s->whys = calloc(n, sizeof(*s->whys));
    s->codes = calloc(n, sizeof(*s->codes));
    if (!s->values || !s->whys || !s->codes) {
        poll_free(s);
        return;
    }
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, poll_work, poll_done) == 0)
        s->poll_busy = 1;
    else
        poll_free(s);
}

static void poll_timer_cb(uv_timer_t *t) {
    scheduler *s = t->data;
    poll_start(s);
    tick(s); /* schedules added or resumed since */
}

/* ---- the loop ---- */

static void close_handle(uv_handle_t *h, void *arg) {
    (void)arg;
    /* A run's process is let go, not killed: it finishes on its own. */
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_PROCESS ? child_closed : NULL);
}

static void stop(scheduler *s) {
    s->stopping = 1;
    uv_walk(s->loop, close_handle, NULL);
}

/* --once: done when nothing runs, no poll is in flight, and a last look
 * starts nothing more (catchup all runs its times one after another). */
static void once_check(scheduler *s) {
    if (s->children || s->poll_busy)
        return;
    if (tick_once(s) == 0)
        stop(s);
}

static void on_signal(uv_signal_t *h, int signum) {
    scheduler *s = h->data;
    int n = 0;
    for (child *c = s->children; c; c = c->next)
        n++;
    say("scheduler: stopping on signal %d (%d run%s still going, let go)", signum, n,
        n == 1 ? "" : "s");
    stop(s);
}

/* The store's one scheduler: an exclusive lock held while it runs. */
static int take_lock(const char *store, int *fd_out) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/scheduler.lock", store);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "sluice scheduler: %s: %s\n", path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t got = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[got > 0 ? got : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr,
                "sluice scheduler: another scheduler runs on the store %s (pid %s, holding "
                "%s); one per store\n",
                store, pid[0] ? pid : "?", path);
        close(fd);
        return EXIT_BAD_INPUT;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        fprintf(stderr, "sluice scheduler: warning: cannot write the pid to %s\n", path);
    *fd_out = fd;
    return 0;
}

int cmd_scheduler(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"once", no_argument, NULL, 'o'},
        {"poll", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    scheduler s = {.store = g->store, .poll_s = 30};
    int c, bad = 0;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        char *end;
        if (c == 'o') {
            s.once = 1;
        } else if (c == 'P') {
            long v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 86400) {
                fprintf(stderr,
                        "sluice scheduler: --poll takes seconds from 1 to 86400, not "
                        "'%s'\n",
                        optarg);
                bad = 1;
            }
            s.poll_s = (int)v;
        } else {
            bad = 1;
        }
    }
    if (!bad && optind != argc) {
        fprintf(stderr, "sluice scheduler: takes no operands (see 'sluice scheduler --help')\n");
        bad = 1;
    }
    if (bad)
        return EXIT_BAD_INPUT;
    setvbuf(stdout, NULL, _IOLBF, 0);
    artifact_store st;
    int rc = store_open(&st, g->store), lock = -1;
    store_close(&st);
    if (rc) {
        fprintf(stderr, "sluice scheduler: cannot open the store %s: %s\n", g->store,
                strerror(-rc));
        return EXIT_BAD_INPUT;
    }
    if (take_lock(g->store, &lock) != 0)
        return EXIT_BAD_INPUT;
    if ((rc = meta_open(&s.m, g->store, 0)) != 0) {
        fprintf(stderr, "sluice scheduler: cannot open the metadata in %s/meta: %s\n", g->store,
                meta_error(&s.m, rc));
        close(lock);
        return EXIT_BAD_INPUT;
    }
    s.loop = uv_default_loop();
    s.once_now = sched_now();
    uv_timer_init(s.loop, &s.tick);
    uv_timer_init(s.loop, &s.poll);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    s.tick.data = s.poll.data = s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    if (!s.once)
        say("scheduler: running on the store %s (polling triggers every %ds)", g->store, s.poll_s);
    tick(&s);
    poll_start(&s);
    if (s.once)
        once_check(&s);
    else
        uv_timer_start(&s.poll, poll_timer_cb, (uint64_t)s.poll_s * 1000,
                       (uint64_t)s.poll_s * 1000);
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    meta_close(&s.m);
    close(lock);
    return EXIT_DONE;
}
