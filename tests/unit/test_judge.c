/* The evaluate step's LLM judge (steps/evaluate/judge.h): the strict reading of its answers, the
 * confidence intervals against SciPy (tests/ref/judge_ci_ref.py), and whole runs against the local
 * OpenAI-compatible server in its judge modes (tests/llm_server.py): what was sent and how many
 * answers did not read are counted, never timed. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "judge.h"
#include "llm_stats.h"
#include "local_server.h"
#include "require.h"

#define REF SLUICE_SOURCE_DIR "/tests/ref/judge_ci_ref.py"

/* ---- reading an answer -------------------------------------------------------------------- */

static const char good[] = "{\"accuracy\": {\"analysis\": \"Right on every point.\", \"score\": 3},"
                           " \"style\": {\"analysis\": \"A bit stiff.\", \"score\": 2}}";

Test(judge_parse, a_good_answer_is_read) {
    judge_item it = {0};
    cr_assert_eq(judge_parse(good, &it), 0);
    cr_assert_eq(it.status, JUDGE_SCORED);
    cr_assert_eq(it.accuracy, 3);
    cr_assert_eq(it.style, 2);
    cr_assert_str_eq(it.accuracy_analysis, "Right on every point.");
    cr_assert_str_eq(it.style_analysis, "A bit stiff.");
    judge_items_free(&it, 1);
}

Test(judge_parse, whitespace_around_the_object_is_allowed) {
    judge_item it = {0};
    char text[512];
    snprintf(text, sizeof(text), "\n  %s \n", good);
    cr_assert_eq(judge_parse(text, &it), 0);
    cr_assert_eq(it.accuracy, 3);
    judge_items_free(&it, 1);
}

/* Each answer that is not exactly the shape asked for is unparsable, with a reason. */
Test(judge_parse, every_other_shape_is_unparsable) {
    static const struct {
        const char *content, *why;
    } cases[] = {
        {"The answer is accurate: 3/3.", "not a JSON object"},
        {"```json\n{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}, \"style\": {\"analysis\": "
         "\"b\", \"score\": 2}}\n```",
         "not a JSON object"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}} I hope this helps.",
         "text after"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}", "does not close"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}}", "no 'style'"},
        {"{\"style\": {\"analysis\": \"a\", \"score\": 3}}", "no 'accuracy'"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 4}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}}",
         "not 1, 2 or 3"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 0}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}}",
         "not 1, 2 or 3"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 2.5}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}}",
         "not an integer"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": \"3\"}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}}",
         "not an integer"},
        {"{\"accuracy\": {\"analysis\": \" \", \"score\": 3}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}}",
         "empty"},
        {"{\"accuracy\": {\"score\": 3}, \"style\": {\"analysis\": \"b\", \"score\": 2}}",
         "no analysis"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3, \"confidence\": 1}, \"style\": "
         "{\"analysis\": \"b\", \"score\": 2}}",
         "unexpected or repeated key 'confidence'"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}, \"accuracy\": {\"analysis\": \"a\", "
         "\"score\": 1}, \"style\": {\"analysis\": \"b\", \"score\": 2}}",
         "repeated key 'accuracy'"},
        {"{\"accuracy\": 3, \"style\": 2}", "'accuracy' is not an object"},
        {"[{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}}]", "not a JSON object"},
        {"{\"accuracy\": {\"analysis\": \"a\", \"score\": 3}, \"style\": {\"analysis\": \"b\", "
         "\"score\": 2}, \"total\": 5}",
         "unexpected or repeated key 'total'"},
        {"", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        judge_item it = {0};
        cr_assert_eq(judge_parse(cases[i].content, &it), -1, "case %zu: %s", i, cases[i].content);
        cr_assert_eq(it.status, JUDGE_UNPARSABLE, "case %zu", i);
        cr_assert_eq(it.accuracy + it.style, 0, "case %zu", i);
        cr_assert_null(it.accuracy_analysis, "case %zu", i);
        cr_assert_not_null(strstr(it.error, cases[i].why), "case %zu: '%s' lacks '%s'", i, it.error,
                           cases[i].why);
    }
}

Test(judge_parse, the_prompt_carries_the_instruction_and_the_answer) {
    char *p = judge_user_prompt("Explain RAG.", "RAG retrieves, then generates.");
    cr_assert_not_null(p);
    const char *i = strstr(p, "Instruction:\nExplain RAG."), *a = strstr(p, "Answer:\nRAG retr");
    cr_assert(i && a && i < a, "%s", p);
    cr_assert_not_null(strstr(p, "Accuracy scores:"));
    cr_assert_not_null(strstr(p, "\"style\": {\"analysis\""));
    free(p);
    bson_t *s = bson_new_from_json((const uint8_t *)judge_schema(), -1, NULL);
    cr_assert_not_null(s, "the schema is JSON");
    bson_destroy(s);
}

/* ---- the confidence intervals against SciPy ----------------------------------------------- */

static void need_scipy(void) {
    if (access(TEST_PYTHON, X_OK) != 0 ||
        system(TEST_PYTHON " -c 'import scipy, numpy' 2>/dev/null") != 0)
        SKIP_UNLESS_REQUIRED("no SciPy for " REF);
}

/* Fixed score lists: small and large n, all equal, the two ends of the scale. */
#define N_LISTS 7
static size_t list_of(int which, double *x) {
    static const size_t sizes[N_LISTS] = {1, 2, 3, 10, 37, 400, 5};
    uint64_t state = 0x9e3779b97f4a7c15ULL * (uint64_t)(which + 1);
    for (size_t i = 0; i < sizes[which]; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = which == 6 ? 2 : (double)(1 + (state >> 33) % 3);
    }
    return sizes[which];
}

Test(judge_ci, means_and_intervals_match_scipy) {
    need_scipy();
    char in[] = "/tmp/sluice-judge-ci-XXXXXX";
    int fd = mkstemp(in);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    static double x[N_LISTS][400];
    size_t n[N_LISTS];
    for (int w = 0; w < N_LISTS; w++) {
        n[w] = list_of(w, x[w]);
        fprintf(f, "{\"scores\": [");
        for (size_t i = 0; i < n[w]; i++)
            fprintf(f, "%s%g", i ? ", " : "", x[w][i]);
        fprintf(f, "]}\n");
    }
    static const double ps[] = {0.975, 0.995, 0.9, 0.6, 0.025};
    static const double dfs[] = {1, 2, 3, 4, 9, 29, 99, 999, 1e5};
    for (size_t p = 0; p < 5; p++)
        for (size_t d = 0; d < 9; d++)
            fprintf(f, "{\"p\": %.17g, \"df\": %.17g}\n", ps[p], dfs[d]);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), TEST_PYTHON " " REF " < %s", in);
    FILE *py = popen(cmd, "r");
    cr_assert_not_null(py);
    char line[512];
    for (int w = 0; w < N_LISTS; w++) {
        cr_assert_not_null(fgets(line, sizeof(line), py), "the reference stopped at list %d", w);
        bson_t *ref = bson_new_from_json((const uint8_t *)line, -1, NULL);
        cr_assert_not_null(ref, "%s", line);
        judge_stat s;
        judge_stat_of(x[w], n[w], &s);
        const char *keys[] = {"mean", "sd", "low", "high"};
        double got[] = {s.mean, s.sd, s.low, s.high};
        for (int k = 0; k < 4; k++) {
            bson_iter_t it;
            cr_assert(bson_iter_init_find(&it, ref, keys[k]));
            double want = bson_iter_as_double(&it);
            cr_assert(fabs(got[k] - want) <= 1e-9 * (1 + fabs(want)),
                      "list %d (n %zu) %s: %.15g, SciPy %.15g", w, n[w], keys[k], got[k], want);
        }
        cr_assert_eq(s.has_ci, n[w] >= 2, "list %d", w);
        bson_destroy(ref);
    }
    for (size_t p = 0; p < 5; p++)
        for (size_t d = 0; d < 9; d++) {
            cr_assert_not_null(fgets(line, sizeof(line), py));
            bson_t *ref = bson_new_from_json((const uint8_t *)line, -1, NULL);
            bson_iter_t it;
            cr_assert(ref && bson_iter_init_find(&it, ref, "t"), "%s", line);
            double want = bson_iter_as_double(&it), got = judge_t_quantile(ps[p], dfs[d]);
            cr_assert(fabs(got - want) <= 1e-9 * (1 + fabs(want)), "t(%g, %g): %.15g, SciPy %.15g",
                      ps[p], dfs[d], got, want);
            bson_destroy(ref);
        }
    cr_assert_eq(pclose(py), 0);
    unlink(in);
}

/* ---- whole runs against the test server --------------------------------------------------- */

static char dir[64], endpoint[128];
static pid_t server = -1;

static void start_server(const char *const *args) {
    server = llm_server_start(dir, args, endpoint, sizeof(endpoint));
}

static void setup(void) {
    if (access(TEST_PYTHON, X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no " TEST_PYTHON " to run tests/llm_server.py");
    snprintf(dir, sizeof(dir), "/tmp/sluice-judge-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    local_server_stop(&server);
    if (*dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

TestSuite(judge_run, .init = setup, .fini = teardown, .timeout = 120);

static llm_options options(const char *cache) {
    return (llm_options){.endpoint = endpoint,
                         .model = "judge-model",
                         .temperature = 0,
                         .max_tokens = 1000,
                         .concurrency = 4,
                         .timeout_s = 30,
                         .max_retries = 3,
                         .backoff_s = 0.001,
                         .cache_dir = cache};
}

/* 12 answers: 8 scored as their [[judge:A:S]] marker says, 2 answered in a shape that does not
 * read (prose, a style score of 4), 2 refused once with 429 and Retry-After, then scored. */
#define N_MIXED 12
static char answers[N_MIXED][128];
static const int want_acc[N_MIXED] = {3, 2, 2, 1, 3, 3, 2, 1, 3, 3, 3, 2};
static const int want_sty[N_MIXED] = {2, 2, 1, 1, 3, 2, 2, 3, 3, 3, 1, 2};

static void mixed_items(judge_item *items) {
    for (size_t i = 0; i < N_MIXED; i++) {
        const char *extra = i == 8    ? "[[mode:judge_prose]]"
                            : i == 9  ? "[[mode:judge_range]]"
                            : i >= 10 ? "[[mode:429:1]]"
                                      : "";
        snprintf(answers[i], sizeof(answers[i]), "Answer %zu. [[judge:%d:%d]] %s", i, want_acc[i],
                 want_sty[i], extra);
        items[i] =
            (judge_item){.instruction = "Explain the feature pipeline.", .answer = answers[i]};
    }
}

static void expect_mixed(const judge_item *items, const judge_summary *s) {
    cr_assert_eq(s->items, N_MIXED);
    cr_assert_eq(s->scored, 10);
    cr_assert_eq(s->unparsable, 2);
    cr_assert_eq(s->failed, 0);
    double acc[N_MIXED], sty[N_MIXED];
    size_t k = 0;
    for (size_t i = 0; i < N_MIXED; i++) {
        if (i == 8 || i == 9) {
            cr_assert_eq(items[i].status, JUDGE_UNPARSABLE, "item %zu", i);
            cr_assert_not_null(items[i].raw, "the report keeps what the judge said");
            cr_assert_not_null(
                strstr(items[i].error, i == 8 ? "not a JSON object" : "'style.score' is 4"), "%s",
                items[i].error);
            continue;
        }
        cr_assert_eq(items[i].status, JUDGE_SCORED, "item %zu: %s", i, items[i].error);
        cr_assert_eq(items[i].accuracy, want_acc[i], "item %zu", i);
        cr_assert_eq(items[i].style, want_sty[i], "item %zu", i);
        cr_assert_not_null(items[i].accuracy_analysis);
        acc[k] = want_acc[i];
        sty[k++] = want_sty[i];
    }
    judge_stat a, b;
    judge_stat_of(acc, k, &a);
    judge_stat_of(sty, k, &b);
    cr_assert_eq(s->accuracy.n, 10);
    cr_assert_float_eq(s->accuracy.mean, 2.2, 1e-12);
    cr_assert_float_eq(s->style.mean, 1.9, 1e-12);
    cr_assert_float_eq(s->accuracy.low, a.low, 1e-12);
    cr_assert_float_eq(s->style.high, b.high, 1e-12);
    cr_assert(s->accuracy.low < 2.2 && s->accuracy.high > 2.2);
}

Test(judge_run, scores_unparsable_and_429s_counted) {
    start_server((const char *const[]){"--mode", "judge", "--retry-after", "0.05", NULL});
    judge_item items[N_MIXED];
    mixed_items(items);
    judge_summary s;
    char err[256] = "";
    llm_options o = options(NULL);
    cr_assert_eq(
        judge_run(&o, JUDGE_FORMAT_SCHEMA, items, N_MIXED, &s, NULL, NULL, err, sizeof(err)), 0,
        "%s", err);
    expect_mixed(items, &s);
    /* One request per item, one more for each 429; the unparsable ones are not asked again. */
    cr_assert_eq(llm_server_stat(endpoint, "total"), N_MIXED + 2);
    cr_assert_eq(llm_server_stat(endpoint, "modes.429"), 2);
    cr_assert_eq(llm_server_stat(endpoint, "modes.judge"), 10);
    cr_assert_eq(llm_server_stat(endpoint, "bad_requests"), 0);
    cr_assert_eq(llm_server_stat(endpoint, "formats.json_schema"), N_MIXED + 2);
    cr_assert_eq(s.llm.requests, N_MIXED + 2);
    cr_assert_eq(s.llm.retries, 2);
    judge_items_free(items, N_MIXED);
}

Test(judge_run, cached_answers_are_read_again_the_same_way) {
    start_server((const char *const[]){"--mode", "judge", "--retry-after", "0.05", NULL});
    char cache[128];
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    llm_options o = options(cache);
    for (int pass = 0; pass < 2; pass++) {
        judge_item items[N_MIXED];
        mixed_items(items);
        judge_summary s;
        char err[256] = "";
        cr_assert_eq(
            judge_run(&o, JUDGE_FORMAT_SCHEMA, items, N_MIXED, &s, NULL, NULL, err, sizeof(err)), 0,
            "%s", err);
        expect_mixed(items, &s);
        cr_assert_eq(s.llm.cached, pass ? N_MIXED : 0, "pass %d", pass);
        judge_items_free(items, N_MIXED);
    }
    cr_assert_eq(llm_server_stat(endpoint, "total"), N_MIXED + 2, "the second pass sent nothing");
}

Test(judge_run, a_server_without_json_schema) {
    start_server((const char *const[]){"--mode", "judge", "--no-json-schema", NULL});
    judge_item items[3];
    for (size_t i = 0; i < 3; i++)
        items[i] = (judge_item){.instruction = "Explain LoRA.", .answer = "[[judge:2:3]] LoRA."};
    judge_summary s;
    char err[256] = "";
    llm_options o = options(NULL);
    cr_assert_eq(judge_run(&o, JUDGE_FORMAT_SCHEMA, items, 3, &s, NULL, NULL, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(s.failed, 3, "refused requests are failures, not unparsable answers");
    cr_assert_eq(s.unparsable, 0);
    cr_assert_not_null(strstr(items[0].error, "HTTP 400: response_format json_schema is not"), "%s",
                       items[0].error);
    cr_assert_eq(llm_server_stat(endpoint, "total"), 3, "a 400 is not retried");
    judge_items_free(items, 3);
    /* Asked for a JSON object instead, the same server judges. */
    cr_assert_eq(judge_run(&o, JUDGE_FORMAT_OBJECT, items, 3, &s, NULL, NULL, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(s.scored, 3);
    cr_assert_float_eq(s.accuracy.mean, 2, 1e-12);
    cr_assert_float_eq(s.style.mean, 3, 1e-12);
    cr_assert_eq(llm_server_stat(endpoint, "formats.json_object"), 3);
    judge_items_free(items, 3);
}

Test(judge_run, persistent_429_fails_after_the_retries) {
    start_server((const char *const[]){"--mode", "429", "--retry-after", "0.01", NULL});
    judge_item items[4];
    for (size_t i = 0; i < 4; i++)
        items[i] = (judge_item){.instruction = "Explain DPO.", .answer = answers[i]};
    for (size_t i = 0; i < 4; i++)
        snprintf(answers[i], sizeof(answers[i]), "DPO %zu.", i);
    judge_summary s;
    char err[256] = "";
    llm_options o = options(NULL);
    o.max_retries = 2;
    cr_assert_eq(judge_run(&o, JUDGE_FORMAT_SCHEMA, items, 4, &s, NULL, NULL, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(s.failed, 4);
    cr_assert_eq(s.scored + s.unparsable, 0);
    cr_assert_eq(s.accuracy.n, 0);
    cr_assert_not_null(strstr(items[3].error, "HTTP 429"), "%s", items[3].error);
    cr_assert_eq(llm_server_stat(endpoint, "total"), 4 * 3);
    judge_items_free(items, 4);
}

Test(judge_run, bad_options_send_nothing) {
    judge_item items[1] = {{.instruction = "x", .answer = "y"}};
    judge_summary s;
    char err[256] = "";
    llm_options o = options(NULL);
    o.endpoint = "not a url";
    cr_assert_lt(judge_run(&o, JUDGE_FORMAT_SCHEMA, items, 1, &s, NULL, NULL, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "not an http(s) URL"), "%s", err);
}
