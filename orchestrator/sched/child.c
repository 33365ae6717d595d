#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np, POSIX_SPAWN_SETSID */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_MAX_BYTES (64 * 1024)
/* After SIGUSR1 asked a supervisor to kill its step, how long before its
 * own group is killed outright. */
#define SUPERVISOR_GRACE_MS 5000
/* After a step's process was reaped, how long its pipes may stay open: a
 * process that escaped supervision (fd passing) must not hold the step. */
#define DRAIN_MS 1000

extern char **environ;

static void maybe_done(child *c) {
    if (c->exited && c->open_handles == 0 && c->on_done)
        c->on_done(c, c->exit_status, c->term_signal);
}

static void on_close(uv_handle_t *h) {
    child *c = h->data;
    c->open_handles--;
    maybe_done(c);
}

/* The timer is closed once the child was reaped and its pipes are closed
 * (or given up on). */
static void maybe_close_timer(child *c) {
    if (!c->exited || uv_is_closing((uv_handle_t *)&c->kill_timer))
        return;
    for (int i = 0; i < 4; i++)
        if (c->pipe_open[i])
            return;
    uv_timer_stop(&c->kill_timer);
    uv_close((uv_handle_t *)&c->kill_timer, on_close);
}

static void close_pipe(child *c, int i) {
    if (!c->pipe_open[i])
        return;
    c->pipe_open[i] = 0;
    if (i > 0 && c->partial[i].len && c->on_line)
        c->on_line(c, i, c->partial[i].data, c->partial[i].len);
    buf_free(&c->partial[i]);
    uv_close((uv_handle_t *)&c->pipes[i], on_close);
    maybe_close_timer(c);
}

static void on_drain_timeout(uv_timer_t *t) {
    child *c = t->data;
    for (int i = 0; i < 4; i++)
        close_pipe(c, i);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    (void)h;
    b->base = malloc(suggested);
    b->len = b->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    child *c = s->data;
    int i = (int)((uv_pipe_t *)s - c->pipes);
    if (n < 0) {
        free(b->base);
        close_pipe(c, i);
        return;
    }
    buf *part = &c->partial[i];
    const char *p = b->base, *end = b->base + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (part->len + take > LINE_MAX_BYTES) /* hand over what we have */
            take = LINE_MAX_BYTES - part->len;
        buf_append(part, p, take);
        p += take;
        if (nl && p == nl)
            p++;
        else if (part->len < LINE_MAX_BYTES)
            continue;
        if (c->on_line)
            c->on_line(c, i, buf_str(part), part->len);
        buf_reset(part);
    }
    free(b->base);
}

static void reaped(child *c, int status) {
    c->exited = 1;
    if (WIFSIGNALED(status)) {
        c->term_signal = WTERMSIG(status);
        c->exit_status = 0;
    } else {
        c->exit_status = WEXITSTATUS(status);
    }
    /* Whatever the step left running in its group goes with it; this also
     * lets the pipes reach end of file. */
    kill(-c->pid, SIGKILL);
    uv_timer_stop(&c->kill_timer);
    maybe_close_timer(c);
    if (!uv_is_closing((uv_handle_t *)&c->kill_timer))
        uv_timer_start(&c->kill_timer, on_drain_timeout, DRAIN_MS, 0);
}

static void on_sigchld(uv_signal_t *h, int signum) {
    child_reaper *r = h->data;
    (void)signum;
    /* Signals merge: look at every live child. */
    for (child **link = &r->live; *link;) {
        child *c = *link;
        int status;
        pid_t got = waitpid(c->pid, &status, WNOHANG);
        if (got == c->pid || (got < 0 && errno == ECHILD)) {
            *link = c->next;
            reaped(c, got == c->pid ? status : 0);
        } else {
            link = &c->next;
        }
    }
}

int child_reaper_init(child_reaper *r, uv_loop_t *loop) {
    r->live = NULL;
    int rc = uv_signal_init(loop, &r->sigchld);
    if (rc)
        return rc;
    r->sigchld.data = r;
    return uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD);
}

void child_reaper_close(child_reaper *r, uv_close_cb close_cb) {
    uv_close((uv_handle_t *)&r->sigchld, close_cb);
}

static void on_write(uv_write_t *w, int status) {
    child *c = w->data;
    (void)status;
    close_pipe(c, 0);
}

/* Sets up the pipes and spawns; returns 0 or a positive errno. Without
 * input, stdin is /dev/null and pipe 0 is not made. */
static int spawn(child *c, const child_options *o, int n_pipes, int parent_end[4]) {
    int fds[4][2], made = 0, rc = 0, with_stdin = o->input != NULL;
    for (; made < n_pipes; made++) {
        if (made == 0 && !with_stdin) {
            fds[0][0] = fds[0][1] = -1;
            continue;
        }
        if (pipe2(fds[made], O_CLOEXEC) != 0) {
            rc = errno;
            break;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0;
    if (rc == 0 && (rc = posix_spawn_file_actions_init(&fa)) == 0)
        fa_ok = 1;
    if (rc == 0 && (rc = posix_spawnattr_init(&attr)) == 0)
        attr_ok = 1;
    if (rc == 0 && !with_stdin)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    for (int i = with_stdin ? 0 : 1; rc == 0 && i < n_pipes; i++) /* dup2 clears close-on-exec */
        rc = posix_spawn_file_actions_adddup2(&fa, fds[i][i == 0 ? 0 : 1], i);
    if (rc == 0 && o->cwd)
        rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    int reset[] = {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&defaults, reset[i]);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    char **argv = o->args, parent[24];
    const char *file = o->file;
    if (rc == 0 && o->supervisor) {
        /* SUPERVISOR... PARENT -- FILE ARGS... (see exec/supervise.h) */
        size_t n = 0, k = 0;
        while (o->args[n])
            n++;
        while (o->supervisor[k])
            k++;
        snprintf(parent, sizeof(parent), "%ld", (long)getpid());
        if ((argv = malloc((k + n + 4) * sizeof(*argv)))) {
            memcpy(argv, o->supervisor, k * sizeof(*argv));
            argv[k] = parent;
            argv[k + 1] = "--";
            argv[k + 2] = (char *)o->file;
            memcpy(argv + k + 3, o->args, (n + 1) * sizeof(*argv));
            file = o->supervisor[0];
        } else {
            rc = ENOMEM;
        }
    }
    if (rc == 0)
        rc = posix_spawnp(&c->pid, file, &fa, &attr, argv, o->env ? o->env : environ);
    if (argv != o->args)
        free(argv);
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    for (int i = with_stdin ? 0 : 1; i < made; i++) {
        int mine = i == 0 ? 1 : 0; /* the parent writes stdin, reads the rest */
        close(fds[i][1 - mine]);
        if (rc == 0)
            parent_end[i] = fds[i][mine];
        else
            close(fds[i][mine]);
    }
    return rc;
}

void child_spawn(child *c, child_reaper *r, const child_options *o, child_line_cb on_line,
                 child_done_cb on_done, void *data) {
    uv_loop_t *loop = r->sigchld.loop;
    memset(c, 0, sizeof(*c));
    c->on_line = on_line;
    c->on_done = on_done;
    c->data = data;
    c->reaper = r;
    c->supervised = o->supervisor != NULL;
    uv_timer_init(loop, &c->kill_timer);
    c->kill_timer.data = c;
    c->open_handles = 1;
    int n_pipes = o->events ? 4 : 3, ends[4];
    int rc = spawn(c, o, n_pipes, ends);
    if (rc) {
        /* Reported through on_done like any other end, on the next turn. */
        c->spawn_error = -rc;
        c->exited = 1;
        c->exit_status = 127;
        uv_close((uv_handle_t *)&c->kill_timer, on_close);
        return;
    }
    c->next = r->live;
    r->live = c;
    for (int i = o->input ? 0 : 1; i < n_pipes; i++) {
        uv_pipe_init(loop, &c->pipes[i], 0);
        c->pipes[i].data = c;
        if (uv_pipe_open(&c->pipes[i], ends[i]) != 0)
            close(ends[i]); /* then the pipe reads as closed at once */
        c->pipe_open[i] = 1;
        c->open_handles++;
    }
    for (int i = 1; i < n_pipes; i++)
        if (uv_read_start((uv_stream_t *)&c->pipes[i], on_alloc, on_read) != 0)
            close_pipe(c, i);
    if (o->input) {
        uv_buf_t b = uv_buf_init((char *)o->input, (unsigned)o->input_len);
        c->write_req.data = c;
        if (uv_write(&c->write_req, (uv_stream_t *)&c->pipes[0], &b, 1, on_write) != 0)
            close_pipe(c, 0);
    }
}

static void on_kill_timer(uv_timer_t *t);

/* The end of a grace period: kill the step. A supervisor is asked to, as
 * only it can find what escaped the group; should it not end in time
 * either, its group is killed outright. */
static void kill_now(child *c) {
    if (c->exited)
        return;
    uv_timer_stop(&c->kill_timer);
    if (c->supervised && !c->kill_asked) {
        c->kill_asked = 1;
        kill(c->pid, SIGUSR1);
        uv_timer_start(&c->kill_timer, on_kill_timer, SUPERVISOR_GRACE_MS, 0);
    } else {
        kill(-c->pid, SIGKILL);
    }
}

static void on_kill_timer(uv_timer_t *t) { kill_now(t->data); }

void child_kill(child *c, unsigned grace_ms) {
    if (c->exited || !c->pid)
        return;
    if (grace_ms == 0) {
        kill_now(c);
        return;
    }
    if (c->term_sent)
        return; /* its grace period is already running */
    c->term_sent = 1;
    kill(-c->pid, SIGTERM);
    uv_timer_start(&c->kill_timer, on_kill_timer, grace_ms, 0);
}
