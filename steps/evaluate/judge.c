/* judge.c - the LLM judge (judge.h). The prompt follows the structure of
 * the LLM Engineer's Handbook's evaluate_answer
 * (llm_engineering/model/evaluation/evaluate.py): a system message naming
 * the judge's task, then the two criteria with their 1-to-3 scales, an
 * example of poor and of excellent style, the instruction, the answer and
 * the JSON structure wanted. The wording and the examples are ours. */
#include "judge.h"

#include <bson/bson.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char system_prompt[] =
    "You are an impartial reviewer who grades answers for their accuracy and their writing "
    "style. Reply with a JSON object only: a short analysis and a score for each criterion.";

static const char criteria[] =
    "Grade the answer below, written in response to the instruction below it, on two "
    "criteria.\n"
    "\n"
    "1. Accuracy: are the facts the answer states correct and is anything important missing? "
    "Judge as an expert in the instruction's technical subject.\n"
    "2. Style: does it read as a technical blog post or a social media post should: plain, "
    "direct words, precise technical terms where they are needed, and no formal or academic "
    "phrasing?\n"
    "\n"
    "Accuracy scores:\n"
    "1 (poor): something stated is wrong or misleading\n"
    "2 (good): mostly right, with small mistakes or gaps\n"
    "3 (excellent): right throughout and complete\n"
    "\n"
    "Style scores:\n"
    "1 (poor): formal, with needlessly elaborate words\n"
    "2 (good): technical content made accessible, but some phrasing is still formal\n"
    "3 (excellent): plain, accessible language, with exact technical terms only where they help\n"
    "\n"
    "Poor style: The aforementioned retrieval methodology constitutes a considerable advancement, "
    "facilitating the identification of pertinent documents with heightened efficacy.\n"
    "Excellent style: Hybrid search finds the right documents more often than keyword search "
    "alone.\n"
    "\n";

static const char structure[] =
    "Reply with one JSON object of this structure and nothing else (each score is 1, 2 or 3):\n"
    "{\n"
    "    \"accuracy\": {\"analysis\": \"...\", \"score\": 0},\n"
    "    \"style\": {\"analysis\": \"...\", \"score\": 0}\n"
    "}\n";

static const char schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"accuracy\", "
    "\"style\"], \"properties\": {"
    "\"accuracy\": {\"type\": \"object\", \"additionalProperties\": false, \"required\": "
    "[\"analysis\", \"score\"], \"properties\": {\"analysis\": {\"type\": \"string\"}, \"score\": "
    "{\"type\": \"integer\", \"enum\": [1, 2, 3]}}}, "
    "\"style\": {\"type\": \"object\", \"additionalProperties\": false, \"required\": "
    "[\"analysis\", \"score\"], \"properties\": {\"analysis\": {\"type\": \"string\"}, \"score\": "
    "{\"type\": \"integer\", \"enum\": [1, 2, 3]}}}}}";

const char *judge_system_prompt(void) { return system_prompt; }
const char *judge_schema(void) { return schema; }

int judge_format_parse(const char *name, judge_format *f) {
    static const char *const names[] = {"json_schema", "json_object", "none"};
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *f = (judge_format)i;
            return 0;
        }
    return -EINVAL;
}

char *judge_user_prompt(const char *instruction, const char *answer) {
    size_t len = sizeof(criteria) + sizeof(structure) + strlen(instruction) + strlen(answer) + 64;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%sInstruction:\n%s\n\nAnswer:\n%s\n\n%s", criteria, instruction, answer,
                 structure);
    return p;
}

/* ---- reading an answer -------------------------------------------------------------------- */

/* The end of the JSON object that starts at s ('{'), strings and escapes
 * minded, or NULL when it does not close. */
static const char *object_end(const char *s) {
    int depth = 0, in_string = 0;
    for (; *s; s++) {
        if (in_string) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                in_string = 0;
        } else if (*s == '"') {
            in_string = 1;
        } else if (*s == '{' || *s == '[') {
            depth++;
        } else if ((*s == '}' || *s == ']') && --depth == 0) {
            return s + 1;
        }
    }
    return NULL;
}

static int unparsable(judge_item *it, const char *why) {
    it->status = JUDGE_UNPARSABLE;
    it->accuracy = it->style = 0;
    snprintf(it->error, sizeof(it->error), "%s", why);
    return -1;
}

/* One criterion: {"analysis": non-empty string, "score": 1..3}, nothing else. */
static int criterion(const bson_iter_t *at, const char *name, int *score, const char **analysis,
                     char *why, size_t why_size) {
    bson_iter_t it;
    if (!BSON_ITER_HOLDS_DOCUMENT(at) || !bson_iter_recurse(at, &it)) {
        snprintf(why, why_size, "'%s' is not an object", name);
        return -1;
    }
    int have_score = 0;
    *analysis = NULL;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "analysis") == 0 && !*analysis) {
            if (!BSON_ITER_HOLDS_UTF8(&it)) {
                snprintf(why, why_size, "'%s.analysis' is not a string", name);
                return -1;
            }
            *analysis = bson_iter_utf8(&it, NULL);
            if (strspn(*analysis, " \t\r\n") == strlen(*analysis)) {
                snprintf(why, why_size, "'%s.analysis' is empty", name);
                return -1;
            }
        } else if (strcmp(key, "score") == 0 && !have_score) {
            if (!BSON_ITER_HOLDS_INT32(&it) && !BSON_ITER_HOLDS_INT64(&it)) {
                snprintf(why, why_size, "'%s.score' is not an integer", name);
                return -1;
            }
            int64_t v = bson_iter_as_int64(&it);
            if (v < 1 || v > 3) {
                snprintf(why, why_size, "'%s.score' is %lld, not 1, 2 or 3", name, (long long)v);
                return -1;
            }
            *score = (int)v;
            have_score = 1;
        } else {
            snprintf(why, why_size, "'%s' has an unexpected or repeated key '%.40s'", name, key);
            return -1;
        }
    }
    if (!*analysis || !have_score) {
        snprintf(why, why_size, "'%s' has no %s", name, *analysis ? "score" : "analysis");
        return -1;
    }
    return 0;
}

static char *dup_str(const char *s) {
    size_t len = strlen(s);
    char *d = malloc(len + 1);
    if (d)
        memcpy(d, s, len + 1);
    return d;
}

int judge_parse(const char *content, judge_item *it) {
    const char *ws = " \t\r\n";
    const char *start = content + strspn(content, ws);
    if (*start != '{')
        return unparsable(it, "not a JSON object");
    const char *end = object_end(start);
    if (!end)
        return unparsable(it, "a JSON object that does not close");
    if (end[strspn(end, ws)] != '\0')
        return unparsable(it, "text after the JSON object");
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)start, end - start, &e);
    if (!doc) {
        char why[256];
        snprintf(why, sizeof(why), "not JSON: %.200s", e.message);
        return unparsable(it, why);
    }
    bson_iter_t i;
    const char *analysis[2] = {NULL, NULL};
    int score[2] = {0, 0}, seen[2] = {0, 0}, rc = 0;
    char why[200] = "";
    static const char *const names[2] = {"accuracy", "style"};
    if (!bson_iter_init(&i, doc))
        rc = -1, snprintf(why, sizeof(why), "not a JSON object");
    while (rc == 0 && bson_iter_next(&i)) {
        const char *key = bson_iter_key(&i);
        int k = strcmp(key, names[0]) == 0 ? 0 : strcmp(key, names[1]) == 0 ? 1 : -1;
        if (k < 0 || seen[k]) {
            snprintf(why, sizeof(why), "an unexpected or repeated key '%.40s'", key);
            rc = -1;
        } else {
            seen[k] = 1;
            rc = criterion(&i, names[k], &score[k], &analysis[k], why, sizeof(why));
        }
    }
    if (rc == 0 && (!seen[0] || !seen[1])) {
        snprintf(why, sizeof(why), "no '%s'", seen[0] ? "style" : "accuracy");
        rc = -1;
    }
    if (rc == 0) {
        it->accuracy_analysis = dup_str(analysis[0]);
        it->style_analysis = dup_str(analysis[1]);
        if (!it->accuracy_analysis || !it->style_analysis) {
            free(it->accuracy_analysis);
            free(it->style_analysis);
            it->accuracy_analysis = it->style_analysis = NULL;
            rc = -ENOMEM;
        } else {
            it->status = JUDGE_SCORED;
            it->accuracy = score[0];
            it->style = score[1];
            it->error[0] = '\0';
        }
    }
    bson_destroy(doc);
    return rc == -1 ? unparsable(it, why) : rc;
}

/* ---- the confidence interval -------------------------------------------------------------- */

/* The continued fraction of the regularized incomplete beta function
 * (modified Lentz), for x < (a + 1) / (a + b + 2) where it converges fast. */
static double beta_fraction(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        for (int odd = 0; odd < 2; odd++) {
            double num = odd ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                             : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 + num * d;
            d = 1 / (fabs(d) < tiny ? tiny : d);
            c = 1 + num / c;
            c = fabs(c) < tiny ? tiny : c;
            h *= d * c;
            if (odd && fabs(d * c - 1) < 1e-15)
                return h;
        }
    }
    return h;
}

/* I_x(a, b), the regularized incomplete beta function. */
static double incomplete_beta(double a, double b, double x) {
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2))
        return front * beta_fraction(a, b, x) / a;
    return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

/* P(T <= t) for Student's t with df degrees of freedom. */
static double t_cdf(double t, double df) {
    double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t));
    return t >= 0 ? 1 - tail : tail;
}

double judge_t_quantile(double p, double df) {
    if (p == 0.5)
        return 0;
    if (p < 0.5)
        return -judge_t_quantile(1 - p, df);
    /* Bisection on the CDF, which increases: slow but sure, and run twice a step. */
    double lo = 0, hi = 1;
    while (t_cdf(hi, df) < p && hi < 1e15)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-13 * (hi > 1 ? hi : 1); i++) {
        double mid = 0.5 * (lo + hi);
        if (t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

void judge_stat_of(const double *x, size_t n, judge_stat *out) {
    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n == 0)
        return;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    out->mean = sum / (double)n;
    out->low = out->high = out->mean;
    if (n < 2)
        return;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - out->mean) * (x[i] - out->mean);
    out->sd = sqrt(ss / (double)(n - 1));
    double half = judge_t_quantile(0.975, (double)(n - 1)) * out->sd / sqrt((double)n);
    out->low = out->mean - half;
    out->high = out->mean + half;
    out->has_ci = 1;
}

/* ---- the run ------------------------------------------------------------------------------ */

int judge_run(const llm_options *o, judge_format format, judge_item *items, size_t n,
              judge_summary *summary, int (*cancelled)(void *arg), void *arg, char *err,
              size_t err_size) {
    memset(summary, 0, sizeof(*summary));
    llm_options opts = *o;
    opts.json_object = format == JUDGE_FORMAT_OBJECT;
    opts.json_schema = format == JUDGE_FORMAT_SCHEMA ? schema : NULL;
    opts.json_schema_name = format == JUDGE_FORMAT_SCHEMA ? "judgement" : NULL;
    opts.client = "evaluate";
    llm_call *calls = calloc(n ? n : 1, sizeof(*calls));
    double *acc = malloc((n ? n : 1) * sizeof(*acc)), *sty = malloc((n ? n : 1) * sizeof(*sty));
    int rc = calls && acc && sty ? 0 : -ENOMEM;
    for (size_t i = 0; i < n; i++) { /* until an answer says otherwise */
        items[i].status = JUDGE_FAILED;
        items[i].accuracy = items[i].style = 0;
        snprintf(items[i].error, sizeof(items[i].error), "not judged");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        calls[i].system = system_prompt;
        if (!(calls[i].user = judge_user_prompt(items[i].instruction, items[i].answer)))
            rc = -ENOMEM;
    }
    if (rc == -ENOMEM)
        snprintf(err, err_size, "out of memory preparing %zu judge requests", n);
    if (rc == 0)
        rc = llm_run(&opts, calls, n, &summary->llm, NULL, cancelled, arg, err, err_size);
    size_t na = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        judge_item *it = &items[i];
        it->status = JUDGE_FAILED;
        it->from_cache = calls[i].from_cache;
        if (calls[i].status != 0) {
            snprintf(it->error, sizeof(it->error), "%s", calls[i].error);
            summary->failed++;
            continue;
        }
        int p = judge_parse(calls[i].content, it);
        if (p == -ENOMEM) {
            snprintf(err, err_size, "out of memory reading the judge's answers");
            rc = -ENOMEM;
        } else if (p != 0) {
            it->raw = calls[i].content; /* the report shows what the judge said */
            calls[i].content = NULL;
            summary->unparsable++;
        } else {
            acc[na] = it->accuracy;
            sty[na++] = it->style;
        }
    }
    if (rc == 0) {
        summary->items = n;
        summary->scored = na;
        judge_stat_of(acc, na, &summary->accuracy);
        judge_stat_of(sty, na, &summary->style);
    }
    for (size_t i = 0; calls && i < n; i++)
        free((char *)calls[i].user);
    if (calls)
        llm_calls_free(calls, n);
    free(calls);
    free(acc);
    free(sty);
    return rc;
}

void judge_items_free(judge_item *items, size_t n) {
    for (size_t i = 0; items && i < n; i++) {
        free(items[i].accuracy_analysis);
        free(items[i].style_analysis);
        free(items[i].raw);
        items[i].accuracy_analysis = items[i].style_analysis = items[i].raw = NULL;
    }
}
