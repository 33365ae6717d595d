#include "robots.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct rule {
    char *pattern;
    int allow;
} rule;

struct robots {
    rule *rules;
    size_t n, cap;
    int all; /* -1: allow nothing; 0: the rules; 1: allow everything */
};

static robots *make(int all) {
    robots *r = calloc(1, sizeof(*r));
    if (r)
        r->all = all;
    return r;
}

robots *robots_allow_all(void) { return make(1); }
robots *robots_disallow_all(void) { return make(-1); }

void robots_free(robots *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->rules[i].pattern);
    free(r->rules);
    free(r);
}

static int add_rule(robots *r, const char *value, size_t len, int allow) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        rule *rules = realloc(r->rules, cap * sizeof(*rules));
        if (!rules)
            return -1;
        r->rules = rules;
        r->cap = cap;
    }
    char *p = malloc(len + 1);
    if (!p)
        return -1;
    memcpy(p, value, len);
    p[len] = '\0';
    r->rules[r->n++] = (rule){p, allow};
    return 0;
}

/* How well a group's user-agent value names agent: 0 not at all, 1 for
 * "*", 2 + length for a product token agent begins with. */
static size_t agent_match(const char *value, size_t len, const char *agent) {
    if (len == 1 && value[0] == '*')
        return 1;
    if (len == 0 || len > strlen(agent) || strncasecmp(value, agent, len) != 0)
        return 0;
    return 2 + len;
}

typedef struct line {
    const char *key, *value;
    size_t key_len, value_len;
} line;

/* Splits the next line into "key: value", comments and spaces removed;
 * returns 0 at the end of text. */
static int next_line(const char **p, const char *end, line *l) {
    if (*p >= end)
        return 0;
    const char *s = *p, *eol = s;
    while (eol < end && *eol != '\n' && *eol != '\r')
        eol++;
    *p = eol < end ? eol + 1 : end;
    const char *hash = memchr(s, '#', (size_t)(eol - s));
    if (hash)
        eol = hash;
    const char *colon = memchr(s, ':', (size_t)(eol - s));
    memset(l, 0, sizeof(*l));
    if (!colon)
        return 1;
    const char *k = s, *ke = colon, *v = colon + 1, *ve = eol;
    while (k < ke && isspace((unsigned char)*k))
        k++;
    while (ke > k && isspace((unsigned char)ke[-1]))
        ke--;
    while (v < ve && isspace((unsigned char)*v))
        v++;
    while (ve > v && isspace((unsigned char)ve[-1]))
        ve--;
    *l = (line){k, v, (size_t)(ke - k), (size_t)(ve - v)};
    return 1;
}

static int is_key(const line *l, const char *key) {
    return l->key_len == strlen(key) && strncasecmp(l->key, key, l->key_len) == 0;
}

robots *robots_parse(const char *text, size_t len, const char *agent) {
    /* Two passes: find the best-matching agent, then gather the rules of
     * every group naming it (RFC 9309 merges groups of one agent). */
    const char *end = text + len, *p = text;
    size_t best = 0;
    line l;
    while (next_line(&p, end, &l))
        if (is_key(&l, "user-agent")) {
            size_t m = agent_match(l.value, l.value_len, agent);
            if (m > best)
                best = m;
        }
    robots *r = make(0);
    if (!r)
        return NULL;
    if (best == 0) {
        r->all = 1;
        return r;
    }
    int in_group = 0, group_has_rules = 0;
    p = text;
    while (next_line(&p, end, &l)) {
        if (is_key(&l, "user-agent")) {
            if (group_has_rules) { /* a new group begins */
                in_group = 0;
                group_has_rules = 0;
            }
            if (agent_match(l.value, l.value_len, agent) == best)
                in_group = 1;
        } else if (is_key(&l, "allow") || is_key(&l, "disallow")) {
            group_has_rules = 1;
            /* An empty disallow allows everything: no rule to add. */
            if (in_group && l.value_len > 0 &&
                add_rule(r, l.value, l.value_len, is_key(&l, "allow")) != 0) {
                robots_free(r);
                return NULL;
            }
        }
    }
    return r;
}

/* Length of the match of pattern against path, or -1: '*' matches any run,
 * '$' at the end anchors; otherwise a prefix match. */
static long match(const char *pattern, const char *path) {
    const char *p = pattern, *s = path;
    const char *star_p = NULL, *star_s = NULL;
    size_t plen = strlen(pattern);
    while (*p) {
        if (*p == '*') {
            star_p = ++p;
            star_s = s;
            continue;
        }
        if (*p == '$' && p[1] == '\0')
            return *s == '\0' ? (long)plen : -1;
        if (*s && *s == *p) {
            p++;
            s++;
            continue;
        }
        if (star_p && *star_s) { /* let the last star take one more */
            p = star_p;
            s = ++star_s;
            continue;
        }
        return -1;
    }
    return (long)plen;
}

int robots_allowed(const robots *r, const char *path) {
    if (r->all)
        return r->all > 0;
    long best = -1;
    int allow = 1;
    for (size_t i = 0; i < r->n; i++) {
        long m = match(r->rules[i].pattern, path);
        if (m > best || (m == best && m >= 0 && r->rules[i].allow)) {
            best = m;
            allow = r->rules[i].allow;
        }
    }
    return allow;
}
