/* Shader modules from the embedded SPIR-V, descriptor/pipeline layouts
 * (push descriptors, 128 bytes of push constants) and compute pipelines,
 * each created once per (shader, specialization constants) and cached. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define MD_VK_EXTERN(name, nb)                                                                     \
    extern const unsigned char md_spv_##name[];                                                    \
    extern const unsigned long md_spv_##name##_size;
MD_VK_SHADERS(MD_VK_EXTERN)
#undef MD_VK_EXTERN

typedef struct shader_def {
    const char *name;
    int bindings;
    const unsigned char *spv;
    const unsigned long *size;
} shader_def;

static const shader_def shaders[MD_VK_SHADER_COUNT] = {
#define MD_VK_DEF(name, nb) {#name, nb, md_spv_##name, &md_spv_##name##_size},
    MD_VK_SHADERS(MD_VK_DEF)
#undef MD_VK_DEF
};

int md_vk_shader_bindings(md_vk_shader sh)
{
    return shaders[sh].bindings;
}

const char *md_vk_shader_name(md_vk_shader sh)
{
    return shaders[sh].name;
}

int md_vk_shader_available(md_vk_shader sh)
{
    return *shaders[sh].size > 0;
}

md_status md_vk_layouts_create(md_vk *vk, md_error *err)
{
    for (int n = 1; n <= MD_VK_MAX_BINDINGS; n++) {
        VkDescriptorSetLayoutBinding b[MD_VK_MAX_BINDINGS];
        for (int i = 0; i < n; i++)
            b[i] = (VkDescriptorSetLayoutBinding){.binding = (uint32_t)i,
                                                  .descriptorType =
                                                      VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                  .descriptorCount = 1,
                                                  .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
        VkDescriptorSetLayoutCreateInfo dci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
            .bindingCount = (uint32_t)n,
            .pBindings = b};
        if (vkCreateDescriptorSetLayout(vk->dev, &dci, NULL, &vk->set_layout[n]) != VK_SUCCESS)
            return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot create a descriptor layout");
        VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 128};
        VkPipelineLayoutCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                          .setLayoutCount = 1,
                                          .pSetLayouts = &vk->set_layout[n],
                                          .pushConstantRangeCount = 1,
                                          .pPushConstantRanges = &pcr};
        if (vkCreatePipelineLayout(vk->dev, &pci, NULL, &vk->pipe_layout[n]) != VK_SUCCESS)
            return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: cannot create a pipeline layout");
    }
    return MD_OK;
}

static VkShaderModule module(md_vk *vk, md_vk_shader sh)
{
    if (vk->modules[sh])
        return vk->modules[sh];
    size_t size = (size_t)*shaders[sh].size;
    /* The embedded bytes have no 4-byte alignment guarantee; SPIR-V needs it. */
    uint32_t *code = malloc(size + 4);
    if (!code || size % 4 != 0 || size == 0) {
        free(code);
        md_vk_fail(vk, "vulkan: shader %s: bad embedded SPIR-V", shaders[sh].name);
        return VK_NULL_HANDLE;
    }
    memcpy(code, shaders[sh].spv, size);
    VkShaderModuleCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = size,
                                   .pCode = code};
    VkResult r = vkCreateShaderModule(vk->dev, &ci, NULL, &vk->modules[sh]);
    free(code);
    if (r != VK_SUCCESS) {
        md_vk_fail(vk, "vulkan: shader %s: module creation failed (%d)", shaders[sh].name, (int)r);
        return VK_NULL_HANDLE;
    }
    return vk->modules[sh];
}

VkPipeline md_vk_pipeline(md_vk *vk, md_vk_shader sh, const uint32_t *spec, int nspec)
{
    for (size_t i = 0; i < vk->npipes; i++) {
        md_vk_pipe *p = &vk->pipes[i];
        if (p->shader == sh && p->nspec == nspec &&
            (nspec == 0 || memcmp(p->spec, spec, (size_t)nspec * sizeof *spec) == 0))
            return p->pipeline;
    }
    VkShaderModule mod = module(vk, sh);
    if (!mod)
        return VK_NULL_HANDLE;
    if (vk->npipes == vk->pipes_cap) {
        size_t cap = vk->pipes_cap ? vk->pipes_cap * 2 : 32;
        md_vk_pipe *p = realloc(vk->pipes, cap * sizeof *p);
        if (!p) {
            md_vk_fail(vk, "vulkan: out of host memory");
            return VK_NULL_HANDLE;
        }
        vk->pipes = p;
        vk->pipes_cap = cap;
    }
    VkSpecializationMapEntry entries[MD_VK_MAX_SPEC];
    for (int i = 0; i < nspec; i++)
        entries[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(i * 4), 4};
    VkSpecializationInfo si = {(uint32_t)nspec, entries, (size_t)nspec * 4, spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main",
                  .pSpecializationInfo = nspec ? &si : NULL},
        .layout = vk->pipe_layout[shaders[sh].bindings]};
    md_vk_pipe *p = &vk->pipes[vk->npipes];
    memset(p, 0, sizeof *p);
    VkResult r = vkCreateComputePipelines(vk->dev, VK_NULL_HANDLE, 1, &ci, NULL, &p->pipeline);
    if (r != VK_SUCCESS) {
        md_vk_fail(vk, "vulkan: shader %s: pipeline creation failed (%d)", shaders[sh].name,
                   (int)r);
        return VK_NULL_HANDLE;
    }
    p->shader = sh;
    p->nspec = nspec;
    if (nspec)
        memcpy(p->spec, spec, (size_t)nspec * sizeof *spec);
    vk->npipes++;
    return p->pipeline;
}

void md_vk_pipelines_free(md_vk *vk)
{
    for (size_t i = 0; i < vk->npipes; i++)
        vkDestroyPipeline(vk->dev, vk->pipes[i].pipeline, NULL);
    free(vk->pipes);
    vk->pipes = NULL;
    vk->npipes = vk->pipes_cap = 0;
    for (int i = 0; i < MD_VK_SHADER_COUNT; i++)
        if (vk->modules[i])
            vkDestroyShaderModule(vk->dev, vk->modules[i], NULL);
    for (int n = 1; n <= MD_VK_MAX_BINDINGS; n++) {
        if (vk->pipe_layout[n])
            vkDestroyPipelineLayout(vk->dev, vk->pipe_layout[n], NULL);
        if (vk->set_layout[n])
            vkDestroyDescriptorSetLayout(vk->dev, vk->set_layout[n], NULL);
    }
}
