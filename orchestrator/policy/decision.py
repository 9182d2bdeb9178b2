"""What the execution policy concludes about one command line.

Owns: the four decisions and their order (the strictest wins), one finding per reason,
and the evaluation that combines them. Does not own: rules (``rules``), parsing shell
text (``shell``) or loading policy files (``loader``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Decision(enum.IntEnum):
    """Ordered by strictness: combining findings takes the maximum."""

    SAFE = 0  # verified safe: only reads, writes nothing we cannot see
    MATCH = 1  # a rule matched and names the files it writes: the paths are checked
    UNVERIFIED = 2  # safety unknown: a person must approve it
    FORBIDDEN = 3  # explicitly blocked

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, text: str) -> Decision:
        return cls[text.upper()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One reason for the decision, about one simple command (or the whole script)."""

    decision: Decision
    command: tuple[str, ...]  # the simple command it concerns; () for the whole line
    reason: str
    rule: str | None = None  # where the rule was defined: "default.policy:12"
    writes: tuple[str, ...] = ()  # files a Match says the command writes, as given

    def as_json(self) -> dict[str, object]:
        return {
            "decision": self.decision.label,
            "command": list(self.command),
            "reason": self.reason,
            "rule": self.rule,
            "writes": list(self.writes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    argv: tuple[str, ...]
    decision: Decision
    findings: tuple[Finding, ...]

    @classmethod
    def of(cls, argv: tuple[str, ...], findings: list[Finding]) -> Evaluation:
        if not findings:  # nothing was evaluated: never silently safe
            findings = [Finding(decision=Decision.UNVERIFIED, command=argv, reason="empty")]
        return cls(argv=argv, decision=max(f.decision for f in findings), findings=tuple(findings))

    def deciding(self) -> tuple[Finding, ...]:
        """The findings that carry the final decision (the reasons to show first)."""
        return tuple(f for f in self.findings if f.decision is self.decision)

    def summary(self) -> str:
        """One line: the decision and its first reasons."""
        reasons = "; ".join(dict.fromkeys(f.reason for f in self.deciding()))
        return f"{self.decision.label}: {reasons}"

    def as_json(self) -> dict[str, object]:
        return {
            "argv": list(self.argv),
            "decision": self.decision.label,
            "findings": [f.as_json() for f in self.findings],
        }
