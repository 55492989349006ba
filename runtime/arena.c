#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

#define MD_ARENA_ALIGN 64
/* Small first chunks would make the first pass of a big model create
 * hundreds of them; growth is geometric on top of this floor. */
#define MD_ARENA_MIN_CHUNK ((size_t)4 << 20)

struct md_arena_chunk {
    md_arena_chunk *next;
    size_t start; /* logical offset of base[0] while in use */
    size_t size;
    unsigned char *base;
};

static size_t align_up(size_t v)
{
    return (v + (MD_ARENA_ALIGN - 1)) & ~(size_t)(MD_ARENA_ALIGN - 1);
}

static md_arena_chunk *chunk_new(md_arena *a, size_t size)
{
    size = align_up(size);
    md_arena_chunk *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->base = aligned_alloc(MD_ARENA_ALIGN, size);
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->size = size;
    c->start = 0;
    c->next = NULL;
    a->grow_count++;
    return c;
}

static void chunk_list_free(md_arena_chunk *c)
{
    while (c) {
        md_arena_chunk *next = c->next;
        free(c->base);
        free(c);
        c = next;
    }
}

void md_arena_init(md_arena *a)
{
    a->chunks = NULL;
    a->spare = NULL;
    a->used = 0;
    a->high_water = 0;
    a->grow_count = 0;
}

void md_arena_free(md_arena *a)
{
    chunk_list_free(a->chunks);
    chunk_list_free(a->spare);
    a->chunks = NULL;
    a->spare = NULL;
    a->used = 0;
}

/* An empty chunk that holds `bytes`: a spare if one is big enough. */
static md_arena_chunk *take_chunk(md_arena *a, size_t bytes)
{
    for (md_arena_chunk **pp = &a->spare; *pp; pp = &(*pp)->next) {
        if ((*pp)->size >= bytes) {
            md_arena_chunk *c = *pp;
            *pp = c->next;
            c->next = NULL;
            return c;
        }
    }
    size_t size = bytes;
    if (size < MD_ARENA_MIN_CHUNK)
        size = MD_ARENA_MIN_CHUNK;
    if (size < a->used / 2)
        size = a->used / 2;
    md_arena_chunk *c = chunk_new(a, size);
    if (!c && size > bytes) /* the generous size may be what failed */
        c = chunk_new(a, bytes);
    return c;
}

void *md_arena_alloc(md_arena *a, size_t bytes)
{
    if (bytes == 0)
        bytes = 1; /* distinct, valid pointers even for empty tensors */
    if (bytes > SIZE_MAX - 2 * MD_ARENA_ALIGN)
        return NULL;
    size_t off = align_up(a->used);
    if (off < a->used || off > SIZE_MAX - bytes)
        return NULL;
    md_arena_chunk *c = a->chunks;
    if (!c || off + bytes > c->start + c->size) {
        c = take_chunk(a, bytes);
        if (!c)
            return NULL;
        c->start = off;
        c->next = a->chunks;
        a->chunks = c;
    }
    a->used = off + bytes;
    if (a->used > a->high_water)
        a->high_water = a->used;
    return c->base + (off - c->start);
}

size_t md_arena_mark(const md_arena *a)
{
    return a->used;
}

/* Replace every chunk by one block of the high-water size. */
static void merge(md_arena *a)
{
    md_arena_chunk *only = a->chunks ? a->chunks : a->spare;
    int single = only && !only->next && !(a->chunks && a->spare);
    if (single && only->size >= a->high_water) {
        a->chunks = only;
        a->spare = NULL;
        only->start = 0;
        return;
    }
    chunk_list_free(a->chunks);
    chunk_list_free(a->spare);
    a->chunks = NULL;
    a->spare = NULL;
    if (a->high_water == 0)
        return;
    /* On failure the arena simply starts growing again from empty. */
    md_arena_chunk *c = chunk_new(a, a->high_water);
    if (c)
        a->chunks = c;
}

void md_arena_reset(md_arena *a, size_t mark)
{
    if (mark > a->used)
        return; /* not a mark of this arena's current state */
    /* Chunks that start past the mark hold nothing below it. */
    while (a->chunks && a->chunks->start > mark) {
        md_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        c->next = a->spare;
        a->spare = c;
    }
    a->used = mark;
    if (mark == 0)
        merge(a);
}
