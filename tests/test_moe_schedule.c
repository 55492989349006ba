/* Expert schedule parser (moe/moe_schedule.c): good schedules give the
 * ranges written, bad ones a message naming the byte where they go wrong. */
#include <stdio.h>
#include <string.h>

#include "moe/moe_schedule.h"
#include "test_support.h"

static void good(const char *text, int count)
{
    md_moe_schedule s;
    md_error err = {0};
    md_status st = md_moe_schedule_parse(text, 4096, &s, &err);
    CHECK(st == MD_OK && s.count == count, "'%s': %d ranges, status %d '%s'", text, s.count,
          (int)st, err.msg);
}

static void bad(const char *text, const char *needle)
{
    md_moe_schedule s;
    md_error err = {0};
    md_status st = md_moe_schedule_parse(text, 4096, &s, &err);
    CHECK(st == MD_ERR_INVALID && strstr(err.msg, needle), "'%s': want '%s', got %d '%s'", text,
          needle, (int)st, err.msg);
}

static void test_values(void)
{
    md_moe_schedule s;
    md_error err = {0};
    REQUIRE(md_moe_schedule_parse(" 0 - 0.3 : k = 2 ; 0.3-1:k=1/skip=0.25 / experts=0, 2,5 ;",
                                  4096, &s, &err) == MD_OK,
            "%s", err.msg);
    REQUIRE(s.count == 2, "two ranges");
    CHECK(s.range[0].lo == 0.0 && s.range[0].hi == 0.3 && s.range[0].k == 2 &&
              s.range[0].skip < 0 && s.range[0].pinned == 0,
          "range 0: 0-0.3 k=2, no skip, nothing pinned");
    CHECK(s.range[1].k == 1 && s.range[1].skip == 0.25f && s.range[1].pinned == 0x25 &&
              s.range[1].npinned == 3,
          "range 1: k=1 skip=0.25 experts 0,2,5");
    /* half-open ranges: 0.3 belongs to the second */
    CHECK(md_moe_schedule_at(&s, 0.0) == &s.range[0], "0 in [0, 0.3)");
    CHECK(md_moe_schedule_at(&s, 0.2999) == &s.range[0], "0.2999 in [0, 0.3)");
    CHECK(md_moe_schedule_at(&s, 0.3) == &s.range[1], "0.3 in [0.3, 1)");
    CHECK(md_moe_schedule_at(&s, 0.95) == &s.range[1], "0.95 in [0.3, 1)");
    REQUIRE(md_moe_schedule_parse("0.5-1:k=3", 4096, &s, &err) == MD_OK, "%s", err.msg);
    CHECK(md_moe_schedule_at(&s, 0.25) == NULL, "no range before 0.5");
}

int main(void)
{
    test_values();
    good("0-0.3:k=2;0.3-1:k=1", 2);
    good("0-0.5:experts=0,2;0.5-1:k=2", 2);
    good("0-1:skip=0", 1);
    good(".5-1:k=1;0-.5:k=2", 2);
    good("0-1:k=16/skip=0.999/experts=63", 1);
    bad("", "at byte 0 (end of text): expected a range start");
    bad("0-0.5:k=2,skip=0.1", "at byte 9 (','): expected '/' between settings");
    bad("0-0.5:k=2;0.4-1:k=1", "at byte 10 ('0'): expected a range that does not overlap");
    bad("0.5-0.5:k=1", "at byte 0 ('0'): expected a range a-b with 0 <= a < b <= 1");
    bad("0-1.5:k=1", "a range a-b with 0 <= a < b <= 1");
    bad("0-1:k=0", "at byte 6 ('0'): expected k as an integer 1..16");
    bad("0-1:k=17", "k as an integer 1..16");
    bad("0-1:k=1.5", "k as an integer 1..16");
    bad("0-1:k=999999999999999", "k as an integer 1..16"); /* beyond int: refused, no UB */
    bad("0-1:skip=1", "at byte 9 ('1'): expected a skip threshold in [0, 1)");
    bad("0-1:skip=-0.1", "a skip threshold in [0, 1)");
    bad("0-1:experts=1,1", "at byte 14 ('1'): expected at most 16 different experts");
    bad("0-1:experts=64", "an expert number 0..63");
    bad("0-1:experts=", "at byte 12 (end of text): expected an expert number");
    bad("0-1:k=1/k=2", "each setting once per range (k is repeated)");
    bad("0-1:top=2", "at byte 4 ('t'): expected a setting: k=N, skip=T or experts=A,B,...");
    bad("0-1", "at byte 3 (end of text): expected ':' after the range");
    bad("0 1:k=1", "at byte 2 ('1'): expected '-' between");
    bad("0-1:k=1 x", "at byte 8 ('x'): expected ';' before the next range, or the end");
    bad("0-1:k=1\x01", "byte 0x01");
    bad("0-1:k=1;;", "expected a range start");
    bad("-1-1:k=1", "at byte 0 ('-'): expected a range start");
    char longer[5000];
    memset(longer, ' ', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    bad(longer, "longer than 4096 bytes");
    char many[2048] = "";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s0.%03d-0.%03d:k=1",
                 i ? ";" : "", i, i + 1);
    bad(many, "at most 64 ranges");
    return md_test_finish("test_moe_schedule");
}
