/* command.h - what the programs of step families share: sluice-NAME,
 * which `sluice NAME ARGS` runs for a command the sluice binary does not
 * have (docs/cli.md, "External commands"), built with sluice_add_command().
 *
 * The contract with sluice: argv[0] is "sluice-NAME" and argv[1..] the
 * arguments after NAME, sluice's global options taken out but for --json,
 * which stays among them; $SLUICE_HOME is the store (--store, else the
 * user's $SLUICE_HOME, else ./.sluice); NO_COLOR=1 after --no-color;
 * $SLUICE_EXE is the sluice binary, to call back for what only it knows
 * (`sluice artifacts path`). The program's exit status is sluice's. It
 * answers --help with its usage and --summary with one line for
 * `sluice --help`. */
#ifndef SLUICE_STEPS_COMMAND_H
#define SLUICE_STEPS_COMMAND_H

#include <getopt.h>
#include <stddef.h>

/* Exit statuses, as the sluice binary's (docs/cli.md, "Exit status"). */
enum { COMMAND_DONE = 0, COMMAND_FAILED = 1, COMMAND_BAD_INPUT = 2 };

typedef struct command_info {
    const char *name;    /* NAME: messages read "sluice NAME: ..." */
    const char *summary; /* one line for 'sluice --help' */
    const char *usage;   /* the whole 'sluice NAME --help' text */
} command_info;

/* Answers --help (anywhere before a "--") and --summary (alone). Returns
 * COMMAND_DONE when it did, else -1: go on. */
int command_standard(const command_info *c, int argc, char **argv);

/* The store: $SLUICE_HOME, else ".sluice" (as sluice itself decides). */
const char *command_store(void);

/* getopt_long with sluice's messages: call command_getopt_begin() once,
 * then command_getopt() until -1. shortopts must begin with ':'. Unknown
 * options and missing values are reported as "sluice NAME: ..." on stderr
 * and '?' returned. */
void command_getopt_begin(void);
int command_getopt(const command_info *c, int argc, char **argv, const char *shortopts,
                   const struct option *longopts);

/* Prints "sluice NAME: " and the message, a line on stderr; returns
 * COMMAND_BAD_INPUT, so that `return command_bad(c, ...);` refuses in one
 * statement. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int command_bad(const command_info *c, const char *fmt, ...);

/* The value of option --name, text, as a number from lo to hi into *out:
 * 0, else COMMAND_BAD_INPUT said as "--name 'text': a number from lo to
 * hi". */
int command_number(const command_info *c, const char *name, const char *text, double lo, double hi,
                   double *out);

/* The folder spec names, into folder (size bytes): spec itself when it is
 * a folder, else the artifact of type it names as sluice resolves it
 * (`sluice artifacts path --type TYPE`: an id, RUN:STEP.OUTPUT, a step's
 * id). 0, else COMMAND_BAD_INPUT said on stderr. */
int command_folder(const command_info *c, const char *spec, const char *type, char *folder,
                   size_t size);

/* Runs the sluice binary ($SLUICE_EXE, else sluice on PATH, for a program
 * started by hand) with args (NULL-terminated, without argv[0]): its
 * stdout into out (size bytes, NUL-terminated, a final newline taken off),
 * its stderr passed through. Returns its exit status (128 + the signal
 * that ended it), or COMMAND_BAD_INPUT when it cannot be run (reported). */
int command_sluice(const command_info *c, const char *const *args, char *out, size_t size);

#endif
