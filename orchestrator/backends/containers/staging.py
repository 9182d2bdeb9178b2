"""Bind sources an engine cannot be tricked into resolving elsewhere (Docker, as root).

Owns: for one run, a bind mount in codex-box's own mount namespace of each checked
directory (the workspace, write roots) and protected path, made from a descriptor that
was proven to be the inode compile checked, under ``/run/codex-box/binds/RUN`` (root's,
mode 0700); the engine is given those paths as bind sources; all of it is unmounted and
removed when the run ends, and ``sweep`` removes what a SIGKILLed codex-box left.
Does not own: the engine request (``docker``) or the checks inside the container.

Why: Docker resolves a bind's source by name when it starts the container, following
symlinks, and has no step between making a container and running its command where
codex-box could look (Podman has ``init``). A concurrent sandbox that swaps a component
of the workspace for a link in that window would have the command run on the link's
target. A staged source has no component a sandbox can write. Without root there is no
staging: the container's view is checked right after start (README: Honest limits).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from orchestrator.compile.spec import reopen_checked
from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.spec import SandboxSpec
from orchestrator.sandbox.linux import pinning
from orchestrator.sandbox.linux.libc import MS_BIND, MS_PRIVATE, MS_REC, mount, umount

from .common import owner_is_gone, owner_label

STAGING_ROOT = "/run/codex-box/binds"
OWNER_FILE = "owner"


def available() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def staged(spec: SandboxSpec) -> Iterator[dict[str, str]]:
    """``{checked path: staged source}`` for the life of the block; empty without root."""
    if not available() or not spec.identities:
        yield {}
        return
    sweep()
    run_dir = os.path.join(STAGING_ROOT, spec.run_id)
    os.makedirs(STAGING_ROOT, mode=0o700, exist_ok=True)
    os.mkdir(run_dir, 0o700)
    with open(os.path.join(run_dir, OWNER_FILE), "w", encoding="ascii") as handle:
        handle.write(owner_label())
    mounted: list[str] = []
    try:
        sources: dict[str, str] = {}
        for index, (path, dev, ino) in enumerate(spec.identities):
            fd = reopen_checked(path, (dev, ino))
            try:
                sources[path] = _stage(fd, os.path.join(run_dir, str(index)), mounted)
                for number, protected in enumerate(_protected_under(spec, path)):
                    relative = os.path.relpath(protected, path)
                    try:
                        found = pinning.open_beneath(fd, relative)
                    except OSError as exc:
                        raise SandboxSetupError(
                            f"protected path {protected} cannot be staged: {exc.strerror}",
                            hint="nothing was run; it must be a real file or directory",
                        ) from exc
                    try:
                        target = os.path.join(run_dir, f"{index}.{number}")
                        sources[protected] = _stage(found, target, mounted)
                    finally:
                        os.close(found)
            finally:
                os.close(fd)
        yield sources
    finally:
        _remove(run_dir, mounted)


def _protected_under(spec: SandboxSpec, root: str) -> list[str]:
    if root != spec.workspace:
        return []
    return list(spec.protected_paths)


def _stage(fd: int, target: str, mounted: list[str]) -> str:
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.mkdir(target, 0o700)
    else:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    # Bound from the descriptor: the name that was checked is never looked up again.
    mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    mounted.append(target)
    mount(None, target, None, MS_PRIVATE | MS_REC)
    return target


def _remove(run_dir: str, mounted: list[str]) -> None:
    for target in reversed(mounted):
        with contextlib.suppress(OSError):
            umount(target)
    # Only what we made, and only once nothing is mounted there.
    for entry in sorted(os.listdir(run_dir), reverse=True) if os.path.isdir(run_dir) else []:
        full = os.path.join(run_dir, entry)
        with contextlib.suppress(OSError):  # still mounted (busy): rmdir fails, it stays
            if os.path.isdir(full) and not os.path.islink(full):
                os.rmdir(full)
            else:
                os.unlink(full)
    with contextlib.suppress(OSError):
        os.rmdir(run_dir)


def sweep() -> list[str]:
    """Unmount and remove the staging of runs whose codex-box is gone."""
    removed: list[str] = []
    if not os.path.isdir(STAGING_ROOT):
        return removed
    for run in os.listdir(STAGING_ROOT):
        run_dir = os.path.join(STAGING_ROOT, run)
        try:
            with open(os.path.join(run_dir, OWNER_FILE), encoding="ascii") as handle:
                label = handle.read()
        except OSError:
            continue
        if not owner_is_gone(label):
            continue
        # ismount cannot see a bind from the same filesystem: try every entry.
        mounted = [os.path.join(run_dir, e) for e in os.listdir(run_dir) if e != OWNER_FILE]
        _remove(run_dir, mounted)
        if not os.path.exists(run_dir):
            removed.append(f"staged binds of run {run}")
    return removed
