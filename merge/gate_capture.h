/* A backend wrapper that watches the linear calls on chosen weights and
 * keeps, of the last armed call of each, what SegMoE's gate
 * initialisation takes from its forward hook: the input's last batch row
 * ([seq, in]: the positive-prompt half of a guidance batch) averaged over
 * the sequence. Every other entry is the inner backend's own: the wrapper
 * is a copy of its table with linear and destroy replaced, so the inner
 * backend's entries receive the wrapper and find their state through
 * impl, which the copy keeps (so the inner backend must be a backend of
 * its own, CPU or Vulkan, not another wrapper). */
#ifndef MD_GATE_CAPTURE_H
#define MD_GATE_CAPTURE_H

#include "../runtime/backend.h"

/* weights[i] (by identity: the model's own tensors) are watched; the
 * arrays are copied. */
md_status md_capture_new(md_backend *inner, const md_tensor *const *weights, int n,
                         md_backend **out, md_error *err);
/* Calls are recorded only while armed (SegMoE keeps the last call's). */
void md_capture_arm(md_backend *be, int on);
/* Mean over the sequence of the last row of watched weight i's last armed
 * call, [in] floats (dim set); NULL when it was never called armed. */
const float *md_capture_mean(const md_backend *be, int i, int *dim);

#endif
