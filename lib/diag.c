#include "diag.h"
#include "mask.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void diag_add(diag_list *d, diag_level level, const char *file, unsigned line, unsigned col,
              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, level, file, line, col, fmt, ap);
    va_end(ap);
}

void diag_vadd(diag_list *d, diag_level level, const char *file, unsigned line, unsigned col,
               const char *fmt, va_list ap) {
    if (level == DIAG_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->n >= DIAG_MAX_KEPT) {
        d->dropped++;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        diag *items = realloc(d->items, cap * sizeof(*items));
        if (!items) {
            d->dropped++;
            return;
        }
        d->items = items;
        d->cap = cap;
    }
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *msg = n < 0 ? NULL : malloc((size_t)n + 1);
    if (msg)
        vsnprintf(msg, (size_t)n + 1, fmt, again);
    va_end(again);
    char *owned_file = file ? strdup(file) : NULL;
    if (!msg || (file && !owned_file)) {
        free(msg);
        free(owned_file);
        d->dropped++;
        return;
    }
    for (size_t i = d->n; i-- > 0;) {
        const diag *g = &d->items[i];
        if (g->line == line && g->col == col && g->level == level &&
            (g->file == owned_file ||
             (g->file && owned_file && strcmp(g->file, owned_file) == 0)) &&
            strcmp(g->msg, msg) == 0) {
            free(msg);
            free(owned_file);
            return;
        }
    }
    d->items[d->n] = (diag){owned_file, line, col, level, msg, d->n};
    d->n++;
}

static int same_file(const diag *a, const diag *b) {
    return a->file == b->file || (a->file && b->file && strcmp(a->file, b->file) == 0);
}

static int by_position(const void *pa, const void *pb) {
    const diag *a = pa, *b = pb;
    if (!same_file(a, b))
        return a->seq < b->seq ? -1 : 1; /* files keep the order they were met */
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void diag_print(diag_list *d, FILE *out) { diag_print_masked(d, out, NULL, 0); }

void diag_print_masked(diag_list *d, FILE *out, const char *const *secrets, size_t n_secrets) {
    /* Group by file without reordering files: give each diagnostic the seq of
     * its file's first diagnostic as the primary key. */
    if (d->n > 1) {
        size_t *first = malloc(d->n * sizeof(*first));
        if (first) {
            for (size_t i = 0; i < d->n; i++) {
                first[i] = i;
                for (size_t j = 0; j < i; j++)
                    if (same_file(&d->items[j], &d->items[i])) {
                        first[i] = first[j];
                        break;
                    }
            }
            /* Stable sort on (first-seen file, line, col, seq). */
            for (size_t i = 0; i < d->n; i++)
                d->items[i].seq = first[i] * DIAG_MAX_KEPT + i;
            free(first);
            qsort(d->items, d->n, sizeof(*d->items), by_position);
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        const diag *g = &d->items[i];
        const char *lvl = g->level == DIAG_ERROR ? "error" : "warning";
        buf bf = BUF_INIT, bm = BUF_INIT;
        const char *file = mask_secrets(secrets, n_secrets, g->file ? g->file : "sluice", &bf);
        const char *msg = mask_secrets(secrets, n_secrets, g->msg, &bm);
        if (g->line)
            fprintf(out, "%s:%u:%u: %s: %s\n", file, g->line, g->col, lvl, msg);
        else
            fprintf(out, "%s: %s: %s\n", file, lvl, msg);
        buf_free(&bf);
        buf_free(&bm);
    }
    if (d->dropped)
        fprintf(out, "sluice: %zu more diagnostic%s not shown\n", d->dropped,
                d->dropped == 1 ? "" : "s");
}

void diag_clear(diag_list *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].msg);
        free(d->items[i].file);
    }
    free(d->items);
    *d = (diag_list)DIAG_LIST_INIT;
}
