#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np, POSIX_SPAWN_SETSID */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

#define LINE_MAX_BYTES (64 * 1024)
/* How long closing a reaper waits for its fork server to end. */
#define SERVER_END_MS 3000
/* After a step's process was reaped, how long its pipes may stay open: a
 * process that escaped supervision (fd passing) must not hold the step. */
#define DRAIN_MS 1000

extern char **environ;

static void reaped(child *c, int status);
void child_kill(child *c, unsigned grace_ms);

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
    if (c->pid > 0)
        kill(-c->pid, SIGKILL);
    uv_timer_stop(&c->kill_timer);
    maybe_close_timer(c);
    if (!uv_is_closing((uv_handle_t *)&c->kill_timer))
        uv_timer_start(&c->kill_timer, on_drain_timeout, DRAIN_MS, 0);
}

/* Takes c off the reaper's list of live children. */
static void unlink_live(child_reaper *r, child *c) {
    for (child **link = &r->live; *link; link = &(*link)->next)
        if (*link == c) {
            *link = c->next;
            return;
        }
}

static void server_lost(child_reaper *r, int error);

static void on_sigchld(uv_signal_t *h, int signum) {
    child_reaper *r = h->data;
    (void)signum;
    int status;
    if (r->server_pid > 0 && waitpid(r->server_pid, &status, WNOHANG) == r->server_pid) {
        r->server_pid = 0;
        server_lost(r, UV_EPIPE);
    }
    /* Signals merge: look at every live child. The server reaps the
     * supervised ones. */
    for (child **link = &r->live; *link;) {
        child *c = *link;
        if (c->supervised) {
            link = &c->next;
            continue;
        }
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
    memset(r, 0, sizeof(*r));
    r->server_fd = -1;
    int rc = uv_signal_init(loop, &r->sigchld);
    if (rc)
        return rc;
    r->sigchld.data = r;
    return uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD);
}

void child_reaper_close(child_reaper *r, uv_close_cb close_cb) {
    uv_close((uv_handle_t *)&r->sigchld, close_cb);
    if (r->server_fd >= 0) {
        /* End of the stream: the server kills what is left and exits. */
        uv_close((uv_handle_t *)&r->server_poll, NULL);
        close(r->server_fd);
        r->server_fd = -1;
    }
    struct timespec nap = {0, 5 * 1000000L};
    for (int waited = 0; r->server_pid > 0 && waited < SERVER_END_MS; waited += 5) {
        if (waitpid(r->server_pid, NULL, WNOHANG) != 0)
            r->server_pid = 0;
        else
            nanosleep(&nap, NULL);
    }
}

/* ---- the fork server (exec/supervise.h) --------------------------------- */

/* Spawned children start in a session of their own with the signals sluice
 * takes or ignores back at their defaults. Returns 0 or a positive errno. */
static int spawn_attributes(posix_spawnattr_t *attr) {
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    int reset[] = {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&defaults, reset[i]);
    int rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(attr, &defaults);
    return rc;
}

/* Every live child the server started ends as killed: it is gone. */
static void server_lost(child_reaper *r, int error) {
    if (r->server_fd >= 0) {
        uv_close((uv_handle_t *)&r->server_poll, NULL);
        close(r->server_fd);
        r->server_fd = -1;
    }
    r->server_error = error;
    for (child **link = &r->live; *link;) {
        child *c = *link;
        if (!c->supervised) {
            link = &c->next;
            continue;
        }
        *link = c->next;
        if (!c->pid)
            c->spawn_error = error;
        reaped(c, SIGKILL); /* a wait status: killed by SIGKILL */
    }
}

static void server_report(child_reaper *r, const supervise_report *rep) {
    child *c = r->live;
    while (c && !(c->supervised && c->server_id == rep->id))
        c = c->next;
    if (!c)
        return;
    if (rep->type == SUPERVISE_STARTED && rep->value > 0) {
        c->pid = rep->value;
        if (c->pending_grace)
            child_kill(c, c->pending_grace - 1);
    } else if (rep->type == SUPERVISE_STARTED) {
        unlink_live(r, c);
        c->spawn_error = rep->value < 0 ? rep->value : UV_EINVAL;
        reaped(c, 127 << 8);
    } else if (rep->type == SUPERVISE_ENDED) {
        unlink_live(r, c);
        reaped(c, rep->value);
    }
}

static void on_server_readable(uv_poll_t *h, int status, int events) {
    child_reaper *r = h->data;
    (void)events;
    supervise_report rep;
    for (;;) {
        ssize_t n = status < 0 ? -1
                               : recv(r->server_fd, r->server_in + r->server_in_len,
                                      sizeof(rep) - r->server_in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            server_lost(r, n == 0 ? UV_EOF : -errno);
            return;
        }
        r->server_in_len += (size_t)n;
        if (r->server_in_len < sizeof(rep))
            continue;
        memcpy(&rep, r->server_in, sizeof(rep));
        r->server_in_len = 0;
        server_report(r, &rep);
        if (r->server_fd < 0)
            return;
    }
}

/* Starts the server; returns 0 or a positive errno. */
static int server_start(child_reaper *r, char *const *supervisor) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if ((rc = posix_spawnattr_init(&attr)) == 0) {
        rc = spawn_attributes(&attr);
        if (rc == 0)
            rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (rc == 0)
            rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (rc == 0)
            rc = posix_spawn_file_actions_adddup2(&fa, sv[1], SUPERVISE_FD);
        size_t k = 0;
        while (supervisor[k])
            k++;
        char parent[24], **argv = malloc((k + 2) * sizeof(*argv));
        snprintf(parent, sizeof(parent), "%ld", (long)getpid());
        if (!argv && rc == 0)
            rc = ENOMEM;
        if (rc == 0) {
            memcpy(argv, supervisor, k * sizeof(*argv));
            argv[k] = parent;
            argv[k + 1] = NULL;
            rc = posix_spawn(&r->server_pid, supervisor[0], &fa, &attr, argv, environ);
        }
        free(argv);
        posix_spawnattr_destroy(&attr);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (rc == 0 && (rc = -uv_poll_init(r->sigchld.loop, &r->server_poll, sv[0])) == 0) {
        r->server_poll.data = r;
        r->server_fd = sv[0];
        uv_poll_start(&r->server_poll, UV_READABLE, on_server_readable);
        return 0;
    }
    close(sv[0]); /* a server that started ends at this end of file; SIGCHLD reaps it */
    return rc;
}

/* Sends all of len bytes, the fds with the first; the socket does not
 * block (libuv's poll), the server reads at once. Returns 0 or an errno. */
static int send_all(int fd, const char *p, size_t len, const int *fds, int n_fds) {
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(SUPERVISE_MAX_FDS * sizeof(int))];
    } control;
    while (len) {
        struct iovec iov = {(void *)p, len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        if (n_fds) {
            memset(&control, 0, sizeof(control));
            msg.msg_control = control.space;
            msg.msg_controllen = CMSG_SPACE((size_t)n_fds * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN((size_t)n_fds * sizeof(int));
            memcpy(CMSG_DATA(c), fds, (size_t)n_fds * sizeof(int));
        }
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            poll(&pf, 1, -1);
            continue;
        }
        if (n < 0)
            return errno;
        p += n;
        len -= (size_t)n;
        n_fds = 0;
    }
    return 0;
}

/* Asks the server to start c with the fds (its 0, 1, 2 and maybe 3).
 * Returns 0 or a positive errno. */
static int server_spawn(child_reaper *r, child *c, const child_options *o, const int *fds,
                        int n_fds) {
    if (r->server_fd < 0 && !r->server_error) {
        int rc = server_start(r, o->supervisor);
        if (rc)
            r->server_error = -rc;
    }
    if (r->server_error)
        return -r->server_error;
    char **env = o->env ? o->env : environ;
    supervise_request rq = {
        .type = SUPERVISE_SPAWN, .n_fds = (uint32_t)n_fds, .id = ++r->server_ids};
    buf b = BUF_INIT;
    buf_append(&b, &rq, sizeof(rq));
    buf_append(&b, o->cwd ? o->cwd : "", strlen(o->cwd ? o->cwd : "") + 1);
    buf_append(&b, o->file, strlen(o->file) + 1);
    for (; o->args[rq.argc]; rq.argc++)
        buf_append(&b, o->args[rq.argc], strlen(o->args[rq.argc]) + 1);
    for (; env[rq.envc]; rq.envc++)
        buf_append(&b, env[rq.envc], strlen(env[rq.envc]) + 1);
    int rc = ENOMEM;
    if (!buf_failed(&b)) {
        rq.len = b.len - sizeof(rq);
        memcpy(b.data, &rq, sizeof(rq));
        rc = send_all(r->server_fd, b.data, b.len, fds, n_fds);
    }
    buf_free(&b);
    c->server_id = rq.id;
    return rc;
}

static void on_write(uv_write_t *w, int status) {
    child *c = w->data;
    (void)status;
    close_pipe(c, 0);
}

/* Sets up the pipes and spawns, directly or through the fork server;
 * returns 0 or a positive errno. Without input, stdin is /dev/null and
 * pipe 0 is not made. */
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
    if (rc == 0 && o->supervisor) {
        int theirs[4];
        for (int i = 0; i < n_pipes; i++)
            theirs[i] = fds[i][i == 0 ? 0 : 1];
        if (!with_stdin && (theirs[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
            rc = errno;
        if (rc == 0)
            rc = server_spawn(c->reaper, c, o, theirs, n_pipes);
        if (!with_stdin && theirs[0] >= 0)
            close(theirs[0]);
    } else if (rc == 0) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        int fa_ok = 0, attr_ok = 0;
        if ((rc = posix_spawn_file_actions_init(&fa)) == 0)
            fa_ok = 1;
        if (rc == 0 && (rc = posix_spawnattr_init(&attr)) == 0)
            attr_ok = 1;
        if (rc == 0 && !with_stdin)
            rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        for (int i = with_stdin ? 0 : 1; rc == 0 && i < n_pipes;
             i++) /* dup2 clears close-on-exec */
            rc = posix_spawn_file_actions_adddup2(&fa, fds[i][i == 0 ? 0 : 1], i);
        if (rc == 0 && o->cwd)
            rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
        if (rc == 0)
            rc = spawn_attributes(&attr);
        if (rc == 0)
            rc = posix_spawnp(&c->pid, o->file, &fa, &attr, o->args, o->env ? o->env : environ);
        if (fa_ok)
            posix_spawn_file_actions_destroy(&fa);
        if (attr_ok)
            posix_spawnattr_destroy(&attr);
    }
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

/* Signals the child's group; a supervised child's process may have left
 * it (setsid), so the server is asked to signal that too. */
static void signal_child(child *c, int sig) {
    kill(-c->pid, sig);
    child_reaper *r = c->reaper;
    if (c->supervised && r->server_fd >= 0) {
        supervise_request rq = {.type = SUPERVISE_SIGNAL, .sig = (uint32_t)sig, .id = c->server_id};
        if (send_all(r->server_fd, (const char *)&rq, sizeof(rq), NULL, 0) != 0)
            server_lost(r, UV_EPIPE);
    }
}

/* The end of a grace period: kill the step. The server then kills what
 * the step left elsewhere. */
static void kill_now(child *c) {
    uv_timer_stop(&c->kill_timer);
    signal_child(c, SIGKILL);
}

static void on_kill_timer(uv_timer_t *t) {
    child *c = t->data;
    if (!c->exited)
        kill_now(c);
}

void child_kill(child *c, unsigned grace_ms) {
    if (c->exited)
        return;
    if (c->pid <= 0) {
        /* The server has not said its pid yet: kill it when it does. */
        if (c->supervised && (!c->pending_grace || grace_ms + 1 < c->pending_grace))
            c->pending_grace = grace_ms + 1;
        return;
    }
    if (grace_ms == 0) {
        kill_now(c);
        return;
    }
    if (c->term_sent)
        return; /* its grace period is already running */
    c->term_sent = 1;
    signal_child(c, SIGTERM);
    if (c->exited) /* the server was found gone */
        return;
    uv_timer_start(&c->kill_timer, on_kill_timer, grace_ms, 0);
}
