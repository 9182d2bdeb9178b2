"""One policy, every enforcement point: each syscall a profile's seccomp JSON denies
without conditions is refused, with the JSON's own errno, on every backend (the native
backend compiles the JSON with libseccomp; Docker and Podman load it themselves).

Inside the sandbox each syscall is called with arguments that are invalid anyway (-1),
so one that got through would fail differently (EFAULT, EBADF, EINVAL...) instead of
running: the errno tells who answered."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess

import pytest

from orchestrator.core.resources import seccomp_dir
from orchestrator.profiles.store import ProfileStore
from tests.conftest import SANDBOX_PYTHON

PROBE = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
for name, number in json.loads(sys.argv[1]).items():
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(-1)] * 6)
    out[name] = 0 if r >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""
# No arguments, so -1 cannot make them harmless: vhangup would hang up the terminal of
# a sandbox where the rule were missing. Their denial is still checked by the unit
# tests of the JSON itself.
NO_ARGUMENTS = {"vhangup"}


def unconditional_denials(profile: str, codex_home) -> tuple[dict[str, int], dict[str, int]]:
    """(name → syscall number on this machine, name → expected errno) for the JSON of
    ``profile``; names this architecture does not have are left out."""
    seccomp = ProfileStore(codex_home=codex_home).get(profile).seccomp
    rules = json.loads((seccomp_dir() / f"{seccomp}.json").read_text())["syscalls"]
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    numbers, expected = {}, {}
    for rule in rules:
        if rule.get("args") or rule["action"] != "SCMP_ACT_ERRNO":
            continue
        for name in rule["names"]:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number >= 0 and name not in NO_ARGUMENTS:
                numbers[name], expected[name] = number, rule.get("errnoRet", 1)
    return numbers, expected


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="checked arches")
@pytest.mark.parametrize("profile", ["offline", "workspace-net"])
def test_every_unconditionally_denied_syscall_gets_the_policys_errno(box, profile, codex_home):
    numbers, expected = unconditional_denials(profile, codex_home)
    assert len(numbers) >= 40, "the policy lists at least this many here"
    ran = box(profile, SANDBOX_PYTHON, "-I", "-c", PROBE, json.dumps(numbers))
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert {n: e for n, e in got.items() if e != expected[n]} == {}, (
        f"on {box.backend}: these answered other than the policy says"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="setpriv needs root to become nobody")
def test_control_without_the_filter_most_of_these_syscalls_answer_differently(codex_home):
    """So a missing rule would show: run unfiltered as an unprivileged user, the same
    calls mostly fail with other errnos (the rest are EPERM for lack of privilege)."""
    numbers, expected = unconditional_denials("offline", codex_home)
    ran = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "--inh-caps=-all", SANDBOX_PYTHON, "-I", "-c", PROBE,
                          json.dumps(numbers)],
                         capture_output=True, text=True, check=True, timeout=30, cwd="/")
    got = json.loads(ran.stdout)
    differing = [n for n, e in got.items() if e != expected[n]]
    assert len(differing) >= 0.7 * len(numbers), got
