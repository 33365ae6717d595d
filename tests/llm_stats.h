/* llm_stats.h - the counts of tests/llm_server.py (GET /stats) for the
 * suites that test a client against it: what was sent is counted by the
 * server, never timed. */
#ifndef SLUICE_TESTS_LLM_STATS_H
#define SLUICE_TESTS_LLM_STATS_H

#include <bson/bson.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct llm_stats_buf {
    char *data;
    size_t len;
} llm_stats_buf;

static size_t llm_stats_collect(char *data, size_t size, size_t n, void *ud) {
    llm_stats_buf *b = ud;
    char *grown = realloc(b->data, b->len + size * n + 1);
    cr_assert_not_null(grown);
    memcpy(grown + b->len, data, size * n);
    b->data = grown;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* GET /stats of the server whose endpoint is "http://127.0.0.1:PORT/v1", parsed; the caller
 * bson_destroy()s it. */
static bson_t *llm_server_stats(const char *endpoint) {
    char url[160];
    snprintf(url, sizeof(url), "%.*s/stats", (int)(strlen(endpoint) - 3), endpoint);
    CURL *e = curl_easy_init();
    cr_assert_not_null(e);
    llm_stats_buf b = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, llm_stats_collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    cr_assert_eq(curl_easy_perform(e), CURLE_OK);
    curl_easy_cleanup(e);
    bson_t *doc = bson_new_from_json((const uint8_t *)b.data, (ssize_t)b.len, NULL);
    cr_assert_not_null(doc, "GET /stats: %s", b.data);
    free(b.data);
    return doc;
}

/* The number at path ("total", "modes.429") in the server's counts; 0 when absent. */
static long llm_server_stat(const char *endpoint, const char *path) {
    bson_t *doc = llm_server_stats(endpoint);
    bson_iter_t it, d;
    long v = 0;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &d))
        v = (long)bson_iter_as_int64(&d);
    bson_destroy(doc);
    return v;
}

#endif
