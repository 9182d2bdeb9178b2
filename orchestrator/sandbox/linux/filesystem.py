"""The sandbox's view of the filesystem, assembled by pid 1 in its mount namespace.

Owns: the order of the mount steps for one launch plan's ``mounts`` section — private
propagation, write roots bound to themselves (each proven to be the inode compile
checked), every other mount read-only, fresh /proc and /dev, private or hidden tmpfs
(with what they would hide bound back), protected paths read-only, deny_read paths
masked, host sockets masked.
Does not own: the mount primitives (``mounts``).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from . import masks, mounts, pinning


def build(spec: dict[str, Any], sockets: list[str]) -> dict[str, int]:
    """Assemble the view. Returns ``O_PATH`` descriptors of the visible workspace and
    write roots (for Landlock's rules and the command's working directory); the caller
    closes them.

    Every write root and the workspace is opened here, in this mount namespace, through
    no symlink, and must be the inode compile checked (``identities``); from then on
    each bind is made from and onto descriptors, never by name. A concurrent sandbox
    that swaps a path component for a link (to CODEX_HOME, say) meets a refusal, not a
    writable view of the link's target."""
    mounts.make_private()
    identities: dict[str, list[int]] = spec["identities"]
    writable: list[str] = spec["writable_roots"]
    workspace: str = spec["workspace"]
    held: dict[str, int] = {}
    try:
        for root in writable:
            found = pinning.reopen(root, _identity(identities, root))
            try:
                # Its own mount: the read-only pass below skips it.
                held[root] = pinning.bind_fd(found, found, read_only=False)
            finally:
                os.close(found)
        if workspace not in held:
            held[workspace] = pinning.reopen(workspace, _identity(identities, workspace))
        # Opened before any tmpfs hides it: a resolv.conf that links into /run.
        resolv = os.path.realpath("/etc/resolv.conf")
        if os.path.isfile(resolv) and resolv not in held:
            held[resolv] = os.open(resolv, os.O_PATH | os.O_CLOEXEC)
        # The egress proxy's session CA (inspect_tls, brokered secrets) is written under
        # CODEX_HOME: held likewise, so a private /tmp that hides a CODEX_HOME below it
        # still shows the sandbox the one CA it must trust (read-only, bound back).
        ca_file = spec.get("ca_file")
        if ca_file and os.path.isfile(ca_file) and ca_file not in held:
            held[ca_file] = os.open(ca_file, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        mounts.make_everything_read_only(except_under=writable)
        mounts.mount_proc()
        mounts.minimal_dev()  # the host's disks, consoles and other terminals stay outside
        _hide_and_bind_back(spec, held, writable)
        _protect(spec, held, writable)
        # Last of the views: on top of a protected path or a write root's bind alike.
        masks.mask(spec["deny_read"])
        mounts.mask_sockets(sockets)
    except BaseException:
        for fd in held.values():
            os.close(fd)
        raise
    visible = {p: fd for p, fd in held.items() if p in writable or p == workspace}
    for path, fd in held.items():
        if path not in visible:
            os.close(fd)
    return visible


def _identity(identities: dict[str, list[int]], path: str) -> pinning.Identity:
    known = identities.get(path)
    if known is None:  # a plan that does not say what was checked is not run
        raise OSError(errno.EINVAL, f"launch plan has no identity for {path}")
    return (known[0], known[1])


def _hide_and_bind_back(spec: dict[str, Any], held: dict[str, int], writable: list[str]) -> None:
    for hidden, writable_tmpfs in [
        *((t, True) for t in spec["private_tmp"]),
        *((h, False) for h in spec["hidden"]),
    ]:
        if not os.path.isdir(hidden) or os.path.islink(hidden):
            continue
        # A private tmpfs lives in memory: cap it at the run's memory limit, if any.
        mounts.mount_tmpfs(hidden, size=spec["tmpfs_bytes"] if writable_tmpfs else None)
        back: list[str] = []
        for path in sorted(held, key=len):  # bind back what the tmpfs hides
            if not mounts.is_under(path, hidden) or path == hidden:
                continue
            fd = held[path]
            outer = next((b for b in back if mounts.is_under(path, b)), None)
            if outer is not None:
                # Already visible inside an outer bind (a recursive clone): hold that.
                held[path] = pinning.open_beneath(held[outer], os.path.relpath(path, outer))
                os.close(fd)
                continue
            # The mountpoint is made in the fresh tmpfs, which only we can see yet.
            mounts.ensure_mountpoint(path, directory=os.path.isdir(f"/proc/self/fd/{fd}"))
            target = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                held[path] = pinning.bind_fd(fd, target, read_only=path not in writable)
            finally:
                os.close(target)
                os.close(fd)
            back.append(path)
        if not writable_tmpfs:
            mounts.remount(hidden, read_only=True)


def _protect(spec: dict[str, Any], held: dict[str, int], writable: list[str]) -> None:
    """Each protected path read-only, opened beneath the visible write root that holds
    it (never through a symlink, never above the root) and bound onto itself."""
    for path in spec["protected"]:
        roots = [r for r in writable if mounts.is_under(path, r) and r != path]
        if not roots:
            raise OSError(errno.EINVAL, f"protected path {path} is in no write root")
        root = max(roots, key=len)
        try:
            found = pinning.open_beneath(held[root], os.path.relpath(path, root))
        except FileNotFoundError:
            if spec["require_protected"]:
                raise OSError(errno.ENOENT, f"protected path {path} has no placeholder") from None
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EXDEV):
                raise OSError(exc.errno, f"protected path {path} is (behind) a symlink") from exc
            raise
        try:
            os.close(pinning.bind_fd(found, found, read_only=True))
        finally:
            os.close(found)
