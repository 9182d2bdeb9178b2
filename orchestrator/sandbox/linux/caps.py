"""Drop every Linux capability for good, and prove it.

Owns: securebits, the bounding set, ambient and effective/permitted/inheritable sets.
Does not own: deciding *whether* to drop (only ``trusted`` keeps capabilities).

Clearing the effective set is not enough for uid 0: on execve root regains every
capability in the bounding set. So the bounding set is emptied and SECBIT_NOROOT is
set and locked, then the result is read back from /proc and checked.
"""

from __future__ import annotations

import ctypes

from .libc import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_SECUREBITS,
    prctl,
)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE, each with its lock, and KEEP_CAPS_LOCKED.
_SECUREBITS = 0b11101111


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        return int(handle.read())


def drop_all() -> None:
    prctl(PR_SET_SECUREBITS, _SECUREBITS)
    for cap in range(last_cap() + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset(0) failed")
    _verify()


def _verify() -> None:
    with open("/proc/self/status", encoding="ascii") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(fields[key].strip(), 16) != 0:
            raise OSError(0, f"capabilities not fully dropped: {key}={fields[key].strip()}")
