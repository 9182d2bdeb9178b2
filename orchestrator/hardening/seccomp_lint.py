"""Validator for seccomp-profiles/*.json: run by `make lint` and by the unit tests.

    python -m orchestrator.hardening.seccomp_lint [DIR]     # exit 1 and one line per problem

Owns: what a shipped profile must be — the OCI seccomp shape (only known keys, actions,
architectures and comparison operators), syscall names that libseccomp knows on x86_64
or aarch64 (a typo would be a rule that silently matches nothing), no rule that
allows anything (the profiles are deny lists over a default of allow, so an allow rule
could only punch a hole), the baseline's required denials, and every other profile
containing every rule of the baseline.
Does not own: turning a profile into a kernel filter (``sandbox/linux/seccomp.py``).
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.core.resources import seccomp_dir
from orchestrator.sandbox.linux.seccomp import ACTIONS, COMPARE_OPS, SeccompError, parse

BASELINE = "default.json"
ARCHES = {"SCMP_ARCH_X86_64": b"x86_64", "SCMP_ARCH_AARCH64": b"aarch64"}
TOP_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "syscalls", "comment"}
RULE_KEYS = {"names", "action", "errnoRet", "args", "comment"}
ARG_KEYS = {"index", "value", "valueTwo", "op"}
# The list: each must be denied by the baseline without conditions.
REQUIRED_DENIED = (
    "mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "open_by_handle_at",
    "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "swapon", "swapoff", "reboot", "acct", "settimeofday", "clock_settime",
)  # fmt: skip
NR_SCMP_ERROR = -1


def problems_in(directory: Path) -> list[str]:
    """Every problem of every profile in ``directory``, as "file: what"."""
    found: list[str] = []
    profiles: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            profiles[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            found.append(f"{path.name}: not readable JSON ({exc})")
            continue
        if not isinstance(profiles[path.name], dict):
            found.append(f"{path.name}: not a JSON object")
            del profiles[path.name]
            continue
        found += [f"{path.name}: {p}" for p in problems(profiles[path.name])]
    baseline = profiles.get(BASELINE)
    if baseline is None:
        return [*found, f"{BASELINE}: missing (the baseline every profile extends)"]
    found += [f"{BASELINE}: {p}" for p in missing_required(baseline)]
    for name, profile in profiles.items():
        if name != BASELINE:
            found += [f"{name}: {p}" for p in missing_baseline(profile, baseline)]
    return found


def problems(profile: dict[str, Any]) -> list[str]:
    out = [f"unknown key {k!r}" for k in sorted(set(profile) - TOP_KEYS)]
    if profile.get("defaultAction") not in ACTIONS:
        out.append(f"defaultAction {profile.get('defaultAction')!r} is not an SCMP_ACT_*")
    arches = profile.get("architectures", [])
    out += [f"architecture {a!r} is not one we check" for a in arches if a not in ARCHES]
    for number, rule in enumerate(profile.get("syscalls", [])):
        out += [f"rule {number}: {p}" for p in _rule_problems(rule)]
    try:
        parse(profile)  # the native backend's own parser must accept it as well
    except SeccompError as exc:
        out.append(str(exc))
    return out


def _rule_problems(rule: dict[str, Any]) -> list[str]:
    out = [f"unknown key {k!r}" for k in sorted(set(rule) - RULE_KEYS)]
    if rule.get("action") == "SCMP_ACT_ALLOW" or rule.get("action") == "SCMP_ACT_LOG":
        out.append(f"{rule['action']} in a deny list over allow can only open a hole")
    elif rule.get("action") not in ACTIONS:
        out.append(f"action {rule.get('action')!r} is not an SCMP_ACT_*")
    names = rule.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return [*out, "names must be a non-empty list of syscall names"]
    out += [f"{n!r} is not a syscall on x86_64 or aarch64" for n in names if not known(n)]
    for arg in rule.get("args") or []:
        out += [f"arg: unknown key {k!r}" for k in sorted(set(arg) - ARG_KEYS)]
        if arg.get("op") not in COMPARE_OPS:
            out.append(f"arg: op {arg.get('op')!r} is not an SCMP_CMP_*")
        if not isinstance(arg.get("index"), int) or not 0 <= arg["index"] <= 5:
            out.append(f"arg: index {arg.get('index')!r} is not 0..5")
    return out


def missing_required(baseline: dict[str, Any]) -> list[str]:
    unconditional = {
        name
        for rule in baseline.get("syscalls", [])
        if not rule.get("args") and rule.get("action") not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
        for name in rule.get("names", [])
    }
    return [
        f"{n} must be denied unconditionally" for n in REQUIRED_DENIED if n not in unconditional
    ]


def missing_baseline(profile: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """A profile may only add rules to the baseline, never drop or change one."""
    try:
        ours, base = parse(profile).rules, parse(baseline).rules
    except SeccompError:
        return []  # reported by problems()
    return [
        f"drops or changes the baseline's rule for {rule.name}" for rule in base if rule not in ours
    ]


def known(name: str) -> bool:
    """libseccomp knows ``name`` on at least one checked architecture (a name that
    exists only on the other one, like x86_64's umount, is still a real syscall)."""
    lib = _libseccomp()
    for arch in ARCHES.values():
        token = lib.seccomp_arch_resolve_name(arch)
        if token and lib.seccomp_syscall_resolve_name_arch(token, name.encode()) != NR_SCMP_ERROR:
            return True
    return False


def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    return lib


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else seccomp_dir()
    found = problems_in(directory)
    for line in found:
        print(f"seccomp-profiles/{line}", file=sys.stderr)
    if not found:
        print(f"seccomp-profiles: {len(list(directory.glob('*.json')))} profiles valid")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
