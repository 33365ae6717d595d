/* traces_command.c - sluice-traces, the program `sluice traces` runs
 * (docs/serve.md, "Traces"): the prompt traces sluice-serve writes in the
 * store's traces/ folder (serve_traces.h), listed newest first or shown
 * whole. Read-only: it never changes a segment. A line cut short at a
 * segment's end (a server that crashed while writing it) is no record and
 * is skipped; a whole line that is not a record is skipped with a warning
 * naming its file and line. */
#define _DEFAULT_SOURCE /* timegm */
#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command.h"

static const command_info info = {
    "traces",
    "list and show the prompt traces sluice serve records (traces list|show)",
    "usage: sluice traces list [--since T] [--limit N] [--json]\n"
    "       sluice traces show ID [--json]\n"
    "\n"
    "The requests sluice serve answered on its generation routes, as recorded in the store's\n"
    "traces/ folder (see docs/serve.md, \"Traces\").\n"
    "\n"
    "  list   newest first: id, time (UTC), route, status, model, tokens (prompt+generated),\n"
    "         latency and the prompt's start; --since T: those at T or later, T a UTC time\n"
    "         (2026-12-06, 2026-12-06T23:10:00Z) or an age (30s, 15m, 2h, 7d); --limit N:\n"
    "         the newest N (default 20); --json: {\"traces\": [record, ...]}\n"
    "  show   one trace whole: the prompt, the answer, the context's chunk ids, the model's\n"
    "         version; ID is a trace's id or a unique start of one; --json: the record\n",
};

#define bad(...) command_bad(&info, __VA_ARGS__)

/* ---- times ---- */

/* "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z]" (UTC) as milliseconds since the epoch;
 * -1 when it is not one. */
static int64_t parse_time(const char *s) {
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
        return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == 'T' || *p == ' ') {
        int k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2)
            return -1;
        p += 1 + k;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &k) != 1)
                return -1;
            p += 1 + k;
            if (*p == '.') {
                int scale = 100;
                for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    ms += (*p - '0') * scale;
            }
        }
    }
    if (*p == 'Z')
        p++;
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-31 into March: refuse what it moved */
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return -1;
    return (int64_t)t * 1000 + ms;
}

/* --since: a time, else an age ("15m") back from now; -1 when neither. */
static int64_t parse_since(const char *s) {
    int64_t t = parse_time(s);
    if (t >= 0)
        return t;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || v > 1e9 || strlen(end) != 1)
        return -1;
    double unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
    if (!unit)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)(v * unit * 1000);
}

/* ---- the segments ---- */

typedef struct segment {
    char name[32];
    char *text; /* the file, NUL-ended */
    size_t len;
} segment;

typedef struct store_traces {
    char dir[4200];
    segment *segs; /* newest first */
    size_t n;
} store_traces;

static int name_cmp_desc(const void *a, const void *b) {
    return strcmp(((const segment *)b)->name, ((const segment *)a)->name);
}

static int is_segment(const char *name) {
    if (strlen(name) != 16 || strcmp(name + 10, ".jsonl") != 0)
        return 0;
    for (int i = 0; i < 10; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return 1;
}

static void traces_free(store_traces *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->segs[i].text);
    free(t->segs);
}

/* Reads every segment (a store without traces has none). A segment
 * removed by the server's retention while this runs is passed over. */
static int traces_load(store_traces *t) {
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "%s/traces", command_store());
    DIR *d = opendir(t->dir);
    if (!d)
        return errno == ENOENT ? 0 : bad("%s: %s", t->dir, strerror(errno));
    struct dirent *de;
    size_t cap = 0;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (!is_segment(de->d_name))
            continue;
        char path[4300];
        snprintf(path, sizeof(path), "%s/%.16s", t->dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            if (errno != ENOENT)
                rc = bad("%s: %s", path, strerror(errno));
            continue;
        }
        segment s = {0};
        memcpy(s.name, de->d_name, 17); /* is_segment: 16 characters */
        FILE *m = open_memstream(&s.text, &s.len);
        char buf[65536];
        size_t n;
        while (m && (n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, m);
        int failed = !m || ferror(f);
        fclose(f);
        if (m && fclose(m) != 0)
            failed = 1;
        if (t->n == cap) {
            cap = cap ? 2 * cap : 16;
            segment *p = failed ? NULL : realloc(t->segs, cap * sizeof(*p));
            if (p)
                t->segs = p;
            else
                failed = 1;
        }
        if (failed) {
            free(s.text);
            rc = bad("cannot read %s: %s", path, errno ? strerror(errno) : "out of memory");
            continue;
        }
        t->segs[t->n++] = s;
    }
    closedir(d);
    if (t->n)
        qsort(t->segs, t->n, sizeof(*t->segs), name_cmp_desc);
    return rc;
}

/* One record as read. */
typedef struct record {
    const char *line; /* the JSON, within the segment's text */
    size_t len;
    bson_t *doc;
} record;

static const char *str_of(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

/* A number field, or -1 (null, absent). */
static double num_of(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_double(&it);
    return -1;
}

/* Calls each(record) for every record, newest first, until it returns
 * nonzero (which is returned). The record's doc is freed after the call. */
static int each_record(const store_traces *t, int (*each)(const record *r, void *arg), void *arg) {
    for (size_t i = 0; i < t->n; i++) {
        const segment *s = &t->segs[i];
        /* the lines backwards; a last one with no newline was cut short */
        size_t end = s->len;
        if (end && s->text[end - 1] != '\n')
            while (end && s->text[end - 1] != '\n')
                end--;
        size_t lines = 0;
        for (size_t k = 0; k < end; k++)
            lines += s->text[k] == '\n';
        while (end) {
            size_t start = end - 1;
            while (start && s->text[start - 1] != '\n')
                start--;
            record r = {s->text + start, end - 1 - start, NULL};
            bson_error_t e;
            r.doc = bson_new_from_json((const uint8_t *)r.line, (ssize_t)r.len, &e);
            const char *id = r.doc ? str_of(r.doc, "id") : NULL;
            const char *time = r.doc ? str_of(r.doc, "time") : NULL;
            if (!id || !time || parse_time(time) < 0) {
                fprintf(stderr,
                        "sluice traces: warning: %s/%s line %zu is not a trace record (%s); "
                        "skipped\n",
                        t->dir, s->name, lines, r.doc ? "no id or time" : e.message);
            } else {
                int rc = each(&r, arg);
                if (rc) {
                    bson_destroy(r.doc);
                    return rc;
                }
            }
            if (r.doc)
                bson_destroy(r.doc);
            lines--;
            end = start;
        }
    }
    return 0;
}

/* ---- list ---- */

typedef struct list_state {
    int64_t since; /* -1: all */
    long limit, shown;
    int json;
} list_state;

/* The prompt's start on one line: control characters as spaces, cut at a
 * character's boundary. */
static void print_start(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n] && n < max; n++)
        ;
    if (s[n])
        while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++)
        putchar((unsigned char)s[i] < 0x20 ? ' ' : s[i]);
    if (s[n])
        fputs("...", stdout);
}

static int list_one(const record *r, void *arg) {
    list_state *st = arg;
    if (st->since >= 0 && parse_time(str_of(r->doc, "time")) < st->since)
        return 0;
    if (st->json) {
        printf("%s\n    %.*s", st->shown ? "," : "", (int)r->len, r->line);
    } else {
        const char *time = str_of(r->doc, "time"), *route = str_of(r->doc, "route");
        const char *model = str_of(r->doc, "model"), *prompt = str_of(r->doc, "prompt");
        double pt = num_of(r->doc, "prompt_tokens"), ct = num_of(r->doc, "completion_tokens");
        char tokens[48];
        if (pt < 0 && ct < 0)
            snprintf(tokens, sizeof(tokens), "-");
        else
            snprintf(tokens, sizeof(tokens), "%.0f+%.0f", pt < 0 ? 0 : pt, ct < 0 ? 0 : ct);
        printf("%-16s  %.10s %.8s  %-20s  %3.0f  %-12.12s  %9s  %8.0f ms  ", str_of(r->doc, "id"),
               time, time + 11, route ? route : "-", num_of(r->doc, "status"), model ? model : "-",
               tokens, num_of(r->doc, "latency_ms"));
        print_start(prompt ? prompt : "", 40);
        putchar('\n');
    }
    return ++st->shown >= st->limit;
}

static int cmd_list(list_state *st) {
    store_traces t;
    if (traces_load(&t)) {
        traces_free(&t);
        return COMMAND_BAD_INPUT;
    }
    if (st->json)
        fputs("{\"traces\": [", stdout);
    else if (t.n)
        printf("%-16s  %-19s  %-20s  %3s  %-12s  %9s  %11s  %s\n", "ID", "TIME (UTC)", "ROUTE",
               "ST", "MODEL", "TOKENS", "LATENCY", "PROMPT");
    each_record(&t, list_one, st);
    if (st->json)
        fputs(st->shown ? "\n]}\n" : "]}\n", stdout);
    else if (!st->shown)
        printf("no traces%s in %s\n", st->since >= 0 ? " since then" : "", t.dir);
    traces_free(&t);
    return COMMAND_DONE;
}

/* ---- show ---- */

typedef struct show_state {
    const char *id;
    size_t id_len;
    int matches;
    char *line; /* the first match, a copy */
    size_t len;
} show_state;

static int show_match(const record *r, void *arg) {
    show_state *st = arg;
    const char *id = str_of(r->doc, "id");
    if (strncmp(id, st->id, st->id_len) != 0)
        return 0;
    if (!st->matches++ && !(st->line = strndup(r->line, r->len)))
        return -ENOMEM;
    return strlen(id) == st->id_len ? 1 : 0; /* a whole id is one trace */
}

/* text as an indented block. */
static void print_block(const char *label, const char *text) {
    printf("%s:\n", label);
    if (!text || !*text) {
        puts("    (empty)");
        return;
    }
    fputs("    ", stdout);
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1])
            fputs("    ", stdout);
    }
    if (text[strlen(text) - 1] != '\n')
        putchar('\n');
}

static void print_show(const bson_t *doc) {
    static const char *const fields[] = {"id",    "time",          "route",       "status",
                                         "model", "model_version", "model_folder"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, fields[i]))
            continue;
        if (BSON_ITER_HOLDS_UTF8(&it))
            printf("%-18s%s\n", fields[i], bson_iter_utf8(&it, NULL));
        else if (BSON_ITER_HOLDS_NUMBER(&it))
            printf("%-18s%.0f\n", fields[i], bson_iter_as_double(&it));
    }
    double pt = num_of(doc, "prompt_tokens"), ct = num_of(doc, "completion_tokens");
    if (pt >= 0 || ct >= 0)
        printf("%-18s%.0f prompt + %.0f generated\n", "tokens", pt < 0 ? 0 : pt, ct < 0 ? 0 : ct);
    else
        printf("%-18snot known\n", "tokens");
    printf("%-18s%.1f ms\n", "latency", num_of(doc, "latency_ms"));
    const char *finish = str_of(doc, "finish_reason"), *error = str_of(doc, "error");
    printf("%-18s%s\n", "finish_reason", finish ? finish : "-");
    bson_iter_t it, sub;
    if (bson_iter_init_find(&it, doc, "stream") && BSON_ITER_HOLDS_BOOL(&it))
        printf("%-18s%s\n", "stream", bson_iter_bool(&it) ? "yes" : "no");
    printf("%-18s", "context");
    int n = 0;
    if (bson_iter_init_find(&it, doc, "context") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub))
            if (BSON_ITER_HOLDS_UTF8(&sub))
                printf("%s%s", n++ ? ", " : "", bson_iter_utf8(&sub, NULL));
    puts(n ? "" : "(none)");
    if (error)
        printf("%-18s%s\n", "error", error);
    print_block("prompt", str_of(doc, "prompt"));
    if (bson_iter_init_find(&it, doc, "prompt_truncated") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it))
        puts("    (cut at 64 KiB)");
    print_block("answer", str_of(doc, "answer"));
    if (bson_iter_init_find(&it, doc, "answer_truncated") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it))
        puts("    (cut at 64 KiB)");
}

static int cmd_show(const char *id, int json) {
    if (!*id || strspn(id, "0123456789abcdef") != strlen(id))
        return bad("'%s' is not a trace id (hexadecimal digits; see 'sluice traces list')", id);
    store_traces t;
    if (traces_load(&t)) {
        traces_free(&t);
        return COMMAND_BAD_INPUT;
    }
    show_state st = {id, strlen(id), 0, NULL, 0};
    int rc = each_record(&t, show_match, &st);
    traces_free(&t);
    if (rc < 0) {
        free(st.line);
        return bad("out of memory");
    }
    /* a whole id ends the search at its record: a second match is another
     * trace whose id starts with it only when the id given is short */
    if (!st.matches) {
        free(st.line);
        return bad("no trace '%s' in the store (see 'sluice traces list')", id);
    }
    if (st.matches > 1 && rc != 1) {
        free(st.line);
        return bad("'%s' starts %d traces' ids: give more of it", id, st.matches);
    }
    if (json) {
        printf("%s\n", st.line);
    } else {
        bson_error_t e;
        bson_t *doc = bson_new_from_json((const uint8_t *)st.line, -1, &e);
        if (doc)
            print_show(doc);
        bson_destroy(doc);
    }
    free(st.line);
    return COMMAND_DONE;
}

int main(int argc, char **argv) {
    int status = command_standard(&info, argc, argv);
    if (status >= 0)
        return status;
    static const struct option longs[] = {
        {"json", no_argument, NULL, 'j'},
        {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    list_state st = {-1, 20, 0, 0};
    const char *since = NULL;
    double v;
    int c;
    command_getopt_begin();
    while ((c = command_getopt(&info, argc, argv, ":", longs)) != -1) {
        switch (c) {
        case 'j':
            st.json = 1;
            break;
        case 's':
            since = optarg;
            if ((st.since = parse_since(optarg)) < 0)
                return bad("--since '%s': a UTC time (2026-12-06, 2026-12-06T23:10:00Z) or an age "
                           "(30s, 15m, 2h, 7d)",
                           optarg);
            break;
        case 'n':
            if (command_number(&info, "limit", optarg, 1, 1e9, &v))
                return COMMAND_BAD_INPUT;
            st.limit = (long)v;
            break;
        default:
            return COMMAND_BAD_INPUT;
        }
    }
    int nargs = argc - optind;
    const char *sub = nargs > 0 ? argv[optind] : "";
    if (strcmp(sub, "list") == 0) {
        if (nargs != 1)
            return bad("list takes no argument but options (see 'sluice traces --help')");
        return cmd_list(&st);
    }
    if (strcmp(sub, "show") == 0) {
        if (nargs != 2)
            return bad("show takes one trace id (see 'sluice traces --help')");
        if (since || st.limit != 20)
            return bad("--since and --limit are for list");
        return cmd_show(argv[optind + 1], st.json);
    }
    return bad("give list or show (see 'sluice traces --help')");
}
