/* fuzz_pipeline - libFuzzer target for the whole pipeline loader: YAML
 * events, the tree with its limits, the schema, substitution, references and
 * the cycle search. Any crash, leak, hang or sanitizer report is a bug;
 * diagnostics are the expected outcome for almost every input. */
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "diag.h"
#include "dag.h"
#include "check.h"
#include "pipeline.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_env(void *ud, const char *name) {
    (void)ud;
    return name[0] == 'A' ? "value-of-A" : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *overrides[] = {"n=3", "list=[a, b]"};
    pipeline_options opt = {
        .overrides = overrides, .n_overrides = 2, .lookup_env = no_env, .lookup_secret = no_env};
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = NULL;
    int rc = pipeline_load_buffer((const char *)data, size, "fuzz.yaml", NULL, &opt, &d, &p);
    if (rc == 0 && p) {
        /* A valid pipeline must also render: walk the graph code too. */
        dag g;
        if (pipeline_dag(p, &g) == 0) {
            for (int f = GRAPH_DOT; f <= GRAPH_JSON; f++) {
                buf out = BUF_INIT;
                pipeline_render(p, &g, (graph_format)f, &out);
                buf_free(&out);
            }
            dag_free(&g);
        }
    }
    pipeline_free(p);
    diag_clear(&d);
    return 0;
}
