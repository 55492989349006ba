/* bench-lora MODEL [--size N] [--rank R] [--reps K] [--threads T]
 * bench-lora MODEL --generate STEPS --apply none|fused|side [--size N] ...
 *
 * What a LoRA costs per denoising step, each way it can be applied
 * (lora/lora_backend.h): one U-Net step with classifier-free guidance
 * (batch 2) without a LoRA (the baseline, measured in the same run), with
 * fused copies and with side products, for a rank-R LoRA over every
 * attention projection and feed-forward of the U-Net (random values,
 * written to a temporary file in the diffusers layout). The fused way also
 * pays for making its copies once per generation: reported apart. Prints
 * best and first of K steps and peak memory.
 *
 * With --generate, one whole generation (text encoders, STEPS steps with
 * guidance, VAE) of a request whose loras[] holds that LoRA, applied the
 * given way (md_gen_run.lora_apply; none = no LoRA), and the process's peak
 * RSS: run once per way, in separate processes, so each peak is its own
 * (bench/lora_generation.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "lora/lora_backend.h"
#include "models/model.h"
#include "pipeline/pipeline.h"
#include "sampling/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Every 2-d weight of an attention projection or feed-forward. */
static int lora_target(const char *name, const md_tensor *t)
{
    static const char *const suffix[] = {".to_q.weight", ".to_k.weight", ".to_v.weight",
                                         ".to_out.0.weight", ".ff.net.0.proj.weight",
                                         ".ff.net.2.weight"};
    for (size_t i = 0; t->ndim == 2 && i < sizeof suffix / sizeof *suffix; i++)
        if (ends_with(name, suffix[i]))
            return 1;
    return 0;
}

static md_weights *unet_map(const md_model *m)
{
    for (int i = 0; i < m->nweights; i++)
        if (!strcmp(md_weights_label(m->weights[i]), "unet"))
            return m->weights[i];
    return NULL;
}

/* A rank-r LoRA over the targets, diffusers layout; returns the count. */
static int write_lora(const md_model *m, int rank, const char *path, md_error *err)
{
    md_weights *w = unet_map(m);
    size_t n = w ? md_weights_count(w) : 0, count = 0;
    md_safetensors_entry *en = calloc(2 * n + 1, sizeof *en);
    char **names = calloc(2 * n + 1, sizeof *names);
    uint64_t seed = 1;
    for (size_t i = 0; en && names && i < n; i++) {
        const char *name = md_weights_name(w, i);
        const md_tensor *t = md_weights_tensor(w, i);
        if (!lora_target(name, t))
            continue;
        size_t base = strlen(name) - strlen(".weight");
        int64_t shapes[2][2] = {{rank, t->shape[1]}, {t->shape[0], rank}};
        const char *part[2] = {"down", "up"};
        for (int j = 0; j < 2; j++) {
            size_t k = (size_t)(shapes[j][0] * shapes[j][1]);
            float *v = malloc(k * sizeof *v);
            uint16_t *h = malloc(k * sizeof *h);
            names[count] = malloc(base + 64);
            if (!v || !h || !names[count])
                return free(v), free(h), md_fail(err, MD_ERR_NOMEM, "out of memory"), -1;
            md_randn(seed++, 0, 0, v, k);
            for (size_t q = 0; q < k; q++)
                h[q] = md_f32_to_f16(0.01f * v[q]);
            free(v);
            snprintf(names[count], base + 64, "unet.%.*s.lora.%s.weight", (int)base, name, part[j]);
            en[count] = (md_safetensors_entry){names[count],
                                               {MD_F16, 2, {shapes[j][0], shapes[j][1]}, h}};
            count++;
        }
    }
    md_status s = count ? md_safetensors_write(path, en, count, err)
                        : md_fail(err, MD_ERR_INVALID, "no attention or feed-forward weights");
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
        free(en[i].tensor.data);
    }
    free(names);
    free(en);
    return s == MD_OK ? (int)count / 2 : -1;
}

/* One generation of `size` with `steps` steps; apply: 0 none, else
 * 1 + md_lora_apply. */
static md_status generate_once(const md_model *m, md_backend *cpu, const char *lora_path,
                               int size, int steps, int apply, md_error *err)
{
    mdiff_lora lora = {.struct_size = sizeof lora, .path = lora_path, .weight = 1.0f};
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt = "a lighthouse on a cliff at dusk, oil painting";
    p.seed = 1;
    p.steps = steps;
    p.width = p.height = size;
    p.loras = apply ? &lora : NULL;
    p.lora_count = apply ? 1 : 0;
    float *image = malloc(sizeof(float) * 3 * (size_t)size * (size_t)size);
    if (!image)
        return md_fail(err, MD_ERR_NOMEM, "out of memory");
    md_gen_run run = {.backend = cpu, .lora_apply = apply};
    double t0 = now();
    md_status st = md_generate(m, &run, &p, NULL, NULL, image, err);
    double t = now() - t0;
    free(image);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    static const char *const way[] = {"none", "fused", "side"};
    if (st == MD_OK)
        printf("generate %s: %d steps at %dx%d in %.2f s, peak RSS %.0f MiB\n", way[apply],
               steps, size, size, t, (double)ru.ru_maxrss / 1024.0);
    return st;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int size = 512, rank = 32, reps = 2, threads = 0, gen_steps = 0, apply = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rank") && i + 1 < argc)
            rank = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--generate") && i + 1 < argc)
            gen_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--apply") && i + 1 < argc) {
            i++;
            apply = !strcmp(argv[i], "none")    ? 0
                    : !strcmp(argv[i], "fused") ? 1 + MD_LORA_FUSED
                    : !strcmp(argv[i], "side")  ? 1 + MD_LORA_SIDE
                                                : -2;
        } else
            path = argv[i];
    }
    if (gen_steps > 0 && apply < 0) {
        fprintf(stderr, "bench-lora: --generate needs --apply none|fused|side\n");
        return 2;
    }
    if (!path || rank < 1 || reps < 1 || size < 8) {
        fprintf(stderr, "usage: bench-lora MODEL [--size N] [--rank R] [--reps K] [--threads T]\n");
        return 2;
    }
    md_error err = {0};
    md_backend *cpu = NULL;
    md_model *m = NULL;
    md_model_options mo = {0};
    if (md_backend_cpu_create(&cpu, threads, &err) != MD_OK ||
        (mo.backend = cpu, md_model_load(path, &mo, &m, &err)) != MD_OK) {
        fprintf(stderr, "bench-lora: %s\n", err.msg);
        return 1;
    }
    char lora_path[] = "/tmp/bench-lora-XXXXXX.safetensors";
    int fd = mkstemps(lora_path, 12);
    if (fd >= 0)
        close(fd);
    md_lora_file *f = NULL;
    md_lora_binding bind = {0};
    int modules = fd >= 0 ? write_lora(m, rank, lora_path, &err) : -1;
    if (modules < 0 || md_lora_file_open(lora_path, &f, &err) != MD_OK ||
        md_lora_bind(&bind, m, f, 1.0f, 0, &err) != MD_OK) {
        fprintf(stderr, "bench-lora: %s\n", fd < 0 ? "cannot make a temporary file" : err.msg);
        unlink(lora_path);
        return 1;
    }
    if (gen_steps > 0) {
        md_lora_binding_clear(&bind);
        md_lora_file_free(f);
        md_status gs = generate_once(m, cpu, lora_path, size, gen_steps, apply, &err);
        if (gs != MD_OK)
            fprintf(stderr, "bench-lora: %s\n", err.msg);
        unlink(lora_path);
        md_model_free(m);
        md_backend_destroy(cpu);
        return gs == MD_OK ? 0 : 1;
    }
    int f_vae = md_vae_factor(m->vae);
    int lh = size / f_vae, lc = m->unet_cfg.in_channels, ctx = m->unet_cfg.cross_attention_dim;
    size_t n = (size_t)lc * lh * lh;
    float *embeds = calloc((size_t)2 * 77 * ctx, sizeof(float));
    float *x = malloc(sizeof(float) * 2 * n), *eps = malloc(sizeof(float) * 2 * n);
    md_randn(7, 0, 0, x, 2 * n);
    md_randn(8, 0, 0, embeds, (size_t)2 * 77 * ctx);
    float ts[2] = {500, 500};
    md_unet_inputs in = {.batch = 2, .height = lh, .width = lh, .sample = x, .timesteps = ts,
                         .context = embeds, .context_len = 77};
    md_unet_state *state = NULL;
    md_status st = md_unet_state_new(m->unet, &state, &err);
    printf("model %s, %dx%d, rank-%d LoRA on %d modules\n",
           path, size, size, rank, modules);
    const char *label[3] = {"no LoRA (baseline)", "fused copies", "side products"};
    double base = 0;
    for (int mode = 0; mode < 3 && st == MD_OK; mode++) {
        md_backend *be = cpu;
        double t0 = now(), setup = 0;
        if (mode > 0 &&
            (st = md_lora_backend_new(cpu, &bind, mode == 1 ? MD_LORA_FUSED : MD_LORA_SIDE, &be,
                                      &err)) != MD_OK)
            break;
        setup = now() - t0;
        double best = 1e30, first = 0;
        for (int r = 0; r < reps && st == MD_OK; r++) {
            t0 = now();
            st = md_unet_forward(m->unet, state, be, &in, eps, &err);
            double t = now() - t0;
            first = r == 0 ? t : first;
            best = t < best ? t : best;
        }
        if (mode == 0)
            base = best;
        printf("%-20s step %7.3f s (first %.3f s) = %.2fx the baseline; set-up %.3f s\n",
               label[mode], best, first, best / base, setup);
        if (be != cpu)
            md_backend_destroy(be);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS %.0f MiB\n", (double)ru.ru_maxrss / 1024.0);
    if (st != MD_OK)
        fprintf(stderr, "bench-lora: %s\n", err.msg);
    unlink(lora_path);
    md_unet_state_free(state);
    md_lora_binding_clear(&bind);
    md_lora_file_free(f);
    md_model_free(m);
    md_backend_destroy(cpu);
    free(embeds);
    free(x);
    free(eps);
    return st == MD_OK ? 0 : 1;
}
