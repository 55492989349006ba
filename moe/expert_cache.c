/* The expert cache (expert_cache.h): an entry per (layer, expert), LRU
 * eviction under the caller's budget, one mutex and one condition. */
#include "expert_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/mapped_pages.h"

typedef enum entry_kind { ENTRY_FIXED, ENTRY_HOST_PAGES, ENTRY_DEVICE } entry_kind;

typedef struct cache_entry {
    const md_moe_layer *layer;
    int expert;
    entry_kind kind;
    uint64_t bytes;
    int resident, pins;
    uint64_t last_use;   /* the cache's clock at the latest acquire */
    int prefetched;      /* loaded by a prefetch and not acquired since */
    const void *map_lo, *map_hi; /* the weight file's mapping (ENTRY_HOST_PAGES) */
    md_tensor dev[4];    /* device copies (ENTRY_DEVICE), w1 b1 w2 b2 */
    md_moe_expert dev_expert;
    void *handle;        /* the device allocation */
} cache_entry;

struct md_expert_cache {
    pthread_mutex_t lock;
    pthread_cond_t unpinned;
    cache_entry *ent;
    int n;
    md_backend *loader;  /* the backend of device entries */
    uint64_t clock;
    int settled;         /* host pages never acquired were released once */
    md_expert_memory mem;
};

static md_tensor *const *expert_tensors(const md_moe_expert *x, md_tensor *out[4])
{
    out[0] = x->w1, out[1] = x->b1, out[2] = x->w2, out[3] = x->b2;
    return out;
}

static uint64_t expert_bytes(const md_moe_expert *x)
{
    md_tensor *t[4];
    uint64_t b = 0;
    expert_tensors(x, t);
    for (int j = 0; j < 4; j++)
        b += t[j] ? md_tensor_nbytes(t[j]) : 0;
    return b;
}

/* All of the expert's tensors in one read-only file mapping: its bounds. */
static int host_releasable(const md_file_maps *maps, const md_moe_expert *x, cache_entry *en)
{
    md_tensor *t[4];
    expert_tensors(x, t);
    const void *lo = NULL, *hi = NULL;
    for (int j = 0; j < 4; j++) {
        const void *l, *h;
        if (!t[j])
            continue;
        if (!md_file_maps_covers(maps, t[j]->data, md_tensor_nbytes(t[j]), &l, &h) ||
            (lo && (l != lo || h != hi)))
            return 0;
        lo = l, hi = h;
    }
    en->map_lo = lo, en->map_hi = hi;
    return lo != NULL;
}

md_status md_expert_cache_new(md_expert_cache **out, md_moe_layer *const *layers, int n,
                              md_backend *be, int deferred, md_error *err)
{
    *out = NULL;
    int total = 0;
    for (int i = 0; i < n; i++)
        total += layers[i]->num_experts;
    md_expert_cache *c = calloc(1, sizeof *c);
    if (!c || (total > 0 && !(c->ent = calloc((size_t)total, sizeof *c->ent)))) {
        free(c);
        return md_fail(err, MD_ERR_NOMEM, "out of memory for the expert cache");
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->unpinned, NULL);
    c->loader = be;
    md_file_maps *maps = be->host_weights ? md_file_maps_read() : NULL;
    for (int i = 0; i < n; i++) {
        md_moe_layer *l = layers[i];
        l->cache = c;
        l->cache_first = c->n;
        for (int e = 0; e < l->num_experts; e++) {
            cache_entry *en = &c->ent[c->n++];
            *en = (cache_entry){.layer = l, .expert = e, .bytes = expert_bytes(&l->experts[e])};
            if (deferred)
                en->kind = ENTRY_DEVICE;
            else if (be->host_weights && host_releasable(maps, &l->experts[e], en))
                en->kind = ENTRY_HOST_PAGES;
            else
                en->kind = ENTRY_FIXED, en->resident = 1;
            c->mem.total += en->bytes;
            if (en->kind == ENTRY_FIXED)
                c->mem.fixed += en->bytes;
            else if (en->bytes > c->mem.largest)
                c->mem.largest = en->bytes;
        }
    }
    md_file_maps_free(maps);
    c->mem.entries = c->n;
    c->mem.device = deferred;
    c->mem.minimum = c->mem.fixed + c->mem.largest;
    c->mem.resident = c->mem.peak = c->mem.fixed;
    *out = c;
    return MD_OK;
}

static void unload(md_expert_cache *c, cache_entry *en)
{
    if (en->kind == ENTRY_HOST_PAGES) {
        md_tensor *t[4];
        expert_tensors(&en->layer->experts[en->expert], t);
        for (int j = 0; j < 4; j++)
            if (t[j])
                md_pages_release(t[j]->data, md_tensor_nbytes(t[j]), en->map_lo, en->map_hi);
    } else if (en->kind == ENTRY_DEVICE && en->handle) {
        c->loader->weights_unload(c->loader, en->handle);
        en->handle = NULL;
    }
}

void md_expert_cache_free(md_expert_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        if (c->ent[i].kind == ENTRY_DEVICE && c->ent[i].resident)
            unload(c, &c->ent[i]);
    pthread_cond_destroy(&c->unpinned);
    pthread_mutex_destroy(&c->lock);
    free(c->ent);
    free(c);
}

static void evict(md_expert_cache *c, cache_entry *en)
{
    unload(c, en);
    en->resident = 0;
    en->prefetched = 0;
    c->mem.resident -= en->bytes;
    c->mem.evictions++;
}

/* The least recently used resident entry that may go, NULL if none. */
static cache_entry *victim(md_expert_cache *c, const cache_entry *keep)
{
    cache_entry *v = NULL;
    for (int i = 0; i < c->n; i++) {
        cache_entry *en = &c->ent[i];
        if (en != keep && en->resident && en->kind != ENTRY_FIXED && en->pins == 0 &&
            (!v || en->last_use < v->last_use))
            v = en;
    }
    return v;
}

static int pinned_elsewhere(const md_expert_cache *c, const cache_entry *keep)
{
    for (int i = 0; i < c->n; i++)
        if (&c->ent[i] != keep && c->ent[i].pins > 0)
            return 1;
    return 0;
}

/* The first bounded use: host pages nobody acquired may still be resident
 * (nothing tracked them), so they are released once to make the count
 * true. */
static void settle(md_expert_cache *c)
{
    if (c->settled)
        return;
    c->settled = 1;
    for (int i = 0; i < c->n; i++)
        if (c->ent[i].kind == ENTRY_HOST_PAGES && !c->ent[i].resident)
            unload(c, &c->ent[i]);
}

/* Evicts until `keep` fits under budget (resident already, or with its
 * bytes added); waits while the rest is pinned by other generations, which
 * may meanwhile have made `keep` resident themselves. 0 when it fits. */
static int make_room(md_expert_cache *c, const cache_entry *keep, uint64_t budget)
{
    while (c->mem.resident + (keep->resident ? 0 : keep->bytes) > budget) {
        cache_entry *v = victim(c, keep);
        if (v)
            evict(c, v);
        else if (pinned_elsewhere(c, keep))
            pthread_cond_wait(&c->unpinned, &c->lock);
        else
            return -1;
    }
    return 0;
}

static md_status load(md_expert_cache *c, cache_entry *en, md_error *err)
{
    if (en->kind == ENTRY_DEVICE) {
        md_tensor *host[4];
        expert_tensors(&en->layer->experts[en->expert], host);
        const md_tensor *src[4];
        md_tensor *slot[4];
        int n = 0;
        for (int j = 0; j < 4; j++)
            if (host[j])
                src[n] = host[j], slot[n++] = &en->dev[j];
        md_tensor got[4];
        md_status s = c->loader->weights_load(c->loader, src, got, n, &en->handle, err);
        if (s != MD_OK)
            return md_fail_context(err, "MoE %s: loading expert %d: ", en->layer->name,
                                   en->expert);
        for (int j = 0; j < n; j++)
            *slot[j] = got[j];
        en->dev_expert = (md_moe_expert){host[0] ? &en->dev[0] : NULL,
                                         host[1] ? &en->dev[1] : NULL,
                                         host[2] ? &en->dev[2] : NULL,
                                         host[3] ? &en->dev[3] : NULL};
    }
    en->resident = 1;
    c->mem.resident += en->bytes;
    c->mem.loads++;
    return MD_OK;
}

/* "1.5 GiB", "300.0 MiB", "12.0 KiB", "512 bytes". */
static const char *size_text(char buf[32], uint64_t b)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024)
        snprintf(buf, 32, "%llu bytes", (unsigned long long)b);
    else {
        double v = (double)b / 1024.0;
        int u = 0;
        while (v >= 1024.0 && u < 3)
            v /= 1024.0, u++;
        snprintf(buf, 32, "%.1f %s", v, unit[u]);
    }
    return buf;
}

/* Makes `en` resident under budget (lock held). */
static md_status ensure(md_expert_cache *c, cache_entry *en, uint64_t budget, md_error *err)
{
    if (budget)
        settle(c);
    if (make_room(c, en, budget ? budget : UINT64_MAX) != 0) {
        char b[32], x[32];
        return md_fail(err, MD_ERR_INVALID, "MoE %s: expert %d (%s) does not fit max_expert_memory %s",
                       en->layer->name, en->expert, size_text(x, en->bytes),
                       size_text(b, budget));
    }
    md_status s = en->resident ? MD_OK : load(c, en, err);
    if (c->mem.resident > c->mem.peak)
        c->mem.peak = c->mem.resident;
    return s;
}

static cache_entry *entry_of(md_expert_cache *c, const md_moe_layer *l, int e)
{
    return &c->ent[l->cache_first + e];
}

md_status md_expert_cache_acquire(md_expert_cache *c, const md_moe_layer *l, int e,
                                  uint64_t budget, md_backend *be, md_moe_expert *use,
                                  md_error *err)
{
    cache_entry *en = entry_of(c, l, e);
    if (en->kind == ENTRY_FIXED) { /* always resident: nothing to count or lock */
        *use = l->experts[e];
        return MD_OK;
    }
    if (en->kind == ENTRY_DEVICE && be != c->loader)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "MoE %s: experts loaded on demand belong to the loading backend",
                       l->name);
    pthread_mutex_lock(&c->lock);
    int was = en->resident;
    md_status s = ensure(c, en, budget, err);
    if (s == MD_OK) {
        if (was)
            c->mem.hits++;
        if (en->prefetched)
            c->mem.prefetch_used++, en->prefetched = 0;
        en->pins++;
        en->last_use = ++c->clock;
        *use = en->kind == ENTRY_DEVICE ? en->dev_expert : l->experts[e];
    }
    pthread_mutex_unlock(&c->lock);
    return s;
}

void md_expert_cache_release(md_expert_cache *c, const md_moe_layer *l, int e)
{
    cache_entry *en = entry_of(c, l, e);
    if (en->kind == ENTRY_FIXED)
        return;
    pthread_mutex_lock(&c->lock);
    if (en->pins > 0 && --en->pins == 0)
        pthread_cond_broadcast(&c->unpinned);
    pthread_mutex_unlock(&c->lock);
}

void md_expert_cache_prefetch(md_expert_cache *c, const md_moe_layer *l, uint64_t mask,
                              uint64_t budget, md_backend *be)
{
    /* Host pages load as they are read; only device entries prefetch.
     * mem.device never changes after md_expert_cache_new. */
    if (!c->mem.device || be != c->loader)
        return;
    pthread_mutex_lock(&c->lock);
    for (int e = 0; e < l->num_experts && e < 64; e++) {
        cache_entry *en = entry_of(c, l, e);
        if (!(mask >> e & 1) || en->kind != ENTRY_DEVICE || en->resident)
            continue;
        md_error ignored = {0};
        if (ensure(c, en, budget, &ignored) == MD_OK) {
            en->prefetched = 1;
            en->last_use = ++c->clock;
            c->mem.prefetches++;
        }
    }
    pthread_mutex_unlock(&c->lock);
}

md_status md_expert_cache_check(const md_expert_cache *c, uint64_t budget, md_error *err)
{
    if (!c || budget == 0 || budget >= c->mem.minimum)
        return MD_OK;
    char b[32], m[32], f[32], l[32];
    if (c->mem.fixed)
        return md_fail(err, MD_ERR_INVALID,
                       "max_expert_memory %s is below this model's minimum of %s: %s of experts "
                       "stay resident (%s) plus the largest expert, %s",
                       size_text(b, budget), size_text(m, c->mem.minimum),
                       size_text(f, c->mem.fixed),
                       c->mem.device || !c->loader->host_weights
                           ? "uploaded whole at load: on Vulkan give the bound when the model "
                             "loads (context max_expert_memory, the command line's "
                             "--max-expert-memory)"
                           : "converted on load",
                       size_text(l, c->mem.largest));
    return md_fail(err, MD_ERR_INVALID,
                   "max_expert_memory %s is below this model's largest expert, %s: the smallest "
                   "bound that works",
                   size_text(b, budget), size_text(l, c->mem.largest));
}

void md_expert_cache_memory(md_expert_cache *c, md_expert_memory *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->mem;
    pthread_mutex_unlock(&c->lock);
}

void md_expert_cache_reset(md_expert_cache *c)
{
    pthread_mutex_lock(&c->lock);
    c->mem.peak = c->mem.fixed; /* from the next use on, after its evictions */
    c->mem.loads = c->mem.hits = c->mem.evictions = 0;
    c->mem.prefetches = c->mem.prefetch_used = 0;
    pthread_mutex_unlock(&c->lock);
}

/* One simulated use of entry i (LRU under budget): 1 when it had to load. */
static int simulate_use(const md_expert_cache *c, uint64_t *stamp, uint64_t clock,
                        uint64_t *resident, uint64_t budget, int i)
{
    if (stamp[i]) {
        stamp[i] = clock;
        return 0;
    }
    while (*resident + c->ent[i].bytes > budget) {
        int v = -1;
        for (int j = 0; j < c->n; j++)
            if (stamp[j] && c->ent[j].kind != ENTRY_FIXED && (v < 0 || stamp[j] < stamp[v]))
                v = j;
        if (v < 0)
            break;
        stamp[v] = 0;
        *resident -= c->ent[v].bytes;
    }
    stamp[i] = clock;
    *resident += c->ent[i].bytes;
    return 1;
}

md_status md_expert_cache_simulate(const md_expert_cache *c, const md_moe_routes *routes,
                                   uint64_t budget, md_expert_estimate *out, md_error *err)
{
    memset(out, 0, sizeof *out);
    uint64_t *stamp = calloc(c->n ? (size_t)c->n : 1, sizeof *stamp);
    if (!stamp)
        return md_fail(err, MD_ERR_NOMEM, "out of memory");
    uint64_t resident = c->mem.fixed, clock = 0, later = 0, later_bytes = 0, used = 0;
    const uint64_t bound = budget ? budget : UINT64_MAX;
    for (int i = 0; i < c->n; i++)
        if (c->ent[i].kind == ENTRY_FIXED)
            stamp[i] = ++clock;
    for (int step = routes->first_step; step < routes->steps; step++) {
        out->steps++;
        for (int li = 0; li < c->n; li += c->ent[li].layer->num_experts) {
            const md_moe_layer *l = c->ent[li].layer;
            const md_moe_route_entry *en = md_moe_routes_at(routes, step, l->index);
            if (!en)
                continue;
            uint64_t mask = 0;
            for (int64_t j = 0; j < en->n * en->k; j++)
                if (en->experts[j] >= 0 && en->experts[j] < l->num_experts && en->experts[j] < 64)
                    mask |= (uint64_t)1 << en->experts[j];
            for (int e = 0; e < l->num_experts && e < 64; e++) {
                if (!(mask >> e & 1))
                    continue;
                used++;
                int loaded = simulate_use(c, stamp, ++clock, &resident, bound, li + e);
                if (step == routes->first_step)
                    out->first_loads += (uint64_t)loaded;
                else if (loaded) {
                    later++;
                    later_bytes += c->ent[li + e].bytes;
                }
            }
        }
    }
    free(stamp);
    if (out->steps > 1) {
        out->loads_per_step = (double)later / (out->steps - 1);
        out->bytes_per_step = (double)later_bytes / (out->steps - 1);
    }
    if (out->steps > 0)
        out->used_per_step = (double)used / out->steps;
    return MD_OK;
}
