/* serve.h - scripts/demo-serve on loopback for end-to-end tests. */
#ifndef SLUICE_TESTS_SERVE_H
#define SLUICE_TESTS_SERVE_H

#include "local_server.h"
#include "runner.h"

/* Starts demo-serve on a free loopback port serving root (NULL: the demo
 * site); port_file is where it writes the port. Returns the server's pid
 * (local_server_stop() stops it) and sets *port. */
static pid_t demo_serve(const char *root, const char *port_file, int *port) {
    const char *args[] = {"--port", "0", root ? "--root" : NULL, root, NULL};
    return local_server_start(SLUICE_SOURCE_DIR "/scripts/demo-serve", args, port_file, port);
}

#endif
