/* A bump allocator for activations. It grows in chunks during the first
 * forward pass; resetting to mark 0 merges the chunks into one block of the
 * high-water size, so every later pass of the same shape allocates nothing.
 *
 * Offsets are logical: an allocation's offset depends only on the sequence
 * of sizes since the last reset, never on which chunk holds it, so a mark is
 * a plain byte count and one block of high_water bytes always replays a
 * pass. Chunks emptied by a reset to a non-zero mark are kept as spares and
 * reused, so mark/reset inside a pass does not allocate either. */
#ifndef MD_ARENA_H
#define MD_ARENA_H

#include <stddef.h>

typedef struct md_arena_chunk md_arena_chunk;

typedef struct md_arena {
    md_arena_chunk *chunks; /* chunks in use, newest first */
    md_arena_chunk *spare;  /* empty chunks kept for reuse */
    size_t used;            /* logical end of the last allocation */
    size_t high_water;      /* largest `used` seen */
    size_t grow_count;      /* how many chunks were ever created (tests check it) */
} md_arena;

void md_arena_init(md_arena *a);
void md_arena_free(md_arena *a);
/* 64-byte aligned; NULL on out-of-memory. */
void *md_arena_alloc(md_arena *a, size_t bytes);
size_t md_arena_mark(const md_arena *a);
/* Frees everything allocated after `mark` (a value from md_arena_mark). */
void md_arena_reset(md_arena *a, size_t mark);

#endif
