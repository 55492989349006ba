/* Samplers against diffusers' reference tables and single steps: for every
 * golden case and every scheduler in its golden.json "scheduler_configs",
 * the timesteps / sigmas / init_noise_sigma of 4, 10 and 20 steps and the
 * 4-step trajectory (the recorded sample and model output of each step are
 * fed in; scale_model_input and prev_sample are compared). Error is
 * max|a-b| / max|b| against the tolerance golden.json gives each record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "sampling/sampler.h"
#include "test_support.h"

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
        else
            CHECK(strcmp(v->valuestring, "linear") == 0, "%s: unknown beta_schedule %s", name,
                  v->valuestring);
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
    CHECK((v && cJSON_IsTrue(v)) == karras, "%s: use_karras_sigmas does not match the name",
          name);
    return c;
}

/* ---- comparisons ---------------------------------------------------- */

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
    if (!CHECK(t->dtype == MD_F32 && (size_t)md_tensor_numel(t) == expect_n,
               "%s: %s has dtype %s and %lld values, expected F32 x %zu", g->case_name, name,
               md_dtype_name(t->dtype), (long long)md_tensor_numel(t), expect_n))
        return NULL;
    return (const float *)t->data;
}

static double gtol(const golden *g, const char *name)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g->tensors, name);
    const cJSON *t = e ? cJSON_GetObjectItemCaseSensitive(e, "tolerance") : NULL;
    if (!CHECK(t && cJSON_IsNumber(t), "%s: no tolerance for %s in golden.json", g->case_name,
               name))
        return 0.0;
    return t->valuedouble;
}

static void report(const golden *g, const char *name, int kind, double err)
{
    double tol = gtol(g, name);
    int pass = err <= tol;
    printf("%-16s %-44s %.3e  tol %.0e  %s\n", g->case_name, name, err, tol,
           pass ? "PASS" : "FAIL");
    CHECK(pass, "%s: %s error %.3e over %.0e", g->case_name, name, err, tol);
    if (!(err <= g_max_err[kind]))
        g_max_err[kind] = err;
    g_records++;
}

/* Compare `n` values of our output with record `name` (which must exist). */
static void compare(const golden *g, const char *name, int kind, const float *ours, size_t n)
{
    const float *ref = gfind(g, name, n);
    if (!CHECK(ref != NULL, "%s: missing record %s", g->case_name, name))
        return;
    report(g, name, kind, md_test_rel_err(ours, ref, n));
}

static void check_tables(const golden *g, const char *sname, md_sampler_kind kind,
                         const md_sched_config *cfg, int steps)
{
    char name[160];
    md_error err = {0};
    md_sampler *s = NULL;
    if (!CHECK(md_sampler_create(&s, kind, cfg, steps, &err) == MD_OK, "%s: create %s n%d: %s",
               g->case_name, sname, steps, err.msg))
        return;
    CHECK(md_sampler_steps(s) == steps);
    snprintf(name, sizeof name, "sched.%s.n%d.timesteps", sname, steps);
    compare(g, name, K_TIMESTEPS, md_sampler_timesteps(s), (size_t)steps);
    float ins = md_sampler_init_noise_sigma(s);
    snprintf(name, sizeof name, "sched.%s.n%d.init_noise_sigma", sname, steps);
    compare(g, name, K_INIT_SIGMA, &ins, 1);
    snprintf(name, sizeof name, "sched.%s.n%d.sigmas", sname, steps);
    const float *sig = md_sampler_sigmas(s);
    int have = md_safetensors_find(g->st, name) != NULL;
    int agree = CHECK(have == (sig != NULL), "%s: %s: golden %s sigmas, sampler %s", g->case_name,
                      sname, have ? "has" : "has no", sig ? "has" : "has none");
    if (agree && sig)
        compare(g, name, K_SIGMAS, sig, (size_t)steps + 1);
    md_sampler_free(s);
}

static void check_traj(const golden *g, const char *sname, md_sampler_kind kind,
                       const md_sched_config *cfg)
{
    char name[160];
    md_error err = {0};
    snprintf(name, sizeof name, "sched.%s.traj.sample", sname);
    const md_tensor *ts = md_safetensors_find(g->st, name);
    if (!CHECK(ts && ts->ndim >= 2, "%s: missing %s", g->case_name, name))
        return;
    int steps = (int)ts->shape[0];
    size_t total = (size_t)md_tensor_numel(ts), n = total / (size_t)steps;
    const float *sample = gfind(g, name, total);
    snprintf(name, sizeof name, "sched.%s.traj.model_output", sname);
    const float *mout = gfind(g, name, total);
    snprintf(name, sizeof name, "sched.%s.traj.noise", sname);
    const float *noise = md_safetensors_find(g->st, name) ? gfind(g, name, total) : NULL;
    if (!CHECK(sample && mout, "%s: %s: incomplete trajectory records", g->case_name, sname))
        return;
    md_sampler *s = NULL;
    if (!CHECK(md_sampler_create(&s, kind, cfg, steps, &err) == MD_OK, "%s: create %s: %s",
               g->case_name, sname, err.msg))
        return;
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
        CHECK(st == MD_OK, "%s: %s step %d: %s", g->case_name, sname, i, err.msg);
    }
    if (scaled && prev) {
        /* One line per step, then the record as a whole. */
        const char *recs[2] = {"scaled_model_input", "prev_sample"};
        const float *mine[2] = {scaled, prev};
        for (int r = 0; r < 2; r++) {
            snprintf(name, sizeof name, "sched.%s.traj.%s", sname, recs[r]);
            const float *ref = gfind(g, name, total);
            if (!CHECK(ref != NULL, "%s: missing %s", g->case_name, name))
                continue;
            for (int i = 0; i < steps; i++)
                printf("%-16s   %s[%d] step error %.3e\n", g->case_name, name, i,
                       md_test_rel_err(mine[r] + (size_t)i * n, ref + (size_t)i * n, n));
            report(g, name, r == 0 ? K_SCALED : K_PREV, md_test_rel_err(mine[r], ref, total));
        }
    }
    free(scaled);
    free(prev);
    md_sampler_free(s);
}

static int run_case(const char *dir, const char *case_name)
{
    char path[1100];
    if (snprintf(path, sizeof path, "%s/golden.safetensors", dir) >= (int)sizeof path ||
        !md_test_exists(path))
        return 0; /* single-file cases point at another case's tensors */
    golden g = {case_name, md_test_open_safetensors(path), NULL};
    if (!g.st)
        return 0;
    cJSON *root = NULL;
    if (snprintf(path, sizeof path, "%s/golden.json", dir) < (int)sizeof path)
        root = md_test_read_json(path);
    const cJSON *configs = root ? cJSON_GetObjectItemCaseSensitive(root, "scheduler_configs") : NULL;
    g.tensors = root ? cJSON_GetObjectItemCaseSensitive(root, "tensors") : NULL;
    if (!CHECK(root && g.tensors, "%s: cannot read golden.json or its tensors", path)) {
        cJSON_Delete(root);
        md_safetensors_close(g.st);
        return 0;
    }
    if (!configs) {
        /* Fine for cases without scheduler records, an error otherwise. */
        for (size_t i = 0; i < md_safetensors_count(g.st); i++)
            if (strncmp(md_safetensors_name(g.st, i), "sched.", 6) == 0) {
                FAIL("%s: sched.* records but no scheduler_configs", case_name);
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
        if (!CHECK(kind >= 0, "%s: unknown scheduler %s", case_name, sname))
            continue;
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

static void test_golden(void)
{
    const char *root = md_test_golden_dir();
    if (!CHECK(root != NULL, "MD_GOLDEN_DIR is not set"))
        return;
    int count = 0;
    char **names = md_test_list_cases(root, &count);
    if (!CHECK(names != NULL, "cannot open MD_GOLDEN_DIR %s", root))
        return;
    int cases = 0, scheds = 0;
    for (int i = 0; i < count; i++) {
        char dir[1024];
        int ns = 0;
        if (snprintf(dir, sizeof dir, "%s/%s", root, names[i]) < (int)sizeof dir)
            ns = run_case(dir, names[i]);
        if (ns > 0)
            cases++;
        scheds += ns;
    }
    md_test_free_names(names, count);
    printf("\n%d golden case(s), %d scheduler config(s), %d records\n", cases, scheds, g_records);
    for (int k = 0; k < K_COUNT; k++)
        printf("max error %-26s %.3e\n", k_kind_names[k], g_max_err[k]);
    CHECK(cases >= 1);
}

int main(void)
{
    test_names();
    test_golden();
    return md_test_finish("test_sampler");
}
