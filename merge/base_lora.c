/* Top-level LoRAs of a merge (base_lora.h). */
#include "base_lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_stream.h"

static md_status add_map(md_base_lora *bl, const char *label, const md_safetensors *st,
                         md_error *err)
{
    md_weights *w = md_weights_new(label);
    if (!w)
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    bl->maps[bl->nmaps++] = w;
    return md_weights_add_file(w, st, err);
}

md_status md_base_lora_open(md_base_lora *bl, const md_merge_config *cfg, md_safetensors *unet,
                            md_error *err)
{
    memset(bl, 0, sizeof *bl);
    if (!cfg->nbase_loras)
        return MD_OK;
    static const char *const te_dirs[] = {"text_encoder", "text_encoder_2"};
    char path[MD_MERGE_PATH_MAX + 64];
    MD_TRY(add_map(bl, "unet", unet, err));
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/model.safetensors", cfg->base, te_dirs[i]);
        if (access(path, F_OK) != 0)
            continue;
        if (md_safetensors_open(path, &bl->te[i], err) != MD_OK)
            return md_fail_context(err, "%s: base_model: ", cfg->path);
        MD_TRY(add_map(bl, te_dirs[i], bl->te[i], err));
    }
    bl->files = calloc((size_t)cfg->nbase_loras, sizeof *bl->files);
    if (!bl->files)
        return md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; i < cfg->nbase_loras; i++) {
        md_status s = md_lora_file_open(cfg->base_loras[i].path, &bl->files[i], err);
        bl->nfiles += s == MD_OK;
        if (s == MD_OK)
            s = md_lora_bind_maps(&bl->b, bl->maps, bl->nmaps, NULL, bl->files[i],
                                  cfg->base_loras[i].scale, 0, err);
        if (s != MD_OK)
            return md_fail_context(err, "%s: loras[%d]: ", cfg->path, i);
    }
    return MD_OK;
}

int md_base_lora_modifies(const md_base_lora *bl, const char *name)
{
    return bl->b.count && md_lora_bound_weight(&bl->b, name) != NULL;
}

md_status md_base_lora_fused(const md_base_lora *bl, const char *name, float **out,
                             md_error *err)
{
    const md_tensor *w = md_lora_bound_weight(&bl->b, name);
    *out = w ? malloc(sizeof(float) * (size_t)md_tensor_numel(w)) : NULL;
    if (!*out)
        return md_fail(err, w ? MD_ERR_NOMEM : MD_ERR_INVALID, "merge: LoRA: %s: %s", name,
                       w ? "out of memory" : "not modified");
    md_status s = md_lora_fused_weight(&bl->b, w, NULL, *out, err);
    if (s != MD_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

md_status md_base_lora_write_te(const md_base_lora *bl, int which, const char *dst,
                                md_error *err)
{
    const md_safetensors *st = bl->te[which];
    if (!st)
        return MD_OK;
    size_t n = md_safetensors_count(st);
    int modified = 0;
    for (size_t i = 0; i < n && !modified; i++)
        modified = md_base_lora_modifies(bl, md_safetensors_name(st, i));
    if (!modified)
        return MD_OK;
    const char **names = malloc(sizeof *names * (n + 1));
    md_tensor *specs = malloc(sizeof *specs * (n + 1));
    md_status s = names && specs ? MD_OK : md_fail(err, MD_ERR_NOMEM, "merge: out of memory");
    for (size_t i = 0; s == MD_OK && i < n; i++) {
        names[i] = md_safetensors_name(st, i);
        specs[i] = *md_safetensors_tensor(st, i);
    }
    md_st_stream *out = NULL;
    /* The copied file is replaced: same names and dtypes, fused values. */
    if (s == MD_OK && unlink(dst) != 0)
        s = md_fail(err, MD_ERR_IO, "%s: cannot replace it", dst);
    if (s == MD_OK)
        s = md_st_stream_open(dst, names, specs, n, &out, err);
    for (size_t i = 0; s == MD_OK && i < n; i++) {
        float *fused = NULL;
        if (md_base_lora_modifies(bl, names[i])) {
            s = md_base_lora_fused(bl, names[i], &fused, err);
            if (s == MD_OK)
                s = md_st_stream_put(out, i, MD_F32, fused, err);
            free(fused);
        } else {
            s = md_st_stream_put(out, i, specs[i].dtype, specs[i].data, err);
        }
    }
    if (out && s == MD_OK)
        s = md_st_stream_close(out, err);
    else
        md_st_stream_abort(out);
    free(names);
    free(specs);
    return s;
}

void md_base_lora_close(md_base_lora *bl)
{
    md_lora_binding_clear(&bl->b);
    for (int i = 0; i < bl->nfiles; i++)
        md_lora_file_free(bl->files[i]);
    free(bl->files);
    for (int i = 0; i < bl->nmaps; i++)
        md_weights_free(bl->maps[i]);
    for (int i = 0; i < 2; i++)
        md_safetensors_close(bl->te[i]);
    memset(bl, 0, sizeof *bl);
}
