/* recorded.c - the pipeline a run record names (recorded.h). */
#include "recorded.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"

static const char *utf8_field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

pipeline *recorded_pipeline(const bson_t *run) {
    const char *file = utf8_field(run, "file"), *name = utf8_field(run, "pipeline");
    if (!file)
        return NULL;
    /* Every -p value of the run, however many: a truncated list would load
     * another pipeline than the one that ran. */
    const char **overrides = NULL;
    size_t n = 0;
    bson_iter_t it, o;
    if (bson_iter_init_find(&it, run, "overrides") && bson_iter_recurse(&it, &o)) {
        size_t cap = 0;
        while (bson_iter_next(&o))
            cap++;
        if (cap && !(overrides = calloc(cap, sizeof(*overrides))))
            return NULL;
        bson_iter_recurse(&it, &o);
        while (bson_iter_next(&o) && n < cap)
            if (BSON_ITER_HOLDS_UTF8(&o))
                overrides[n++] = bson_iter_utf8(&o, NULL);
    }
    pipeline_options opt = {.overrides = overrides, .n_overrides = n};
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = NULL;
    pipeline_load_file(file, &opt, &d, &p);
    diag_clear(&d);
    free(overrides);
    if (p && (!p->name || !name || strcmp(p->name, name) != 0)) {
        pipeline_free(p);
        p = NULL;
    }
    return p;
}
