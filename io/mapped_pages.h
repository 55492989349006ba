/* Pages of read-only file mappings (the weights' mmap): which host ranges
 * are such pages, and giving them back to the kernel. Released pages of a
 * read-only file mapping are read again from the file (usually from the
 * page cache) on their next access, so releasing them never changes what
 * a later read sees; the process's resident memory drops at once. Memory
 * of any other kind (malloc'd, converted on load) is never released. */
#ifndef MD_MAPPED_PAGES_H
#define MD_MAPPED_PAGES_H

#include <stddef.h>

/* The process's read-only file mappings at the time of the call. */
typedef struct md_file_maps md_file_maps;
md_file_maps *md_file_maps_read(void); /* NULL when they cannot be read (not Linux, no /proc) */
void md_file_maps_free(md_file_maps *m);
/* 1 when [p, p + n) lies wholly in one read-only, private file mapping;
 * that mapping's bounds go to *lo, *hi (either may be NULL). */
int md_file_maps_covers(const md_file_maps *m, const void *p, size_t n, const void **lo,
                        const void **hi);

/* Releases the pages of [p, p + n) and of MD_FAULT_AROUND bytes on either
 * side, within the mapping [lo, hi) that md_file_maps_covers found. The
 * margin: a page fault of a file mapping also maps the neighbouring pages
 * that are in the page cache (the kernel's fault-around, 64 KiB by
 * default), so reading one range leaves pages of its neighbours resident;
 * releasing a neighbour's page only costs a fault if it is read again. */
#define MD_FAULT_AROUND ((size_t)64 << 10)
void md_pages_release(const void *p, size_t n, const void *lo, const void *hi);

#endif
