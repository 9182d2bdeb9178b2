/*
 * codex-box-supervise: the container's pid 1, and the process every exec runs under.
 *
 * Owns, inside the session's container (bind-mounted read-only, run as the session's
 * user, with the container's seccomp, no-new-privileges, AppArmor and dropped caps):
 *   supervise --pause                       the container's pid 1 (no engine init):
 *                                           reaps, and kills every orphan; ends on the
 *                                           engine's SIGTERM/SIGINT (the session's stop)
 *   supervise -i ID [-C DIR] [-t SECS] [-d] -- ARGV
 *                                           one exec: ARGV in DIR (125 if it cannot be
 *                                           entered), in a new session, signals
 *                                           forwarded to it, and when it ends (or the
 *                                           timeout: 124) every process it left is
 *                                           SIGKILLed; -d: they may live on (detached)
 *   supervise --signal ID SIG               deliver SIG to exec ID (SIGKILL: its whole
 *                                           tree and its supervisor), found by argv
 * Does not own: judging, auditing or the environment of an exec (the keeper), nor the
 * engine calls (containers/session.py).
 *
 * Why a subreaper: an exec's background process (`setsid sleep 300 &`) is then
 * reparented to us, not to pid 1, so "everything descended from us" is exactly the
 * exec's tree, killed at its end; nothing of another exec is ever touched.
 * Why pid 1 kills every process it inherits: a supervisor's parent is the engine's,
 * outside the pid namespace, so what pid 1 inherits is the tree of an exec whose
 * supervisor died -- the command can SIGKILL it (same uid) to run on into later execs
 * and read their /proc/PID/environ. Each supervisor registers with pid 1 (a queued
 * real-time signal; pid 1 then holds its pidfd and ends its orphans the moment it
 * dies) and sweeps pid 1's orphans itself before its command starts.
 * Why no Landlock signal scoping (LANDLOCK_SCOPE_SIGNAL) of the command: execs are
 * sibling domains, so a later exec could no longer `kill` a detached exec's server.
 * A stopped or killed supervisor is handled instead: by pid 1, by --signal (SIGKILL
 * of the supervisor itself) and by the keeper's own deadline.
 * Why non-dumpable: seccomp denies ptrace, not /proc/PID/mem, through which a
 * same-uid command could rewrite its supervisor or pid 1 (their argv, their code).
 * Why static: the image may be busybox, another libc, or none usable at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise_procs.h"

#define MAX_WATCHED 1024 /* supervisors pid 1 watches at once; beyond: its tick */
#define MAX_TARGETS 64
#define TICK_MS 500 /* pid 1 also sweeps this often (a supervisor it could not watch) */
#define EXIT_NO_CWD 125 /* session.py reads it: the working directory was not entered */
#define REGISTER (SIGRTMIN) /* queued: two supervisors starting at once are both seen */

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

static int code_of(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 125;
}

/* Whether pid 1 already watches `pid` (pids[1..n) parallel to its pidfds). */
static int watched(const pid_t *held, int n, pid_t pid) {
    for (int i = 1; i < n; i++)
        if (held[i] == pid)
            return 1;
    return 0;
}

static _Noreturn void be_init(void) {
    if (getpid() != 1) {
        fputs("codex-box: supervise --pause must be the container's pid 1 (no init)\n", stderr);
        exit(125);
    }
    prctl(PR_SET_DUMPABLE, 0);
    /* Blocked and read from a signalfd; every other signal keeps its default action,
     * which the kernel never delivers to a pid namespace's init from inside it. */
    sigset_t set;
    sigemptyset(&set);
    int wanted[] = {SIGCHLD, SIGTERM, SIGINT, REGISTER};
    for (size_t k = 0; k < sizeof wanted / sizeof wanted[0]; k++)
        sigaddset(&set, wanted[k]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        perror("codex-box: supervise: signalfd");
        exit(125);
    }
    static struct pollfd fds[1 + MAX_WATCHED];
    static pid_t held[1 + MAX_WATCHED];
    fds[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
    int n = 1;
    const pid_t root = 1;
    /* The tick is a deadline, not a quiet interval: a command sending pid 1 signals it
     * ignores (each wakes poll) must not keep the sweep from ever running. */
    long next_sweep = now_ms() + TICK_MS;
    for (;;) {
        long wait = next_sweep - now_ms();
        poll(fds, (nfds_t)n, wait > 0 ? (int)wait : 0);
        int sweep = now_ms() >= next_sweep;
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            /* SI_USER: the kernel set ssi_pid (sigqueue cannot forge it); 0: a sender
             * outside the namespace, the engine stopping the session. A process of
             * the session cannot end it this way. */
            int outside = si.ssi_code == SI_USER && si.ssi_pid == 0;
            if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && outside)
                _exit(0);
            /* Only a real supervisor (started by the engine: parent outside), once:
             * a command registering itself over and over must not fill the table. */
            if ((int)si.ssi_signo == REGISTER && si.ssi_code == SI_USER && si.ssi_pid > 1 &&
                ppid_of((long)si.ssi_pid) == 0 && !watched(held, n, (pid_t)si.ssi_pid)) {
                int fd = n <= MAX_WATCHED ? (int)syscall(SYS_pidfd_open, si.ssi_pid, 0) : -1;
                if (fd >= 0) {
                    held[n] = (pid_t)si.ssi_pid;
                    fds[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
                } else
                    sweep = 1; /* gone already (its orphans are ours), or unwatchable */
            }
            if (si.ssi_signo == SIGCHLD)
                sweep = 1;
        }
        for (int i = 1; i < n; i++) {
            if (fds[i].revents) { /* a watched supervisor ended: its orphans are ours */
                close(fds[i].fd);
                n--;
                fds[i] = fds[n];
                held[i] = held[n];
                i--;
                sweep = 1;
            }
        }
        if (sweep) {
            end_trees(&root, 1, 1);
            next_sweep = now_ms() + TICK_MS;
        }
    }
}

static int is_forwarded(int sig) {
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
        if (forwarded[k] == sig)
            return 1;
    return 0;
}

static int signal_exec(const char *id, int sig) {
    pid_t targets[MAX_TARGETS + 1];
    int k = find_exec(id, targets, MAX_TARGETS), ok = 0;
    if (k == 0)
        return 1;
    if (sig != SIGKILL) { /* only what the supervisor forwards: no default action hits it */
        for (int i = 0; i < k && is_forwarded(sig); i++)
            ok |= kill(targets[i], sig) == 0;
        return ok ? 0 : 1;
    }
    /* The tree first, while it is known as theirs; then the supervisors themselves:
     * one the command stopped (SIGSTOP) never ends its tree, but dies of SIGKILL. */
    kill_trees(targets, k);
    for (int i = 0; i < k; i++)
        kill(targets[i], SIGKILL);
    if (pid1_is_ours())
        targets[k++] = 1; /* what they leave is re-parented there */
    end_trees(targets, k, 0);
    return 0;
}

static int usage(void) {
    fputs("usage: supervise --pause | --signal ID SIG | -i ID [-C DIR] [-t SECS] [-d] -- ARGV\n",
          stderr);
    return 125;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--pause") == 0)
        be_init();
    prctl(PR_SET_DUMPABLE, 0);
    if (argc == 4 && strcmp(argv[1], "--signal") == 0)
        return signal_exec(argv[2], atoi(argv[3]));

    double timeout = 0;
    const char *cwd = NULL;
    int detach = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-d") == 0)
            detach = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            timeout = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "-i") == 0 && i + 1 < argc)
            i++; /* only read by --signal, in /proc */
        else if (strcmp(argv[i], "-C") == 0 && i + 1 < argc)
            cwd = argv[++i];
        else
            return usage();
    }
    if (i + 1 >= argc)
        return usage();
    char **command = argv + i + 1;
    /* Before anything runs: a missing directory is the exec's failure (125, the
     * keeper keeps the session's directory), not the command's. */
    if (cwd != NULL && chdir(cwd) != 0) {
        fprintf(stderr, "codex-box: cannot enter %s: %s (inside the sandbox)\n", cwd,
                strerror(errno));
        return EXIT_NO_CWD;
    }

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("codex-box: supervise: PR_SET_CHILD_SUBREAPER");
        return 125;
    }
    if (pid1_is_ours()) { /* pid 1 watches us; no orphan of an earlier exec meets ours */
        const pid_t root = 1;
        kill(1, REGISTER);
        end_trees(&root, 1, 0);
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
    const pid_t self = getpid();
    if (timed_out || !detach)
        end_trees(&self, 1, 1);
    if (timed_out)
        return 124;
    return main_done ? code_of(main_status) : 125;
}
