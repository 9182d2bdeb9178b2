"""Process and secret attacks: reading planted keys and a withheld variable, signalling
a host process, the syscalls that build a way out (mount, unshare, ptrace, keyctl), and
a fork bomb against the process limit.

Owns: these catalogue entries.
Does not own: the catalogue's order (``attacks``), counting host processes
(``harness``).

Where the host cannot see an effect (a syscall that worked changes only the caller),
the evidence is the kernel's answer as the attack reports it, and a mount is also looked
for in the host's mount table.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from .model import Attack, Effect, Ran
from .site import Site

PIDS_LIMIT = 32  # the fork bomb's --pids
FORKS = 200  # how many processes it tries: bounded, whatever the limit does


def _sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def secret_effect(site: Site, ran: Ran) -> Effect:
    """Seen when the site's secret (never on a command line) is in the run's output."""
    if site.secret in ran.output:
        return Effect(True, "the planted secret is in the sandbox's output")
    return Effect(False, "the planted secret is not in the output", ran=site.done in ran.stdout)


def _read_home_secrets(site: Site) -> tuple[str, ...]:
    files = " ".join(str(p) for p in site.secret_files())
    return _sh(
        f"cat {files}; cat ~/.ssh/id_ed25519 ~/.netrc; ls -la {site.home}/.ssh; "
        f"grep -r SECRET {site.home} {site.codex_home}; echo {site.done}"
    )


HOME_SECRETS = Attack(
    name="secrets.home-files",
    summary="read ~/.ssh, ~/.aws, ~/.netrc and CODEX_HOME's serve token (planted fakes)",
    command=_read_home_secrets,
    judge=secret_effect,
)

ENV_SECRET = Attack(
    name="secrets.environment",
    summary="read a secret-looking variable of codex-box's environment (env, /proc/*/environ)",
    command=lambda site: _sh(
        "env; cat /proc/self/environ; "
        f"for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; done 2>/dev/null; echo {site.done}"
    ),
    judge=secret_effect,
)


def _victim_effect(site: Site, ran: Ran) -> Effect:
    time.sleep(0.05)  # a SIGKILL sent is delivered by now; give the exit a moment
    victim = site.victims[0]
    if victim.poll() is not None:
        return Effect(True, f"host process {victim.pid} was killed (status {victim.returncode})")
    return Effect(False, f"host process {victim.pid} is alive", ran=site.done in ran.stdout)


def _spawn(site: Site) -> None:
    site.spawn_victim()


KILL_HOST_PROCESS = Attack(
    name="proc.kill-host-process",
    summary="signal a process of the host's (SIGKILL, SIGTERM) by its pid",
    setup=lambda site: _spawn(site),
    command=lambda site: _sh(
        f"kill -9 {site.victims[0].pid}; kill {site.victims[0].pid}; echo {site.done}"
    ),
    judge=_victim_effect,
)

SYSCALLS = r"""
import ctypes, json, platform, sys
NR = {"x86_64": {"mount": 165, "ptrace": 101, "keyctl": 250, "unshare": 272},
      "aarch64": {"mount": 40, "ptrace": 117, "keyctl": 219, "unshare": 97}}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(name, *args):
    ctypes.set_errno(0)
    wrapped = [a if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    return 0 if libc.syscall(ctypes.c_long(NR[name]), *wrapped) >= 0 else ctypes.get_errno()
out = {
    "mount(tmpfs)": call("mount", b"none", sys.argv[1].encode(), b"tmpfs", 0, 0),
    "ptrace(TRACEME)": call("ptrace", 0, 0, 0, 0),
    "keyctl(GET_KEYRING_ID)": call("keyctl", 0, -3, 0),
    "unshare(CLONE_NEWNS)": call("unshare", 0x20000),
    "unshare(CLONE_NEWUSER)": call("unshare", 0x10000000),
}
print("syscalls", json.dumps(out))
print("done-" + sys.argv[2])
"""


def _mount_point(site: Site) -> Path:
    return site.target.parent / "mnt"


def _syscalls_effect(site: Site, ran: Ran) -> Effect:
    mounted = str(_mount_point(site)) in Path("/proc/self/mountinfo").read_text()
    if mounted:  # the harness's cleanup cannot remove a mount: say so loudly
        subprocess.run(["umount", "-l", str(_mount_point(site))], check=False)
        return Effect(True, f"a tmpfs was mounted on the host at {_mount_point(site)}")
    line = next((x for x in ran.stdout.splitlines() if x.startswith("syscalls ")), "")
    try:
        answers: dict[str, int] = json.loads(line.removeprefix("syscalls "))
    except ValueError:
        return Effect(False, "the attack reported no answers", ran=False)
    worked = [name for name, errno in answers.items() if errno == 0]
    if worked:
        return Effect(True, f"the kernel allowed: {', '.join(worked)}")
    refused = ", ".join(f"{name} errno {errno}" for name, errno in answers.items())
    return Effect(False, f"refused: {refused}", ran=site.done in ran.stdout)


SYSCALLS_ATTACK = Attack(
    name="proc.syscalls",
    summary="mount a tmpfs, ptrace, keyctl, unshare a mount and a user namespace",
    setup=lambda site: _mount_point(site).mkdir(),
    command=lambda site: ("python3", "-I", "-c", SYSCALLS, str(_mount_point(site)), site.nonce),
    judge=_syscalls_effect,
)


def sleep_seconds(site: Site) -> str:
    """A duration unique to the site: ``sleep`` with it is recognisable on the host."""
    return f"1.{int(site.nonce, 16) % 10**9:09d}"


def _bomb_effect(site: Site, ran: Ran) -> Effect:
    peak = ran.peak_processes
    if peak > PIDS_LIMIT:
        return Effect(True, f"{peak} of its processes ran at once on the host (limit {PIDS_LIMIT})")
    return Effect(
        False,
        f"at most {peak} of its processes at once on the host (limit {PIDS_LIMIT})",
        ran=peak > 0 and site.done in ran.stdout,
    )


# Python, not a shell loop: dash gives up at the first fork the limit refuses.
BOMB = r"""
import subprocess, sys
seconds, nonce, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
started, refused = [], 0
for _ in range(tries):
    try:
        started.append(subprocess.Popen(["sleep", seconds]))
    except OSError:
        refused += 1
print("started", len(started), "refused", refused)
print("done-" + nonce, flush=True)
for process in started:
    process.wait()
"""

FORK_BOMB = Attack(
    name="proc.fork-bomb",
    summary=f"start {FORKS} processes under --pids {PIDS_LIMIT} (bounded)",
    command=lambda site: ("python3", "-I", "-c", BOMB, sleep_seconds(site), site.nonce, str(FORKS)),
    judge=_bomb_effect,
    pids=str(PIDS_LIMIT),
    watch=lambda site: f"sleep\0{sleep_seconds(site)}\0".encode(),
)

ATTACKS = (HOME_SECRETS, ENV_SECRET, KILL_HOST_PROCESS, SYSCALLS_ATTACK, FORK_BOMB)
