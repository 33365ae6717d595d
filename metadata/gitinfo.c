#include "gitinfo.h"

#include <git2.h>
#include <stdio.h>
#include <string.h>

int git_describe(const char *dir, git_state *out) {
    memset(out, 0, sizeof(*out));
    /* A failed init (out of memory) leaves libgit2 unusable: its error
     * reporting itself would crash. */
    if (git_libgit2_init() < 0)
        return -1;
    git_repository *repo = NULL;
    int rc = git_repository_open_ext(&repo, dir, 0, NULL);
    if (rc == GIT_ENOTFOUND) {
        git_libgit2_shutdown();
        return 0;
    }
    if (rc < 0) {
        git_libgit2_shutdown();
        return -1;
    }
    git_oid head;
    if (git_reference_name_to_id(&head, repo, "HEAD") == 0)
        git_oid_tostr(out->commit, sizeof(out->commit), &head);
    git_reference *ref = NULL;
    if (git_repository_head(&ref, repo) == 0 && git_reference_is_branch(ref))
        snprintf(out->branch, sizeof(out->branch), "%s", git_reference_shorthand(ref));
    git_reference_free(ref);
    /* Dirty: a tracked file changed, in the index or the work tree. Untracked
     * files (build output, a store) do not count. */
    git_status_options opts;
    git_status_options_init(&opts, GIT_STATUS_OPTIONS_VERSION);
    opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    opts.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    git_status_list *list = NULL;
    if (git_status_list_new(&list, repo, &opts) == 0) {
        out->dirty = git_status_list_entrycount(list) > 0;
        git_status_list_free(list);
    }
    git_repository_free(repo);
    git_libgit2_shutdown();
    return 1;
}
