/* A name -> weight map over one or more safetensors files. Model loaders
 * look weights up by their diffusers name; single-file checkpoints are
 * renamed into that naming when they are opened (models/ldm_names.h), so the
 * component code has one naming to know. */
#ifndef MD_WEIGHTS_H
#define MD_WEIGHTS_H

#include "../runtime/status.h"
#include "../runtime/tensor.h"
#include "safetensors.h"

typedef struct md_weights md_weights;

md_weights *md_weights_new(const char *label); /* label names it in errors, e.g. "unet" */
void md_weights_free(md_weights *w); /* does not close the files it points into */

/* Adds a tensor under `name`; `source` (a file path) is used in messages.
 * The tensor's data is referenced, not copied. A duplicate name fails. */
md_status md_weights_add(md_weights *w, const char *name, const md_tensor *t, const char *source,
                         md_error *err);
/* Adds every tensor of a file, names unchanged. */
md_status md_weights_add_file(md_weights *w, const md_safetensors *st, md_error *err);

size_t md_weights_count(const md_weights *w);
const char *md_weights_name(const md_weights *w, size_t i);
const char *md_weights_label(const md_weights *w);
/* NULL when absent. The tensor is mutable so a backend can prepare it. */
md_tensor *md_weights_find(const md_weights *w, const char *name);
/* Looks a weight up and checks its shape (ndim == 0 skips the check);
 * trailing size-1 dims are ignored. Errors say which weight of which file is
 * missing or has which shape against which expected one. */
md_status md_weights_get(const md_weights *w, const char *name, int ndim, const int64_t *shape,
                         md_tensor **out, md_error *err);
/* printf-style name convenience: md_weights_getf(w, &t, err, 2, (int64_t[]){o,i}, "%s.weight", p) */
md_status md_weights_getf(const md_weights *w, md_tensor **out, md_error *err, int ndim,
                          const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* True when some weight name starts with prefix. */
int md_weights_has_prefix(const md_weights *w, const char *prefix);

/* Like md_weights_add, but the map takes ownership of t->data (from
 * malloc) and frees it with the map, also when adding fails. For weights
 * that had to be converted on load (e.g. a transposed projection). */
md_status md_weights_add_owned(md_weights *w, const char *name, const md_tensor *t,
                               const char *source, md_error *err);
/* The i-th weight (insertion order) and the file it came from. */
md_tensor *md_weights_tensor(const md_weights *w, size_t i);
const char *md_weights_source(const md_weights *w, size_t i);

/* For files whose keys are not the diffusers names (single-file
 * checkpoints): fn writes the file's key for a diffusers name into key and
 * returns 1 (0: none), so that a missing weight is named as the file would
 * hold it. */
typedef int (*md_weights_key_fn)(void *user, const char *name, char *key, size_t cap);
void md_weights_set_key_namer(md_weights *w, md_weights_key_fn fn, void *user);

/* Makes md_weights_get create weights that are absent instead of failing:
 * fn fills *out with the requested shape and malloc'd data (the map then
 * owns it) and returns 1, or returns 0 on failure. Lets a tool build a
 * random model by having the component loaders ask for every weight. */
typedef int (*md_weights_synth_fn)(void *user, const char *name, int ndim, const int64_t *shape,
                                   md_tensor *out);
void md_weights_set_synthesizer(md_weights *w, md_weights_synth_fn fn, void *user);

#endif
