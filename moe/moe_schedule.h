/* Expert schedules: MoE settings per range of denoising progress
 * (progress = step index / steps, ranges half-open [a, b)). Grammar (spaces
 * allowed around every token):
 *   schedule := range { ";" range } [ ";" ]
 *   range    := number "-" number ":" setting { "/" setting }
 *   setting  := "k=" integer | "skip=" number | "experts=" integer { "," integer }
 * e.g. "0-0.3:k=2;0.3-1:k=1/skip=0.1", "0-0.5:experts=0,2;0.5-1:k=2".
 * Settings are split by "/" because "," already separates the experts. */
#ifndef MD_MOE_SCHEDULE_H
#define MD_MOE_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

#define MD_MOE_SCHEDULE_MAX_RANGES 64

typedef struct md_moe_schedule_range {
    double lo, hi;   /* [lo, hi) of progress, 0 <= lo < hi <= 1 */
    int k;           /* 0 = unset */
    float skip;      /* < 0 = unset */
    uint64_t pinned; /* bit e: expert e pinned; 0 = unset */
    int npinned;
} md_moe_schedule_range;

typedef struct md_moe_schedule {
    int count;
    md_moe_schedule_range range[MD_MOE_SCHEDULE_MAX_RANGES];
} md_moe_schedule;

/* Parses at most max_len bytes of text. MD_ERR_INVALID with a message that
 * names the byte position and what was expected. Ranges must not overlap;
 * k is 1..16, skip in [0, 1), experts 0..63 (at most 16, no repeats). */
md_status md_moe_schedule_parse(const char *text, size_t max_len, md_moe_schedule *out,
                                md_error *err);
/* The range holding this progress, NULL when none does. */
const md_moe_schedule_range *md_moe_schedule_at(const md_moe_schedule *s, double progress);

#endif
