"""What every container engine backend derives from a ``SandboxSpec`` in the same way.

Owns: the engine-neutral container description (binds, tmpfs, the deny_read masks
inside what is bound, labels, user, limits, seccomp JSON, the AppArmor decision's
label, the masks' empty directory), the network holder of a filtered-egress run, the
owner label that lets a later run find containers whose codex-box was killed, and the
kernel log as the witness of an OOM kill an engine did not notice.
Does not own: any engine's API or its errors (``docker``, ``podman``), the order of a
run's calls (``lifecycle``), or turning how a run ended into a ``RunResult``
(``backends.result``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.paths import inside
from orchestrator.core.profile import Network
from orchestrator.core.spec import Limits, SandboxSpec
from orchestrator.sandbox.linux import pinning
from orchestrator.sandbox.linux.proctree import start_time, stat_field

if TYPE_CHECKING:  # a type only: the decision is made by each engine's translate
    from orchestrator.hardening.apparmor import Decision

LABEL_SESSION = "codex-box.session"
LABEL_PROFILE = "codex-box.profile"
LABEL_RUN = "codex-box.run"
LABEL_OWNER = "codex-box.owner"  # host:pid:start-time of the codex-box that owns it
# The AppArmor profile asked for, or what applies instead and why (apparmor.decide).
LABEL_APPARMOR = "codex-box.apparmor"
# Writable tmpfs for write profiles; nothing executable-as-root may be planted there.
TMP_MODE = "1777"
TMP_OPTIONS = f"rw,nosuid,nodev,mode={TMP_MODE}"
# filesystem.deny_read: a masked file is the host's /dev/null (reads nothing; engines
# bind a device node onto a file), a masked directory an empty directory of ours, both
# bound read-only. Not a tmpfs: Podman copies what a tmpfs covers into it (tmpcopyup),
# and its API takes no option to stop that.
EMPTY_FILE = "/dev/null"


@dataclass(frozen=True, slots=True)
class Bind:
    source: str
    target: str
    read_only: bool


def binds(spec: SandboxSpec) -> list[Bind]:
    """The workspace at its own absolute path, extra write roots, then the protected
    paths read-only on top (they exist: placeholders are made before the run), then
    the masks (``masks``): an empty file or directory, read-only, over each."""
    # A writable root filesystem (trusted) writes the workspace too.
    writable = spec.workspace_writable or not spec.rootfs_read_only
    out = [Bind(spec.workspace, spec.workspace, read_only=not writable)]
    out += [
        Bind(root, root, read_only=False) for root in spec.writable_roots if root != spec.workspace
    ]
    masked_files, masked_dirs = masks(spec)
    # A masked protected path gets the mask alone: an engine refuses two mounts at one
    # target, and the mask is read-only too.
    out += [Bind(p, p, read_only=True) for p in spec.protected_paths if p not in masked_files]
    out += [Bind(EMPTY_FILE, path, read_only=True) for path in masked_files]
    out += [Bind(empty_dir(), path, read_only=True) for path in masked_dirs]
    if spec.egress is not None and spec.egress.ca_file:  # the session CA, to trust
        out.append(Bind(spec.egress.ca_file, spec.egress.ca_file, read_only=True))
    return out


def binds_unchanged(spec: SandboxSpec, pid: int, *, ended_ok: bool = False) -> None:
    """Raise ``SandboxSetupError`` unless every bind the container ``pid`` holds at a
    checked path is the inode compile checked there.

    Engines resolve a bind's source by name when they mount it, following symlinks: a
    concurrent sandbox that swapped a component for a link in between would have the
    engine bind the link's target. The container's own view is what counts, looked up
    inside its root (``RESOLVE_IN_ROOT``: the image's links cannot point us at the host).
    ``ended_ok``: a container already gone (checked after start) is not an error.
    """
    try:
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if ended_ok and exc.errno in (errno.ENOENT, errno.ESRCH):
            return  # the command already ended: nothing is left to look into
        raise SandboxSetupError(
            f"cannot look inside container (pid {pid}) to check its binds: {exc.strerror}",
            hint="nothing was run; codex-box must be able to read /proc/PID/root",
        ) from exc
    try:
        for path, dev, ino in spec.identities:
            try:
                fd = pinning.openat2(
                    root,
                    path.lstrip("/") or ".",
                    flags=os.O_PATH,
                    resolve=pinning.RESOLVE_IN_ROOT | pinning.RESOLVE_NO_MAGICLINKS,
                )
            except OSError as exc:
                raise SandboxSetupError(
                    f"the container has no {path} to check: {exc.strerror}",
                    hint="nothing was run; the engine did not bind it where asked",
                ) from exc
            try:
                seen = pinning.identity(fd)
            finally:
                os.close(fd)
            if seen != (dev, ino):
                raise SandboxSetupError(
                    f"the engine bound another directory at {path} than codex-box checked "
                    "(renamed or replaced while the container was made)",
                    hint="nothing was run; another process changed the path — a "
                    "concurrent sandbox? run again, and check what writes its parent",
                )
    finally:
        os.close(root)


def tmpfs(spec: SandboxSpec) -> dict[str, str]:
    """A fresh /tmp for profiles with a private one, and a devcontainer's volume targets
    (empty, discarded with the container: nothing carries over to a later run)."""
    out = {"/tmp": TMP_OPTIONS} if spec.private_tmp else {}  # noqa: S108 -- a fresh tmpfs
    return out | dict.fromkeys(spec.extra_tmpfs, TMP_OPTIONS)


def user(spec: SandboxSpec) -> str:
    """Who the command runs as: the invoking uid:gid, so files written in the workspace
    stay the user's — or a devcontainer's remoteUser, a name in the image. Never the
    image's own default (often root)."""
    return spec.container_user or f"{spec.uid}:{spec.gid}"


def empty_dir() -> str:
    """The masks' empty directory: root's under /run; a user's under /tmp, checked to be
    theirs, mode 0555 and empty before every use (``ensure_empty_dir``)."""
    uid = os.geteuid()
    return "/run/codex-box/empty" if uid == 0 else f"/tmp/codex-box-empty-{uid}"  # noqa: S108


def ensure_empty_dir(spec: SandboxSpec) -> None:
    """Make (or check) ``empty_dir`` before a container that masks a directory is made:
    a directory someone else could fill would show their files at the masked path."""
    if not masks(spec)[1]:
        return
    path = empty_dir()
    with contextlib.suppress(FileExistsError):
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.mkdir(path, 0o555)
    try:
        info = os.lstat(path)
        listed = os.listdir(path)
    except OSError as exc:
        listed, why = ["?"], exc.strerror
    else:
        why = "not a directory" if not stat.S_ISDIR(info.st_mode) else ""
        if not why and (info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o555):
            why = f"owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"
    if why or listed:
        raise SandboxSetupError(
            f"cannot use {path} to mask deny_read directories: {why or 'not empty'}",
            hint=f"nothing was run; remove {path} (codex-box makes it again, mode 0555)",
        )


def masks(spec: SandboxSpec) -> tuple[list[str], list[str]]:
    """(files, directories) to mask: ``filesystem.deny_read`` and CODEX_HOME's key
    directories (``hidden_paths``), where they lie inside a directory the container
    binds — it sees nothing else of the host. Nothing for an unsandboxed run."""
    if not spec.sandboxed:
        return [], []
    bound = [spec.workspace, *spec.writable_roots]
    files: list[str] = []
    dirs: list[str] = []
    for path in dict.fromkeys((*spec.deny_read, *spec.hidden_paths)):
        if not any(inside(path, root) for root in bound) or path in bound:
            continue
        if os.path.isdir(path):  # a hidden path not made (containers make none): skipped
            dirs.append(path)
        elif os.path.lexists(path):
            files.append(path)
    return files, dirs


def labels(spec: SandboxSpec, apparmor: Decision | None = None) -> dict[str, str]:
    """The run's identity, and the AppArmor decision where AppArmor is on: on the
    container itself it shows in ``--print-spec`` and in the engine's inspect output."""
    # A devcontainer's labels first: codex-box's own keys always win (compile refuses
    # them anyway: an owner label decides what `gc` removes).
    out = {k: v for k, v in spec.extra_labels if not k.lower().startswith("codex-box.")}
    out |= {LABEL_SESSION: spec.session_id, LABEL_PROFILE: spec.profile, LABEL_RUN: spec.run_id}
    if apparmor is not None and (text := apparmor.profile or apparmor.note):
        out[LABEL_APPARMOR] = text
    return out


def memory_limit(spec: SandboxSpec, engine_url: str, *, cgroup_limits: bool = True) -> int | None:
    """The memory limit to ask the engine for. An explicit ``--memory`` always; the
    default (a share of *this* host's RAM) only for an engine on a local socket whose
    cgroups can hold it: a remote engine's host has its own RAM, and a host that cannot
    apply limits would refuse the whole run for a limit nobody asked for."""
    limits = spec.limits
    if limits.memory_bytes is None or not limits.memory_is_default:
        return limits.memory_bytes
    return limits.memory_bytes if engine_url.startswith("unix://") and cgroup_limits else None


def network_mode(spec: SandboxSpec) -> str:
    if spec.egress is not None:
        # The holder's namespace has only a loopback, where the proxy listens.
        return f"container:{netns_holder_name(spec)}"
    return "none" if spec.network is Network.NONE else "bridge"


LABEL_ROLE = "codex-box.role"
HOLDER_COMMAND = ("sleep", "2147483647")  # GNU and busybox alike; ends with the run


def netns_holder_name(spec: SandboxSpec) -> str:
    return f"codex-box-netns-{spec.run_id}"


def netns_holder_spec(spec: SandboxSpec) -> SandboxSpec:
    """The network holder of a filtered-egress run: a container with no network but
    its loopback, that only sleeps. The command's container joins its namespace; the
    proxy's listener is made there (``netns.listen_in``). Same image and hardening as
    the run, nothing writable, nothing from the environment."""
    return replace(
        spec,
        argv=HOLDER_COMMAND,
        env=(("PATH", "/usr/local/bin:/usr/bin:/bin"),),
        network=Network.NONE,
        egress=None,
        writable_roots=(),
        protected_paths=(),
        private_tmp=False,
        tty=False,
        limits=Limits(pids=8, memory_bytes=None),
    )


def seccomp_json(spec: SandboxSpec) -> str | None:
    """The profile's seccomp JSON, compact: engines take the content, not a path."""
    if spec.seccomp_profile is None:
        return None
    with open(spec.seccomp_profile, encoding="utf-8") as handle:
        return json.dumps(json.load(handle), separators=(",", ":"))


def owner_label() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{start_time(pid)}"


def owner_is_gone(label: str) -> bool:
    """True only for an owner on this host that is no longer running (pid reuse is
    caught by the start time; a zombie, such as a SIGKILLed session keeper its init has
    not reaped yet, is gone). Containers of other hosts are never touched."""
    host, _, rest = label.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return start_time(int(pid)) != started or stat_field(int(pid), 0) in ("Z", "X")


def kernel_log(*, max_records: int = 100_000) -> Iterator[bytes]:
    """The kernel's log records, oldest first, without blocking (one record per read;
    bounded by the ring buffer). Nothing when /dev/kmsg cannot be read."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        for _ in range(max_records):
            try:
                record = os.read(fd, 8192)
            except BrokenPipeError:  # a record was overwritten while we read: go on
                continue
            except OSError:  # BlockingIOError: the end of the log
                return
            if not record:
                return
            yield record
    finally:
        os.close(fd)


def kernel_saw_oom_kill(box_id: str) -> bool:
    """True when the kernel log records an OOM kill in the memory cgroup of container
    ``box_id``. For engines that do not report it themselves (Podman 4 on cgroup v1
    answers OOMKilled=false). False when the log cannot be read: then we cannot tell."""
    for record in kernel_log():
        if b"oom-kill:" in record and b"oom_memcg=" in record:
            memcg = record.split(b"oom_memcg=", 1)[1].split(b",", 1)[0]
            if box_id.encode() in memcg:
                return True
    return False
