/* Choosing a backend by name, with the CPU as the fallback when Vulkan
 * cannot be used; and the Vulkan entry points of builds without Vulkan. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "vulkan_api.h"

/* The note is optional: NULL or 0 bytes drop it. */
#define NOTE(...)                                                                                  \
    do {                                                                                           \
        if (note && note_cap)                                                                      \
            snprintf(note, note_cap, __VA_ARGS__);                                                 \
    } while (0)

md_status md_backend_create(const char *name, int device, int threads, md_backend **out,
                            char *note, size_t note_cap, md_error *err)
{
    md_backend_request req = {.name = name, .device = device, .threads = threads};
    return md_backend_open(&req, out, note, note_cap, err);
}

md_status md_backend_open(const md_backend_request *req, md_backend **out, char *note,
                          size_t note_cap, md_error *err)
{
    const char *name = req->name;
    int device = req->device, threads = req->threads;
    *out = NULL;
    if (note && note_cap)
        note[0] = '\0';
    if (!name)
        name = "auto";
    int want_cpu = strcmp(name, "cpu") == 0;
    int want_vulkan = strcmp(name, "vulkan") == 0;
    if (!want_cpu && !want_vulkan && strcmp(name, "auto") != 0)
        return md_fail(err, MD_ERR_INVALID, "unknown backend '%s' (cpu, vulkan or auto)", name);
    if (device < -1)
        return md_fail(err, MD_ERR_INVALID, "device index %d is negative", device);

    char why[MD_ERROR_MSG_MAX] = "";
    if (!want_cpu) {
        /* An explicit device index, or an explicit "vulkan", may pick a
         * CPU-type device such as lavapipe; "auto" alone never does. */
        md_vulkan_options opt = {.device = device, .allow_cpu = want_vulkan,
                                 .profile = req->profile};
        md_error verr = {0};
        md_status s = md_backend_vulkan_create(out, &opt, &verr);
        if (s == MD_OK) {
            NOTE("backend vulkan: %s", md_vulkan_device_name(*out));
            return MD_OK;
        }
        if (s == MD_ERR_INVALID || s == MD_ERR_NOMEM)
            return md_fail(err, s, "%s", verr.msg);
        snprintf(why, sizeof why, "%s", verr.msg);
    }
    md_status s = md_backend_cpu_create(out, threads, err);
    if (s != MD_OK)
        return s;
    if (want_cpu)
        NOTE("backend cpu");
    else
        NOTE("backend cpu (Vulkan not used: %s)", why);
    return MD_OK;
}

#ifndef MD_HAVE_VULKAN
/* Builds without Vulkan (MD_VULKAN=OFF): the same API, no devices. */
md_status md_backend_vulkan_create(md_backend **out, const md_vulkan_options *opt, md_error *err)
{
    *out = NULL;
    return md_fail(err, MD_ERR_UNSUPPORTED,
                   "vulkan: this build has no Vulkan backend (configured with MD_VULKAN=OFF)");
}

md_status md_vulkan_list_devices(md_vulkan_device_info *out, int cap, int *count, md_error *err)
{
    *count = 0;
    if (err)
        snprintf(err->msg, sizeof err->msg, "this build has no Vulkan backend");
    return MD_OK;
}

const char *md_vulkan_device_name(md_backend *be)
{
    return NULL;
}

const char *md_vulkan_precision(md_backend *be)
{
    return NULL;
}

md_status md_vulkan_profile_report(md_backend *be, char *buf, size_t cap, md_error *err)
{
    return md_fail(err, MD_ERR_UNSUPPORTED, "this build has no Vulkan backend");
}

void md_vulkan_profile_reset(md_backend *be)
{
}

uint64_t md_vulkan_validation_messages(md_backend *be, char *first, size_t cap)
{
    if (first && cap)
        first[0] = '\0';
    return 0;
}

int md_vulkan_stats_get(md_backend *be, md_vulkan_stats *out)
{
    memset(out, 0, sizeof *out);
    return 0;
}
#endif
