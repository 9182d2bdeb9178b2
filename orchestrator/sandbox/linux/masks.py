"""``filesystem.deny_read`` inside the sandbox: each listed path masked by an empty
read-only mount, so it exists but shows nothing.

Owns: the masks' sources (an empty directory and an empty file, mode 0555/0444, in a
small tmpfs stacked on /dev/shm only while they are bound, then detached — so no path
in the sandbox leads to them but the masks) and binding one, read-only, onto each
listed path that is there: the directory onto a directory, the file onto anything else.
Does not own: which paths (``compile.deny_read``), or the rest of the view
(``filesystem``).

Why this holds against the sandboxed command: it has no capability left to unmount or
move a mount (and in a user namespace of its own every mount it inherits is locked to
what it covers); ``rename``/``unlink`` of a mountpoint fails EBUSY, so a masked path
inside a write root cannot be replaced either; ``link`` to it fails EXDEV; and every
path to the inode — ``/proc/self/root/…``, a symlink, an ``O_PATH`` descriptor opened
now — crosses the mask. A renamed parent takes the mount with it.
"""

from __future__ import annotations

import errno
import os
import stat

from . import mounts, pinning
from .libc import umount

STAGING = "/dev/shm"  # noqa: S108 -- made by mounts.minimal_dev in every sandbox, ours alone
_SIZE = 64 * 1024


def mask(paths: list[str]) -> int:
    """Mask every path in ``paths`` that this namespace has; returns how many."""
    if not paths:
        return 0
    mounts.mount_tmpfs(STAGING, mode=0o755, size=_SIZE)
    sources: dict[bool, int] = {}
    try:
        os.mkdir(f"{STAGING}/empty", 0o555)
        os.close(os.open(f"{STAGING}/empty.file", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
        sources[True] = os.open(f"{STAGING}/empty", os.O_PATH | os.O_CLOEXEC)
        sources[False] = os.open(f"{STAGING}/empty.file", os.O_PATH | os.O_CLOEXEC)
        masked = 0
        for path in paths:
            target = _open_target(path)
            if target is None:
                continue
            try:
                is_dir = stat.S_ISDIR(os.fstat(target).st_mode)
                os.close(pinning.bind_fd(sources[is_dir], target, read_only=True))
                masked += 1
            finally:
                os.close(target)
        return masked
    finally:
        for fd in sources.values():
            os.close(fd)
        umount(STAGING)  # MNT_DETACH: the masks keep the sources, nothing else reaches them


def _open_target(path: str) -> int | None:
    """``path``, reached through no symlink (compile resolved them all: one now is a
    swap made since, and the mask must not land on the link's target instead)."""
    try:
        return pinning.openat2(
            pinning.AT_FDCWD,
            path,
            flags=os.O_PATH | os.O_NOFOLLOW,
            resolve=pinning.RESOLVE_NO_SYMLINKS | pinning.RESOLVE_NO_MAGICLINKS,
        )
    except OSError as exc:
        # Gone since compile, under a hidden tmpfs (/run), or in a directory we may
        # not enter: then the command cannot reach it either.
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
            return None
        if exc.errno == errno.ELOOP:
            raise OSError(
                errno.ELOOP, f"deny_read path {path} became a symlink during launch"
            ) from exc
        raise
