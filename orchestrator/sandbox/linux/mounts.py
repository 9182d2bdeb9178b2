"""The sandbox's private view of the filesystem (inside a new mount namespace).

Owns: making every host mount read-only in our namespace, a fresh /proc, a private
/tmp and /dev/shm, writable binds for the write roots, read-only binds for protected
paths, and masking the host's Unix sockets.
Does not own: which paths those are (the launch plan says).

Why a read-only remount on top of Landlock: Landlock does not govern chmod, chown,
utimes or xattrs, and a sandbox running as uid 0 owns /etc — only a read-only mount
stops ``chmod 666 /etc/passwd``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from .libc import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    mount,
)

# statvfs f_flag bits → the MS_* flags a remount must repeat. Inside a user namespace
# the kernel refuses a remount that would clear a flag it locked.
_KEEP_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)


def make_private() -> None:
    """Nothing we mount propagates back to the host, and nothing of the host's to us."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def _mount_table() -> list[tuple[int, str]]:
    """(mount id, mountpoint) of every mount of this namespace, from mountinfo."""
    table: list[tuple[int, str]] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split(" ", 5)
            table.append((int(fields[0]), _unescape(fields[4])))
    return table


def mountpoints() -> list[str]:
    return list(dict.fromkeys(point for _, point in _mount_table()))


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _flags_of(path: str) -> int:
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _KEEP_FLAGS if f_flag & st)


def remount(path: str, *, read_only: bool) -> None:
    flags = MS_REMOUNT | MS_BIND | _flags_of(path) | (MS_RDONLY if read_only else 0)
    mount(None, path, None, flags)


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mount_id_at(path: str) -> int | None:
    """The id of the mount that ``path`` leads to now, or None when it leads nowhere."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    return None


def _hidden_or_gone(point: str) -> bool:
    """True when no mount listed at ``point`` is what the path ``point`` leads to now.

    mountinfo lists mounts that no path reaches: one covered by a later mount on a
    parent directory (with a directory of the same name inside the cover), or one a
    concurrent unmount on the host took away between our reading the table and the
    remount (seen with container overlays torn down while a native sandbox starts).
    Remounting such a path fails EINVAL — the path is not a mount's root. The mount
    cannot be reached by the sandboxed command through that path either, so it is
    skipped; a real EINVAL on a mount the path does lead to still fails the launch.
    """
    here = _mount_id_at(point)
    return here is None or (here, point) not in set(_mount_table())


def make_everything_read_only(*, except_under: Iterable[str]) -> None:
    """Remount every mount of this namespace read-only, except the write roots' binds."""
    keep = list(except_under)
    for point in mountpoints():
        if any(is_under(point, root) for root in keep):
            continue
        try:
            remount(point, read_only=True)
        except OSError as exc:
            # A mountpoint we cannot reach (gone, or in a directory we may not enter)
            # is one the sandboxed command cannot reach either.
            if exc.errno in (2, 13, 20):  # ENOENT, EACCES, ENOTDIR
                continue
            if exc.errno == 22 and _hidden_or_gone(point):  # EINVAL: not a mount root
                continue
            raise


def mount_proc() -> None:
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)


def mount_tmpfs(target: str, *, mode: int = 0o1777, size: int | None = None) -> None:
    options = f"mode={mode:o}" + (f",size={size}" if size else "")
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def ensure_mountpoint(path: str, *, directory: bool) -> None:
    """Make ``path`` (inside a fresh tmpfs) exist so something can be bound onto it."""
    os.makedirs(path if directory else os.path.dirname(path), mode=0o755, exist_ok=True)
    if not directory and not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


# The device files a program may expect; everything else of the host's /dev (disks,
# consoles and their /dev/vcs* screen contents, other terminals) is left out.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def minimal_dev() -> None:
    """A fresh, read-only /dev holding only ``DEVICES`` (bound from the host), a private
    devpts (ptys made inside are the sandbox's own), /dev/shm and the usual links."""
    held = {
        name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
        for name in DEVICES
        if os.path.exists(f"/dev/{name}")
    }
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    try:
        for name, fd in held.items():
            ensure_mountpoint(f"/dev/{name}", directory=False)
            mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, MS_BIND)
    finally:
        for fd in held.values():
            os.close(fd)
    for directory in ("pts", "shm"):
        os.mkdir(f"/dev/{directory}", 0o755)
    mount(
        "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"
    )
    for link, target in (
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{link}")
    remount("/dev", read_only=True)


def host_unix_sockets() -> list[str]:
    """Filesystem paths of the Unix sockets bound in this network namespace.

    Must be read before the network namespace is left: /proc/net/unix lists only
    the reader's namespace.
    """
    paths: list[str] = []
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="surrogateescape") as handle:
            next(handle, None)
            for line in handle:
                fields = line.rstrip("\n").split(None, 7)
                if len(fields) == 8 and fields[7].startswith("/"):
                    paths.append(fields[7])
    except FileNotFoundError:
        return []
    return list(dict.fromkeys(paths))


def mask_sockets(paths: Iterable[str]) -> int:
    """Bind /dev/null over each socket so ``connect()`` finds no listener.

    Landlock (through ABI 7) does not govern connecting to pathname sockets, and a
    host daemon's socket (Docker's, an SSH agent's) is a way out of any sandbox.
    """
    masked = 0
    for path in paths:
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                continue
            mount("/dev/null", path, None, MS_BIND)
            remount(path, read_only=True)
            masked += 1
        except OSError as exc:
            if exc.errno in (2, 13, 20):  # the socket is gone or out of reach
                continue
            raise
    return masked
