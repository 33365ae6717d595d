/* child.h - child processes on the libuv loop: spawned with posix_spawn
 * (a vfork: no copy of sluice's page tables per step), or by the run's
 * fork server, their output read line by line, their whole process group
 * killed on demand.
 *
 * Children start in a session of their own (setsid), so that a step's
 * command and everything it starts form one process group: a timeout or
 * an interrupt kills the group, and when the child itself exits whatever it
 * left behind in its group is killed too. A supervised child (the
 * scheduler's are) is started by the fork server of exec/supervise.h,
 * asked over a socket: it also reaches what left the group, and dies with
 * sluice: nothing outlives its step. The server is started with the first
 * supervised child and ends with child_reaper_close().
 *
 * A child_reaper owns SIGCHLD for a loop and reaps the children spawned
 * through it; nothing else in the process may wait for them. */
#ifndef SLUICE_SCHED_CHILD_H
#define SLUICE_SCHED_CHILD_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "buf.h"

typedef struct child child;

typedef struct child_reaper {
    uv_signal_t sigchld;
    child *live; /* spawned and not yet reaped */
    /* The fork server: fd -1 until the first supervised spawn started it;
     * error, a libuv error, once it could not start or ended. */
    int server_fd, server_error;
    pid_t server_pid;
    uv_poll_t server_poll;
    uint64_t server_ids; /* the last request's id */
    char server_in[16];  /* a report read in part */
    size_t server_in_len;
} child_reaper;

/* Returns 0 or a libuv error. Close with child_reaper_close() once no child
 * is live; close_cb may be NULL. Closing ends the fork server, which kills
 * whatever steps left that it could not tell apart, and waits for it (a
 * few seconds at most). */
int child_reaper_init(child_reaper *r, uv_loop_t *loop);
void child_reaper_close(child_reaper *r, uv_close_cb close_cb);

/* stream: 1 stdout, 2 stderr, 3 the event pipe. line excludes the newline;
 * it is borrowed for the call. */
typedef void (*child_line_cb)(child *c, int stream, const char *line, size_t len);

/* Called once, after the process was reaped and every pipe is closed: the
 * struct may be freed from here. term_signal is 0 unless a signal ended it. */
typedef void (*child_done_cb)(child *c, int64_t exit_status, int term_signal);

typedef struct child_options {
    const char *file; /* a path, or a name looked up in PATH */
    char **args;      /* NULL-terminated, args[0] the program's name */
    char **env;       /* NULL: the parent's */
    const char *cwd;
    const char *input; /* written to the child's stdin, then closed; may be NULL */
    size_t input_len;
    int events; /* open fd 3 as a third output pipe */
    /* The fork server's command line before its own argument (NULL-
     * terminated, [0] its path), as sluice-supervise or 'sluice exec
     * --supervise' (exec/supervise.h): the first supervised spawn of a
     * reaper starts it, and it starts every supervised child, finds and
     * kills whatever the child starts, also when that leaves the group or
     * when sluice dies. NULL: spawned directly, its process group the only
     * reach. */
    char *const *supervisor;
} child_options;

struct child {
    uv_pipe_t pipes[4]; /* stdin, stdout, stderr, events */
    int pipe_open[4];
    buf partial[4]; /* an unfinished line per output pipe */
    uv_timer_t kill_timer;
    uv_write_t write_req;
    int open_handles;
    int exited;
    int64_t exit_status;
    int term_signal;
    pid_t pid;       /* supervised: 0 until the server reported it */
    int spawn_error; /* a libuv error when the process could not start */
    int supervised, term_sent;
    uint64_t server_id;     /* supervised: the request's id */
    unsigned pending_grace; /* 1 + the grace of a kill asked before the pid came */
    child *next;            /* in the reaper's list */
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
