"""Landlock through its three syscalls: filesystem, TCP and scoping rules.

Owns: building and enforcing one ruleset from a plain description (read roots, write
roots, device files, whether TCP is denied, whether to scope signals and abstract
sockets), refusing when this kernel cannot enforce all of it.
Does not own: deciding what the rules are (``backends.native.plan``).

Why not PyPI ``landlock``: it covers filesystem rules only (no TCP, no scoping) and
reads ``errno`` instead of the return value, so a stale errno fails a good call.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from .libc import syscall

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # same on x86_64/aarch64
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

# Without TRUNCATE (ABI 3) truncate(2) on a read-only file is not checked, so ABI 3 is
# the least that can honestly promise "write only where the profile allows".
MIN_ABI = 3

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


def fs_rights(abi: int) -> int:
    """Every filesystem right this ABI can restrict."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def abi_version() -> int:
    """The kernel's Landlock ABI, or 0 when Landlock is absent or disabled."""
    try:
        return syscall(
            SYS_CREATE_RULESET,
            None,
            0,
            CREATE_RULESET_VERSION,
            what="landlock_create_ruleset(VERSION)",
        )
    except OSError:
        return 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockUnavailable(OSError):
    pass


def enforce(
    *,
    read_roots: Iterable[str],
    write_roots: Iterable[str],
    device_files: Iterable[str],
    deny_tcp: bool,
    scope: bool,
    scope_required: bool = False,
) -> int:
    """Restrict this thread (and its future children) for good. Returns the ABI used.

    Requires no_new_privs (or CAP_SYS_ADMIN). Raises ``LandlockUnavailable`` when the
    kernel cannot enforce every part asked for — never a silent best effort.
    """
    abi = abi_version()
    if abi < MIN_ABI:
        raise LandlockUnavailable(
            0,
            f"Landlock ABI {abi} (need ≥ {MIN_ABI}: truncate control); "
            "kernel ≥ 6.2 with CONFIG_SECURITY_LANDLOCK and 'landlock' in the lsm= list",
        )
    handled_fs = fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled_fs)
    if deny_tcp and abi >= 4:
        # Below ABI 4 the network namespace and seccomp stop TCP; nothing is claimed here.
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
    if scope and abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    elif scope_required:
        # Sharing the host's network namespace, only scoping keeps the host's abstract
        # sockets (containerd-shim, X11, D-Bus) out of reach: no scoping, no run.
        raise LandlockUnavailable(
            0,
            f"Landlock ABI {abi} cannot scope abstract Unix sockets (need ≥ 6, kernel "
            "6.12); a profile with network shares the host's namespace without it",
        )
    # The kernel accepts a larger struct when the fields it does not know are zero.
    size = ctypes.sizeof(_RulesetAttr)
    ruleset = syscall(
        SYS_CREATE_RULESET, ctypes.byref(attr), size, 0, what="landlock_create_ruleset"
    )
    try:
        for root in read_roots:
            _allow(ruleset, root, READ & handled_fs)
        for root in write_roots:
            _allow(ruleset, root, handled_fs)
        for device in device_files:
            if os.path.exists(device):
                _allow(ruleset, device, (FILE_RIGHTS | FS_READ_DIR) & handled_fs)
        syscall(SYS_RESTRICT_SELF, ruleset, 0, what="landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _allow(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS  # the kernel rejects directory rights on a file
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        syscall(
            SYS_ADD_RULE,
            ruleset,
            RULE_PATH_BENEATH,
            ctypes.byref(rule),
            0,
            what=f"landlock_add_rule({path})",
        )
    finally:
        os.close(fd)
