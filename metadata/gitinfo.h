/* gitinfo.h - the git commit a pipeline file was run from (libgit2), so that a
 * run can be traced to the code and configuration that made it. */
#ifndef SLUICE_METADATA_GITINFO_H
#define SLUICE_METADATA_GITINFO_H

typedef struct git_state {
    char commit[41];  /* HEAD's id in hex; "" when HEAD has no commit yet */
    char branch[128]; /* "" when detached */
    int dirty;        /* tracked files differ from HEAD */
} git_state;

/* Describes the repository containing folder dir. Returns 1 and *out when
 * there is one, 0 when dir is in no repository, or a negative code. */
int git_describe(const char *dir, git_state *out);

#endif
