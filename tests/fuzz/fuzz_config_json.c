/* The diffusers / transformers config.json parsers (UNet with its MoE
 * settings, VAE, CLIP text encoder, scheduler), each given the same
 * document: a model folder's files come from anywhere. */
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config/config_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j)
        return 0;
    md_error err = {0};
    md_unet_config u;
    md_vae_config v;
    md_clip_config c;
    md_sched_config s;
    (void)md_unet_config_from_json(j, "unet/config.json", &u, &err);
    (void)md_vae_config_from_json(j, "vae/config.json", &v, &err);
    (void)md_clip_config_from_json(j, "text_encoder/config.json", &c, &err);
    (void)md_sched_config_from_json(j, "scheduler/scheduler_config.json", &s, &err);
    /* The MoE block alone too, in both forms, as the UNet parser calls it. */
    md_moe_config m;
    for (int segmoe = 0; segmoe < 2; segmoe++) {
        const cJSON *moe = cJSON_GetObjectItemCaseSensitive(j, segmoe ? "segmoe_config" : "moe_config");
        if (cJSON_IsObject(moe))
            (void)md_moe_config_from_json(moe, segmoe, 4, "unet/config.json", &m, &err);
    }
    cJSON_Delete(j);
    return 0;
}
