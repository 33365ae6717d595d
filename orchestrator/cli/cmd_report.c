/* cmd_report.c - sluice report RUN [--against NAME@ALIAS] [--format
 * markdown|json]: a run summarised for a pull request (docs/ci.md). The
 * Markdown is made from the JSON document alone, so both say the same. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "inspect.h"
#include "runreport.h"

/* Text for a Markdown table cell: one line, cut at max bytes (on a UTF-8
 * boundary), with what Markdown or HTML would read as markup escaped, so
 * that a step's error text cannot break the table or inject HTML. */
static void md_text(buf *b, const char *s, size_t max) {
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n' || ch == '\r' || ch == '\t')
            buf_putc(b, ' ');
        else if (ch < 0x20 || ch == 0x7f)
            continue; /* control characters (an ANSI colour) have no place in a comment */
        else if (ch == '<')
            buf_puts(b, "&lt;");
        else if (ch == '>')
            buf_puts(b, "&gt;");
        else if (ch == '&')
            buf_puts(b, "&amp;");
        else if (strchr("\\|`*_[]#~", ch))
            buf_printf(b, "\\%c", ch);
        else
            buf_putc(b, (char)ch);
    }
    if (*s) {
        while ((*s & 0xc0) == 0x80) /* finish the character cut */
            buf_putc(b, *s++);
        buf_puts(b, "...");
    }
}

/* A name in code style: backticks cannot be escaped inside one, so a name
 * holding one is written as text instead. */
static void md_code(buf *b, const char *s) {
    if (strchr(s, '`') || strchr(s, '\n') || strchr(s, '|')) {
        md_text(b, s, 200);
        return;
    }
    buf_printf(b, "`%s`", s);
}

static void md_seconds(buf *b, const bson_t *doc, const char *path) {
    double s;
    if (runreport_num(doc, path, &s))
        buf_printf(b, "%.2f s", s);
    else
        buf_puts(b, "-");
}

static void md_number(buf *b, const bson_t *doc, const char *path) {
    double v;
    if (runreport_num(doc, path, &v))
        buf_printf(b, "%g", v);
    else
        buf_puts(b, "-");
}

static void md_summary(buf *b, const bson_t *doc) {
    buf_puts(b, "## sluice report: ");
    md_code(b, runreport_str(doc, "pipeline", "?"));
    buf_puts(b, ", run ");
    md_code(b, runreport_str(doc, "run", "?"));
    buf_printf(b, ": %s\n\n", runreport_str(doc, "status", "?"));
    buf_puts(b, "| run | pipeline | status | steps | took | git |\n|---|---|---|---|---|---|\n| ");
    md_code(b, runreport_str(doc, "run", "?"));
    buf_puts(b, " | ");
    md_code(b, runreport_str(doc, "pipeline", "?"));
    buf_printf(b, " | **%s** | ", runreport_str(doc, "status", "?"));
    double n = 0;
    runreport_num(doc, "counts.steps", &n);
    buf_printf(b, "%.0f", n);
    static const char *const kinds[] = {"done",    "cached",    "failed",
                                        "skipped", "cancelled", "other"};
    const char *sep = ": ";
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char path[32];
        double k = 0;
        snprintf(path, sizeof(path), "counts.%s", kinds[i]);
        if (runreport_num(doc, path, &k) && k > 0) {
            buf_printf(b, "%s%.0f %s", sep, k, kinds[i]);
            sep = ", ";
        }
    }
    buf_puts(b, " | ");
    md_seconds(b, doc, "seconds");
    buf_puts(b, " | ");
    const char *commit = runreport_str(doc, "git.commit", NULL);
    if (commit) {
        char shortc[13];
        snprintf(shortc, sizeof(shortc), "%.12s", commit);
        md_code(b, shortc);
        const char *branch = runreport_str(doc, "git.branch", "");
        if (*branch) {
            buf_puts(b, " on ");
            md_text(b, branch, 80);
        }
        bson_iter_t it;
        if (runreport_field(doc, "git.dirty", &it) && bson_iter_as_bool(&it))
            buf_puts(b, " (uncommitted changes)");
    } else {
        buf_puts(b, "-");
    }
    buf_puts(b, " |\n");
}

static void md_steps(buf *b, const bson_t *doc) {
    bson_iter_t it, s;
    buf_puts(b, "\n### Steps\n\n| step | status | cache | took | attempts | why / error |\n"
                "|---|---|---|---|---|---|\n");
    if (!runreport_field(doc, "steps", &it) || !bson_iter_recurse(&it, &s))
        return;
    while (bson_iter_next(&s)) {
        bson_t sd;
        if (!runreport_subdoc(&s, &sd))
            continue;
        const char *status = runreport_str(&sd, "status", "?");
        int cached = strcmp(status, "cached") == 0;
        int ran = strcmp(status, "done") == 0 || strcmp(status, "failed") == 0;
        buf_puts(b, "| ");
        md_code(b, runreport_str(&sd, "step", "?"));
        buf_printf(b, " | %s%s%s | %s | ", strcmp(status, "failed") == 0 ? "**" : "", status,
                   strcmp(status, "failed") == 0 ? "**" : "",
                   cached ? "hit"
                   : ran  ? "ran"
                          : "-");
        md_seconds(b, &sd, "seconds");
        buf_puts(b, " | ");
        md_number(b, &sd, "attempts");
        buf_puts(b, " | ");
        const char *error = runreport_str(&sd, "error", NULL);
        const char *why = runreport_str(&sd, "why", "");
        if (error && strcmp(error, why) != 0) {
            md_text(b, error, 300);
            if (*why)
                buf_puts(b, "; ");
        }
        md_text(b, why, 300);
        buf_puts(b, " |\n");
    }
}

static void md_metrics(buf *b, const bson_t *doc) {
    bson_iter_t it, m;
    if (!runreport_field(doc, "metrics", &it) || !bson_iter_recurse(&it, &m) || !bson_iter_next(&m))
        return;
    buf_puts(b, "\n### Metrics\n\n| metric | value |\n|---|---|\n");
    do {
        buf_puts(b, "| ");
        md_code(b, bson_iter_key(&m));
        buf_printf(b, " | %g |\n", bson_iter_as_double(&m));
    } while (bson_iter_next(&m));
}

static void md_against(buf *b, const bson_t *doc) {
    const char *spec = runreport_str(doc, "against.spec", NULL);
    if (!spec)
        return;
    const char *model = runreport_str(doc, "against.model", "?");
    double version = 0, cand = 0;
    buf_puts(b, "\n### Against ");
    md_code(b, spec);
    if (!runreport_num(doc, "against.version", &version)) {
        buf_puts(b, "\n\nNo version is there yet: nothing to compare with.\n");
        return;
    }
    buf_printf(b, " (%s@%.0f)\n\n", model, version);
    if (runreport_num(doc, "against.candidate.version", &cand))
        buf_printf(b,
                   "This run's figures are those of %s@%.0f, the version it made, as the "
                   "registry reads them (its evaluations).\n\n",
                   model, cand);
    else
        buf_puts(b, "This run made no version of the model: its figures are its steps' metrics, "
                    "by name.\n\n");
    bson_iter_t it, e;
    if (!runreport_field(doc, "against.metrics", &it) || !bson_iter_recurse(&it, &e) ||
        !bson_iter_next(&e)) {
        buf_puts(b, "Neither side has a metric.\n");
        return;
    }
    buf_puts(b, "| metric | ");
    md_code(b, spec);
    buf_puts(b, " | this run | change | |\n|---|---|---|---|---|\n");
    do {
        bson_t row;
        if (!runreport_subdoc(&e, &row))
            continue;
        double a, c;
        buf_puts(b, "| ");
        md_code(b, runreport_str(&row, "name", "?"));
        buf_puts(b, " | ");
        md_number(b, &row, "baseline");
        buf_puts(b, " | ");
        md_number(b, &row, "run");
        buf_puts(b, " | ");
        if (runreport_num(&row, "change", &c)) {
            buf_printf(b, "%+g", c);
            if (runreport_num(&row, "baseline", &a) && a != 0 && isfinite(c / a))
                buf_printf(b, " (%+.1f%%)", 100.0 * c / fabs(a));
        } else {
            buf_puts(b, "-");
        }
        const char *verdict = runreport_str(&row, "verdict", NULL);
        const char *dir = runreport_str(&row, "direction", NULL);
        buf_puts(b, " | ");
        if (verdict && strcmp(verdict, "same") != 0)
            buf_printf(b, "**%s** (%s is better)", verdict, dir);
        else if (verdict)
            buf_puts(b, "same");
        buf_puts(b, " |\n");
    } while (bson_iter_next(&e));
}

/* The report as Markdown for a pull-request comment: stable, no colour. */
static char *report_markdown(const bson_t *doc) {
    buf b = BUF_INIT;
    md_summary(&b, doc);
    md_steps(&b, doc);
    md_metrics(&b, doc);
    md_against(&b, doc);
    return buf_detach(&b);
}

int cmd_report(const cli_globals *g, int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_AGAINST, OPT_FORMAT };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"against", required_argument, NULL, OPT_AGAINST},
        {"format", required_argument, NULL, OPT_FORMAT},
        {NULL, 0, NULL, 0},
    };
    const char *against = NULL;
    int c, json = 0, bad = 0;
    cli_getopt_begin();
    while (!bad && (c = cli_getopt(argc, argv, ":f:", longopts)) != -1) {
        switch (c) {
        case OPT_JSON:
            json = 1;
            break;
        case OPT_AGAINST:
            against = optarg;
            break;
        case 'f':
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0) {
                json = 1;
            } else if (strcmp(optarg, "markdown") != 0) {
                fprintf(stderr, "sluice report: --format is markdown or json, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        default:
            bad = 1;
        }
    }
    if (!bad && argc - optind != 1) {
        fprintf(stderr, "sluice report: give one run (see 'sluice report --help')\n");
        bad = 1;
    }
    if (bad)
        return EXIT_BAD_INPUT;
    bson_t doc;
    int status = runreport_build(g->store, argv[optind], against, &doc);
    if (status)
        return status;
    if (json) {
        inspect_print_json(&doc);
    } else {
        char *md = report_markdown(&doc);
        if (!md) {
            fprintf(stderr, "sluice report: out of memory\n");
            status = EXIT_BAD_INPUT;
        } else {
            fputs(md, stdout);
        }
        free(md);
    }
    bson_destroy(&doc);
    return status;
}
