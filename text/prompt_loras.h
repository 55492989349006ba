/* AUTOMATIC1111's LoRA tags in a prompt: `<lora:NAME>` (weight 1) and
 * `<lora:NAME:WEIGHT>` (also `<lyco:...>`, A1111's alias), anywhere in the
 * text. Each tag is cut out of the prompt exactly, leaving the text around
 * it (a comma before a tag stays, as there). A `<hypernet:...>` tag is
 * refused (A1111 would apply a hypernetwork, which is not supported here);
 * other `<word:...>` texts stay in the prompt. Only the weighted prompt
 * syntax has tags. */
#ifndef MD_PROMPT_LORAS_H
#define MD_PROMPT_LORAS_H

#include <stddef.h>

#include "../runtime/status.h"

#define MD_PROMPT_LORA_NAME_MAX 256

typedef struct md_prompt_lora {
    char name[MD_PROMPT_LORA_NAME_MAX];
    float weight;
} md_prompt_lora;

/* Writes the prompt without its tags to `stripped` (cap bytes; the prompt's
 * length + 1 always fits) and up to cap_tags tags to tags[]; *count = the
 * number of tags. A tag with an empty name, a weight that is not a finite
 * number, separate text-encoder and U-Net weights (<lora:NAME:TE:UNET>) or
 * more tags than cap_tags is MD_ERR_INVALID quoting the tag. */
md_status md_prompt_take_loras(const char *prompt, char *stripped, size_t cap,
                               md_prompt_lora *tags, int cap_tags, int *count, md_error *err);

#endif
