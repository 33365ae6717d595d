/* The API client the steps share (steps/llm/llm_client.h) against the local
 * OpenAI-compatible server tests/llm_server.py, one server per test: what the client sends is
 * counted by the server (GET /stats), never timed. */
#include <bson/bson.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llm_client.h"
#include "llm_stats.h"
#include "local_server.h"
#include "require.h"

#define KEY "sk-test-SECRET-0123456789abcdef"

static char dir[64];
static char endpoint[128];
static pid_t server = -1;

/* tests/llm_server.py with the test's key and extra arguments (NULL-ended, may be NULL). */
static void start_server(const char *const *extra) {
    const char *args[24] = {"--api-key", KEY};
    size_t k = 2;
    for (; extra && *extra && k < 23; extra++)
        args[k++] = *extra;
    args[k] = NULL;
    server = llm_server_start(dir, args, endpoint, sizeof(endpoint));
}

static void stop_server(void) { local_server_stop(&server); }

static void setup(void) {
    if (access(TEST_PYTHON, X_OK) != 0)
        SKIP_UNLESS_REQUIRED("no " TEST_PYTHON " to run tests/llm_server.py");
    snprintf(dir, sizeof(dir), "/tmp/sluice-llm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    stop_server();
    if (*dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

TestSuite(llm_client, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the server's counts ---- */

static bson_t *stats(void) { return llm_server_stats(endpoint); }
static long stat_of(const char *path) { return llm_server_stat(endpoint, path); }

/* ---- running calls ---- */

static llm_options options(int concurrency) {
    return (llm_options){.endpoint = endpoint,
                         .model = "test-model",
                         .api_key = KEY,
                         .temperature = 0.7,
                         .seed = 42,
                         .concurrency = concurrency,
                         .timeout_s = 30,
                         .max_retries = 3,
                         .backoff_s = 0.001};
}

/* n calls whose user messages are "extract i MARKER" (strings kept in texts). */
static llm_call *make_calls(size_t n, const char *marker, char (*texts)[128]) {
    llm_call *calls = calloc(n, sizeof(*calls));
    cr_assert_not_null(calls);
    for (size_t i = 0; i < n; i++) {
        snprintf(texts[i], 128, "extract %zu about pipelines %s", i, marker ? marker : "");
        calls[i].system = "You write datasets.";
        calls[i].user = texts[i];
    }
    return calls;
}

typedef struct progress {
    size_t done;
    size_t *order; /* indices in the order on_done saw them */
    size_t cancel_after;
    int polls, cancel_after_polls;
    const char *cache_dir;
    const llm_options *o;
    llm_call *calls;
    int cached_before_done; /* every answered call's file existed when on_done ran */
} progress;

static void on_done(void *arg, size_t i) {
    progress *p = arg;
    if (p->order)
        p->order[p->done] = i;
    p->done++;
    if (p->cache_dir && p->calls[i].status == 0) {
        char key[65], path[256];
        cr_assert_eq(llm_cache_key(p->o, &p->calls[i], key), 0);
        snprintf(path, sizeof(path), "%s/%s.json", p->cache_dir, key);
        if (access(path, R_OK) != 0)
            p->cached_before_done = 0;
    }
}

static int cancelled(void *arg) {
    progress *p = arg;
    p->polls++;
    if (p->cancel_after && p->done >= p->cancel_after)
        return 1;
    return p->cancel_after_polls && p->polls >= p->cancel_after_polls;
}

static void run(const llm_options *o, llm_call *calls, size_t n, llm_totals *t, progress *p) {
    char err[256] = "";
    int rc = llm_run(o, calls, n, t, on_done, cancelled, p, err, sizeof(err));
    cr_assert_eq(rc, 0, "llm_run: %d %s", rc, err);
}

/* Every call answered, by content echoing its own extract. */
static void expect_answered(llm_call *calls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(calls[i].status, 0, "call %zu: %s", i, calls[i].error);
        cr_assert_not_null(calls[i].content);
        char want[64];
        snprintf(want, sizeof(want), "extract %zu about", i);
        cr_assert_not_null(strstr(calls[i].content, want), "call %zu: %s", i, calls[i].content);
        cr_assert_gt(calls[i].prompt_tokens, 0);
        cr_assert_gt(calls[i].completion_tokens, 0);
    }
}

/* ---- answered ---- */

static void all_ok(int concurrency, size_t n) {
    start_server(NULL);
    char texts[64][128];
    llm_call *calls = make_calls(n, NULL, texts);
    llm_options o = options(concurrency);
    llm_totals t;
    progress p = {0};
    run(&o, calls, n, &t, &p);
    expect_answered(calls, n);
    cr_assert_eq(p.done, n, "on_done once per call");
    cr_assert_eq(stat_of("total"), (long)n);
    cr_assert_eq(stat_of("bad_requests"), 0);
    cr_assert_leq(stat_of("max_in_flight"), concurrency);
    cr_assert_eq(t.requests, (long)n);
    cr_assert_eq(t.retries, 0);
    cr_assert_eq(t.failed, 0);
    cr_assert_eq(t.cached, 0);
    long prompt = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(calls[i].attempts, 1);
        cr_assert_eq(calls[i].from_cache, 0);
        prompt += calls[i].prompt_tokens;
    }
    cr_assert_eq(t.prompt_tokens, prompt);
    llm_calls_free(calls, n);
    free(calls);
}

Test(llm_client, all_answered_one_at_a_time) { all_ok(1, 6); }
Test(llm_client, all_answered_eight_at_a_time) { all_ok(8, 40); }

Test(llm_client, never_more_than_concurrency_in_flight) {
    /* The server holds the first 8 requests until 8 have arrived: the client must have 8 in
     * flight at once (or the test waits out the gate and fails), and never a 9th. */
    start_server(NULL);
    char texts[32][128];
    llm_call *calls = make_calls(32, "[[mode:gate:8]]", texts);
    llm_options o = options(8);
    llm_totals t;
    progress p = {0};
    run(&o, calls, 32, &t, &p);
    expect_answered(calls, 32);
    cr_assert_eq(stat_of("max_in_flight"), 8);
    cr_assert_eq(stat_of("total"), 32);
    llm_calls_free(calls, 32);
    free(calls);
}

Test(llm_client, never_a_request_beyond_concurrency) {
    /* The server holds requests until 9 have arrived: with 8 in flight at most, the 9th never
     * comes while the first 8 are held, so they wait out the gate (1 s) before being answered. */
    start_server((const char *[]){"--gate-timeout", "1", NULL});
    char texts[16][128];
    llm_call *calls = make_calls(16, "[[mode:gate:9]]", texts);
    llm_options o = options(8);
    llm_totals t;
    progress p = {0};
    run(&o, calls, 16, &t, &p);
    expect_answered(calls, 16);
    cr_assert_gt(stat_of("gate_timeouts"), 0, "a 9th request came while 8 were in flight");
    cr_assert_leq(stat_of("max_in_flight"), 8);
    llm_calls_free(calls, 16);
    free(calls);
}

Test(llm_client, request_shaped_as_the_openai_client_sends_it) {
    start_server(NULL);
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_options o = options(1);
    o.max_tokens = 300;
    o.json_object = 1;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    expect_answered(calls, 1);
    cr_assert_eq(calls[0].content[0], '{', "json_object asked: %s", calls[0].content);
    bson_t *s = stats();
    bson_iter_t it, d;
    cr_assert(bson_iter_init(&it, s) && bson_iter_find_descendant(&it, "last_request", &d));
    char *json = bson_as_relaxed_extended_json(s, NULL);
    cr_assert_not_null(strstr(json, "\"user-agent\" : \"sluice/"), "%s", json);
    cr_assert_not_null(strstr(json, "\"accept\" : \"application/json\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"content-type\" : \"application/json\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"authorization\" : true"), "%s", json);
    cr_assert_null(strstr(json, "\"expect\""), "%s", json);
    cr_assert_not_null(strstr(json, "\"body_keys\" : [ \"max_tokens\", \"messages\", \"model\", "
                                    "\"response_format\", \"seed\", \"temperature\" ]"),
                       "%s", json);
    bson_free(json);
    bson_destroy(s);
    llm_calls_free(calls, 1);
    free(calls);
}

/* The JSON text of path as a list, "[ ... ]", found in the JSON file (or document) text. */
static char *json_list(const char *text, const char *path) {
    bson_t *doc = bson_new_from_json((const uint8_t *)text, -1, NULL);
    cr_assert_not_null(doc, "%s", text);
    bson_iter_t it, d;
    cr_assert(bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &d) &&
                  BSON_ITER_HOLDS_ARRAY(&d),
              "no list %s in %s", path, text);
    const uint8_t *data;
    uint32_t len;
    bson_iter_array(&d, &len, &data);
    bson_t list;
    cr_assert(bson_init_static(&list, data, len));
    char *json = bson_array_as_json(&list, NULL);
    bson_destroy(doc);
    return json;
}

Test(llm_client, matches_the_official_openai_client) {
    /* The official client (tests/package.json, `npm ci` in tests/) sends a request with the same
     * parameters; the server then demands every header that library sets of our requests, and
     * the body keys must be the same. */
    if (system("node --version >/dev/null 2>&1") != 0 ||
        access(SLUICE_SOURCE_DIR "/tests/node_modules/openai/package.json", R_OK) != 0)
        SKIP_UNLESS_REQUIRED("node or the openai package (npm ci in tests/) is missing");
    start_server(NULL);
    char shape[128], cmd[512];
    snprintf(shape, sizeof(shape), "%s/shape.json", dir);
    snprintf(cmd, sizeof(cmd), "OPENAI_API_KEY=%s node %s/tests/llm/openai_shape.mjs %s %s", KEY,
             SLUICE_SOURCE_DIR, endpoint, shape);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    stop_server();
    start_server((const char *[]){"--shape", shape, NULL});
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_options o = options(1);
    o.max_tokens = 300;
    o.json_object = 1;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    expect_answered(calls, 1);
    cr_assert_eq(stat_of("bad_requests"), 0);
    FILE *f = fopen(shape, "r");
    cr_assert_not_null(f);
    char text[8192];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    text[len] = '\0';
    fclose(f);
    cr_assert_not_null(strstr(text, "\"authorization\": true"), "%s", text);
    char *theirs = json_list(text, "body_keys"), *required = json_list(text, "required_headers");
    bson_t *s = stats();
    char *ours_json = bson_as_relaxed_extended_json(s, NULL);
    char *ours = json_list(ours_json, "last_request.body_keys");
    cr_assert_str_eq(ours, theirs);
    cr_assert_not_null(strstr(required, "\"user-agent\""), "%s", required);
    cr_assert_not_null(strstr(ours_json, "\"authorization\" : true"), "%s", ours_json);
    bson_free(theirs);
    bson_free(required);
    bson_free(ours);
    bson_free(ours_json);
    bson_destroy(s);
    llm_calls_free(calls, 1);
    free(calls);
}

/* POSTs body to the server with the given headers; the HTTP status, the answer in *answer. */
static long post(const char *body, const char *const *headers, llm_stats_buf *answer) {
    char url[160];
    snprintf(url, sizeof(url), "%s/chat/completions", endpoint);
    CURL *e = curl_easy_init();
    cr_assert_not_null(e);
    struct curl_slist *h = NULL;
    for (; *headers; headers++)
        h = curl_slist_append(h, *headers);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "test_llm_client");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, llm_stats_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, answer);
    cr_assert_eq(curl_easy_perform(e), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return status;
}

Test(llm_client, server_refuses_what_the_openai_client_would_not_send) {
    /* The shape checks themselves: each wrong request is refused with its reason. */
    start_server(NULL);
    const char *good[] = {"Content-Type: application/json", "Accept: application/json",
                          "Authorization: Bearer " KEY, "Expect:", NULL};
    const char *no_accept[] = {"Content-Type: application/json",
                               "Accept:", "Authorization: Bearer " KEY, "Expect:", NULL};
    const char *ok = "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}";
    struct {
        const char *body;
        const char *const *headers;
        const char *reason;
    } cases[] = {
        {ok, no_accept, "missing headers: accept"},
        {"{\"model\": \"m\"}", good, "messages must be a non-empty list"},
        {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
         "\"temprature\": 1}",
         good, "unknown body keys: temprature"},
        {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"text\": \"x\"}]}", good,
         "each message must be {role, content}"},
        {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
         "\"seed\": 1.5}",
         good, "seed must be an integer"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        llm_stats_buf answer = {0};
        cr_assert_eq(post(cases[k].body, cases[k].headers, &answer), 400, "case %zu: %s", k,
                     answer.data);
        cr_assert_not_null(strstr(answer.data, cases[k].reason), "case %zu: %s", k, answer.data);
        free(answer.data);
    }
    llm_stats_buf answer = {0};
    cr_assert_eq(post(ok, good, &answer), 200, "%s", answer.data);
    free(answer.data);
    cr_assert_eq(stat_of("bad_requests"), 5);
    cr_assert_eq(stat_of("total"), 6);
}

Test(llm_client, no_key_no_authorization_header) {
    start_server((const char *[]){"--api-key", "", NULL}); /* "" : not checked */
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_options o = options(1);
    o.api_key = NULL;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_EFAILED, "the server wants a key: %s", calls[0].error);
    cr_assert_not_null(strstr(calls[0].error, "HTTP 401"), "%s", calls[0].error);
    cr_assert_eq(calls[0].attempts, 1, "a 401 is not retried");
    bson_t *s = stats();
    char *json = bson_as_relaxed_extended_json(s, NULL);
    cr_assert_not_null(strstr(json, "\"authorization\" : false"), "%s", json);
    bson_free(json);
    bson_destroy(s);
    llm_calls_free(calls, 1);
    free(calls);
}

/* ---- retried ---- */

Test(llm_client, retry_after_is_honoured_then_answered) {
    /* Retry-After 0.3 s against a backoff of 1 ms: a retry sent before the server's word is
     * counted as early by the server. */
    start_server((const char *[]){"--retry-after", "0.3", NULL});
    char texts[2][128];
    llm_call *calls = make_calls(2, "[[mode:429:2]]", texts);
    llm_options o = options(2);
    llm_totals t;
    progress p = {0};
    run(&o, calls, 2, &t, &p);
    expect_answered(calls, 2);
    cr_assert_eq(calls[0].attempts, 3);
    cr_assert_eq(calls[1].attempts, 3);
    cr_assert_eq(stat_of("modes.429"), 4);
    cr_assert_eq(stat_of("modes.ok"), 2);
    cr_assert_eq(stat_of("early"), 0, "a retry came before Retry-After");
    cr_assert_eq(t.retries, 4);
    cr_assert_eq(t.requests, 6);
    llm_calls_free(calls, 2);
    free(calls);
}

Test(llm_client, persistent_500_fails_after_all_retries) {
    start_server(NULL);
    char texts[3][128];
    llm_call *calls = make_calls(3, "[[mode:500]]", texts);
    llm_options o = options(2);
    o.max_retries = 2;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 3, &t, &p);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(calls[i].status, LLM_EFAILED);
        cr_assert_null(calls[i].content);
        cr_assert_eq(calls[i].attempts, 3);
        cr_assert_str_eq(calls[i].error,
                         "HTTP 500: The server had an error while processing your request. "
                         "(after 3 attempts)");
    }
    cr_assert_eq(p.done, 3);
    cr_assert_eq(stat_of("total"), 9);
    cr_assert_eq(t.failed, 3);
    cr_assert_eq(t.retries, 6);
    llm_calls_free(calls, 3);
    free(calls);
}

Test(llm_client, client_error_is_not_retried) {
    start_server(NULL);
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_options o = options(1);
    o.temperature = 5; /* the server's 400: temperature must be in [0, 2] */
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_EFAILED);
    cr_assert_str_eq(calls[0].error,
                     "HTTP 400: temperature must be a number in [0, 2] (after 1 attempt)");
    cr_assert_eq(stat_of("total"), 1);
    llm_calls_free(calls, 1);
    free(calls);
}

/* A transient failure mode: once then answered, and always then failed with why. */
static void transient_mode(const char *mode, const char *why) {
    start_server(NULL);
    char once[64], always[64];
    snprintf(once, sizeof(once), "[[mode:%s:1]]", mode);
    snprintf(always, sizeof(always), "[[mode:%s]]", mode);
    char texts[2][128];
    llm_call *calls = make_calls(1, once, texts);
    llm_options o = options(1);
    o.max_retries = 2;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    expect_answered(calls, 1);
    cr_assert_eq(calls[0].attempts, 2);
    cr_assert_eq(stat_of("total"), 2);
    llm_calls_free(calls, 1);
    free(calls);
    calls = make_calls(1, always, texts);
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_EFAILED);
    cr_assert_eq(calls[0].attempts, 3);
    cr_assert_not_null(strstr(calls[0].error, why), "%s", calls[0].error);
    cr_assert_not_null(strstr(calls[0].error, "(after 3 attempts)"), "%s", calls[0].error);
    cr_assert_eq(stat_of("total"), 5);
    llm_calls_free(calls, 1);
    free(calls);
}

Test(llm_client, malformed_envelope_retried) { transient_mode("malformed", "malformed response"); }
Test(llm_client, envelope_without_content_retried) {
    transient_mode("no_content", "no choices[0].message.content");
}
Test(llm_client, connection_closed_mid_answer_retried) { transient_mode("close", "ransfer"); }
Test(llm_client, connection_hung_up_retried) {
    transient_mode("hangup", "Server returned nothing");
}
Test(llm_client, status_503_retried) { transient_mode("503", "HTTP 503: The engine"); }

Test(llm_client, timeout_retried_then_failed) {
    start_server(NULL);
    char texts[1][128];
    llm_call *calls = make_calls(1, "[[mode:slow:3000]]", texts);
    llm_options o = options(1);
    o.timeout_s = 0.2;
    o.max_retries = 1;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_EFAILED);
    cr_assert_str_eq(calls[0].error, "timed out after 0.2 s (after 2 attempts)");
    cr_assert_eq(stat_of("total"), 2);
    llm_calls_free(calls, 1);
    free(calls);
}

Test(llm_client, wrong_shape_content_is_the_steps_business) {
    start_server(NULL);
    char texts[1][128];
    llm_call *calls = make_calls(1, "[[mode:wrong_shape]]", texts);
    llm_options o = options(1);
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, 0);
    cr_assert_str_eq(calls[0].content, "{\"question\": \"not the list asked for\", \"count\": 1}");
    cr_assert_eq(stat_of("total"), 1);
    llm_calls_free(calls, 1);
    free(calls);
}

/* ---- budgets ---- */

Test(llm_client, request_budget_stops_sending) {
    start_server(NULL);
    char texts[10][128];
    llm_call *calls = make_calls(10, NULL, texts);
    llm_options o = options(3);
    o.max_requests = 4;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 10, &t, &p);
    int ok = 0, budget = 0;
    for (int i = 0; i < 10; i++) {
        if (calls[i].status == 0)
            ok++;
        else {
            cr_assert_eq(calls[i].status, LLM_EBUDGET, "%s", calls[i].error);
            cr_assert_str_eq(calls[i].error, "not sent: the budget of 4 requests is spent");
            cr_assert_eq(calls[i].attempts, 0);
            budget++;
        }
    }
    cr_assert_eq(ok, 4);
    cr_assert_eq(budget, 6);
    cr_assert_eq(p.done, 10, "on_done for the calls the budget stopped too");
    cr_assert_eq(stat_of("total"), 4);
    cr_assert_eq(t.requests, 4);
    cr_assert_eq(t.failed, 6);
    llm_calls_free(calls, 10);
    free(calls);
}

Test(llm_client, request_budget_counts_retries) {
    /* Each call fails once, then is answered: 4 requests would do, the budget allows 3. Whatever
     * the order (a retry does not hold back a call not tried yet), one call is answered at its
     * second request and the other stopped after its first. */
    start_server(NULL);
    char texts[2][128];
    llm_call *calls = make_calls(2, "[[mode:500:1]]", texts);
    llm_options o = options(1);
    o.max_requests = 3;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 2, &t, &p);
    int ok = calls[0].status == 0 ? 0 : 1, stopped = 1 - ok;
    cr_assert_eq(calls[ok].status, 0, "%s", calls[ok].error);
    cr_assert_eq(calls[ok].attempts, 2);
    cr_assert_eq(calls[stopped].status, LLM_EBUDGET);
    cr_assert_eq(calls[stopped].attempts, 1);
    cr_assert_str_eq(calls[stopped].error,
                     "not sent: the budget of 3 requests is spent (last attempt: HTTP 500: The "
                     "server had an error while processing your request.)");
    cr_assert_eq(stat_of("total"), 3);
    cr_assert_eq(t.requests, 3);
    cr_assert_eq(t.retries, 2);
    llm_calls_free(calls, 2);
    free(calls);
}

Test(llm_client, token_budget_stops_sending) {
    start_server(NULL);
    char texts[5][128];
    llm_call *calls = make_calls(5, NULL, texts);
    llm_options o = options(1);
    o.max_tokens_total = 1; /* spent by the first answer */
    llm_totals t;
    progress p = {0};
    run(&o, calls, 5, &t, &p);
    cr_assert_eq(calls[0].status, 0);
    for (int i = 1; i < 5; i++) {
        cr_assert_eq(calls[i].status, LLM_EBUDGET);
        cr_assert_str_eq(calls[i].error, "not sent: the budget of 1 tokens is spent");
    }
    cr_assert_eq(stat_of("total"), 1);
    llm_calls_free(calls, 5);
    free(calls);
}

/* ---- the cache ---- */

static int count_files(const char *path, const char *needle) {
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        if (needle) {
            char file[512], text[8192];
            snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
            FILE *f = fopen(file, "r");
            cr_assert_not_null(f);
            size_t len = fread(text, 1, sizeof(text) - 1, f);
            text[len] = '\0';
            fclose(f);
            cr_assert_null(strstr(text, needle), "%s holds %s", file, needle);
        }
    }
    closedir(d);
    return n;
}

Test(llm_client, cached_answers_send_nothing) {
    start_server(NULL);
    char cache[128];
    snprintf(cache, sizeof(cache), "%s/cache/llm", dir);
    char texts[6][128];
    llm_call *first = make_calls(6, NULL, texts);
    llm_options o = options(4);
    o.cache_dir = cache;
    llm_totals t;
    progress p = {.cache_dir = cache, .o = &o, .calls = first, .cached_before_done = 1};
    run(&o, first, 6, &t, &p);
    expect_answered(first, 6);
    cr_assert(p.cached_before_done, "a call's file is written before on_done");
    cr_assert_eq(count_files(cache, KEY), 6);
    cr_assert_eq(stat_of("total"), 6);

    llm_call *again = make_calls(6, NULL, texts);
    progress q = {0};
    run(&o, again, 6, &t, &q);
    cr_assert_eq(stat_of("total"), 6, "a cached call sends no request");
    cr_assert_eq(t.cached, 6);
    cr_assert_eq(t.requests, 0);
    cr_assert_eq(q.done, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(again[i].status, 0);
        cr_assert(again[i].from_cache);
        cr_assert_eq(again[i].attempts, 0);
        cr_assert_str_eq(again[i].content, first[i].content);
        cr_assert_eq(again[i].prompt_tokens, first[i].prompt_tokens);
        cr_assert_eq(again[i].completion_tokens, first[i].completion_tokens);
    }
    /* Another seed is another request. */
    o.seed = 43;
    run(&o, again, 6, &t, &q);
    cr_assert_eq(stat_of("total"), 12);
    cr_assert_eq(t.cached, 0);
    llm_calls_free(first, 6);
    llm_calls_free(again, 6);
    free(first);
    free(again);
}

Test(llm_client, partial_cache_sends_only_the_missing) {
    start_server(NULL);
    char cache[128];
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    char texts[8][128];
    llm_call *calls = make_calls(8, NULL, texts);
    llm_options o = options(2);
    o.cache_dir = cache;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 8, &t, &p);
    cr_assert_eq(stat_of("total"), 8);
    /* Calls 2 and 5 never finished (their files gone), call 6's file torn: sent again. */
    int gone[] = {2, 5, 6};
    for (int k = 0; k < 3; k++) {
        char key[65], path[256];
        cr_assert_eq(llm_cache_key(&o, &calls[gone[k]], key), 0);
        snprintf(path, sizeof(path), "%s/%s.json", cache, key);
        if (k < 2)
            cr_assert_eq(unlink(path), 0);
        else
            cr_assert_eq(truncate(path, 10), 0);
    }
    run(&o, calls, 8, &t, &p);
    expect_answered(calls, 8);
    cr_assert_eq(stat_of("total"), 11);
    cr_assert_eq(t.cached, 5);
    cr_assert_eq(t.requests, 3);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(calls[i].from_cache, i != 2 && i != 5 && i != 6, "call %d", i);
    cr_assert_eq(count_files(cache, NULL), 8);
    llm_calls_free(calls, 8);
    free(calls);
}

Test(llm_client, failures_are_not_cached) {
    start_server(NULL);
    char cache[128];
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    char texts[2][128];
    llm_call *calls = make_calls(2, "[[mode:500]]", texts);
    llm_options o = options(2);
    o.max_retries = 0;
    o.cache_dir = cache;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 2, &t, &p);
    cr_assert_eq(count_files(cache, NULL), 0);
    run(&o, calls, 2, &t, &p);
    cr_assert_eq(stat_of("total"), 4, "a failed call is sent again by a rerun");
    llm_calls_free(calls, 2);
    free(calls);
}

/* ---- cancelled ---- */

Test(llm_client, cancel_between_calls) {
    start_server(NULL);
    char texts[6][128];
    llm_call *calls = make_calls(6, NULL, texts);
    llm_options o = options(1);
    llm_totals t;
    progress p = {.cancel_after = 2};
    run(&o, calls, 6, &t, &p);
    cr_assert_eq(calls[0].status, 0);
    cr_assert_eq(calls[1].status, 0);
    for (int i = 2; i < 6; i++) {
        cr_assert_eq(calls[i].status, LLM_ECANCELLED);
        cr_assert_null(calls[i].content);
        cr_assert_str_eq(calls[i].error, "cancelled before it was answered");
    }
    cr_assert_eq(p.done, 2, "no on_done for a cancelled call");
    cr_assert_eq(stat_of("total"), 2);
    cr_assert_eq(t.failed, 4);
    llm_calls_free(calls, 6);
    free(calls);
}

Test(llm_client, cancel_during_a_backoff) {
    /* Told to wait 60 s: cancelled() is still asked while waiting, and the run ends. */
    start_server((const char *[]){"--retry-after", "60", NULL});
    char texts[1][128];
    llm_call *calls = make_calls(1, "[[mode:429]]", texts);
    llm_options o = options(1);
    llm_totals t;
    progress p = {.cancel_after_polls = 5};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_ECANCELLED);
    cr_assert_eq(calls[0].attempts, 1);
    cr_assert_eq(stat_of("total"), 1);
    cr_assert_geq(p.polls, 5);
    llm_calls_free(calls, 1);
    free(calls);
}

/* ---- the key ---- */

Test(llm_client, key_never_in_errors_or_cache) {
    start_server(NULL);
    char cache[128];
    snprintf(cache, sizeof(cache), "%s/cache", dir);
    char texts[3][128], wrong_texts[1][128];
    llm_call *calls = make_calls(3, NULL, texts);
    llm_options o = options(2);
    o.cache_dir = cache;
    llm_totals t;
    progress p = {0};
    run(&o, calls, 3, &t, &p);
    expect_answered(calls, 3);
    cr_assert_eq(count_files(cache, KEY), 3);
    /* A server quoting the key it was sent (as the real one does for a wrong key). */
    llm_call *wrong = make_calls(1, "[[mode:401]]", wrong_texts);
    run(&o, wrong, 1, &t, &p);
    cr_assert_eq(wrong[0].status, LLM_EFAILED);
    cr_assert_null(strstr(wrong[0].error, KEY), "%s", wrong[0].error);
    cr_assert_null(strstr(wrong[0].error, "0123456789abcdef"), "%s", wrong[0].error);
    cr_assert_str_eq(wrong[0].error,
                     "HTTP 401: Incorrect API key provided: Bearer *** (after 1 attempt)");
    /* Nor in a setup error. */
    char err[256] = "";
    llm_options bad = o;
    bad.endpoint = "ftp://" KEY "@example.com/v1";
    cr_assert_lt(llm_run(&bad, calls, 1, &t, NULL, NULL, NULL, err, sizeof(err)), 0);
    cr_assert_null(strstr(err, KEY), "%s", err);
    llm_calls_free(calls, 3);
    llm_calls_free(wrong, 1);
    free(calls);
    free(wrong);
}

/* ---- set-up errors ---- */

static int called;
static void count_done(void *arg, size_t i) {
    (void)arg;
    (void)i;
    called++;
}

Test(llm_client, setup_errors_call_nothing) {
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_options o = options(1);
    llm_totals t;
    char err[256] = "";
    const char *endpoints[] = {"", "ftp://example.com/v1", "not a url", NULL};
    const char *want[] = {"no endpoint", "not an http(s) URL", "not an http(s) URL"};
    for (int k = 0; endpoints[k]; k++) {
        o.endpoint = endpoints[k];
        err[0] = '\0';
        cr_assert_lt(llm_run(&o, calls, 1, &t, count_done, NULL, NULL, err, sizeof(err)), 0);
        cr_assert_not_null(strstr(err, want[k]), "%s: %s", endpoints[k], err);
    }
    o.endpoint = "http://127.0.0.1:9/v1";
    o.concurrency = 0;
    cr_assert_lt(llm_run(&o, calls, 1, &t, count_done, NULL, NULL, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "concurrency"), "%s", err);
    o.concurrency = 1;
    o.model = "";
    cr_assert_lt(llm_run(&o, calls, 1, &t, count_done, NULL, NULL, err, sizeof(err)), 0);
    cr_assert_str_eq(err, "no model named");
    o.model = "test-model";
    const char *schemas[] = {"{\"type\": \"object\"", "[1, 2]", "{\"type\": \"object\"}", NULL};
    const char *names[] = {"judgement", "judgement", "no spaces allowed"};
    const char *why[] = {"not a JSON object", "not a JSON object", "needs a name"};
    for (int k = 0; schemas[k]; k++) {
        o.json_schema = schemas[k];
        o.json_schema_name = names[k];
        cr_assert_lt(llm_run(&o, calls, 1, &t, count_done, NULL, NULL, err, sizeof(err)), 0);
        cr_assert_not_null(strstr(err, why[k]), "%s: %s", schemas[k], err);
    }
    cr_assert_eq(called, 0);
    free(calls);
}

/* A JSON schema is sent as response_format json_schema (strict, named), in the cache key. */
Test(llm_client, json_schema_sent_and_keyed) {
    start_server(NULL);
    char texts[2][128];
    llm_call *calls = make_calls(2, NULL, texts);
    llm_options o = options(2);
    o.json_object = 1; /* the schema wins */
    o.json_schema = "{\"type\": \"object\", \"properties\": {\"items\": {\"type\": \"array\"}}}";
    o.json_schema_name = "items_list";
    llm_totals t;
    char err[256] = "";
    cr_assert_eq(llm_run(&o, calls, 2, &t, NULL, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(calls[0].status, 0, "%s", calls[0].error);
    cr_assert_eq(stat_of("formats.json_schema"), 2);
    cr_assert_eq(stat_of("bad_requests"), 0);
    char with[65], without[65];
    cr_assert_eq(llm_cache_key(&o, &calls[0], with), 0);
    o.json_schema = NULL;
    cr_assert_eq(llm_cache_key(&o, &calls[0], without), 0);
    cr_assert_str_neq(with, without);
    llm_calls_free(calls, 2);
    free(calls);
}

Test(llm_client, nothing_to_do) {
    llm_options o = options(4);
    o.endpoint = "http://127.0.0.1:9/v1";
    llm_totals t;
    char err[256] = "";
    cr_assert_eq(llm_run(&o, NULL, 0, &t, NULL, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(t.requests, 0);
}

Test(llm_client, connection_refused_fails_after_retries) {
    llm_options o = options(1);
    o.endpoint = "http://127.0.0.1:9/v1"; /* discard: nothing listens */
    o.max_retries = 1;
    char texts[1][128];
    llm_call *calls = make_calls(1, NULL, texts);
    llm_totals t;
    progress p = {0};
    run(&o, calls, 1, &t, &p);
    cr_assert_eq(calls[0].status, LLM_EFAILED);
    cr_assert_eq(calls[0].attempts, 2);
    cr_assert_not_null(strstr(calls[0].error, "(after 2 attempts)"), "%s", calls[0].error);
    free(calls);
}
