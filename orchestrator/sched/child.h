/* child.h - child processes on the libuv loop: spawned with posix_spawn
 * (a vfork: no copy of sluice's page tables per step), their output read
 * line by line, their whole process group killed on demand.
 *
 * Children start in a session of their own (setsid), so that a step's
 * command and everything it starts form one process group: a timeout or
 * an interrupt kills the group, and when the child itself exits whatever it
 * left behind in its group is killed too. A supervised child (the
 * scheduler's are) also reaches what left the group, and dies with sluice:
 * nothing outlives its step.
 *
 * A child_reaper owns SIGCHLD for a loop and reaps the children spawned
 * through it; nothing else in the process may wait for them. */
#ifndef SLUICE_SCHED_CHILD_H
#define SLUICE_SCHED_CHILD_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/buf.h"

typedef struct child child;

typedef struct child_reaper {
    uv_signal_t sigchld;
    child *live; /* spawned and not yet reaped */
} child_reaper;

/* Returns 0 or a libuv error. Close with child_reaper_close() once no child
 * is live; close_cb may be NULL. */
int child_reaper_init(child_reaper *r, uv_loop_t *loop);
void child_reaper_close(child_reaper *r, uv_close_cb close_cb);

/* stream: 1 stdout, 2 stderr, 3 the event pipe. line excludes the newline;
 * it is borrowed for the call. */
typedef void (*child_line_cb)(child *c, int stream, const char *line, size_t len);

/* Called once, after the process was reaped and every pipe is closed: the
 * struct may be freed from here. term_signal is 0 unless a signal ended it. */
typedef void (*child_done_cb)(child *c, int64_t exit_status, int term_signal);

typedef struct child_options {
    const char *file;  /* a path, or a name looked up in PATH */
    char **args;       /* NULL-terminated, args[0] the program's name */
    char **env;        /* NULL: the parent's */
    const char *cwd;
    const char *input; /* written to the child's stdin, then closed; may be NULL */
    size_t input_len;
    int events;        /* open fd 3 as a third output pipe */
    /* The supervisor's command line before its own arguments (NULL-
     * terminated, [0] its path), as sluice-supervise or 'sluice exec
     * --supervise' (exec/supervise.h): it finds and kills whatever the
     * step starts, also when that leaves the group or when sluice dies.
     * NULL: spawned directly, its process group the only reach. */
    char *const *supervisor;
} child_options;

struct child {
    uv_pipe_t pipes[4]; /* stdin, stdout, stderr, events */
    int pipe_open[4];
    buf partial[4];     /* an unfinished line per output pipe */
    uv_timer_t kill_timer;
    uv_write_t write_req;
    int open_handles;
    int exited;
    int64_t exit_status;
    int term_signal;
    pid_t pid;
    int spawn_error; /* a libuv error when the process could not start */
    int supervised, term_sent, kill_asked;
    child *next;     /* in the reaper's list */
    child_reaper *reaper;
    child_line_cb on_line;
    child_done_cb on_done;
    void *data; /* the owner's */
};

/* Starts the child. on_done comes exactly once in every case, also when the
 * spawn fails (then spawn_error holds the error): until it does, c and
 * o->input must stay valid. Call it on a thread that lives as long as the
 * process (the loop's): a supervisor's death signal (PR_SET_PDEATHSIG)
 * fires when the *thread* that spawned it ends, not the process. */
void child_spawn(child *c, child_reaper *r, const child_options *o, child_line_cb on_line,
                 child_done_cb on_done, void *data);

/* Sends SIGTERM to the child's group, then kills it after grace_ms (0: at
 * once; a call with 0 cuts a running grace period short). Safe to call
 * again, before the spawn completed, and after exit. */
void child_kill(child *c, unsigned grace_ms);

#endif
