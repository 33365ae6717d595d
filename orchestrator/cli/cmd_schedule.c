/* cmd_schedule.c - sluice schedule add|list|show|remove|pause|resume: the
 * schedules of a store, as records of its metadata (schedules.h). The
 * scheduler that runs them is cmd_scheduler.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "duration.h"
#include "fsutil.h"
#include "inspect.h"
#include "schedule.h"
#include "schedules.h"
#include "store.h"

/* Opens the store's metadata for writing, making the store if needed. */
static int open_writable(const cli_globals *g, meta_db *m) {
    artifact_store st;
    int rc = store_open(&st, g->store);
    store_close(&st);
    if (rc == 0 && (rc = meta_open(m, g->store, 0)) != 0) {
        fprintf(stderr, "sluice schedule: cannot open the metadata in %s/meta: %s\n", g->store,
                meta_error(m, rc));
        return EXIT_BAD_INPUT;
    }
    if (rc) {
        fprintf(stderr, "sluice schedule: cannot open the store %s: %s\n", g->store, strerror(-rc));
        return EXIT_BAD_INPUT;
    }
    return 0;
}

static int valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* The trigger of --on into doc (and d, for the baseline poll); 0 or
 * EXIT_BAD_INPUT (reported). */
static int parse_on(const char *on, bson_t *doc, sched_def *d) {
    if (strncmp(on, "git:", 4) == 0 && on[4]) {
        const char *repo = on + 4, *at = strrchr(repo, '@');
        const char *slash = strrchr(repo, '/'), *colon = strrchr(repo, ':');
        /* REPO@BRANCH: an '@' after the path's last '/' or ':' (not user@host). */
        if (at && (!slash || at > slash) && (!colon || at > colon) && at[1]) {
            snprintf(d->branch, sizeof(d->branch), "%s", at + 1);
        } else {
            at = NULL;
        }
        snprintf(d->repo, sizeof(d->repo), "%.*s", at ? (int)(at - repo) : (int)strlen(repo), repo);
        if (!strstr(d->repo, "://") && !(strchr(d->repo, '@') && strchr(d->repo, ':'))) {
            char *real = realpath(d->repo, NULL);
            if (!real) {
                fprintf(stderr, "sluice schedule: --on %s: no repository at %s: %s\n", on, d->repo,
                        strerror(errno));
                return EXIT_BAD_INPUT;
            }
            snprintf(d->repo, sizeof(d->repo), "%s", real);
            free(real);
        }
        d->kind = SK_GIT;
        BSON_APPEND_UTF8(doc, "repo", d->repo);
        BSON_APPEND_UTF8(doc, "branch", d->branch);
        return 0;
    }
    if (strcmp(on, "warehouse") == 0) {
        d->kind = SK_WAREHOUSE;
        return 0;
    }
    if (strncmp(on, "artifact:", 9) == 0) {
        const char *spec = on + 9, *first = strchr(spec, '.'), *last = strrchr(spec, '.');
        if (!first || first == last || first == spec || last[1] == '\0' || last == first + 1) {
            fprintf(stderr,
                    "sluice schedule: --on %s: an artifact trigger is "
                    "artifact:PIPELINE.STEP.OUTPUT\n",
                    on);
            return EXIT_BAD_INPUT;
        }
        snprintf(d->pipeline, sizeof(d->pipeline), "%.*s", (int)(first - spec), spec);
        snprintf(d->step, sizeof(d->step), "%.*s", (int)(last - first - 1), first + 1);
        snprintf(d->output, sizeof(d->output), "%s", last + 1);
        d->kind = SK_ARTIFACT;
        BSON_APPEND_UTF8(doc, "pipeline", d->pipeline);
        BSON_APPEND_UTF8(doc, "step", d->step);
        BSON_APPEND_UTF8(doc, "output", d->output);
        return 0;
    }
    fprintf(stderr,
            "sluice schedule: --on takes git:REPO[@BRANCH], warehouse or "
            "artifact:PIPELINE.STEP.OUTPUT, not '%s'\n",
            on);
    return EXIT_BAD_INPUT;
}

typedef struct add_args {
    const char *cron, *tz, *every, *at, *on, *catchup;
    cli_params ps;
} add_args;

static int schedule_add(const cli_globals *g, const char *name, const char *file, add_args *a) {
    sched_def *d = calloc(1, sizeof(*d));
    bson_t doc = BSON_INITIALIZER;
    int status = EXIT_BAD_INPUT, n_when = !!a->cron + !!a->every + !!a->at + !!a->on;
    char why[512] = "";
    if (!d) {
        fprintf(stderr, "sluice schedule: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    d->created = sched_now();
    if (!valid_name(name)) {
        fprintf(stderr,
                "sluice schedule add: a name is 1 to 64 letters, digits, '-', '_' or '.', "
                "not '%s'\n",
                name);
        goto out;
    }
    if (n_when != 1) {
        fprintf(stderr, "sluice schedule add: give one of --cron, --every, --at or --on\n");
        goto out;
    }
    if (a->tz && !a->cron && !a->at) {
        fprintf(stderr, "sluice schedule add: --tz is for --cron and --at\n");
        goto out;
    }
    if (a->tz && !cron_zone_valid(a->tz)) {
        fprintf(stderr,
                "sluice schedule add: --tz %s: no such time zone (a name of the tz database, "
                "e.g. Europe/Berlin, or UTC)\n",
                a->tz);
        goto out;
    }
    int catchup = CATCHUP_LATEST;
    if (a->catchup) {
        catchup = !strcmp(a->catchup, "none")     ? CATCHUP_NONE
                  : !strcmp(a->catchup, "latest") ? CATCHUP_LATEST
                  : !strcmp(a->catchup, "all")    ? CATCHUP_ALL
                                                  : -1;
        if (catchup < 0) {
            fprintf(stderr, "sluice schedule add: --catchup is none, latest or all, not '%s'\n",
                    a->catchup);
            goto out;
        }
    }
    d->catchup = (sched_catchup)catchup;
    if (a->cron) {
        d->kind = SK_CRON;
        snprintf(d->expr, sizeof(d->expr), "%s", a->cron);
        if (cron_parse(a->cron, &d->cron, why, sizeof(why)) != 0) {
            fprintf(stderr, "sluice schedule add: --cron '%s': %s\n", a->cron, why);
            goto out;
        }
        int64_t next;
        if (cron_next(&d->cron, a->tz, d->created, &next) != 0) {
            fprintf(stderr, "sluice schedule add: --cron '%s' never fires (no such day)\n",
                    a->cron);
            goto out;
        }
    } else if (a->every) {
        int64_t ms;
        const char *w = NULL;
        d->kind = SK_EVERY;
        if (duration_parse(a->every, strlen(a->every), &ms, &w) != 0 || ms < 1000) {
            fprintf(stderr, "sluice schedule add: --every '%s': %s\n", a->every,
                    w ? w : "an interval is at least 1s");
            goto out;
        }
        d->every_s = ms / 1000;
        BSON_APPEND_INT64(&doc, "every_s", d->every_s);
        snprintf(d->expr, sizeof(d->expr), "%s", a->every);
    } else if (a->at) {
        d->kind = SK_AT;
        if (cron_parse_time(a->at, a->tz, &d->at, why, sizeof(why)) != 0) {
            fprintf(stderr, "sluice schedule add: --at %s\n", why);
            goto out;
        }
        if (d->at <= d->created) {
            fprintf(stderr, "sluice schedule add: --at '%s' is in the past\n", a->at);
            goto out;
        }
        BSON_APPEND_INT64(&doc, "at", d->at);
        snprintf(d->expr, sizeof(d->expr), "%s", a->at);
    } else if (parse_on(a->on, &doc, d) != 0) {
        goto out;
    } else {
        snprintf(d->expr, sizeof(d->expr), "%s", a->on);
    }
    /* The pipeline must be valid now, with these -p values. */
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    pipeline *p = NULL;
    int loaded = cli_load_pipeline(file, &a->ps, LOAD_STRICT_CHECK, &reg, &p);
    pipeline_free(p);
    registry_free(&reg);
    if (loaded != 0)
        goto out;
    char *real = realpath(file, NULL);
    if (!real) {
        fprintf(stderr, "sluice schedule add: %s: %s\n", file, strerror(errno));
        goto out;
    }
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_UTF8(&doc, "file", real);
    free(real);
    bson_t params, state;
    BSON_APPEND_ARRAY_BEGIN(&doc, "params", &params);
    for (size_t i = 0; i < a->ps.n; i++) {
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        BSON_APPEND_UTF8(&params, k, a->ps.items[i]);
    }
    bson_append_array_end(&doc, &params);
    BSON_APPEND_UTF8(&doc, "kind", sched_kind_name(d->kind));
    BSON_APPEND_UTF8(&doc, "expr", d->expr);
    BSON_APPEND_UTF8(&doc, "tz", a->tz ? a->tz : "");
    BSON_APPEND_UTF8(&doc, "catchup", sched_catchup_name(d->catchup));
    BSON_APPEND_BOOL(&doc, "paused", false);
    BSON_APPEND_INT64(&doc, "created", d->created);
    meta_db m;
    if (open_writable(g, &m) != 0)
        goto out;
    /* A trigger starts from what is there now: only what comes later fires. */
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "state", &state);
    if (d->kind >= SK_GIT) {
        char seen[128] = "";
        if (sched_poll(d, g->store, &m, seen, sizeof(seen), why, sizeof(why)) == 0)
            BSON_APPEND_UTF8(&state, "last_seen", seen);
        else if (d->kind == SK_GIT)
            fprintf(stderr, "sluice schedule add: warning: %s (the scheduler will retry)\n", why);
    }
    bson_append_document_end(&doc, &state);
    int rc = schedules_put(&m, name, &doc, 1);
    meta_close(&m);
    if (rc == -EEXIST) {
        fprintf(stderr,
                "sluice schedule add: a schedule '%s' exists ('sluice schedule remove "
                "%s' first)\n",
                name, name);
    } else if (rc) {
        fprintf(stderr, "sluice schedule add: cannot record it: %s\n", meta_strerror(rc));
    } else {
        printf("schedule %s added\n", name);
        status = EXIT_DONE;
    }
out:
    bson_destroy(&doc);
    sched_def_free(d);
    free(d);
    return status;
}

/* The next fire time of a time schedule, as text ("-" for none). */
static void next_text(const sched_def *d, char *out, size_t size) {
    int64_t next;
    snprintf(out, size, "-");
    if (d->kind <= SK_AT && !d->paused &&
        sched_next_after(d, d->last_fire ? d->last_fire : d->created, &next) == 0)
        cron_format_time(next, d->tz, out, size);
}

typedef struct list_ctx {
    int json, n;
    bson_t array;
} list_ctx;

static int list_one(void *ud, const char *key, size_t key_len, const bson_t *doc) {
    list_ctx *l = ud;
    if (l->json) {
        inspect_append_item(&l->array, "name", key, key_len, doc);
        return 0;
    }
    sched_def *d = calloc(1, sizeof(*d));
    char why[256], next[64];
    if (!d)
        return -ENOMEM;
    if (sched_def_from_bson(doc, d, why, sizeof(why)) == 0) {
        next_text(d, next, sizeof(next));
        if (l->n++ == 0)
            printf("%-20s %-9s %-28s %-8s %s\n", "NAME", "KIND", "WHEN", "STATE", "NEXT");
        printf("%-20s %-9s %-28s %-8s %s\n", d->name, sched_kind_name(d->kind), d->expr,
               d->paused ? "paused" : "active", next);
    }
    sched_def_free(d);
    free(d);
    return 0;
}

static int schedule_list(const cli_globals *g, int json) {
    meta_db m = {0};
    int rc = inspect_open(g->store, &m, 1);
    list_ctx l = {json, 0, BSON_INITIALIZER};
    if (rc == INSPECT_NO_STORE)
        rc = 0;
    else if (rc)
        return rc;
    else
        rc = schedules_each(&m, list_one, &l);
    if (rc == 0 && json) {
        bson_t top = BSON_INITIALIZER;
        BSON_APPEND_ARRAY(&top, "schedules", &l.array);
        inspect_print_json(&top);
        bson_destroy(&top);
    } else if (rc == 0 && l.n == 0) {
        printf("no schedules ('sluice schedule add' makes one)\n");
    }
    bson_destroy(&l.array);
    if (m.env)
        meta_close(&m);
    if (rc) {
        fprintf(stderr, "sluice schedule list: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    return EXIT_DONE;
}

static int not_found(const char *name) {
    fprintf(stderr, "sluice schedule: no schedule '%s' ('sluice schedule list' lists them)\n",
            name);
    return EXIT_BAD_INPUT;
}

static int schedule_show(const cli_globals *g, const char *name, int json) {
    meta_db m = {0};
    bson_t doc;
    int rc = inspect_open(g->store, &m, 1);
    if (rc == INSPECT_NO_STORE)
        return not_found(name);
    if (rc)
        return rc;
    rc = schedules_get(&m, name, &doc);
    meta_close(&m);
    if (rc == -ENOENT)
        return not_found(name);
    if (rc) {
        fprintf(stderr, "sluice schedule show: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    sched_def *d = calloc(1, sizeof(*d));
    char why[256] = "", next[64], last[64];
    int status = EXIT_DONE;
    if (!d || sched_def_from_bson(&doc, d, why, sizeof(why)) != 0) {
        fprintf(stderr, "sluice schedule show: %s\n", d ? why : "out of memory");
        status = EXIT_BAD_INPUT;
    } else if (json) {
        bson_t out = BSON_INITIALIZER;
        bson_concat(&out, &doc);
        next_text(d, next, sizeof(next));
        BSON_APPEND_UTF8(&out, "next", next);
        inspect_print_json(&out);
        bson_destroy(&out);
    } else {
        next_text(d, next, sizeof(next));
        printf("schedule %s (%s)\n", d->name, d->paused ? "paused" : "active");
        printf("  pipeline %s\n", d->file);
        for (size_t i = 0; i < d->n_params; i++)
            printf("  param %s\n", d->params[i]);
        printf("  %s %s%s%s\n", sched_kind_name(d->kind), d->expr, d->tz[0] ? " in " : "", d->tz);
        printf("  catchup %s\n", sched_catchup_name(d->catchup));
        if (d->kind <= SK_AT)
            printf("  next %s\n", next);
        if (d->last_fire) {
            cron_format_time(d->last_fire, d->tz, last, sizeof(last));
            printf("  last fire %s\n", last);
        }
        if (d->last_seen[0])
            printf("  last seen %s\n", d->last_seen);
        printf("  runs %lld, skipped %lld\n", (long long)d->runs, (long long)d->skipped);
    }
    if (d)
        sched_def_free(d);
    free(d);
    bson_destroy(&doc);
    return status;
}

/* remove, pause, resume. */
static int schedule_change(const cli_globals *g, const char *verb, const char *name) {
    meta_db m;
    if (open_writable(g, &m) != 0)
        return EXIT_BAD_INPUT;
    int rc;
    if (strcmp(verb, "remove") == 0) {
        rc = schedules_remove(&m, name);
    } else {
        bson_t ch = BSON_INITIALIZER;
        BSON_APPEND_BOOL(&ch, "paused", strcmp(verb, "pause") == 0);
        rc = schedules_update(&m, name, &ch);
        bson_destroy(&ch);
    }
    meta_close(&m);
    if (rc == -ENOENT)
        return not_found(name);
    if (rc) {
        fprintf(stderr, "sluice schedule %s: %s\n", verb, meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    printf("schedule %s %s\n", name,
           !strcmp(verb, "remove")  ? "removed"
           : !strcmp(verb, "pause") ? "paused"
                                    : "resumed");
    return EXIT_DONE;
}

/* The exit statuses of 'schedule fire' beyond 0 and 2, which sluice serve's
 * POST /hooks/NAME turns into HTTP statuses (docs/schedules.md). */
enum { FIRE_NO_SCHEDULE = 3, FIRE_DUPLICATE = 4, FIRE_PAUSED = 5 };

static int delivery_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 128)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == ':'))
            return 0;
    return 1;
}

/* sluice schedule fire NAME [--trigger KIND] [--delivery ID] [--json]: the
 * schedule's pipeline started now, detached (its own session, its output
 * appended to STORE/scheduler/logs/NAME.log, as the scheduler's runs),
 * with the cause schedule, trigger, fired_at and delivery. A delivery
 * already noted in the record fires nothing (FIRE_DUPLICATE). */
static int schedule_fire(const cli_globals *g, const char *name, const char *trigger,
                         const char *delivery, int json) {
    if (!valid_name(trigger) || (delivery && !delivery_ok(delivery))) {
        fprintf(stderr, "sluice schedule fire: --trigger and --delivery take letters, digits, '-', "
                        "'_', '.' (and ':' in a delivery), at most 64 and 128 of them\n");
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    bson_t doc;
    if (open_writable(g, &m) != 0)
        return EXIT_BAD_INPUT;
    int rc = schedules_get(&m, name, &doc);
    if (rc) {
        meta_close(&m);
        if (rc == -ENOENT) {
            not_found(name);
            return FIRE_NO_SCHEDULE;
        }
        fprintf(stderr, "sluice schedule fire: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    sched_def *d = calloc(1, sizeof(*d));
    char why[256] = "";
    int status = EXIT_BAD_INPUT;
    if (!d || sched_def_from_bson(&doc, d, why, sizeof(why)) != 0) {
        fprintf(stderr, "sluice schedule fire: %s\n", d ? why : "out of memory");
        goto done;
    }
    if (d->paused) {
        fprintf(stderr, "sluice schedule fire: schedule %s is paused ('sluice schedule resume')\n",
                name);
        status = FIRE_PAUSED;
        goto done;
    }
    if (delivery && (rc = schedules_claim_delivery(&m, name, delivery)) != 0) {
        if (rc == -EALREADY)
            fprintf(stderr, "sluice schedule fire: schedule %s: delivery %s fired already\n", name,
                    delivery);
        else
            fprintf(stderr, "sluice schedule fire: %s\n",
                    rc == -ENOENT ? "the schedule was removed" : meta_strerror(rc));
        status = rc == -EALREADY ? FIRE_DUPLICATE : rc == -ENOENT ? FIRE_NO_SCHEDULE : status;
        goto done;
    }
    if ((rc = meta_sync(&m)) != 0) {
        fprintf(stderr, "sluice schedule fire: %s\n", meta_strerror(rc));
        goto done;
    }
    meta_close(&m); /* not the run's: it opens the store itself */
    m.env = NULL;
    char logdir[4200], logpath[4400], when[32], c_name[100], c_kind[100], c_when[60], c_del[160];
    snprintf(logdir, sizeof(logdir), "%s/scheduler/logs", g->store);
    snprintf(logpath, sizeof(logpath), "%s/%s.log", logdir, d->name);
    mkdir_p(logdir, 0755);
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        fprintf(stderr, "sluice schedule fire: %s: %s\n", logpath, strerror(errno));
        goto done;
    }
    sched_iso(sched_now(), when, sizeof(when));
    snprintf(c_name, sizeof(c_name), "schedule=%s", d->name);
    snprintf(c_kind, sizeof(c_kind), "trigger=%s", trigger);
    snprintf(c_when, sizeof(c_when), "fired_at=%s", when);
    snprintf(c_del, sizeof(c_del), "delivery=%s", delivery ? delivery : "");
    char *args[64 * 2 + 20];
    int n = 0;
    args[n++] = (char *)cli_exe_path();
    args[n++] = "--store";
    args[n++] = (char *)g->store;
    args[n++] = "run";
    args[n++] = d->file;
    for (size_t i = 0; i < d->n_params; i++) {
        args[n++] = "-p";
        args[n++] = d->params[i];
    }
    args[n++] = "--cause", args[n++] = c_name;
    args[n++] = "--cause", args[n++] = c_kind;
    args[n++] = "--cause", args[n++] = c_when;
    if (delivery)
        args[n++] = "--cause", args[n++] = c_del;
    args[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        /* its own session, no descriptor of whoever fired it (a server's
         * pipe would otherwise stay open until the run ends) */
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 || setsid() < 0)
            _exit(EXIT_BAD_INPUT);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execv(args[0], args);
        _exit(127);
    }
    close(log);
    if (pid < 0) {
        fprintf(stderr, "sluice schedule fire: cannot start %s: %s\n", args[0], strerror(errno));
        goto done;
    }
    if (json) {
        bson_t out = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&out, "schedule", d->name);
        BSON_APPEND_UTF8(&out, "trigger", trigger);
        if (delivery)
            BSON_APPEND_UTF8(&out, "delivery", delivery);
        BSON_APPEND_UTF8(&out, "fired_at", when);
        BSON_APPEND_INT64(&out, "pid", pid);
        BSON_APPEND_UTF8(&out, "log", logpath);
        char *text = bson_as_relaxed_extended_json(&out, NULL);
        if (text)
            printf("%s\n", text);
        bson_free(text);
        bson_destroy(&out);
    } else {
        printf("schedule %s: started run (pid %d), log %s\n", d->name, (int)pid, logpath);
    }
    status = EXIT_DONE;
done:
    if (m.env)
        meta_close(&m);
    if (d)
        sched_def_free(d);
    free(d);
    bson_destroy(&doc);
    return status;
}

int cmd_schedule(const cli_globals *g, int argc, char **argv) {
    enum {
        OPT_CRON = 256,
        OPT_TZ,
        OPT_EVERY,
        OPT_AT,
        OPT_ON,
        OPT_CATCHUP,
        OPT_JSON,
        OPT_TRIGGER,
        OPT_DELIVERY
    };
    static const struct option longopts[] = {
        {"param", required_argument, NULL, 'p'},
        {"cron", required_argument, NULL, OPT_CRON},
        {"tz", required_argument, NULL, OPT_TZ},
        {"every", required_argument, NULL, OPT_EVERY},
        {"at", required_argument, NULL, OPT_AT},
        {"on", required_argument, NULL, OPT_ON},
        {"catchup", required_argument, NULL, OPT_CATCHUP},
        {"json", no_argument, NULL, OPT_JSON},
        {"trigger", required_argument, NULL, OPT_TRIGGER},
        {"delivery", required_argument, NULL, OPT_DELIVERY},
        {NULL, 0, NULL, 0},
    };
    add_args a = {0};
    int c, bad = 0, json = 0, add_opts = 0, fire_opts = 0;
    const char *trigger = "manual", *delivery = NULL;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":p:", longopts)) != -1) {
        add_opts |= c != OPT_JSON && c != OPT_TRIGGER && c != OPT_DELIVERY;
        fire_opts |= c == OPT_TRIGGER || c == OPT_DELIVERY;
        switch (c) {
        case OPT_TRIGGER:
            trigger = optarg;
            break;
        case OPT_DELIVERY:
            delivery = optarg;
            break;
        case 'p':
            bad = cli_params_add(&a.ps, optarg) != 0;
            break;
        case OPT_CRON:
            a.cron = optarg;
            break;
        case OPT_TZ:
            a.tz = optarg;
            break;
        case OPT_EVERY:
            a.every = optarg;
            break;
        case OPT_AT:
            a.at = optarg;
            break;
        case OPT_ON:
            a.on = optarg;
            break;
        case OPT_CATCHUP:
            a.catchup = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        default:
            bad = 1;
        }
    }
    const char *sub = optind < argc ? argv[optind] : "";
    int n = argc - optind, status = EXIT_BAD_INPUT;
    if (bad) {
        /* reported */
    } else if (strcmp(sub, "add") == 0 && n == 3 && !fire_opts) {
        status = schedule_add(g, argv[optind + 1], argv[optind + 2], &a);
    } else if (strcmp(sub, "fire") == 0 && n == 2 && !add_opts) {
        status = schedule_fire(g, argv[optind + 1], trigger, delivery, json);
    } else if (fire_opts) {
        fprintf(stderr, "sluice schedule: --trigger and --delivery are for 'fire NAME'\n");
    } else if (add_opts) {
        fprintf(stderr, "sluice schedule: -p, --cron, --tz, --every, --at, --on and --catchup "
                        "are for 'add NAME FILE'\n");
    } else if (strcmp(sub, "list") == 0 && n == 1) {
        status = schedule_list(g, json);
    } else if (strcmp(sub, "show") == 0 && n == 2) {
        status = schedule_show(g, argv[optind + 1], json);
    } else if ((!strcmp(sub, "remove") || !strcmp(sub, "pause") || !strcmp(sub, "resume")) &&
               n == 2 && !json) {
        status = schedule_change(g, sub, argv[optind + 1]);
    } else {
        fprintf(stderr, "sluice schedule: see 'sluice schedule --help'\n");
    }
    cli_params_free(&a.ps);
    return status;
}
