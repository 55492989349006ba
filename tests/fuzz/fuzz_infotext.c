/* The A1111 `parameters` text (--from-png reads it from any PNG): prompt
 * lines, "Negative prompt:", then "Key: value" pairs with JSON-quoted
 * values. What parses is formatted again and must parse again. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "host/infotext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    mdh_infotext t;
    mdh_error err = {0};
    if (mdh_infotext_parse(text, "fuzz.png", &t, &err) == MDIFF_OK) {
        mdh_infotext_meta meta = {.model = t.model, .moe = t.moe, .mask_blur = t.mask_blur};
        char *again = mdh_infotext_format(&t.req, &meta);
        if (again) {
            mdh_infotext t2;
            if (mdh_infotext_parse(again, "fuzz.png", &t2, &err) == MDIFF_OK)
                mdh_infotext_free(&t2);
            free(again);
        }
        mdh_infotext_free(&t);
    }
    free(text);
    return 0;
}
