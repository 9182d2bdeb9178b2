/*
 * codex-box-supervise: the process every exec of a container session runs under.
 *
 * Owns, inside the session's container (bind-mounted read-only, run as the session's
 * user, with the container's seccomp, no-new-privileges, AppArmor and dropped caps):
 *   supervise --pause                       the container's main command: sleeps until
 *                                           SIGTERM/SIGINT (the container is the session)
 *   supervise -i ID [-t SECS] [-d] -- ARGV  one exec: ARGV in a new session, signals
 *                                           forwarded to it, and when it ends (or the
 *                                           timeout: 124) every process it left is
 *                                           SIGKILLed; -d: they may live on (detached)
 *   supervise --signal ID SIG               deliver SIG to exec ID (SIGKILL: its whole
 *                                           tree), found by its supervisor's argv
 * Does not own: judging, auditing or the environment of an exec (the keeper), nor the
 * engine calls (containers/session.py).
 *
 * Why a subreaper: an exec's background process (`setsid sleep 300 &`) would otherwise
 * be reparented to the container's init and outlive its exec, running into the next
 * one. As PR_SET_CHILD_SUBREAPER every orphan of the exec's tree is reparented to us,
 * so "everything descended from us" is exactly the exec's tree, and nothing of another
 * exec (each has its own supervisor) is ever touched.
 * Why static: the image may be busybox, another libc, or none usable at all.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 65536
#define KILL_ROUNDS 2000 /* bounded: ~2 s of 1 ms naps when something refuses to go */

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
static volatile sig_atomic_t child;
static volatile sig_atomic_t timed_out;

static void forward(int sig) {
    /* The child leads its own process group (setsid): like Ctrl-C at a terminal. */
    if (child > 0 && kill(-child, sig) < 0)
        kill(child, sig);
}

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (child > 0) { /* the main loop then ends the rest of the tree */
        kill(-child, SIGKILL);
        kill(child, SIGKILL);
    }
}

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void nap_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* (pid, ppid) of every process this /proc shows; the count, or -1. */
static int scan(pid_t *pids, pid_t *ppids) {
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
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        char *paren = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
        int ppid;
        if (paren == NULL || sscanf(paren + 1, " %*c %d", &ppid) != 1)
            continue;
        pids[n] = (pid_t)pid;
        ppids[n++] = (pid_t)ppid;
    }
    closedir(dir);
    return n;
}

/* SIGKILL every descendant of `root`; how many were found. */
static int kill_descendants(pid_t root, pid_t *pids, pid_t *ppids, char *mark) {
    int n = scan(pids, ppids);
    if (n <= 0)
        return 0;
    memset(mark, 0, (size_t)n);
    int found = 0, grew = 1;
    while (grew) { /* marks spread down the tree; at most its depth passes */
        grew = 0;
        for (int i = 0; i < n; i++) {
            if (mark[i])
                continue;
            int parent_marked = ppids[i] == root;
            for (int j = 0; !parent_marked && j < n; j++)
                parent_marked = mark[j] && pids[j] == ppids[i];
            if (parent_marked) {
                mark[i] = 1;
                grew = 1;
                found++;
                kill(pids[i], SIGKILL);
            }
        }
    }
    return found;
}

/* End the whole tree left under us, reaping it: bounded rounds. */
static void end_tree(pid_t *pids, pid_t *ppids, char *mark) {
    for (int round = 0; round < KILL_ROUNDS; round++) {
        int found = kill_descendants(getpid(), pids, ppids, mark);
        int reaped = 0, status;
        pid_t w;
        while ((w = waitpid(-1, &status, WNOHANG)) > 0)
            reaped++;
        if (found == 0 && w < 0 && errno == ECHILD)
            return;
        if (!reaped)
            nap_ms(1);
    }
}

static int code_of(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 125;
}

static _Noreturn void pause_forever(void) {
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    for (;;)
        pause();
}

/* The supervisor of exec `id` (its argv: supervise -i ID ...), or 0. */
static pid_t find_exec(const char *id) {
    DIR *dir = opendir("/proc");
    if (dir == NULL)
        return 0;
    struct dirent *entry;
    pid_t found = 0;
    while (found == 0 && (entry = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == getpid())
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        /* argv[0] NUL "-i" NUL ID NUL */
        size_t first = strnlen(buf, got);
        if (first + 4 > got || strcmp(buf + first + 1, "-i") != 0)
            continue;
        if (strcmp(buf + first + 4, id) == 0 && strstr(buf, "supervise") != NULL)
            found = (pid_t)pid;
    }
    closedir(dir);
    return found;
}

static int is_forwarded(int sig) {
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
        if (forwarded[k] == sig)
            return 1;
    return 0;
}

static int signal_exec(const char *id, int sig, pid_t *pids, pid_t *ppids, char *mark) {
    pid_t target = find_exec(id);
    if (target == 0)
        return 1;
    if (sig != SIGKILL) /* only what the supervisor forwards: no default action hits it */
        return is_forwarded(sig) && kill(target, sig) == 0 ? 0 : 1;
    /* The main child dies with the rest; its supervisor then ends whatever forks on. */
    kill_descendants(target, pids, ppids, mark);
    return 0;
}

static int usage(void) {
    fputs("usage: supervise --pause | --signal ID SIG | -i ID [-t SECS] [-d] -- ARGV...\n",
          stderr);
    return 125;
}

int main(int argc, char **argv) {
    pid_t *pids = malloc(sizeof(pid_t) * MAX_PROCS);
    pid_t *ppids = malloc(sizeof(pid_t) * MAX_PROCS);
    char *mark = malloc(MAX_PROCS);
    if (pids == NULL || ppids == NULL || mark == NULL)
        return 125;
    if (argc == 2 && strcmp(argv[1], "--pause") == 0)
        pause_forever();
    if (argc == 4 && strcmp(argv[1], "--signal") == 0)
        return signal_exec(argv[2], atoi(argv[3]), pids, ppids, mark);

    double timeout = 0;
    int detach = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-d") == 0)
            detach = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            timeout = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "-i") == 0 && i + 1 < argc)
            i++; /* only read by --signal, in /proc */
        else
            return usage();
    }
    if (i + 1 >= argc)
        return usage();
    char **command = argv + i + 1;

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("codex-box: supervise: PR_SET_CHILD_SUBREAPER");
        return 125;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward; /* no SA_RESTART: waitpid returns to look at the flags */
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
        sigaction(forwarded[k], &sa, NULL);

    pid_t pid = fork();
    if (pid < 0) {
        perror("codex-box: supervise: fork");
        return 125;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        setsid();
        execvp(command[0], command);
        int err = errno;
        fprintf(stderr, "codex-box: %s: %s (inside the sandbox)\n", command[0], strerror(err));
        _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
    }
    child = pid;
    if (timeout > 0) {
        sa.sa_handler = on_alarm;
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval timer = {{0, 0}, {(time_t)timeout, 0}};
        timer.it_value.tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6);
        if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0)
            timer.it_value.tv_usec = 1;
        setitimer(ITIMER_REAL, &timer, NULL);
    }

    int main_status = 0, main_done = 0;
    for (;;) {
        int status;
        pid_t w = waitpid(-1, &status, 0);
        if (w < 0) {
            if (errno == EINTR && !timed_out)
                continue;
            break; /* ECHILD: nothing of the tree is left; or the timeout */
        }
        if (w == pid) {
            main_status = status;
            main_done = 1;
            child = 0;
            if (!detach || timed_out)
                break;
        }
    }
    if (timed_out || !detach)
        end_tree(pids, ppids, mark);
    if (timed_out)
        return 124;
    return main_done ? code_of(main_status) : 125;
}
