#include "mem_available.h"

#include <stdio.h>
#include <stdlib.h>

size_t md_mem_available(void)
{
    /* A cap the user (or a test) sets: memory the process must leave to others. */
    const char *cap = getenv("MOEDIFFUSE_MEM_AVAILABLE");
    if (cap && *cap) {
        char *end;
        unsigned long long v = strtoull(cap, &end, 10);
        if (*end == '\0' && v > 0)
            return (size_t)v;
    }
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (size_t)kib * 1024;
}
