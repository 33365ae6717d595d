/* complete.c - `sluice __complete -- WORD...`: the candidates for the last
 * word of a command line being typed, one a line, for the shell scripts
 * that `sluice completion` prints (cmd_completion.c).
 *
 * What a command takes is read from its own help text (its usage lines and
 * its option list, as 'sluice CMD --help' prints them; an external command's
 * from 'sluice-NAME --help'), so completion cannot drift from the commands.
 * The placeholders of those texts say what a word is: FILE a pipeline file,
 * RUN a run of the store, ID a step of the pipeline on the line (an artifact
 * under `artifacts` and `lineage`), NAME@VERSION a registered model, a|b|c
 * one of those words. Files are the shell's to complete: a first line
 * ":files", ":yaml" or ":dirs" asks for them.
 *
 * Nothing here may print on stderr or fail loudly: a shell calls it at every
 * Tab, on half-typed lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diag.h"
#include "inspect.h"
#include "meta.h"
#include "modelreg.h"
#include "pipeline.h"

#define MAX_OPTS 64
#define MAX_FORMS 12
#define MAX_POS 8
#define WORD_LEN 64

typedef struct opt_spec {
    char name[WORD_LEN]; /* "--jobs" or "-j" */
    char arg[WORD_LEN];  /* its value's placeholder ("N", "dot|json"); "" for a flag */
} opt_spec;

/* One usage line: `sluice CMD [SUB] POSITIONAL...`. */
typedef struct usage_form {
    char sub[WORD_LEN];
    char pos[MAX_POS][WORD_LEN];
    size_t n_pos;
    int repeats; /* the last positional may come again (FILE...) */
} usage_form;

typedef struct grammar {
    opt_spec opts[MAX_OPTS];
    size_t n_opts;
    usage_form forms[MAX_FORMS];
    size_t n_forms;
} grammar;

/* What the line being completed holds. */
typedef struct line {
    char **w; /* the words after "sluice", the last being completed */
    int n;
    const char *store;
    const char *command; /* NULL while the command itself is typed */
    int first;           /* index in w of the command's first argument */
} line;

static int has_upper(const char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return 1;
    return 0;
}

static int is_lower_word(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
            return 0;
    return 1;
}

static void copy_word(char *dst, const char *src, size_t len) {
    if (len >= WORD_LEN)
        len = WORD_LEN - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Adds an option; an argument naming its choices (a|b) wins over a bare
 * placeholder, as the usage line says more than the option list. */
static void add_opt(grammar *g, const char *name, size_t name_len, const char *arg,
                    size_t arg_len) {
    char n[WORD_LEN], a[WORD_LEN];
    copy_word(n, name, name_len);
    copy_word(a, arg, arg_len);
    for (size_t i = 0; i < g->n_opts; i++)
        if (strcmp(g->opts[i].name, n) == 0) {
            if (!g->opts[i].arg[0] || (strchr(a, '|') && !strchr(g->opts[i].arg, '|')))
                memcpy(g->opts[i].arg, a, sizeof(a));
            return;
        }
    if (g->n_opts < MAX_OPTS) {
        memcpy(g->opts[g->n_opts].name, n, sizeof(n));
        memcpy(g->opts[g->n_opts].arg, a, sizeof(a));
        g->n_opts++;
    }
}

/* The tokens of a usage line after `sluice CMD`, brackets kept whole:
 * "[--format dot|json]" is one token. Returns how many (at most max). */
static size_t usage_tokens(const char *s, const char *tok[], size_t len[], size_t max) {
    size_t n = 0;
    while (*s && n < max) {
        while (*s == ' ')
            s++;
        if (!*s || *s == '\n')
            break;
        const char *start = s;
        int depth = 0;
        while (*s && *s != '\n' && (depth > 0 || *s != ' ')) {
            depth += *s == '[';
            depth -= *s == ']' && depth > 0;
            s++;
        }
        tok[n] = start;
        len[n++] = (size_t)(s - start);
    }
    return n;
}

/* "[--jobs N]", "[-p NAME=VALUE]...", "[--jsonl | --format copy|jsonl]":
 * each option inside, with its argument. */
static void bracket_opts(grammar *g, const char *t, size_t len) {
    const char *end = t + len;
    while (t < end) {
        while (t < end && (*t == '[' || *t == ']' || *t == ' ' || *t == '.'))
            t++;
        if (t >= end)
            break;
        if (*t == '|') {
            t++;
            continue;
        }
        const char *name = t;
        while (t < end && *t != ' ' && *t != ']')
            t++;
        size_t name_len = (size_t)(t - name);
        const char *arg = t;
        size_t arg_len = 0;
        if (t < end && *t == ' ' && t + 1 < end && t[1] != '|' && t[1] != '-') {
            arg = t + 1;
            const char *a = arg;
            while (a < end && *a != ' ' && *a != ']')
                a++;
            arg_len = (size_t)(a - arg);
            t = a;
        }
        if (name[0] == '-')
            add_opt(g, name, name_len, arg, arg_len);
    }
}

static void parse_usage_line(grammar *g, const char *rest) {
    const char *tok[32];
    size_t len[32];
    size_t n = usage_tokens(rest, tok, len, 32);
    if (g->n_forms >= MAX_FORMS)
        return;
    usage_form *f = &g->forms[g->n_forms++];
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        char t[WORD_LEN];
        copy_word(t, tok[i], len[i]);
        if (t[0] == '[') {
            if (t[1] == '-')
                bracket_opts(g, tok[i], len[i]);
            else if (has_upper(t) && f->n_pos < MAX_POS) { /* [NAME]: optional */
                char *close = strchr(t, ']');
                copy_word(f->pos[f->n_pos++], t + 1,
                          close ? (size_t)(close - t - 1) : strlen(t + 1));
            }
        } else if (t[0] == '-') {
            /* "--type TYPE" outside brackets */
            const char *arg = "";
            size_t arg_len = 0;
            if (i + 1 < n && tok[i + 1][0] != '[' && tok[i + 1][0] != '-') {
                arg = tok[i + 1];
                arg_len = len[++i];
            }
            add_opt(g, tok[i - (arg_len ? 1 : 0)], len[i - (arg_len ? 1 : 0)], arg, arg_len);
        } else if (strcmp(t, "<") == 0) {
            i++; /* stdin */
        } else if (i == 0 && is_lower_word(t)) {
            memcpy(f->sub, t, sizeof(t));
        } else if (f->n_pos < MAX_POS) {
            size_t tl = strlen(t);
            if (tl > 3 && strcmp(t + tl - 3, "...") == 0) {
                t[tl - 3] = '\0';
                f->repeats = 1;
            }
            memcpy(f->pos[f->n_pos++], t, sizeof(t));
        }
    }
}

/* An option list line: "  -p, --param NAME=VALUE  ..." or "      --json  ...". */
static void parse_option_line(grammar *g, const char *s) {
    while (*s == ' ')
        s++;
    const char *shortname = NULL, *longname = NULL;
    size_t short_len = 0, long_len = 0;
    if (s[0] == '-' && s[1] != '-' && s[1] && s[1] != ' ') {
        shortname = s;
        short_len = strcspn(s, " ,\n");
        s += short_len;
        if (s[0] == ',' && s[1] == ' ')
            s += 2;
    }
    if (s[0] == '-' && s[1] == '-') {
        longname = s;
        long_len = strcspn(s, " \n");
        s += long_len;
    }
    if (!shortname && !longname)
        return;
    /* One space then a placeholder is the argument; two spaces start the text. */
    const char *arg = "";
    size_t arg_len = 0;
    if (s[0] == ' ' && s[1] != ' ' && s[1] != '\n' && s[1] != '-') {
        size_t l = strcspn(s + 1, " \n");
        char a[WORD_LEN];
        copy_word(a, s + 1, l);
        if (has_upper(a) || strchr(a, '|')) {
            arg = s + 1;
            arg_len = l;
        }
    }
    if (shortname)
        add_opt(g, shortname, short_len, arg, arg_len);
    if (longname)
        add_opt(g, longname, long_len, arg, arg_len);
}

/* A usage line's continuation ("                  [--tag KEY=VALUE]..."): options only. */
static void parse_continuation(grammar *g, const char *rest) {
    const char *tok[32];
    size_t len[32];
    size_t n = usage_tokens(rest, tok, len, 32);
    for (size_t i = 0; i < n; i++)
        if (tok[i][0] == '[' && len[i] > 1 && tok[i][1] == '-')
            bracket_opts(g, tok[i], len[i]);
}

static void parse_help(grammar *g, const char *help, const char *command) {
    memset(g, 0, sizeof(*g));
    char prefix[WORD_LEN + 8];
    snprintf(prefix, sizeof(prefix), "sluice %s", command);
    size_t plen = strlen(prefix);
    for (const char *s = help; *s;) {
        const char *nl = strchr(s, '\n');
        const char *t = s;
        if (strncmp(t, "usage:", 6) == 0)
            t += 6;
        while (*t == ' ')
            t++;
        if (strncmp(t, prefix, plen) == 0 && (t[plen] == ' ' || t[plen] == '\n' || !t[plen]))
            parse_usage_line(g, t + plen);
        else if (s[0] == ' ' && t[0] == '-')
            parse_option_line(g, s);
        else if (s[0] == ' ' && t[0] == '[')
            parse_continuation(g, t);
        if (!nl)
            break;
        s = nl + 1;
    }
}

/* ---- candidates ------------------------------------------------------------------------------ */

/* Candidates gathered, then printed sorted and once each, those that start
 * with the word being completed. */
typedef struct cands {
    char **v;
    size_t n, cap;
    const char *cur;
} cands;

static void add(cands *c, const char *s) {
    if (strncmp(s, c->cur, strlen(c->cur)) != 0)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        char **v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return;
        c->v = v;
        c->cap = cap;
    }
    char *copy = strdup(s);
    if (copy)
        c->v[c->n++] = copy;
}

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_and_free(cands *c) {
    if (c->n) /* qsort wants an array, even of none */
        qsort(c->v, c->n, sizeof(*c->v), by_text);
    for (size_t i = 0; i < c->n; i++)
        if (i == 0 || strcmp(c->v[i], c->v[i - 1]) != 0)
            puts(c->v[i]);
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
}

/* ---- what the store holds -------------------------------------------------------------------- */

static int add_key(void *ud, const char *key, size_t key_len, const bson_t *doc) {
    (void)doc;
    char k[WORD_LEN * 2];
    snprintf(k, sizeof(k), "%.*s", (int)key_len, key);
    add(ud, k);
    return 0;
}

/* STEP.OUTPUT of each artifact's producer; its hash's first 12 digits when
 * a hash is being typed. */
static int add_artifact(void *ud, const char *key, size_t key_len, const bson_t *doc) {
    cands *c = ud;
    bson_iter_t producer, output;
    if (bson_iter_init_find(&producer, doc, "step") && BSON_ITER_HOLDS_UTF8(&producer) &&
        bson_iter_init_find(&output, doc, "output") && BSON_ITER_HOLDS_UTF8(&output)) {
        char name[WORD_LEN * 2];
        snprintf(name, sizeof(name), "%s.%s", bson_iter_utf8(&producer, NULL),
                 bson_iter_utf8(&output, NULL));
        add(c, name);
    }
    if (c->cur[0] && strspn(c->cur, "0123456789abcdef") == strlen(c->cur))
        add_key(ud, key, key_len < 12 ? key_len : 12, doc);
    return 0;
}

/* NAME@VERSION and NAME@ALIAS of every registered model (and NAME alone). */
static int add_model(void *ud, const char *key, size_t key_len, const bson_t *doc) {
    (void)doc;
    char k[WORD_LEN * 2], spec[WORD_LEN * 4];
    snprintf(k, sizeof(k), "%.*s", (int)key_len, key);
    char *slash = strchr(k, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    const char *kind = slash + 1;
    if (strncmp(kind, "v/", 2) == 0) {
        snprintf(spec, sizeof(spec), "%s@%d", k, atoi(kind + 2));
        add(ud, spec);
        add(ud, k);
    } else if (strncmp(kind, "alias/", 6) == 0) {
        snprintf(spec, sizeof(spec), "%s@%s", k, kind + 6);
        add(ud, spec);
    }
    return 0;
}

typedef enum { STORE_RUNS, STORE_ARTIFACTS, STORE_MODELS } store_list;

static void from_store(const line *L, store_list what, cands *c) {
    meta_db m;
    MDB_txn *txn;
    if (inspect_begin_ex(L->store, 1, &m, &txn) != 0)
        return;
    if (what == STORE_RUNS) {
        meta_each(txn, m.runs, "", add_key, c);
        add(c, "latest"); /* inspect_resolve()'s word for the newest */
    } else if (what == STORE_ARTIFACTS) {
        meta_each(txn, m.artifacts, "", add_artifact, c);
    }
    if (what == STORE_MODELS || what == STORE_ARTIFACTS)
        modelreg_each(&m, txn, "", add_model, c);
    inspect_end(&m, txn);
}

/* ---- the pipeline on the line ---------------------------------------------------------------- */

static int is_pipeline_command(const char *command) {
    static const char *const names[] = {"run", "validate", "status", "graph"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(command, names[i]) == 0)
            return 1;
    return 0;
}

/* The pipeline file the line names: --pipeline's value, or a positional
 * word ending in .yaml or .yml. NULL when none. */
static const char *pipeline_on_line(const line *L) {
    for (int i = L->first; i < L->n - 1; i++) {
        const char *w = L->w[i];
        if (strcmp(w, "--pipeline") == 0 && i + 1 < L->n - 1)
            return L->w[i + 1];
        size_t len = strlen(w);
        if (w[0] != '-' && ((len > 5 && strcmp(w + len - 5, ".yaml") == 0) ||
                            (len > 4 && strcmp(w + len - 4, ".yml") == 0)))
            return w;
    }
    return NULL;
}

/* The step ids, or the parameters as "NAME=", of the pipeline on the line. */
static void from_pipeline(const line *L, int params, cands *c) {
    const char *path = pipeline_on_line(L);
    if (!path)
        return;
    diag_list d = DIAG_LIST_INIT;
    pipeline *p = NULL;
    pipeline_load_file(path, NULL, &d, &p);
    diag_clear(&d);
    if (!p)
        return;
    char word[WORD_LEN * 2];
    if (params)
        for (size_t i = 0; i < p->n_params; i++) {
            snprintf(word, sizeof(word), "%s=", p->params[i].name);
            add(c, word);
        }
    else
        for (size_t i = 0; i < p->n_steps; i++)
            add(c, p->steps[i].id);
    pipeline_free(p);
}

/* ---- a placeholder's candidates -------------------------------------------------------------- */

/* ph is what the help text calls the word (FILE, RUN, dot|json, ...); opt
 * the option it is the value of, NULL for a positional word. */
static void complete_placeholder(const line *L, const char *ph, const char *opt, cands *c) {
    const char *cmd = L->command;
    if (opt && strcmp(opt, "--store") == 0) {
        puts(":dirs");
    } else if (strchr(ph, '|') && !has_upper(ph)) { /* choices */
        char choices[WORD_LEN];
        snprintf(choices, sizeof(choices), "%s", ph);
        for (char *save, *t = strtok_r(choices, "|", &save); t; t = strtok_r(NULL, "|", &save))
            add(c, t);
    } else if (strncmp(ph, "RUN", 3) == 0) {
        from_store(L, STORE_RUNS, c);
    } else if (strcmp(ph, "NAME=VALUE") == 0) {
        from_pipeline(L, 1, c);
    } else if (strcmp(ph, "ID") == 0) {
        if (strcmp(cmd, "artifacts") == 0 || strcmp(cmd, "lineage") == 0)
            from_store(L, STORE_ARTIFACTS, c);
        else
            from_pipeline(L, 0, c);
    } else if (strchr(ph, '@') || (strcmp(cmd, "models") == 0 && strncmp(ph, "NAME", 4) == 0)) {
        from_store(L, STORE_MODELS, c);
    } else if (strcmp(ph, "FILE") == 0 &&
               (is_pipeline_command(cmd) || (opt && strcmp(opt, "--pipeline") == 0))) {
        puts(":yaml");
    } else if (strcmp(ph, "DIR") == 0 || strcmp(ph, "INDEX") == 0) {
        /* a folder, or what is in the store (a model, an index) */
        puts(":dirs");
        from_store(L, STORE_ARTIFACTS, c);
    } else if (strcmp(ph, "FILE") == 0 || strcmp(ph, "PATH") == 0 || strcmp(ph, "F") == 0 ||
               strcmp(ph, "MANIFEST") == 0) {
        puts(":files");
    }
}

static const opt_spec *find_opt(const grammar *g, const char *word) {
    for (size_t i = 0; i < g->n_opts; i++)
        if (strcmp(g->opts[i].name, word) == 0)
            return &g->opts[i];
    return NULL;
}

/* The arguments of a command: its options, subcommands, positional words,
 * from its help text. */
static void complete_arguments(const line *L, const char *help, cands *c) {
    static grammar g;
    parse_help(&g, help, L->command);
    /* the global options, which may follow the command */
    add_opt(&g, "--store", 7, "DIR", 3);
    add_opt(&g, "--no-color", 10, "", 0);
    int has_subs = 0;
    for (size_t i = 0; i < g.n_forms; i++)
        has_subs |= g.forms[i].sub[0] != 0;
    const char *sub = NULL;
    const opt_spec *pending = NULL;
    size_t n_pos = 0;
    int operands_only = 0;
    for (int i = L->first; i < L->n - 1; i++) {
        const char *w = L->w[i];
        if (pending) {
            pending = NULL;
        } else if (!operands_only && strcmp(w, "--") == 0) {
            operands_only = 1;
        } else if (!operands_only && w[0] == '-' && w[1]) {
            const opt_spec *o = find_opt(&g, w);
            if (o && o->arg[0])
                pending = o;
        } else if (has_subs && !sub) {
            sub = w;
        } else {
            n_pos++;
        }
    }
    const char *cur = L->w[L->n - 1];
    if (pending) {
        complete_placeholder(L, pending->arg, pending->name, c);
        return;
    }
    if (!operands_only && cur[0] == '-') {
        for (size_t i = 0; i < g.n_opts; i++)
            add(c, g.opts[i].name);
        add(c, "--help");
        return;
    }
    if (has_subs && !sub) {
        for (size_t i = 0; i < g.n_forms; i++)
            if (g.forms[i].sub[0])
                add(c, g.forms[i].sub);
        return;
    }
    for (size_t i = 0; i < g.n_forms; i++) {
        const usage_form *f = &g.forms[i];
        if (sub && strcmp(f->sub, sub) != 0)
            continue;
        if (n_pos < f->n_pos)
            complete_placeholder(L, f->pos[n_pos], NULL, c);
        else if (f->repeats && f->n_pos)
            complete_placeholder(L, f->pos[f->n_pos - 1], NULL, c);
        return; /* the first form of the subcommand says it */
    }
}

static void complete_command_name(cands *c) {
    for (size_t i = 0; i < cli_n_commands; i++)
        add(c, cli_commands[i].name);
    add(c, "help");
    char **names;
    size_t n;
    if (cli_external_names(&names, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            add(c, names[i]);
        cli_external_names_free(names, n);
    }
}

/* The help text of command (cli_commands' or 'sluice-NAME --help'), into buf. */
static const char *help_of(const char *command, char *text, size_t size) {
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i].name, command) == 0)
            return cli_commands[i].usage;
    return cli_external_output(command, "--help", text, size) == 0 ? text : NULL;
}

int cli_complete(const cli_globals *g, int argc, char **argv) {
    /* Never a word on the terminal the user types in. */
    if (!freopen("/dev/null", "w", stderr))
        return EXIT_BAD_INPUT;
    int i = 1;
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i < argc && strcmp(argv[i], "sluice") == 0)
        i++; /* the program's own name, as the shells give it */
    if (i >= argc)
        return EXIT_DONE;
    line L = {.w = argv + i, .n = argc - i, .store = g->store};
    cands c = {.cur = L.w[L.n - 1]};
    int k = 0;
    for (; k < L.n - 1; k++) { /* the global options before the command */
        const char *w = L.w[k];
        if (strcmp(w, "--store") == 0 && k + 1 < L.n - 1)
            L.store = L.w[++k];
        else if (strncmp(w, "--store=", 8) == 0)
            L.store = w + 8;
        else if (w[0] != '-')
            break;
    }
    for (int j = k; j < L.n - 1; j++) /* --store may follow the command too */
        if (strcmp(L.w[j], "--store") == 0 && j + 1 < L.n - 1)
            L.store = L.w[j + 1];
    if (k > 0 && strcmp(L.w[L.n - 2], "--store") == 0 && k == L.n - 1) {
        puts(":dirs");
    } else if (k == L.n - 1) { /* the command itself */
        if (c.cur[0] == '-') {
            static const char *const globals[] = {"--store", "--json", "--no-color", "--version",
                                                  "--help"};
            for (size_t j = 0; j < sizeof(globals) / sizeof(globals[0]); j++)
                add(&c, globals[j]);
        } else {
            complete_command_name(&c);
        }
    } else {
        L.command = L.w[k];
        L.first = k + 1;
        if (strcmp(L.command, "help") == 0) {
            if (L.first == L.n - 1)
                complete_command_name(&c);
        } else {
            static char text[65536];
            const char *help = help_of(L.command, text, sizeof(text));
            if (help)
                complete_arguments(&L, help, &c);
        }
    }
    print_and_free(&c);
    return EXIT_DONE;
}
