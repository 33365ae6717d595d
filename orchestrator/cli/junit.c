/* junit.c - a run's steps as JUnit XML test cases, for 'run --junit' and
 * 'resume --junit' (docs/ci.md): CI systems (GitLab, Jenkins, GitHub
 * Actions' test reporters) show each step as a test. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "runreport.h"

/* How much of a failed step's log its failure carries: the last lines, at
 * most this many of them and bytes. */
#define TAIL_LINES 20
#define TAIL_BYTES 8192

/* The next code point of s (len bytes left) when it is well-formed UTF-8,
 * with *n its byte count; -1 when it is not (a stray or cut byte, an
 * overlong form, a surrogate). */
static long utf8_next(const unsigned char *s, size_t len, size_t *n) {
    unsigned char c = s[0];
    long cp;
    size_t need;
    if (c < 0x80) {
        *n = 1;
        return c;
    } else if (c >= 0xc2 && c <= 0xdf) {
        cp = c & 0x1f, need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        cp = c & 0x0f, need = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
        cp = c & 0x07, need = 3;
    } else {
        return -1;
    }
    if (len < need + 1)
        return -1;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *n = need + 1;
    return cp;
}

/* Appends s as XML character data or an attribute value: the five markup
 * characters as entities, and what XML 1.0 cannot hold at all (control
 * characters, an ANSI escape, malformed UTF-8, U+FFFE/U+FFFF) as U+FFFD,
 * so that whatever a step printed, the file parses. In an attribute, line
 * breaks and tabs are kept as character references (a parser would
 * otherwise fold them into spaces). */
static void xml_text(buf *b, const char *s, int attribute) {
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    while (len > 0) {
        size_t n = 1;
        long cp = utf8_next(p, len, &n);
        if (cp == '&')
            buf_puts(b, "&amp;");
        else if (cp == '<')
            buf_puts(b, "&lt;");
        else if (cp == '>')
            buf_puts(b, "&gt;");
        else if (cp == '"')
            buf_puts(b, "&quot;");
        else if (cp == '\'')
            buf_puts(b, "&apos;");
        else if (attribute && (cp == '\n' || cp == '\r' || cp == '\t'))
            buf_printf(b, "&#%ld;", cp);
        else if (cp < 0 || (cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || cp == 0xfffe ||
                 cp == 0xffff)
            buf_puts(b, "\xef\xbf\xbd");
        else
            buf_append(b, p, n);
        p += n;
        len -= n;
    }
}

/* The last lines of the log at path ("" when there is none). */
static void log_tail(const char *path, buf *out) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return;
    char chunk[TAIL_BYTES + 1];
    size_t n = 0;
    if (fseeko(f, 0, SEEK_END) == 0) {
        off_t size = ftello(f);
        off_t from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
        if (fseeko(f, from, SEEK_SET) == 0)
            n = fread(chunk, 1, TAIL_BYTES, f);
    }
    fclose(f);
    chunk[n] = '\0';
    /* A NUL a step printed ends the text early rather than breaking it. */
    size_t len = strlen(chunk);
    while (len > 0 && chunk[len - 1] == '\n')
        len--;
    size_t start = len, lines = 0;
    while (start > 0 && lines < TAIL_LINES) {
        start--;
        if (chunk[start] == '\n' && ++lines == TAIL_LINES) {
            start++;
            break;
        }
    }
    buf_append(out, chunk + start, len - start);
}

static double num_at(const bson_t *doc, const char *path) {
    double v = 0;
    return runreport_num(doc, path, &v) ? v : 0;
}

static void attr(buf *b, const char *name, const char *val) {
    buf_printf(b, " %s=\"", name);
    xml_text(b, val, 1);
    buf_putc(b, '"');
}

static void property(buf *b, const char *indent, const char *name, const char *val) {
    buf_printf(b, "%s<property", indent);
    attr(b, "name", name);
    attr(b, "value", val);
    buf_puts(b, "/>\n");
}

/* One step as a test case: done passes; cached passes with the property
 * cached=true (its result is valid, only not made now); failed is a
 * failure (its error, then its log's last lines); skipped is skipped;
 * cancelled (the run was interrupted) is an error. */
static void testcase(buf *b, const char *suite, const bson_t *sd) {
    const char *status = runreport_str(sd, "status", "?");
    const char *error = runreport_str(sd, "error", NULL);
    buf_puts(b, "    <testcase");
    attr(b, "classname", suite);
    attr(b, "name", runreport_str(sd, "step", "?"));
    buf_printf(b, " time=\"%.3f\">\n", num_at(sd, "seconds"));
    buf_puts(b, "      <properties>\n");
    property(b, "        ", "status", status);
    int cached = strcmp(status, "cached") == 0;
    property(b, "        ", "cached", cached ? "true" : "false");
    if (cached)
        property(b, "        ", "cached_from", runreport_str(sd, "cached_from", ""));
    property(b, "        ", "why", runreport_str(sd, "why", ""));
    buf_puts(b, "      </properties>\n");
    if (strcmp(status, "failed") == 0) {
        buf_puts(b, "      <failure");
        attr(b, "message", error ? error : "failed");
        attr(b, "type", "failed");
        buf_puts(b, ">");
        buf tail = BUF_INIT;
        log_tail(runreport_str(sd, "log", NULL), &tail);
        xml_text(b, error ? error : "failed", 0);
        if (tail.len) {
            buf_puts(b, "\n\nlast lines of the log:\n");
            xml_text(b, buf_str(&tail), 0);
        }
        buf_free(&tail);
        buf_puts(b, "</failure>\n");
    } else if (strcmp(status, "skipped") == 0) {
        buf_puts(b, "      <skipped");
        attr(b, "message", error ? error : "skipped");
        buf_puts(b, "/>\n");
    } else if (strcmp(status, "done") != 0 && !cached) {
        buf_puts(b, "      <error");
        attr(b, "message", error ? error : status);
        attr(b, "type", status);
        buf_puts(b, "/>\n");
    }
    buf_puts(b, "    </testcase>\n");
}

static void iso_time(double t, char *out, size_t size) {
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* The XML of report doc. */
static void junit_xml(buf *b, const bson_t *doc) {
    const char *suite = runreport_str(doc, "pipeline", "?");
    double failed = num_at(doc, "counts.failed");
    double errors = num_at(doc, "counts.cancelled") + num_at(doc, "counts.other");
    double skipped = num_at(doc, "counts.skipped");
    double tests = num_at(doc, "counts.steps");
    double took = num_at(doc, "seconds");
    char stamp[32];
    iso_time(num_at(doc, "started"), stamp, sizeof(stamp));
    buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    attr(b, "name", "sluice");
    buf_printf(
        b, " tests=\"%.0f\" failures=\"%.0f\" errors=\"%.0f\" skipped=\"%.0f\" time=\"%.3f\">\n",
        tests, failed, errors, skipped, took);
    buf_puts(b, "  <testsuite");
    attr(b, "name", suite);
    buf_printf(b,
               " tests=\"%.0f\" failures=\"%.0f\" errors=\"%.0f\" skipped=\"%.0f\" time=\"%.3f\" "
               "timestamp=\"%s\">\n",
               tests, failed, errors, skipped, took, stamp);
    buf_puts(b, "    <properties>\n");
    property(b, "      ", "run", runreport_str(doc, "run", ""));
    property(b, "      ", "status", runreport_str(doc, "status", ""));
    property(b, "      ", "file", runreport_str(doc, "file", ""));
    const char *commit = runreport_str(doc, "git.commit", NULL);
    if (commit)
        property(b, "      ", "git_commit", commit);
    buf_puts(b, "    </properties>\n");
    bson_iter_t it, s;
    if (runreport_field(doc, "steps", &it) && bson_iter_recurse(&it, &s))
        while (bson_iter_next(&s)) {
            bson_t sd;
            if (runreport_subdoc(&s, &sd))
                testcase(b, suite, &sd);
        }
    buf_puts(b, "  </testsuite>\n</testsuites>\n");
}

/* The XML for a run that never started: one error, so that CI does not
 * read a stale file or none as a pass. */
static void junit_not_started(buf *b, const char *suite, int exit_status) {
    char why[128];
    snprintf(why, sizeof(why), "the run did not start (exit status %d): see the job's log",
             exit_status);
    buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    attr(b, "name", "sluice");
    buf_puts(b, " tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">\n  <testsuite");
    attr(b, "name", suite);
    buf_puts(b, " tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0\">\n"
                "    <testcase");
    attr(b, "classname", suite);
    buf_puts(b, " name=\"(run)\" time=\"0\">\n      <error");
    attr(b, "message", why);
    buf_puts(b, " type=\"not started\"/>\n    </testcase>\n  </testsuite>\n</testsuites>\n");
}

/* Writes text to path through a temporary file beside it and a rename, so
 * that a reader sees the old file or the whole new one. */
static int write_atomically(const char *path, const char *text, size_t len) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : 0;
    for (size_t done = 0; rc == 0 && done < len;) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            done += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc && fd >= 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int runreport_junit(const char *store, const char *run_id, const char *suite, int exit_status,
                    const char *path) {
    buf b = BUF_INIT;
    bson_t doc;
    if (run_id && *run_id) {
        if (runreport_build(store, run_id, NULL, &doc) != 0)
            return exit_status ? exit_status : EXIT_STEP_FAILED;
        junit_xml(&b, &doc);
        bson_destroy(&doc);
    } else {
        junit_not_started(&b, suite ? suite : "?", exit_status);
    }
    int rc = buf_failed(&b) ? -ENOMEM : write_atomically(path, buf_str(&b), b.len);
    buf_free(&b);
    if (rc) {
        fprintf(stderr, "sluice: --junit %s: cannot write it: %s\n", path, strerror(-rc));
        return exit_status ? exit_status : EXIT_STEP_FAILED;
    }
    return exit_status;
}

int runreport_junit_check(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    char *slash = strrchr(copy, '/');
    const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
    struct stat st;
    int rc = !*path                                        ? -ENOENT
             : stat(dir, &st) != 0                         ? -errno
             : !S_ISDIR(st.st_mode)                        ? -ENOTDIR
             : access(dir, W_OK) != 0                      ? -errno
             : stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? -EISDIR
                                                           : 0;
    if (rc)
        fprintf(stderr, "sluice: --junit '%s': %s\n", path,
                rc == -EISDIR ? "is a folder" : strerror(-rc));
    free(copy);
    return rc;
}
