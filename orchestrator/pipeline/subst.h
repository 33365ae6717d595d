/* subst.h - turning YAML nodes into values, with substitution.
 *
 * In a string, ${params.NAME}, ${env.NAME}, ${env.NAME:-default} and
 * ${secret.NAME} are replaced, and in a fan-out step's 'with' ${item} and
 * ${item.FIELD} (see subst_ctx.item); $${ writes a literal ${. Any other ${...}
 * (a shell's ${HOME}, say) is left as it is, but a ${word.rest} whose word is
 * not a known namespace is an error, since no shell variable has a dot.
 *
 * A ${params.x} that forms a whole scalar (quoted or not) keeps its type:
 * with "authors: ${params.authors}" the step gets the list itself. Embedded
 * in text, values are written as text. Environment variables and secrets are
 * always text; a typed field reads the text as its type (see load.c), so
 * "jobs: ${env.JOBS}" works and "version: ${env.V}" keeps "1.10" intact. */
#ifndef SLUICE_PIPELINE_SUBST_H
#define SLUICE_PIPELINE_SUBST_H

#include "pipeline.h"

typedef struct subst_ctx {
    pipeline *p; /* arena, file, and params for ${params.x} */
    diag_list *d;
    const pipeline_options *opt; /* look-ups; never NULL */
    int params_allowed;          /* 0 while the params themselves are read */
    size_t expanded;             /* bytes substitution has produced so far */
    int over;                    /* SUBST_MAX_TOTAL was passed (reported once) */
    /* What ${item} and ${item.FIELD} stand for: set only while the 'with'
     * of one instance of a fan-out step is read; elsewhere they are errors. */
    const value *item;
} subst_ctx;

/* Substitution is bounded, as a YAML alias bomb is: one value may expand to
 * at most SUBST_MAX_VALUE bytes, and all references of a pipeline together
 * (a whole-value reference counts the size of what it stands for, since
 * every use of it is written out later) to at most SUBST_MAX_TOTAL. The
 * reference that passes a limit is the error. */
#define SUBST_MAX_VALUE (1u << 20)
#define SUBST_MAX_TOTAL (64u << 20)

/* Converts n (and everything below it) into *out. Errors are reported in d
 * and leave a null value in their place, so that checking goes on; returns
 * 0, or -ENOMEM. */
int subst_node(subst_ctx *c, const ynode *n, value **out);

/* Whether text holds a sluice reference ${params.|env.|secret.|item}. */
int subst_has_reference(const char *text, size_t len);

#endif
