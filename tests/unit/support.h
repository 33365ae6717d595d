/* support.h - helpers shared by the unit suites. */
#ifndef SLUICE_TESTS_SUPPORT_H
#define SLUICE_TESTS_SUPPORT_H

#include <string.h>

#include "diag.h"
#include "pipeline.h"

/* Loads text as "t.yaml"; diagnostics go to *d, the result to *p. */
static inline int load_text(const char *text, const pipeline_options *opt, diag_list *d,
                            pipeline **p) {
    return pipeline_load_buffer(text, strlen(text), "t.yaml", "/pipes", opt, d, p);
}

/* The diagnostic at line:col whose message holds needle, or NULL. */
static inline const diag *find_diag(const diag_list *d, unsigned line, unsigned col,
                                    const char *needle) {
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].line == line && d->items[i].col == col && strstr(d->items[i].msg, needle))
            return &d->items[i];
    return NULL;
}

/* All messages, one per line, for assertion failures. */
static inline const char *all_diags(const diag_list *d) {
    static char out[8192];
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n && used < sizeof(out) - 1; i++) {
        int w = snprintf(out + used, sizeof(out) - used, "%u:%u: %s\n", d->items[i].line,
                         d->items[i].col, d->items[i].msg);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return out;
}

#define expect_diag(d, line, col, needle)                                                          \
    cr_expect(find_diag((d), (line), (col), (needle)) != NULL,                                     \
              "expected an error at %u:%u containing \"%s\"; got:\n%s", (unsigned)(line),          \
              (unsigned)(col), (needle), all_diags(d))

#endif
