/* The tokenizer's representation, shared by its loader and encoder. */
#ifndef MD_TOKENIZER_INTERNAL_H
#define MD_TOKENIZER_INTERNAL_H

#include "bpe.h"
#include "clip_vocab.h"
#include "tokenizer.h"

/* Merges of the CLIP vocabulary: lines 1 .. 48894 of the file (line 0 is
 * the "#version" header), as OpenAI CLIP and HF CLIPTokenizer read it. */
#define MD_CLIP_NUM_MERGES (49152 - 256 - 2)

struct md_tokenizer {
    md_clip_vocab vocab;
    md_bpe bpe;
    int32_t byte_id[256];     /* a byte inside a word */
    int32_t byte_end_id[256]; /* a byte ending a word: its character + "</w>" */
    int32_t bos, eos;
};

#endif
