/* cron.h - when a schedule fires: standard 5-field cron expressions in a
 * time zone, one-off times, and the local-time rules across DST.
 *
 * Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
 * jan..dec), day of week (0-7 or sun..sat; 0 and 7 are Sunday). Each field
 * is '*', a number or name, a range A-B, a list of those separated by
 * commas, each optionally stepped by /N ("*\/15", "1-30/5", "5/10" = 5-max
 * by 10). @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly
 * stand for their usual expressions. Vixie cron's rule: when both day of
 * month and day of week are restricted (neither field begins with '*'), a
 * day matches when either does; otherwise both must.
 *
 * Times are in a zone named as in the tz database ("Europe/Berlin"), or
 * the local zone for NULL/"". Across DST: a local time that does not exist
 * (skipped when clocks go forward) fires at the first minute after the gap;
 * one that occurs twice (clocks go back) fires once, at its first
 * occurrence. The zone is switched through TZ and tzset(): these functions
 * are not for threads. */
#ifndef SLUICE_SCHED_CRON_H
#define SLUICE_SCHED_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct cron_expr {
    uint64_t minutes; /* bit m: minute m */
    uint32_t hours;
    uint32_t days;     /* bits 1..31 */
    uint32_t months;   /* bits 1..12 */
    uint32_t weekdays; /* bits 0..6, Sunday 0 */
    int dom_star, dow_star;
} cron_expr;

/* Parses text. Returns 0, or -EINVAL with why (size bytes) saying where
 * ("column 4: ...") and what is wrong. */
int cron_parse(const char *text, cron_expr *out, char *why, size_t size);

/* The first fire time strictly after `after` (seconds since the epoch) in
 * zone tz: 0 and *next, or -ENOENT when none comes within ten years
 * ("0 0 30 2 *"). */
int cron_next(const cron_expr *c, const char *tz, int64_t after, int64_t *next);

/* 1 when tz names a zone of the tz database (or is "UTC"), else 0. */
int cron_zone_valid(const char *tz);

/* The instant the local time y-mo-d h:mi:s (mo 1-12) names in tz, by the
 * rules above (a skipped time: the end of the gap; a repeated one: its
 * first occurrence). Returns 0 or -EINVAL (out of range). */
int cron_local_to_utc(const char *tz, int y, int mo, int d, int h, int mi, int s, int64_t *out);

/* Parses a one-off time: "YYYY-MM-DD HH:MM[:SS]" or with 'T' between,
 * local to tz, or followed by 'Z' or an offset "+HH:MM"/"-HH:MM" (then tz
 * is not used); "@SECONDS" since the epoch. Returns 0 or -EINVAL with why. */
int cron_parse_time(const char *text, const char *tz, int64_t *out, char *why, size_t size);

/* Writes t as local time in tz, "2026-03-29 03:00:00 CEST", into out. */
void cron_format_time(int64_t t, const char *tz, char *out, size_t size);

#endif
