/* The memory the system can still give this process without swapping. */
#ifndef MD_MEM_AVAILABLE_H
#define MD_MEM_AVAILABLE_H

#include <stddef.h>

/* Bytes: $MOEDIFFUSE_MEM_AVAILABLE when set (a whole number of bytes),
 * else Linux's MemAvailable (/proc/meminfo); 0 when unknown. */
size_t md_mem_available(void);

#endif
