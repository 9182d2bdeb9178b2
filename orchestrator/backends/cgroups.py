"""Per-run cgroups for the native backend's pids and memory limits.

Owns: finding where this process may create cgroups (v2 unified, or v1 ``pids`` and
``memory`` hierarchies as on hybrid hosts), creating one per run with the limits,
reading whether the OOM killer fired, and removing it afterwards.
Does not own: joining it (the launcher writes its own pid, before it forks, so no
process of the run starts outside).

Why cgroups and not only rlimits: the kernel never applies RLIMIT_NPROC to uid 0,
and address-space limits break runtimes that reserve large mappings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.log import debug
from orchestrator.core.spec import Limits
from orchestrator.sandbox.linux.proctree import stat_field

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_NAME = "codex-box"


@dataclass(frozen=True, slots=True)
class RunCgroup:
    dirs: tuple[Path, ...]  # one per hierarchy (one on v2; pids + memory on v1)

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        return any(_oom_kills(directory) for directory in self.dirs)

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in it so far (a session's
        execs share one: each compares the count before and after)."""
        return sum(_oom_kills(directory) or 0 for directory in self.dirs)

    def pids(self) -> list[int]:
        out: list[int] = []
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                out += [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        return out

    def remove(self, *, wait_s: float = 5.0) -> None:
        """Remove the cgroup once its processes are gone (bounded wait)."""
        deadline = time.monotonic() + wait_s
        for directory in self.dirs:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        debug("cgroup not removed", path=str(directory))
                        break
                    time.sleep(0.01)


def _oom_kills(directory: Path) -> int | None:
    """The ``oom_kill`` counter of a memory cgroup (v2 memory.events, v1
    memory.oom_control); None when neither can be read."""
    for name in ("memory.events", "memory.oom_control"):
        with contextlib.suppress(OSError, ValueError):
            for line in (directory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return None


def oom_kills_of(pid: int) -> int | None:
    """The OOM-kill count of the memory cgroup process ``pid`` is in (a session's
    container: its execs run in its cgroup), or None when it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return _oom_kills(CGROUP_ROOT / "memory" / path.lstrip("/"))
    for line in lines:
        if line.startswith("0::"):
            return _oom_kills(CGROUP_ROOT / line[3:].lstrip("/"))
    return None


def _own_cgroup_paths() -> dict[str, str]:
    """controller (or "" for v2) → this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_dir() -> Path | None:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return CGROUP_ROOT
    return None


def why_none() -> str | None:
    """Why a run here would get no cgroup of its own, predicted without making one (for
    the backend's probe and ``doctor``: a normal user without a delegated cgroup, the
    non-root CI leg); None when one can be made. ``create`` stays the judge: it returns
    None on any failure, and the launcher then refuses what it cannot enforce."""
    try:
        own = _own_cgroup_paths()
    except OSError as exc:
        return f"/proc/self/cgroup cannot be read ({exc.strerror})"
    if _v2_dir() is not None:
        dirs = [CGROUP_ROOT / own.get("", "/").lstrip("/")]
    else:
        roots = [CGROUP_ROOT / c for c in ("pids", "memory")]
        if not all((root / "cgroup.procs").exists() for root in roots):
            return "no cgroup v1 pids and memory hierarchies are mounted"
        dirs = [CGROUP_ROOT / c / own.get(c, "/").lstrip("/") for c in ("pids", "memory")]
    for directory in dirs:
        target = directory / PARENT_NAME
        if not target.is_dir():
            target = directory
        if not os.access(target, os.W_OK):
            return f"{target} is not writable by uid {os.geteuid()}"
    return None


def create(run_id: str, limits: Limits) -> RunCgroup | None:
    """A fresh cgroup carrying ``limits``, or None when this host won't let us make one."""
    if limits.pids is None and limits.memory_bytes is None:
        return None
    try:
        own = _own_cgroup_paths()
        if _v2_dir() is not None:
            return _create_v2(run_id, limits, own.get("", "/"))
        return _create_v1(run_id, limits, own)
    except OSError as exc:
        debug("no cgroup for this run", error=str(exc))
        return None


def _make_run_dir(parent: Path, run_id: str) -> Path:
    parent.mkdir(exist_ok=True)
    _sweep_stale(parent)
    run_dir = parent / f"{os.getpid()}-{run_id}"
    run_dir.mkdir()
    return run_dir


def _sweep_stale(parent: Path) -> list[str]:
    """Remove cgroups left by runs whose codex-box was SIGKILLed.

    Only a directory whose owner (the pid in its name) is dead is touched: a live
    run's cgroup may still be empty because its launcher has not joined it yet.
    """
    removed = []
    for entry in parent.iterdir():
        owner = entry.name.split("-", 1)[0]
        if not entry.is_dir() or not owner.isdigit() or _alive(int(owner)):
            continue
        # Its codex-box is gone; whatever still runs in it (a trusted run's daemon, a
        # launcher PDEATHSIG missed) ends now.
        group = RunCgroup(dirs=(entry,))
        for pid in group.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        group.remove(wait_s=2.0)
        if not entry.exists():
            removed.append(str(entry))
    return removed


def sweep_stale() -> list[str]:
    """``codex-box gc``: every stale run cgroup this process could have made."""
    try:
        own = _own_cgroup_paths()
    except OSError:
        return []
    if _v2_dir() is not None:
        parents = [CGROUP_ROOT / own.get("", "/").lstrip("/") / PARENT_NAME]
    else:
        parents = [
            CGROUP_ROOT / c / own.get(c, "/").lstrip("/") / PARENT_NAME for c in ("pids", "memory")
        ]
    return [name for p in parents if p.is_dir() for name in _sweep_stale(p)]


def _alive(pid: int) -> bool:
    """The owner still runs. A zombie does not: a SIGKILLed session keeper stays one
    until the host's init reaps it, and ``gc`` run in that window must still sweep."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = stat_field(pid, 0)
    return state is not None and state not in ("Z", "X")


def _create_v1(run_id: str, limits: Limits, own: dict[str, str]) -> RunCgroup | None:
    pids_root, mem_root = CGROUP_ROOT / "pids", CGROUP_ROOT / "memory"
    if not (pids_root / "cgroup.procs").exists() or not (mem_root / "cgroup.procs").exists():
        return None
    pids_dir = _make_run_dir(pids_root / own.get("pids", "/").lstrip("/") / PARENT_NAME, run_id)
    mem_dir = _make_run_dir(mem_root / own.get("memory", "/").lstrip("/") / PARENT_NAME, run_id)
    group = RunCgroup(dirs=(pids_dir, mem_dir))
    try:
        if limits.pids is not None:
            (pids_dir / "pids.max").write_text(str(limits.pids))
        if limits.memory_bytes is not None:
            (mem_dir / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            swap = mem_dir / "memory.memsw.limit_in_bytes"
            if swap.exists():  # swap must not be a way around the limit
                swap.write_text(str(limits.memory_bytes))
    except OSError:
        group.remove(wait_s=0)
        raise
    return group


def _create_v2(run_id: str, limits: Limits, own: str) -> RunCgroup | None:
    parent = CGROUP_ROOT / own.lstrip("/") / PARENT_NAME
    parent.mkdir(exist_ok=True)
    wanted = ["pids", "memory"]
    available = (parent / "cgroup.controllers").read_text().split()
    if not all(c in available for c in wanted):
        # Controllers must be enabled from above; this fails (EBUSY) when our own
        # cgroup has processes and is not the root — then we have no cgroup.
        (parent.parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    run_dir = _make_run_dir(parent, run_id)
    group = RunCgroup(dirs=(run_dir,))
    try:
        if limits.pids is not None:
            (run_dir / "pids.max").write_text(str(limits.pids))
        if limits.memory_bytes is not None:
            (run_dir / "memory.max").write_text(str(limits.memory_bytes))
            if (run_dir / "memory.swap.max").exists():
                (run_dir / "memory.swap.max").write_text("0")
    except OSError:
        group.remove(wait_s=0)
        raise
    return group
