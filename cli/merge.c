/* `moe-diffuse merge CONFIG.yaml OUT`: a SegMoE merge through api->merge
 * (docs/merge.md), with progress on stderr and Ctrl-C cancelling cleanly. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "parse_number.h"

/* Set by SIGINT; the merge polls it through params.cancel. Every Ctrl-C
 * lands here (no reset), so a second one cannot leave a half-written
 * folder behind either. */
static volatile int merge_cancel;

static void on_sigint(int sig)
{
    (void)sig;
    merge_cancel = 1;
}

typedef struct merge_view {
    int quiet, tty;
} merge_view;

static int show(void *user, const mdiff_merge_progress *p)
{
    const merge_view *v = user;
    if (v->quiet)
        return 0;
    switch (p->stage) {
    case MDIFF_MERGE_BASE:
        fprintf(stderr, "merge: copying the base model\n");
        break;
    case MDIFF_MERGE_EXPERT:
        fprintf(stderr, "merge: expert %d of %d\n", p->expert + 1, p->experts);
        break;
    case MDIFF_MERGE_GATE_STEP:
        if (v->tty)
            fprintf(stderr, "\rmerge: expert %d of %d: gate initialisation step %d/%d%s",
                    p->expert + 1, p->experts, p->step, p->steps, p->step == p->steps ? "\n" : "");
        else if (p->step == p->steps)
            fprintf(stderr, "merge: expert %d of %d: gate initialisation done (%d steps)\n",
                    p->expert + 1, p->experts, p->steps);
        break;
    case MDIFF_MERGE_WRITE:
        fprintf(stderr, "merge: writing the gates and configs\n");
        break;
    }
    return 0;
}

static int usage(FILE *f)
{
    fprintf(f,
            "usage: moe-diffuse merge CONFIG.yaml OUT [--seed N] [--gate-init hidden|random]\n"
            "                         [--dtype f16|f32] [--threads N] [-q]\n"
            "Builds a SegMoE Mixture-of-Experts model folder OUT (which must not exist) from\n"
            "a SegMoE YAML config and the dense models it names (docs/merge.md).\n"
            "  --seed N          noise of the gate-initialisation runs (default 0)\n"
            "  --gate-init MODE  hidden (default: the config's init) or random\n"
            "  --dtype T         U-Net weights written as f16 (default) or f32\n"
            "  --threads N       CPU threads of the gate-initialisation runs (0 = all)\n"
            "  -q, --quiet       no progress\n"
            "exit status: 0 done, 1 failed, 2 bad command line or config value, 3 a source\n"
            "  model malformed, a pickle, or of another architecture, 4 a missing file or\n"
            "  OUT exists or cannot be written, 130 cancelled (nothing is left behind)\n");
    return f == stdout ? MD_EXIT_OK : MD_EXIT_USAGE;
}

static int exit_code(int status)
{
    switch (status) {
    case MDIFF_OK: return MD_EXIT_OK;
    case MDIFF_ERR_INVALID: return MD_EXIT_USAGE;
    case MDIFF_ERR_IO: return MD_EXIT_IO;
    case MDIFF_ERR_FORMAT:
    case MDIFF_ERR_UNSUPPORTED: return MD_EXIT_MODEL;
    case MDIFF_ERR_CANCELLED: return MD_EXIT_CANCELLED;
    }
    return MD_EXIT_FAILURE;
}

int md_cli_merge_main(int argc, char **argv)
{
    mdiff_merge_params p = {.struct_size = sizeof p};
    merge_view view = {.tty = isatty(2)};
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return usage(stdout);
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            view.quiet = 1;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "--threads")) {
            int seed = !strcmp(a, "--seed");
            if (!val || !md_cli_parse_long("moe-diffuse merge", a, val, 0,
                                           seed ? 0x7fffffffffffffffL : 4096, &v))
                return val ? MD_EXIT_USAGE : usage(stderr);
            if (seed)
                p.seed = (uint64_t)v;
            else
                p.threads = (int32_t)v;
            i++;
        } else if (!strcmp(a, "--gate-init") && val) {
            if (strcmp(val, "hidden") && strcmp(val, "random")) {
                fprintf(stderr, "moe-diffuse merge: --gate-init: '%s' is not hidden or random\n",
                        val);
                return MD_EXIT_USAGE;
            }
            p.gate_init = strcmp(val, "random") ? MDIFF_MERGE_GATE_INIT_HIDDEN
                                                : MDIFF_MERGE_GATE_INIT_RANDOM;
            i++;
        } else if (!strcmp(a, "--dtype") && val) {
            if (strcmp(val, "f16") && strcmp(val, "f32")) {
                fprintf(stderr, "moe-diffuse merge: --dtype: '%s' is not f16 or f32\n", val);
                return MD_EXIT_USAGE;
            }
            p.dtype_bits = strcmp(val, "f32") ? 16 : 32;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "moe-diffuse merge: unknown option or missing value: %s\n", a);
            return usage(stderr);
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "moe-diffuse merge: one config and one output folder, not '%s'\n", a);
            return usage(stderr);
        }
    }
    if (npos != 2)
        return usage(stderr);
    const mdiff_api *api = md_cli_api();
    if (!api || api->struct_size < offsetof(mdiff_api, merge) + sizeof api->merge || !api->merge) {
        fprintf(stderr, "moe-diffuse merge: this library cannot merge (ABI 1.6 needed)\n");
        return MD_EXIT_FAILURE;
    }
    p.config_path = pos[0];
    p.output_path = pos[1];
    p.progress = show;
    p.progress_user = &view;
    p.cancel = &merge_cancel;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char msg[1024] = "";
    int rc = api->merge(&p, msg, sizeof msg);
    if (rc != MDIFF_OK) {
        if (view.tty && !view.quiet)
            fputc('\n', stderr);
        fprintf(stderr, "moe-diffuse merge: %s\n",
                rc == MDIFF_ERR_CANCELLED ? "cancelled; nothing was written" : msg);
        return exit_code(rc);
    }
    if (!view.quiet)
        fprintf(stderr, "merge: done: %s\n", p.output_path);
    return MD_EXIT_OK;
}
