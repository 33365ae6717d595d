/* lineage_target.c - where a run's OpenLineage events go (settings.openlineage
 * or run --openlineage): an http(s) URL or a file, checked before anything
 * runs so that a typo is an error with its line, not events lost later. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline.h"

/* 1 when text starts with a URL scheme ("word://"). */
static int has_scheme(const char *text) {
    size_t n = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    return n > 0 && strncmp(text + n, "://", 3) == 0;
}

static int check_url(const char *url, char *why, size_t size) {
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        snprintf(why, size, "'%s' is not an http:// or https:// URL (nor a file path)", url);
        return -EINVAL;
    }
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c == 0x7f) {
            snprintf(why, size, "the URL '%s' holds a space or a control character", url);
            return -EINVAL;
        }
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *host = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    int rc = 0;
    if (uc != CURLUE_OK || !host || !*host) {
        snprintf(why, size, "'%s' is not a valid URL: %s", url,
                 uc != CURLUE_OK ? curl_url_strerror(uc) : "it names no host");
        rc = -EINVAL;
    }
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* The file must be a regular file sluice may append to, or not exist yet in
 * a folder sluice may create it in. */
static int check_file(const char *path, char *why, size_t size) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            snprintf(why, size, "'%s' is %s, not a file events can be appended to", path,
                     S_ISDIR(st.st_mode) ? "a folder" : "a special file");
            return -EINVAL;
        }
        if (access(path, W_OK) != 0) {
            snprintf(why, size, "cannot write to '%s': %s", path, strerror(errno));
            return -EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(why, size, "cannot use '%s': %s", path, strerror(errno));
        return -EINVAL;
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    int found = stat(dir, &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
        snprintf(why, size, "cannot create '%s': its folder '%s' %s", path, dir,
                 found             ? "is not a folder"
                 : errno == ENOENT ? "does not exist"
                                   : strerror(errno));
        return -EINVAL;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(why, size, "cannot create '%s' in '%s': %s", path, dir, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

int pipeline_lineage_target(arena *a, const char *text, const char *dir, const char **out,
                            char *why, size_t size) {
    *out = NULL;
    if (!*text)
        return 0; /* off: "${env.OPENLINEAGE_URL:-}" left unset */
    if (has_scheme(text))
        return check_url(text, why, size) ? -EINVAL : (*out = text, 0);
    int here = !dir || strcmp(dir, ".") == 0 || text[0] == '/';
    const char *path = here ? text : arena_printf(a, "%s/%s", dir, text);
    if (!path)
        return -ENOMEM;
    if (check_file(path, why, size))
        return -EINVAL;
    *out = path;
    return 0;
}
