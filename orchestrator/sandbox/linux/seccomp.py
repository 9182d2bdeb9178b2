"""OCI seccomp JSON → a libseccomp filter loaded into this process.

Owns: parsing the OCI/Docker seccomp format (the same file the engines get) into
plain rules (pure, unit-tested), and compiling + loading them with ``libseccomp.so.2``.
Does not own: which profile file applies (``compile``).

Why ctypes over PyPI ``pyseccomp``: its import runs ``ldconfig -p`` twice, and the
launcher is on every launch's hot path; the five calls we need are easy to bind.
"""

from __future__ import annotations

import ctypes
import json
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from typing import Any

ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
COMPARE_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
EPERM = 1
_FLTATR_ACT_BADARCH = 2
_FLTATR_CTL_NNP = 3


class SeccompError(OSError):
    pass


# NamedTuples, not dataclasses: importing dataclasses costs ~7 ms on every launch.
class ArgCmp(NamedTuple):
    index: int  # type: ignore[assignment]  # OCI's name; shadows tuple.index on purpose
    op: str
    value: int
    value_two: int = 0


class Rule(NamedTuple):
    name: str
    action: int  # the full SCMP_ACT_* value, errno folded in
    args: tuple[ArgCmp, ...] = ()


class Filter(NamedTuple):
    default_action: int
    rules: tuple[Rule, ...]


def action_value(name: str, errno: int | None) -> int:
    if name not in ACTIONS:
        raise SeccompError(0, f"unsupported seccomp action {name!r}")
    value = ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        value |= (EPERM if errno is None else errno) & 0xFFFF
    return value


def parse(profile: dict[str, Any]) -> Filter:
    """The OCI seccomp object → ``Filter``. Raises ``SeccompError`` on anything unknown."""
    try:
        default = action_value(profile["defaultAction"], profile.get("defaultErrnoRet"))
        rules: list[Rule] = []
        for entry in profile.get("syscalls", []):
            action = action_value(entry["action"], entry.get("errnoRet"))
            args = tuple(
                ArgCmp(
                    index=int(a["index"]),
                    op=_op(a["op"]),
                    value=int(a["value"]),
                    value_two=int(a.get("valueTwo", 0)),
                )
                for a in entry.get("args") or ()
            )
            names = entry["names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"names must be a list of syscall names, not {names!r:.80}")
            rules.extend(Rule(name=name, action=action, args=args) for name in names)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: int(inf)
        raise SeccompError(0, f"malformed seccomp profile: {exc!r}") from exc
    return Filter(default_action=default, rules=tuple(rules))


def _op(name: str) -> str:
    if name not in COMPARE_OPS:
        raise SeccompError(0, f"unsupported comparison {name!r}")
    return name


def load_file(path: str) -> Filter:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse(json.load(handle))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
        raise SeccompError(0, f"cannot read seccomp profile {path}: {exc}") from exc


class _ArgCmpStruct(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise SeccompError(
            0, "libseccomp.so.2 not found (Debian/Ubuntu: apt-get install libseccomp2)"
        ) from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmpStruct),
    ]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def load(filter_: Filter) -> int:
    """Compile and load ``filter_`` into this thread; returns the number of rules loaded.

    Syscall names this architecture does not have are skipped (as runc does); every
    other failure raises — a partial filter is never loaded.
    """
    lib = _libseccomp()
    ctx = lib.seccomp_init(filter_.default_action)
    if not ctx:
        raise SeccompError(0, "seccomp_init failed")
    try:
        # Syscalls of another ABI (i386 via int 0x80, x32) would dodge a filter written
        # for the native one: kill the process instead.
        _rc(
            lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, ACTIONS["SCMP_ACT_KILL_PROCESS"]),
            "seccomp_attr_set(BADARCH)",
        )
        _rc(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 1), "seccomp_attr_set(NNP)")
        loaded = 0
        for rule in filter_.rules:
            number = lib.seccomp_syscall_resolve_name(rule.name.encode())
            if number == -1:  # unknown to this libseccomp: it is older than the policy
                raise SeccompError(
                    0,
                    f"libseccomp does not know the syscall {rule.name!r}; "
                    "the filter would silently miss it (update libseccomp2)",
                )
            if number < 0:  # a pseudo-number: not a syscall on this architecture
                continue
            if rule.action == filter_.default_action:
                continue
            cmps = (_ArgCmpStruct * max(len(rule.args), 1))(
                *[
                    _ArgCmpStruct(a.index, COMPARE_OPS[a.op], a.value, a.value_two)
                    for a in rule.args
                ]
            )
            _rc(
                lib.seccomp_rule_add_array(ctx, rule.action, number, len(rule.args), cmps),
                f"seccomp rule for {rule.name}",
            )
            loaded += 1
        _rc(lib.seccomp_load(ctx), "seccomp_load")
        return loaded
    finally:
        lib.seccomp_release(ctx)


def _rc(result: int, what: str) -> None:
    if result < 0:
        raise SeccompError(-result, f"{what} failed: errno {-result}")
