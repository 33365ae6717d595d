#define _DEFAULT_SOURCE /* timegm */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "cron.h"

/* Seconds since the epoch of a UTC time: the expectations below are
 * written in UTC, from the zones' published DST dates. */
static int64_t utc(int y, int mo, int d, int h, int mi) {
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static cron_expr parse_ok(const char *text) {
    cron_expr c;
    char why[256] = "";
    cr_assert_eq(cron_parse(text, &c, why, sizeof(why)), 0, "'%s': %s", text, why);
    return c;
}

static void parse_bad(const char *text, const char *want) {
    cron_expr c;
    char why[256] = "";
    cr_assert_eq(cron_parse(text, &c, why, sizeof(why)), -EINVAL, "'%s' was accepted", text);
    cr_expect(strstr(why, want), "'%s': '%s' lacks '%s'", text, why, want);
}

static int64_t next_of(const char *expr, const char *tz, int64_t after) {
    cron_expr c = parse_ok(expr);
    int64_t t = 0;
    cr_assert_eq(cron_next(&c, tz, after, &t), 0, "'%s' never fires", expr);
    return t;
}

static void expect_next(const char *expr, const char *tz, int64_t after, int64_t want) {
    int64_t got = next_of(expr, tz, after);
    char g[64], w[64];
    cron_format_time(got, tz, g, sizeof(g));
    cron_format_time(want, tz, w, sizeof(w));
    cr_expect_eq(got, want, "'%s' in %s: got %s, want %s", expr, tz, g, w);
}

Test(cron, fields_lists_ranges_steps_and_names) {
    cron_expr c = parse_ok("*/15 9-17/4 1,15 jan,JUL mon-fri");
    cr_expect_eq(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    cr_expect_eq(c.hours, (1u << 9) | (1u << 13) | (1u << 17));
    cr_expect_eq(c.days, (1u << 1) | (1u << 15));
    cr_expect_eq(c.months, (1u << 1) | (1u << 7));
    cr_expect_eq(c.weekdays, 0x3eu);
    cr_expect(!c.dom_star && !c.dow_star);
    c = parse_ok("5/20 * * * 7");
    cr_expect_eq(c.minutes, (1ull << 5) | (1ull << 25) | (1ull << 45),
                 "N/S runs from N to the end");
    cr_expect_eq(c.weekdays, 1u, "7 is Sunday");
    cr_expect(c.dom_star && !c.dow_star);
    cron_expr d = parse_ok("@daily"), e = parse_ok("0 0 * * *");
    cr_expect_eq(memcmp(&d, &e, sizeof(d)), 0);
}

Test(cron, bad_expressions_are_located) {
    parse_bad("61 * * * *", "column 1: minute 61 is out of its range 0-59");
    parse_bad("0 24 * * *", "column 3: hour 24");
    parse_bad("* * * *", "expected 5 fields");
    parse_bad("* * * * * *", "column 11: more than 5 fields");
    parse_bad("*/0 * * * *", "column 3: minute: a step must be");
    parse_bad("0 0 5-1 * *", "column 5: day of month: the range ends before it begins");
    parse_bad("0 0 * foo *", "column 7: month: expected a number or a name");
    parse_bad("0 0 0 * *", "day of month 0");
    parse_bad("0 0 * * 1,", "a list ends with ','");
    parse_bad("0 0 * * 1x", "column 10: day of week: unexpected 'x'");
    parse_bad("@reboot", "@reboot is not supported");
    parse_bad("", "empty");
}

Test(cron, next_in_utc) {
    expect_next("*/15 * * * *", "UTC", utc(2026, 5, 4, 10, 7), utc(2026, 5, 4, 10, 15));
    expect_next("*/15 * * * *", "UTC", utc(2026, 5, 4, 10, 15), utc(2026, 5, 4, 10, 30));
    expect_next("0 0 1 * *", "UTC", utc(2026, 12, 31, 23, 59), utc(2027, 1, 1, 0, 0));
    expect_next("0 12 * * mon-fri", "UTC", utc(2026, 12, 4, 12, 0), utc(2026, 12, 7, 12, 0));
}

Test(cron, february_29_waits_for_a_leap_year) {
    expect_next("0 0 29 2 *", "UTC", utc(2026, 1, 1, 0, 0), utc(2028, 2, 29, 0, 0));
    cron_expr c = parse_ok("0 0 30 2 *");
    int64_t t;
    cr_expect_eq(cron_next(&c, "UTC", utc(2026, 1, 1, 0, 0), &t), -ENOENT);
}

Test(cron, vixie_rule_day_of_month_or_day_of_week) {
    /* Both restricted: the 1st or a Monday. 2026-02-27 is a Friday. */
    expect_next("0 0 1 * 1", "UTC", utc(2026, 2, 27, 0, 0), utc(2026, 3, 1, 0, 0));
    expect_next("0 0 1 * 1", "UTC", utc(2026, 3, 1, 0, 0), utc(2026, 3, 2, 0, 0));
    /* Day of month beginning with '*': both must match, so Mondays only. */
    expect_next("0 0 */1 * 1", "UTC", utc(2026, 2, 27, 0, 0), utc(2026, 3, 2, 0, 0));
    expect_next("0 0 1 * *", "UTC", utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0));
}

Test(cron, berlin_spring_forward_fires_after_the_gap) {
    /* 2026-03-29 02:00 CET became 03:00 CEST (01:00 UTC): 02:30 does not exist. */
    expect_next("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0));
    expect_next("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30));
    /* Every minute of the gap collapses into one fire at 03:00, then 03:01. */
    expect_next("* * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 1, 0));
    expect_next("* * * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 1));
}

Test(cron, berlin_fall_back_fires_once) {
    /* 2026-10-25 03:00 CEST became 02:00 CET (01:00 UTC): 02:30 comes twice. */
    expect_next("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 0, 30));
    expect_next("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30));
    /* From inside the second pass the repeated time is not fired again. */
    expect_next("45 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10), utc(2026, 10, 26, 1, 45));
}

Test(cron, new_york_both_transitions) {
    /* 2026-03-08 02:00 EST became 03:00 EDT (07:00 UTC). */
    expect_next("0 2 * * *", "America/New_York", utc(2026, 3, 7, 12, 0), utc(2026, 3, 8, 7, 0));
    expect_next("0 2 * * *", "America/New_York", utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 0));
    /* 2026-11-01 02:00 EDT became 01:00 EST (06:00 UTC): 01:xx twice. */
    expect_next("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0),
                utc(2026, 11, 1, 5, 30));
    expect_next("30 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30));
    /* Half-hourly: 01:30 EDT, then 02:00 EST; the second 01:00 and 01:30 are skipped. */
    expect_next("*/30 * * * *", "America/New_York", utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 7, 0));
}

Test(cron, zones_are_checked) {
    cr_expect(cron_zone_valid("Europe/Berlin"));
    cr_expect(cron_zone_valid("UTC"));
    cr_expect(!cron_zone_valid("Europe/Nowhere"));
    cr_expect(!cron_zone_valid("../etc/passwd"));
    cr_expect(!cron_zone_valid(""));
}

Test(cron, one_off_times) {
    int64_t t;
    char why[256];
    cr_assert_eq(cron_parse_time("2026-12-07T10:00Z", NULL, &t, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(t, utc(2026, 12, 7, 10, 0));
    cr_assert_eq(cron_parse_time("2026-12-07 10:00:30+01:00", NULL, &t, why, sizeof(why)), 0);
    cr_expect_eq(t, utc(2026, 12, 7, 9, 0) + 30);
    cr_assert_eq(cron_parse_time("2026-07-01 12:00", "Europe/Berlin", &t, why, sizeof(why)), 0);
    cr_expect_eq(t, utc(2026, 7, 1, 10, 0));
    /* In the spring gap: the end of the gap. */
    cr_assert_eq(cron_parse_time("2026-03-29 02:30", "Europe/Berlin", &t, why, sizeof(why)), 0);
    cr_expect_eq(t, utc(2026, 3, 29, 1, 0));
    cr_assert_eq(cron_parse_time("@1800000000", NULL, &t, why, sizeof(why)), 0);
    cr_expect_eq(t, 1800000000);
    cr_expect_eq(cron_parse_time("2026-02-30 00:00", "UTC", &t, why, sizeof(why)), -EINVAL);
    cr_expect(strstr(why, "no such date"), "%s", why);
    cr_expect_eq(cron_parse_time("2026-13-01 00:00", "UTC", &t, why, sizeof(why)), -EINVAL);
    cr_expect_eq(cron_parse_time("tomorrow", "UTC", &t, why, sizeof(why)), -EINVAL);
    cr_expect(strstr(why, "expected YYYY-MM-DD"), "%s", why);
    cr_expect_eq(cron_parse_time("2026-12-07 10:00+1", "UTC", &t, why, sizeof(why)), -EINVAL);
    cr_expect(strstr(why, "column 17"), "%s", why);
}
