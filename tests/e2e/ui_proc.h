/* ui_proc.h - a 'sluice ui' of the test's store for end-to-end tests: started
 * on a free loopback port, stopped with SIGTERM, which it must end on cleanly. */
#ifndef SLUICE_TESTS_UI_PROC_H
#define SLUICE_TESTS_UI_PROC_H

#include <signal.h>

#include "runner.h"

static pid_t ui_pid;
static int ui_port;

/* Starts 'sluice ui --listen 127.0.0.1:0' with the options opts (NULL ends
 * them; opts may be NULL), its output in TEST_DIR/ui.out, and reads its port. */
static void start_ui_opts(const char *const *opts) {
    char out[256];
    snprintf(out, sizeof(out), "%s/ui.out", test_dir);
    const char *argv[24] = {"sluice", test_store_arg, "ui", "--listen", "127.0.0.1:0"};
    size_t n = 5;
    for (; opts && *opts && n + 1 < 24; opts++)
        argv[n++] = *opts;
    argv[n] = NULL;
    ui_pid = fork();
    cr_assert_geq(ui_pid, 0);
    if (ui_pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(SLUICE_BIN, (char **)argv);
        _exit(127);
    }
    wait_for_text(out, "listening on http://127.0.0.1:");
    char *text = slurp(out);
    ui_port = atoi(strstr(text, "127.0.0.1:") + 10);
    free(text);
    cr_assert_gt(ui_port, 0);
}

/* SIGTERM; sluice ui must end cleanly (0) whatever connections are open. */
static void stop_ui(void) {
    if (ui_pid > 0) {
        kill(ui_pid, SIGTERM);
        int ws;
        waitpid(ui_pid, &ws, 0);
        cr_expect(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "sluice ui ends cleanly on SIGTERM");
        ui_pid = 0;
    }
}

#endif
