"""This host's codex-box runs in flight on each container engine, recorded locally, so
that a run asks the engine for leftovers only when there can be some.

Owns: one record per run in flight per engine endpoint (a file holding the run's owner
label, written before the run's first create and removed once all its containers are
removed), and the decision whether a run must sweep the engine first (``must_sweep``).
Does not own: the sweep (``EngineOps.sweep``: the engine's own list of containers whose
owner label names a codex-box that is gone) or the containers.

Why skipping the sweep is safe: a container can outlive its run only while that run's
record is on disk (written before create; removed only after every removal succeeded),
and a record whose owner is gone is exactly what a sweep looks for on the engine. So a
run sweeps when
  - the endpoint has no directory here yet (first run since boot, since /run is a tmpfs;
    or runs of a codex-box that kept no records): nothing is known, sweep;
  - any record's owner is gone (SIGKILL, a crash): that run may have left containers;
  - there is no private place for records (not root and no /run/user/UID of our own):
    every run sweeps, as before records existed.
A dead record is forgotten only by a sweep that started at least ``API_TIMEOUT_S`` after
it was written: a create still in flight when its owner died has been answered by then,
so its container is in the list that sweep read (an engine slower than that to create
one is left to ``codex-box gc``, which always asks). A forged record only causes a
sweep; only root (or the user, in their own runtime directory) can write here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat

from orchestrator.core.errors import SandboxSetupError

from .common import owner_is_gone, owner_label
from .engine_api import API_TIMEOUT_S

ROOT_DIR = "/run/codex-box/engines"  # root's, beside the staged binds (mode 0700)
USER_DIR = "/run/user/{uid}"  # the user's runtime directory (logind: a tmpfs, mode 0700)


def _private_dir(path: str) -> bool:
    """``path`` is a real directory of ours that nobody else can write into."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def base_dir() -> str | None:
    """Where this user's records live; None where there is no private place."""
    if os.geteuid() == 0:
        return ROOT_DIR
    runtime = USER_DIR.format(uid=os.geteuid())
    return os.path.join(runtime, "codex-box", "engines") if _private_dir(runtime) else None


def _same_engine(url: str) -> str:
    """One ledger per engine, however its socket is named: ``unix:///run/docker.sock``
    and ``unix:///var/run/docker.sock`` are the same engine on most hosts."""
    if url.startswith("unix://"):
        return "unix://" + os.path.realpath(url.removeprefix("unix://"))
    return url


class Ledger:
    """The records of one engine endpoint (``unix:///var/run/docker.sock``...)."""

    def __init__(self, url: str, base: str | None = None) -> None:
        self.url = url
        base = base if base is not None else base_dir()
        digest = hashlib.sha256(_same_engine(url).encode()).hexdigest()[:16]
        self.dir = os.path.join(base, digest) if base is not None else None

    def _usable(self) -> str | None:
        """The endpoint's directory, when it is there and private."""
        return self.dir if self.dir is not None and _private_dir(self.dir) else None

    @staticmethod
    def _records(directory: str) -> list[tuple[str, str]]:
        """(path, owner label) of every record; an unreadable one names no owner."""
        out = []
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            try:
                with open(path, encoding="ascii", errors="replace") as handle:
                    out.append((path, handle.read(256)))
            except OSError:
                out.append((path, ""))
        return out

    def must_sweep(self) -> bool:
        """Whether the engine may hold containers of a codex-box that is gone."""
        directory = self._usable()
        if directory is None:
            return True
        try:
            return any(not owner or owner_is_gone(owner) for _, owner in self._records(directory))
        except OSError:
            return True

    def swept(self, started: float) -> None:
        """A sweep that listed the engine's containers at ``started`` (``time.time()``)
        succeeded: remember that the endpoint is known, and forget the dead records
        that sweep covered."""
        if self.dir is None:
            return
        with contextlib.suppress(OSError):
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        directory = self._usable()
        if directory is None:
            return
        with contextlib.suppress(OSError):
            for path, owner in self._records(directory):
                if owner and not owner_is_gone(owner):
                    continue
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_mtime <= started - API_TIMEOUT_S:
                        os.unlink(path)

    def record(self, run_id: str) -> str | None:
        """Write this run's record before it creates anything; its path (None when
        there is no ledger: then every run sweeps). Fails closed: a run whose record
        cannot be written could leave a container no later run would look for."""
        directory = self._usable()
        if directory is None:
            return None
        path = os.path.join(directory, run_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
            try:
                os.write(fd, owner_label().encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise SandboxSetupError(
                f"cannot record the run at {path}: {exc.strerror}",
                hint=f"nothing was run; check the space and permissions of {directory}",
            ) from exc
        return path

    @staticmethod
    def done(path: str | None) -> None:
        """Every container of the run is removed: its record goes."""
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
