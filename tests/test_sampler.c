/* Samplers against diffusers' reference tables and single steps: for every
 * golden case and every scheduler in its golden.json "scheduler_configs",
 * the timesteps / sigmas / init_noise_sigma of 4, 10 and 20 steps and the
 * 4-step trajectory (the recorded sample and model output of each step are
 * fed in; scale_model_input and prev_sample are compared). Error is
 * max|a-b| / max|b| against the tolerance golden.json gives each record. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "sampling/sampler.h"

static int failures;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                               \
        }                                                                             \
    } while (0)

/* Largest error seen per record kind, over all cases and schedulers. */
enum { K_TIMESTEPS, K_SIGMAS, K_INIT_SIGMA, K_TRAJ_TIMESTEPS, K_SCALED, K_PREV, K_COUNT };
static const char *const k_kind_names[K_COUNT] = {
    "timesteps", "sigmas", "init_noise_sigma", "traj.timesteps", "traj.scaled_model_input",
    "traj.prev_sample"};
static double g_max_err[K_COUNT];
static int g_records;

static void test_names(void)
{
    for (int k = 0; k < MD_SAMPLER_COUNT; k++) {
        const char *name = md_sampler_name((md_sampler_kind)k);
        CHECK(name != NULL && strcmp(name, "unknown") != 0);
        CHECK(md_sampler_from_name(name) == k);
        for (int j = 0; j < k; j++)
            CHECK(strcmp(name, md_sampler_name((md_sampler_kind)j)) != 0);
    }
    CHECK(md_sampler_from_name("dpmpp_2m_karras") == MD_SAMPLER_DPMPP_2M_KARRAS);
    CHECK(md_sampler_from_name("euler_a") == MD_SAMPLER_EULER_A);
    CHECK(md_sampler_from_name("Euler") == -1);
    CHECK(md_sampler_from_name("") == -1);
    CHECK(md_sampler_from_name("pndm") == -1);
    CHECK(md_sampler_from_name(NULL) == -1);
    CHECK(strcmp(md_sampler_name(MD_SAMPLER_COUNT), "unknown") == 0);
}

/* ---- golden.json ---------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        fclose(f);
        return NULL;
    }
    b[sz] = '\0';
    fclose(f);
    return b;
}

/* Python's json writes -Infinity / Infinity (lambda_min_clipped), which
 * cJSON rejects; outside strings they become numbers strtod turns into
 * +-inf. */
static void patch_nonfinite(char *s)
{
    int in_str = 0;
    for (char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = 0;
            continue;
        }
        if (*p == '"')
            in_str = 1;
        else if (strncmp(p, "Infinity", 8) == 0)
            memcpy(p, "1e999   ", 8);
    }
}

static md_sched_config sched_from_json(const cJSON *j, const char *name)
{
    md_sched_config c = {1000, 0.0001f, 0.02f, MD_BETA_LINEAR, 0, 1, MD_PRED_EPSILON, -1};
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "num_train_timesteps")) && cJSON_IsNumber(v))
        c.num_train_timesteps = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "beta_start")) && cJSON_IsNumber(v))
        c.beta_start = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "beta_end")) && cJSON_IsNumber(v))
        c.beta_end = (float)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "steps_offset")) && cJSON_IsNumber(v))
        c.steps_offset = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "set_alpha_to_one")) && cJSON_IsBool(v))
        c.set_alpha_to_one = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "beta_schedule")) && cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "scaled_linear") == 0)
            c.beta_schedule = MD_BETA_SCALED_LINEAR;
        else if (strcmp(v->valuestring, "squaredcos_cap_v2") == 0)
            c.beta_schedule = MD_BETA_SQUAREDCOS;
        else if (strcmp(v->valuestring, "linear") != 0) {
            fprintf(stderr, "%s: unknown beta_schedule %s\n", name, v->valuestring);
            failures++;
        }
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "prediction_type")) && cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "v_prediction") == 0)
            c.prediction_type = MD_PRED_V;
        else if (strcmp(v->valuestring, "sample") == 0)
            c.prediction_type = MD_PRED_SAMPLE;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "timestep_spacing")) && cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "leading") == 0)
            c.timestep_spacing = MD_SPACING_LEADING;
        else if (strcmp(v->valuestring, "linspace") == 0)
            c.timestep_spacing = MD_SPACING_LINSPACE;
        else if (strcmp(v->valuestring, "trailing") == 0)
            c.timestep_spacing = MD_SPACING_TRAILING;
    }
    /* The sampler name carries what md_sched_config has no field for;
     * make sure the config agrees with it. */
    int karras = strstr(name, "karras") != NULL;
    v = cJSON_GetObjectItemCaseSensitive(j, "use_karras_sigmas");
    if ((v && cJSON_IsTrue(v)) != karras) {
        fprintf(stderr, "%s: use_karras_sigmas does not match the name\n", name);
        failures++;
    }
    return c;
}

/* ---- comparisons ---------------------------------------------------- */

static double rel_err(const float *a, const float *b, size_t n)
{
    double maxd = 0.0, maxb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxd))
            maxd = d; /* also catches NaN */
        if (fabs((double)b[i]) > maxb)
            maxb = fabs((double)b[i]);
    }
    if (maxb == 0.0)
        return maxd == 0.0 ? 0.0 : INFINITY;
    return maxd / maxb;
}

typedef struct golden {
    const char *case_name;
    md_safetensors *st;
    const cJSON *tensors; /* golden.json "tensors" */
} golden;

static const float *gfind(const golden *g, const char *name, size_t expect_n)
{
    const md_tensor *t = md_safetensors_find(g->st, name);
    if (!t)
        return NULL;
    if (t->dtype != MD_F32 || (size_t)md_tensor_numel(t) != expect_n) {
        fprintf(stderr, "%s: %s has dtype %s and %lld values, expected F32 x %zu\n", g->case_name,
                name, md_dtype_name(t->dtype), (long long)md_tensor_numel(t), expect_n);
        failures++;
        return NULL;
    }
    return (const float *)t->data;
}

static double gtol(const golden *g, const char *name)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g->tensors, name);
    const cJSON *t = e ? cJSON_GetObjectItemCaseSensitive(e, "tolerance") : NULL;
    if (!t || !cJSON_IsNumber(t)) {
        fprintf(stderr, "%s: no tolerance for %s in golden.json\n", g->case_name, name);
        failures++;
        return 0.0;
    }
    return t->valuedouble;
}

static void report(const golden *g, const char *name, int kind, double err)
{
    double tol = gtol(g, name);
    int pass = err <= tol;
    printf("%-16s %-44s %.3e  tol %.0e  %s\n", g->case_name, name, err, tol,
           pass ? "PASS" : "FAIL");
    if (!pass)
        failures++;
    if (!(err <= g_max_err[kind]))
        g_max_err[kind] = err;
    g_records++;
}

/* Compare `n` values of our output with record `name` (which must exist). */
static void compare(const golden *g, const char *name, int kind, const float *ours, size_t n)
{
    const float *ref = gfind(g, name, n);
    if (!ref) {
        fprintf(stderr, "%s: missing record %s\n", g->case_name, name);
        failures++;
        return;
    }
    report(g, name, kind, rel_err(ours, ref, n));
}

static void check_tables(const golden *g, const char *sname, md_sampler_kind kind,
                         const md_sched_config *cfg, int steps)
{
    char name[160];
    md_error err = {0};
    md_sampler *s = NULL;
    if (md_sampler_create(&s, kind, cfg, steps, &err) != MD_OK) {
        fprintf(stderr, "%s: create %s n%d: %s\n", g->case_name, sname, steps, err.msg);
        failures++;
        return;
    }
    CHECK(md_sampler_steps(s) == steps);
    snprintf(name, sizeof name, "sched.%s.n%d.timesteps", sname, steps);
    compare(g, name, K_TIMESTEPS, md_sampler_timesteps(s), (size_t)steps);
    float ins = md_sampler_init_noise_sigma(s);
    snprintf(name, sizeof name, "sched.%s.n%d.init_noise_sigma", sname, steps);
    compare(g, name, K_INIT_SIGMA, &ins, 1);
    snprintf(name, sizeof name, "sched.%s.n%d.sigmas", sname, steps);
    const float *sig = md_sampler_sigmas(s);
    int have = md_safetensors_find(g->st, name) != NULL;
    if (have != (sig != NULL)) {
        fprintf(stderr, "%s: %s: golden %s sigmas, sampler %s\n", g->case_name, sname,
                have ? "has" : "has no", sig ? "has" : "has none");
        failures++;
    } else if (sig) {
        compare(g, name, K_SIGMAS, sig, (size_t)steps + 1);
    }
    md_sampler_free(s);
}

static void check_traj(const golden *g, const char *sname, md_sampler_kind kind,
                       const md_sched_config *cfg)
{
    char name[160];
    md_error err = {0};
    snprintf(name, sizeof name, "sched.%s.traj.sample", sname);
    const md_tensor *ts = md_safetensors_find(g->st, name);
    if (!ts || ts->ndim < 2) {
        fprintf(stderr, "%s: missing %s\n", g->case_name, name);
        failures++;
        return;
    }
    int steps = (int)ts->shape[0];
    size_t total = (size_t)md_tensor_numel(ts), n = total / (size_t)steps;
    const float *sample = gfind(g, name, total);
    snprintf(name, sizeof name, "sched.%s.traj.model_output", sname);
    const float *mout = gfind(g, name, total);
    snprintf(name, sizeof name, "sched.%s.traj.noise", sname);
    const float *noise = md_safetensors_find(g->st, name) ? gfind(g, name, total) : NULL;
    if (!sample || !mout) {
        fprintf(stderr, "%s: %s: incomplete trajectory records\n", g->case_name, sname);
        failures++;
        return;
    }
    md_sampler *s = NULL;
    if (md_sampler_create(&s, kind, cfg, steps, &err) != MD_OK) {
        fprintf(stderr, "%s: create %s: %s\n", g->case_name, sname, err.msg);
        failures++;
        return;
    }
    CHECK(md_sampler_needs_noise(s) == (noise != NULL));
    snprintf(name, sizeof name, "sched.%s.traj.timesteps", sname);
    compare(g, name, K_TRAJ_TIMESTEPS, md_sampler_timesteps(s), (size_t)steps);

    float *scaled = malloc(total * sizeof *scaled);
    float *prev = malloc(total * sizeof *prev);
    CHECK(scaled && prev);
    for (int i = 0; scaled && prev && i < steps; i++) {
        size_t o = (size_t)i * n;
        md_sampler_scale_input(s, i, sample + o, scaled + o, n);
        md_status st = md_sampler_step(s, i, mout + o, sample + o, noise ? noise + o : NULL,
                                       prev + o, n, &err);
        if (st != MD_OK) {
            fprintf(stderr, "%s: %s step %d: %s\n", g->case_name, sname, i, err.msg);
            failures++;
        }
    }
    if (scaled && prev) {
        /* One line per step, then the record as a whole. */
        const char *recs[2] = {"scaled_model_input", "prev_sample"};
        const float *mine[2] = {scaled, prev};
        for (int r = 0; r < 2; r++) {
            snprintf(name, sizeof name, "sched.%s.traj.%s", sname, recs[r]);
            const float *ref = gfind(g, name, total);
            if (!ref) {
                fprintf(stderr, "%s: missing %s\n", g->case_name, name);
                failures++;
                continue;
            }
            for (int i = 0; i < steps; i++)
                printf("%-16s   %s[%d] step error %.3e\n", g->case_name, name, i,
                       rel_err(mine[r] + (size_t)i * n, ref + (size_t)i * n, n));
            report(g, name, r == 0 ? K_SCALED : K_PREV, rel_err(mine[r], ref, total));
        }
    }
    free(scaled);
    free(prev);
    md_sampler_free(s);
}

static int run_case(const char *dir, const char *case_name)
{
    char path[1100];
    struct stat sb;
    if (snprintf(path, sizeof path, "%s/golden.safetensors", dir) >= (int)sizeof path ||
        stat(path, &sb) != 0)
        return 0; /* single-file cases point at another case's tensors */
    md_error err = {0};
    golden g = {case_name, NULL, NULL};
    if (md_safetensors_open(path, &g.st, &err) != MD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        failures++;
        return 0;
    }
    char *text = NULL;
    if (snprintf(path, sizeof path, "%s/golden.json", dir) < (int)sizeof path)
        text = read_text(path);
    cJSON *root = NULL;
    if (text) {
        patch_nonfinite(text);
        root = cJSON_Parse(text);
    }
    free(text);
    const cJSON *configs = root ? cJSON_GetObjectItemCaseSensitive(root, "scheduler_configs") : NULL;
    g.tensors = root ? cJSON_GetObjectItemCaseSensitive(root, "tensors") : NULL;
    if (!root || !g.tensors) {
        fprintf(stderr, "%s: cannot read golden.json or its tensors\n", path);
        failures++;
        cJSON_Delete(root);
        md_safetensors_close(g.st);
        return 0;
    }
    if (!configs) {
        /* Fine for cases without scheduler records, an error otherwise. */
        for (size_t i = 0; i < md_safetensors_count(g.st); i++)
            if (strncmp(md_safetensors_name(g.st, i), "sched.", 6) == 0) {
                fprintf(stderr, "%s: sched.* records but no scheduler_configs\n", case_name);
                failures++;
                break;
            }
        printf("%-16s no scheduler records\n", case_name);
        cJSON_Delete(root);
        md_safetensors_close(g.st);
        return 0;
    }
    int n_sched = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, configs)
    {
        const char *sname = c->string;
        int kind = md_sampler_from_name(sname);
        if (kind < 0) {
            fprintf(stderr, "%s: unknown scheduler %s\n", case_name, sname);
            failures++;
            continue;
        }
        md_sched_config cfg = sched_from_json(c, sname);
        static const int counts[3] = {4, 10, 20};
        for (int k = 0; k < 3; k++)
            check_tables(&g, sname, (md_sampler_kind)kind, &cfg, counts[k]);
        check_traj(&g, sname, (md_sampler_kind)kind, &cfg);
        n_sched++;
    }
    cJSON_Delete(root);
    md_safetensors_close(g.st);
    return n_sched;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden(void)
{
    const char *root = getenv("MD_GOLDEN_DIR");
    if (!root || !*root) {
        fprintf(stderr, "MD_GOLDEN_DIR is not set\n");
        failures++;
        return;
    }
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "cannot open MD_GOLDEN_DIR %s\n", root);
        failures++;
        return;
    }
    char *names[256];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 256)
        if (e->d_name[0] != '.')
            names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)count, sizeof names[0], cmp_str);
    int cases = 0, scheds = 0;
    for (int i = 0; i < count; i++) {
        char dir[1024];
        int ns = 0;
        if (snprintf(dir, sizeof dir, "%s/%s", root, names[i]) < (int)sizeof dir)
            ns = run_case(dir, names[i]);
        if (ns > 0)
            cases++;
        scheds += ns;
        free(names[i]);
    }
    printf("\n%d golden case(s), %d scheduler config(s), %d records\n", cases, scheds, g_records);
    for (int k = 0; k < K_COUNT; k++)
        printf("max error %-26s %.3e\n", k_kind_names[k], g_max_err[k]);
    CHECK(cases >= 1);
}

int main(void)
{
    test_names();
    test_golden();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all sampler checks passed\n");
    return 0;
}
