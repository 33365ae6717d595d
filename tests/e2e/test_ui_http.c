/* test_ui_http.c - the HTTP server of sluice ui, on the real binary over an
 * empty store: persistent connections and pipelining, a slow client cut
 * off while others are served, the connection cap, the size limits, and
 * SIGTERM with connections open. */
#include <poll.h>

#include "raw_http.h"
#include "ui_proc.h"

static void teardown(void) {
    stop_ui();
    test_dir_teardown();
}

TestSuite(ui_http, .init = test_dir_setup, .fini = teardown, .timeout = 120);

static char out[1 << 16];

/* One answer framed by its Content-Length, read from fd into out; returns
 * its status (0: the server closed first). */
static int read_answer(int fd) {
    if (!read_until(fd, out, sizeof(out), "\r\n\r\n"))
        return 0;
    const char *cl = strstr(out, "Content-Length: ");
    cr_assert_not_null(cl, "no Content-Length in %s", out);
    size_t want = (size_t)(strstr(out, "\r\n\r\n") + 4 - out) + strtoul(cl + 16, NULL, 10);
    size_t have = strlen(out);
    cr_assert_leq(have, want, "more than one answer: the client sent one request: %s", out);
    while (have < want) {
        ssize_t k = recv(fd, out + have, want - have, 0);
        cr_assert_gt(k, 0, "the answer was cut short: %s", out);
        have += (size_t)k;
    }
    out[have] = 0;
    return status_of(out);
}

/* Whether the server closed fd: EOF (or a reset) within 30 s. */
static int closed_by_server(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b[4096];
    while (poll(&p, 1, 30000) == 1) {
        ssize_t k = recv(fd, b, sizeof(b), 0);
        if (k <= 0)
            return 1;
    }
    return 0;
}

static int occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(ui_http, many_requests_on_one_connection_and_pipelined) {
    start_ui_opts(NULL);
    int fd = connect_to(ui_port);
    for (int i = 0; i < 100; i++) {
        const char *req = i % 2 ? "GET /api/runs HTTP/1.1\r\nHost: t\r\n\r\n"
                                : "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        send_all(fd, req, strlen(req));
        cr_assert_eq(read_answer(fd), 200, "request %d on one connection: %s", i, out);
        cr_assert_not_null(strstr(out, "Connection: keep-alive"), "%s", out);
    }
    /* ten in one write, answered in order; the last asks to close */
    char batch[4096] = "";
    for (int i = 0; i < 9; i++)
        strcat(batch, i % 3 == 2 ? "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                                 : "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    strcat(batch, "GET /api/runs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    send_all(fd, batch, strlen(batch));
    static char all[1 << 16];
    read_all(fd, all, sizeof(all)); /* to the server's close */
    close(fd);
    cr_expect_eq(occurrences(all, "HTTP/1.1 200 OK"), 7, "%s", all);
    cr_expect_eq(occurrences(all, "HTTP/1.1 404"), 3, "%s", all);
    cr_expect_eq(occurrences(all, "Connection: close"), 1, "%s", all);
    const char *third = strstr(all, "HTTP/1.1 404"), *last = strstr(all, "Connection: close");
    cr_expect(third && last && third < last && strstr(last, "\"runs\""),
              "answers in the requests' order: %s", all);
    cr_expect_null(strstr(all, "<html"), "HEAD answers carry no body: %s", all);
    /* HTTP/1.0 closes unless it asks to keep the connection */
    fd = connect_to(ui_port);
    send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    cr_expect_eq(read_answer(fd), 200);
    cr_expect_not_null(strstr(out, "Connection: close"), "%s", out);
    cr_expect(closed_by_server(fd));
    close(fd);
    fd = connect_to(ui_port);
    const char *ka = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        send_all(fd, ka, strlen(ka));
        cr_expect_eq(read_answer(fd), 200, "%s", out);
    }
    close(fd);
}

/* A client pipelining more answers (7 MB) than the kernel's buffers and the
 * server's queue (1 MiB) hold while reading slowly (a small receive
 * buffer): the server stops reading it and goes on as it reads, and every
 * answer comes, in order. */
Test(ui_http, a_pipelining_client_that_reads_slowly_gets_every_answer) {
    start_ui_opts(NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ui_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    static char batch[32768];
    batch[0] = 0;
    for (int i = 0; i < 399; i++)
        strcat(batch, "GET /assets/app.js HTTP/1.1\r\nHost: t\r\n\r\n");
    strcat(batch, "GET /api/runs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    send_all(fd, batch, strlen(batch));
    static char all[12 << 20];
    size_t n = read_all(fd, all, sizeof(all));
    close(fd);
    cr_expect_lt(n, sizeof(all) - 1);
    cr_expect_eq(occurrences(all, "HTTP/1.1 200 OK"), 400);
    cr_expect_not_null(strstr(all, "\"runs\""), "the last answer is the last request's");
}

/* A client sending its head a header at a time is cut off at the header
 * deadline, however it spaces its bytes; another is served meanwhile. */
Test(ui_http, a_slow_client_is_cut_off_while_others_are_served) {
    start_ui_opts((const char *[]){"--header-timeout", "1", "--idle-timeout", "1", "--body-timeout",
                                   "1", NULL});
    int slow = connect_to(ui_port), idle = connect_to(ui_port), body = connect_to(ui_port);
    const char *part = "POST /api/runs/x/cancel HTTP/1.1\r\nContent-Length: 10\r\n\r\n{";
    send_all(body, part, strlen(part));
    send_all(slow, "GET / HTTP/1.1\r\n", 16);
    int cut = 0, served = 0;
    for (int i = 0; i < 300 && !cut; i++) {
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
        if (send(slow, "X-a: b\r\n", 8, MSG_NOSIGNAL) != 8) {
            cut = 1;
            break;
        }
        struct pollfd p = {.fd = slow, .events = POLLIN};
        char b[64];
        if (poll(&p, 1, 0) == 1 && recv(slow, b, sizeof(b), MSG_DONTWAIT) <= 0)
            cut = 1;
        exchange(ui_port, "GET /api/runs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                 sizeof(out));
        cr_assert_eq(status_of(out), 200, "a normal client beside the slow one: %s", out);
        served++;
    }
    cr_expect(cut, "the slow client is cut off");
    cr_expect_gt(served, 0);
    cr_expect(closed_by_server(idle), "a connection that sends nothing is closed at the idle one");
    cr_expect(closed_by_server(body), "a body that does not come is cut off at the body deadline");
    close(slow);
    close(idle);
    close(body);
}

Test(ui_http, connections_over_the_cap_are_answered_503) {
    start_ui_opts((const char *[]){"--max-connections", "2", NULL});
    int a = connect_to(ui_port), b = connect_to(ui_port);
    const char *req = "GET /api/runs HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(a, req, strlen(req));
    cr_assert_eq(read_answer(a), 200, "%s", out);
    send_all(b, req, strlen(req));
    cr_assert_eq(read_answer(b), 200, "%s", out);
    /* both kept alive: a third is one too many */
    int c = connect_to(ui_port);
    send_all(c, req, strlen(req));
    cr_expect_eq(read_answer(c), 503, "%s", out);
    cr_expect_not_null(strstr(out, "too many connections"), "%s", out);
    cr_expect(closed_by_server(c));
    close(c);
    /* a's slot freed (once the server sees its close), a new one is served */
    close(a);
    int status = 0;
    for (int i = 0; i < 200 && status != 200; i++) {
        exchange(ui_port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
                 sizeof(out));
        status = status_of(out);
        if (status != 200)
            nanosleep(&(struct timespec){0, 20000000L}, NULL);
    }
    cr_expect_eq(status, 200, "%s", out);
    send_all(b, req, strlen(req));
    cr_expect_eq(read_answer(b), 200, "b is still served: %s", out);
    close(b);
}

/* The answer to req on a fresh connection, which the server then closes. */
static int refused(const char *req) {
    int fd = connect_to(ui_port);
    send_all(fd, req, strlen(req));
    read_all(fd, out, sizeof(out));
    close(fd);
    return status_of(out);
}

Test(ui_http, requests_over_the_limits_are_refused) {
    start_ui_opts((const char *[]){"--max-header-bytes", "1024", "--max-body-bytes", "100", NULL});
    char big[4096];
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %01500d\r\n\r\n", 0);
    cr_expect_eq(refused(big), 431, "%s", out);
    /* the head never ends: refused once it is over the limit */
    snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: %03000d", 0);
    cr_expect_eq(refused(big), 431, "%s", out);
    cr_expect_eq(refused("POST /api/runs/x/cancel HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"), 413,
                 "%s", out);
    cr_expect_eq(refused("POST /api/runs/x/cancel HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "0\r\n\r\n"),
                 411, "%s", out);
    cr_expect_eq(refused("POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
                 400, "%s", out);
    cr_expect_eq(refused("POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\nab"), 400, "%s", out);
    cr_expect_eq(refused("NOT HTTP\r\n\r\n"), 400, "%s", out);
    /* within the limits, a body is read and the connection kept */
    int fd = connect_to(ui_port);
    const char *post = "POST /api/runs/x/cancel HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    send_all(fd, post, strlen(post));
    cr_expect_eq(read_answer(fd), 403, "read-only: %s", out);
    send_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
    cr_expect_eq(read_answer(fd), 200, "%s", out);
    close(fd);
}

/* SIGTERM with a kept-alive connection and one half-sent request open:
 * both are closed and sluice ui ends with 0 (stop_ui checks). */
Test(ui_http, sigterm_closes_open_connections) {
    start_ui_opts(NULL);
    int kept = connect_to(ui_port), half = connect_to(ui_port);
    send_all(kept, "GET / HTTP/1.1\r\n\r\n", 18);
    cr_assert_eq(read_answer(kept), 200, "%s", out);
    send_all(half, "GET / HTTP/1.1\r\n", 16);
    stop_ui();
    cr_expect(closed_by_server(kept));
    cr_expect(closed_by_server(half));
    close(kept);
    close(half);
}

Test(ui_http, bad_limits_are_refused) {
    result r = RUN(test_store_arg, "ui", "--max-connections", "0");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--max-connections takes a whole number from 1 to"), "%s", r.err);
    result_free(&r);
    r = RUN(test_store_arg, "ui", "--header-timeout", "soon");
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "--header-timeout takes seconds from 0 to 86400, not 'soon'"), "%s",
              r.err);
    result_free(&r);
    r = RUN(test_store_arg, "ui", "--max-header-bytes", "10");
    cr_expect_eq(r.status, 2, "%s", r.err);
    result_free(&r);
}
