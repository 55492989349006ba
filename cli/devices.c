/* `moe-diffuse devices`: the Vulkan devices, with the index --device takes
 * and which one --backend auto would pick. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "engine.h"

static const char *type_name(int type)
{
    switch (type) {
    case MDIFF_DEVICE_DISCRETE: return "discrete GPU";
    case MDIFF_DEVICE_INTEGRATED: return "integrated GPU";
    case MDIFF_DEVICE_VIRTUAL: return "virtual GPU";
    case MDIFF_DEVICE_CPU: return "CPU (used only with --backend vulkan)";
    }
    return "other";
}

int md_cli_devices_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: moe-diffuse devices\n"
               "Lists the Vulkan devices: the index --device N takes, the type, the memory.\n"
               "--backend auto takes the first usable discrete GPU, else an integrated one,\n"
               "else the CPU backend; CPU-type Vulkan devices only with --backend vulkan.\n");
        return MD_EXIT_OK;
    }
    if (argc != 1) {
        fprintf(stderr, "moe-diffuse: usage: moe-diffuse devices\n");
        return MD_EXIT_USAGE;
    }
    const mdiff_api *api = md_cli_api();
    const mdiff_devices_api *da = api ? api->get_feature(MDIFF_FEATURE_DEVICES) : NULL;
    if (!da) {
        fprintf(stderr, "moe-diffuse: this library cannot list devices\n");
        return MD_EXIT_FAILURE;
    }
    mdiff_device_info dev[16];
    for (int i = 0; i < 16; i++)
        dev[i].struct_size = sizeof dev[i];
    char msg[512] = "";
    int n = da->list(dev, 16, msg, sizeof msg);
    if (n < 0) {
        fprintf(stderr, "moe-diffuse: devices: %s\n", msg);
        return MD_EXIT_FAILURE;
    }
    if (n == 0) {
        printf("no Vulkan device (%s): the CPU backend runs\n", msg[0] ? msg : "none found");
        return MD_EXIT_OK;
    }
    for (int i = 0; i < n && i < 16; i++) {
        const mdiff_device_info *d = &dev[i];
        printf("%d  %s  [%s, %.1f GiB, Vulkan %u.%u]%s%s\n", d->index, d->name, type_name(d->type),
               (double)d->memory / (1024.0 * 1024 * 1024), (d->api_version >> 22) & 0x7f,
               (d->api_version >> 12) & 0x3ff, d->usable ? "" : "  not usable: ",
               d->usable ? "" : d->why_not);
    }
    return MD_EXIT_OK;
}
