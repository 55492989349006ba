/* `moe-diffuse serve`: options, the model, the listener, and a clean stop
 * on SIGINT / SIGTERM (the running generation cancelled, every connection
 * finished, everything freed). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models.h"
#include "server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moe-diffuse serve [options]\n"
            "AUTOMATIC1111's web API (/sdapi/v1) over one model (docs/server.md).\n"
            "  --listen ADDR:PORT   where to listen (default 127.0.0.1:7860; port 0: any free\n"
            "                       port, printed on stderr)\n"
            "  -m, --model PATH     diffusers folder or .safetensors file (default: demo model)\n"
            "  --models-dir DIR     models /sdapi/v1/options switches among (default -m: the\n"
            "                       first)\n"
            "  --api-auth USER:PASS require HTTP basic authentication\n"
            "  --lora-dir DIR       where the prompt's <lora:NAME:WEIGHT> tags are found\n"
            "  --threads N          CPU threads (default: all cores)\n"
            "  --backend B          cpu, vulkan or auto (default)\n"
            "  --device N           Vulkan device index\n"
            "  --max-body-mb N      largest request body (default 64)\n"
            "  --max-size N         largest image side, generated or uploaded (default 2048)\n"
            "  --max-images N       most images a request (default 16)\n"
            "  --preview-every N    a /progress preview every N steps (default 1; 0: none)\n"
            "  -q, --quiet          no log lines but the listening address\n"
            "  -h, --help\n");
}

static int int_arg(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "moe-diffuse serve: %s %s: expected a whole number from %d to %d\n", opt,
                v, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* 0 to serve, else the exit code (-1: --help). */
static int parse(int argc, char **argv, md_server_config *c)
{
    enum { LISTEN = 256, MODELS_DIR, AUTH, LORA_DIR, THREADS, BACKEND, DEVICE, MAX_BODY, MAX_SIZE,
           MAX_IMAGES, PREVIEW };
    static const struct option longs[] = {
        {"listen", required_argument, NULL, LISTEN},
        {"model", required_argument, NULL, 'm'},
        {"models-dir", required_argument, NULL, MODELS_DIR},
        {"api-auth", required_argument, NULL, AUTH},
        {"lora-dir", required_argument, NULL, LORA_DIR},
        {"threads", required_argument, NULL, THREADS},
        {"backend", required_argument, NULL, BACKEND},
        {"device", required_argument, NULL, DEVICE},
        {"max-body-mb", required_argument, NULL, MAX_BODY},
        {"max-size", required_argument, NULL, MAX_SIZE},
        {"max-images", required_argument, NULL, MAX_IMAGES},
        {"preview-every", required_argument, NULL, PREVIEW},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *c = (md_server_config){.listen = "127.0.0.1:7860", .model = MD_DEFAULT_MODEL, .device = -1,
                            .max_body = (size_t)64 << 20, .max_side = 2048, .max_images = 16,
                            .preview_interval = 1};
    int mb = 64, opt, model_given = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:qh", longs, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case LISTEN: c->listen = optarg; break;
        case 'm':
            c->model = optarg;
            model_given = 1;
            break;
        case MODELS_DIR: c->models_dir = optarg; break;
        case AUTH:
            c->auth = optarg;
            if (!strchr(optarg, ':')) {
                fprintf(stderr, "moe-diffuse serve: --api-auth takes USER:PASSWORD\n");
                return 2;
            }
            break;
        case LORA_DIR: c->lora_dir = optarg; break;
        case THREADS: bad = int_arg("--threads", optarg, 0, 1024, &c->threads); break;
        case BACKEND: c->backend = optarg; break;
        case DEVICE: bad = int_arg("--device", optarg, -1, 64, &c->device); break;
        case MAX_BODY: bad = int_arg("--max-body-mb", optarg, 1, 4096, &mb); break;
        case MAX_SIZE: bad = int_arg("--max-size", optarg, 64, 16384, &c->max_side); break;
        case MAX_IMAGES: bad = int_arg("--max-images", optarg, 1, 1000, &c->max_images); break;
        case PREVIEW:
            bad = int_arg("--preview-every", optarg, 0, 1000, &c->preview_interval);
            break;
        case 'q': c->quiet = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "moe-diffuse serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    c->max_body = (size_t)mb << 20;
    struct stat st;
    if (c->lora_dir && (stat(c->lora_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "moe-diffuse serve: --lora-dir %s: not a folder\n", c->lora_dir);
        return 4;
    }
    if (c->models_dir && !model_given) {
        static char first[4096];
        char **names = NULL;
        int n = md_models_list(c->models_dir, &names);
        if (n > 0)
            snprintf(first, sizeof first, "%s/%s", c->models_dir, names[0]);
        md_models_free(names, n);
        if (n <= 0) {
            fprintf(stderr, "moe-diffuse serve: --models-dir %s: %s\n", c->models_dir,
                    n < 0 ? "not a readable folder"
                          : "no models (diffusers folders or .safetensors files) in it");
            return 3;
        }
        c->model = first;
    }
    return 0;
}

int md_serve_main(int argc, char **argv)
{
    md_server_config cfg;
    int rc = parse(argc, argv, &cfg);
    if (rc)
        return rc < 0 ? 0 : rc;
    /* SIGINT and SIGTERM are taken by sigwait below: blocked before any
     * thread starts (the library's workers and the connections' inherit
     * the mask), so no handler runs on a thread holding a lock. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is a failed write, not a death */
    static md_server s;
    char msg[1024] = "";
    if (!cfg.quiet)
        fprintf(stderr, "moe-diffuse serve: loading %s\n", cfg.model);
    if (md_server_open(&s, &cfg, msg, sizeof msg) != MDIFF_OK) {
        fprintf(stderr, "moe-diffuse serve: %s: %s\n", cfg.model, msg);
        md_server_close(&s);
        return 3;
    }
    struct md_http *http = md_server_http_start(&s, msg, sizeof msg);
    if (!http) {
        fprintf(stderr, "moe-diffuse serve: %s\n", msg);
        md_server_close(&s);
        return 1;
    }
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    if (!cfg.quiet)
        fprintf(stderr, "moe-diffuse serve: %s: cancelling the running job and stopping\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_mutex_lock(&s.state_lock);
    s.stopping = 1; /* requests waiting for the model get 503; the running one stops */
    s.api->cancel(s.ctx);
    pthread_mutex_unlock(&s.state_lock);
    md_server_http_stop(http); /* waits for every connection's thread */
    md_server_close(&s);
    return 0;
}
