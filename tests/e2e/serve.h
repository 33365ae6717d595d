/* serve.h - scripts/demo-serve on loopback for end-to-end tests. */
#ifndef SLUICE_TESTS_SERVE_H
#define SLUICE_TESTS_SERVE_H

#include "runner.h"

/* Starts demo-serve on a free loopback port serving root (NULL: the demo
 * site); port_file is where it writes the port. Returns the server's pid
 * (stop it with SIGTERM) and sets *port. */
static pid_t demo_serve(const char *root, const char *port_file, int *port) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        if (root)
            execl("/usr/bin/python3", "python3", SLUICE_SOURCE_DIR "/scripts/demo-serve", "--root",
                  root, "--port", "0", "--port-file", port_file, (char *)NULL);
        else
            execl("/usr/bin/python3", "python3", SLUICE_SOURCE_DIR "/scripts/demo-serve", "--port",
                  "0", "--port-file", port_file, (char *)NULL);
        _exit(127);
    }
    *port = 0;
    for (int i = 0; i < 200 && !*port; i++) { /* up to 10 s */
        char *text = slurp(port_file);
        if (text)
            *port = atoi(text);
        free(text);
        if (!*port)
            nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    cr_assert_gt(*port, 0, "the demo server started");
    return pid;
}

#endif
