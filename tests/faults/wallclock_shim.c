/* A wall-clock jump for one process tree, for tests/faults/test_clock_jumps.py.
 *
 * LD_PRELOADed into codex-box: CLOCK_REALTIME (clock_gettime, gettimeofday, time) is
 * moved by the number of seconds in the file $CODEX_BOX_TEST_CLOCK_FILE, re-read on
 * every call, so a test can jump the clock mid-run. CLOCK_MONOTONIC and every other
 * clock are left alone — exactly what a real `date -s` does — without setting the
 * machine's own clock (which would move every other process's too, CI's timer included).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long offset_seconds(void) {
    const char *path = getenv("CODEX_BOX_TEST_CLOCK_FILE");
    long seconds = 0;
    FILE *file;
    if (path == NULL || (file = fopen(path, "re")) == NULL)
        return 0;
    if (fscanf(file, "%ld", &seconds) != 1)
        seconds = 0;
    fclose(file);
    return seconds;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(clock, ts);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += offset_seconds();
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    int result = clock_gettime(CLOCK_REALTIME, &ts);
    if (result == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return result;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
