/* local_server.h - the test servers written in Python (scripts/demo-serve,
 * tests/llm_server.py) started on a free loopback port for one test. Each
 * writes the port it bound to a file, whole (by rename), once it listens. */
#ifndef SLUICE_TESTS_LOCAL_SERVER_H
#define SLUICE_TESTS_LOCAL_SERVER_H

#include <criterion/criterion.h>
#include "require.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_PYTHON "/usr/bin/python3"

/* Waits until the server pid has written its port to port_file, or has
 * died (the test then fails, naming it what); returns the port. */
static int local_server_port(pid_t pid, const char *port_file, const char *what) {
    int port = 0;
    for (;;) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port)
            return port;
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "%s did not start", what);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
}

/* Runs TEST_PYTHON script --port-file port_file args... (args NULL-ended,
 * may be NULL) with its output sent to /dev/null, and waits until it has
 * written its port or has died (the test then fails). Returns its pid, to
 * stop with local_server_stop(); *port is the port. */
static pid_t local_server_start(const char *script, const char *const *args, const char *port_file,
                                int *port) {
    const char *argv[32] = {TEST_PYTHON, script, "--port-file", port_file};
    size_t n = 4;
    for (; args && *args; args++) {
        cr_assert_lt(n, sizeof(argv) / sizeof(argv[0]) - 1, "too many arguments for %s", script);
        argv[n++] = *args;
    }
    argv[n] = NULL;
    unlink(port_file); /* a server started before in this test */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(TEST_PYTHON, (char *const *)argv);
        _exit(127);
    }
    *port = local_server_port(pid, port_file, script);
    return pid;
}

/* Stops a server local_server_start() started, if *pid is one; *pid = -1. */
static void local_server_stop(pid_t *pid) {
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
    }
    *pid = -1;
}

/* Starts tests/llm_server.py, the OpenAI-compatible test server, with args
 * (NULL-ended, may be NULL) and its port file in dir; skips the test where
 * TEST_PYTHON is missing (tests/require.h). Fills endpoint (size bytes) with
 * its base URL, "http://127.0.0.1:PORT/v1". Returns its pid, for
 * local_server_stop(). */
static inline pid_t llm_server_start(const char *dir, const char *const *args, char *endpoint,
                                     size_t size) {
    if (access(TEST_PYTHON, X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no " TEST_PYTHON " to run tests/llm_server.py");
    char port_file[1024];
    snprintf(port_file, sizeof(port_file), "%s/port", dir);
    int port;
    pid_t pid =
        local_server_start(SLUICE_SOURCE_DIR "/tests/llm_server.py", args, port_file, &port);
    snprintf(endpoint, size, "http://127.0.0.1:%d/v1", port);
    return pid;
}

#endif
