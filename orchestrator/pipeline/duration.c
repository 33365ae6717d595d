#include "duration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct unit {
    const char *name;
    double ms;
} units[] = {
    /* "ms" before "m" so that the longer unit matches first. */
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

int duration_parse(const char *s, size_t len, int64_t *ms, const char **why) {
    double total = 0;
    size_t i = 0;
    *ms = 0;
    if (len == 1 && s[0] == '0')
        return 0;
    if (len == 0) {
        *why = "a duration is empty";
        return -EINVAL;
    }
    while (i < len) {
        double num = 0, scale = 0;
        size_t digits = 0;
        for (; i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'); i++) {
            if (s[i] == '.') {
                if (scale) {
                    *why = "a number in a duration has two decimal points";
                    return -EINVAL;
                }
                scale = 1;
                continue;
            }
            num = num * 10 + (s[i] - '0');
            if (scale)
                scale *= 10;
            digits++;
        }
        if (!digits) {
            *why = "expected a number with a unit (ms, s, m, h, d), e.g. 90s or 1h30m";
            return -EINVAL;
        }
        if (scale)
            num /= scale;
        const struct unit *u = NULL;
        for (size_t k = 0; k < sizeof(units) / sizeof(units[0]) && !u; k++) {
            size_t ul = strlen(units[k].name);
            if (len - i >= ul && memcmp(s + i, units[k].name, ul) == 0 &&
                (i + ul == len || s[i + ul] < 'a' || s[i + ul] > 'z'))
                u = &units[k];
        }
        if (!u) {
            *why = i == len ? "a duration needs a unit (ms, s, m, h, d), e.g. 90s or 1h30m"
                            : "unknown unit in a duration (use ms, s, m, h or d)";
            return -EINVAL;
        }
        i += strlen(u->name);
        total += num * u->ms;
        if (total > (double)DURATION_MAX_MS) {
            *why = "a duration is longer than 365 days";
            return -EINVAL;
        }
    }
    *ms = (int64_t)(total + 0.5);
    return 0;
}

void duration_format(int64_t ms, char *out, size_t size) {
    static const struct {
        const char *name;
        int64_t ms;
    } parts[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t used = 0;
    if (ms == 0) {
        snprintf(out, size, "0s");
        return;
    }
    out[0] = '\0';
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]) && ms > 0; k++) {
        int64_t n = ms / parts[k].ms;
        if (n == 0)
            continue;
        ms -= n * parts[k].ms;
        int w = snprintf(out + used, used < size ? size - used : 0, "%lld%s", (long long)n,
                         parts[k].name);
        if (w > 0)
            used += (size_t)w;
    }
}
