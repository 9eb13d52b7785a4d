/* cron.h - recurring-job schedules: a cron expression parsed once into bit
 * sets, and the next time it fires after a given time, evaluated in UTC.
 * Pure: no clock, no allocation, no I/O (the scheduler brings the time).
 *
 * Accepted (docs/cluster.md, "Recurring jobs"):
 *   "MIN HOUR DOM MONTH DOW"   Vixie cron's five fields: *, lists (1,5), ranges
 *                              (1-5), steps (*, A-B or A followed by /N), month and
 *                              day names (jan..dec, sun..sat; 0 and 7 are Sunday).
 *                              When both DOM and DOW are restricted (neither
 *                              starts with '*'), a day matches if either does.
 *   @hourly @daily @midnight @weekly @monthly @yearly @annually
 *   "@every N{s,m,h}"          every N seconds/minutes/hours (N >= 1, at most a
 *                              year), at multiples of the period since the Unix
 *                              epoch, so the fire times do not depend on when
 *                              the job was submitted. */
#ifndef KILN_SCHEDULER_CRON_H
#define KILN_SCHEDULER_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "core/kiln_err.h"

#define KS_CRON_EXPR_MAX 128

typedef struct {
    uint64_t minutes;        /* bit m: minute m (0-59) */
    uint32_t hours;          /* bits 0-23 */
    uint32_t days;           /* days of the month, bits 1-31 */
    uint16_t months;         /* bits 1-12 */
    uint8_t  weekdays;       /* bits 0-6, Sunday 0 */
    uint8_t  days_star;      /* DOM field began with '*' (Vixie's day rule) */
    uint8_t  weekdays_star;  /* DOW field began with '*' */
    int64_t  every_ns;       /* "@every": the period; 0 for a calendar expression */
} ks_cron_t;

/* Parses expr into *out.  KILN_ESPEC (where = "schedule") with a message
 * that names the field and the value: "schedule: field 2 (hour): 25 is out
 * of 0-23".  An expression that can never fire ("0 0 30 2 *") is refused. */
int ks_cron_parse(const char *expr, ks_cron_t *out, kiln_err_t *err);

/* The first fire time strictly after t_ns (ns since the epoch, UTC) in
 * *next_ns; KILN_ENOTFOUND when none comes within nine years (only an
 * expression ks_cron_parse refused can do that). */
int ks_cron_next_after(const ks_cron_t *c, int64_t t_ns, int64_t *next_ns);

/* t_ns as "2026-11-26T02:00:00Z" (whole seconds, UTC); compact as
 * "20261126T020000Z" (for file names).  buf of at least 24 bytes. */
void ks_cron_iso(int64_t t_ns, int compact, char *buf, size_t cap);

#endif
