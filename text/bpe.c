/* BPE merge table and merge loop (see bpe.h).
 *
 * The loop uses a heap of candidate pairs ordered by (rank, position)
 * instead of rescanning the word after each merge: O(n log n) rather than
 * O(n^2) for long runs without spaces. Popping the lowest rank first and,
 * within a rank, the leftmost first gives exactly the reference's result:
 * a merge never creates a new occurrence of its own pair (the merged token
 * is longer than either part), and a candidate whose symbols changed since
 * it was pushed is discarded when popped. */
#include "bpe.h"

#include <stdlib.h>
#include <string.h>

typedef struct md_bpe_cand {
    int32_t rank;
    int32_t pos;          /* index of the left symbol (its first byte) */
    int32_t left, right;  /* the ids the pair had when pushed */
    int32_t merged;
} md_bpe_cand;

static uint32_t pair_hash(int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    k *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(k >> 32);
}

md_status md_bpe_init(md_bpe *b, size_t max_merges, md_error *err)
{
    memset(b, 0, sizeof *b);
    uint32_t cap = 16;
    while (cap < 2 * max_merges && cap < (1u << 30))
        cap <<= 1;
    b->slots = malloc((size_t)cap * sizeof *b->slots);
    if (!b->slots)
        return md_fail(err, MD_ERR_NOMEM, "out of memory for %zu BPE merges", max_merges);
    for (uint32_t i = 0; i < cap; i++)
        b->slots[i].left = -1;
    b->mask = cap - 1;
    return MD_OK;
}

void md_bpe_free(md_bpe *b)
{
    free(b->slots);
    memset(b, 0, sizeof *b);
}

static md_bpe_entry *find_pair(const md_bpe *b, int32_t left, int32_t right)
{
    uint32_t i = pair_hash(left, right) & b->mask;
    for (;;) {
        md_bpe_entry *e = &b->slots[i];
        if (e->left < 0 || (e->left == left && e->right == right))
            return e;
        i = (i + 1) & b->mask;
    }
}

void md_bpe_add(md_bpe *b, int32_t left, int32_t right, int32_t merged)
{
    md_bpe_entry *e = find_pair(b, left, right);
    e->left = left;
    e->right = right;
    e->rank = b->count++;
    e->merged = merged;
}

md_status md_bpe_scratch_init(md_bpe_scratch *s, size_t cap, md_error *err)
{
    memset(s, 0, sizeof *s);
    if (cap == 0)
        cap = 1;
    s->cap = cap;
    /* each merge pushes at most two candidates, after n - 1 initial ones */
    s->heap_cap = 3 * cap;
    s->next = malloc(cap * sizeof *s->next);
    s->prev = malloc(cap * sizeof *s->prev);
    s->heap = malloc(s->heap_cap * sizeof *s->heap);
    if (!s->next || !s->prev || !s->heap) {
        md_bpe_scratch_free(s);
        return md_fail(err, MD_ERR_NOMEM, "out of memory for a %zu-byte word", cap);
    }
    return MD_OK;
}

void md_bpe_scratch_free(md_bpe_scratch *s)
{
    free(s->next);
    free(s->prev);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static int cand_less(const md_bpe_cand *a, const md_bpe_cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(md_bpe_cand *h, size_t *n, md_bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static md_bpe_cand heap_pop(md_bpe_cand *h, size_t *n)
{
    md_bpe_cand top = h[0];
    md_bpe_cand last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c]))
            c++;
        if (!cand_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const md_bpe *b, md_bpe_scratch *s, size_t *hn, const int32_t *syms,
                      int32_t pos, int32_t right_pos)
{
    const md_bpe_entry *e = find_pair(b, syms[pos], syms[right_pos]);
    if (e->left < 0)
        return;
    md_bpe_cand c = {e->rank, pos, syms[pos], syms[right_pos], e->merged};
    heap_push(s->heap, hn, c);
}

size_t md_bpe_merge_word(const md_bpe *b, int32_t *syms, size_t n, md_bpe_scratch *s)
{
    if (n < 2)
        return n;
    int32_t nn = (int32_t)n;
    size_t hn = 0;
    for (int32_t i = 0; i < nn; i++) {
        s->next[i] = i + 1; /* nn = none */
        s->prev[i] = i - 1; /* -1 = none */
    }
    for (int32_t i = 0; i + 1 < nn; i++)
        push_pair(b, s, &hn, syms, i, i + 1);

    /* a merged-away symbol is marked by prev == -2 */
    while (hn > 0) {
        md_bpe_cand c = heap_pop(s->heap, &hn);
        int32_t i = c.pos;
        if (s->prev[i] == -2)
            continue;
        int32_t j = s->next[i];
        if (j >= nn || syms[i] != c.left || syms[j] != c.right)
            continue;
        syms[i] = c.merged;
        s->next[i] = s->next[j];
        if (s->next[j] < nn)
            s->prev[s->next[j]] = i;
        s->prev[j] = -2;
        if (s->prev[i] >= 0)
            push_pair(b, s, &hn, syms, s->prev[i], i);
        if (s->next[i] < nn)
            push_pair(b, s, &hn, syms, i, s->next[i]);
    }

    size_t m = 0;
    for (int32_t i = 0; i < nn; i = s->next[i])
        syms[m++] = syms[i];
    return m;
}
