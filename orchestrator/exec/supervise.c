#define _GNU_SOURCE /* execvp with a path search, sigtimedwait */
#include "supervise.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The parent of process pid, from /proc/PID/stat, or -1 when it is gone. */
static pid_t parent_of(pid_t pid) {
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command's name, in parentheses, may hold spaces and ')': the
     * fields go on after the last ')'. */
    const char *close = strrchr(text, ')');
    char state;
    int ppid;
    if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

typedef struct pid_list {
    pid_t *pid, *ppid;
    size_t n, cap;
} pid_list;

static int pid_list_add(pid_list *l, pid_t pid, pid_t ppid) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        pid_t *a = realloc(l->pid, cap * sizeof(*a));
        if (a)
            l->pid = a;
        pid_t *b = a ? realloc(l->ppid, cap * sizeof(*b)) : NULL;
        if (!b)
            return -ENOMEM;
        l->ppid = b;
        l->cap = cap;
    }
    l->pid[l->n] = pid;
    l->ppid[l->n++] = ppid;
    return 0;
}

/* Sends sig to every descendant of this process, from one snapshot of
 * /proc (a process forked meanwhile is caught by the next call: callers
 * repeat until no child is left). Members of our own process group are
 * skipped unless `group` is set: sluice signals the group itself, and a
 * second SIGTERM or SIGINT means "hurry" to many programs. */
static void signal_descendants(int sig, int group) {
    pid_list all = {0}, mine = {0};
    pid_t self = getpid();
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        pid_t ppid;
        if (*end || pid <= 0 || pid == self || (ppid = parent_of((pid_t)pid)) < 0)
            continue;
        if (pid_list_add(&all, (pid_t)pid, ppid) != 0)
            break;
    }
    if (d)
        closedir(d);
    /* Descendants: our children, then their children, until none is new. */
    for (int grew = 1; grew;) {
        grew = 0;
        for (size_t i = 0; i < all.n; i++) {
            if (!all.pid[i])
                continue;
            int below = all.ppid[i] == self;
            for (size_t k = 0; !below && k < mine.n; k++)
                below = mine.pid[k] == all.ppid[i];
            if (below && pid_list_add(&mine, all.pid[i], 0) == 0) {
                all.pid[i] = 0;
                grew = 1;
            }
        }
    }
    pid_t pgrp = getpgrp();
    for (size_t i = 0; i < mine.n; i++)
        if (group || getpgid(mine.pid[i]) != pgrp)
            kill(mine.pid[i], sig);
    free(all.pid);
    free(all.ppid);
    free(mine.pid);
    free(mine.ppid);
}

static const int handled[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};

int supervise_run(const char *file, char *const argv[], pid_t parent) {
    sigset_t set, none;
    sigemptyset(&set);
    sigemptyset(&none);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&set, handled[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0);
    if (getppid() != parent) /* sluice died before the death signal was armed */
        return 128 + SIGKILL;
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cannot start '%s': %s\n", file, strerror(errno));
        return 126;
    }
    if (pid == 0) {
        static const int reset[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1,
                                    SIGUSR2, SIGPIPE, SIGQUIT, SIGALRM};
        for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
            signal(reset[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Should the supervisor itself be killed, its step goes too. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != self)
            _exit(128 + SIGKILL);
        execvp(file, argv);
        int err = errno;
        fprintf(stderr, "cannot run '%s': %s\n", file, strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    }
    int status = 0, ended = 0, killing = 0;
    for (;;) {
        int ws;
        pid_t w;
        while ((w = waitpid(-1, &ws, WNOHANG)) > 0)
            if (w == pid) {
                status = ws;
                ended = 1;
            }
        if (w < 0 && errno == ECHILD)
            break;
        /* Nothing outlives its step: once the step's own process ended,
         * whatever it left running is killed, daemons included. */
        if (ended || killing)
            signal_descendants(SIGKILL, 1);
        siginfo_t si;
        struct timespec again = {0, 20 * 1000000L};
        int sig = ended || killing ? sigtimedwait(&set, &si, &again) : sigwaitinfo(&set, &si);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            signal_descendants(sig, 0);
        else if (sig == SIGUSR1 || sig == SIGUSR2)
            killing = 1;
    }
    if (WIFSIGNALED(status)) {
        /* End the way the step ended, so sluice reports its signal; its
         * core, if any, was the step's to dump. */
        int sig = WTERMSIG(status);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        raise(sig);
        return 128 + sig;
    }
    return WEXITSTATUS(status);
}

int supervise_main(int argc, char **argv, const char *name) {
    char *end = NULL;
    long parent = argc >= 4 ? strtol(argv[0], &end, 10) : 0;
    if (argc < 4 || *end || parent <= 0 || strcmp(argv[1], "--") != 0) {
        fprintf(stderr, "usage: %s PARENT_PID -- FILE ARGV0 [ARGS...]\n", name);
        return 2;
    }
    return supervise_run(argv[2], argv + 3, (pid_t)parent);
}
