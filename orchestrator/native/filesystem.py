"""The sandbox's view of the filesystem, assembled by pid 1 in its mount namespace.

Owns: the order of the mount steps for one launch plan's ``mounts`` section — private
propagation, write roots bound to themselves, every other mount read-only, fresh /proc
and /dev, private or hidden tmpfs (with what they would hide bound back), protected
paths read-only, host sockets masked. Does not own: the mount primitives (``mounts``).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from . import mounts


def files_to_keep(spec: dict[str, Any]) -> dict[str, int]:
    """O_PATH descriptors for what must stay visible under a tmpfs we put on top: the
    workspace and write roots, and a resolv.conf that links into /run."""
    paths = [*spec["writable_roots"], spec["workspace"]]
    resolv = os.path.realpath("/etc/resolv.conf")
    if os.path.isfile(resolv):
        paths.append(resolv)
    return {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in dict.fromkeys(paths)}


def build(spec: dict[str, Any], sockets: list[str], keep: dict[str, int]) -> None:
    """Assemble the view; takes ownership of (and closes) the descriptors in ``keep``."""
    mounts.make_private()
    writable: list[str] = spec["writable_roots"]
    for root in writable:
        mounts.bind(root, root, read_only=False)  # its own mount: the read-only pass skips it
    held = dict(keep)
    for path in writable:
        if path in held:  # hold the fresh bind, not the mount beneath it
            os.close(held[path])
            held[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
    mounts.make_everything_read_only(except_under=writable)
    mounts.mount_proc()
    mounts.minimal_dev()  # the host's disks, consoles and other terminals stay outside
    for hidden, writable_tmpfs in [
        *((t, True) for t in spec["private_tmp"]),
        *((h, False) for h in spec["hidden"]),
    ]:
        if not os.path.isdir(hidden) or os.path.islink(hidden):
            continue
        # A private tmpfs lives in memory: cap it at the run's memory limit, if any.
        mounts.mount_tmpfs(hidden, size=spec["tmpfs_bytes"] if writable_tmpfs else None)
        for path, fd in held.items():  # bind back what the tmpfs hides
            if mounts.is_under(path, hidden) and path != hidden:
                mounts.ensure_mountpoint(path, directory=os.path.isdir(f"/proc/self/fd/{fd}"))
                mounts.bind(f"/proc/self/fd/{fd}", path, read_only=path not in writable)
        if not writable_tmpfs:
            mounts.remount(hidden, read_only=True)
    for fd in held.values():
        os.close(fd)
    for path in spec["protected"]:
        if os.path.islink(path):
            raise OSError(errno.ELOOP, f"protected path {path} is a symlink")
        if os.path.lexists(path):
            mounts.bind(path, path, read_only=True)
        elif spec["require_protected"]:
            raise OSError(errno.ENOENT, f"protected path {path} has no placeholder")
    mounts.mask_sockets(sockets)
