/* git.h - a git repository read into one repository document: the files
 * of HEAD's tree as path -> text, leaving out binaries, lock files, images
 * and archives, and files over a size limit (the Handbook's GithubCrawler
 * keeps the same kind of document). */
#ifndef SLUICE_CRAWL_GIT_H
#define SLUICE_CRAWL_GIT_H

#include <bson/bson.h>
#include <stddef.h>

typedef struct git_stats {
    size_t kept, skipped_binary, skipped_ignored, skipped_large;
} git_stats;

/* Reads the repository at source: a local path is opened in place; a URL
 * (file:// included) is cloned, bare, into a fresh folder under scratch_dir,
 * removed afterwards. libgit2 1.5 cannot clone shallowly, so a clone
 * fetches the whole history. Appends each kept file to files as
 * path -> UTF-8 text, in tree order. Returns 0, or a negative code with a
 * message in err. Call git_crawl_init() once first. */
int git_crawl_init(char *err, size_t err_size);
int git_crawl(const char *source, const char *scratch_dir, size_t max_file_bytes, bson_t *files,
              git_stats *stats, char *err, size_t err_size);

/* The repository's name: the last path segment without ".git". */
void git_repo_name(const char *source, char *out, size_t size);

#endif
