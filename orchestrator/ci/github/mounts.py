"""Which of a job container's mounts a codex-box session honours, and the container
paths the runner speaks in translated to the host paths the session sees.

Owns (pure): recognising a container engine's socket (or a directory holding one),
planning the mounts of ``prepare_job`` (kept as path mappings, or dropped with the
reason) and translating a path through the plan. Does not own: starting anything.

Why translate rather than mount: a session shares exactly one host directory, its
workspace, at its own absolute path (DESIGN.md §3, ``SandboxSpec.workspace``). The
runner mounts its work directory at ``/__w`` and names every script, working directory
and file command by its ``/__w/...`` path, so each such path is rewritten to the host's.
Why drop engine sockets: a job that can reach Docker or Podman can start a privileged
container and own the host, whatever its profile says; only ``trusted`` (which is no
sandbox at all) keeps them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

WORK_TARGET = "/__w"  # where the runner mounts its work directory in a job container

# Where engines put their API sockets (``/var/run`` is ``/run`` on every modern host).
ENGINE_SOCKETS = (
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/buildkit/buildkitd.sock",
    "/run/cri-dockerd.sock",
    "/run/dockershim.sock",
    "/run/k3s/containerd/containerd.sock",
)
# A socket under another name or place (rootless: $XDG_RUNTIME_DIR/docker.sock,
# ~/.docker/run/docker.sock, /run/user/1000/podman/podman.sock).
_ENGINE_NAME = re.compile(r"(docker|podman|containerd|crio|buildkitd?|dockershim)[\w.-]*\.sock$")
_USER_RUNTIME = re.compile(r"^/run/user(/\d+(/(docker|podman|containerd))?)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    source: str  # a host path or, when not absolute, an engine volume's name
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PathPlan:
    """The mounts a session honours as (container target, host source), longest target
    first, and one line per mount it does not, saying why."""

    mappings: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]

    def to_host(self, path: str) -> str:
        """``path`` with its container prefix swapped for the host's (unchanged when no
        mapping covers it)."""
        for target, source in self.mappings:
            if path == target:
                return source
            if path.startswith(target.rstrip("/") + "/"):
                return source.rstrip("/") + "/" + path[len(target.rstrip("/")) + 1 :]
        return path

    def to_json(self) -> list[list[str]]:
        return [[t, s] for t, s in self.mappings]

    @classmethod
    def from_json(cls, data: object) -> PathPlan:
        pairs: list[tuple[str, str]] = []
        if isinstance(data, list):
            for item in data:
                if (
                    isinstance(item, list)
                    and len(item) == 2
                    and all(isinstance(x, str) for x in item)
                ):
                    pairs.append((item[0], item[1]))
        return cls(mappings=tuple(sorted(pairs, key=lambda p: -len(p[0]))), notes=())


def _norm(path: str) -> str:
    path = posixpath.normpath("/" + path.lstrip("/"))
    if path == "/var/run" or path.startswith("/var/run/"):
        path = path[len("/var") :]
    return path


def engine_socket(path: str) -> bool:
    """Whether ``path`` is a container engine's socket or a directory that holds one
    (``/``, ``/run``, ``/var/run``, ``/run/podman`` ...): mounting it hands the engine over."""
    if not path.startswith("/"):
        return False
    norm = _norm(path)
    if _ENGINE_NAME.search(posixpath.basename(norm)) or _USER_RUNTIME.match(norm):
        return True
    # The directory may be named either way (``/var`` holds /var/run/docker.sock).
    sockets = [*ENGINE_SOCKETS, *("/var" + s for s in ENGINE_SOCKETS)]
    raw = posixpath.normpath("/" + path.lstrip("/"))
    return any(s == p or s.startswith(p.rstrip("/") + "/") for s in sockets for p in (norm, raw))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def parse_mounts(items: object, what: str) -> tuple[Mount, ...]:
    """The hook input's ``userMountVolumes`` / ``systemMountVolumes`` (ValueError naming
    ``what`` when it is not the documented shape)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValueError(f"{what} must be a list of mounts")
    mounts = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ValueError(f"{what}: each mount must be an object")
        source, target = item.get("sourceVolumePath"), item.get("targetVolumePath")
        if not isinstance(source, str) or not isinstance(target, str) or not target:
            raise ValueError(f"{what}: a mount needs sourceVolumePath and targetVolumePath")
        mounts.append(Mount(source=source, target=target, read_only=bool(item.get("readOnly"))))
    return tuple(mounts)


def work_directory(mounts: Iterable[Mount]) -> str | None:
    """The host directory the runner mounts at ``/__w``: the session's workspace."""
    for mount in mounts:
        if _norm(mount.target) == WORK_TARGET and mount.source.startswith("/"):
            return posixpath.normpath(mount.source)
    return None


def drop_engine_sockets(
    mounts: Sequence[Mount], *, keep: bool, profile: str
) -> tuple[tuple[Mount, ...], tuple[str, ...]]:
    """``mounts`` without engine sockets (by source or target) unless ``keep``
    (``trusted``), and one log line per mount dropped."""
    kept, notes = [], []
    for mount in mounts:
        if not keep and (engine_socket(mount.source) or engine_socket(mount.target)):
            notes.append(
                f"dropped the mount {mount.source} -> {mount.target}: it is a container "
                f"engine's socket, and a job under profile '{profile}' gets no engine "
                "(only 'trusted' keeps it)"
            )
            continue
        kept.append(mount)
    return tuple(kept), tuple(notes)


def plan(mounts: Sequence[Mount], *, workspace: str, host_visible: bool) -> PathPlan:
    """Each mount becomes a mapping when the session sees its source: inside the
    workspace always; elsewhere only where the host's filesystem is visible (the native
    backend: read-only, as the profile has it). Engine volumes have no host path."""
    mappings, notes = [], []
    for mount in mounts:
        target = posixpath.normpath(mount.target)
        if not mount.source.startswith("/") or not target.startswith("/"):
            notes.append(
                f"not mounted: {mount.source} -> {mount.target} (an engine volume; the "
                "session shares only the runner's work directory)"
            )
        elif _inside(posixpath.normpath(mount.source), workspace):
            mappings.append((target, posixpath.normpath(mount.source)))
        elif host_visible:
            mappings.append((target, posixpath.normpath(mount.source)))
            if not mount.read_only:
                notes.append(
                    f"{mount.source} -> {mount.target} is outside the work directory: "
                    "visible as the profile has the host (read-only)"
                )
        else:
            notes.append(
                f"not mounted: {mount.source} -> {mount.target} (outside the work "
                f"directory {workspace}, the one directory a container session shares)"
            )
    mappings.sort(key=lambda pair: -len(pair[0]))
    return PathPlan(mappings=tuple(mappings), notes=tuple(notes))
