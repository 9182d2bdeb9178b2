"""Open a path once, without following symlinks, and keep using what was opened.

Owns: resolving a write root component by component (``resolve_write_root``), reopening
a validated path and proving it is still the same directory (``reopen``), opening a name
beneath a held directory (``open_beneath``), and attaching a bind mount made from a
descriptor (``bind_fd``). Imported by the launcher: standard library and ``sandbox.linux`` only.

Why: a path is a question asked again every time it is used. Another sandbox that can
write a parent directory can swap a component for a symlink between the moment
codex-box checks a workspace and the moment it binds it, makes placeholders in it or
enters it (issue 17: ``renameat2(RENAME_EXCHANGE)`` of ``WS/sub`` with a link to
CODEX_HOME). So a write root is resolved once with ``O_NOFOLLOW`` at every step, its
identity (``st_dev``, ``st_ino``) goes into the launch plan, and every later use opens
it with ``RESOLVE_NO_SYMLINKS`` and refuses a different inode.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from .libc import syscall

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_OPENAT2 = 437
SYS_MOUNT_SETATTR = 442

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MAX_LINKS = 40  # the kernel's own limit on symlinks followed in one lookup

# Directories no sandbox can ever write: a write root is never `/` or a system tree
# (write_roots.refuse_unsafe), so a symlink found directly in one of these was put
# there by an administrator (macOS /tmp → /private/tmp, /home → /data/home). A link
# anywhere else may have been planted by a sandboxed run.
# Each must be refused as a write root (a unit test checks): /opt, /srv, /mnt, /media
# may be workspaces, so a link in them may have been planted.
TRUSTED_LINK_DIRS = ("/", "/etc", "/usr", "/var")

Identity = tuple[int, int]  # (st_dev, st_ino)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class PathChanged(OSError):
    """A validated path no longer names the directory that was validated."""


def identity(fd: int) -> Identity:
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino)


def fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def openat2(dirfd: int, path: str, *, flags: int, resolve: int) -> int:
    how = _OpenHow(flags=flags | os.O_CLOEXEC, mode=0, resolve=resolve)
    return syscall(
        SYS_OPENAT2,
        ctypes.c_int(dirfd),
        os.fsencode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
        what=f"openat2({path})",
    )


def reopen(path: str, expected: Identity | None) -> int:
    """An ``O_PATH`` descriptor for directory ``path`` (absolute), reached through no
    symlink, that is the inode validated earlier. Raises ``PathChanged`` otherwise."""
    try:
        fd = openat2(AT_FDCWD, path, flags=os.O_PATH | os.O_DIRECTORY, resolve=RESOLVE_NO_SYMLINKS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EXDEV):
            raise PathChanged(
                exc.errno, f"{path} is no longer the directory codex-box checked ({exc.strerror})"
            ) from exc
        raise
    if expected is not None and identity(fd) != tuple(expected):
        os.close(fd)
        raise PathChanged(
            errno.ESTALE, f"{path} was replaced after codex-box checked it (another inode)"
        )
    return fd


def open_beneath(dirfd: int, relative: str, *, flags: int = os.O_PATH) -> int:
    """``relative`` below ``dirfd``: never above it, never through a symlink."""
    return openat2(dirfd, relative, flags=flags, resolve=RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)


def resolve_write_root(path: str) -> tuple[int, str]:
    """Resolve absolute ``path`` one component at a time with ``O_NOFOLLOW``.

    A symlink is followed only when it sits directly in a ``TRUSTED_LINK_DIRS``
    directory; any other raises ``PermissionError`` naming the link. Returns an
    ``O_PATH`` descriptor of the directory reached (the caller closes it) and its real
    path: what was checked is what is held, however the names change afterwards.
    """
    if not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    pending = [p for p in path.split("/") if p]
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    here, links = "/", 0
    try:
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            if name == "..":
                parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd, here = parent, fd_path(parent)
                continue
            child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            if stat.S_ISLNK(os.fstat(child).st_mode):
                try:
                    target = os.readlink(name, dir_fd=fd)
                finally:
                    os.close(child)
                links += 1
                if here not in TRUSTED_LINK_DIRS:
                    raise PermissionError(
                        errno.EPERM,
                        f"{os.path.join(here, name)} is a symlink (to {target}) in a directory "
                        "a sandboxed run may have written",
                    )
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, f"too many symlinks resolving {path}")
                if target.startswith("/"):
                    os.close(fd)
                    fd, here = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), "/"
                pending[:0] = [p for p in target.split("/") if p]
                continue
            if not stat.S_ISDIR(os.fstat(child).st_mode):
                os.close(child)
                raise NotADirectoryError(errno.ENOTDIR, f"{os.path.join(here, name)}")
            os.close(fd)
            fd, here = child, os.path.join(here, name)
        return fd, fd_path(fd)
    except BaseException:
        os.close(fd)
        raise


def bind_fd(source_fd: int, target_fd: int, *, read_only: bool) -> int:
    """Bind what ``source_fd`` holds onto what ``target_fd`` holds (both in this mount
    namespace), recursively, the top read-only or read-write. Neither side is looked
    up by name. Returns a descriptor of the new mount's root (the visible one)."""
    tree = syscall(
        SYS_OPEN_TREE,
        ctypes.c_int(source_fd),
        b"",
        ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE),
        what="open_tree",
    )
    try:
        attr = _MountAttr(
            attr_set=MOUNT_ATTR_RDONLY if read_only else 0,
            attr_clr=0 if read_only else MOUNT_ATTR_RDONLY,
        )
        # Read-only reaches every mount below (nothing under a protected path is
        # writable); read-write only the top, as a remount of the bind would.
        syscall(
            SYS_MOUNT_SETATTR,
            ctypes.c_int(tree),
            b"",
            ctypes.c_uint(AT_EMPTY_PATH | (AT_RECURSIVE if read_only else 0)),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
            what="mount_setattr",
        )
        syscall(
            SYS_MOVE_MOUNT,
            ctypes.c_int(tree),
            b"",
            ctypes.c_int(target_fd),
            b"",
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
            what="move_mount",
        )
    except BaseException:
        os.close(tree)
        raise
    return tree
