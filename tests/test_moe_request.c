/* The one validation of a request (pipeline/request.c) on the MoE
 * controls of ABI 1.4: out-of-range values are refused with a message
 * naming the field and the valid range, without a model and against the
 * bundled demo model (4 experts, top-2, token routing, 3 MoE layers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/request.h"
#include "test_support.h"

static const md_model *model;

static void expect(const mdiff_gen_params *p, const md_model *m, const char *needle)
{
    mdiff_gen_params out;
    md_error err = {0};
    md_request_context rc = {.model = m};
    md_status st = md_request_resolve(&rc, p, &out, &err);
    if (!needle)
        CHECK(st == MD_OK, "want OK, got %d '%s'", (int)st, err.msg);
    else
        CHECK(st == MD_ERR_INVALID && strstr(err.msg, needle), "want '%s', got %d '%s'", needle,
              (int)st, err.msg);
}

static mdiff_gen_params request(void)
{
    mdiff_gen_params p;
    md_request_defaults(&p, sizeof p);
    p.prompt = "a red circle";
    p.steps = 2;
    return p;
}

static void test_alone(void)
{
    mdiff_gen_params p = request();
    p.moe_capacity = -1.0f;
    expect(&p, NULL, "moe_capacity must be 0 (off) or above 0 up to 64 (got -1)");
    p.moe_capacity = 65.0f;
    expect(&p, NULL, "moe_capacity must be");
    p = request();
    p.moe_skip = 1.0f;
    expect(&p, NULL, "moe_skip must be in [0, 1) (got 1)");
    p.moe_skip = -0.5f;
    expect(&p, NULL, "moe_skip must be in [0, 1)");
    p = request();
    p.moe_schedule = "0-1:k=2,skip=0.5";
    expect(&p, NULL, "moe_schedule: at byte 7 (','): expected '/' between settings");
    p = request();
    p.moe_routes = "{}";
    expect(&p, NULL, "moe_routes: \"format\" must be");
    p = request();
    p.moe_routing = 4;
    expect(&p, NULL, "unknown moe_routing 4");
    p.moe_routing = MDIFF_ROUTING_SEQUENCE_SPLIT;
    p.moe_capacity = 1.0f; /* needs the model's routing to judge */
    p.moe_skip = 0.5f;
    p.moe_schedule = "0-0.5:k=3;0.5-1:experts=0,1/skip=0.2";
    expect(&p, NULL, NULL);
}

static void test_model(void)
{
    mdiff_gen_params p = request();
    p.moe_top_k = 5;
    expect(&p, model, "moe_top_k 5 is out of range 1..4: the model has 4 experts per layer");
    p = request();
    p.moe_capacity = 1.0f;
    expect(&p, model, NULL); /* the demo model routes per token */
    p.moe_routing = MDIFF_ROUTING_SEQUENCE;
    expect(&p, model, "moe_capacity applies to token routing only");
    p.moe_routing = MDIFF_ROUTING_SEQUENCE_SPLIT;
    expect(&p, model, "moe_capacity applies to token routing only");
    p = request();
    p.moe_schedule = "0-0.5:k=5";
    expect(&p, model, "moe_schedule: range 0-0.5: k=5 is out of range (1..4");
    p.moe_schedule = "0-1:experts=1,4";
    expect(&p, model, "moe_schedule: range 0-1: experts must be 0..3");
    p.moe_schedule = "0-1:experts=1/k=2";
    expect(&p, model, "k=2 but only 1 experts are pinned");
    p.moe_schedule = "0-0.5:experts=1,3;0.5-1:k=1/skip=0.4";
    expect(&p, model, NULL);
}

/* Routes for the demo model: its layers, steps and guidance must match. */
static void test_routes(void)
{
    static const char layers[] =
        "[{\"name\": \"down_blocks.1.attentions.0.transformer_blocks.0.ff\", \"experts\": 4},"
        " {\"name\": \"up_blocks.0.attentions.0.transformer_blocks.0.ff\", \"experts\": 4},"
        " {\"name\": \"up_blocks.0.attentions.1.transformer_blocks.0.ff\", \"experts\": 4}]";
    static const char step[] =
        "[{\"experts\": [[0], [1]]}, {\"experts\": [[2], [3]]}, {\"experts\": [[0, 1], [1]]}]";
    char text[2048];
    snprintf(text, sizeof text,
             "{\"format\": \"moe-diffuse-routes\", \"version\": 1, \"steps\": 2, "
             "\"first_step\": 0, \"groups\": 2, \"layers\": %s, \"routes\": [%s, %s]}",
             layers, step, step);
    mdiff_gen_params p = request();
    p.moe_routes = text;
    p.moe_capacity = 1.0f; /* routes win over every other MoE field */
    expect(&p, model, NULL);
    p.steps = 3;
    expect(&p, model, "moe_routes: recorded for steps 1..2 of 2, but this request runs steps "
                      "1..3 of 3");
    p.steps = 2;
    p.guidance = 1.0f;
    expect(&p, model, "moe_routes: recorded with classifier-free guidance, this request runs "
                      "without it");
    p.guidance = MDIFF_GUIDANCE_MODEL;
    snprintf(text, sizeof text,
             "{\"format\": \"moe-diffuse-routes\", \"version\": 1, \"steps\": 2, "
             "\"first_step\": 0, \"groups\": 2, \"layers\": [{\"name\": \"x\", \"experts\": 4}],"
             " \"routes\": [[{\"experts\": [[0], [1]]}], [{\"experts\": [[0], [1]]}]]}");
    expect(&p, model, "moe_routes: the routes list 1 MoE layers, the model has 3");
}

int main(void)
{
    test_alone();
    const char *src = getenv("MD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/demo", src ? src : ".");
    md_backend *be = md_test_cpu_backend(1);
    md_model_options opt = {.backend = be};
    md_model *m = NULL;
    md_error err = {0};
    if (!be || md_model_load(path, &opt, &m, &err) != MD_OK) {
        FAIL("loading %s: %s", path, err.msg);
    } else {
        model = m;
        test_model();
        test_routes();
        md_model_free(m);
    }
    md_backend_destroy(be);
    return md_test_finish("test_moe_request");
}
