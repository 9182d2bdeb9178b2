"""The selftest's result for people and for machines: a summary (one line per backend by
profile, one per case that did not pass, the verdict) and a JSON document.

Owns: the words and the JSON fields; the exit code each result maps to.
Does not own: printing (``cli.selftest``), JUnit (``junit``).
"""

from __future__ import annotations

from typing import Any

from .model import Outcome, Report, Suite

EXIT_CONTAINED = 0  # every attack ran and was contained; every control worked
EXIT_ESCAPED = 1  # an attack's effect reached the host
EXIT_UNPROVEN = 3  # none escaped, but a control failed or an attack could not be judged


def exit_code(report: Report) -> int:
    if report.escaped:
        return EXIT_ESCAPED
    return EXIT_CONTAINED if report.contained else EXIT_UNPROVEN


def suite_line(suite: Suite) -> str:
    attacks = [c for c in suite.cases if not c.control]
    parts = [
        f"{sum(1 for c in attacks if c.outcome is Outcome.CONTAINED)}/"
        f"{sum(1 for c in attacks if c.outcome is not Outcome.SKIPPED)} attacks contained",
        f"{suite.count(Outcome.REACHED)} controls worked",
    ]
    for outcome in (Outcome.ESCAPED, Outcome.BROKEN, Outcome.ERROR, Outcome.SKIPPED):
        if count := suite.count(outcome):
            parts.append(f"{count} {outcome}")
    return f"{suite.backend:<7} {suite.profile:<14} {', '.join(parts)}  ({suite.seconds:.1f} s)"


def case_line(backend: str, profile: str, name: str, outcome: Outcome, detail: str) -> str:
    return f"{outcome.upper():<9} {backend}/{profile} {name}: {detail}"


def summary(report: Report) -> list[str]:
    lines = [suite_line(suite) for suite in report.suites]
    lines += [
        f"{name:<7} not available here, left out: {why}" for name, why in report.unavailable.items()
    ]
    for suite in report.suites:
        lines += [
            case_line(suite.backend, suite.profile, case.name, case.outcome, case.detail)
            for case in suite.cases
            if not case.outcome.passed
        ]
    cases = sum(len(s.cases) for s in report.suites)
    backends = ", ".join(dict.fromkeys(s.backend for s in report.suites))
    if report.escaped:
        verdict = f"ESCAPED: {report.escaped} attack(s) reached the host"
    elif report.contained:
        verdict = "every attack was contained"
    else:
        verdict = f"UNPROVEN: {report.unproven} case(s) failed a control or could not be judged"
    lines.append(f"selftest: {verdict} ({cases} cases on {backends}, {report.seconds:.1f} s)")
    return lines


def as_dict(report: Report) -> dict[str, Any]:
    return {
        "contained": report.contained,
        "escaped": report.escaped,
        "unproven": report.unproven,
        "exit_code": exit_code(report),
        "seconds": round(report.seconds, 3),
        "unavailable": dict(report.unavailable),
        "suites": [
            {
                "backend": suite.backend,
                "profile": suite.profile,
                "seconds": round(suite.seconds, 3),
                "cases": [
                    {
                        "name": case.name,
                        "summary": case.summary,
                        "outcome": str(case.outcome),
                        "control": case.control,
                        "detail": case.detail,
                        "seconds": round(case.seconds, 3),
                    }
                    for case in suite.cases
                ],
            }
            for suite in report.suites
        ],
    }
