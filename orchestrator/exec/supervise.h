/* supervise.h - the fork server that starts every step command of a run
 * ('sluice-supervise', or 'sluice exec --supervise' where it is not
 * installed), so that nothing a step starts outlives it, whatever the step
 * does and however sluice ends.
 *
 * Why one process per run and not per step: a supervisor per step cost
 * each step a second process start (fork and exec of the supervisor, and
 * a scan of /proc when it ended), more than doubling what a short shell
 * step costs (5.6 against 2.3 ms on the benchmark machine; 2.7 with the
 * server). The server is started once, at the first step command of a
 * run, and is small (libc only).
 *
 * How it keeps steps from escaping. The server is a child subreaper
 * (PR_SET_CHILD_SUBREAPER): every process orphaned below it, a daemon made
 * with setsid, setpgid or a double fork included, becomes its child. For
 * each step it starts a leader L (a clone that shares its memory, so no
 * page tables are copied), which starts a session of its own, spawns the
 * step's process P in it (posix_spawn, a vfork too) and exits: the step's
 * processes form one process group, pgid L, that sluice signals on a
 * timeout or an interrupt, and P is no group leader, so `setsid` in a step
 * leaves the group without a fork, as under a shell without job control.
 * P is then the server's child. Since P may leave the group, sluice also
 * asks the server to signal P itself (SUPERVISE_SIGNAL). The server
 * reports L's pid (the group), then P's end.
 *
 * When a step's P ended, the server kills what the step left behind: its
 * group, and each orphan it adopted that belongs to the step: in the step's
 * session, or carrying the step's token SLUICE_STEP_TOKEN=SERVER.ID in its
 * environment (every step process gets one; read from /proc/PID/environ).
 * Killing an orphan makes its own children orphans in turn, seen at the
 * next SIGCHLD. An orphan that belongs to no step (it cleared its
 * environment and left the session) is killed when the run ends. The run
 * ends when sluice closes the socket; should sluice die, even by kill -9,
 * the kernel sends the server SIGUSR2 (PR_SET_PDEATHSIG): either way the
 * server kills every descendant and exits.
 *
 * The wire, over a stream socket that is fd 3 of the server: sluice sends
 * a supervise_request followed by `len` bytes: the working folder (empty:
 * the server's), the file to run (looked up in PATH), argc arguments and
 * envc environment entries, each ending with a NUL; with it, as SCM_RIGHTS,
 * n_fds descriptors that become the step's fds 0, 1, 2 (and 3). The server
 * answers with supervise_reports: SUPERVISE_STARTED with L's pid or a
 * negative errno (said on the step's stderr too), later SUPERVISE_ENDED
 * with P's wait status. A SUPERVISE_SIGNAL request (nothing follows, no
 * fds) asks for signal `sig` to the step's process when it left its
 * group. */
#ifndef SLUICE_EXEC_SUPERVISE_H
#define SLUICE_EXEC_SUPERVISE_H

#include <stdint.h>
#include <sys/types.h>

/* The server is the program sluice-supervise, installed beside sluice (or
 * in LIBEXECDIR/sluice), or else sluice itself, as 'sluice exec
 * --supervise': either way with the argument PARENT_PID and the socket as
 * fd 3. */
#define SUPERVISE_FLAG "--supervise"
#define SUPERVISE_PROGRAM "sluice-supervise"
#define SUPERVISE_FD 3
#define SUPERVISE_TOKEN "SLUICE_STEP_TOKEN"
#define SUPERVISE_MAX_FDS 4

enum { SUPERVISE_SPAWN = 1, SUPERVISE_STARTED = 2, SUPERVISE_ENDED = 3, SUPERVISE_SIGNAL = 4 };

typedef struct supervise_request {
    uint32_t type; /* SUPERVISE_SPAWN, or SUPERVISE_SIGNAL (nothing follows) */
    uint32_t n_fds, argc, envc;
    uint32_t sig; /* SIGNAL: the signal for the step's process */
    uint32_t pad;
    uint64_t id;  /* sluice's; the reports name it */
    uint64_t len; /* of the strings that follow */
} supervise_request;

typedef struct supervise_report {
    uint32_t type;
    int32_t value; /* STARTED: pid or -errno; ENDED: the wait status */
    uint64_t id;
} supervise_report;

/* Serves sluice (the process parent) on socket fd until it closes it or
 * dies; returns the exit status (0, or 2 when it could not set up, said on
 * stderr). */
int supervise_serve(int fd, pid_t parent);

/* Reads the arguments (PARENT_PID, argc of them) and runs the server on
 * fd 3; a usage error is said on stderr under `name` and gives 2. */
int supervise_main(int argc, char **argv, const char *name);

#endif
