/* Instance, validation layer, device listing and selection, logical device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define MD_VK_VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

static const char *type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static int has_device_extension(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkExtensionProperties *ext = calloc(n, sizeof *ext);
    int found = 0;
    if (ext && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(ext[i].extensionName, name) == 0;
    free(ext);
    return found;
}

/* shaderFloat16 (VK_KHR_shader_float16_int8): fp16 arithmetic in shaders.
 * The extension rather than Vulkan 1.2 core, as the instance asks for 1.1. */
static int has_float16(VkPhysicalDevice pd)
{
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p); /* vkGetPhysicalDeviceFeatures2 is 1.1 */
    if (p.apiVersion < VK_API_VERSION_1_1 ||
        !has_device_extension(pd, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME))
        return 0;
    VkPhysicalDeviceShaderFloat16Int8FeaturesKHR f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES_KHR};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = &f16};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    return f16.shaderFloat16 == VK_TRUE;
}

/* Whether this build compiled the fp16 shader variants (MD_VULKAN_FP16). */
static int fp16_variants_built(void)
{
    return md_vk_shader_available(MD_VK_SH_gemm_f16) &&
           md_vk_shader_available(MD_VK_SH_conv2d_f16) &&
           md_vk_shader_available(MD_VK_SH_attention_f16);
}

/* A queue family with compute, preferring one without graphics (often a
 * dedicated compute queue). UINT32_MAX when none. */
static uint32_t compute_family(VkPhysicalDevice pd)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    uint32_t best = UINT32_MAX;
    if (!q)
        return best;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    for (uint32_t i = 0; i < n; i++) {
        if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0)
            continue;
        if (best == UINT32_MAX || !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            best = i;
        if (!(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            break;
    }
    free(q);
    return best;
}

/* NULL when the backend can run on the device, else what is missing. */
static const char *missing_feature(VkPhysicalDevice pd)
{
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    if (VK_API_VERSION_MAJOR(p.apiVersion) == 1 && VK_API_VERSION_MINOR(p.apiVersion) < 1)
        return "Vulkan 1.1";
    if (compute_family(pd) == UINT32_MAX)
        return "a compute queue";
    if (!has_device_extension(pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME))
        return VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    if (p.limits.maxPushConstantsSize < 128)
        return "128 bytes of push constants";
    if (p.limits.maxComputeSharedMemorySize < 16384)
        return "16 KiB of compute shared memory";
    if (p.limits.maxComputeWorkGroupInvocations < 256)
        return "256-invocation workgroups";
    if (p.limits.minStorageBufferOffsetAlignment > MD_VK_ALIGN)
        return "a storage-buffer offset alignment of at most 256";
    return NULL;
}

static uint64_t device_memory(VkPhysicalDevice pd)
{
    VkPhysicalDeviceMemoryProperties m;
    vkGetPhysicalDeviceMemoryProperties(pd, &m);
    uint64_t best = 0;
    for (uint32_t i = 0; i < m.memoryHeapCount; i++)
        if ((m.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && m.memoryHeaps[i].size > best)
            best = m.memoryHeaps[i].size;
    return best;
}

static VkBool32 VKAPI_PTR on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                     VkDebugUtilsMessageTypeFlagsEXT types,
                                     const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    md_vk *vk = user;
    if (vk->messages++ == 0 && data && data->pMessage)
        snprintf(vk->first_message, sizeof vk->first_message, "%s", data->pMessage);
    return VK_FALSE;
}

static int layer_available(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkLayerProperties *l = calloc(n, sizeof *l);
    int found = 0;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = strcmp(l[i].layerName, name) == 0;
    free(l);
    return found;
}

static md_status make_instance(VkInstance *out, VkDebugUtilsMessengerEXT *messenger, md_vk *vk,
                               int validation, md_error *err)
{
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "moe-diffuse",
                             .pEngineName = "moe-diffuse",
                             .apiVersion = VK_API_VERSION_1_1};
    const char *layers[] = {MD_VK_VALIDATION_LAYER};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    /* Synchronization validation checks the barriers the stream inserts. */
    VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT features = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                        .enabledValidationFeatureCount = 1,
                                        .pEnabledValidationFeatures = enables};
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .pNext = &features,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        /* Not GENERAL: the loader reports the machine's driver setup there. */
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = vk};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app};
    if (validation) {
        if (!layer_available(MD_VK_VALIDATION_LAYER))
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan: validation was asked for but %s is not installed "
                           "(Debian: vulkan-validationlayers)",
                           MD_VK_VALIDATION_LAYER);
        ci.enabledLayerCount = 1;
        ci.ppEnabledLayerNames = layers;
        ci.enabledExtensionCount = 1;
        ci.ppEnabledExtensionNames = exts;
        /* Also covers messages of instance creation itself. */
        ci.pNext = &mci;
    }
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan: no Vulkan driver could be loaded (vkCreateInstance: %d)", (int)r);
    *messenger = VK_NULL_HANDLE;
    if (validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(*out, "vkCreateDebugUtilsMessengerEXT");
        mci.pNext = NULL;
        if (!create || create(*out, &mci, NULL, messenger) != VK_SUCCESS) {
            vkDestroyInstance(*out, NULL);
            *out = VK_NULL_HANDLE;
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "vulkan: validation asked for, but the debug messenger is unavailable");
        }
    }
    return MD_OK;
}

static md_status enumerate(VkInstance inst, VkPhysicalDevice **out, uint32_t *n, md_error *err)
{
    *out = NULL;
    *n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, n, NULL);
    if (r != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: listing devices failed (%d)", (int)r);
    if (*n == 0)
        return MD_OK;
    *out = calloc(*n, sizeof **out);
    if (!*out)
        return md_fail(err, MD_ERR_NOMEM, "vulkan: out of memory");
    r = vkEnumeratePhysicalDevices(inst, n, *out);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(*out);
        *out = NULL;
        *n = 0;
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: listing devices failed (%d)", (int)r);
    }
    return MD_OK;
}

static void describe(VkPhysicalDevice pd, int index, md_vulkan_device_info *info)
{
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(pd, &p);
    memset(info, 0, sizeof *info);
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", p.deviceName);
    info->type = type_name(p.deviceType);
    info->api_version = p.apiVersion;
    info->vendor_id = p.vendorID;
    info->device_id = p.deviceID;
    info->device_memory = device_memory(pd);
    info->max_binding = p.limits.maxStorageBufferRange;
    info->why_not = missing_feature(pd);
    info->usable = info->why_not == NULL;
    info->fp16 = has_float16(pd) && fp16_variants_built();
}

md_status md_vulkan_list_devices(md_vulkan_device_info *out, int cap, int *count, md_error *err)
{
    *count = 0;
    md_vk tmp;
    memset(&tmp, 0, sizeof tmp);
    VkInstance inst;
    VkDebugUtilsMessengerEXT messenger;
    md_error e = {0};
    if (make_instance(&inst, &messenger, &tmp, 0, &e) != MD_OK) {
        if (err)
            snprintf(err->msg, sizeof err->msg, "%s", e.msg);
        return MD_OK;
    }
    VkPhysicalDevice *pds;
    uint32_t n;
    md_status s = enumerate(inst, &pds, &n, err);
    if (s == MD_OK) {
        for (uint32_t i = 0; i < n && (int)i < cap; i++)
            describe(pds[i], (int)i, &out[i]);
        *count = (int)n;
    }
    free(pds);
    vkDestroyInstance(inst, NULL);
    return s;
}

/* The device to use: an explicit index, or the best by type. */
static md_status pick(VkPhysicalDevice *pds, uint32_t n, const md_vulkan_options *opt,
                      uint32_t *chosen, md_error *err)
{
    if (n == 0)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: no Vulkan device found");
    if (opt->device >= 0) {
        if ((uint32_t)opt->device >= n)
            return md_fail(err, MD_ERR_INVALID, "vulkan: device %d does not exist (%u device%s)",
                           opt->device, n, n == 1 ? "" : "s");
        const char *why = missing_feature(pds[opt->device]);
        if (why) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(pds[opt->device], &p);
            return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: device %d (%s) lacks %s", opt->device,
                           p.deviceName, why);
        }
        *chosen = (uint32_t)opt->device;
        return MD_OK;
    }
    static const VkPhysicalDeviceType order[] = {
        VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU,
        VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU, VK_PHYSICAL_DEVICE_TYPE_CPU};
    int kinds = opt->allow_cpu ? 4 : 3;
    const char *why_first = NULL;
    int has_cpu = 0;
    VkPhysicalDeviceProperties p;
    for (int k = 0; k < kinds; k++)
        for (uint32_t i = 0; i < n; i++) {
            vkGetPhysicalDeviceProperties(pds[i], &p);
            if (p.deviceType != order[k])
                continue;
            const char *why = missing_feature(pds[i]);
            if (!why) {
                *chosen = i;
                return MD_OK;
            }
            if (!why_first)
                why_first = why;
        }
    for (uint32_t i = 0; i < n; i++) {
        vkGetPhysicalDeviceProperties(pds[i], &p);
        has_cpu |= p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    }
    if (has_cpu && !opt->allow_cpu)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan: no Vulkan GPU found, only a CPU device such as lavapipe (used "
                       "only when the vulkan backend or a device index is asked for)");
    return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: no usable Vulkan device%s%s",
                   why_first ? ": missing " : "", why_first ? why_first : "");
}

uint32_t md_vk_memory_type(const md_vk *vk, uint32_t type_bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < vk->mem_props.memoryTypeCount; i++)
        if ((type_bits & (1u << i)) && (vk->mem_props.memoryTypes[i].propertyFlags & want) == want)
            return i;
    return UINT32_MAX;
}

/* float16: shaderFloat16 is there, so it is enabled (whether or not the
 * fp16 variants end up used). */
static md_status make_device(md_vk *vk, int float16, md_error *err)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = vk->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    const char *exts[] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME,
                          VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME};
    VkPhysicalDeviceShaderFloat16Int8FeaturesKHR f16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES_KHR,
        .shaderFloat16 = VK_TRUE};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = float16 ? &f16 : NULL,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = float16 ? 2 : 1,
                              .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateDevice(vk->phys, &dci, NULL, &vk->dev);
    if (r != VK_SUCCESS)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: creating a device on %s failed (%d)",
                       vk->device_name, (int)r);
    vkGetDeviceQueue(vk->dev, vk->queue_family, 0, &vk->queue);
    vk->push_descriptor =
        (PFN_vkCmdPushDescriptorSetKHR)vkGetDeviceProcAddr(vk->dev, "vkCmdPushDescriptorSetKHR");
    if (!vk->push_descriptor)
        return md_fail(err, MD_ERR_UNSUPPORTED, "vulkan: %s: vkCmdPushDescriptorSetKHR missing",
                       vk->device_name);
    return MD_OK;
}

md_status md_vk_open(md_vk *vk, const md_vulkan_options *opt, md_error *err)
{
    vk->validation = opt->validation;
    md_status s = make_instance(&vk->instance, &vk->messenger, vk, opt->validation, err);
    if (s != MD_OK)
        return s;
    VkPhysicalDevice *pds;
    uint32_t n;
    s = enumerate(vk->instance, &pds, &n, err);
    uint32_t chosen = 0;
    if (s == MD_OK)
        s = pick(pds, n, opt, &chosen, err);
    if (s == MD_OK)
        vk->phys = pds[chosen];
    free(pds);
    if (s != MD_OK)
        return s;
    vkGetPhysicalDeviceProperties(vk->phys, &vk->props);
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &vk->mem_props);
    snprintf(vk->device_name, sizeof vk->device_name, "%s", vk->props.deviceName);
    vk->device_type = type_name(vk->props.deviceType);
    /* Precision (opt->fp16: 0 or -1 f32, 1 fp16 required, 2 fp16 where possible). */
    int float16 = has_float16(vk->phys), built = fp16_variants_built();
    if (opt->fp16 == 1 && !built)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan: fp16 arithmetic was asked for (MD_VK_FP16=1), but this build "
                       "has no fp16 shader variants (MD_VULKAN_FP16=OFF)");
    if (opt->fp16 == 1 && !float16)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "vulkan: fp16 arithmetic was asked for (MD_VK_FP16=1), but %s lacks "
                       "shaderFloat16",
                       vk->device_name);
    vk->fp16 = vk->fp16_native = opt->fp16 > 0 && float16 && built;
    snprintf(vk->label, sizeof vk->label, "%s (%s), %s", vk->device_name, vk->device_type,
             vk->fp16 ? "fp16" : "fp32");
    vk->queue_family = compute_family(vk->phys);
    return make_device(vk, float16, err);
}

void md_vk_close(md_vk *vk)
{
    if (vk->dev)
        vkDestroyDevice(vk->dev, NULL);
    if (vk->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(vk->instance, vk->messenger, NULL);
    }
    if (vk->instance)
        vkDestroyInstance(vk->instance, NULL);
    vk->dev = VK_NULL_HANDLE;
    vk->messenger = VK_NULL_HANDLE;
    vk->instance = VK_NULL_HANDLE;
}
