/* command.c - the frame of a step family's program (command.h). */
#include "command.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int command_standard(const command_info *c, int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--summary") == 0) {
        printf("%s\n", c->summary);
        return COMMAND_DONE;
    }
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(c->usage, stdout);
            return COMMAND_DONE;
        }
    return -1;
}

int command_bad(const command_info *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return COMMAND_BAD_INPUT;
}

int command_number(const command_info *c, const char *name, const char *text, double lo, double hi,
                   double *out) {
    char *end;
    *out = strtod(text, &end);
    if (*end || end == text || !(*out >= lo && *out <= hi))
        return command_bad(c, "--%s '%s': a number from %g to %g", name, text, lo, hi);
    return 0;
}

int command_folder(const command_info *c, const char *spec, const char *type, char *folder,
                   size_t size) {
    struct stat st;
    if (stat(spec, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return command_bad(c, "%s is not a folder", spec);
        snprintf(folder, size, "%s", spec);
        return 0;
    }
    const char *args[] = {
        "--store", command_store(), "artifacts", "path", "--type", type, "--", spec, NULL};
    return command_sluice(c, args, folder, size) ? COMMAND_BAD_INPUT : 0;
}

const char *command_store(void) {
    const char *home = getenv("SLUICE_HOME");
    return home && home[0] ? home : ".sluice";
}

void command_getopt_begin(void) {
    optind = 0; /* glibc: 0 re-initialises the scan completely */
    opterr = 0;
}

int command_getopt(const command_info *cmd, int argc, char **argv, const char *shortopts,
                   const struct option *longopts) {
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == ':') {
        fprintf(stderr, "sluice %s: option '%s' needs a value\n", cmd->name, argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt)
            fprintf(stderr, "sluice %s: unknown option '-%c' (see 'sluice %s --help')\n", cmd->name,
                    optopt, cmd->name);
        else
            fprintf(stderr, "sluice %s: unknown option '%s' (see 'sluice %s --help')\n", cmd->name,
                    argv[optind - 1], cmd->name);
    }
    return c;
}

int command_sluice(const command_info *c, const char *const *args, char *out, size_t size) {
    const char *exe = getenv("SLUICE_EXE");
    size_t n = 0;
    while (args[n])
        n++;
    char **argv = calloc(n + 2, sizeof(*argv));
    int fds[2];
    if (!argv || pipe(fds) != 0) {
        fprintf(stderr, "sluice %s: cannot run sluice: %s\n", c->name,
                argv ? strerror(errno) : "out of memory");
        free(argv);
        return COMMAND_BAD_INPUT;
    }
    argv[0] = "sluice";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (exe && exe[0])
            execv(exe, argv);
        else
            execvp("sluice", argv);
        fprintf(stderr, "sluice %s: cannot run %s: %s\n", c->name, exe && exe[0] ? exe : "sluice",
                strerror(errno));
        _exit(COMMAND_BAD_INPUT);
    }
    free(argv);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        fprintf(stderr, "sluice %s: cannot run sluice: %s\n", c->name, strerror(errno));
        return COMMAND_BAD_INPUT;
    }
    size_t len = 0;
    ssize_t got;
    char sink[512];
    int cut = 0;
    /* Read to the end, so that the child never blocks on a full pipe. */
    while ((got = read(fds[0], len + 1 < size ? out + len : sink,
                       len + 1 < size ? size - 1 - len : sizeof(sink))) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        if (len + 1 < size)
            len += (size_t)got;
        else
            cut = 1;
    }
    close(fds[0]);
    out[len] = '\0';
    if (len && out[len - 1] == '\n')
        out[len - 1] = '\0';
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    int status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    if (status == 0 && cut) {
        fprintf(stderr, "sluice %s: sluice printed more than %zu bytes\n", c->name, size - 1);
        status = COMMAND_BAD_INPUT;
    }
    return status;
}
