/*
 * codex-box-supervise, its view of the processes in the container: finding and killing
 * process trees through /proc, and telling a real exec supervisor from a process that
 * only claims to be one. Part of the one static binary (supervise.c is its main).
 * Why /proc and not process groups: a command can leave its group and session
 * (setsid); it cannot leave its parent chain, which a subreaper keeps inside the tree.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise_procs.h"

#define MAX_PROCS 65536
#define KILL_ROUNDS 2000 /* bounded: ~2 s of 1 ms naps when something refuses to go */

static pid_t pids[MAX_PROCS], ppids[MAX_PROCS];
static char live[MAX_PROCS], mark[MAX_PROCS];

void nap_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The parent of `pid` as this pid namespace sees it; -1 when it is gone. 0 means a
 * parent outside the namespace: the engine, which starts only pid 1 and each exec's
 * supervisor. Nothing a command starts can have it (an orphan goes to a subreaper or
 * to pid 1), so it tells a real supervisor from a process that merely claims to be one. */
long ppid_of(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    char *paren = strrchr(buf, ')');
    char state;
    long ppid;
    if (paren == NULL || sscanf(paren + 1, " %c %ld", &state, &ppid) != 2)
        return -1;
    return ppid;
}

long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* (pid, ppid, not a zombie) of every process this /proc shows; the count, or -1. */
static int scan(void) {
    DIR *dir = opendir("/proc");
    if (dir == NULL)
        return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && n < MAX_PROCS) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char path[64], buf[512], state;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
        int ppid;
        if (paren == NULL || sscanf(paren + 1, " %c %d", &state, &ppid) != 2)
            continue;
        pids[n] = (pid_t)pid;
        ppids[n] = (pid_t)ppid;
        live[n++] = state != 'Z' && state != 'X'; /* a zombie runs nothing, holds no child */
    }
    closedir(dir);
    return n;
}

/* SIGKILL every descendant of roots[0..k); how many of them still run. */
int kill_trees(const pid_t *roots, int k) {
    int n = scan();
    if (n <= 0)
        return 0;
    memset(mark, 0, (size_t)n);
    int found = 0, grew = 1;
    while (grew) { /* marks spread down the tree; at most its depth passes */
        grew = 0;
        for (int i = 0; i < n; i++) {
            if (mark[i])
                continue;
            int parent_marked = 0;
            for (int r = 0; !parent_marked && r < k; r++)
                parent_marked = ppids[i] == roots[r];
            for (int j = 0; !parent_marked && j < n; j++)
                parent_marked = mark[j] && pids[j] == ppids[i];
            if (parent_marked) {
                mark[i] = 1;
                grew = 1;
                if (live[i]) {
                    found++;
                    kill(pids[i], SIGKILL);
                }
            }
        }
    }
    return found;
}

/* Kill the trees under roots until nothing of them runs (bounded rounds); `reap`:
 * also collect our own children (a supervisor; pid 1). */
void end_trees(const pid_t *roots, int k, int reap) {
    for (int round = 0; round < KILL_ROUNDS; round++) {
        int found = kill_trees(roots, k), reaped = 0, status;
        pid_t w = -1;
        while (reap && (w = waitpid(-1, &status, WNOHANG)) > 0)
            reaped++;
        if (found == 0 && w < 0) /* reap: ECHILD, nothing of ours is left */
            return;
        if (!reaped)
            nap_ms(1);
    }
}

/* argv[0] NUL argv[1] NUL argv[2] of `pid` into buf; the second and third, or NULL. */
static const char *args_of(long pid, char *buf, size_t size, const char **third) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    size_t got = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[got] = '\0';
    size_t first = strnlen(buf, got);
    if (first + 1 >= got || strstr(buf, "supervise") == NULL)
        return NULL;
    const char *second = buf + first + 1;
    size_t next = first + 1 + strlen(second) + 1;
    *third = next < got ? buf + next : "";
    return second;
}

/* Pid 1 is this helper's --pause: only then are its descendants orphans of execs
 * (under an engine's init, the pause helper itself is one of them). Its cmdline is
 * its own to change: it is non-dumpable (no /proc/1/mem) and has no CAP_SYS_RESOURCE. */
int pid1_is_ours(void) {
    char buf[256];
    const char *third, *second = args_of(1, buf, sizeof buf, &third);
    return second != NULL && strcmp(second, "--pause") == 0;
}

/* Exec `id`'s supervisor (argv: *supervise* -i ID ..., started by the engine: a
 * command can fake the argv, not the parent outside the namespace); the count. */
int find_exec(const char *id, pid_t *found, int max) {
    DIR *dir = opendir("/proc");
    if (dir == NULL)
        return 0;
    struct dirent *entry;
    int k = 0;
    while (k < max && (entry = readdir(dir)) != NULL) {
        char *end, buf[4096];
        const char *third;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 1 || pid == getpid())
            continue;
        const char *second = args_of(pid, buf, sizeof buf, &third);
        if (second != NULL && strcmp(second, "-i") == 0 && strcmp(third, id) == 0 &&
            ppid_of(pid) == 0)
            found[k++] = (pid_t)pid;
    }
    closedir(dir);
    return k;
}

