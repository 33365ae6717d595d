#include "git.h"

#include <errno.h>
#include <ftw.h>
#include <git2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_rc;

/* libgit2 counts its initialisations; the plugin never shuts it down since
 * another user in the process (sluice itself records commits) may hold it. */
static void init_once(void) { init_rc = git_libgit2_init(); }

int git_crawl_init(char *err, size_t err_size) {
    pthread_once(&once, init_once);
    if (init_rc < 0) {
        snprintf(err, err_size, "libgit2 did not initialise");
        return -EIO;
    }
    return 0;
}

static int fail_git(const char *what, const char *source, char *err, size_t err_size) {
    const git_error *e = git_error_last();
    snprintf(err, err_size, "%s %s: %s", what, source, e && e->message ? e->message : "failed");
    return -EIO;
}

static const char *const skipped_names[] = {
    "package-lock.json", "yarn.lock",    "pnpm-lock.yaml", "Cargo.lock", "poetry.lock",
    "Pipfile.lock",      "Gemfile.lock", "composer.lock",  "go.sum",     "uv.lock",
    ".DS_Store",
};
static const char *const skipped_exts[] = {
    ".lock", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico",     ".svg",         ".webp",  ".tiff",
    ".pdf",  ".zip", ".gz",  ".tgz",  ".bz2", ".xz",  ".7z",      ".tar",         ".jar",   ".so",
    ".o",    ".a",   ".dll", ".exe",  ".bin", ".pyc", ".class",   ".woff",        ".woff2", ".ttf",
    ".otf",  ".mp3", ".mp4", ".wav",  ".mov", ".avi", ".parquet", ".safetensors", ".pt",    ".onnx",
};

static int ignored(const char *name) {
    for (size_t i = 0; i < sizeof(skipped_names) / sizeof(*skipped_names); i++)
        if (strcmp(name, skipped_names[i]) == 0)
            return 1;
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(skipped_exts) / sizeof(*skipped_exts); i++)
        if (strcasecmp(dot, skipped_exts[i]) == 0)
            return 1;
    return 0;
}

typedef struct walk {
    git_repository *repo;
    size_t max_bytes;
    bson_t *files;
    git_stats *stats;
    int failed;
} walk;

static int visit(const char *root, const git_tree_entry *entry, void *payload) {
    walk *w = payload;
    git_object_t type = git_tree_entry_type(entry);
    const char *name = git_tree_entry_name(entry);
    if (type == GIT_OBJECT_TREE)
        return strcmp(name, ".git") == 0 ? 1 : 0; /* 1 skips the subtree */
    if (type != GIT_OBJECT_BLOB)                  /* submodules */
        return 0;
    if (ignored(name)) {
        w->stats->skipped_ignored++;
        return 0;
    }
    git_blob *blob;
    if (git_blob_lookup(&blob, w->repo, git_tree_entry_id(entry)) != 0) {
        w->failed = 1;
        return -1;
    }
    git_object_size_t size = git_blob_rawsize(blob);
    const char *data = git_blob_rawcontent(blob);
    if (size > w->max_bytes) {
        w->stats->skipped_large++;
    } else if (git_blob_is_binary(blob) || !bson_utf8_validate(data, (size_t)size, false)) {
        w->stats->skipped_binary++;
    } else {
        char path[4096];
        int n = snprintf(path, sizeof(path), "%s%s", root, name);
        /* BSON keys cannot hold '.' at the top in MongoDB, nor NUL: keep the path as
         * is (MongoDB 5+ accepts dotted keys) but refuse NUL-free overflow. */
        if (n > 0 && (size_t)n < sizeof(path) &&
            bson_append_utf8(w->files, path, n, data, (int)size))
            w->stats->kept++;
        else
            w->stats->skipped_ignored++;
    }
    git_blob_free(blob);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* A path is opened in place; a URL, file:// included, is cloned. */
static int is_local(const char *source) { return !strstr(source, "://"); }

int git_crawl(const char *source, const char *scratch_dir, size_t max_file_bytes, bson_t *files,
              git_stats *stats, char *err, size_t err_size) {
    memset(stats, 0, sizeof(*stats));
    git_repository *repo = NULL;
    char clone_dir[4096] = "";
    if (is_local(source)) {
        if (git_repository_open_ext(&repo, source, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
            return fail_git("opening the repository", source, err, err_size);
    } else {
        static unsigned serial;
        snprintf(clone_dir, sizeof(clone_dir), "%s/clone-%ld-%u", scratch_dir, (long)getpid(),
                 __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED));
        git_clone_options opts;
        git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
        opts.bare = 1; /* the tree is read from the object store: no checkout */
        if (git_clone(&repo, source, clone_dir, &opts) != 0)
            return fail_git("cloning", source, err, err_size);
    }
    int rc = 0;
    git_reference *head = NULL;
    git_object *tree = NULL;
    if (git_repository_head(&head, repo) != 0 ||
        git_reference_peel(&tree, head, GIT_OBJECT_TREE) != 0) {
        rc = fail_git("reading HEAD of", source, err, err_size);
    } else {
        walk w = {repo, max_file_bytes, files, stats, 0};
        if (git_tree_walk((git_tree *)tree, GIT_TREEWALK_PRE, visit, &w) != 0 || w.failed)
            rc = fail_git("reading the files of", source, err, err_size);
    }
    git_object_free(tree);
    git_reference_free(head);
    git_repository_free(repo);
    if (*clone_dir) /* ours, under the attempt's scratch folder */
        nftw(clone_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

void git_repo_name(const char *source, char *out, size_t size) {
    size_t len = strlen(source);
    while (len > 1 && source[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && source[start - 1] != '/' && source[start - 1] != ':')
        start--;
    size_t n = len - start;
    if (n > 4 && strncmp(source + len - 4, ".git", 4) == 0)
        n -= 4;
    snprintf(out, size, "%.*s", (int)n, source + start);
}
