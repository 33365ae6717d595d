/* local_server.h - the test servers written in Python (scripts/demo-serve,
 * tests/llm_server.py) started on a free loopback port for one test. Each
 * writes the port it bound to a file, whole (by rename), once it listens. */
#ifndef SLUICE_TESTS_LOCAL_SERVER_H
#define SLUICE_TESTS_LOCAL_SERVER_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_PYTHON "/usr/bin/python3"

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
    for (*port = 0; !*port;) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            if (fscanf(f, "%d", port) != 1)
                *port = 0;
            fclose(f);
        }
        if (*port)
            break;
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "%s did not start", script);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
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

#endif
