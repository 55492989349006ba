/* Prompt emphasis as AUTOMATIC1111 parses it (parse_prompt_attention):
 * "(text)" x1.1, "[text]" x1/1.1, "(text:1.3)" x1.3, nesting multiplies,
 * "\(" "\)" "\[" "\]" "\\" are literal, unbalanced brackets apply to the end
 * of the prompt, a word "BREAK" starts a new 75-token chunk, and runs of
 * equal weight are merged (a BREAK is the fragment "BREAK" with weight -1,
 * as there; inside brackets it becomes a literal word, as there). Then the
 * tokens of each fragment are laid out in chunks of BOS + 75 tokens + EOS,
 * one weight per position. */
#ifndef MD_PROMPT_WEIGHTS_H
#define MD_PROMPT_WEIGHTS_H

#include <stdint.h>

#include "../runtime/status.h"
#include "tokenizer.h"

typedef struct md_prompt_fragment {
    char *text; /* owned, NUL-terminated */
    double weight;
} md_prompt_fragment;

typedef struct md_prompt_parse {
    md_prompt_fragment *frags;
    int count;
} md_prompt_parse;

/* Always yields at least one fragment ("" with weight 1 for an empty
 * prompt). A weight that is not a number ("(a:1.2.3)") is an error. */
md_status md_prompt_parse_weights(const char *text, md_prompt_parse *out, md_error *err);
void md_prompt_parse_free(md_prompt_parse *p);

#define MD_PROMPT_CHUNK_TOKENS 75
/* Prompts longer than this many chunks (600 tokens) are refused. */
#define MD_PROMPT_MAX_CHUNKS 8

typedef struct md_prompt_chunks {
    int count;                                            /* >= 1 */
    int32_t ids[MD_PROMPT_MAX_CHUNKS][MD_CLIP_CONTEXT];   /* BOS, 75 tokens/pad, EOS */
    float weights[MD_PROMPT_MAX_CHUNKS][MD_CLIP_CONTEXT]; /* 1 for BOS, EOS and padding */
    int weighted;                                         /* some weight differs from 1 */
    int tokens;                                           /* content tokens in all */
} md_prompt_chunks;

/* Parses `text` and tokenizes it into chunks padded with pad_id (A1111
 * layout, without its comma backtracking: a chunk is always filled to 75
 * tokens unless a BREAK ends it). More than MD_PROMPT_MAX_CHUNKS chunks is
 * an MD_ERR_INVALID error saying how many tokens the prompt has. A plain
 * prompt of at most 75 tokens gives exactly md_tokenizer_encode_77's ids. */
md_status md_prompt_tokenize(const md_tokenizer *tok, const char *text, int32_t pad_id,
                             md_prompt_chunks *out, md_error *err);

#endif
