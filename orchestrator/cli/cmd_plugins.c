/* cmd_plugins.c - sluice plugins list|describe: what the search path holds. */
#include <bson/bson.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "buf.h"
#include "suggest.h"
#include "check.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

static void print_json(bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    if (json)
        printf("%s\n", json);
    bson_free(json);
}

static void append_ports(bson_t *doc, const char *key, const sl_port *ports, size_t n) {
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(doc, key, &arr);
    for (size_t i = 0; i < n; i++) {
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        bson_t p;
        BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &p);
        BSON_APPEND_UTF8(&p, "name", ports[i].name);
        BSON_APPEND_UTF8(&p, "type", ports[i].type);
        BSON_APPEND_BOOL(&p, "optional", ports[i].optional != 0);
        if (ports[i].doc)
            BSON_APPEND_UTF8(&p, "doc", ports[i].doc);
        bson_append_document_end(&arr, &p);
    }
    bson_append_array_end(doc, &arr);
}

static void describe_json(const plugin_step *s) {
    bson_t doc = BSON_INITIALIZER, params;
    BSON_APPEND_UTF8(&doc, "name", s->step->name);
    BSON_APPEND_UTF8(&doc, "version", s->step->version);
    BSON_APPEND_UTF8(&doc, "summary", s->step->summary ? s->step->summary : "");
    BSON_APPEND_UTF8(&doc, "plugin", s->lib->desc.name);
    BSON_APPEND_UTF8(&doc, "path", s->lib->path);
    append_ports(&doc, "inputs", s->step->inputs, s->n_inputs);
    append_ports(&doc, "outputs", s->step->outputs, s->n_outputs);
    BSON_APPEND_ARRAY_BEGIN(&doc, "params", &params);
    for (size_t i = 0; i < s->n_params; i++) {
        const sl_param *p = &s->step->params[i];
        char idx[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
        bson_t d;
        BSON_APPEND_DOCUMENT_BEGIN(&params, k, &d);
        BSON_APPEND_UTF8(&d, "name", p->name);
        BSON_APPEND_UTF8(&d, "kind", sl_param_kind_name(p->kind));
        BSON_APPEND_BOOL(&d, "required", p->required != 0);
        if (p->default_value)
            BSON_APPEND_UTF8(&d, "default", p->default_value);
        if (p->doc)
            BSON_APPEND_UTF8(&d, "doc", p->doc);
        bson_append_document_end(&params, &d);
    }
    bson_append_array_end(&doc, &params);
    print_json(&doc);
    bson_destroy(&doc);
}

/* The built-in shell step, described as plugin steps are. Its ports are
 * whatever a pipeline names in 'inputs' and in 'with.outputs'. What it
 * accepts is checked by pipeline/check.c (check_shell). */
static const sl_param shell_params[] = {
    {"run", SL_PARAM_STRING, NULL,
     "the command; run directly when it needs no shell, else through /bin/sh -c", 1},
    {"outputs", SL_PARAM_JSON, NULL,
     "NAME: PATH of each file or folder it writes, relative to its work folder", 0},
    {"env", SL_PARAM_JSON, NULL, "NAME: VALUE of environment variables to set", 0},
    {NULL, 0, NULL, NULL, 0},
};
static const sl_step shell_step = {
    .name = STEP_SHELL,
    .version = "builtin",
    .summary = "run a command through /bin/sh, its inputs and outputs as files",
    .params = shell_params,
};
static const plugin_lib shell_lib = {.path = "built into sluice",
                                     .desc = {.name = "sluice", .version = SLUICE_VERSION}};
static const plugin_step shell = {.step = &shell_step, .lib = &shell_lib, .n_params = 3};
static const char shell_ports[] =
    "  any name      any           each NAME: STEP.OUTPUT in 'inputs', as $SLUICE_INPUT_NAME\n";
static const char shell_outputs[] =
    "  any name      any           each NAME in 'with.outputs', as $SLUICE_OUTPUT_NAME\n";

static void describe_text(const plugin_step *s) {
    const sl_step *st = s->step;
    printf("%s %s  (plugin %s %s, %s)\n", st->name, st->version, s->lib->desc.name,
           s->lib->desc.version ? s->lib->desc.version : "", s->lib->path);
    if (st->summary)
        printf("  %s\n", st->summary);
    const char *titles[] = {"inputs", "outputs"};
    const sl_port *ports[] = {st->inputs, st->outputs};
    size_t counts[] = {s->n_inputs, s->n_outputs};
    for (int k = 0; k < 2; k++) {
        printf("%s:\n", titles[k]);
        if (s == &shell)
            fputs(k ? shell_outputs : shell_ports, stdout);
        else if (!counts[k])
            printf("  (none)\n");
        for (size_t i = 0; i < counts[k]; i++)
            printf("  %-16s %-12s%s%s%s\n", ports[k][i].name, ports[k][i].type,
                   ports[k][i].optional ? " optional" : "", ports[k][i].doc ? "  " : "",
                   ports[k][i].doc ? ports[k][i].doc : "");
    }
    printf("parameters:\n");
    if (!s->n_params)
        printf("  (none)\n");
    for (size_t i = 0; i < s->n_params; i++) {
        const sl_param *p = &st->params[i];
        buf def = BUF_INIT;
        if (p->required)
            buf_puts(&def, "required");
        else if (p->default_value)
            buf_printf(&def, "default %s", p->default_value);
        printf("  %-16s %-8s %-16s %s\n", p->name, sl_param_kind_name(p->kind), buf_str(&def),
               p->doc ? p->doc : "");
        buf_free(&def);
    }
}

/* Adds the 'plugins:' folders of pipeline file path to reg, as binding it
 * would. Prints what is wrong; returns 0 or EXIT_BAD_INPUT. */
static int load_pipeline_plugins(const char *path, plugin_registry *reg) {
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = NULL;
    int rc = pipeline_load_file(path, NULL, &d, &p);
    for (size_t i = 0; p && i < p->n_plugins; i++)
        if (registry_load_dir(reg, p->plugins[i], 0, &d) == -ENOMEM)
            break;
    diag_print(&d, stderr);
    int bad = !p || d.errors;
    (void)rc;
    diag_clear(&d);
    pipeline_free(p);
    return bad ? EXIT_BAD_INPUT : 0;
}

int cmd_plugins(const cli_globals *g, int argc, char **argv) {
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'},
        {"pipeline", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    (void)g;
    int json = 0, c;
    const char *pipeline_file = NULL;
    cli_getopt_begin();
    while ((c = cli_getopt(argc, argv, ":", longopts)) != -1) {
        if (c == 'J')
            json = 1;
        else if (c == 'P')
            pipeline_file = optarg;
        else
            return EXIT_BAD_INPUT;
    }
    const char *sub = optind < argc ? argv[optind] : NULL;
    int is_list = sub && strcmp(sub, "list") == 0 && argc - optind == 1;
    int is_describe = sub && strcmp(sub, "describe") == 0 && argc - optind == 2;
    if (!is_list && !is_describe) {
        fprintf(stderr, "sluice plugins: use 'plugins list' or 'plugins describe NAME', with "
                        "--pipeline FILE for its plugin folders (see 'sluice plugins --help')\n");
        return EXIT_BAD_INPUT;
    }
    plugin_registry reg = PLUGIN_REGISTRY_INIT(host_registry());
    int status = cli_load_plugins(&reg);
    if (pipeline_file && load_pipeline_plugins(pipeline_file, &reg))
        status = EXIT_BAD_INPUT;
    if (is_describe) {
        const char *name = argv[optind + 1];
        const plugin_step *s = strcmp(name, STEP_SHELL) == 0 ? &shell : registry_find(&reg, name);
        if (!s) {
            const char **names = calloc(reg.n_steps + 1, sizeof(*names));
            size_t n = 0;
            for (size_t i = 0; names && i < reg.n_steps; i++)
                names[n++] = reg.steps[i].step->name;
            if (names)
                names[n++] = STEP_SHELL;
            const char *hint = names ? suggest_closest(name, names, n) : NULL;
            if (hint)
                fprintf(stderr,
                        "sluice plugins: no plugin declares step '%s' (did you mean "
                        "'%s'?)\n",
                        name, hint);
            else
                fprintf(stderr, "sluice plugins: no plugin declares step '%s'%s\n", name,
                        pipeline_file ? "" : " (a pipeline's own plugins: give --pipeline FILE)");
            free(names);
            status = EXIT_BAD_INPUT;
        } else if (json) {
            describe_json(s);
        } else {
            describe_text(s);
        }
    } else if (json) {
        bson_t doc = BSON_INITIALIZER, arr;
        BSON_APPEND_ARRAY_BEGIN(&doc, "steps", &arr);
        for (size_t i = 0; i <= reg.n_steps; i++) {
            const plugin_step *s = i ? &reg.steps[i - 1] : &shell;
            char idx[16];
            const char *k;
            bson_uint32_to_string((uint32_t)i, &k, idx, sizeof(idx));
            bson_t d;
            BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &d);
            BSON_APPEND_UTF8(&d, "name", s->step->name);
            BSON_APPEND_UTF8(&d, "version", s->step->version);
            BSON_APPEND_UTF8(&d, "plugin", s->lib->desc.name);
            BSON_APPEND_UTF8(&d, "path", s->lib->path);
            BSON_APPEND_UTF8(&d, "summary", s->step->summary ? s->step->summary : "");
            bson_append_document_end(&arr, &d);
        }
        bson_append_array_end(&doc, &arr);
        print_json(&doc);
        bson_destroy(&doc);
    } else {
        printf("%-20s %-9s %-20s %s\n", "STEP", "VERSION", "PLUGIN", "SUMMARY");
        for (size_t i = 0; i <= reg.n_steps; i++) {
            const plugin_step *s = i ? &reg.steps[i - 1] : &shell;
            printf("%-20s %-9s %-20s %s\n", s->step->name, s->step->version, s->lib->desc.name,
                   s->step->summary ? s->step->summary : "");
        }
    }
    registry_free(&reg);
    return status;
}
