/* schedule.c - schedule records read back, their fire times, and the
 * polls of triggers (schedule.h). */
#define _DEFAULT_SOURCE /* timegm */
#include "schedule.h"

#include <errno.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fsutil.h"
#include "inspect.h"
#include "record.h"

int64_t sched_now(void) {
    const char *fake = getenv("SLUICE_NOW");
    if (fake && fake[0]) {
        char *end;
        long long v = strtoll(fake, &end, 10);
        if (!*end)
            return v;
        int64_t t;
        char why[256];
        if (cron_parse_time(fake, "UTC", &t, why, sizeof(why)) == 0)
            return t;
    }
    return (int64_t)time(NULL);
}

void sched_iso(int64_t t, char *out, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *const kind_names[] = {"cron", "every", "at", "git", "warehouse", "artifact"};
static const char *const catchup_names[] = {"none", "latest", "all"};

const char *sched_kind_name(sched_kind k) { return kind_names[k]; }
const char *sched_catchup_name(sched_catchup c) { return catchup_names[c]; }

static int64_t num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)
               ? bson_iter_as_int64(&it)
               : 0;
}

static void str(const bson_t *doc, const char *key, char *out, size_t size) {
    snprintf(out, size, "%s", inspect_str(doc, key, ""));
}

static int lookup(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -1;
}

int sched_def_from_bson(const bson_t *doc, sched_def *d, char *why, size_t size) {
    memset(d, 0, sizeof(*d));
    str(doc, "name", d->name, sizeof(d->name));
    str(doc, "file", d->file, sizeof(d->file));
    int kind = lookup(kind_names, 6, inspect_str(doc, "kind", ""));
    int catchup = lookup(catchup_names, 3, inspect_str(doc, "catchup", "latest"));
    if (kind < 0 || catchup < 0) {
        snprintf(why, size, "schedule '%s': its record names no kind this sluice knows", d->name);
        return -EINVAL;
    }
    d->kind = (sched_kind)kind;
    d->catchup = (sched_catchup)catchup;
    str(doc, "expr", d->expr, sizeof(d->expr));
    str(doc, "tz", d->tz, sizeof(d->tz));
    str(doc, "repo", d->repo, sizeof(d->repo));
    str(doc, "branch", d->branch, sizeof(d->branch));
    str(doc, "pipeline", d->pipeline, sizeof(d->pipeline));
    str(doc, "step", d->step, sizeof(d->step));
    str(doc, "output", d->output, sizeof(d->output));
    d->every_s = num(doc, "every_s");
    d->at = num(doc, "at");
    d->created = num(doc, "created");
    d->pid = num(doc, "run_pid");
    bson_iter_t it, sub;
    d->paused = bson_iter_init_find(&it, doc, "paused") && bson_iter_as_bool(&it);
    if (bson_iter_init_find(&it, doc, "params") && bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub) && d->n_params < 64)
            if (BSON_ITER_HOLDS_UTF8(&sub) &&
                !(d->params[d->n_params++] = strdup(bson_iter_utf8(&sub, NULL)))) {
                snprintf(why, size, "out of memory");
                return -ENOMEM;
            }
    if (bson_iter_init_find(&it, doc, "state") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t len;
        const uint8_t *data;
        bson_iter_document(&it, &len, &data);
        bson_t state;
        if (bson_init_static(&state, data, len)) {
            d->last_fire = num(&state, "last_fire");
            d->runs = num(&state, "runs");
            d->skipped = num(&state, "skipped");

            str(&state, "last_seen", d->last_seen, sizeof(d->last_seen));
        }
    }
    if (d->kind == SK_CRON && cron_parse(d->expr, &d->cron, why, size) != 0)
        return -EINVAL;
    if (d->kind == SK_EVERY && d->every_s < 1) {
        snprintf(why, size, "schedule '%s': its interval is not positive", d->name);
        return -EINVAL;
    }
    return 0;
}

void sched_def_free(sched_def *d) {
    for (size_t i = 0; i < d->n_params; i++)
        free(d->params[i]);
    d->n_params = 0;
}

int sched_next_after(const sched_def *d, int64_t t, int64_t *next) {
    switch (d->kind) {
    case SK_CRON:
        return cron_next(&d->cron, d->tz, t, next);
    case SK_EVERY: /* anchored at the creation: created + k * every */
        *next = t < d->created ? d->created + d->every_s
                               : d->created + ((t - d->created) / d->every_s + 1) * d->every_s;
        return 0;
    case SK_AT:
        if (d->at <= t)
            return -ENOENT;
        *next = d->at;
        return 0;
    default:
        return -ENOENT;
    }
}

void sched_due_at(const sched_def *d, int64_t now, sched_due *out) {
    memset(out, 0, sizeof(*out));
    int64_t base = d->last_fire ? d->last_fire : d->created;
    /* A year of downtime at most is looked through: older times are gone. */
    if (base < now - 366LL * 86400)
        base = now - 366LL * 86400;
    int64_t ring[SCHED_CATCHUP_MAX], t = base, next;
    int64_t n = 0;
    while (sched_next_after(d, t, &next) == 0 && next <= now) {
        if (d->kind == SK_EVERY && n == 0 && now - next > (int64_t)SCHED_CATCHUP_MAX * d->every_s) {
            /* Straight to the last SCHED_CATCHUP_MAX intervals. */
            int64_t total = (now - next) / d->every_s + 1;
            int64_t jump = total - SCHED_CATCHUP_MAX;
            n = jump;
            t = next + (jump - 1) * d->every_s;
            continue;
        }
        ring[n % SCHED_CATCHUP_MAX] = next;
        n++;
        t = next;
    }
    out->n_due = n;
    if (n == 0)
        return;
    int64_t newest = ring[(n - 1) % SCHED_CATCHUP_MAX];
    switch (d->catchup) {
    case CATCHUP_NONE:
        out->run = now - newest <= SCHED_GRACE_S;
        out->run_at = newest;
        out->skipped = n - out->run;
        break;
    case CATCHUP_LATEST:
        out->run = 1;
        out->run_at = newest;
        out->skipped = n - 1;
        break;
    case CATCHUP_ALL: {
        int64_t kept = n < SCHED_CATCHUP_MAX ? n : SCHED_CATCHUP_MAX;
        out->run = 1;
        out->run_at = ring[(n - kept) % SCHED_CATCHUP_MAX];
        out->skipped = n - kept;
        break;
    }
    }
}

/* ---- trigger polls ---- */

static void git_why(const char *what, const char *repo, char *why, size_t size) {
    const git_error *e = git_error_last();
    snprintf(why, size, "%s %s: %s", what, repo, e && e->message ? e->message : "failed");
}

/* A URL or scp-like address rather than a folder. */
static int is_remote(const char *repo) {
    return strstr(repo, "://") || (strchr(repo, '@') && strchr(repo, ':') && repo[0] != '/');
}

/* The mirror a remote repository is fetched into: STORE/scheduler/git/NAME. */
static int poll_remote(const sched_def *d, const char *store, char *value, size_t size, char *why,
                       size_t why_size) {
    char dir[4400];
    snprintf(dir, sizeof(dir), "%s/scheduler/git/%s", store, d->name);
    git_repository *repo = NULL;
    git_remote *remote = NULL;
    int rc = 0;
    if (git_repository_open_bare(&repo, dir) != 0) {
        mkdir_p(dir, 0755);
        if (git_repository_init(&repo, dir, 1) != 0) {
            git_why("making a mirror of", d->repo, why, why_size);
            return -EIO;
        }
    }
    char spec[400];
    if (d->branch[0])
        snprintf(spec, sizeof(spec), "+refs/heads/%s:refs/sluice/watched", d->branch);
    else
        snprintf(spec, sizeof(spec), "+HEAD:refs/sluice/watched");
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    git_oid oid;
    if (git_remote_create_anonymous(&remote, repo, d->repo) != 0 ||
        git_remote_fetch(remote, &refspecs, NULL, NULL) != 0) {
        git_why("fetching", d->repo, why, why_size);
        rc = -EIO;
    } else if (git_reference_name_to_id(&oid, repo, "refs/sluice/watched") != 0) {
        git_why("reading the fetched branch of", d->repo, why, why_size);
        rc = -EIO;
    } else {
        git_oid_tostr(value, size, &oid);
    }
    git_remote_free(remote);
    git_repository_free(repo);
    return rc;
}

static int poll_git(const sched_def *d, const char *store, char *value, size_t size, char *why,
                    size_t why_size) {
    static int inited;
    if (!inited) /* once: the scheduler polls from one thread at a time */
        inited = git_libgit2_init() > 0;
    if (is_remote(d->repo))
        return poll_remote(d, store, value, size, why, why_size);
    git_repository *repo;
    if (git_repository_open_ext(&repo, d->repo, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0) {
        git_why("opening the repository", d->repo, why, why_size);
        return -ENOENT;
    }
    char ref[400];
    snprintf(ref, sizeof(ref), d->branch[0] ? "refs/heads/%s" : "HEAD", d->branch);
    git_oid oid;
    int rc = 0;
    if (git_reference_name_to_id(&oid, repo, ref) != 0) {
        git_why(d->branch[0] ? "finding the branch in" : "reading HEAD of", d->repo, why, why_size);
        rc = -ENOENT;
    } else {
        git_oid_tostr(value, size, &oid);
    }
    git_repository_free(repo);
    return rc;
}

/* The documents in STORE/warehouse (steps/warehouse's LMDB layout: one
 * database "documents" keyed by category and link). */
static int poll_warehouse(const char *store, char *value, size_t size, char *why, size_t why_size) {
    char dir[4200], data[4300];
    snprintf(dir, sizeof(dir), "%s/warehouse", store);
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    if (!path_exists(data)) {
        snprintf(value, size, "0");
        return 0;
    }
    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_stat st = {0};
    int rc = mdb_env_create(&env);
    if (rc == 0) {
        mdb_env_set_maxdbs(env, 8);
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644);
        if (rc == 0 && (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0) {
            rc = mdb_dbi_open(txn, "documents", 0, &dbi);
            if (rc == MDB_NOTFOUND)
                rc = 0; /* no document yet */
            else if (rc == 0)
                rc = mdb_stat(txn, dbi, &st);
            mdb_txn_abort(txn);
        }
        mdb_env_close(env);
    }
    if (rc) {
        snprintf(why, why_size, "reading the warehouse in %s: %s", dir, mdb_strerror(rc));
        return rc > 0 ? -rc : -EIO;
    }
    snprintf(value, size, "%zu", st.ms_entries);
    return 0;
}

static int poll_artifact(const sched_def *d, meta_db *m, char *value, size_t size, char *why,
                         size_t why_size) {
    cache_hit *hit = malloc(sizeof(*hit));
    if (!hit)
        return -ENOMEM;
    int rc = record_latest_finished(m, d->pipeline, d->step, hit);
    value[0] = '\0';
    if (rc == 1) {
        for (size_t i = 0; i < hit->n_outputs; i++)
            if (strcmp(hit->outputs[i].name, d->output) == 0)
                snprintf(value, size, "%s", hit->outputs[i].hash);
        rc = 0;
    } else if (rc < 0) {
        snprintf(why, why_size, "reading the runs of %s: %s", d->pipeline, meta_strerror(rc));
    }
    free(hit);
    return rc;
}

int sched_poll(const sched_def *d, const char *store, meta_db *m, char *value, size_t size,
               char *why, size_t why_size) {
    switch (d->kind) {
    case SK_GIT:
        return poll_git(d, store, value, size, why, why_size);
    case SK_WAREHOUSE:
        return poll_warehouse(store, value, size, why, why_size);
    case SK_ARTIFACT:
        return poll_artifact(d, m, value, size, why, why_size);
    default:
        snprintf(why, why_size, "not a trigger");
        return -EINVAL;
    }
}

int sched_run_alive(const sched_def *d, int64_t pid) {
    if (pid <= 0)
        return 0;
    char path[64], cmd[8192], want[100];
    snprintf(path, sizeof(path), "/proc/%lld/cmdline", (long long)pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    /* NUL-separated arguments: look for "--cause" then "schedule=NAME". */
    snprintf(want, sizeof(want), "schedule=%s", d->name);
    for (size_t i = 0; i + 1 < n; i += strlen(cmd + i) + 1)
        if (strcmp(cmd + i, "--cause") == 0 && i + 8 < n && strcmp(cmd + i + 8, want) == 0)
            return 1;
    return 0;
}

int sched_poll_is_new(const sched_def *d, const char *value) {
    if (d->kind == SK_WAREHOUSE)
        return strtoull(value, NULL, 10) > strtoull(d->last_seen, NULL, 10);
    return value[0] && strcmp(value, d->last_seen) != 0;
}
