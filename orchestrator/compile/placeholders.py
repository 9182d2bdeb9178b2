"""Protected paths that do not exist yet: hold their place so they can be mounted read-only.

Owns: creating an empty ``.git/``, ``.codex/`` or ``.codex-profile`` in a writable
workspace for the duration of a run when it is missing, and removing what we created
once the last run using that workspace ends.
Does not own: mounting them read-only (each backend does).

Why: Landlock grants by directory tree and cannot deny creating one name. Without a
placeholder, a sandboxed agent could create ``.codex-profile`` and choose its own
next profile, or ``.git/hooks`` to run code when the user next commits. A read-only
mount over a placeholder makes creation fail (EROFS) and removal fail (EBUSY).

Concurrency: runs in one workspace share two locks. A short-lived *mutex* serialises
creating and cleaning up; a *users* lock is held shared by every run for its whole
life. A run that ends takes the mutex, and only if it can then take the users lock
exclusively (no other run holds it) is it the last one out and removes the
placeholders — only if still empty: the sandbox cannot have written them, the user
may have. The record of what we created is saved after each creation, so a crash or
a failed setup never leaves an untracked placeholder; the next run cleans up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.core.errors import SandboxSetupError
from orchestrator.core.profile import PROTECTED_FILE_NAMES
from orchestrator.sandbox.linux import pinning

from .spec import reopen_checked


def _state_files(state_dir: Path, workspace: str) -> tuple[Path, Path, Path]:
    key = hashlib.sha256(workspace.encode()).hexdigest()[:20]
    return (
        state_dir / f"{key}.mutex",
        state_dir / f"{key}.users",
        state_dir / f"{key}.placeholders.json",
    )


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SandboxSetupError(
            f"cannot create {path}: {exc.strerror}", hint="check that CODEX_HOME is writable"
        ) from exc


@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def held(
    workspace: str,
    protected: tuple[str, ...],
    *,
    state_dir: Path,
    identity: pinning.Identity | None = None,
) -> Iterator[None]:
    """Placeholders for the missing ``protected`` paths of ``workspace`` for the life of
    the block. ``identity``: the (st_dev, st_ino) compile checked the workspace at.

    Every placeholder is made and removed relative to one descriptor of the workspace,
    opened through no symlink and proven to be the checked directory: a name swapped
    for a link by a concurrent sandbox can never make codex-box create or delete
    anything elsewhere (CODEX_HOME, the user's home)."""
    if not protected:
        yield
        return
    mutex_path, users_path, record_path = _state_files(state_dir, workspace)
    with contextlib.suppress(OSError):
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = reopen_checked(workspace, identity)
    mutex, users = _open_lock(mutex_path), _open_lock(users_path)
    try:
        with _locked(mutex):
            # Never blocks for long: an exclusive holder only exists under the mutex.
            fcntl.flock(users, fcntl.LOCK_SH)
            for path in protected:
                if _ensure(root, workspace, path):
                    try:
                        _save(record_path, _load(record_path) | {path}, workspace)
                    except SandboxSetupError:
                        _remove_if_empty(root, workspace, path)  # never one unrecorded
                        raise
        yield
    finally:
        with _locked(mutex):
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another run in this workspace still relies on them
            else:
                remaining = {
                    p for p in _load(record_path) if not _remove_if_empty(root, workspace, p)
                }
                # Unrecorded only costs `gc` a look at a path already gone: the run's
                # outcome must not be lost to a full or read-only CODEX_HOME here.
                with contextlib.suppress(SandboxSetupError):
                    _save(record_path, remaining, workspace)
            os.close(users)
        os.close(mutex)
        os.close(root)


def _relative(workspace: str, path: str) -> str:
    relative = os.path.relpath(path, workspace)
    if relative.startswith("..") or os.path.isabs(relative):
        raise SandboxSetupError(
            f"protected path {path} is not inside the workspace {workspace}",
            hint="protected paths are names inside the workspace",
        )
    return relative


def _parent_of(root: int, workspace: str, path: str) -> tuple[int, str]:
    """A descriptor of ``path``'s directory, beneath ``root`` and through no symlink,
    and the last name: every later call is relative to that descriptor."""
    directory, name = os.path.split(_relative(workspace, path))
    try:
        parent = pinning.open_beneath(root, directory or ".", flags=os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        raise SandboxSetupError(
            f"cannot reach the directory of protected path {path}: {exc.strerror or exc}",
            hint="it must be a real directory inside the workspace (not a symlink)",
        ) from exc
    return parent, name


def _ensure(root: int, workspace: str, path: str) -> bool:
    """Make ``path`` exist (as the placeholder its name calls for); True if we made it."""
    parent, name = _parent_of(root, workspace, path)
    try:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            _create(parent, name, path)
            return True
        if stat.S_ISLNK(info.st_mode):
            # A read-only bind would cover the link's target, but the link itself could
            # be replaced: refuse rather than half-protect.
            raise SandboxSetupError(
                f"protected path {path} is a symlink; codex-box cannot keep it read-only",
                hint="replace it with the real file or directory, or use a read-only profile",
            )
        return False
    finally:
        os.close(parent)


def _create(parent: int, name: str, path: str) -> None:
    try:
        if name not in PROTECTED_FILE_NAMES:  # every other name holds a directory
            os.mkdir(name, 0o700, dir_fd=parent)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o600, dir_fd=parent))
    except OSError as exc:
        raise SandboxSetupError(
            f"cannot create placeholder {path}: {exc.strerror}",
            hint="protected paths must exist to be mounted read-only; "
            "make the workspace writable for you",
        ) from exc


def _remove_if_empty(root: int, workspace: str, path: str) -> bool:
    """Remove our placeholder if it is still empty. True when it is no longer ours to
    track: removed, already gone, or filled by the user (then it is theirs)."""
    try:
        parent, name = _parent_of(root, workspace, path)
    except SandboxSetupError:
        return True  # its directory is gone or became a link: nothing of ours is there
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(name, dir_fd=parent)
        elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(name, dir_fd=parent)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        return exc.errno == errno.ENOTEMPTY
    finally:
        os.close(parent)


def _load(record: Path) -> set[str]:
    try:
        data = json.loads(record.read_text())
        return set(data["paths"] if isinstance(data, dict) else data)
    except (OSError, ValueError, TypeError, KeyError):
        return set()


def _save(record: Path, paths: set[str], workspace: str) -> None:
    """Replace the record whole (a temporary file renamed over it): a write cut short by
    a full CODEX_HOME must not leave a truncated record, which would forget placeholders
    other runs made and leave them in the workspace for good."""
    temporary = record.with_name(record.name + ".tmp")
    try:
        if paths:
            temporary.write_text(json.dumps({"workspace": workspace, "paths": sorted(paths)}))
            os.replace(temporary, record)
        else:
            record.unlink(missing_ok=True)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise SandboxSetupError(
            f"cannot record workspace placeholders in {record}: {exc.strerror}",
            hint="nothing was run; free space on CODEX_HOME's disk or make it writable",
        ) from exc


def sweep(state_dir: Path) -> list[str]:
    """``codex-box gc``: remove the placeholders of runs and sessions that were killed
    before they could (SIGKILL), exactly as the last run out would — only where no
    run or session uses the workspace any more (its *users* lock is free), and only
    placeholders still empty."""
    removed: list[str] = []
    for record_path in sorted(state_dir.glob("*.placeholders.json")):
        try:
            data = json.loads(record_path.read_text())
            workspace = data["workspace"]
        except (OSError, ValueError, TypeError, KeyError):
            continue  # an old record without its workspace: the next run there cleans up
        key = record_path.name.removesuffix(".placeholders.json")
        mutex_path, users_path = state_dir / f"{key}.mutex", state_dir / f"{key}.users"
        try:
            root = reopen_checked(workspace, None)
        except SandboxSetupError:
            continue  # the workspace is gone or became a link: nothing of ours to touch
        mutex, users = _open_lock(mutex_path), _open_lock(users_path)
        try:
            with _locked(mutex):
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run or session still relies on them
                left = set()
                for path in _load(record_path):
                    if _remove_if_empty(root, workspace, path):
                        removed.append(path)
                    else:
                        left.add(path)
                _save(record_path, left, workspace)
        finally:
            os.close(users)
            os.close(mutex)
            os.close(root)
    return removed
