#include <stdio.h>
#include <time.h>

#include "cli.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int md_cli_progress_cb(void *user, int step, int total)
{
    md_cli_progress *p = user;
    if (p->start == 0)
        p->start = now_seconds();
    if (p->tty) {
        double elapsed = now_seconds() - p->start;
        double rate = elapsed > 0 ? step / elapsed : 0;
        double eta = rate > 0 ? (total - step) / rate : 0;
        int width = 30, filled = total ? step * width / total : width;
        fprintf(stderr, "\r[");
        for (int i = 0; i < width; i++)
            fputc(i < filled ? '#' : '.', stderr);
        fprintf(stderr, "] %d/%d  %.2f it/s  ETA %.0fs ", step, total, rate, eta);
        if (step == total)
            fputc('\n', stderr);
        fflush(stderr);
    }
    return p->cancel_flag && *p->cancel_flag;
}
