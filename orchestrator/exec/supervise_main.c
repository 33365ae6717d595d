/* sluice-supervise PARENT_PID, with a socket to sluice as fd 3: the fork
 * server of exec/supervise.h as a program of its own. It needs nothing but
 * libc, so that its forks stay cheap; sluice falls back on 'sluice exec
 * --supervise' when it is not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervise.h"

int main(int argc, char **argv) { return supervise_main(argc - 1, argv + 1, "sluice-supervise"); }
