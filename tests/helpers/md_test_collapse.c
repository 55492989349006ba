/* md-test-collapse FILE KEEP: rewrites, in place, every feed-forward MoE
 * gate of an F32 U-Net safetensors file (make-random-model --f32) so that
 * only experts 0..KEEP-1 can ever be chosen: a model whose routing has
 * collapsed, for the routing-health tests.
 *
 * The gate's input is the block's norm3 (a LayerNorm; random models keep
 * its weight at 1), whose output always sums to sum(bias). With the bias
 * set to 0.1 and gate rows of +1 (kept) or -1 (the rest), every token's
 * logits are +-0.1 * dim: the kept experts win for every input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_header.h"

typedef struct entry {
    long long start, end; /* data offsets */
    long long shape[2];
    int ndim;
} entry;

/* The F32 tensor `name` of the header, 0 when absent. */
static int find(const char *h, const char *name, entry *e)
{
    char key[512];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *p = strstr(h, key);
    const char *end = p ? strchr(p, '}') : NULL;
    const char *dtype = p ? strstr(p, "\"dtype\":\"F32\"") : NULL;
    const char *shape = p ? strstr(p, "\"shape\":[") : NULL;
    const char *offs = p ? strstr(p, "\"data_offsets\":[") : NULL;
    if (!p || !dtype || !shape || !offs || dtype > end || shape > end || offs > end)
        return 0;
    char *q = (char *)shape + strlen("\"shape\":[");
    e->ndim = 0;
    while (*q != ']' && e->ndim < 2) {
        e->shape[e->ndim++] = strtoll(q, &q, 10);
        if (*q == ',')
            q++;
    }
    q = (char *)offs + strlen("\"data_offsets\":[");
    e->start = strtoll(q, &q, 10);
    e->end = strtoll(q + 1, NULL, 10);
    return 1;
}

static int fill(FILE *f, uint64_t base, const entry *e, long long from, long long n, float v)
{
    if (fseek(f, (long)(base + (uint64_t)e->start + (uint64_t)from * 4), SEEK_SET) != 0)
        return 0;
    for (long long i = 0; i < n; i++)
        if (fwrite(&v, sizeof v, 1, f) != 1)
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: md-test-collapse UNET.safetensors KEEP\n");
        return 2;
    }
    long keep = strtol(argv[2], NULL, 10);
    FILE *f = NULL;
    uint64_t hlen = 0;
    char *h = st_header_read("md-test-collapse", argv[1], &f, &hlen);
    if (!h)
        return 1;
    int gates = 0;
    for (const char *p = strstr(h, ".ff.gate.weight\":{"); p;
         p = strstr(p + 1, ".ff.gate.weight\":{")) {
        const char *q = p;
        while (q > h && q[-1] != '"')
            q--;
        char block[400], name[512];
        snprintf(block, sizeof block, "%.*s", (int)(p - q), q);
        entry gate, bias;
        snprintf(name, sizeof name, "%s.ff.gate.weight", block);
        int ok = find(h, name, &gate) && gate.ndim == 2;
        snprintf(name, sizeof name, "%s.norm3.bias", block);
        ok = ok && find(h, name, &bias);
        for (long long e = 0; ok && e < gate.shape[0]; e++)
            ok = fill(f, 8 + hlen, &gate, e * gate.shape[1], gate.shape[1], e < keep ? 1.0f : -1.0f);
        ok = ok && fill(f, 8 + hlen, &bias, 0, (bias.end - bias.start) / 4, 0.1f);
        if (!ok) {
            fprintf(stderr, "md-test-collapse: %s: no F32 gate and norm3 to rewrite\n", block);
            return 1;
        }
        gates++;
    }
    free(h);
    if (fclose(f) != 0 || gates == 0) {
        fprintf(stderr, "md-test-collapse: %s: %s\n", argv[1], gates ? "write failed" : "no MoE gate");
        return 1;
    }
    printf("%d gates rewritten\n", gates);
    return 0;
}
