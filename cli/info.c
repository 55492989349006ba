/* `moe-diffuse info MODEL [--max-expert-memory SIZE] [--moe-routes FILE]`:
 * what a model is and what it costs to run (the library's "model.describe"
 * text), and for an MoE model what a bound on its experts' memory keeps
 * resident and loads per step. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"
#include "render.h"

/* Measured routing change between adjacent steps (docs/moe.md, "Routing
 * change between steps"): the share of a step's sequence-routed experts
 * that the previous step did not use, 8-9% at 20 steps on an SD1.5-size
 * SegMoE 4x2 (3% on the tiny golden one). */
#define MD_SEQUENCE_CHANGE 0.09

static void print_help(void)
{
    printf("usage: moe-diffuse info MODEL [--max-expert-memory SIZE] [--moe-routes FILE]\n"
           "Prints the architecture, parameter counts (total and active per token), the\n"
           "MoE layout, weight types and the memory a generation needs. For an MoE model\n"
           "also its experts' memory and, with --max-expert-memory (bytes, 512M, 2G or\n"
           "50%%), what stays resident under that bound and the expert loads per step to\n"
           "expect: replayed from FILE's routing (a routes file --moe-stats wrote for\n"
           "this model), else estimated from the measured routing change (docs/moe.md).\n");
}

static const char *mib(char buf[32], double bytes)
{
    if (bytes >= 1073741824.0)
        snprintf(buf, 32, "%.2f GiB", bytes / 1073741824.0);
    else if (bytes >= 1048576.0)
        snprintf(buf, 32, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, 32, "%.1f KiB", bytes / 1024.0);
    return buf;
}

/* Loads per step without a recorded routing: sequence routing keeps the
 * previous step's k experts a layer unless they change; token routing uses
 * nearly every expert every step. */
static void print_generic_estimate(const mdiff_model_info *mi, uint64_t bound)
{
    double layers = mi->moe_layers, k = mi->top_k, E = mi->num_experts;
    double step_set = (double)mi->expert_memory * (mi->routing == MDIFF_ROUTING_TOKEN ? 1.0 : k / E);
    double loads;
    const char *why;
    if (bound >= mi->expert_memory) {
        loads = 0;
        why = "every expert stays resident";
    } else if (mi->routing != MDIFF_ROUTING_TOKEN && bound >= step_set) {
        loads = layers * k * MD_SEQUENCE_CHANGE;
        why = "a step's experts fit: only those the router changes load";
    } else {
        loads = layers * (mi->routing == MDIFF_ROUTING_TOKEN ? E : k);
        why = "a step's experts do not fit: each step loads them again";
    }
    printf("expected loads   about %.1f experts per step: %s\n"
           "                 (estimated; --moe-routes FILE replays a recorded routing)\n",
           loads, why);
}

int md_cli_info_main(int argc, char **argv)
{
    static const struct option longopts[] = {{"max-expert-memory", required_argument, NULL, 'b'},
                                             {"moe-routes", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0, 0, 0, 0}};
    mdh_request req;
    mdh_request_init(&req);
    const char *routes_path = NULL;
    int have_bound = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        mdh_error err = {0};
        switch (c) {
        case 'h': print_help(); mdh_request_clear(&req); return MD_EXIT_OK;
        case 'b':
            if (mdh_request_set_text(&req, mdh_request_field("max_expert_memory"), optarg,
                                     &err) != MDIFF_OK) {
                fprintf(stderr, "moe-diffuse: info: --max-expert-memory: %s\n", err.msg);
                mdh_request_clear(&req);
                return MD_EXIT_USAGE;
            }
            have_bound = 1;
            break;
        case 'r': routes_path = optarg; break;
        default:
            fprintf(stderr, "moe-diffuse: info: %s %s\n",
                    c == ':' ? "a value is missing after" : "unknown option", argv[optind - 1]);
            mdh_request_clear(&req);
            return MD_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "moe-diffuse: usage: moe-diffuse info MODEL [--max-expert-memory SIZE] "
                        "[--moe-routes FILE]\n");
        mdh_request_clear(&req);
        return MD_EXIT_USAGE;
    }
    const char *model = argv[optind];
    md_cli_engine e;
    md_cli_engine_options eo = {.model = model, .backend = "cpu", .device = -1, .threads = 1,
                                .log_level = -1};
    char msg[1024];
    int rc = md_cli_engine_open(&e, &eo, msg, sizeof msg);
    if (rc != MD_EXIT_OK) {
        fprintf(stderr, "moe-diffuse: %s\n", msg);
        md_cli_engine_close(&e);
        mdh_request_clear(&req);
        return rc;
    }
    const mdiff_describe_api *d = e.api->get_feature(MDIFF_FEATURE_DESCRIBE);
    int n = d ? d->describe(e.ctx, NULL, 0) : MDIFF_ERR_UNSUPPORTED;
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text && d->describe(e.ctx, text, (size_t)n + 1) == n) {
        fputs(text, stdout);
        rc = MD_EXIT_OK;
    } else {
        fprintf(stderr, "moe-diffuse: %s: cannot describe the model\n", model);
        rc = MD_EXIT_FAILURE;
    }
    free(text);
    const mdiff_model_info *mi = &e.info;
    char a[32], b[32], m2[32];
    if (rc == MD_EXIT_OK && mi->expert_memory) {
        printf("expert memory    %s in %d layers x %d experts; the least bound %s\n",
               mib(a, (double)mi->expert_memory), mi->moe_layers, mi->num_experts,
               mib(b, (double)mi->expert_memory_minimum));
        uint64_t bound = have_bound ? mdh_request_expert_memory(&req, mi->expert_memory) : 0;
        if (have_bound && bound < mi->expert_memory_minimum) {
            fprintf(stderr, "moe-diffuse: info: --max-expert-memory %s is below the least bound "
                            "%s\n",
                    mib(a, (double)bound), mib(b, (double)mi->expert_memory_minimum));
            rc = MD_EXIT_USAGE;
        } else if (have_bound) {
            uint64_t resident = bound < mi->expert_memory ? bound : mi->expert_memory;
            printf("bound            %s (%.0f%%): at most %s of the experts' %s resident\n",
                   mib(a, (double)bound), 100.0 * (double)bound / (double)mi->expert_memory,
                   mib(b, (double)resident), mib(m2, (double)mi->expert_memory));
        }
        char *routes = NULL;
        const mdiff_expert_memory_api *em = e.api->get_feature(MDIFF_FEATURE_EXPERT_MEMORY);
        if (rc == MD_EXIT_OK && routes_path) {
            mdiff_expert_estimate est = {.struct_size = sizeof est};
            int st = md_read_routes(routes_path, &routes, msg, sizeof msg);
            if (st == MDIFF_OK)
                st = em->estimate(e.ctx, bound, routes, &est, msg, sizeof msg);
            if (st != MDIFF_OK) {
                fprintf(stderr, "moe-diffuse: info: %s%s%s\n", strstr(msg, routes_path) ? "" : routes_path,
                        strstr(msg, routes_path) ? "" : ": ", msg);
                rc = md_cli_exit_code(st);
            } else
                printf("expected loads   %.1f experts per step (%s read), of %.1f used per step;\n"
                       "                 %llu in the first step (replayed from %s, %d steps)\n",
                       est.loads_per_step, mib(a, est.bytes_per_step), est.used_per_step,
                       (unsigned long long)est.first_loads, routes_path, est.steps);
        } else if (rc == MD_EXIT_OK && have_bound)
            print_generic_estimate(mi, bound);
        free(routes);
    } else if (rc == MD_EXIT_OK && (have_bound || routes_path)) {
        fprintf(stderr, "moe-diffuse: info: %s has no MoE layers: no expert memory to bound\n",
                model);
        rc = MD_EXIT_USAGE;
    }
    md_cli_engine_close(&e);
    mdh_request_clear(&req);
    return rc;
}
