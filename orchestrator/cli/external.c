/* external.c - commands that are programs of their own: for a command it
 * does not have, `sluice NAME ARGS` runs the program sluice-NAME ARGS, as
 * git runs git-NAME (docs/cli.md, "External commands"). The step families
 * bring theirs (sluice-search, sluice-warehouse) so that the orchestrator
 * holds no step code.
 *
 * Where: beside the sluice binary (the build tree), then in
 * ../libexec/sluice from it and in the libexec folder configured at build
 * time (an install), and nowhere else: not on PATH, so that what
 * `sluice NAME` runs depends on the sluice that runs it only, never on a
 * user's PATH. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#ifndef SLUICE_LIBEXEC_DIR
#define SLUICE_LIBEXEC_DIR "/usr/local/libexec/sluice"
#endif

#define PROGRAM_PREFIX "sluice-"
#define NAME_MAX_LEN 64

/* Programs that lie beside sluice but are not commands. */
static const char *const helpers[] = {"supervise"};

/* A command name: a lower-case letter or digit, then those, '-' or '_';
 * never a path, never a helper. */
static int valid_name(const char *name) {
    size_t len = strlen(name);
    if (len == 0 || len > NAME_MAX_LEN || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
        return 0;
    if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != len)
        return 0;
    for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++)
        if (strcmp(name, helpers[i]) == 0)
            return 0;
    return 1;
}

/* The folders looked in, in order; entries may be "" (unknown). */
static void search_dirs(char dirs[3][4096]) {
    const char *exe_dir = cli_exe_dir();
    snprintf(dirs[0], sizeof(dirs[0]), "%s", exe_dir);
    if (exe_dir[0])
        snprintf(dirs[1], sizeof(dirs[1]), "%s/../libexec/sluice", exe_dir);
    else
        dirs[1][0] = '\0';
    snprintf(dirs[2], sizeof(dirs[2]), "%s", SLUICE_LIBEXEC_DIR);
}

static int is_program(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int cli_external_find(const char *name, char *path, size_t size) {
    if (!valid_name(name))
        return 0;
    char dirs[3][4096];
    search_dirs(dirs);
    for (size_t i = 0; i < 3; i++) {
        if (!dirs[i][0])
            continue;
        int len = snprintf(path, size, "%s/" PROGRAM_PREFIX "%s", dirs[i], name);
        if (len > 0 && (size_t)len < size && is_program(path))
            return 1;
    }
    return 0;
}

static int is_builtin(const char *name) {
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return 1;
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds dir's sluice-NAME programs to *names (n of cap) that are not there yet. */
static int add_dir(const char *dir, char ***names, size_t *n, size_t *cap) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *name = e->d_name + strlen(PROGRAM_PREFIX);
        char path[4096];
        if (strncmp(e->d_name, PROGRAM_PREFIX, strlen(PROGRAM_PREFIX)) != 0 || !valid_name(name) ||
            is_builtin(name))
            continue;
        int len = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof(path))
            continue;
        int seen = 0;
        for (size_t i = 0; i < *n && !seen; i++)
            seen = strcmp((*names)[i], name) == 0;
        if (seen || !is_program(path))
            continue;
        if (*n == *cap) {
            size_t grown = *cap ? 2 * *cap : 8;
            char **more = realloc(*names, grown * sizeof(*more));
            if (!more) {
                rc = -ENOMEM;
                break;
            }
            *names = more;
            *cap = grown;
        }
        if (!((*names)[*n] = strdup(name)))
            rc = -ENOMEM;
        else
            (*n)++;
    }
    closedir(d);
    return rc;
}

int cli_external_names(char ***names, size_t *n) {
    char dirs[3][4096];
    size_t cap = 0;
    int rc = 0;
    *names = NULL;
    *n = 0;
    search_dirs(dirs);
    for (size_t i = 0; i < 3 && rc == 0; i++)
        if (dirs[i][0])
            rc = add_dir(dirs[i], names, n, &cap);
    if (rc) {
        cli_external_names_free(*names, *n);
        *names = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*names, *n, sizeof(**names), by_name);
    return 0;
}

void cli_external_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int cli_external_output(const char *name, const char *arg, char *out, size_t size) {
    char path[4096];
    out[0] = '\0';
    int fds[2];
    if (size < 2 || !cli_external_find(name, path, sizeof(path)) || pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(devnull, 2);
        close(fds[0]);
        execl(path, path, arg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while (pid > 0 && len < size - 1 && (got = read(fds[0], out + len, size - 1 - len)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        len += (size_t)got;
    }
    close(fds[0]); /* a program that writes on gets EPIPE */
    int ws = 0;
    if (pid > 0)
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
            ;
    out[len] = '\0';
    if (pid <= 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

void cli_external_summary(const char *name, char *out, size_t size) {
    if (cli_external_output(name, "--summary", out, size) == 0)
        out[strcspn(out, "\n")] = '\0';
}

static volatile sig_atomic_t child;

/* SIGTERM or SIGHUP sent to sluice alone (a service manager, a closed
 * terminal) is the command's too. */
static void forward(int sig) {
    if (child > 0)
        kill((pid_t)child, sig);
}

int cli_external_run(const cli_globals *g, const char *path, int argc, char **argv) {
    /* The global options sluice took out, for the program (docs/cli.md):
     * --store as SLUICE_HOME, --no-color as NO_COLOR (set by dispatch()),
     * --json left among the arguments; and the binary, to call back. */
    if (setenv("SLUICE_HOME", g->store, 1) != 0 ||
        (cli_exe_path()[0] && setenv("SLUICE_EXE", cli_exe_path(), 1) != 0)) {
        fprintf(stderr, "sluice: %s\n", strerror(errno));
        return EXIT_BAD_INPUT;
    }
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    if (!args) {
        fprintf(stderr, "sluice: out of memory\n");
        return EXIT_BAD_INPUT;
    }
    const char *slash = strrchr(path, '/');
    args[0] = (char *)(slash ? slash + 1 : path);
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execv(path, args);
        fprintf(stderr, "sluice: cannot run %s: %s\n", path, strerror(errno));
        _exit(126);
    }
    free(args);
    if (pid < 0) {
        fprintf(stderr, "sluice: cannot start %s: %s\n", path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    child = pid;
    /* Ctrl-C and Ctrl-\ reach the program from the terminal: sluice waits
     * for its status instead (as system() does). */
    struct sigaction fwd = {.sa_handler = forward}, ign = {.sa_handler = SIG_IGN};
    struct sigaction old[4];
    static const int sigs[4] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT};
    sigemptyset(&fwd.sa_mask);
    sigemptyset(&ign.sa_mask);
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], i < 2 ? &fwd : &ign, &old[i]);
    int ws = 0;
    pid_t w;
    while ((w = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    child = 0;
    if (w < 0) {
        fprintf(stderr, "sluice: lost %s: %s\n", path, strerror(errno));
        return EXIT_BAD_INPUT;
    }
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}
