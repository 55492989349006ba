/* A1111 prompt syntax: LoRA tags (<lora:NAME:WEIGHT>), emphasis (brackets,
 * escapes, (text:weight), BREAK), then the chunked tokenization. Capped at 4 KiB as fuzz_tokenizer.c is: longer
 * prompts are refused after tokenizing (more than 8 chunks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "text/prompt_loras.h"
#include "text/prompt_weights.h"

static md_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    md_error err = {0};
    if (!tok && md_tokenizer_load_builtin(&tok, &err) != MD_OK)
        __builtin_trap();
    char *text = md_fuzz_string(data, size);
    if (!text)
        return 0;
    /* the tags come out first, leaving at most the text they were in */
    char *stripped = malloc(size + 1);
    md_prompt_lora tags[8];
    int ntags = 0;
    if (stripped && md_prompt_take_loras(text, stripped, size + 1, tags, 8, &ntags, &err) == MD_OK &&
        (strlen(stripped) > strlen(text) || ntags < 0 || ntags > 8))
        __builtin_trap();
    free(stripped);
    md_prompt_parse p = {0};
    if (md_prompt_parse_weights(text, &p, &err) == MD_OK) {
        if (p.count < 1)
            __builtin_trap(); /* documented: at least one fragment */
        md_prompt_parse_free(&p);
    }
    static md_prompt_chunks chunks; /* 5 KB: off the stack */
    if (md_prompt_tokenize(tok, text, md_tokenizer_eos(tok), &chunks, &err) == MD_OK &&
        (chunks.count < 1 || chunks.count > MD_PROMPT_MAX_CHUNKS))
        __builtin_trap();
    free(text);
    return 0;
}
