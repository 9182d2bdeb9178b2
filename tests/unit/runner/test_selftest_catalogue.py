"""The selftest's catalogue is well-formed: unique names, a plan for every profile and
backend, controls everywhere, and commands that carry no secret and reach no address
but the harness's own (pure: nothing runs in a sandbox)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runner.selftest import harness
from orchestrator.runner.selftest.attacks import CATALOGUE, by_name
from orchestrator.runner.selftest.model import SANDBOXED, TRUSTED, Expect, Plan
from orchestrator.runner.selftest.site import Listeners, Site

KINDS = ("control", "fs", "net", "secrets", "proc")


@pytest.fixture
def site(tmp_path: Path, sock_dir: Path) -> Iterator[Site]:
    listeners = Listeners(sock_dir)
    made = Site.make(tmp_path, "unit", listeners)
    try:
        yield made
    finally:
        made.close()
        listeners.close()


def test_every_entry_has_a_unique_dotted_name_of_a_known_kind_and_a_summary() -> None:
    names = [attack.name for attack in CATALOGUE]
    assert len(names) == len(set(names))
    for attack in CATALOGUE:
        assert attack.name.split(".")[0] in KINDS, attack.name
        assert attack.summary and "\n" not in attack.summary
    assert by_name("fs.write-outside").name == "fs.write-outside"
    with pytest.raises(KeyError):
        by_name("fs.nothing")


def test_the_catalogue_starts_with_the_control_that_the_sandbox_runs_anything() -> None:
    assert CATALOGUE[0].name == "control.runs"


@pytest.mark.parametrize("backend", harness.BACKENDS)
@pytest.mark.parametrize("profile", SANDBOXED)
def test_every_profile_and_backend_gets_a_plan_with_a_reason_for_each_skip(
        profile: str, backend: str) -> None:
    plans = [attack.plan(profile, backend) for attack in CATALOGUE]
    assert all(isinstance(plan, Plan) for plan in plans)
    assert all(plan.why for plan in plans if plan.expect is Expect.SKIP)
    # Positive controls run everywhere: a harness that runs nothing cannot pass.
    controls = [a for a, p in zip(CATALOGUE, plans, strict=True) if p.expect is Expect.REACHES]
    assert {"control.runs", "control.reads-workspace"} <= {a.name for a in controls}
    assert all(attack.control for attack in controls)
    contained = [p for p in plans if p.expect is Expect.CONTAINED]
    assert len(contained) >= 12


def test_no_attack_is_skipped_under_every_sandboxed_profile() -> None:
    for attack in CATALOGUE:
        if attack.control:
            continue
        for backend in harness.BACKENDS:
            expects = {attack.plan(p, backend).expect for p in SANDBOXED}
            assert Expect.CONTAINED in expects, (attack.name, backend)


def test_trusted_skips_every_attack_because_it_has_no_sandbox() -> None:
    for attack in CATALOGUE:
        plan = attack.plan(TRUSTED, "native")
        if not attack.control:
            assert plan.expect is Expect.SKIP and "no sandbox" in plan.why, attack.name


def test_what_only_a_narrower_profile_stops_is_a_control_or_skipped_where_allowed() -> None:
    loopback = by_name("net.host-loopback")
    assert loopback.plan("offline", "docker").expect is Expect.CONTAINED
    assert loopback.plan("workspace-net", "native").expect is Expect.REACHES
    assert loopback.plan("workspace-net", "docker").expect is Expect.SKIP
    write = by_name("fs.workspace-write")
    assert write.plan("offline", "native").expect is Expect.CONTAINED
    assert write.plan("workspace", "podman").expect is Expect.REACHES


def test_commands_are_argv_tuples_that_never_carry_the_secret(site: Site) -> None:
    for attack in CATALOGUE:
        attack.setup(site)
        argv = attack.command(site)
        assert isinstance(argv, tuple) and all(isinstance(a, str) for a in argv), attack.name
        assert site.secret not in " ".join(argv), attack.name


def test_commands_name_no_network_address_but_the_hosts_loopback(site: Site) -> None:
    for attack in CATALOGUE:
        attack.setup(site)
        text = " ".join(attack.command(site))
        addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
        assert addresses <= {"127.0.0.1"}, (attack.name, addresses)


def test_a_site_lays_out_canaries_secrets_and_a_workspace_then_removes_them(
        tmp_path: Path) -> None:
    site = Site.make(tmp_path, "layout")
    assert all(p.is_file() for p in (*site.canaries(), *site.secret_files()))
    assert (site.workspace / ".git" / "HEAD").is_file()
    assert not site.workspace.is_relative_to(site.home)  # never a dot-directory of HOME
    env = site.environ({"PATH": "/usr/bin", "CODEX_SECURITY_PROFILE": "trusted"})
    assert env["HOME"] == str(site.home) and env["CODEX_HOME"] == str(site.codex_home)
    assert "CODEX_SECURITY_PROFILE" not in env
    site.close()
    assert not site.root.exists()
