/* md_backend_create: names, the CPU fallback and its note, device indices,
 * and "auto" never choosing a CPU-type Vulkan device (lavapipe). Runs with
 * or without a Vulkan device and in builds without Vulkan. */
#include <stdio.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/vulkan_api.h"

static int failures, checks;

static void expect(int ok, const char *what, const char *detail)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s (%s)\n", what, detail ? detail : "");
    }
}

int main(void)
{
    md_vulkan_device_info devs[8];
    int ndev = 0, usable = 0, gpus = 0;
    md_error lerr = {0};
    md_vulkan_list_devices(devs, 8, &ndev, &lerr);
    for (int i = 0; i < ndev && i < 8; i++) {
        usable += devs[i].usable;
        gpus += devs[i].usable && strcmp(devs[i].type, "cpu") != 0;
        printf("device %d: %s (%s)\n", i, devs[i].name, devs[i].type);
    }

    char note[600];
    md_error err = {0};
    md_backend *be = NULL;

    md_status s = md_backend_create("cpu", -1, 1, &be, note, sizeof note, &err);
    expect(s == MD_OK && be && strcmp(be->name, "cpu") == 0 && strcmp(note, "backend cpu") == 0,
           "cpu by name", note);
    md_backend_destroy(be);

    s = md_backend_create("metal", -1, 1, &be, note, sizeof note, &err);
    expect(s == MD_ERR_INVALID && !be && strstr(err.msg, "metal"), "an unknown name is an error",
           err.msg);

    s = md_backend_create("auto", -1, 1, &be, note, sizeof note, &err);
    expect(s == MD_OK && be, "auto gives a backend", err.msg);
    if (be && strcmp(be->name, "vulkan") == 0)
        expect(strstr(md_vulkan_device_name(be), "(cpu)") == NULL, "auto never picks a CPU device",
               note);
    else if (be)
        expect(gpus == 0 && strstr(note, "backend cpu (Vulkan not used: ") == note,
               "auto falls back to the CPU only without a GPU, and says why", note);
    printf("auto: %s\n", note);
    md_backend_destroy(be);

    s = md_backend_create("vulkan", -1, 1, &be, note, sizeof note, &err);
    expect(s == MD_OK && be, "vulkan gives a backend", err.msg);
    if (be)
        expect(usable ? strcmp(be->name, "vulkan") == 0 : strstr(note, "Vulkan not used") != NULL,
               "vulkan uses any usable device, CPU-type included, else falls back", note);
    printf("vulkan: %s\n", note);
    md_backend_destroy(be);

    s = md_backend_create("vulkan", 99, 1, &be, note, sizeof note, &err);
    if (ndev > 0)
        expect(s == MD_ERR_INVALID && !be && strstr(err.msg, "device 99"),
               "a device index that does not exist is an error", err.msg);
    else
        expect(s == MD_OK && be && strcmp(be->name, "cpu") == 0, "no devices: CPU fallback", note);
    md_backend_destroy(be);

    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
