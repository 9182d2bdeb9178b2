"""``codex-box selftest`` for real: the whole catalogue on the native backend (exit 0,
a JUnit report with no failure and every case), one profile on each engine, a named
backend that is not there (125), and the judge catching a real escape — attacks run
under ``trusted``, which really lets them reach the host, expected to be contained."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.runner.context import HostContext
from orchestrator.runner.selftest import harness, report
from orchestrator.runner.selftest.attacks import CATALOGUE, by_name
from orchestrator.runner.selftest.model import SANDBOXED, Expect, Outcome, Plan
from orchestrator.runner.selftest.site import SCRATCH_BASE, Listeners
from tests.conftest import Ran

pytestmark = pytest.mark.landlock


def expected_counts(backend: str, profiles: tuple[str, ...]) -> tuple[int, int]:
    """(testcases, skipped) the catalogue plans for ``backend`` by ``profiles``."""
    plans = [a.plan(p, backend) for p in profiles for a in CATALOGUE]
    return len(plans), sum(1 for plan in plans if plan.expect is Expect.SKIP)


def junit_totals(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()  # noqa: S314 -- the file the test had written
    assert root.tag == "testsuites"
    totals = {key: int(root.get(key) or -1) for key in ("tests", "failures", "errors", "skipped")}
    totals["testcases"] = len(root.findall("testsuite/testcase"))
    totals["suites"] = len(root.findall("testsuite"))
    return totals


def test_native_contains_every_attack_of_every_sandboxed_profile(
        native_available: None, cli: Callable[..., Ran], tmp_path: Path) -> None:
    path = tmp_path / "selftest.xml"
    ran = cli("selftest", "--backend", "native", "--profile", "all", "--junit", str(path),
              timeout=110)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "every attack was contained" in ran.stdout
    tests, skipped = expected_counts("native", SANDBOXED)
    assert junit_totals(path) == {"tests": tests, "failures": 0, "errors": 0,
                                  "skipped": skipped, "testcases": tests, "suites": 4}


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_an_engine_contains_every_attack_of_the_workspace_profile(
        engine: str, request: pytest.FixtureRequest, cli: Callable[..., Ran],
        tmp_path: Path) -> None:
    request.getfixturevalue(f"{engine}_available")
    path = tmp_path / "selftest.xml"
    ran = cli("selftest", "--backend", engine, "--profile", "workspace", "--json",
              "--junit", str(path), env=_engine_env(), timeout=110)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout)
    assert result["contained"] is True and result["exit_code"] == 0
    assert {s["backend"] for s in result["suites"]} == {engine}
    tests, skipped = expected_counts(engine, ("workspace",))
    assert junit_totals(path) == {"tests": tests, "failures": 0, "errors": 0,
                                  "skipped": skipped, "testcases": tests, "suites": 1}


def _engine_env() -> dict[str, str]:
    """The engines' endpoints as this test run has them (the ``cli`` fixture keeps only
    PATH and the locale)."""
    names = ("DOCKER_HOST", "CONTAINER_HOST", "CONTAINERS_CONF")
    return {name: os.environ[name] for name in names if name in os.environ}


def test_a_named_backend_that_is_not_there_exits_125_naming_the_fix(
        cli: Callable[..., Ran]) -> None:
    ran = cli("selftest", "--backend", "docker", env={"DOCKER_HOST": "unix:///nonexistent"})
    assert ran.returncode == 125, ran.stdout + ran.stderr
    assert "backend docker cannot run here" in ran.stderr and "make images" in ran.stderr
    assert ran.stdout == ""


@pytest.mark.parametrize("value", ["trusted", "ofline"])
def test_a_profile_selftest_cannot_prove_anything_about_is_a_usage_error(
        cli: Callable[..., Ran], value: str) -> None:
    ran = cli("selftest", "--profile", value)
    assert ran.returncode == 2, ran.stderr
    assert "offline" in ran.stderr


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    made = Listeners(SCRATCH_BASE)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("name", ["fs.write-outside", "net.host-loopback",
                                  "secrets.home-files", "proc.kill-host-process"])
def test_the_judge_reports_an_attack_that_really_reached_the_host_as_escaped(
        native_available: None, base_env: dict[str, str], listeners: Listeners,
        tmp_path: Path, name: str) -> None:
    """``trusted`` runs on the host: each of these attacks works there. Expected to be
    contained, each must come out ESCAPED — the judge sees real effects."""
    context = HostContext.from_environ(base_env, cwd=str(tmp_path))
    case = harness.run_case(context, by_name(name), Plan(Expect.CONTAINED), backend="native",
                            profile="trusted", root=SCRATCH_BASE, listeners=listeners)
    assert case.outcome is Outcome.ESCAPED, case


def test_an_escape_makes_the_whole_selftest_exit_1(native_available: None,
                                                    base_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    context = HostContext.from_environ(base_env, cwd=str(tmp_path))
    result = harness.run(context, harness.Request(
        backends=("native",), profiles=("trusted",), expect=Expect.CONTAINED,
        attacks=(by_name("control.runs"), by_name("fs.write-outside"))))
    assert result.escaped == 1 and report.exit_code(result) == 1
    assert report.summary(result)[-1].startswith("selftest: ESCAPED")
