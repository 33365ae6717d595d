/* cmd_doctor.c - sluice doctor [--rebuild]: checks the whole store, and
 * rebuilds what it can of a lost or damaged metadata file.
 *
 * The check: the metadata file's structure (meta_open walks every page
 * before LMDB maps it), every object against its name (the SHA-256 of its
 * content), every artifact record and every finished step run's outputs
 * against the objects. It changes nothing. Exit 0: no problem; 1: problems
 * (listed); 2: bad arguments or no store.
 *
 * --rebuild, when the metadata cannot be read: moves meta/ aside (never
 * deleting it) and writes a new database holding what runs/ and objects/
 * still say: a run record for every run folder (its pipeline and status
 * from run.json, else "interrupted") and an artifact record for every
 * intact object, so that gc keeps them and 'artifacts cat' reads them.
 * What lived only in the metadata is gone: which step made which object,
 * lineage, the model registry (versions, aliases, their audit trail), and
 * the cache index (steps run again, and find their outputs
 * already stored). */
#define _DEFAULT_SOURCE /* timegm */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fsutil.h"
#include "inspect.h"
#include "modelreg.h"

typedef struct doctor {
    const char *store;
    artifact_store st;
    char (*intact)[HASH_HEX_LEN + 1]; /* sorted: objects whose content matches their name */
    size_t n_intact, cap;
    size_t objects, problems, unreferenced;
    MDB_txn *txn;
    meta_db *m;
} doctor;

__attribute__((format(printf, 2, 3))) static void problem(doctor *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("problem: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    d->problems++;
}

static int is_hash(const char *s) {
    size_t n = 0;
    while (s[n] && isxdigit((unsigned char)s[n]) && !isupper((unsigned char)s[n]))
        n++;
    return n == HASH_HEX_LEN && !s[n];
}

static int by_hash(const void *a, const void *b) { return strcmp(a, b); }

static int is_intact(const doctor *d, const char *hash) {
    return bsearch(hash, d->intact, d->n_intact, sizeof(*d->intact), by_hash) != NULL;
}

/* Hashes every object; the intact ones go into d->intact. */
static int check_objects(doctor *d) {
    char **fans;
    size_t n_fans;
    int rc = dir_list(d->st.objects, NULL, &fans, &n_fans);
    if (rc)
        return rc;
    for (size_t i = 0; rc == 0 && i < n_fans; i++) {
        char fan[4200];
        snprintf(fan, sizeof(fan), "%s/%s", d->st.objects, fans[i]);
        char **names;
        size_t n;
        if (dir_list(fan, NULL, &names, &n) != 0) {
            problem(d, "objects/%s is not a folder of objects", fans[i]);
            continue;
        }
        for (size_t k = 0; rc == 0 && k < n; k++) {
            char path[8400];
            snprintf(path, sizeof(path), "%s/%s", fan, names[k]);
            if (!is_hash(names[k]) || strncmp(names[k], fans[i], 2) != 0) {
                printf("note: %s is no object (a leftover; gc removes it once unreferenced)\n",
                       path);
                continue;
            }
            d->objects++;
            struct stat sb;
            int v = lstat(path, &sb) != 0 ? -errno
                    : S_ISLNK(sb.st_mode) ? -ELOOP
                                          : store_verify(&d->st, names[k]);
            if (v) {
                problem(d, "object %s: %s", names[k],
                        v == -EBADMSG  ? "its content no longer matches its hash"
                        : v == -ELOOP  ? "it is a symbolic link, not content"
                        : v == -EINVAL ? "it holds a symbolic link or a special file"
                                       : strerror(-v));
                continue;
            }
            if (d->n_intact == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 256;
                void *grown = realloc(d->intact, cap * sizeof(*d->intact));
                if (!grown) {
                    rc = -ENOMEM;
                    break;
                }
                d->intact = grown;
                d->cap = cap;
            }
            memcpy(d->intact[d->n_intact++], names[k], HASH_HEX_LEN + 1);
        }
        dir_list_free(names, n);
    }
    dir_list_free(fans, n_fans);
    qsort(d->intact, d->n_intact, sizeof(*d->intact), by_hash);
    return rc;
}

static int check_artifact(void *ud, const char *key, size_t len, const bson_t *doc) {
    doctor *d = ud;
    char hash[HASH_HEX_LEN + 1], who[4200];
    snprintf(hash, sizeof(hash), "%.*s", (int)(len < HASH_HEX_LEN ? len : HASH_HEX_LEN), key);
    if (len != HASH_HEX_LEN || is_intact(d, hash))
        return 0;
    inspect_origin(doc, who, sizeof(who));
    problem(d, "artifact %s (%s) has no intact object", hash, who);
    return 0;
}

static int check_step(void *ud, const char *key, size_t len, const bson_t *doc) {
    doctor *d = ud;
    const char *status = inspect_str(doc, "status", "");
    if (strcmp(status, "done") != 0 && strcmp(status, "cached") != 0)
        return 0;
    bson_iter_t it, outs;
    if (!bson_iter_init_find(&it, doc, "outputs") || !bson_iter_recurse(&it, &outs))
        return 0;
    while (bson_iter_next(&outs)) {
        if (!BSON_ITER_HOLDS_UTF8(&outs) || is_intact(d, bson_iter_utf8(&outs, NULL)))
            continue;
        char who[600];
        snprintf(who, sizeof(who), "%.*s", (int)len, key);
        problem(d, "step run %s: output '%s' has no intact object", who, bson_iter_key(&outs));
    }
    return 0;
}

/* The registry's records (modelreg.h): a version names an artifact with
 * an intact object; an alias and an audit entry name a version there is. */
static int check_model(void *ud, const char *key, size_t len, const bson_t *doc) {
    doctor *d = ud;
    char what[600], name[MODELREG_MAX_NAME + 1];
    snprintf(what, sizeof(what), "%.*s", (int)len, key);
    const char *slash = memchr(key, '/', len);
    snprintf(name, sizeof(name), "%.*s", slash ? (int)(slash - key) : 0, key);
    const char *kind = slash ? slash + 1 : "";
    if (strncmp(kind, "v/", 2) == 0) {
        const char *artifact = inspect_str(doc, "artifact", "");
        bson_t rec;
        if (inspect_num(doc, "version") < 1 || !artifact[0])
            problem(d, "model record %s is not a version record", what);
        else if (meta_get(d->txn, d->m->artifacts, artifact, &rec) != 0)
            problem(d, "model %s@%.0f: its artifact %.12s has no artifact record", name,
                    inspect_num(doc, "version"), artifact);
        else if (!is_intact(d, artifact))
            problem(d, "model %s@%.0f: its artifact %.12s has no intact object", name,
                    inspect_num(doc, "version"), artifact);
        return 0;
    }
    int version = (int)inspect_num(doc, "version");
    bson_t rec;
    if ((strncmp(kind, "alias/", 6) == 0 || strncmp(kind, "audit/", 6) == 0) &&
        (version < 1 || modelreg_get_version(d->m, d->txn, name, version, &rec) != 0))
        problem(d, "model record %s names version %d of %s, which is not there", what, version,
                name);
    else if (strncmp(kind, "alias/", 6) != 0 && strncmp(kind, "audit/", 6) != 0)
        problem(d, "model record %s is none the registry writes", what);
    return 0;
}

static int count_unreferenced(doctor *d) {
    for (size_t i = 0; i < d->n_intact; i++) {
        bson_t rec;
        if (meta_get(d->txn, d->m->artifacts, d->intact[i], &rec) == MDB_NOTFOUND)
            d->unreferenced++;
    }
    return 0;
}

/* ---- --rebuild ---------------------------------------------------------- */

/* The run record for runs/ID: from its run.json when it wrote one. */
static int rebuild_run(doctor *d, MDB_txn *txn, const char *id) {
    char path[4400];
    snprintf(path, sizeof(path), "%s/runs/%s/run.json", d->store, id);
    bson_t doc = BSON_INITIALIZER;
    bson_t *summary = NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        char text[65536];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        bson_error_t err;
        summary = bson_new_from_json((const uint8_t *)text, (ssize_t)n, &err);
    }
    BSON_APPEND_UTF8(&doc, "pipeline", summary ? inspect_str(summary, "pipeline", "") : "");
    BSON_APPEND_UTF8(&doc, "file", "");
    BSON_APPEND_UTF8(&doc, "status",
                     summary ? inspect_str(summary, "status", "interrupted") : "interrupted");
    /* The id is the start: YYYYMMDD-HHMMSS. */
    struct tm tm = {0};
    double started = 0;
    if (sscanf(id, "%4d%2d%2d-%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        started = (double)timegm(&tm);
    }
    BSON_APPEND_DOUBLE(&doc, "started", started);
    if (summary && inspect_num(summary, "seconds") > 0)
        BSON_APPEND_DOUBLE(&doc, "finished", started + inspect_num(summary, "seconds"));
    BSON_APPEND_BOOL(&doc, "rebuilt", true);
    if (summary)
        bson_destroy(summary);
    int rc = meta_put(txn, d->m->runs, id, &doc);
    bson_destroy(&doc);
    return rc;
}

static int rebuild(doctor *d) {
    int rc = store_lock(&d->st, 1, 0);
    if (rc == -EWOULDBLOCK) {
        fprintf(stderr, "sluice doctor: runs are in progress in %s: rebuild when they end\n",
                d->store);
        return EXIT_BAD_INPUT;
    }
    char meta[4200], aside[4300];
    snprintf(meta, sizeof(meta), "%s/meta", d->store);
    snprintf(aside, sizeof(aside), "%s/meta.damaged-%ld", d->store, (long)time(NULL));
    if (rc == 0 && path_exists(meta) && rename(meta, aside) != 0)
        rc = -errno;
    meta_db m;
    if (rc == 0 && (rc = meta_create(&m, d->store)) != 0)
        fprintf(stderr, "sluice doctor: cannot make a new metadata file: %s\n", meta_error(&m, rc));
    if (rc) {
        if (rc != -EWOULDBLOCK)
            fprintf(stderr, "sluice doctor: cannot rebuild the metadata: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    d->m = &m;
    MDB_txn *txn;
    size_t runs = 0;
    rc = meta_begin(&m, 1, &txn);
    char runs_dir[4200];
    snprintf(runs_dir, sizeof(runs_dir), "%s/runs", d->store);
    char **ids = NULL;
    size_t n_ids = 0;
    if (rc == 0 && dir_list(runs_dir, NULL, &ids, &n_ids) == 0) {
        for (size_t i = 0; rc == 0 && i < n_ids; i++, runs++)
            rc = rebuild_run(d, txn, ids[i]);
        dir_list_free(ids, n_ids);
    }
    for (size_t i = 0; rc == 0 && i < d->n_intact; i++) {
        char path[4400];
        store_object_path(&d->st, d->intact[i], path, sizeof(path));
        struct stat sb;
        bson_t a = BSON_INITIALIZER;
        int dir = lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
        uint64_t size = 0;
        char hex[HASH_HEX_LEN + 1];
        hash_path(path, hex, &size);
        BSON_APPEND_UTF8(&a, "type", "any");
        BSON_APPEND_INT64(&a, "size", (int64_t)size);
        BSON_APPEND_UTF8(&a, "kind", dir ? "folder" : "file");
        BSON_APPEND_BOOL(&a, "rebuilt", true);
        rc = meta_put(txn, m.artifacts, d->intact[i], &a);
        bson_destroy(&a);
    }
    rc = rc ? (meta_abort(txn), rc) : meta_commit(txn);
    if (rc == 0)
        rc = meta_sync(&m);
    meta_close(&m);
    if (rc) {
        fprintf(stderr, "sluice doctor: cannot write the new metadata: %s\n", meta_strerror(rc));
        return EXIT_BAD_INPUT;
    }
    printf("rebuilt the metadata: %zu run%s and %zu artifact%s; the old one is in %s\n", runs,
           runs == 1 ? "" : "s", d->n_intact, d->n_intact == 1 ? "" : "s",
           path_exists(aside) ? aside : "(there was none)");
    printf("lost with it: which step made which artifact, lineage, and the cache index\n");
    return EXIT_DONE;
}

int cmd_doctor(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {{"rebuild", no_argument, NULL, 'r'},
                                             {NULL, 0, NULL, 0}};
    int rebuild_it = 0, c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c != 'r')
            return EXIT_BAD_INPUT;
        rebuild_it = 1;
    }
    if (optind != argc) {
        fprintf(stderr, "sluice doctor: takes no operands (see 'sluice doctor --help')\n");
        return EXIT_BAD_INPUT;
    }
    char objects[4200];
    snprintf(objects, sizeof(objects), "%s/objects", g->store);
    if (!path_exists(objects)) {
        fprintf(stderr, "sluice doctor: %s is no store (it has no objects/ folder)\n", g->store);
        return EXIT_BAD_INPUT;
    }
    doctor d = {.store = g->store};
    int rc = store_open(&d.st, g->store);
    if (rc == 0)
        rc = check_objects(&d);
    if (rc) {
        fprintf(stderr, "sluice doctor: cannot read the objects in %s: %s\n", g->store,
                strerror(-rc));
        store_close(&d.st);
        free(d.intact);
        return EXIT_BAD_INPUT;
    }
    meta_db m;
    size_t artifacts = 0, steps = 0, models = 0;
    int meta_rc = meta_open(&m, g->store, 1);
    if (meta_rc == 0 && (meta_rc = meta_begin(&m, 0, &d.txn)) != 0)
        meta_close(&m);
    if (meta_rc == 0) {
        d.m = &m;
        MDB_stat ms;
        if (mdb_stat(d.txn, m.artifacts, &ms) == 0)
            artifacts = ms.ms_entries;
        if (mdb_stat(d.txn, m.steps, &ms) == 0)
            steps = ms.ms_entries;
        meta_each(d.txn, m.artifacts, "", check_artifact, &d);
        meta_each(d.txn, m.steps, "", check_step, &d);
        modelreg_each(&m, d.txn, "", check_model, &d);
        if (m.has_models && mdb_stat(d.txn, m.models, &ms) == 0)
            models = ms.ms_entries;
        count_unreferenced(&d);
        meta_abort(d.txn);
        meta_close(&m);
        d.m = NULL;
    } else if (meta_rc == -ENOENT) {
        printf("note: no metadata yet: nothing has run in this store\n");
    } else {
        problem(&d, "metadata: %s", meta_error(&m, meta_rc));
    }
    printf("checked %zu object%s, %zu artifact record%s, %zu step run%s, %zu model record%s: %zu "
           "problem%s\n",
           d.objects, d.objects == 1 ? "" : "s", artifacts, artifacts == 1 ? "" : "s", steps,
           steps == 1 ? "" : "s", models, models == 1 ? "" : "s", d.problems,
           d.problems == 1 ? "" : "s");
    if (d.unreferenced)
        printf("note: %zu object%s no artifact record names ('sluice gc' removes them)\n",
               d.unreferenced, d.unreferenced == 1 ? "" : "s");
    int status = d.problems ? EXIT_STEP_FAILED : EXIT_DONE;
    if (rebuild_it && meta_rc == 0) {
        printf("the metadata reads: nothing to rebuild\n");
    } else if (rebuild_it) {
        status = rebuild(&d);
    } else if (meta_rc && meta_rc != -ENOENT) {
        printf("'sluice doctor --rebuild' makes new metadata from runs/ and objects/ "
               "(docs/store.md says what it keeps)\n");
    }
    store_close(&d.st);
    free(d.intact);
    return status;
}
