#define _GNU_SOURCE /* clone, signalfd, posix_spawn_file_actions_addchdir_np */
#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct step_entry {
    uint64_t id;
    pid_t group; /* the step's process group and session */
    pid_t proc;  /* the step's own process */
    int live;    /* its process not reaped yet */
} step_entry;

typedef struct server {
    int fd, sfd;
    pid_t self;
    step_entry *steps; /* every step of the run, in start order */
    size_t n_steps, cap_steps;
    char *out; /* reports not sent yet: sluice was not reading */
    size_t out_len, out_off, out_cap;
    char *stack; /* the group leader's, while it runs */
    /* Looks left after a child's end while some orphan belonged to no step
     * that could be told: its environment reads empty while it execs, and
     * the kernel's children list may miss a process that is changing. */
    int looks_left;
} server;

/* Another look at the orphans every this many ms, this many times. */
#define LOOK_AGAIN_MS 100
#define LOOKS_AFTER_AN_END 20

/* ---- reports ----------------------------------------------------------- */

static void flush(server *s) {
    while (s->out_off < s->out_len) {
        ssize_t n =
            send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break; /* full: POLLOUT calls again; gone: the end comes by EOF */
        s->out_off += (size_t)n;
    }
    if (s->out_off == s->out_len)
        s->out_off = s->out_len = 0;
}

/* Never blocks: sluice may be blocked sending us a request. */
static void report(server *s, uint32_t type, uint64_t id, int32_t value) {
    supervise_report r = {.type = type, .value = value, .id = id};
    if (s->out_off && s->out_off == s->out_len)
        s->out_off = s->out_len = 0;
    if (s->out_len + sizeof(r) > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap * 2 : 4096;
        char *grown = realloc(s->out, cap);
        if (!grown)
            return; /* the step is then never reported: sluice's timeout remains */
        s->out = grown;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, &r, sizeof(r));
    s->out_len += sizeof(r);
    flush(s);
}

/* ---- the processes of a step ------------------------------------------- */

#define LEADER_STACK (256 * 1024)

/* What the group leader L needs, and what it found. */
typedef struct leader_job {
    const char *file;
    char **argv, **envp;
    const posix_spawn_file_actions_t *fa;
    const posix_spawnattr_t *attr;
    pid_t proc;
    int err;
} leader_job;

/* L: starts a session and process group of its own, spawns the step's
 * process P in it and exits. It shares the server's memory (a vfork), so
 * it costs no copy of page tables; P, spawned by posix_spawn, none either.
 * P is no group leader, so `setsid` in a step leaves the group without a
 * fork, as it does under a shell without job control. */
static int lead(void *arg) {
    leader_job *job = arg;
    setsid();
    job->err = posix_spawnp(&job->proc, job->file, job->fa, job->attr, job->argv, job->envp);
    _exit(0);
}

/* Starts the step's process with fds as its 0, 1, 2 (and 3); *group gets
 * L's pid. Returns P's pid, or a negative errno. */
static pid_t start_step(server *s, const char *cwd, const char *file, char **argv, char **envp,
                        const int *fds, int n_fds, pid_t *group) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return -rc;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    /* The received fds are close-on-exec; dup2 clears it on the copies. */
    for (int i = 0; rc == 0 && i < n_fds; i++)
        rc = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    if (rc == 0 && *cwd)
        rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t none;
    sigemptyset(&none);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0 && !s->stack && !(s->stack = malloc(LEADER_STACK)))
        rc = ENOMEM;
    leader_job job = {file, argv, envp, &fa, &attr, -1, 0};
    pid_t leader = -1;
    if (rc == 0) {
        leader = clone(lead, s->stack + LEADER_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
        if (leader < 0)
            rc = errno;
    }
    if (leader > 0) {
        while (waitpid(leader, NULL, 0) < 0 && errno == EINTR)
            ;
        rc = job.err;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc) {
        dprintf(fds[2], "cannot run '%s': %s\n", file, strerror(rc));
        return -rc;
    }
    *group = leader;
    return job.proc;
}

enum { BY_ID, BY_GROUP, BY_PROC };

/* The newest step whose id, group or process is `key`. */
static step_entry *find_step(server *s, int by, uint64_t key) {
    for (size_t i = s->n_steps; i-- > 0;) {
        step_entry *e = &s->steps[i];
        if (by == BY_ID ? e->id == key : (uint64_t)(by == BY_GROUP ? e->group : e->proc) == key)
            return e;
    }
    return NULL;
}

/* The next string of a request, or NULL when it does not end in it. */
static char *next_string(char **p, char *end) {
    char *at = *p, *nul = at < end ? memchr(at, '\0', (size_t)(end - at)) : NULL;
    if (!nul)
        return NULL;
    *p = nul + 1;
    return at;
}

/* Starts the step a request asks for; the fds are closed here. */
static void spawn(server *s, const supervise_request *rq, char *data, int *fds) {
    char *p = data, *end = data + rq->len, *cwd = next_string(&p, end);
    char *file = next_string(&p, end), token[64];
    /* Each string takes a byte at least: larger counts are a broken request. */
    int sane = rq->argc >= 1 && rq->argc <= rq->len && rq->envc <= rq->len;
    char **argv = sane ? calloc(rq->argc + 1, sizeof(*argv)) : NULL;
    char **envp = sane ? calloc(rq->envc + 2, sizeof(*envp)) : NULL;
    int err = !sane || !cwd || !file || rq->n_fds < 3 ? -EINVAL : !argv || !envp ? -ENOMEM : 0;
    for (uint32_t i = 0; !err && i < rq->argc; i++)
        if (!(argv[i] = next_string(&p, end)))
            err = -EINVAL;
    /* The token replaces one the step inherited (a sluice run by a step). */
    size_t n_env = 0, key = sizeof(SUPERVISE_TOKEN);
    for (uint32_t i = 0; !err && i < rq->envc; i++) {
        char *e = next_string(&p, end);
        if (!e)
            err = -EINVAL;
        else if (strncmp(e, SUPERVISE_TOKEN "=", key) != 0)
            envp[n_env++] = e;
    }
    snprintf(token, sizeof(token), SUPERVISE_TOKEN "=%d.%llu", (int)s->self,
             (unsigned long long)rq->id);
    if (!err)
        envp[n_env] = token;
    if (!err && s->n_steps == s->cap_steps) {
        size_t cap = s->cap_steps ? s->cap_steps * 2 : 64;
        step_entry *grown = realloc(s->steps, cap * sizeof(*grown));
        if (grown) {
            s->steps = grown;
            s->cap_steps = cap;
        } else {
            err = -ENOMEM;
        }
    }
    pid_t group = -1,
          proc = err ? err : start_step(s, cwd, file, argv, envp, fds, (int)rq->n_fds, &group);
    for (uint32_t i = 0; i < rq->n_fds; i++)
        close(fds[i]);
    free(argv);
    free(envp);
    if (proc > 0)
        s->steps[s->n_steps++] = (step_entry){rq->id, group, proc, 1};
    report(s, SUPERVISE_STARTED, rq->id, proc > 0 ? group : proc);
}

/* ---- what steps leave behind ------------------------------------------- */

/* The parent, process group and session of pid from /proc/PID/stat;
 * -1 when it is gone. */
static int stat_of(pid_t pid, pid_t *ppid, pid_t *pgrp, pid_t *sid) {
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    /* The command's name, in parentheses, may hold spaces and ')': the
     * fields go on after the last ')'. */
    const char *close_paren = strrchr(text, ')');
    char state;
    int a, b, c;
    if (!close_paren || sscanf(close_paren + 1, " %c %d %d %d", &state, &a, &b, &c) != 4)
        return -1;
    *ppid = a;
    *pgrp = b;
    *sid = c;
    return 0;
}

/* The step id in pid's SLUICE_STEP_TOKEN when the token is this server's;
 * 0 otherwise (sluice's ids start at 1). */
static uint64_t token_of(server *s, pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t len = 0, cap = 0;
    char *text = NULL;
    for (;;) {
        if (cap - len < 4096) {
            char *grown = cap < (16u << 20) ? realloc(text, cap + 65536) : NULL;
            if (!grown)
                break;
            text = grown;
            cap += 65536;
        }
        ssize_t n = read(fd, text + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    uint64_t id = 0;
    for (size_t at = 0; text && at < len; at += strlen(text + at) + 1) {
        text[len] = '\0';
        int server_pid;
        unsigned long long got;
        if (sscanf(text + at, SUPERVISE_TOKEN "=%d.%llu", &server_pid, &got) == 2) {
            id = server_pid == (int)s->self ? got : 0;
            break;
        }
    }
    free(text);
    return id;
}

static void kill_tree_top(pid_t pid, pid_t pgrp) {
    kill(pid, SIGKILL);
    if (pgrp == pid) /* its group is its own: what it started goes too */
        kill(-pid, SIGKILL);
}

/* Whether the orphan pid belongs to a step that ended: 1 yes, 0 to a step
 * still running, -1 to no step that can be told. */
static int left_behind(server *s, pid_t pid, pid_t sid) {
    step_entry *e = find_step(s, BY_GROUP, (uint64_t)sid);
    if (!e) {
        uint64_t id = token_of(s, pid);
        e = id ? find_step(s, BY_ID, id) : NULL;
    }
    return !e ? -1 : !e->live;
}

/* Looks at the server's children: with `all`, every one is killed (the
 * run's end); else each orphan a finished step left. Killing one makes its
 * children ours: the SIGCHLD of its end brings the next look. Returns how
 * many orphans belonged to no step that could be told. */
static int sweep(server *s, int all) {
    int unknown = 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)s->self, (int)s->self);
    FILE *f = fopen(path, "re");
    DIR *d = f ? NULL : opendir("/proc"); /* a kernel without the children file */
    for (;;) {
        int pid = 0;
        pid_t ppid, pgrp, sid;
        if (f) {
            if (fscanf(f, "%d", &pid) != 1)
                break;
        } else {
            struct dirent *de = d ? readdir(d) : NULL;
            if (!de)
                break;
            char *rest;
            pid = (int)strtol(de->d_name, &rest, 10);
            if (*rest || pid <= 0)
                continue;
        }
        /* A running step's process is left alone without a look at /proc. */
        step_entry *own = find_step(s, BY_PROC, (uint64_t)pid);
        if (!all && own && own->live)
            continue;
        if (stat_of(pid, &ppid, &pgrp, &sid) != 0 || ppid != s->self)
            continue;
        int whose = all ? 1 : left_behind(s, pid, sid);
        if (whose > 0)
            kill_tree_top(pid, pgrp);
        else if (whose < 0)
            unknown++;
    }
    if (f)
        fclose(f);
    if (d)
        closedir(d);
    return unknown;
}

/* Reaps every ended child; returns -1 once none is left. */
static int reap(server *s) {
    int ws, swept = 0;
    pid_t w;
    while ((w = waitpid(-1, &ws, WNOHANG)) > 0) {
        step_entry *e = find_step(s, BY_PROC, (uint64_t)w);
        if (e && e->live) {
            e->live = 0;
            kill(-e->group, SIGKILL); /* the rest of its group */
            report(s, SUPERVISE_ENDED, e->id, ws);
        }
        swept = 1;
    }
    if (swept)
        s->looks_left = sweep(s, 0) ? LOOKS_AFTER_AN_END : 0;
    return w < 0 && errno == ECHILD ? -1 : 0;
}

/* ---- requests ------------------------------------------------------------ */

static int read_all(int fd, void *to, size_t len) {
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, (char *)to + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Reads and serves one request; -1 at the end of the stream (or a broken
 * one: sluice is gone or confused, and the run is over either way). */
static int serve_one(server *s) {
    supervise_request rq;
    int fds[SUPERVISE_MAX_FDS], n_fds = 0;
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(fds))];
    } control;
    struct iovec iov = {&rq, sizeof(rq)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.space,
                         .msg_controllen = sizeof(control.space)};
    ssize_t n;
    while ((n = recvmsg(s->fd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds + n_fds, CMSG_DATA(c), (size_t)k * sizeof(int));
            n_fds += k;
        }
    int ok = n > 0 && read_all(s->fd, (char *)&rq + n, sizeof(rq) - (size_t)n) == 0 &&
             rq.n_fds == (uint32_t)n_fds && n_fds <= SUPERVISE_MAX_FDS && rq.len < (64u << 20);
    if (ok && rq.type == SUPERVISE_SIGNAL && rq.len == 0 && n_fds == 0) {
        /* sluice signals the group; the step's process may have left it. */
        step_entry *e = find_step(s, BY_ID, rq.id);
        if (e && e->live && getpgid(e->proc) != e->group)
            kill(e->proc, (int)rq.sig);
        return 0;
    }
    ok = ok && rq.type == SUPERVISE_SPAWN;
    char *data = ok ? malloc(rq.len + 1) : NULL;
    if (ok && (!data || read_all(s->fd, data, rq.len) != 0))
        ok = 0;
    if (ok)
        spawn(s, &rq, data, fds);
    else
        for (int i = 0; i < n_fds; i++)
            close(fds[i]);
    free(data);
    return ok ? 0 : -1;
}

/* The run's end: every descendant killed, and reaped. */
static void end_all(server *s) {
    for (;;) {
        sweep(s, 1);
        for (size_t i = 0; i < s->n_steps; i++)
            if (s->steps[i].live)
                kill(-s->steps[i].group, SIGKILL);
        if (reap(s) < 0)
            return;
        struct pollfd pf = {s->sfd, POLLIN, 0};
        poll(&pf, 1, 20); /* SIGCHLD, or look again */
        struct signalfd_siginfo si;
        while (read(s->sfd, &si, sizeof(si)) > 0)
            ;
    }
}

int supervise_serve(int fd, pid_t parent) {
    sigset_t set;
    sigemptyset(&set);
    static const int taken[] = {SIGCHLD, SIGUSR2, SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        sigaddset(&set, taken[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    server s = {.fd = fd, .self = getpid()};
    s.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s.sfd < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) != 0) {
        fprintf(stderr, "sluice-supervise: cannot set up: %s\n", strerror(errno));
        return 2;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* sluice died before the death signal was armed: nothing to serve. */
    int running = getppid() == parent;
    while (running) {
        struct pollfd pf[2] = {{fd, POLLIN | (s.out_len ? POLLOUT : 0), 0}, {s.sfd, POLLIN, 0}};
        int ready = poll(pf, 2, s.looks_left ? LOOK_AGAIN_MS : -1);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready == 0 && s.looks_left) {
            s.looks_left--;
            if (!sweep(&s, 0))
                s.looks_left = 0;
        }
        struct signalfd_siginfo si;
        while (read(s.sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            if (si.ssi_signo != SIGCHLD)
                running = 0; /* sluice died (SIGUSR2), or we are told to stop */
        reap(&s);
        if (pf[0].revents & POLLOUT)
            flush(&s);
        if (running && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            running = serve_one(&s) == 0;
    }
    end_all(&s);
    free(s.steps);
    free(s.out);
    free(s.stack);
    close(s.sfd);
    return 0;
}

int supervise_main(int argc, char **argv, const char *name) {
    char *end = NULL;
    long parent = argc == 1 ? strtol(argv[0], &end, 10) : 0;
    if (argc != 1 || *end || parent <= 0 || fcntl(SUPERVISE_FD, F_GETFD) < 0) {
        fprintf(stderr, "usage: %s PARENT_PID (with the socket to sluice as fd 3)\n", name);
        return 2;
    }
    return supervise_serve(SUPERVISE_FD, (pid_t)parent);
}
