/* Byte-pair encoding over vocabulary ids: a table from an adjacent pair of
 * ids to its merge rank and the id of the merged token, and the merge loop
 * of CLIP's bpe(): repeatedly merge every occurrence (left to right) of the
 * lowest-ranked adjacent pair until no pair has a rank. */
#ifndef MD_BPE_H
#define MD_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/status.h"

typedef struct md_bpe_entry {
    int32_t left, right; /* left < 0: empty slot */
    int32_t rank, merged;
} md_bpe_entry;

typedef struct md_bpe {
    md_bpe_entry *slots;
    uint32_t mask;
    int32_t count;
} md_bpe;

md_status md_bpe_init(md_bpe *b, size_t max_merges, md_error *err);
void md_bpe_free(md_bpe *b);
/* Adds the merge (left, right) -> merged with the next rank. A pair given
 * again takes the later rank, as a Python dict built from the list does. */
void md_bpe_add(md_bpe *b, int32_t left, int32_t right, int32_t merged);

/* Scratch for words of up to `cap` symbols. */
typedef struct md_bpe_scratch {
    size_t cap;
    int32_t *next, *prev;
    struct md_bpe_cand *heap;
    size_t heap_cap;
} md_bpe_scratch;

md_status md_bpe_scratch_init(md_bpe_scratch *s, size_t cap, md_error *err);
void md_bpe_scratch_free(md_bpe_scratch *s);

/* Merges syms[0..n) in place (n <= scratch cap); returns the new count. */
size_t md_bpe_merge_word(const md_bpe *b, int32_t *syms, size_t n, md_bpe_scratch *s);

#endif
