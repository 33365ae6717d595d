/* cmd_run.c - sluice run FILE: load, bind, run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "run.h"
#include "runreport.h"

#include <uv.h>

int cmd_run(const cli_globals *g, int argc, char **argv) {
    enum {
        OPT_NO_CACHE = 256,
        OPT_ONLY,
        OPT_FROM,
        OPT_RUNNER,
        OPT_DRY_RUN,
        OPT_JSON,
        OPT_TAG,
        OPT_OPENLINEAGE,
        OPT_JUNIT,
        OPT_CAUSE
    };
    static const struct option longopts[] = {
        {"param", required_argument, NULL, 'p'},
        {"jobs", required_argument, NULL, 'j'},
        {"no-cache", no_argument, NULL, OPT_NO_CACHE},
        {"only", required_argument, NULL, OPT_ONLY},
        {"from", required_argument, NULL, OPT_FROM},
        {"runner", required_argument, NULL, OPT_RUNNER},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"json", no_argument, NULL, OPT_JSON},
        {"tag", required_argument, NULL, OPT_TAG},
        {"openlineage", required_argument, NULL, OPT_OPENLINEAGE},
        {"junit", required_argument, NULL, OPT_JUNIT},
        /* Hidden: the scheduler says what started the run (docs/schedules.md). */
        {"cause", required_argument, NULL, OPT_CAUSE},
        CLI_LOAD_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    cli_params ps = {0}, tags = {0}, cause = {0};
    run_options o = {.store = g->store};
    int c, bad = 0, dry_run = 0;
    const char *later = NULL, *openlineage = NULL, *junit = NULL, *runner = NULL;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":p:j:", longopts)) != -1) {
        char *end;
        switch (c) {
        case 'j':
            o.jobs = (int)strtol(optarg, &end, 10);
            if (*end || !*optarg || o.jobs < 0 || o.jobs > 4096) {
                fprintf(stderr,
                        "sluice run: --jobs takes a number from 0 (all cores) to 4096, "
                        "not '%s'\n",
                        optarg);
                bad = 1;
            } else if (o.jobs == 0) { /* as settings.jobs: 0, not "settings.jobs, else ..." */
                o.jobs = (int)uv_available_parallelism();
            }
            break;
        case OPT_NO_CACHE:
            o.no_cache = 1;
            break;
        case OPT_JSON:
            o.json = 1;
            break;
        case OPT_TAG:
        case OPT_CAUSE:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                fprintf(stderr, "sluice run: --%s takes KEY=VALUE, not '%s'\n",
                        c == OPT_TAG ? "tag" : "cause", optarg);
                bad = 1;
            } else {
                bad = cli_params_add(c == OPT_TAG ? &tags : &cause, optarg) != 0;
            }
            break;
        case OPT_ONLY:
            o.only = optarg;
            break;
        case OPT_FROM:
            o.from = optarg;
            break;
        case OPT_OPENLINEAGE:
            openlineage = optarg;
            break;
        case OPT_JUNIT:
            junit = optarg;
            bad = runreport_junit_check(junit) != 0;
            break;
        case OPT_DRY_RUN:
            dry_run = 1;
            break;
        case OPT_RUNNER:
            if (strcmp(optarg, "slurm") == 0 || strcmp(optarg, "local") == 0)
                runner = optarg;
            else {
                fprintf(stderr, "sluice run: --runner is local or slurm, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        default:
            bad = cli_load_option(&ps, c, optarg) != 1;
        }
    }
    if (!bad && o.only && o.from) {
        fprintf(stderr, "sluice run: give --only or --from, not both\n");
        bad = 1;
    }
    if (!bad && later) {
        fprintf(stderr, "sluice run: %s\n", later);
        bad = 1;
    }
    if (!bad && argc - optind != 1) {
        fprintf(stderr, "sluice run: give exactly one pipeline file (see 'sluice run --help')\n");
        bad = 1;
    }
    if (bad) {
        cli_params_free(&ps);
        cli_params_free(&tags);
        cli_params_free(&cause);
        return EXIT_BAD_INPUT;
    }
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    pipeline *p = NULL;
    int status = cli_load_pipeline(argv[optind], &ps, LOAD_RUN, &reg, &p);
    if (status == 0 && runner) /* over settings.runner; a step's own 'runner' still wins */
        p->settings.runner = runner;
    if (status == 0 && openlineage) {
        /* Replaces settings.openlineage; relative to the working folder. */
        char why[1024];
        int rc = pipeline_lineage_target(&p->arena, openlineage, NULL, &p->settings.openlineage,
                                         why, sizeof(why));
        if (rc) {
            fprintf(stderr, "sluice run: --openlineage: %s\n", rc == -EINVAL ? why : strerror(-rc));
            status = EXIT_BAD_INPUT;
        }
    }
    if (status == 0)
        status = cli_resolve_artifact_inputs(p, o.store);
    if (status == 0 && dry_run) {
        status = cli_print_plan(p, o.store, o.no_cache, o.json);
    } else if (status == 0) {
        o.exe = cli_exe_path();
        o.overrides = ps.items;
        o.n_overrides = ps.n;
        o.tags = tags.items;
        o.n_tags = tags.n;
        o.cause = cause.items;
        o.n_cause = cause.n;
        status = run_pipeline(p, &o);
    }
    if (junit && !dry_run)
        status = runreport_junit(o.store, o.run_id, p ? p->name : argv[optind], status, junit);
    cli_params_free(&tags);
    cli_params_free(&cause);
    if (o.abandoned) /* a step's thread still runs plugin code: never unload it */
        run_exit_abandoned(status);
    pipeline_free(p);
    registry_free(&reg);
    cli_params_free(&ps);
    return status;
}
