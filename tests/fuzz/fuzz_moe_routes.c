/* Routes files (moe_routes of a request, --moe-routes): the parser on any
 * bytes, then binding to a fixed two-layer model and looking every entry
 * up. Capped at 64 KiB: the parser is linear in its input. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "moe/moe_routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    md_moe_routes *r = NULL;
    md_error err = {0};
    if (md_moe_routes_parse(text, 65536, &r, &err) == MD_OK) {
        const char *names[2] = {"a.ff", "b.ff"};
        int experts[2] = {4, 4};
        if (md_moe_routes_bind(r, 2, names, experts, &err) == MD_OK)
            for (int s = 0; s < r->steps; s++)
                for (int l = 0; l < 2; l++) {
                    const md_moe_route_entry *e = md_moe_routes_at(r, s, l);
                    if (!e)
                        continue;
                    if (e->k < 1 || e->k > 16 || e->n < 1)
                        __builtin_trap();
                    for (int64_t i = 0; i < e->n * e->k; i++)
                        if (e->experts[i] < -1 || e->experts[i] >= 4)
                            __builtin_trap();
                }
        md_moe_routes_free(r);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    free(text);
    return 0;
}
