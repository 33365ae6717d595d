#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES (64 * 1024)

static void maybe_done(child *c) {
    if (c->open_handles == 0 && c->on_done)
        c->on_done(c, c->exit_status, c->term_signal);
}

static void on_close(uv_handle_t *h) {
    child *c = h->data;
    c->open_handles--;
    maybe_done(c);
}

static void close_pipe(child *c, int i) {
    if (!c->pipe_open[i])
        return;
    c->pipe_open[i] = 0;
    if (i > 0 && c->partial[i].len && c->on_line)
        c->on_line(c, i, c->partial[i].data, c->partial[i].len);
    buf_free(&c->partial[i]);
    uv_close((uv_handle_t *)&c->pipes[i], on_close);
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
        if (nl && p == nl) {
            p++;
        } else if (part->len < LINE_MAX_BYTES) {
            continue;
        }
        if (c->on_line)
            c->on_line(c, i, buf_str(part), part->len);
        buf_reset(part);
    }
    free(b->base);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal) {
    child *c = p->data;
    c->exited = 1;
    c->exit_status = status;
    c->term_signal = term_signal;
    /* Whatever the step left running in its group goes with it; this also
     * lets the pipes reach end of file. */
    kill(-c->pid, SIGKILL);
    uv_timer_stop(&c->kill_timer);
    uv_close((uv_handle_t *)&c->kill_timer, on_close);
    uv_close((uv_handle_t *)p, on_close);
}

static void on_write(uv_write_t *w, int status) {
    child *c = w->data;
    (void)status;
    close_pipe(c, 0);
}

void child_spawn(child *c, uv_loop_t *loop, const child_options *o, child_line_cb on_line,
                 child_done_cb on_done, void *data) {
    memset(c, 0, sizeof(*c));
    c->on_line = on_line;
    c->on_done = on_done;
    c->data = data;
    int n_pipes = o->events ? 4 : 3;
    uv_stdio_container_t stdio[4];
    for (int i = 0; i < n_pipes; i++) {
        uv_pipe_init(loop, &c->pipes[i], 0);
        c->pipes[i].data = c;
        stdio[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
        stdio[i].data.stream = (uv_stream_t *)&c->pipes[i];
        c->pipe_open[i] = 1;
    }
    uv_process_options_t po = {
        .exit_cb = on_exit_cb,
        .file = o->file,
        .args = o->args,
        .env = o->env,
        .cwd = o->cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = n_pipes,
        .stdio = stdio,
    };
    c->proc.data = c;
    int rc = uv_spawn(loop, &c->proc, &po);
    if (rc) {
        /* Report through on_done like any other end, once the handles that
         * were initialised are closed. */
        c->spawn_error = rc;
        c->exited = 1;
        c->exit_status = 127;
        c->open_handles = n_pipes + 1;
        for (int i = 0; i < n_pipes; i++) {
            c->pipe_open[i] = 0;
            uv_close((uv_handle_t *)&c->pipes[i], on_close);
        }
        uv_close((uv_handle_t *)&c->proc, on_close);
        return;
    }
    c->pid = c->proc.pid;
    c->open_handles = n_pipes + 2; /* pipes, the process, the kill timer */
    uv_timer_init(loop, &c->kill_timer);
    c->kill_timer.data = c;
    for (int i = 1; i < n_pipes; i++)
        uv_read_start((uv_stream_t *)&c->pipes[i], on_alloc, on_read);
    if (o->input && o->input_len) {
        uv_buf_t b = uv_buf_init((char *)o->input, (unsigned)o->input_len);
        c->write_req.data = c;
        if (uv_write(&c->write_req, (uv_stream_t *)&c->pipes[0], &b, 1, on_write) != 0)
            close_pipe(c, 0);
    } else {
        close_pipe(c, 0);
    }
}

static void on_kill_timer(uv_timer_t *t) {
    child *c = t->data;
    if (!c->exited)
        kill(-c->pid, SIGKILL);
}

void child_kill(child *c, unsigned grace_ms) {
    if (c->exited || !c->pid)
        return;
    if (grace_ms == 0) {
        kill(-c->pid, SIGKILL);
        return;
    }
    kill(-c->pid, SIGTERM);
    if (!uv_is_active((uv_handle_t *)&c->kill_timer))
        uv_timer_start(&c->kill_timer, on_kill_timer, grace_ms, 0);
}
