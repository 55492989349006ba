/* md_arena: alignment, marks, and the promise that a second identical pass
 * after a reset to 0 creates no chunk. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime/arena.h"

static int failures;

#define EXPECT(cond)                                                                         \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                           \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/* A pass shaped like a forward pass: many sizes, a big one that cannot fit
 * the first chunk, and mark/reset pairs nested inside (op scratch). */
static void pass(md_arena *a, unsigned char fill)
{
    static const size_t sizes[] = {100, 1 << 20, 37, 5 << 20, 64, 3 << 20, 1, 12 << 20, 4096};
    unsigned char *ptrs[9];
    for (int i = 0; i < 9; i++) {
        ptrs[i] = md_arena_alloc(a, sizes[i]);
        EXPECT(ptrs[i] != NULL);
        EXPECT(((uintptr_t)ptrs[i] & 63) == 0);
        memset(ptrs[i], fill + i, sizes[i]);
        size_t inner = md_arena_mark(a);
        unsigned char *scratch = md_arena_alloc(a, (size_t)(i + 1) << 20);
        EXPECT(scratch != NULL);
        memset(scratch, 0xee, (size_t)(i + 1) << 20);
        md_arena_reset(a, inner);
        EXPECT(md_arena_mark(a) == inner);
    }
    /* Nothing handed out earlier was overwritten by later allocations. */
    for (int i = 0; i < 9; i++)
        for (size_t k = 0; k < sizes[i]; k += 997)
            EXPECT(ptrs[i][k] == (unsigned char)(fill + i));
}

int main(void)
{
    md_arena a;
    md_arena_init(&a);
    EXPECT(md_arena_mark(&a) == 0);

    pass(&a, 1);
    size_t grown = a.grow_count;
    EXPECT(grown > 1); /* the first pass really needed several chunks */
    size_t high = a.high_water;
    md_arena_reset(&a, 0);
    size_t after_merge = a.grow_count;
    EXPECT(after_merge == grown + 1); /* one merged block */

    for (int rep = 0; rep < 3; rep++) {
        pass(&a, (unsigned char)(10 * rep));
        EXPECT(a.grow_count == after_merge);
        EXPECT(a.high_water == high);
        md_arena_reset(&a, 0);
        EXPECT(a.grow_count == after_merge);
    }

    /* A persistent allocation below the mark survives per-step resets, and
     * the steps themselves stop allocating after the first. */
    md_arena_reset(&a, 0);
    float *persist = md_arena_alloc(&a, 1000 * sizeof(float));
    EXPECT(persist != NULL);
    for (int i = 0; i < 1000; i++)
        persist[i] = (float)i;
    size_t step_mark = md_arena_mark(&a);
    size_t before_steps = 0;
    for (int step = 0; step < 4; step++) {
        pass(&a, (unsigned char)step);
        md_arena_reset(&a, step_mark);
        if (step == 0)
            before_steps = a.grow_count;
        else
            EXPECT(a.grow_count == before_steps);
    }
    for (int i = 0; i < 1000; i++)
        EXPECT(persist[i] == (float)i);

    /* Zero-byte allocations are distinct and valid. */
    void *z1 = md_arena_alloc(&a, 0), *z2 = md_arena_alloc(&a, 0);
    EXPECT(z1 && z2 && z1 != z2);

    /* A mark from the future is ignored rather than corrupting the arena. */
    size_t now = md_arena_mark(&a);
    md_arena_reset(&a, now + 4096);
    EXPECT(md_arena_mark(&a) == now);

    md_arena_free(&a);
    printf("%s\n", failures ? "arena: FAILED" : "arena: ok");
    return failures ? 1 : 0;
}
