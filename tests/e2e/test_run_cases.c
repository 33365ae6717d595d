/* test_run_cases.c - the data-driven run cases of tests/data/run (curl's
 * tests/data/testNNNN): each folder NNNN-name holds a pipeline.yaml, the
 * files it needs, and the event streams its runs must print. Every case
 * runs with the real binary in a copy of its folder, with a store of its
 * own; the streams are normalized (below) and compared with the expected
 * ones, a unified diff shown on a difference. SLUICE_UPDATE_CASES=1 writes
 * what the binary printed as the new expected files instead (then read the
 * diff before committing it). The format is in tests/README.md. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include <criterion/parameterized.h>

#include "runner.h"

#define CASES_DIR SLUICE_SOURCE_DIR "/tests/data/run"
#define MAX_WORDS 32
#define MAX_RUN_IDS 16

typedef struct case_name {
    char name[96];
} case_name;

static int by_name(const void *a, const void *b) {
    return strcmp(((const case_name *)a)->name, ((const case_name *)b)->name);
}

/* Every case folder (NNNN-...), in name order, for ParameterizedTest. */
static size_t list_cases(case_name **out) {
    DIR *dir = opendir(CASES_DIR);
    size_t n = 0, cap = 64;
    case_name *names = cr_malloc(cap * sizeof(*names));
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (!isdigit((unsigned char)e->d_name[0]) || n == cap ||
            strlen(e->d_name) >= sizeof(names->name))
            continue;
        snprintf(names[n++].name, sizeof(names->name), "%s", e->d_name);
    }
    if (dir)
        closedir(dir);
    qsort(names, n, sizeof(*names), by_name);
    *out = names;
    return n;
}

static void free_cases(struct criterion_test_params *params) { cr_free(params->params); }

ParameterizedTestParameters(run_cases, every_case) {
    case_name *names;
    size_t n = list_cases(&names);
    return cr_make_param_array(case_name, names, n, free_cases);
}

/* ---- normalizing an event stream ---- */

typedef struct normalizer {
    const char *dir;           /* the case's temporary folder: <DIR> */
    char ids[MAX_RUN_IDS][32]; /* run ids in order of appearance: <RUN1>, ... */
    size_t n_ids;
} normalizer;

/* The length of a run id (YYYYMMDD-HHMMSS-mmmXXX) at s, or 0. */
static size_t run_id_at(const char *s) {
    static const char shape[] = "dddddddd-dddddd-dddxxx";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        if (shape[i] == 'd' ? !isdigit(c) : shape[i] == 'x' ? !isxdigit(c) || isupper(c) : c != '-')
            return 0;
    }
    return isxdigit((unsigned char)s[sizeof(shape) - 1]) ? 0 : sizeof(shape) - 1;
}

/* Replaces the value after key ("time" : "X" or "seconds" : 1.5) with
 * placeholder; returns the position after what it wrote, or NULL. */
static int mask_value(FILE *m, const char **p, const char *key, const char *placeholder) {
    size_t n = strlen(key);
    if (strncmp(*p, key, n) != 0)
        return 0;
    const char *v = *p + n;
    fputs(key, m);
    if (*v == '"') {
        const char *end = strchr(v + 1, '"');
        v = end ? end + 1 : v + strlen(v);
        fprintf(m, "\"%s\"", placeholder);
    } else {
        v += strspn(v, "0123456789.eE+-");
        fputs(placeholder, m);
    }
    *p = v;
    return 1;
}

/* One line of output, normalized, onto m: times and durations, run ids
 * (numbered in order of appearance, so that a cached_from or a resume
 * still says which run), and the case's folder become placeholders. Lines
 * of step_progress events are dropped: how many a step sends depends on
 * the clock (at most four a second). */
static void normalize_line(normalizer *nz, const char *line, size_t len, FILE *m) {
    char *copy = strndup(line, len);
    cr_assert_not_null(copy);
    if (strstr(copy, "\"event\" : \"step_progress\"")) {
        free(copy);
        return;
    }
    size_t dir_len = strlen(nz->dir);
    for (const char *p = copy; *p;) {
        size_t id_len;
        if (strncmp(p, nz->dir, dir_len) == 0) {
            fputs("<DIR>", m);
            p += dir_len;
        } else if (mask_value(m, &p, "\"time\" : ", "<TIME>") ||
                   mask_value(m, &p, "\"seconds\" : ", "<SECONDS>")) {
        } else if ((p == copy || !isalnum((unsigned char)p[-1])) && (id_len = run_id_at(p))) {
            size_t k = 0;
            while (k < nz->n_ids && strncmp(nz->ids[k], p, id_len) != 0)
                k++;
            if (k == nz->n_ids && k < MAX_RUN_IDS)
                snprintf(nz->ids[nz->n_ids++], sizeof(nz->ids[0]), "%.*s", (int)id_len, p);
            fprintf(m, "<RUN%zu>", k + 1);
            p += id_len;
        } else {
            fputc(*p++, m);
        }
    }
    fputc('\n', m);
    free(copy);
}

static char *normalize(normalizer *nz, const char *out, int status) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cr_assert_not_null(m);
    for (const char *p = out ? out : ""; *p;) {
        size_t n = strcspn(p, "\n");
        normalize_line(nz, p, n, m);
        p += n + (p[n] == '\n');
    }
    fprintf(m, "exit %d\n", status);
    fclose(m);
    return text;
}

/* ---- running a case ---- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* A unified diff of expected against actual (malloc'ed). */
static char *diff_of(const char *expected_path, const char *actual, const char *tmp) {
    char actual_path[600], diff_path[600], cmd[1600];
    snprintf(actual_path, sizeof(actual_path), "%s/actual", tmp);
    snprintf(diff_path, sizeof(diff_path), "%s/diff", tmp);
    write_file(actual_path, actual);
    snprintf(cmd, sizeof(cmd), "diff -u --label expected --label actual '%s' '%s' > '%s' 2>&1",
             expected_path, actual_path, diff_path);
    cr_expect_eq(system(cmd) == -1, 0);
    char *text = slurp(diff_path);
    cr_assert_not_null(text);
    return text;
}

/* Compares actual with the case's expected file of that kind (events or
 * stderr; numbered when the case has several commands), or with update
 * writes it. An optional file (stderr) is compared only where it exists.
 * Returns 1 on a difference, reported with a diff. */
static int compare(const char *name, size_t run_no, size_t n_runs, const char *kind,
                   const char *actual, const char *err, int update, const char *tmp, int optional) {
    char path[700];
    if (n_runs == 1)
        snprintf(path, sizeof(path), "%s/%s/%s.expected", CASES_DIR, name, kind);
    else
        snprintf(path, sizeof(path), "%s/%s/%s.%zu.expected", CASES_DIR, name, kind, run_no);
    char *expected = slurp(path);
    int differs = 0;
    if (optional && !expected)
        return 0;
    if (update) {
        write_file(path, actual);
    } else if (!expected || strcmp(expected, actual) != 0) {
        char *diff = expected ? diff_of(path, actual, tmp) : strdup(actual);
        cr_log_error("%s, command %zu: the %s differ (SLUICE_UPDATE_CASES=1 rewrites %s)\n%s%s"
                     "\nstderr:\n%s",
                     name, run_no, kind, path,
                     expected ? "" : "no expected file; the binary printed:\n", diff,
                     err ? err : "");
        free(diff);
        differs = 1;
    }
    free(expected);
    return differs;
}

/* Splits line into words (in place) after the fixed ones; "<RUNk>" stands
 * for the k-th run id seen. Returns the number of words. */
static size_t split_words(char *line, const normalizer *nz, char **words, size_t n) {
    for (char *w = strtok(line, " \t"); w; w = strtok(NULL, " \t")) {
        cr_assert_lt(n, MAX_WORDS - 1, "too many words: %s", line);
        unsigned k;
        if (sscanf(w, "<RUN%u>", &k) == 1) {
            cr_assert(k >= 1 && k <= nz->n_ids, "%s: no such run yet", w);
            w = (char *)nz->ids[k - 1];
        }
        words[n++] = w;
    }
    words[n] = NULL;
    return n;
}

/* The commands of a case: its 'runs' file, else one 'run' with 'args'. */
static char *case_commands(const char *src) {
    char path[600];
    snprintf(path, sizeof(path), "%s/runs", src);
    char *runs = slurp(path);
    if (runs)
        return runs;
    snprintf(path, sizeof(path), "%s/args", src);
    char *args = slurp(path);
    size_t size = strlen(args ? args : "") + 8;
    char *line = malloc(size);
    cr_assert_not_null(line);
    snprintf(line, size, "run %s\n", args ? args : "");
    for (char *nl = strchr(line, '\n'); nl && nl[1]; nl = strchr(line, '\n'))
        *nl = ' '; /* args may span lines */
    free(args);
    return line;
}

static size_t count_sluice_commands(const char *commands) {
    size_t n = 0;
    for (const char *p = commands; *p;) {
        p += strspn(p, " \t");
        if (strncmp(p, "run", 3) == 0 || strncmp(p, "sluice", 6) == 0)
            n++;
        p += strcspn(p, "\n");
        p += *p == '\n';
    }
    return n;
}

ParameterizedTest(case_name *c, run_cases, every_case) {
    cr_log_info("case %s", c->name);
    char tmp[] = "/tmp/sluice-case-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char src[512], work[600], store[640], plugin_path[700], plugin_cache[700], cmd[1600];
    snprintf(src, sizeof(src), "%s/%s", CASES_DIR, c->name);
    snprintf(work, sizeof(work), "%s/case", tmp);
    snprintf(cmd, sizeof(cmd), "cp -R '%s' '%s'", src, work);
    cr_assert_eq(system(cmd), 0);
    snprintf(store, sizeof(store), "--store=%s/store", tmp);
    /* The test plugins, and a plugin cache of the case's own. */
    snprintf(plugin_path, sizeof(plugin_path), "SLUICE_PLUGIN_PATH=%s/good", SLUICE_TEST_PLUGINS);
    snprintf(plugin_cache, sizeof(plugin_cache), "SLUICE_PLUGIN_CACHE=%s/plugins.json", tmp);
    /* Under AddressSanitizer a step that crashes on purpose crashes, with
     * no report in its log (the sanitizer's other options kept). */
    char asan[600];
    const char *asan_was = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%shandle_segv=0", asan_was ? asan_was : "",
             asan_was && *asan_was ? ":" : "");
    run_env[0] = plugin_path;
    run_env[1] = plugin_cache;
    run_env[2] = asan;
    run_env[3] = NULL;

    normalizer nz = {.dir = tmp};
    char *commands = case_commands(src);
    size_t n_runs = count_sluice_commands(commands), run_no = 0;
    int update = getenv("SLUICE_UPDATE_CASES") && strcmp(getenv("SLUICE_UPDATE_CASES"), "1") == 0;
    cr_assert_gt(n_runs, 0, "%s: no run", c->name);
    int failures = 0;
    for (char *line = commands, *next; *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        line += strspn(line, " \t");
        if (!*line || *line == '#')
            continue;
        if (*line == '!') {
            snprintf(cmd, sizeof(cmd), "cd '%s' && %s", work, line + 1);
            cr_assert_eq(system(cmd), 0, "%s: '%s' failed", c->name, line + 1);
            continue;
        }
        char *words[MAX_WORDS];
        size_t n = 0;
        words[n++] = "sluice";
        words[n++] = store;
        if (strncmp(line, "run", 3) == 0 && (!line[3] || isspace((unsigned char)line[3]))) {
            static char *fixed[] = {"run", "--json", "--jobs", "1", "pipeline.yaml"};
            for (size_t i = 0; i < 5; i++)
                words[n++] = fixed[i];
            line += 3;
        } else {
            cr_assert(strncmp(line, "sluice ", 7) == 0,
                      "%s: a line is 'run ARGS', 'sluice ARGS' "
                      "or '! COMMAND', not '%s'",
                      c->name, line);
            line += 7;
        }
        char *line_copy = strdup(line);
        cr_assert_not_null(line_copy);
        split_words(line_copy, &nz, words, n);
        result r = run_in(work, NULL, words);
        free(line_copy);
        char *actual = normalize(&nz, r.out, r.status);

        run_no++;
        char *actual_err = normalize(&nz, r.err, r.status);
        failures += compare(c->name, run_no, n_runs, "events", actual, r.err, update, tmp, 0);
        failures += compare(c->name, run_no, n_runs, "stderr", actual_err, "", update, tmp, 1);
        free(actual_err);
        free(actual);
        result_free(&r);
    }
    free(commands);
    snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", tmp, tmp);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(failures, 0, "%s: %d command(s) printed other output than expected", c->name,
                 failures);
}
