/* The expert cache: which routed experts' weights are resident, kept under
 * a byte budget (the request's max_expert_memory). It is the one mutable
 * structure that generations on one loaded model share (docs/architecture.md):
 * every entry point takes its lock, so any number of generations may use
 * it at once. One entry per (MoE layer, expert), in one of three kinds:
 *   - host pages (CPU): the expert's weights are pages of the read-only
 *     weight mapping; evicting releases them (io/mapped_pages.h), using
 *     them faults them back from the file;
 *   - device (a backend with weights_load, under a budget set at load):
 *     the weights are copied to the device when needed and freed when
 *     evicted; the previous call's experts are prefetched;
 *   - fixed: always resident and never evicted (weights converted on load,
 *     or uploaded whole because the model loaded without a budget). They
 *     count against every budget.
 * An expert in use is pinned and never evicted; a generation pins one
 * expert at a time, so a budget of at least `minimum` always makes
 * progress (a generation waits while every other resident expert is
 * pinned by others). Least recently used experts are evicted first. */
#ifndef MD_EXPERT_CACHE_H
#define MD_EXPERT_CACHE_H

#include <stdint.h>

#include "moe.h"

typedef struct md_expert_memory {
    uint64_t total;    /* routed experts' weights over all MoE layers, bytes as stored */
    uint64_t largest;  /* the largest releasable expert */
    uint64_t fixed;    /* bytes that stay resident whatever the budget */
    uint64_t minimum;  /* the smallest budget that works: fixed + largest */
    uint64_t resident; /* now */
    uint64_t peak;     /* the most resident at any expert use since the last reset (a use
                          first evicts down to its bound) */
    uint64_t loads, hits, evictions;   /* since the last reset */
    uint64_t prefetches, prefetch_used; /* device entries loaded ahead; of them, used */
    int entries, device;                /* device: 1 when entries load onto a device */
} md_expert_memory;

/* Made once the model's MoE layers are loaded (md_unet_load); sets each
 * layer's `cache` and `cache_first`. `deferred`: the layers' experts were
 * left unprepared for be->weights_load (Vulkan under a load budget). */
md_status md_expert_cache_new(md_expert_cache **out, md_moe_layer *const *layers, int n,
                              md_backend *be, int deferred, md_error *err);
void md_expert_cache_free(md_expert_cache *c);

/* Makes expert e of layer l resident under `budget` bytes (0 = no bound),
 * evicting the least recently used unpinned experts as needed, and pins
 * it; *use receives its weights as `be` computes with them. A budget below
 * `minimum` is MD_ERR_INVALID (md_expert_cache_check says so earlier). */
md_status md_expert_cache_acquire(md_expert_cache *c, const md_moe_layer *l, int e,
                                  uint64_t budget, md_backend *be, md_moe_expert *use,
                                  md_error *err);
void md_expert_cache_release(md_expert_cache *c, const md_moe_layer *l, int e);
/* Loads the experts of `mask` (bit e) ahead of their use, on device
 * entries only (host pages load as they are read). Failures are left to
 * the acquire that needs the expert. */
void md_expert_cache_prefetch(md_expert_cache *c, const md_moe_layer *l, uint64_t mask,
                              uint64_t budget, md_backend *be);

/* What an LRU cache under `budget` would load for a recorded generation:
 * the routes (bound to the cache's model) replayed in the layers' order,
 * starting from nothing resident. Only reads the cache's sizes. */
typedef struct md_expert_estimate {
    int steps;                 /* steps the routes hold */
    uint64_t first_loads;      /* loads of the first step (all cold) */
    double loads_per_step;     /* mean over the later steps */
    double bytes_per_step;     /* bytes those loads read */
    double used_per_step;      /* distinct experts used per step (all layers) */
} md_expert_estimate;
md_status md_expert_cache_simulate(const md_expert_cache *c, const md_moe_routes *routes,
                                   uint64_t budget, md_expert_estimate *out, md_error *err);

/* Whether a generation can run under `budget` (0: always): MD_ERR_INVALID
 * with the sizes when it is below the minimum. */
md_status md_expert_cache_check(const md_expert_cache *c, uint64_t budget, md_error *err);
void md_expert_cache_memory(md_expert_cache *c, md_expert_memory *out);
/* Restarts the counters and the peak. */
void md_expert_cache_reset(md_expert_cache *c);

#endif
