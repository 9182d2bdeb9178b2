"""What this kernel offers the native sandbox, probed (never assumed).

Owns: ``NativeFacts`` and ``probe``: the Landlock ABI, whether user namespaces can
really be created here (tried, in a throwaway child), and whether libseccomp loads —
with the first missing one as the reason the backend is unavailable — plus the
libseccomp version ``doctor`` shows.
Does not own: using any of them (the launcher, ``sandbox.linux``) or the cgroup of a run
(``backends.cgroups``, made per run).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from orchestrator.backends.base import HostFacts
from orchestrator.sandbox.linux import landlock
from orchestrator.sandbox.linux.libc import CLONE_NEWUSER, unshare

LIBSECCOMP = "libseccomp.so.2"


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeFacts(HostFacts):
    landlock_abi: int  # 0: no Landlock
    user_namespaces: str | None  # why they cannot be created here; None: they can
    libseccomp: bool


def probe(*, quick: bool = False) -> NativeFacts:
    """One bounded look at this kernel (a fork, a syscall, a dlopen). ``quick`` (the user
    named this backend) skips the fork that tries a user namespace: the launcher's own
    ``unshare`` fails closed before anything runs, and the backend then probes in full
    to say why."""
    if not sys.platform.startswith("linux"):
        return NativeFacts(
            available=False,
            reason=f"not Linux ({sys.platform})",
            landlock_abi=0,
            user_namespaces="not Linux",
            libseccomp=False,
        )
    abi = landlock.abi_version()
    userns = None if quick else _user_namespace_problem()
    libseccomp = _loads(LIBSECCOMP)
    problem = None
    if abi < landlock.MIN_ABI:
        problem = f"Landlock ABI {abi} < {landlock.MIN_ABI}"
    elif userns:
        problem = userns
    elif not libseccomp:
        problem = f"{LIBSECCOMP} missing (apt-get install libseccomp2)"
    return NativeFacts(
        available=problem is None,
        reason=problem or f"Landlock ABI {abi}, seccomp, namespaces",
        landlock_abi=abi,
        user_namespaces=userns,
        libseccomp=libseccomp,
    )


def _loads(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def libseccomp_version() -> str:
    try:
        lib = ctypes.CDLL(LIBSECCOMP)
    except OSError:
        return "libseccomp missing"

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"libseccomp {v.major}.{v.minor}.{v.micro}"


def _user_namespace_problem() -> str | None:
    """Try it: sysctls, AppArmor (Ubuntu ≥ 23.10) and seccomp'd containers can all
    forbid user namespaces, and only a real unshare tells."""
    pid = os.fork()
    if pid == 0:
        try:
            unshare(CLONE_NEWUSER)
            os._exit(0)
        except OSError as exc:
            os._exit(exc.errno or 1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    return (
        f"cannot create user namespaces ({os.strerror(code)}); check "
        "user.max_user_namespaces, or on Ubuntu kernel.apparmor_restrict_unprivileged_userns"
    )
