/* cron.c - cron expressions and local times in a zone (cron.h). */
#define _DEFAULT_SOURCE /* tm_gmtoff, timegm */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the parser ---- */

typedef struct field_spec {
    const char *what;
    int lo, hi;
    const char *const *names; /* 3-letter names for lo.., or NULL */
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_spec fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day of week", 0, 7, day_names}, /* 7 is Sunday too */
};

typedef struct parser {
    const char *text; /* the whole expression, for columns */
    char *why;
    size_t size;
} parser;

static int fail(parser *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(parser *ps, const char *at, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->why, ps->size, "column %d: %s", (int)(at - ps->text) + 1, msg);
    return -EINVAL;
}

/* A number or a name of field f at *s; advances *s. */
static int parse_value(parser *ps, const field_spec *f, const char **s, const char *end, int *v) {
    const char *p = *s;
    if (p < end && isdigit((unsigned char)*p)) {
        long n = 0;
        while (p < end && isdigit((unsigned char)*p) && n < 1000)
            n = n * 10 + (*p++ - '0');
        if (n < f->lo || n > f->hi)
            return fail(ps, *s, "%s %ld is out of its range %d-%d", f->what, n, f->lo, f->hi);
        *v = (int)n;
        *s = p;
        return 0;
    }
    if (f->names && end - p >= 3) {
        for (int i = 0; f->names[i]; i++)
            if (strncasecmp(p, f->names[i], 3) == 0 &&
                (end - p == 3 || !isalpha((unsigned char)p[3]))) {
                *v = i + (f->lo == 1 ? 1 : 0);
                *s = p + 3;
                return 0;
            }
    }
    return fail(ps, *s, "%s: expected a number%s, '*', a range or a list", f->what,
                f->names ? " or a name" : "");
}

/* One field, text[s..end), into *bits; *star when it begins with '*'. */
static int parse_field(parser *ps, int idx, const char *s, const char *end, uint64_t *bits,
                       int *star) {
    const field_spec *f = &fields[idx];
    *bits = 0;
    *star = *s == '*';
    while (s < end) {
        const char *item = s;
        int a, b, step = 1, rc;
        if (*s == '*') {
            a = f->lo;
            b = idx == 4 ? 6 : f->hi;
            s++;
        } else {
            if ((rc = parse_value(ps, f, &s, end, &a)))
                return rc;
            b = a;
            if (s < end && *s == '-') {
                s++;
                if ((rc = parse_value(ps, f, &s, end, &b)))
                    return rc;
                if (b < a)
                    return fail(ps, item, "%s: the range ends before it begins", f->what);
            } else if (s < end && *s == '/') {
                b = f->hi; /* "5/10": from 5 to the end, by 10 */
            }
        }
        if (s < end && *s == '/') {
            const char *at = ++s;
            long n = 0;
            while (s < end && isdigit((unsigned char)*s) && n < 1000)
                n = n * 10 + (*s++ - '0');
            if (s == at || n < 1 || n > f->hi)
                return fail(ps, at, "%s: a step must be a number from 1 to %d", f->what, f->hi);
            step = (int)n;
        }
        for (int v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << (idx == 4 && v == 7 ? 0 : v);
        if (s < end && *s != ',')
            return fail(ps, s, "%s: unexpected '%c'", f->what, *s);
        if (s < end) {
            s++;
            if (s == end)
                return fail(ps, s, "%s: a list ends with ','", f->what);
        }
    }
    return 0;
}

static const struct {
    const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(const char *text, cron_expr *out, char *why, size_t size) {
    parser ps = {text, why, size};
    memset(out, 0, sizeof(*out));
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '@') {
        size_t len = strcspn(s, " \t");
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
            if (strlen(macros[i].name) == len && strncasecmp(s, macros[i].name, len) == 0 &&
                s[len + strspn(s + len, " \t")] == '\0')
                return cron_parse(macros[i].expr, out, why, size);
        return fail(&ps, s,
                    "unknown '%.*s' (@yearly, @monthly, @weekly, @daily, @hourly; @reboot is "
                    "not supported)",
                    (int)len, s);
    }
    uint64_t bits[5];
    int stars[5], n = 0;
    while (*s) {
        const char *end = s;
        while (*end && !isspace((unsigned char)*end))
            end++;
        if (n == 5)
            return fail(&ps, s,
                        "more than 5 fields (minute hour day-of-month month "
                        "day-of-week)");
        int rc = parse_field(&ps, n, s, end, &bits[n], &stars[n]);
        if (rc)
            return rc;
        n++;
        s = end;
        while (isspace((unsigned char)*s))
            s++;
    }
    if (n < 5)
        return fail(&ps, s,
                    "%s: expected 5 fields (minute hour day-of-month month day-of-week), got %d",
                    n ? "too few fields" : "empty", n);
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint32_t)bits[3];
    out->weekdays = (uint32_t)bits[4];
    out->dom_star = stars[2];
    out->dow_star = stars[4];
    return 0;
}

/* ---- time zones ---- */

/* The TZ in force before tz_enter, put back by tz_leave. */
typedef struct tz_saved {
    int switched, had;
    char old[512];
} tz_saved;

static void tz_enter(const char *tz, tz_saved *sv) {
    sv->switched = tz && tz[0];
    if (!sv->switched) {
        tzset();
        return;
    }
    const char *cur = getenv("TZ");
    sv->had = cur != NULL && strlen(cur) < sizeof(sv->old);
    if (sv->had)
        strcpy(sv->old, cur);
    setenv("TZ", tz, 1);
    tzset();
}

static void tz_leave(tz_saved *sv) {
    if (!sv->switched)
        return;
    if (sv->had)
        setenv("TZ", sv->old, 1);
    else
        unsetenv("TZ");
    tzset();
}

int cron_zone_valid(const char *tz) {
    if (!tz || !tz[0])
        return 0;
    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "GMT") == 0)
        return 1;
    if (tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 200)
        return 0;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", tz);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && memcmp(magic, "TZif", 4) == 0;
}

/* The zone's offset from UTC at instant u, in seconds (the zone in force). */
static long offset_at(int64_t u) {
    time_t t = (time_t)u;
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return 0;
    return tm.tm_gmtoff;
}

/* The instant of civil time n (a local time written as if it were UTC
 * seconds), in the zone in force. */
static int64_t civil_to_utc(int64_t n) {
    /* Offsets before and after any transition near n: one of the two is in
     * force at n's instant unless n falls in a gap. */
    long o1 = offset_at(n - 86400), o2 = offset_at(n + 86400);
    int64_t u1 = n - o1, u2 = n - o2;
    int ok1 = offset_at(u1) == o1, ok2 = offset_at(u2) == o2;
    if (ok1 && ok2)
        return u1 < u2 ? u1 : u2; /* a repeated time: its first occurrence */
    if (ok1)
        return u1;
    if (ok2)
        return u2;
    if (o1 == o2)
        return u1;
    /* A gap: the first instant whose local time is past n ends it. */
    int64_t lo = u1 < u2 ? u1 : u2, hi = u1 < u2 ? u2 : u1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (mid + offset_at(mid) > n)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* A civil time as seconds, as if it were UTC: 0 and *n, or -EINVAL when
 * there is no such date or time (Feb 30, 24:00). */
static int civil_seconds(int y, int mo, int d, int h, int mi, int s, int64_t *n) {
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || s < 0 || s > 59)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *n = (int64_t)timegm(&tm);
    return tm.tm_mday == d ? 0 : -EINVAL; /* Feb 30: timegm moved it */
}

int cron_local_to_utc(const char *tz, int y, int mo, int d, int h, int mi, int s, int64_t *out) {
    int64_t n;
    if (civil_seconds(y, mo, d, h, mi, s, &n) != 0)
        return -EINVAL;
    tz_saved sv;
    tz_enter(tz, &sv);
    *out = civil_to_utc(n);
    tz_leave(&sv);
    return 0;
}

/* ---- next fire time ---- */

static int day_matches(const cron_expr *c, const struct tm *tm) {
    int dom = (c->days >> tm->tm_mday) & 1, dow = (c->weekdays >> tm->tm_wday) & 1;
    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow; /* Vixie: both restricted, either will do */
}

int cron_next(const cron_expr *c, const char *tz, int64_t after, int64_t *next) {
    tz_saved sv;
    tz_enter(tz, &sv);
    time_t t = (time_t)after;
    struct tm tm;
    int rc = -ENOENT;
    if (!localtime_r(&t, &tm)) {
        tz_leave(&sv);
        return -EINVAL;
    }
    tm.tm_sec = 0;
    /* Civil time as if UTC: plain arithmetic, with timegm normalising. */
    int64_t civ = (int64_t)timegm(&tm) + 60, limit = civ + (int64_t)10 * 366 * 86400;
    while (civ < limit) {
        time_t ct = (time_t)civ;
        gmtime_r(&ct, &tm);
        if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
            civ = (int64_t)timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
            civ = (int64_t)timegm(&tm);
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1)) {
            civ += 3600 - tm.tm_min * 60;
            continue;
        }
        if (!((c->minutes >> tm.tm_min) & 1)) {
            civ += 60;
            continue;
        }
        int64_t u = civil_to_utc(civ);
        if (u > after) { /* else a repeated local time that already fired */
            *next = u;
            rc = 0;
            break;
        }
        civ += 60;
    }
    tz_leave(&sv);
    return rc;
}

/* ---- one-off times ---- */

static int digits(const char **s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++, (*s)++) {
        if (!isdigit((unsigned char)**s))
            return -1;
        *v = *v * 10 + (**s - '0');
    }
    return 0;
}

int cron_parse_time(const char *text, const char *tz, int64_t *out, char *why, size_t size) {
    const char *s = text;
    if (*s == '@') {
        char *end;
        errno = 0;
        long long v = strtoll(s + 1, &end, 10);
        if (end == s + 1 || *end || errno || v < 0) {
            snprintf(why, size, "'%s': '@' must be followed by seconds since 1970", text);
            return -EINVAL;
        }
        *out = v;
        return 0;
    }
    int y, mo, d, h, mi, sec = 0;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d) || (*s != 'T' && *s != ' ') || (s++, digits(&s, 2, &h)) || *s++ != ':' ||
        digits(&s, 2, &mi) || (*s == ':' && (s++, digits(&s, 2, &sec)))) {
        snprintf(why, size,
                 "'%s': column %d: expected YYYY-MM-DD HH:MM[:SS] (or with 'T'), optionally "
                 "followed by Z or +HH:MM, or @SECONDS",
                 text, s > text ? (int)(s - text) : 1);
        return -EINVAL;
    }
    const char *zone_at = s;
    int has_offset = 0;
    long off = 0;
    if (*s == 'Z') {
        has_offset = 1;
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;
        if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) || oh > 14 || om > 59) {
            snprintf(why, size, "'%s': column %d: an offset is +HH:MM or -HH:MM", text,
                     (int)(zone_at - text) + 1);
            return -EINVAL;
        }
        has_offset = 1;
        off = sign * (oh * 3600L + om * 60L);
    }
    if (*s) {
        snprintf(why, size, "'%s': column %d: unexpected '%s'", text, (int)(s - text) + 1, s);
        return -EINVAL;
    }
    if (has_offset) {
        int64_t n;
        if (civil_seconds(y, mo, d, h, mi, sec, &n) != 0) {
            snprintf(why, size, "'%s': no such date or time", text);
            return -EINVAL;
        }
        *out = n - off;
        return 0;
    }
    if (cron_local_to_utc(tz, y, mo, d, h, mi, sec, out) != 0) {
        snprintf(why, size, "'%s': no such date or time", text);
        return -EINVAL;
    }
    return 0;
}

void cron_format_time(int64_t t, const char *tz, char *out, size_t size) {
    tz_saved sv;
    tz_enter(tz, &sv);
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm) || !strftime(out, size, "%Y-%m-%d %H:%M:%S %Z", &tm))
        snprintf(out, size, "@%lld", (long long)t);
    tz_leave(&sv);
}
