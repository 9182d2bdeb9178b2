"""The report as JUnit XML, the format GitLab (``artifacts:reports:junit``) and GitHub
(a test-report action) render: one ``testsuite`` per backend by profile, one
``testcase`` per attack or control.

Owns: the mapping of outcomes to JUnit — escaped attacks and failed controls are
``failure``s, cases that could not be judged are ``error``s, skipped ones ``skipped``
with the reason — and writing the file.
Does not own: the outcomes (``model.verdict``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.core.errors import printable

from .model import Case, Outcome, Report, Suite

FAILURE_TYPES = {Outcome.ESCAPED: "escaped", Outcome.BROKEN: "control-failed"}


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _clean(text: str) -> str:
    """XML 1.0 forbids most control characters; a sandbox's output may hold any."""
    return "".join(c if c in "\t\n" or c.isprintable() else printable(c) for c in text)


def testsuite(suite: Suite) -> ET.Element:
    element = ET.Element(
        "testsuite",
        name=f"codex-box selftest {suite.backend} {suite.profile}",
        tests=str(len(suite.cases)),
        failures=str(suite.count(Outcome.ESCAPED, Outcome.BROKEN)),
        errors=str(suite.count(Outcome.ERROR)),
        skipped=str(suite.count(Outcome.SKIPPED)),
        time=_seconds(suite.seconds),
    )
    properties = ET.SubElement(element, "properties")
    for key, value in (("backend", suite.backend), ("profile", suite.profile)):
        ET.SubElement(properties, "property", name=key, value=value)
    for case in suite.cases:
        element.append(testcase(suite, case))
    return element


def testcase(suite: Suite, case: Case) -> ET.Element:
    element = ET.Element(
        "testcase",
        classname=f"selftest.{suite.backend}.{suite.profile}",
        name=case.name,
        time=_seconds(case.seconds),
    )
    detail = _clean(case.detail)
    if case.outcome in FAILURE_TYPES:
        failure = ET.SubElement(
            element, "failure", message=detail, type=FAILURE_TYPES[case.outcome]
        )
        failure.text = _clean(f"{case.summary}\n{case.detail}")
    elif case.outcome is Outcome.ERROR:
        error = ET.SubElement(element, "error", message=detail, type="unjudged")
        error.text = _clean(f"{case.summary}\n{case.detail}")
    elif case.outcome is Outcome.SKIPPED:
        ET.SubElement(element, "skipped", message=detail)
    out = f"{case.summary}\n{case.outcome}: {case.detail}\n"
    if case.output:
        out += f"--- output of the sandboxed command ---\n{case.output}\n"
    ET.SubElement(element, "system-out").text = _clean(out)
    return element


def document(report: Report) -> ET.ElementTree:
    suites = [testsuite(suite) for suite in report.suites]
    root = ET.Element(
        "testsuites",
        name="codex-box selftest",
        tests=str(sum(len(s.cases) for s in report.suites)),
        failures=str(sum(s.count(Outcome.ESCAPED, Outcome.BROKEN) for s in report.suites)),
        errors=str(sum(s.count(Outcome.ERROR) for s in report.suites)),
        skipped=str(sum(s.count(Outcome.SKIPPED) for s in report.suites)),
        time=_seconds(report.seconds),
    )
    root.extend(suites)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def write(report: Report, path: Path) -> None:
    """Write atomically: a CI job that reads a half-written report would misreport."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        document(report).write(partial, encoding="utf-8", xml_declaration=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
