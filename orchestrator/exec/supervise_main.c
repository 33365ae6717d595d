/* sluice-supervise PARENT_PID -- FILE ARGV0 [ARGS...]: the supervisor of
 * exec/supervise.h as a program of its own. It needs nothing but libc, so
 * that starting it costs a step little more than its own command; sluice
 * falls back on 'sluice exec --supervise' when it is not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervise.h"

int main(int argc, char **argv) {
    return supervise_main(argc - 1, argv + 1, "sluice-supervise");
}
