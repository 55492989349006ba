#include "mapped_pages.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct file_range {
    uintptr_t lo, hi;
} file_range;

struct md_file_maps {
    file_range *r;
    size_t n;
};

md_file_maps *md_file_maps_read(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return NULL;
    md_file_maps *m = calloc(1, sizeof *m);
    size_t cap = 0;
    char line[4096];
    while (m && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, inode;
        char perms[8];
        /* start-end perms offset dev inode [path] */
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &inode) != 4)
            continue;
        /* inode 0: anonymous. A writable mapping could hold changes that
         * releasing would lose; a shared one is not ours alone. */
        if (inode == 0 || perms[1] == 'w' || perms[3] != 'p')
            continue;
        if (m->n == cap) {
            cap = cap ? 2 * cap : 64;
            file_range *p = realloc(m->r, cap * sizeof *p);
            if (!p) {
                md_file_maps_free(m);
                m = NULL;
                break;
            }
            m->r = p;
        }
        m->r[m->n++] = (file_range){lo, hi};
    }
    fclose(f);
    return m;
}

void md_file_maps_free(md_file_maps *m)
{
    if (!m)
        return;
    free(m->r);
    free(m);
}

int md_file_maps_covers(const md_file_maps *m, const void *p, size_t n, const void **lo,
                        const void **hi)
{
    uintptr_t a = (uintptr_t)p, b = a + n;
    for (size_t i = 0; m && i < m->n; i++)
        if (a >= m->r[i].lo && b <= m->r[i].hi) {
            if (lo)
                *lo = (const void *)m->r[i].lo;
            if (hi)
                *hi = (const void *)m->r[i].hi;
            return 1;
        }
    return 0;
}

void md_pages_release(const void *p, size_t n, const void *map_lo, const void *map_hi)
{
    if (n == 0)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, b = a + n;
    a = a - (uintptr_t)map_lo > MD_FAULT_AROUND ? a - MD_FAULT_AROUND : (uintptr_t)map_lo;
    b = (uintptr_t)map_hi - b > MD_FAULT_AROUND ? b + MD_FAULT_AROUND : (uintptr_t)map_hi;
    uintptr_t lo = a / page * page;
    uintptr_t hi = (b + page - 1) / page * page;
    /* Advice only: should it fail, the pages simply stay resident. */
    (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
