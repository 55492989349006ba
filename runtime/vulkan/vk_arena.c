/* The activation arena in device memory, with the semantics of the CPU
 * arena (runtime/arena.h): logical offsets, chunks while a first pass
 * grows it, and one block of the high-water size after a reset to 0, so
 * later passes of the same shape allocate nothing. */
#include <stdlib.h>

#include "vk_internal.h"

/* Few, large chunks: each is a device allocation and a buffer. */
#define MD_VK_ARENA_MIN_CHUNK ((size_t)16 << 20)

struct md_vk_arena_chunk {
    md_vk_arena_chunk *next;
    size_t start; /* logical offset of the chunk's first byte while in use */
    md_vk_buffer *buf;
};

static size_t align_up(size_t v)
{
    return (v + (MD_VK_ALIGN - 1)) & ~(size_t)(MD_VK_ALIGN - 1);
}

static md_vk_arena_chunk *chunk_new(md_vk *vk, size_t size)
{
    md_vk_arena_chunk *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    md_error err = {0};
    c->buf = md_vk_buffer_new(vk, size, 0, &err);
    if (!c->buf) {
        free(c);
        return NULL;
    }
    return c;
}

static void chunk_list_free(md_vk *vk, md_vk_arena_chunk *c)
{
    while (c) {
        md_vk_arena_chunk *next = c->next;
        md_vk_buffer_free(vk, c->buf);
        free(c);
        c = next;
    }
}

static md_vk_arena_chunk *take_chunk(md_vk *vk, size_t bytes)
{
    md_vk_arena *a = &vk->arena;
    for (md_vk_arena_chunk **pp = &a->spare; *pp; pp = &(*pp)->next) {
        if ((*pp)->buf->size >= bytes) {
            md_vk_arena_chunk *c = *pp;
            *pp = c->next;
            c->next = NULL;
            return c;
        }
    }
    size_t size = bytes;
    if (size < MD_VK_ARENA_MIN_CHUNK)
        size = MD_VK_ARENA_MIN_CHUNK;
    if (size < a->used / 2)
        size = a->used / 2;
    md_vk_arena_chunk *c = chunk_new(vk, size);
    if (!c && size > bytes)
        c = chunk_new(vk, bytes);
    return c;
}

void *md_vk_arena_alloc(md_vk *vk, size_t bytes)
{
    md_vk_arena *a = &vk->arena;
    if (bytes == 0)
        bytes = 4;
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t off = align_up(a->used);
    md_vk_arena_chunk *c = a->chunks;
    if (!c || off + bytes > c->start + c->buf->size) {
        c = take_chunk(vk, bytes);
        if (!c)
            return NULL;
        c->start = off;
        c->next = a->chunks;
        a->chunks = c;
    }
    a->used = off + bytes;
    if (a->used > a->high_water)
        a->high_water = a->used;
    return (void *)(c->buf->va + (off - c->start));
}

size_t md_vk_arena_mark(const md_vk *vk)
{
    return vk->arena.used;
}

static void merge(md_vk *vk)
{
    md_vk_arena *a = &vk->arena;
    md_vk_arena_chunk *only = a->chunks ? a->chunks : a->spare;
    int single = only && !only->next && !(a->chunks && a->spare);
    if (single && only->buf->size >= a->high_water) {
        a->chunks = only;
        a->spare = NULL;
        only->start = 0;
        return;
    }
    /* Recorded work may still use these buffers. */
    md_vk_flush(vk);
    chunk_list_free(vk, a->chunks);
    chunk_list_free(vk, a->spare);
    a->chunks = NULL;
    a->spare = NULL;
    if (a->high_water == 0)
        return;
    md_vk_arena_chunk *c = chunk_new(vk, a->high_water);
    if (c)
        a->chunks = c;
}

void md_vk_arena_reset(md_vk *vk, size_t mark)
{
    md_vk_arena *a = &vk->arena;
    if (mark > a->used)
        return;
    while (a->chunks && a->chunks->start > mark) {
        md_vk_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        c->next = a->spare;
        a->spare = c;
    }
    a->used = mark;
    if (mark == 0)
        merge(vk);
}

void md_vk_arena_free(md_vk *vk)
{
    chunk_list_free(vk, vk->arena.chunks);
    chunk_list_free(vk, vk->arena.spare);
    vk->arena.chunks = vk->arena.spare = NULL;
    vk->arena.used = 0;
}

size_t md_vk_arena_bytes(const md_vk *vk)
{
    size_t n = 0;
    for (const md_vk_arena_chunk *c = vk->arena.chunks; c; c = c->next)
        n += c->buf->size;
    for (const md_vk_arena_chunk *c = vk->arena.spare; c; c = c->next)
        n += c->buf->size;
    return n;
}
