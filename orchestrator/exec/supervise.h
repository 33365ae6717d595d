/* supervise.h - the small process between sluice and every step command it
 * starts ('sluice exec --supervise'), so that nothing a step starts outlives
 * it, whatever the step does and however sluice ends.
 *
 * A process group is not enough: a step that calls setsid() or setpgid(),
 * or a daemon made by a double fork, leaves the group, and a timeout that
 * kills the group leaves it running (and holding the step's output pipes).
 * The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): every
 * descendant orphaned below it becomes its child, so it can always find and
 * kill the whole tree. It asks the kernel for SIGUSR2 when sluice dies
 * (PR_SET_PDEATHSIG), so a `kill -9` of sluice ends the steps too.
 *
 * Signals it takes from sluice:
 *   SIGTERM, SIGINT, SIGHUP  passed on to every descendant (the step stops
 *                            cleanly if it can);
 *   SIGUSR1                  every descendant killed at once (the end of
 *                            the grace period, or a forced stop);
 *   SIGUSR2                  the same: sent by the kernel when sluice died.
 * When the step's own process ends, whatever it left running is killed,
 * and the supervisor exits with the step's status, or is killed by the
 * step's signal, once no descendant is left. */
#ifndef SLUICE_EXEC_SUPERVISE_H
#define SLUICE_EXEC_SUPERVISE_H

#include <sys/types.h>

/* The supervisor is the program sluice-supervise, installed beside sluice
 * (or in LIBEXECDIR/sluice), or else sluice itself, as 'sluice exec
 * --supervise': either way its arguments are PARENT_PID -- FILE ARGV0
 * ARGS... */
#define SUPERVISE_FLAG "--supervise"
#define SUPERVISE_PROGRAM "sluice-supervise"

/* Runs FILE (looked up in PATH) with argv under supervision; parent is the
 * pid of the sluice that started it, to catch a parent that died before the
 * death signal was armed. Returns the exit status to exit with (126 or 127
 * when FILE could not run, said on stderr); when the step was killed by a
 * signal the process kills itself with it and never returns. */
int supervise_run(const char *file, char *const argv[], pid_t parent);

/* Reads the arguments (PARENT_PID -- FILE ARGV0 ARGS..., argc of them) and
 * runs supervise_run(); a usage error is said on stderr under `name` and
 * gives 2. */
int supervise_main(int argc, char **argv, const char *name);

#endif
