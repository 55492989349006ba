/* The CLIP tokenizer on prompt text: HTML unescaping, UTF-8 decoding,
 * lower-casing, the split pattern and byte-level BPE. Inputs are capped at
 * 4 KiB: a prompt is refused beyond 600 tokens anyway, and BPE merges of
 * one long word are quadratic in its length, which only slows the search. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "text/tokenizer.h"

static md_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    md_error err = {0};
    if (!tok && md_tokenizer_load_builtin(&tok, &err) != MD_OK)
        __builtin_trap(); /* the embedded vocabulary must load */
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    int32_t ids[MD_CLIP_CONTEXT];
    int64_t n = md_tokenizer_encode_raw(tok, text, ids, MD_CLIP_CONTEXT, &err);
    int64_t n77 = md_tokenizer_encode_77(tok, text, md_tokenizer_eos(tok), ids, &err);
    /* Both count the same content tokens; ids stay inside the vocabulary. */
    if (n >= 0 && n77 != n)
        __builtin_trap();
    if (n77 >= 0)
        for (int i = 0; i < MD_CLIP_CONTEXT; i++)
            if (ids[i] < 0 || ids[i] > md_tokenizer_eos(tok))
                __builtin_trap();
    (void)md_tokenizer_token_id(tok, text);
    free(text);
    return 0;
}
