/* Expert schedules (moe_schedule of a request, --moe-schedule): the parser
 * on any bytes, capped at its limit plus a little. An accepted schedule
 * must keep its documented invariants. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "moe/moe_schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 5000)
        return 0;
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    md_moe_schedule s;
    md_error err = {0};
    if (md_moe_schedule_parse(text, 4096, &s, &err) == MD_OK) {
        if (s.count < 1 || s.count > MD_MOE_SCHEDULE_MAX_RANGES)
            __builtin_trap();
        for (int i = 0; i < s.count; i++) {
            const md_moe_schedule_range *r = &s.range[i];
            if (!(r->lo >= 0.0 && r->lo < r->hi && r->hi <= 1.0) || r->k < 0 || r->k > 16 ||
                r->skip >= 1.0f || r->npinned > 16 || (r->npinned == 0) != (r->pinned == 0))
                __builtin_trap();
            if (md_moe_schedule_at(&s, r->lo) != r) /* ranges do not overlap */
                __builtin_trap();
        }
    } else if (!err.msg[0]) {
        __builtin_trap(); /* a refusal always says why */
    }
    free(text);
    return 0;
}
