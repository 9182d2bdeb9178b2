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
from collections.abc import Iterator
from pathlib import Path

from .errors import SandboxSetupError

FILE_NAMES = frozenset({".codex-profile"})  # every other protected name holds a directory


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
def held(workspace: str, protected: tuple[str, ...], *, state_dir: Path) -> Iterator[None]:
    if not protected:
        yield
        return
    mutex_path, users_path, record_path = _state_files(state_dir, workspace)
    with contextlib.suppress(OSError):
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mutex, users = _open_lock(mutex_path), _open_lock(users_path)
    try:
        with _locked(mutex):
            # Never blocks for long: an exclusive holder only exists under the mutex.
            fcntl.flock(users, fcntl.LOCK_SH)
            for path in protected:
                if os.path.islink(path):
                    # A read-only bind would cover the link's target, but the link
                    # itself could be replaced: refuse rather than half-protect.
                    raise SandboxSetupError(
                        f"protected path {path} is a symlink; codex-box cannot keep it read-only",
                        hint="replace it with the real file or directory, "
                        "or use a read-only profile",
                    )
                if not os.path.lexists(path):
                    _create(path)
                    _save(record_path, _load(record_path) | {path})
        yield
    finally:
        with _locked(mutex):
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another run in this workspace still relies on them
            else:
                _save(record_path, {p for p in _load(record_path) if not _remove_if_empty(p)})
            os.close(users)
        os.close(mutex)


def _create(path: str) -> None:
    try:
        if os.path.basename(path) not in FILE_NAMES:
            os.mkdir(path, 0o700)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise SandboxSetupError(
            f"cannot create placeholder {path}: {exc.strerror}",
            hint="protected paths must exist to be mounted read-only; "
            "make the workspace writable for you",
        ) from exc


def _remove_if_empty(path: str) -> bool:
    """Remove our placeholder if it is still empty. True when it is no longer ours to
    track: removed, already gone, or filled by the user (then it is theirs)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == 0:
            os.unlink(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as exc:
        return exc.errno == errno.ENOTEMPTY


def _load(record: Path) -> set[str]:
    try:
        return set(json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def _save(record: Path, paths: set[str]) -> None:
    if paths:
        record.write_text(json.dumps(sorted(paths)))
    else:
        record.unlink(missing_ok=True)
