/* deploy.c - the deploy step, which sluice provides itself (builtin.c):
 * puts a registered model version behind `sluice serve`.
 *
 * A server the store started for an address lives in STORE/serve/PLACE
 * (PLACE is the listen address with ':' and brackets made '_'): pid (the
 * `sluice serve` process), port (where it listens, written by the server),
 * admin.key (its --admin-key-file, made here, mode 0600) and serve.log.
 * When that pid is alive and answers /health, the step reloads it through
 * POST /admin/reload; otherwise it starts a new one in a session of its own
 * (setsid, double fork: it outlives the run) and waits for /health. Either
 * way the model is loaded by the server itself, so a model that does not
 * load fails the step before anything is promoted, and a reload that fails
 * leaves the server on the model it had. Then the version is promoted to
 * the alias (promote.c) and the deployment recorded in the registry
 * (modelreg_record_deployment), which `sluice models show` reads.
 *
 * Two deploys on one place at once (two runs, or a run and another store's
 * process on the same store) would each find no server and each start one:
 * the look and the start or reload are done holding an exclusive flock on
 * STORE/serve/PLACE/lock (which holds the holder's pid), so the second
 * waits, then finds the first's server and reloads it; after `wait`
 * seconds of waiting it fails naming the holder.
 *
 * The step runs on the run's loop, like promote: the run waits for it, at
 * most `wait` seconds for the server (and as long again for the lock). */
#include "run_internal.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define POLL_NS 50000000L /* between two looks at a server coming up */

typedef struct place {
    char dir[4352];
    char pid_path[4400], port_path[4400], key_path[4400], log_path[4400], lock_path[4400];
    char host[300]; /* to connect to */
    pid_t pid;
    int port;
    char key[80];
    char url[400];
} place;

static void place_init(place *pl, const char *store, const char *listen) {
    char name[128];
    size_t n = 0;
    for (const char *c = listen; *c && n < sizeof(name) - 1; c++)
        name[n++] = (char)((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                                   (*c >= 'A' && *c <= 'Z') || *c == '.' || *c == '-'
                               ? *c
                               : '_');
    name[n] = '\0';
    snprintf(pl->dir, sizeof(pl->dir), "%.4096s/serve/%s", store, name);
    snprintf(pl->pid_path, sizeof(pl->pid_path), "%s/pid", pl->dir);
    snprintf(pl->port_path, sizeof(pl->port_path), "%s/port", pl->dir);
    snprintf(pl->key_path, sizeof(pl->key_path), "%s/admin.key", pl->dir);
    snprintf(pl->log_path, sizeof(pl->log_path), "%s/serve.log", pl->dir);
    snprintf(pl->lock_path, sizeof(pl->lock_path), "%s/lock", pl->dir);
    /* the host part of HOST:PORT; a wildcard address is reached on loopback */
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : strlen(listen);
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
        snprintf(pl->host, sizeof(pl->host), "%.*s", (int)(hl - 2), listen + 1);
    else
        snprintf(pl->host, sizeof(pl->host), "%.*s", (int)hl, listen);
    if (strcmp(pl->host, "0.0.0.0") == 0 || !pl->host[0])
        snprintf(pl->host, sizeof(pl->host), "127.0.0.1");
    else if (strcmp(pl->host, "::") == 0)
        snprintf(pl->host, sizeof(pl->host), "::1");
}

static void place_url(place *pl) {
    snprintf(pl->url, sizeof(pl->url), strchr(pl->host, ':') ? "http://[%s]:%d" : "http://%s:%d",
             pl->host, pl->port);
}

/* The first line of path into out, 0; -errno when unreadable or empty. */
static int read_line(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    int ok = fgets(out, (int)size, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] ? 0 : -EINVAL;
}

static int write_file(const char *path, const char *text, mode_t mode) {
    char tmp[4500];
    snprintf(tmp, sizeof(tmp), "%.4400s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    return rc;
}

typedef struct answer {
    char text[2048];
    size_t len;
} answer;

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    answer *a = ud;
    size_t k = size * n, room = sizeof(a->text) - 1 - a->len;
    memcpy(a->text + a->len, data, k < room ? k : room);
    a->len += k < room ? k : room;
    a->text[a->len] = '\0';
    return size * n;
}

/* GET (body NULL) or POST path on the server; the status, 0 when no
 * answer came (why in a). */
static long http(const place *pl, const char *path, const char *body, long timeout_ms, answer *a) {
    a->len = 0;
    a->text[0] = '\0';
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(a->text, sizeof(a->text), "out of memory");
        return 0;
    }
    char url[600], auth[128];
    snprintf(url, sizeof(url), "%s%s", pl->url, path);
    struct curl_slist *h = NULL;
    if (body) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", pl->key);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* a server of this machine */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    long status = 0;
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(a->text, sizeof(a->text), "%s", curl_easy_strerror(cc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* The server this store started on the place: 1 when it is there and
 * ready, -1 when it is there but does not answer 200, 0 when none is. */
static int serving(place *pl) {
    char line[64];
    if (read_line(pl->pid_path, line, sizeof(line)) != 0 || (pl->pid = atoi(line)) <= 0 ||
        !process_running(pl->pid) || read_line(pl->port_path, line, sizeof(line)) != 0 ||
        (pl->port = atoi(line)) <= 0 || read_line(pl->key_path, pl->key, sizeof(pl->key)) != 0)
        return 0;
    place_url(pl);
    answer a;
    long status = http(pl, "/health", NULL, 5000, &a);
    /* nothing answering there: the pid is another process's by now */
    return status == 200 ? 1 : status ? -1 : 0;
}

static void log_tail(const place *pl, char *out, size_t size) {
    out[0] = '\0';
    FILE *f = fopen(pl->log_path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    fseek(f, end > (long)size - 1 ? end - (long)size + 1 : 0, SEEK_SET);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

/* The server's program arguments. */
typedef struct serve_args {
    const char *exe, *store, *model, *listen, *name, *version, *api_keys, *index;
    long parallel;
} serve_args;

/* The server's arguments into argv (32 entries), store and parallel
 * their buffers: made before the fork, so that the child only execs. */
static void server_argv(const place *pl, const serve_args *a, const char **argv, char *store,
                        size_t store_size, char *parallel, size_t parallel_size) {
    snprintf(store, store_size, "--store=%s", a->store);
    snprintf(parallel, parallel_size, "%ld", a->parallel);
    const char *head[] = {
        "sluice",     store,          "serve",       "--model",         a->model,
        "--listen",   a->listen,      "--port-file", pl->port_path,     "--admin-key-file",
        pl->key_path, "--model-name", a->name,       "--model-version", a->version,
        "--parallel", parallel};
    size_t n = sizeof(head) / sizeof(head[0]);
    memcpy(argv, head, sizeof(head));
    if (a->api_keys && a->api_keys[0])
        argv[n++] = "--api-key-file", argv[n++] = a->api_keys;
    if (a->index)
        argv[n++] = "--index", argv[n++] = a->index;
    argv[n] = NULL;
}

/* In the grandchild: the server, its output to the log, nothing else of
 * the run's open. Never returns. */
static _Noreturn void exec_server(const place *pl, const char *exe, char *const *argv) {
    int log = open(pl->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int null = open("/dev/null", O_RDONLY);
    if (log < 0 || null < 0)
        _exit(126);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    if (exe && exe[0])
        execv(exe, argv);
    else
        execvp("sluice", argv);
    _exit(127);
}

/* A key for the server's admin route: 32 random bytes in hex. */
static int make_key(place *pl) {
    unsigned char raw[32];
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof(raw))
        return -EIO;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(pl->key + 2 * i, 3, "%02x", raw[i]);
    char line[96];
    snprintf(line, sizeof(line), "%s\n", pl->key);
    return write_file(pl->key_path, line, 0600);
}

/* Starts the server detached and waits (at most wait_s) for its /health:
 * 1, or 0 with why. */
static int start_server(place *pl, const serve_args *a, double wait_s, char *why, size_t why_size) {
    int rc = mkdir_p(pl->dir, 0700);
    if (rc == 0)
        rc = make_key(pl);
    unlink(pl->port_path);
    int fds[2];
    if (rc == 0 && pipe(fds) != 0)
        rc = -errno;
    if (rc) {
        snprintf(why, why_size, "cannot prepare %s: %s", pl->dir, strerror(-rc));
        return 0;
    }
    const char *argv[32];
    char store[4200], parallel[32];
    server_argv(pl, a, argv, store, sizeof(store), parallel, sizeof(parallel));
    fflush(stdout);
    fflush(stderr);
    pid_t mid = fork();
    if (mid == 0) {
        close(fds[0]);
        setsid();
        pid_t server = fork();
        if (server == 0)
            exec_server(pl, a->exe, (char *const *)argv);
        long v = server;
        ssize_t w = write(fds[1], &v, sizeof(v));
        _exit(w == (ssize_t)sizeof(v) && server > 0 ? 0 : 1);
    }
    close(fds[1]);
    long v = 0;
    ssize_t got = mid > 0 ? read(fds[0], &v, sizeof(v)) : -1;
    close(fds[0]);
    if (mid > 0)
        while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
            ;
    if (got != (ssize_t)sizeof(v) || v <= 0) {
        snprintf(why, why_size, "cannot start sluice serve: %s", strerror(errno ? errno : EIO));
        return 0;
    }
    pl->pid = (pid_t)v;
    char line[32];
    snprintf(line, sizeof(line), "%ld\n", v);
    if ((rc = write_file(pl->pid_path, line, 0644)) != 0) {
        kill(pl->pid, SIGTERM);
        snprintf(why, why_size, "cannot write %s: %s", pl->pid_path, strerror(-rc));
        return 0;
    }
    double deadline = sched_wall_now() + wait_s;
    for (;;) {
        if (!process_running(pl->pid)) {
            char tail[600];
            log_tail(pl, tail, sizeof(tail));
            snprintf(why, why_size, "sluice serve stopped before it was ready; %s ends:\n%s",
                     pl->log_path, tail);
            unlink(pl->pid_path);
            return 0;
        }
        if (read_line(pl->port_path, line, sizeof(line)) == 0 && (pl->port = atoi(line)) > 0) {
            place_url(pl);
            answer an;
            if (http(pl, "/health", NULL, 2000, &an) == 200)
                return 1;
        }
        if (sched_wall_now() > deadline) {
            kill(pl->pid, SIGTERM);
            unlink(pl->pid_path);
            snprintf(why, why_size,
                     "sluice serve was not ready after %g s (parameter 'wait'); stopped it (its "
                     "log: %s)",
                     wait_s, pl->log_path);
            return 0;
        }
        nanosleep(&(struct timespec){0, POLL_NS}, NULL);
    }
}

/* The place's lock, waited for at most wait_s: its descriptor (closing it
 * lets go), or -1 with why. Not inherited by the server (O_CLOEXEC, and
 * exec_server closes what is open). */
static int lock_place(const place *pl, const char *listen, double wait_s, char *why,
                      size_t why_size) {
    int rc = mkdir_p(pl->dir, 0700), fd = -1;
    if (rc == 0 && (fd = open(pl->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        rc = -errno;
    if (rc) {
        snprintf(why, why_size, "cannot open %s: %s", pl->lock_path, strerror(-rc));
        return -1;
    }
    double deadline = sched_wall_now() + wait_s;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || sched_wall_now() > deadline) {
            int e = errno;
            char holder[32] = "?";
            if (e == EWOULDBLOCK && read_line(pl->lock_path, holder, sizeof(holder)) != 0)
                snprintf(holder, sizeof(holder), "?");
            if (e == EWOULDBLOCK)
                snprintf(why, why_size,
                         "another deploy on %s (pid %s, holding %s) did not finish in %g s "
                         "(parameter 'wait'): try again when it has",
                         listen, holder, pl->lock_path, wait_s);
            else
                snprintf(why, why_size, "cannot lock %s: %s", pl->lock_path, strerror(e));
            close(fd);
            return -1;
        }
        nanosleep(&(struct timespec){0, POLL_NS}, NULL);
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    int wrote = ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) == n;
    (void)wrote; /* the pid only names the holder to one who waits: no failure without it */
    return fd;
}

/* Swaps the model of the server on the place: 1, or 0 with why. */
static int reload_server(place *pl, const serve_args *a, double wait_s, char *why,
                         size_t why_size) {
    bson_t body = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&body, "model", a->model);
    BSON_APPEND_UTF8(&body, "name", a->name);
    BSON_APPEND_UTF8(&body, "version", a->version);
    char *json = bson_as_relaxed_extended_json(&body, NULL);
    bson_destroy(&body);
    if (!json) {
        snprintf(why, why_size, "out of memory");
        return 0;
    }
    answer an;
    long status = http(pl, "/admin/reload", json, (long)(wait_s * 1000), &an);
    bson_free(json);
    if (status == 200)
        return 1;
    snprintf(why, why_size, "reloading the server at %s (pid %ld) failed%s%ld: %s", pl->url,
             (long)pl->pid, status ? " with status " : "", status, an.text);
    return 0;
}

int sched_run_deploy(attempt *at, char *why, size_t why_size) {
    run *r = at->r;
    const task *t = &at->t;
    const char *name = sched_model_name(at);
    const char *artifact = sched_input_artifact(at, "model");
    const char *alias = sched_param_str(t, "alias");
    const char *listen = sched_param_str(t, "listen");
    const task_port *mp = task_find_port(t->inputs, t->n_inputs, "model");
    const task_param *pp = task_find_param(t, "parallel"), *wp = task_find_param(t, "wait");
    double wait_s = wp && wp->value && wp->value->kind == VAL_FLOAT ? wp->value->u.real
                    : wp && wp->value && wp->value->kind == VAL_INT ? (double)wp->value->u.integer
                                                                    : 120;
    if (!modelreg_alias_ok(alias)) {
        snprintf(why, why_size,
                 "parameter 'alias': '%s' is no alias ([a-z0-9_-], at most 64, beginning with a "
                 "letter)",
                 alias);
        return 0;
    }
    if (!listen[0] || !strchr(listen, ':') || !(wait_s > 0)) {
        snprintf(why, why_size, "%s",
                 !(wait_s > 0) ? "parameter 'wait' must be above 0"
                               : "parameter 'listen' must be HOST:PORT (127.0.0.1:8080)");
        return 0;
    }
    int version = 0;
    MDB_txn *txn;
    if (r->meta_open && meta_begin(&r->meta, 0, &txn) == 0) {
        version = artifact ? modelreg_version_of(&r->meta, txn, name, artifact) : 0;
        meta_abort(txn);
    }
    if (version <= 0 || !mp || !mp->path) {
        snprintf(why, why_size,
                 "artifact %.12s is no version of model '%s' (deploy serves a registered model: "
                 "a train step's, under its model_name)",
                 artifact ? artifact : "?", name);
        return 0;
    }
    char vtext[16];
    snprintf(vtext, sizeof(vtext), "%d", version);
    const char *shown = sched_param_str(t, "name");
    char root[PATH_MAX];
    if (!realpath(r->store.root, root))
        snprintf(root, sizeof(root), "%s", r->store.root);
    serve_args a = {
        .exe = r->o->exe,
        .store = root,
        .model = mp->path,
        .listen = listen,
        .name = shown[0] ? shown : name,
        .version = vtext,
        .api_keys = sched_param_str(t, "api_key_file"),
        .index = sched_input_artifact(at, "index"),
        .parallel = pp && pp->value && pp->value->kind == VAL_INT ? (long)pp->value->u.integer : 1};
    place pl = {0};
    place_init(&pl, root, listen);
    int lock = lock_place(&pl, listen, wait_s, why, why_size);
    if (lock < 0)
        return 0;
    int up = serving(&pl);
    if (up < 0) {
        snprintf(why, why_size,
                 "the server this store started on %s (pid %ld) does not answer /health: stop it "
                 "(kill %ld) and deploy again",
                 listen, (long)pl.pid, (long)pl.pid);
        close(lock);
        return 0;
    }
    int reloaded = up == 1;
    if (reloaded ? !reload_server(&pl, &a, wait_s, why, why_size)
                 : !start_server(&pl, &a, wait_s, why, why_size)) {
        close(lock);
        return 0;
    }
    char who[512];
    sched_promotion_who(at, who, sizeof(who));
    double now = sched_wall_now();
    modelreg_promotion p = {.name = name,
                            .version = version,
                            .alias = alias,
                            .reason = sched_param_str(t, "reason"),
                            .who = who,
                            .time = now};
    if (!sched_promote(at, &p, why, why_size)) {
        close(lock);
        return 0;
    }
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_INT32(&doc, "version", version);
    BSON_APPEND_UTF8(&doc, "alias", alias);
    BSON_APPEND_UTF8(&doc, "url", pl.url);
    BSON_APPEND_UTF8(&doc, "listen", listen);
    BSON_APPEND_UTF8(&doc, "id", a.name);
    BSON_APPEND_INT64(&doc, "pid", (int64_t)pl.pid);
    BSON_APPEND_UTF8(&doc, "log", pl.log_path);
    BSON_APPEND_UTF8(&doc, "action", reloaded ? "reloaded" : "started");
    BSON_APPEND_DOUBLE(&doc, "time", now);
    BSON_APPEND_UTF8(&doc, "who", who);
    BSON_APPEND_UTF8(&doc, "run", r->run_id);
    BSON_APPEND_UTF8(&doc, "step", at->sr->s->id);
    int rc = modelreg_record_deployment(&r->meta, name, listen, &doc);
    bson_destroy(&doc);
    close(lock); /* after the record: deployments are recorded in the order they served */
    if (rc) {
        snprintf(why, why_size, "cannot record the deployment: %s", meta_strerror(rc));
        return 0;
    }
    char msg[6000];
    snprintf(msg, sizeof(msg), "%s@%d (%s) %s: serving at %s (pid %ld; log %s; stop: kill %ld)",
             name, version, alias, reloaded ? "reloaded into the server" : "started", pl.url,
             (long)pl.pid, pl.log_path, (long)pl.pid);
    sched_log(at->sr, SL_LOG_INFO, msg);
    report_step_note(&r->rep, at->sr->s->id, msg);
    return 1;
}
