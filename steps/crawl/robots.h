/* robots.h - robots.txt as RFC 9309 reads it: the group of the most
 * specific matching user agent (else "*"), its allow and disallow rules
 * with '*' and '$' patterns, the longest match winning and allow winning a
 * tie. */
#ifndef SLUICE_CRAWL_ROBOTS_H
#define SLUICE_CRAWL_ROBOTS_H

#include <stddef.h>

typedef struct robots robots;

/* Parses text (len bytes, need not be terminated) for the crawler whose
 * product token is agent (e.g. "sluice-crawl"; matched case-insensitively
 * as a prefix of the group's user-agent line, as RFC 9309 allows). Returns
 * a rule set to free with robots_free(), or NULL when out of memory. */
robots *robots_parse(const char *text, size_t len, const char *agent);
/* Rules that allow everything (robots.txt missing: a 4xx) or nothing (it
 * could not be fetched: a 5xx or a network failure). */
robots *robots_allow_all(void);
robots *robots_disallow_all(void);
void robots_free(robots *r);

/* 1 when path (the URL's path and query, starting with '/') may be
 * fetched, 0 when not. */
int robots_allowed(const robots *r, const char *path);

#endif
