"""seccomp-profiles/*.json: one policy for engines and the native backend, parsed here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.resources import seccomp_dir
from orchestrator.hardening.seccomp_lint import REQUIRED_DENIED
from orchestrator.sandbox.linux.seccomp import (
    ACTIONS,
    ArgCmp,
    Filter,
    Rule,
    SeccompError,
    action_value,
    load_file,
    parse,
)

ERRNO = ACTIONS["SCMP_ACT_ERRNO"]
ALLOW = ACTIONS["SCMP_ACT_ALLOW"]
EPERM, EAFNOSUPPORT, ENOSYS = 1, 97, 38
AF_UNIX = 1


CLONE_NEW = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((seccomp_dir() / f"{name}.json").read_text())
    return data


def parsed(name: str) -> Filter:
    return parse(raw(name))


def errno_of(action: int) -> int:
    assert action & 0xFFFF0000 == ERRNO, hex(action)
    return action & 0xFFFF


def test_the_seccomp_directory_holds_exactly_the_profiles_the_profiles_name() -> None:
    assert sorted(p.name for p in Path(seccomp_dir()).glob("*.json")) == [
        "default.json",
        "offline.json",
    ]


@pytest.mark.parametrize("name", ["default", "offline"])
def test_seccomp_file_parses_with_the_native_parser(name: str) -> None:
    filter_ = load_file(str(seccomp_dir() / f"{name}.json"))
    assert filter_ == parsed(name)
    assert filter_.default_action == ALLOW
    assert len(filter_.rules) > 50
    assert raw(name)["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]


@pytest.mark.parametrize("name", ["default", "offline"])
def test_no_rule_allows_anything(name: str) -> None:
    assert all(rule.action != ALLOW for rule in parsed(name).rules)
    assert all(entry["action"] != "SCMP_ACT_ALLOW" for entry in raw(name)["syscalls"])


@pytest.mark.parametrize("name", ["default", "offline"])
@pytest.mark.parametrize("syscall", REQUIRED_DENIED)
def test_required_syscall_is_denied_unconditionally(name: str, syscall: str) -> None:
    unconditional = [r for r in parsed(name).rules if r.name == syscall and not r.args]
    assert unconditional, f"{syscall} has no unconditional rule in {name}.json"
    assert all(errno_of(r.action) == EPERM for r in unconditional)


@pytest.mark.parametrize("name", ["default", "offline"])
@pytest.mark.parametrize("flag", list(CLONE_NEW))
def test_clone_with_a_namespace_flag_is_denied(name: str, flag: str) -> None:
    bit = CLONE_NEW[flag]
    rules = [r for r in parsed(name).rules if r.name == "clone"]
    assert (
        Rule(
            name="clone",
            action=ERRNO | EPERM,
            args=(ArgCmp(index=0, op="SCMP_CMP_MASKED_EQ", value=bit, value_two=bit),),
        )
        in rules
    ), flag


@pytest.mark.parametrize("name", ["default", "offline"])
def test_clone_itself_stays_allowed_and_clone3_falls_back_with_enosys(name: str) -> None:
    rules = parsed(name).rules
    assert all(r.args for r in rules if r.name == "clone"), "plain fork/threads must work"
    clone3 = [r for r in rules if r.name == "clone3"]
    assert len(clone3) == 1 and not clone3[0].args
    assert errno_of(clone3[0].action) == ENOSYS


def test_offline_contains_every_rule_of_default_plus_the_af_unix_only_socket_rule() -> None:
    default, offline = parsed("default").rules, parsed("offline").rules
    assert offline[: len(default)] == default
    extra = offline[len(default) :]
    only_unix = (ArgCmp(index=0, op="SCMP_CMP_NE", value=AF_UNIX),)
    assert sorted(extra, key=lambda r: r.name) == [
        Rule(name="socket", action=ERRNO | EAFNOSUPPORT, args=only_unix),
        Rule(name="socketpair", action=ERRNO | EAFNOSUPPORT, args=only_unix),
    ]
    assert parsed("offline").default_action == parsed("default").default_action


def test_default_keeps_inet_sockets_but_refuses_vsock() -> None:
    sockets = [r for r in parsed("default").rules if r.name == "socket"]
    assert sockets == [
        Rule(
            name="socket",
            action=ERRNO | EAFNOSUPPORT,
            # The kernel reads the family as an int: only the low 32 bits may decide.
            args=(ArgCmp(index=0, op="SCMP_CMP_MASKED_EQ", value=0xFFFFFFFF, value_two=40),),
        )
    ]


def test_errno_is_folded_into_the_action_with_eperm_by_default() -> None:
    assert action_value("SCMP_ACT_ERRNO", None) == ERRNO | EPERM
    assert action_value("SCMP_ACT_ERRNO", 38) == ERRNO | 38
    assert action_value("SCMP_ACT_ALLOW", 5) == ALLOW


@pytest.mark.parametrize(
    "profile",
    [
        {},
        {"defaultAction": "SCMP_ACT_NOPE"},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {
                    "names": ["x"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}],
                }
            ],
        },
    ],
)
def test_malformed_or_unknown_seccomp_input_is_refused(profile: dict[str, Any]) -> None:
    with pytest.raises(SeccompError):
        parse(profile)


def test_an_unreadable_seccomp_file_is_a_seccomp_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeccompError, match="cannot read seccomp profile"):
        load_file(str(bad))
    with pytest.raises(SeccompError):
        load_file(str(tmp_path / "missing.json"))
