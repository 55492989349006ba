/* A bump allocator for activations. It grows in chunks during the first
 * forward pass; resetting to mark 0 merges the chunks into one block of the
 * high-water size, so every later pass of the same shape allocates nothing. */
#ifndef MD_ARENA_H
#define MD_ARENA_H

#include <stddef.h>

typedef struct md_arena_chunk md_arena_chunk;

typedef struct md_arena {
    md_arena_chunk *chunks; /* newest first */
    size_t used;            /* bytes handed out, counted across chunks */
    size_t high_water;
    size_t grow_count;      /* how many chunks were ever created (tests check it) */
} md_arena;

void md_arena_init(md_arena *a);
void md_arena_free(md_arena *a);
/* 64-byte aligned; NULL on out-of-memory. */
void *md_arena_alloc(md_arena *a, size_t bytes);
size_t md_arena_mark(const md_arena *a);
void md_arena_reset(md_arena *a, size_t mark);

#endif
