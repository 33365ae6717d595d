/* raw_http.h - a raw HTTP/1.1 client for end-to-end tests of sluice serve:
 * requests written by hand on fresh loopback connections, so that a test
 * sees exactly what the server sends (and can send what no library
 * would). */
#ifndef SLUICE_TESTS_RAW_HTTP_H
#define SLUICE_TESTS_RAW_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <criterion/criterion.h>

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Whatever the server sends until it closes (or 60 s pass), into out. */
static size_t read_all(int fd, char *out, size_t size) {
    size_t n = 0;
    ssize_t k;
    while (n + 1 < size && (k = recv(fd, out + n, size - 1 - n, 0)) > 0)
        n += (size_t)k;
    out[n] = 0;
    return n;
}

/* Reads until needle has arrived (or the server closes); returns whether it did. */
static int read_until(int fd, char *out, size_t size, const char *needle) {
    size_t n = 0;
    ssize_t k;
    out[0] = 0;
    while (!strstr(out, needle) && n + 1 < size && (k = recv(fd, out + n, size - 1 - n, 0)) > 0)
        out[n += (size_t)k] = 0;
    return strstr(out, needle) != NULL;
}

static void send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t k = send(fd, data, len, MSG_NOSIGNAL);
        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        data += k, len -= (size_t)k;
    }
}

/* One request on a fresh connection (closed after), the whole answer in out. */
static void exchange(int port, const char *request, char *out, size_t size) {
    int fd = connect_to(port);
    send_all(fd, request, strlen(request));
    read_all(fd, out, size);
    close(fd);
}

static int status_of(const char *response) {
    int status = 0;
    sscanf(response, "HTTP/1.1 %d", &status);
    return status;
}

static int health(int port) {
    char out[4096];
    exchange(port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
             sizeof(out));
    return status_of(out);
}

static void post(char *req, size_t size, const char *path, const char *body) {
    snprintf(req, size,
             "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, strlen(body), body);
}

/* A metric's value in /metrics (-1 when absent). */
static double metric(int port, const char *series) {
    static char out[65536];
    exchange(port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", out,
             sizeof(out));
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *at = strstr(out, needle);
    return at ? strtod(at + strlen(needle), NULL) : -1;
}

#endif
