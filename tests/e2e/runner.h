/* runner.h - running the sluice binary from end-to-end tests. */
#ifndef SLUICE_TESTS_RUNNER_H
#define SLUICE_TESTS_RUNNER_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct result {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} result;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&data, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return data;
}

/* Environment variables the next runs set ("NAME=VALUE"), or NULL. */
static const char *run_env[8];

/* Runs argv (argv[0] is replaced by the sluice binary unless it is a path)
 * in folder cwd (NULL: here), with stdin from in_path (NULL: /dev/null). */
static result run_in(const char *cwd, const char *in_path, char *const argv[]) {
    char out_path[] = "/tmp/sluice-test-out-XXXXXX", err_path[] = "/tmp/sluice-test-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    cr_assert(out_fd >= 0 && err_fd >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in_fd = open(in_path ? in_path : "/dev/null", O_RDONLY);
        dup2(in_fd, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        for (int i = 0; i < 8 && run_env[i]; i++)
            putenv((char *)run_env[i]);
        execv(argv[0][0] == '/' ? argv[0] : SLUICE_BIN, argv);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    close(out_fd);
    close(err_fd);
    result r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws), slurp(out_path),
                slurp(err_path)};
    unlink(out_path);
    unlink(err_path);
    return r;
}

#define RUN(...) run_in(NULL, NULL, (char *[]){"sluice", __VA_ARGS__, NULL})

static void result_free(result *r) {
    free(r->out);
    free(r->err);
}

#endif
