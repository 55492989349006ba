#include "weights.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries live in fixed-size chunks so that the md_tensor pointers handed
 * to model code stay valid while more weights are added. */
#define MD_W_CHUNK 256

typedef struct md_weight_entry {
    char *name;
    md_tensor t;
    const char *source; /* one of md_weights.sources */
} md_weight_entry;

struct md_weights {
    char *label;
    md_weight_entry **chunks;
    size_t nchunks;
    size_t count;
    size_t *table; /* open addressing: entry index + 1, 0 = empty */
    size_t table_cap;
    char **sources; /* distinct source paths, in order of first use */
    size_t nsources;
    void **owned;
    size_t nowned, owned_cap;
    md_weights_synth_fn synth;
    void *synth_user;
    md_weights_key_fn key_fn;
    void *key_user;
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static md_weight_entry *entry(const md_weights *w, size_t i)
{
    return &w->chunks[i / MD_W_CHUNK][i % MD_W_CHUNK];
}

md_weights *md_weights_new(const char *label)
{
    md_weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->label = strdup(label ? label : "weights");
    if (!w->label) {
        free(w);
        return NULL;
    }
    return w;
}

void md_weights_free(md_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->count; i++)
        free(entry(w, i)->name);
    for (size_t c = 0; c < w->nchunks; c++)
        free(w->chunks[c]);
    free(w->chunks);
    free(w->table);
    for (size_t i = 0; i < w->nsources; i++)
        free(w->sources[i]);
    free(w->sources);
    for (size_t i = 0; i < w->nowned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->label);
    free(w);
}

static long find_index(const md_weights *w, const char *name)
{
    if (!w->table_cap)
        return -1;
    size_t mask = w->table_cap - 1;
    for (size_t h = (size_t)hash_name(name) & mask;; h = (h + 1) & mask) {
        size_t v = w->table[h];
        if (!v)
            return -1;
        if (strcmp(entry(w, v - 1)->name, name) == 0)
            return (long)(v - 1);
    }
}

static int table_grow(md_weights *w)
{
    size_t cap = w->table_cap ? w->table_cap * 2 : 64;
    size_t *t = calloc(cap, sizeof *t);
    if (!t)
        return 0;
    for (size_t i = 0; i < w->count; i++) {
        size_t h = (size_t)hash_name(entry(w, i)->name) & (cap - 1);
        while (t[h])
            h = (h + 1) & (cap - 1);
        t[h] = i + 1;
    }
    free(w->table);
    w->table = t;
    w->table_cap = cap;
    return 1;
}

static const char *intern_source(md_weights *w, const char *source)
{
    if (!source)
        source = "(memory)";
    for (size_t i = 0; i < w->nsources; i++)
        if (strcmp(w->sources[i], source) == 0)
            return w->sources[i];
    char **s = realloc(w->sources, (w->nsources + 1) * sizeof *s);
    if (!s)
        return NULL;
    w->sources = s;
    if (!(s[w->nsources] = strdup(source)))
        return NULL;
    return s[w->nsources++];
}

md_status md_weights_add(md_weights *w, const char *name, const md_tensor *t, const char *source,
                         md_error *err)
{
    if (find_index(w, name) >= 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: weight '%s' appears twice (second time in %s)",
                       w->label, name, source ? source : "(memory)");
    /* Keep the load factor at or below 1/2. */
    if ((w->count + 1) * 2 > w->table_cap && !table_grow(w))
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", w->label);
    if (w->count == w->nchunks * MD_W_CHUNK) {
        md_weight_entry **c = realloc(w->chunks, (w->nchunks + 1) * sizeof *c);
        if (!c)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", w->label);
        w->chunks = c;
        if (!(c[w->nchunks] = calloc(MD_W_CHUNK, sizeof **c)))
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", w->label);
        w->nchunks++;
    }
    const char *src = intern_source(w, source);
    md_weight_entry *e = entry(w, w->count);
    if (!src || !(e->name = strdup(name)))
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", w->label);
    e->t = *t;
    e->source = src;
    size_t h = (size_t)hash_name(name) & (w->table_cap - 1);
    while (w->table[h])
        h = (h + 1) & (w->table_cap - 1);
    w->table[h] = ++w->count;
    return MD_OK;
}

md_status md_weights_add_owned(md_weights *w, const char *name, const md_tensor *t,
                               const char *source, md_error *err)
{
    if (w->nowned == w->owned_cap) {
        size_t cap = w->owned_cap ? w->owned_cap * 2 : 8;
        void **o = realloc(w->owned, cap * sizeof *o);
        if (!o) {
            free(t->data);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", w->label);
        }
        w->owned = o;
        w->owned_cap = cap;
    }
    md_status s = md_weights_add(w, name, t, source, err);
    if (s != MD_OK) {
        free(t->data);
        return s;
    }
    w->owned[w->nowned++] = t->data;
    return MD_OK;
}

md_status md_weights_add_file(md_weights *w, const md_safetensors *st, md_error *err)
{
    size_t n = md_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        md_status s = md_weights_add(w, md_safetensors_name(st, i), md_safetensors_tensor(st, i),
                                     md_safetensors_path(st), err);
        if (s != MD_OK)
            return s;
    }
    return MD_OK;
}

size_t md_weights_count(const md_weights *w) { return w->count; }
const char *md_weights_label(const md_weights *w) { return w->label; }

const char *md_weights_name(const md_weights *w, size_t i)
{
    return i < w->count ? entry(w, i)->name : NULL;
}

md_tensor *md_weights_tensor(const md_weights *w, size_t i)
{
    return i < w->count ? &entry(w, i)->t : NULL;
}

const char *md_weights_source(const md_weights *w, size_t i)
{
    return i < w->count ? entry(w, i)->source : NULL;
}

md_tensor *md_weights_find(const md_weights *w, const char *name)
{
    long i = find_index(w, name);
    return i < 0 ? NULL : &entry(w, (size_t)i)->t;
}

static void describe_sources(const md_weights *w, char *buf, size_t cap)
{
    if (w->nsources == 0) {
        snprintf(buf, cap, "no weights loaded");
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < w->nsources && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", w->sources[i]);
}

void md_weights_set_key_namer(md_weights *w, md_weights_key_fn fn, void *user)
{
    w->key_fn = fn;
    w->key_user = user;
}

void md_weights_set_synthesizer(md_weights *w, md_weights_synth_fn fn, void *user)
{
    w->synth = fn;
    w->synth_user = user;
}

/* The map is const to lookups but grows here; it always lives on the heap
 * (md_weights_new), so writing through it is well defined. */
static md_status synthesize(const md_weights *cw, const char *name, int ndim,
                            const int64_t *shape, md_error *err)
{
    md_weights *w = (md_weights *)(uintptr_t)cw;
    if (ndim < 1 || ndim > MD_MAX_DIMS)
        return md_fail(err, MD_ERR_INVALID, "%s: cannot create weight '%s' without a shape",
                       w->label, name);
    md_tensor t = {0};
    if (!w->synth(w->synth_user, name, ndim, shape, &t) || !t.data)
        return md_fail(err, MD_ERR_NOMEM, "%s: creating weight '%s' failed", w->label, name);
    return md_weights_add_owned(w, name, &t, "(synthesized)", err);
}

md_status md_weights_get(const md_weights *w, const char *name, int ndim, const int64_t *shape,
                         md_tensor **out, md_error *err)
{
    *out = NULL;
    long i = find_index(w, name);
    if (i < 0 && w->synth) {
        md_status s = synthesize(w, name, ndim, shape, err);
        if (s != MD_OK)
            return s;
        i = find_index(w, name);
    }
    if (i < 0) {
        char src[300];
        describe_sources(w, src, sizeof src);
        char key[320];
        if (w->key_fn && w->key_fn(w->key_user, name, key, sizeof key))
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: weight '%s' is missing (model: %s; the tensor '%s' is not in it)",
                           w->label, name, src, key);
        return md_fail(err, MD_ERR_FORMAT, "%s: weight '%s' is missing (model: %s)", w->label,
                       name, src);
    }
    md_weight_entry *e = entry(w, (size_t)i);
    if (ndim > 0 && !md_shape_equal(&e->t, ndim, shape)) {
        md_tensor want = {.ndim = ndim > MD_MAX_DIMS ? MD_MAX_DIMS : ndim};
        for (int d = 0; d < want.ndim; d++)
            want.shape[d] = shape[d];
        char have_s[96], want_s[96];
        return md_fail(err, MD_ERR_FORMAT, "%s: weight '%s' in %s has shape %s but the config needs %s",
                       w->label, name, e->source, md_shape_str(&e->t, have_s, sizeof have_s),
                       md_shape_str(&want, want_s, sizeof want_s));
    }
    *out = &e->t;
    return MD_OK;
}

md_status md_weights_getf(const md_weights *w, md_tensor **out, md_error *err, int ndim,
                          const int64_t *shape, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        *out = NULL;
        return md_fail(err, MD_ERR_INVALID, "%s: weight name too long", w->label);
    }
    return md_weights_get(w, name, ndim, shape, out, err);
}

int md_weights_has_prefix(const md_weights *w, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < w->count; i++)
        if (strncmp(entry(w, i)->name, prefix, n) == 0)
            return 1;
    return 0;
}
