/* cmd_ui.c - sluice ui [--listen ADDR] [--api-key-file F] [LIMITS]: the dashboard,
 * its pages and JSON API (docs/dashboard.md), over the store's metadata. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "ui_api.h"

typedef struct ui_main {
    ui_server *server;
    uv_signal_t sigint, sigterm;
    int stopped_by;
} ui_main;

static void on_signal(uv_signal_t *h, int signum) {
    ui_main *u = h->data;
    u->stopped_by = signum;
    ui_server_stop(u->server);
    uv_close((uv_handle_t *)&u->sigint, NULL);
    uv_close((uv_handle_t *)&u->sigterm, NULL);
}

/* The key in file F: its first line, which must not be empty. */
static int read_key(const char *path, char *key, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sluice ui: cannot read the API key file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fgets(key, (int)size, f) != NULL;
    fclose(f);
    key[strcspn(key, "\r\n")] = 0;
    if (!ok || strlen(key) < 16) {
        fprintf(stderr, "sluice ui: %s:1: the API key must be one line of at least 16 characters\n",
                path);
        return -1;
    }
    return 0;
}

/* optarg as a number from lo to hi (seconds take decimals), into *v; else
 * says which option is wrong. */
static int limit_arg(const char *name, double lo, double hi, int decimals, double *v) {
    char *end;
    errno = 0;
    *v = decimals ? strtod(optarg, &end) : (double)strtol(optarg, &end, 10);
    if (end == optarg || *end || errno || *v < lo || *v > hi) {
        fprintf(stderr, "sluice ui: --%s takes %s from %g to %g, not '%s'\n", name,
                decimals ? "seconds" : "a whole number", lo, hi, optarg);
        return -1;
    }
    return 0;
}

int cmd_ui(const cli_globals *g, int argc, char **argv) {
    enum {
        OPT_LISTEN = 256,
        OPT_KEY,
        OPT_POLL,
        OPT_MAX_CONN,
        OPT_MAX_HEADER,
        OPT_MAX_BODY,
        OPT_HEADER_TIMEOUT,
        OPT_BODY_TIMEOUT,
        OPT_IDLE_TIMEOUT,
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"api-key-file", required_argument, NULL, OPT_KEY},
        {"poll-ms", required_argument, NULL, OPT_POLL},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER},
        {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
        {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
        {"body-timeout", required_argument, NULL, OPT_BODY_TIMEOUT},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:8081", *key_file = NULL;
    long poll_ms = 250;
    ui_limits lim = ui_default_limits;
    double v;
    int c;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        char *end;
        switch (c) {
        case OPT_MAX_CONN:
            if (limit_arg("max-connections", 1, 1 << 20, 0, &v))
                return EXIT_BAD_INPUT;
            lim.max_connections = (unsigned)v;
            break;
        case OPT_MAX_HEADER:
            if (limit_arg("max-header-bytes", 256, 1 << 20, 0, &v))
                return EXIT_BAD_INPUT;
            lim.max_header = (size_t)v;
            break;
        case OPT_MAX_BODY:
            if (limit_arg("max-body-bytes", 0, 1 << 30, 0, &v))
                return EXIT_BAD_INPUT;
            lim.max_body = (size_t)v;
            break;
        case OPT_HEADER_TIMEOUT:
        case OPT_BODY_TIMEOUT:
        case OPT_IDLE_TIMEOUT:
            if (limit_arg(c == OPT_HEADER_TIMEOUT ? "header-timeout"
                          : c == OPT_BODY_TIMEOUT ? "body-timeout"
                                                  : "idle-timeout",
                          0, 86400, 1, &v))
                return EXIT_BAD_INPUT;
            *(c == OPT_HEADER_TIMEOUT ? &lim.header_timeout_ms
              : c == OPT_BODY_TIMEOUT ? &lim.body_timeout_ms
                                      : &lim.idle_timeout_ms) = (unsigned)(v * 1000 + 0.5);
            break;
        case OPT_LISTEN:
            listen = optarg;
            break;
        case OPT_KEY:
            key_file = optarg;
            break;
        case OPT_POLL:
            poll_ms = strtol(optarg, &end, 10);
            if (*end || poll_ms < 10 || poll_ms > 60000) {
                fprintf(stderr, "sluice ui: --poll-ms takes 10 to 60000, not '%s'\n", optarg);
                return EXIT_BAD_INPUT;
            }
            break;
        default:
            return EXIT_BAD_INPUT;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "sluice ui: takes no operands (see 'sluice ui --help')\n");
        return EXIT_BAD_INPUT;
    }
    char key[512];
    if (key_file && read_key(key_file, key, sizeof(key)) != 0)
        return EXIT_BAD_INPUT;
    signal(SIGPIPE, SIG_IGN); /* a browser that goes away mid-answer */
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "sluice ui: cannot start the event loop\n");
        return EXIT_BAD_INPUT;
    }
    ui_ctx ctx = {.store = g->store, .api_key = key_file ? key : NULL};
    ui_main u = {0};
    char why[512];
    if (ui_server_start(&loop, listen, ui_api_handle, &ctx, (unsigned)poll_ms, &lim, &u.server, why,
                        sizeof(why)) != 0) {
        fprintf(stderr, "sluice ui: %s\n", why);
        uv_loop_close(&loop);
        return EXIT_BAD_INPUT;
    }
    uv_signal_init(&loop, &u.sigint);
    uv_signal_init(&loop, &u.sigterm);
    u.sigint.data = u.sigterm.data = &u;
    uv_signal_start(&u.sigint, on_signal, SIGINT);
    uv_signal_start(&u.sigterm, on_signal, SIGTERM);
    const char *addr = ui_server_address(u.server);
    if (strncmp(addr, "unix:", 5) == 0)
        printf("sluice ui: listening on %s (store %s)\n", addr, g->store);
    else
        printf("sluice ui: listening on http://%s/ (store %s)%s\n", addr, g->store,
               key_file ? "" : ", read-only");
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    ui_server_free(u.server);
    ui_api_close(&ctx);
    uv_loop_close(&loop);
    memset(key, 0, sizeof(key));
    return u.stopped_by == SIGINT ? EXIT_INTERRUPTED : EXIT_DONE;
}
