/* duration.h - durations as written in pipelines: "250ms", "90s", "10m",
 * "1h30m", "1.5h", "2d". Units are required (a bare 0 is allowed), so that
 * "timeout: 10" cannot silently mean ten seconds to one reader and ten
 * minutes to another. */
#ifndef SLUICE_PIPELINE_DURATION_H
#define SLUICE_PIPELINE_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The longest duration accepted: 365 days, in milliseconds. */
#define DURATION_MAX_MS (365LL * 24 * 3600 * 1000)

/* Parses text[0..len) into milliseconds. Returns 0, or -EINVAL with *why set
 * to a static explanation. */
int duration_parse(const char *text, size_t len, int64_t *ms, const char **why);

/* Writes ms as the shortest unit form ("1h30m", "250ms") into out. */
void duration_format(int64_t ms, char *out, size_t size);

#endif
