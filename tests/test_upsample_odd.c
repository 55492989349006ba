/* Nearest 2x upsampling to an odd output size (the U-Net meeting a skip
 * connection whose size the down path halved from an odd one): every
 * combination of {2H-1, 2H} x {2W-1, 2W} gives y[i][j] = x[i/2][j/2]. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/backend.h"

int main(void)
{
    md_backend *be = NULL;
    md_error err = {0};
    if (md_backend_cpu_create(&be, 2, &err) != MD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int failures = 0;
    const int64_t B = 2, C = 3, H = 3, W = 4;
    float x[2 * 3 * 3 * 4], y[2 * 3 * 6 * 8];
    for (int i = 0; i < (int)(B * C * H * W); i++)
        x[i] = (float)i;
    for (int oh = 0; oh < 2; oh++)
        for (int ow = 0; ow < 2; ow++) {
            const int64_t Ho = 2 * H - 1 + oh, Wo = 2 * W - 1 + ow;
            size_t mark = be->arena_mark(be);
            md_tensor tx = be->new_tensor(be, 4, (int64_t[]){B, C, H, W});
            md_tensor ty = be->new_tensor(be, 4, (int64_t[]){B, C, Ho, Wo});
            be->upload(be, &tx, x);
            be->upsample_nearest2x(be, &ty, &tx);
            be->download(be, &ty, y);
            for (int64_t p = 0; p < B * C; p++)
                for (int64_t i = 0; i < Ho; i++)
                    for (int64_t j = 0; j < Wo; j++) {
                        float got = y[(p * Ho + i) * Wo + j];
                        float want = x[(p * H + i / 2) * W + j / 2];
                        if (got != want && failures++ < 5)
                            fprintf(stderr, "FAIL %lldx%lld: y[%lld][%lld][%lld] = %g, want %g\n",
                                    (long long)Ho, (long long)Wo, (long long)p, (long long)i,
                                    (long long)j, got, want);
                    }
            be->arena_reset(be, mark);
        }
    md_backend_destroy(be);
    if (!failures)
        printf("upsample to odd sizes: all checks passed\n");
    return failures != 0;
}
