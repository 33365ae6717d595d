/* fuzz_plugin - libFuzzer target for the plugin loader's checks and the
 * task manifest that 'sluice exec' reads.
 *
 * The input is read as lines describing a plugin descriptor, so that the
 * fuzzer reaches every refusal with arbitrary names, types, kinds and
 * defaults (a real dlopen would only ever see the few plugins on disk):
 *   plugin NAME MAJOR MINOR          steps follow
 *   step NAME VERSION [norun]
 *   in|out NAME TYPE OPTIONAL
 *   param NAME KIND REQUIRED DEFAULT...
 *   manifest JSON...                 fed to task_from_bson
 * A "-" stands for NULL. Any crash, leak or sanitizer report is a bug. */
#include <bson/bson.h>
#include <sluice/plugin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "host.h"
#include "task.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 8
#define MAX_ENTRIES_PER 8

typedef struct fuzz_step {
    sl_step step;
    sl_port ins[MAX_ENTRIES_PER + 1], outs[MAX_ENTRIES_PER + 1];
    sl_param params[MAX_ENTRIES_PER + 1];
    int n_in, n_out, n_params;
} fuzz_step;

static int fuzz_run(sl_ctx *ctx) {
    (void)ctx;
    return SL_OK;
}

static char *word(arena *a, char **cursor) {
    char *p = *cursor;
    while (*p == ' ')
        p++;
    if (!*p)
        return NULL;
    char *end = strchr(p, ' ');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    *cursor = p + len;
    if (len == 1 && *p == '-')
        return NULL;
    return arena_strndup(a, p, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arena a = ARENA_INIT;
    char *text = arena_strndup(&a, (const char *)data, size);
    if (!text) {
        arena_free(&a);
        return 0;
    }
    sl_plugin desc = {.abi_version = SL_ABI_VERSION,
                      .size = sizeof(sl_plugin),
                      .signature = SL_BUILD_SIGNATURE,
                      .name = "fuzz",
                      .version = "1",
                      .step_size = sizeof(sl_step),
                      .port_size = sizeof(sl_port),
                      .param_size = sizeof(sl_param)};
    fuzz_step *steps = arena_calloc(&a, MAX_STEPS, sizeof(fuzz_step));
    int n_steps = 0;
    fuzz_step *cur = NULL;
    for (char *line = text, *next; line && steps; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *cursor = line;
        char *verb = word(&a, &cursor);
        if (!verb)
            continue;
        if (strcmp(verb, "plugin") == 0) {
            desc.name = word(&a, &cursor);
            char *major = word(&a, &cursor), *minor = word(&a, &cursor);
            desc.abi_version = (((uint32_t)(major ? atoi(major) : 1) & 0xFFFFu) << 16) |
                               (uint32_t)(minor ? atoi(minor) & 0xFFFF : 0);
        } else if (strcmp(verb, "step") == 0 && n_steps < MAX_STEPS) {
            cur = &steps[n_steps++];
            cur->step.name = word(&a, &cursor);
            cur->step.version = word(&a, &cursor);
            char *flag = word(&a, &cursor);
            cur->step.run = flag && strcmp(flag, "norun") == 0 ? NULL : fuzz_run;
            cur->step.inputs = cur->ins;
            cur->step.outputs = cur->outs;
            cur->step.params = cur->params;
        } else if (cur && (strcmp(verb, "in") == 0 || strcmp(verb, "out") == 0)) {
            int in = verb[0] == 'i';
            int *n = in ? &cur->n_in : &cur->n_out;
            if (*n >= MAX_ENTRIES_PER)
                continue;
            sl_port *port = in ? &cur->ins[(*n)++] : &cur->outs[(*n)++];
            port->name = word(&a, &cursor);
            port->type = word(&a, &cursor);
            char *opt = word(&a, &cursor);
            port->optional = opt && opt[0] == '1';
            if (!port->name) /* a NULL name ends the array */
                (*n)--;
        } else if (cur && strcmp(verb, "param") == 0 && cur->n_params < MAX_ENTRIES_PER) {
            sl_param *p = &cur->params[cur->n_params++];
            p->name = word(&a, &cursor);
            char *kind = word(&a, &cursor), *req = word(&a, &cursor);
            p->kind = kind ? (sl_param_kind)atoi(kind) : SL_PARAM_STRING;
            p->required = req && req[0] == '1';
            while (*cursor == ' ')
                cursor++;
            p->default_value = *cursor ? cursor : NULL;
            if (!p->name)
                cur->n_params--;
        } else if (strcmp(verb, "manifest") == 0) {
            bson_error_t err;
            bson_t *doc = bson_new_from_json((const uint8_t *)cursor, -1, &err);
            if (doc) {
                task t;
                char msg[256];
                task_from_bson(&a, doc, &t, msg, sizeof(msg));
                bson_destroy(doc);
            }
        }
    }
    if (steps && n_steps) {
        sl_step *array = arena_calloc(&a, (size_t)n_steps, sizeof(sl_step));
        for (int i = 0; array && i < n_steps; i++)
            array[i] = steps[i].step;
        desc.steps = array;
        desc.n_steps = (size_t)n_steps;
        plugin_registry r = PLUGIN_REGISTRY_INIT(host_registry());
        diag_list d = DIAG_LIST_INIT;
        const plugin_lib *lib;
        registry_add(&r, "fuzz.so", "fuzz.so", NULL, &desc, &d, &lib);
        /* A second plugin declaring the same steps must be refused. */
        registry_add(&r, "again.so", "again.so", NULL, &desc, &d, &lib);
        for (size_t i = 0; i < r.n_steps; i++)
            registry_find(&r, r.steps[i].step->name);
        registry_free(&r);
        diag_clear(&d);
    }
    arena_free(&a);
    return 0;
}
