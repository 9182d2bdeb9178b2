/* codex-box-supervise: the process-tree helpers supervise.c uses (supervise_procs.c). */
#ifndef CODEX_BOX_SUPERVISE_PROCS_H
#define CODEX_BOX_SUPERVISE_PROCS_H

#include <sys/types.h>

void nap_ms(long ms);
long now_ms(void);
/* The parent of `pid` in this pid namespace; 0: outside it (the engine); -1: gone. */
long ppid_of(long pid);
/* SIGKILL every descendant of roots[0..k); how many of them still run. */
int kill_trees(const pid_t *roots, int k);
/* Kill the trees under roots until nothing of them runs (bounded); `reap`: also
 * collect our own children. */
void end_trees(const pid_t *roots, int k, int reap);
/* Pid 1 is this helper's --pause. */
int pid1_is_ours(void);
/* Exec `id`'s real supervisors (at most `max`) into found; the count. */
int find_exec(const char *id, pid_t *found, int max);

#endif
