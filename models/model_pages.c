/* Giving a component's mapped weight pages back (model.h). */
#include <string.h>

#include "../io/mapped_pages.h"
#include "model.h"

void md_model_release_pages(const md_model *m, const char *component)
{
    md_file_maps *maps = md_file_maps_read();
    if (!maps)
        return;
    size_t len = strlen(component);
    for (int i = 0; i < m->nweights; i++) {
        const md_weights *w = m->weights[i];
        if (strncmp(md_weights_label(w), component, len) != 0)
            continue;
        for (size_t k = 0; k < md_weights_count(w); k++) {
            const md_tensor *t = md_weights_tensor(w, k);
            const void *lo, *hi;
            /* Only read-only file mappings: converted or owned weights stay. */
            if (t->data && md_file_maps_covers(maps, t->data, md_tensor_nbytes(t), &lo, &hi))
                md_pages_release(t->data, md_tensor_nbytes(t), lo, hi);
        }
    }
    md_file_maps_free(maps);
}
