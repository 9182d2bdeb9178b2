"""The selftest's JUnit report: well-formed XML that parses back into the same counts,
one testsuite per backend by profile, escapes and failed controls as failures,
unjudged cases as errors, skips with their reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.runner.selftest import junit
from orchestrator.runner.selftest.model import Case, Outcome, Report, Suite


def case(name: str, outcome: Outcome, detail: str = "why", output: str = "") -> Case:
    return Case(name=name, summary=f"{name} tries something", outcome=outcome, detail=detail,
                seconds=0.25, output=output)


REPORT = Report(
    suites=(
        Suite(backend="native", profile="offline", seconds=1.5, cases=(
            case("control.runs", Outcome.REACHED),
            case("fs.write-outside", Outcome.CONTAINED, output="done\n"),
            case("fs.symlink-out", Outcome.ESCAPED, "target.txt changed"),
        )),
        Suite(backend="docker", profile="workspace-net", seconds=2.0, cases=(
            case("control.reads-workspace", Outcome.BROKEN, "positive control failed: x"),
            case("net.proxy-to-loopback", Outcome.SKIPPED, "workspace-net allows it"),
            case("proc.syscalls", Outcome.ERROR, "the attack did not run"),
        )),
    ),
    seconds=3.5,
)


def parsed(tmp_path: Path, report: Report = REPORT) -> ET.Element:
    path = tmp_path / "selftest.xml"
    junit.write(report, path)
    assert not list(tmp_path.glob(".*partial"))  # written in place, nothing left over
    return ET.parse(path).getroot()  # noqa: S314 -- our own file


def test_the_report_parses_back_with_its_totals(tmp_path: Path) -> None:
    root = parsed(tmp_path)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"),
            root.get("skipped")) == ("6", "2", "1", "1")
    assert root.get("time") == "3.500"


def test_one_testsuite_per_backend_and_profile_with_its_own_counts(tmp_path: Path) -> None:
    suites = parsed(tmp_path).findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "codex-box selftest native offline", "codex-box selftest docker workspace-net"]
    assert [(s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped"))
            for s in suites] == [("3", "1", "0", "0"), ("3", "1", "1", "1")]
    props = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert props == {"backend": "docker", "profile": "workspace-net"}


def test_each_outcome_becomes_the_junit_element_ci_systems_render(tmp_path: Path) -> None:
    cases = {c.get("name"): c for c in parsed(tmp_path).iter("testcase")}
    assert cases["fs.symlink-out"].get("classname") == "selftest.native.offline"
    failure = cases["fs.symlink-out"].find("failure")
    assert failure is not None and failure.get("type") == "escaped"
    assert failure.get("message") == "target.txt changed"
    broken = cases["control.reads-workspace"].find("failure")
    assert broken is not None and broken.get("type") == "control-failed"
    error = cases["proc.syscalls"].find("error")
    assert error is not None and "did not run" in (error.get("message") or "")
    skipped = cases["net.proxy-to-loopback"].find("skipped")
    assert skipped is not None and skipped.get("message") == "workspace-net allows it"
    for passed in ("control.runs", "fs.write-outside"):
        assert [child.tag for child in cases[passed]] == ["system-out"]
    out = cases["fs.write-outside"].findtext("system-out") or ""
    assert "output of the sandboxed command" in out and "done" in out
    assert cases["fs.write-outside"].get("time") == "0.250"


def test_control_characters_from_a_sandbox_cannot_break_the_xml(tmp_path: Path) -> None:
    hostile = "\x00\x1b[31mred\x07 \ufffe end"
    report = Report(suites=(Suite(backend="native", profile="offline", cases=(
        case("fs.write-outside", Outcome.ESCAPED, hostile, output=hostile),)),))
    root = parsed(tmp_path, report)
    message = root.find("testsuite/testcase/failure")
    assert message is not None and "red" in (message.get("message") or "")
    assert "\x00" not in (message.get("message") or "")
