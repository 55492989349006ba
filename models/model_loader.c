/* md_model_load / md_model_free and the steps both loaders share. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_internal.h"

/* The largest side a request may ask for (pipeline/request.c). */
#define MD_MODEL_MAX_SIDE 8192

md_status md_path_join(char *buf, size_t cap, const char *dir, const char *a, const char *b,
                       md_error *err)
{
    int n = snprintf(buf, cap, "%s%s%s%s%s", dir, a ? "/" : "", a ? a : "", b ? "/" : "",
                     b ? b : "");
    if (n < 0 || (size_t)n >= cap)
        return md_fail(err, MD_ERR_INVALID, "%s: path too long", dir);
    return MD_OK;
}

md_status md_model_open_file(md_model *m, const char *path, md_safetensors **out, md_error *err)
{
    if (m->nfiles >= MD_MODEL_MAX_FILES)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: more than %d weight files in one model", path,
                       MD_MODEL_MAX_FILES);
    md_status s = md_safetensors_open(path, out, err);
    if (s == MD_OK)
        m->files[m->nfiles++] = *out;
    return s;
}

md_status md_model_new_weights(md_model *m, const char *label, md_weights **out, md_error *err)
{
    if (m->nweights >= MD_MODEL_MAX_FILES)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: too many weight maps", m->path);
    *out = md_weights_new(label);
    if (!*out)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", m->path);
    m->weights[m->nweights++] = *out;
    return MD_OK;
}

const cJSON *md_model_override(const md_model_options *opt, const char *component)
{
    if (!opt || !opt->architecture)
        return NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(opt->architecture, component);
    return cJSON_IsObject(c) ? c : NULL;
}

/* The tokenizer decides the special ids; a projection present in the
 * weights is used even when the config's class name did not announce it. */
static void settle_clip(md_clip_config *cfg, const md_tokenizer *tok, int32_t pad,
                        const md_weights *w)
{
    cfg->bos_id = md_tokenizer_bos(tok);
    cfg->eos_id = md_tokenizer_eos(tok);
    cfg->pad_id = pad;
    const md_tensor *proj = md_weights_find(w, "text_projection.weight");
    if (proj && proj->ndim == 2 && cfg->projection_dim == 0)
        cfg->projection_dim = (int)proj->shape[0];
}

md_status md_model_build(md_model *m, md_weights *te, md_weights *te2, md_weights *unet,
                         md_weights *vae, md_backend *be, md_error *err)
{
    md_status s;
    settle_clip(&m->te_cfg, m->tokenizer, m->pad_id, te);
    if ((s = md_text_encoder_load(&m->te, &m->te_cfg, te, be, err)) != MD_OK)
        return md_fail_context(err, "%s: text_encoder: ", m->path);
    if (te2) {
        settle_clip(&m->te2_cfg, m->tokenizer2, m->pad_id2, te2);
        if ((s = md_text_encoder_load(&m->te2, &m->te2_cfg, te2, be, err)) != MD_OK)
            return md_fail_context(err, "%s: text_encoder_2: ", m->path);
    }
    md_unet_load_options uo = {.defer_experts = m->defer_experts};
    if ((s = md_unet_load_with(&m->unet, &m->unet_cfg, unet, be, &uo, err)) != MD_OK)
        return md_fail_context(err, "%s: unet: ", m->path);
    if ((s = md_vae_load(&m->vae, &m->vae_cfg, vae, be, err)) != MD_OK)
        return md_fail_context(err, "%s: vae: ", m->path);
    return MD_OK;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

md_status md_model_load(const char *path, const md_model_options *opt, md_model **out,
                        md_error *err)
{
    *out = NULL;
    if (!path || !opt || !opt->backend)
        return md_fail(err, MD_ERR_INVALID, "md_model_load: a path and a backend are required");
    md_model *m = calloc(1, sizeof *m);
    if (!m)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    md_status s;
    if (strlen(path) >= sizeof m->path) {
        s = md_fail(err, MD_ERR_INVALID, "%s: path too long", path);
        goto fail;
    }
    memcpy(m->path, path, strlen(path) + 1);
    memcpy(m->hash_file, path, strlen(path) + 1);
    m->defer_experts = opt->defer_experts && opt->backend->weights_load != NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        /* Each reason its own words: "no such file" for a loop or a locked
         * folder sends the user looking for the wrong problem. */
        int e = errno;
        s = md_fail(err, MD_ERR_IO, "%s: %s", path,
                    e == ENOENT || e == ENOTDIR ? "no such file or folder"
                    : e == ELOOP  ? "a loop of symbolic links (a link that points back at itself)"
                    : e == EACCES ? "permission denied (a folder on the way is not readable or "
                                    "searchable by this user)"
                                  : strerror(e));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        s = md_model_load_diffusers(m, path, opt, err);
    } else if (ends_with(path, ".safetensors")) {
        s = md_model_load_single(m, path, opt, err);
    } else if (ends_with(path, ".ckpt") || ends_with(path, ".pt") || ends_with(path, ".bin") ||
               ends_with(path, ".pth")) {
        s = md_fail(err, MD_ERR_UNSUPPORTED,
                    "%s: pickle checkpoints are not supported (they can run code when loaded); "
                    "convert the file to .safetensors",
                    path);
    } else {
        s = md_fail(err, MD_ERR_UNSUPPORTED,
                    "%s: not a model: expected a diffusers folder (with model_index.json) or a "
                    ".safetensors file",
                    path);
    }
    if (s != MD_OK)
        goto fail;
    /* The native size must be one a request may ask for, else every
     * default-size generation fails later as if the user had asked wrong. */
    int64_t native = (int64_t)m->unet_cfg.sample_size * md_vae_factor(m->vae);
    if (m->unet_cfg.sample_size < 1 || native > MD_MODEL_MAX_SIDE) {
        s = md_fail(err, MD_ERR_FORMAT,
                    "%s: the U-Net's sample_size %d gives a native size of %lld pixels, out of "
                    "range (sample_size 1..%d with this VAE)",
                    path, m->unet_cfg.sample_size, (long long)native,
                    MD_MODEL_MAX_SIDE / md_vae_factor(m->vae));
        goto fail;
    }
    m->default_size = (int)native;
    if (m->default_cfg == 0.0f)
        m->default_cfg = m->family == MD_FAMILY_SDXL ? 5.0f : 7.5f;
    *out = m;
    return MD_OK;
fail:
    md_model_free(m);
    return s;
}

void md_model_free(md_model *m)
{
    if (!m)
        return;
    /* components point into the weights, which point into the files */
    if (m->te)
        md_text_encoder_free(m->te);
    if (m->te2)
        md_text_encoder_free(m->te2);
    if (m->unet)
        md_unet_free(m->unet);
    if (m->vae)
        md_vae_free(m->vae);
    if (m->tokenizer)
        md_tokenizer_free(m->tokenizer);
    if (m->tokenizer2)
        md_tokenizer_free(m->tokenizer2);
    for (int i = 0; i < m->nweights; i++)
        md_weights_free(m->weights[i]);
    for (int i = 0; i < m->nfiles; i++)
        md_safetensors_close(m->files[i]);
    free(m);
}
