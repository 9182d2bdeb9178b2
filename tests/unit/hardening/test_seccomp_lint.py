"""The seccomp profile validator (`make lint`): the shipped profiles pass, and each kind
of broken profile is caught with a line naming the file and the problem."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.resources import seccomp_dir
from orchestrator.hardening.seccomp_lint import known, main, problems_in


def test_the_shipped_profiles_are_valid() -> None:
    assert problems_in(seccomp_dir()) == []


def test_the_command_line_exits_0_on_the_shipped_profiles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(seccomp_dir())]) == 0
    assert "profiles valid" in capsys.readouterr().out


def test_names_are_checked_on_both_architectures() -> None:
    assert known("openat") and known("umount")  # umount exists on x86_64 only
    assert not known("opneat") and not known("")


def _first_rule(profile: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = profile["syscalls"][0]
    return rule


def _rule_named(profile: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in profile["syscalls"] if name in r["names"])


MUTATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "typo": ("default.json", lambda p: _first_rule(p)["names"].append("mountt"),
             "'mountt' is not a syscall"),
    "allow rule": ("offline.json", lambda p: p["syscalls"].append(
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"}), "can only open a hole"),
    "unknown action": ("default.json", lambda p: _first_rule(p).update(action="SCMP_ACT_NOPE"),
                       "is not an SCMP_ACT_*"),
    "unknown key": ("default.json", lambda p: _first_rule(p).update(nmes=["x"]),
                    "unknown key 'nmes'"),
    "bad op": ("default.json", lambda p: _rule_named(p, "socket")["args"][0].update(
        op="SCMP_CMP_ALMOST"), "is not an SCMP_CMP_*"),
    "bad index": ("default.json", lambda p: _rule_named(p, "socket")["args"][0].update(index=6),
                  "is not 0..5"),
    "empty names": ("default.json", lambda p: _first_rule(p).update(names=[]),
                    "non-empty list"),
    "foreign arch": ("default.json", lambda p: p["architectures"].append("SCMP_ARCH_MIPS"),
                     "not one we check"),
    "required denial dropped": ("default.json", lambda p: _rule_named(p, "bpf")["names"].remove(
        "bpf"), "bpf must be denied unconditionally"),
    "baseline rule dropped": ("offline.json", lambda p: _rule_named(p, "ptrace")["names"].remove(
        "ptrace"), "drops or changes the baseline's rule for ptrace"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_a_broken_profile_is_caught_with_its_file_named(case: str, tmp_path: Path) -> None:
    target, mutate, expected = MUTATIONS[case]
    for source in seccomp_dir().glob("*.json"):
        profile = json.loads(source.read_text())
        if source.name == target:
            profile = copy.deepcopy(profile)
            mutate(profile)
        (tmp_path / source.name).write_text(json.dumps(profile))
    found = problems_in(tmp_path)
    assert any(line.startswith(f"{target}: ") and expected in line for line in found), found
    assert main([str(tmp_path)]) == 1


def test_a_missing_baseline_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "offline.json").write_text((seccomp_dir() / "offline.json").read_text())
    assert any("default.json: missing" in line for line in problems_in(tmp_path))
