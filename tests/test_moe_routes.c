/* Routes files (moe/moe_routes.c): a good file parses and binds to its
 * layers; every kind of bad input is refused with a message naming it. */
#include <stdio.h>
#include <string.h>

#include "moe/moe_routes.h"
#include "test_support.h"

#define HEAD(groups, layers) \
    "{\"format\": \"moe-diffuse-routes\", \"version\": 1, \"steps\": 2, \"first_step\": 0, " \
    "\"groups\": " groups ", \"layers\": " layers ", \"routes\": "
#define TWO "[{\"name\": \"a.ff\", \"experts\": 4}, {\"name\": \"b.ff\", \"experts\": 4}]"

static const char good_text[] =
    HEAD("2", TWO) "[[{\"experts\": [[0, 2], [1, 3]]}, {\"k\": 2, \"choices\": \"01-3\"}],"
                   " [{\"experts\": [[3], [3]]}, {\"k\": 1, \"choices\": \"3\"}]]}";

static void bad(const char *text, const char *needle)
{
    md_moe_routes *r = NULL;
    md_error err = {0};
    md_status st = md_moe_routes_parse(text, 1 << 20, &r, &err);
    CHECK(st == MD_ERR_INVALID && !r && strstr(err.msg, needle), "want '%s', got %d '%s' for %s",
          needle, (int)st, err.msg, text);
}

static void test_good(void)
{
    md_moe_routes *r = NULL;
    md_error err = {0};
    REQUIRE(md_moe_routes_parse(good_text, 1 << 20, &r, &err) == MD_OK, "%s", err.msg);
    CHECK(r->steps == 2 && r->groups == 2 && r->nlayers == 2, "header read");
    const char *names[2] = {"b.ff", "a.ff"}; /* the model lists them the other way round */
    int experts[2] = {4, 4};
    REQUIRE(md_moe_routes_bind(r, 2, names, experts, &err) == MD_OK, "%s", err.msg);
    const md_moe_route_entry *e = md_moe_routes_at(r, 0, 1); /* model layer 1 = a.ff */
    REQUIRE(e, "entry");
    CHECK(!e->token && e->k == 2 && e->n == 2 && e->experts[0] == 0 && e->experts[1] == 2 &&
              e->experts[2] == 1 && e->experts[3] == 3,
          "a.ff step 0: [[0,2],[1,3]]");
    e = md_moe_routes_at(r, 0, 0);
    CHECK(e && e->token && e->k == 2 && e->n == 2 && e->experts[2] == -1 && e->experts[3] == 3,
          "b.ff step 0: rows 01, -3");
    e = md_moe_routes_at(r, 1, 1);
    CHECK(e && e->k == 1 && e->experts[0] == 3 && e->experts[1] == 3, "a.ff step 1: [[3],[3]]");
    CHECK(md_moe_routes_at(r, 2, 0) == NULL, "no step 2");
    int three[2] = {4, 3};
    CHECK(md_moe_routes_bind(r, 2, names, three, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "layer 'a.ff' has 4 experts in the routes, 3 in the model"),
          "%s", err.msg);
    const char *other[2] = {"b.ff", "c.ff"};
    CHECK(md_moe_routes_bind(r, 2, other, experts, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "layer 'c.ff' is not in the routes"),
          "%s", err.msg);
    CHECK(md_moe_routes_bind(r, 1, names, experts, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "the routes list 2 MoE layers, the model has 1"),
          "%s", err.msg);
    md_moe_routes_free(r);
}

int main(void)
{
    test_good();
    bad("", "not a JSON object (syntax error near byte 0)");
    bad("{\"format\": ", "syntax error near byte");
    bad("[1]", "not a JSON object");
    bad("{\"format\": \"other\"}", "\"format\" must be \"moe-diffuse-routes\"");
    bad("{\"format\": \"moe-diffuse-routes\", \"version\": 2}", "\"version\" must be 1");
    /* the fuzzer's finding: a number beyond int, refused before any conversion */
    bad("{\"format\": \"moe-diffuse-routes\", \"version\": 1, \"steps\": 5.6e26}",
        "\"steps\" must be an integer 1..1000");
    bad(HEAD("3", TWO) "[]}", "\"groups\" must be 1");
    bad(HEAD("2", "[]") "[]}", "\"layers\" must list 1..4096 layers");
    bad(HEAD("2", "[{\"name\": 1, \"experts\": 4}]") "[]}", "layers[0] needs \"name\"");
    bad(HEAD("2", "[{\"name\": \"a\", \"experts\": 65}]") "[]}", "layers[0] needs");
    bad(HEAD("2", "[{\"name\": \"a\", \"experts\": 4}, {\"name\": \"a\", \"experts\": 4}]") "[]}",
        "layers[1] has the same name as layers[0]");
    bad(HEAD("2", TWO) "[[]]}", "\"routes\" must hold 2 steps");
    bad(HEAD("2", TWO) "[[], []]}", "routes[0] must hold one entry per layer (2)");
    bad(HEAD("2", TWO) "[[1, 2], [1, 2]]}", "routes[0][0] must be an object");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0]]}, {}], []]}",
        "routes[0][0].experts must hold 2 list(s)");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [4]]}, {}], []]}",
        "routes[0][0]: experts are integers 0..3");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0, 0], [1]]}, {}], []]}",
        "routes[0][0]: expert 0 listed twice");
    bad(HEAD("2", TWO) "[[{\"experts\": [[], [1]]}, {}], []]}", "each list holds 1..16 experts");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [1]]}, {}], []]}",
        "routes[0][1]: a token entry needs \"k\"");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [1]]}, {\"k\": 2, \"choices\": \"012\"}], []]}",
        "\"choices\" has 3 characters, not a multiple of k = 2");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [1]]}, {\"k\": 1, \"choices\": \"4\"}], []]}",
        "choices[0] '4' is not an expert");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [1]]}, {\"k\": 2, \"choices\": \"0011\"}], []]}",
        "row 0 lists expert 0 twice");
    bad(HEAD("2", TWO) "[[{\"experts\": [[0], [1]]}, {\"k\": 5, \"choices\": \"01234\"}], []]}",
        "k = 5 but the layer has 4 experts");
    char big[64];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    md_moe_routes *r = NULL;
    md_error err = {0};
    CHECK(md_moe_routes_parse(big, 32, &r, &err) == MD_ERR_INVALID &&
              strstr(err.msg, "longer than 32 bytes"),
          "%s", err.msg);
    return md_test_finish("test_moe_routes");
}
