/* test_serve_hooks.c - POST /hooks/NAME of `sluice serve` end to end: a
 * delivery signed as GitHub signs one (X-Hub-Signature-256, HMAC-SHA256
 * of the body) fires the schedule's pipeline through the real `sluice
 * schedule fire`, and the run in the store records the hook as its cause;
 * a bad or missing signature is 401, an unknown schedule 404, a delivery
 * sent again runs nothing, and without --hooks-secret-file there is no
 * /hooks at all. Also the chunked request bodies the server decodes. */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "serve_fixture.h"

TestSuite(serve_hooks, .init = test_dir_setup, .fini = test_dir_teardown, .timeout = 120);

static const char secret[] = "hook-secret-0123456789";

/* The store's pipeline and schedule 'build', and the secret's file. */
static void make_schedule(char *secret_path, size_t size) {
    char *file = strdup(write_test_file(test_dir, "p.yaml",
                                        "pipeline: hooked\n"
                                        "steps:\n"
                                        "  a: {uses: shell, with: {run: 'echo built > out', "
                                        "outputs: {o: out}}}\n"));
    expect_success(RUN(test_store_arg, "schedule", "add", "build", file, "--every", "1d"));
    free(file);
    /* a trailing line break, as echo leaves one: not part of the secret */
    snprintf(secret_path, size, "%s",
             write_test_file(test_dir, "secret", "hook-secret-0123456789\n"));
}

/* POSTs body to /hooks/name, signed with key (NULL: unsigned), with
 * delivery id (NULL: none); the status, the answer in out. */
static int deliver(int port, const char *name, const char *body, const char *key,
                   const char *delivery, char *out, size_t size) {
    char sig[128] = "", del[160] = "", req[4096];
    if (key) {
        unsigned char mac[32];
        unsigned int n = 0;
        cr_assert_not_null(HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body,
                                strlen(body), mac, &n));
        int at = snprintf(sig, sizeof(sig), "X-Hub-Signature-256: sha256=");
        for (unsigned i = 0; i < n; i++)
            at += snprintf(sig + at, sizeof(sig) - (size_t)at, "%02x", mac[i]);
        snprintf(sig + at, sizeof(sig) - (size_t)at, "\r\n");
    }
    if (delivery)
        snprintf(del, sizeof(del), "X-GitHub-Delivery: %s\r\n", delivery);
    snprintf(req, sizeof(req),
             "POST /hooks/%s HTTP/1.1\r\nHost: t\r\nX-GitHub-Event: push\r\n%s%s"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             name, sig, del, strlen(body), body);
    exchange(port, req, out, size);
    return status_of(out);
}

/* The runs of the store whose cause names delivery, and how many of them
 * are done. */
static size_t runs_of(const char *delivery, size_t *done) {
    result r = RUN(test_store_arg, "runs", "list", "--json");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char needle[200];
    snprintf(needle, sizeof(needle), "\"delivery\" : \"%s\"", delivery);
    size_t n = 0;
    *done = 0;
    /* one run a line of the list's array: split on "{ \"run\"" */
    for (const char *at = strstr(r.out, "{ \"run\""); at;) {
        const char *next = strstr(at + 1, "{ \"run\"");
        size_t len = next ? (size_t)(next - at) : strlen(at);
        char *one = strndup(at, len);
        if (strstr(one, needle)) {
            n++;
            cr_expect(strstr(one, "\"trigger\" : \"hook\""), "%s", one);
            cr_expect(strstr(one, "\"schedule\" : \"build\""), "%s", one);
            *done += strstr(one, "\"status\" : \"done\"") != NULL;
        }
        free(one);
        at = next;
    }
    result_free(&r);
    return n;
}

/* Waits (a bounded while) for delivery's run to be done. */
static void wait_run_done(const char *delivery) {
    size_t done = 0;
    for (int i = 0; i < 1500 && (runs_of(delivery, &done), done == 0); i++)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_assert_eq(done, 1, "delivery %s's run never finished", delivery);
}

Test(serve_hooks, a_signed_delivery_runs_the_schedule_once) {
    make_model_of_context(64);
    char secret_path[200], out[8192];
    make_schedule(secret_path, sizeof(secret_path));
    int port;
    const char *args[] = {"--hooks-secret-file", secret_path, NULL};
    pid_t pid = start_serve(args, 1, &port);
    const char *body = "{\"ref\": \"refs/heads/main\", \"after\": \"abc\"}";

    cr_expect_eq(deliver(port, "build", body, secret, "d-1", out, sizeof(out)), 202, "%s", out);
    cr_expect(strstr(out, "\"delivery\" : \"d-1\""), "%s", out);
    cr_expect(strstr(out, "\"pid\""), "%s", out);
    wait_run_done("d-1");

    /* GitHub's redelivery of d-1: answered, run no second time */
    cr_expect_eq(deliver(port, "build", body, secret, "d-1", out, sizeof(out)), 200, "%s", out);
    cr_expect(strstr(out, "duplicate"), "%s", out);
    size_t done;
    cr_expect_eq(runs_of("d-1", &done), 1);

    /* a wrong key, no signature, a signature of another form */
    cr_expect_eq(deliver(port, "build", body, "not-the-secret", "d-2", out, sizeof(out)), 401, "%s",
                 out);
    cr_expect_eq(deliver(port, "build", body, NULL, "d-3", out, sizeof(out)), 401, "%s", out);
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /hooks/build HTTP/1.1\r\nHost: t\r\nX-Hub-Signature-256: sha1=00\r\n"
             "X-GitHub-Delivery: d-4\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    exchange(port, req, out, sizeof(out));
    cr_expect_eq(status_of(out), 401, "%s", out);
    /* signed, but no such schedule */
    cr_expect_eq(deliver(port, "nosuch", body, secret, "d-5", out, sizeof(out)), 404, "%s", out);
    cr_expect(strstr(out, "no schedule 'nosuch'"), "%s", out);
    /* GET is not a delivery */
    exchange(port, "GET /hooks/build HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
             sizeof(out));
    cr_expect_eq(status_of(out), 405, "%s", out);
    /* none of the refused ones ran */
    cr_expect_eq(runs_of("d-2", &done) + runs_of("d-3", &done) + runs_of("d-4", &done), 0);
    cr_expect_eq(metric(port, "sluice_serve_requests_total{route=\"/hooks\",status=\"401\"}"), 3);
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
    char *log = server_log();
    cr_expect(!strstr(log, secret), "the secret is never logged");
    free(log);
}

Test(serve_hooks, no_secret_no_hooks) {
    make_model_of_context(64);
    char secret_path[200], out[8192];
    make_schedule(secret_path, sizeof(secret_path));
    int port;
    pid_t pid = start_serve(NULL, 1, &port);
    cr_expect_eq(deliver(port, "build", "{}", secret, "d-1", out, sizeof(out)), 404, "%s", out);
    size_t done;
    cr_expect_eq(runs_of("d-1", &done), 0);
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
}

/* Chunked request bodies (Transfer-Encoding: chunked), decoded by
 * picohttpparser: in pieces across writes, with extensions and a trailer,
 * kept alive to a pipelined request; over the body limit 413, malformed
 * 400, framed twice 400, another coding 501, too slow 408. */
Test(serve_hooks, chunked_bodies) {
    make_model_of_context(64);
    int port;
    const char *args[] = {"--max-body-bytes", "300", "--body-timeout", "0.5", NULL};
    pid_t pid = start_serve(args, 1, &port);
    char out[16384];

    int fd = connect_to(port);
    const char *pieces[] = {
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\n\r\n",
        "12\r\n{\"prompt\": \"A pi",
        "pe\r\n1",
        "0;ext=1\r\nline is\", \"max_t\r\nf\r\nokens\": 2, \"tem\r\nd\r\nperature\": 0}\r\n",
        "0\r\nX-Trailer: t\r\n\r\n"
        "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        send_all(fd, pieces[i], strlen(pieces[i]));
        nanosleep(&(struct timespec){0, 5000000}, NULL); /* apart, most likely */
    }
    read_all(fd, out, sizeof(out));
    close(fd);
    cr_expect_eq(status_of(out), 200, "%s", out);
    cr_expect(strstr(out, "\"text_completion\""), "%s", out);
    const char *second = strstr(out + 1, "HTTP/1.1 ");
    cr_expect(second && status_of(second) == 200 && strstr(second, "\"ok\""),
              "the pipelined request after the chunked body: %s", out);

    /* 400 bytes in chunks of 100: over the 300 allowed */
    char big[1024] =
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; i++) {
        strcat(big, "64\r\n");
        size_t at = strlen(big);
        memset(big + at, 'x', 100);
        big[at + 100] = 0;
        strcat(big, "\r\n");
    }
    strcat(big, "0\r\n\r\n");
    exchange(port, big, out, sizeof(out));
    cr_expect_eq(status_of(out), 413, "%s", out);

    exchange(port,
             "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\n{}\r\n0\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    cr_expect(strstr(out, "malformed chunked body"), "%s", out);
    exchange(port,
             "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
             "Content-Length: 7\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 400, "%s", out);
    exchange(port,
             "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
             "0\r\n\r\n",
             out, sizeof(out));
    cr_expect_eq(status_of(out), 501, "%s", out);
    /* a chunk begun and never ended: cut off at the body's deadline */
    fd = connect_to(port);
    const char *slow =
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"";
    send_all(fd, slow, strlen(slow));
    read_all(fd, out, sizeof(out));
    close(fd);
    cr_expect_eq(status_of(out), 0, "a timeout closes without an answer: %s", out);
    cr_expect_eq(metric(port, "sluice_serve_requests_total{route=\"none\",status=\"408\"}"), 1);
    cr_expect_eq(stop_serve(pid), 0, "%s", server_log());
}
