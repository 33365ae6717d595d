/* options.c - what the commands share for their arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <string.h>
#include <uv.h>

#include "cli.h"
#include "run.h"

void cli_getopt_begin(void) {
    optind = 0; /* glibc: 0 re-initialises the scan completely */
    opterr = 0;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts) {
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c == ':') {
        fprintf(stderr, "sluice %s: option '%s' needs a value\n", argv[0], argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt)
            fprintf(stderr, "sluice %s: unknown option '-%c' (see 'sluice %s --help')\n", argv[0],
                    optopt, argv[0]);
        else
            fprintf(stderr, "sluice %s: unknown option '%s' (see 'sluice %s --help')\n", argv[0],
                    argv[optind - 1], argv[0]);
    }
    return c;
}

int cli_json_only(int argc, char **argv, int *json) {
    static const struct option longopts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
    int c;
    *json = 0;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c != 'J')
            return EXIT_BAD_INPUT;
        *json = 1;
    }
    return 0;
}

int cli_params_add(cli_params *ps, const char *spec) {
    const char **items = realloc(ps->items, (ps->n + 1) * sizeof(*items));
    if (!items) {
        fprintf(stderr, "sluice: out of memory\n");
        return -ENOMEM;
    }
    items[ps->n++] = spec;
    ps->items = items;
    return 0;
}

void cli_params_free(cli_params *ps) {
    free(ps->items);
    ps->items = NULL;
    ps->n = 0;
    free(ps->env_files);
    ps->env_files = NULL;
    ps->n_env_files = 0;
    for (size_t i = 0; i < ps->n_owned; i++)
        free(ps->owned[i]);
    free(ps->owned);
    ps->owned = NULL;
    ps->n_owned = 0;
}

/* "-p @FILE" as "--params FILE": "@" and the absolute path, so that a run
 * records where the file was and resume finds it from any folder. */
static int add_params_file(cli_params *ps, const char *path) {
    char *abs = realpath(path, NULL);
    char *item = malloc(strlen(abs ? abs : path) + 2);
    char **owned = realloc(ps->owned, (ps->n_owned + 1) * sizeof(*owned));
    if (owned)
        ps->owned = owned;
    if (!item || !owned) {
        free(abs);
        free(item);
        fprintf(stderr, "sluice: out of memory\n");
        return -1;
    }
    /* A missing file is reported, located, by the load. */
    sprintf(item, "@%s", abs ? abs : path);
    free(abs);
    ps->owned[ps->n_owned++] = item;
    return cli_params_add(ps, item) ? -1 : 1;
}

int cli_load_option(cli_params *ps, int c, const char *arg) {
    switch (c) {
    case 'p':
        if (arg[0] == '@')
            return add_params_file(ps, arg + 1);
        return cli_params_add(ps, arg) ? -1 : 1;
    case CLI_OPT_PARAMS:
        return add_params_file(ps, arg);
    case CLI_OPT_ENV_FILE: {
        const char **files = realloc(ps->env_files, (ps->n_env_files + 1) * sizeof(*files));
        if (!files) {
            fprintf(stderr, "sluice: out of memory\n");
            return -1;
        }
        files[ps->n_env_files++] = arg;
        ps->env_files = files;
        return 1;
    }
    case CLI_OPT_ENV_OVERRIDE:
        ps->env_override = 1;
        return 1;
    default:
        return 0;
    }
}

static char exe_path[4096], exe_dir[4096];

static void find_exe(void) {
    if (exe_path[0])
        return;
    size_t size = sizeof(exe_path);
    if (uv_exepath(exe_path, &size) != 0) {
        exe_path[0] = '\0';
        return;
    }
    snprintf(exe_dir, sizeof(exe_dir), "%s", exe_path);
    char *slash = strrchr(exe_dir, '/');
    if (slash)
        *slash = '\0';
}

const char *cli_exe_dir(void) {
    find_exe();
    return exe_dir;
}

const char *cli_exe_path(void) {
    find_exe();
    return exe_path;
}

int cli_load_plugins(plugin_registry *reg) {
    static int loaded;
    if (loaded)
        return 0;
    loaded = 1;
    diag_list d = DIAG_LIST_INIT;
    /* The steps sluice provides itself first: a plugin declaring one of
     * their names is refused as a second declaration. Their "file" is the
     * sluice binary, whose hash then joins their cache keys. */
    const plugin_lib *builtin = NULL;
    int rc = registry_add(reg, cli_exe_path()[0] ? cli_exe_path() : "sluice",
                          cli_exe_path()[0] ? cli_exe_path() : "sluice", NULL,
                          sched_builtin_plugin(), &d, &builtin);
    if (rc == 0)
        rc = registry_load_default(reg, cli_exe_dir()[0] ? cli_exe_dir() : NULL, &d);
    diag_print(&d, stderr);
    if (rc < 0)
        fprintf(stderr, "sluice: cannot load the plugins: %s\n", strerror(-rc));
    int bad = rc != 0 || d.errors;
    diag_clear(&d);
    return bad ? EXIT_BAD_INPUT : 0;
}

int cli_load_pipeline(const char *path, const cli_params *ps, load_mode mode, plugin_registry *reg,
                      pipeline **out) {
    diag_list d = DIAG_LIST_INIT;
    pipeline_options opt = {.overrides = ps ? ps->items : NULL,
                            .n_overrides = ps ? ps->n : 0,
                            .env_files = ps ? ps->env_files : NULL,
                            .n_env_files = ps ? ps->n_env_files : 0,
                            .env_override = ps ? ps->env_override : 0,
                            .require_secrets = mode == LOAD_RUN};
    pipeline *p = NULL;
    *out = NULL;
    cli_load_plugins(reg);
    int rc = pipeline_load_file(path, &opt, &d, &p);
    /* A pipeline with errors is still bound when it was read, so that one
     * pass reports every error, its plugins' included. */
    if (p && (rc == 0 || rc == -EINVAL)) {
        int bound = pipeline_bind(p, reg, mode == LOAD_CHECK ? BIND_LENIENT : BIND_STRICT, &d);
        if (rc == 0)
            rc = bound;
    }
    if (rc == 0 && d.errors)
        rc = -EINVAL;
    if (p)
        diag_print_masked(&d, stderr, (const char *const *)p->secrets, p->n_secrets);
    else
        diag_print(&d, stderr);
    /* Out of memory (or another failure) with nothing located to report. */
    if (rc < 0 && rc != -EINVAL && !d.errors)
        fprintf(stderr, "%s: error: %s\n", path, strerror(-rc));
    diag_clear(&d);
    if (rc) {
        pipeline_free(p);
        return EXIT_BAD_INPUT;
    }
    *out = p;
    return 0;
}
